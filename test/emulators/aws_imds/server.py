#!/usr/bin/python3
"""EC2 instance metadata service (IMDSv2) stand-in for the sfexport tests.

    server.py --port 0 --port-file F --role-arn arn:aws:iam::123456789012:role/NAME
              [--region eu-west-1] [--allow-imdsv1] [--lifetime 21600]
              [--rotate-before 300] [--issued-file ISSUED.json] [--host 127.0.0.1]

Point a client at it with AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT.
The role's credentials are written to --issued-file (issued_creds.py), which
sigv4_front.py --issued-credentials and aws_sts --issued-credentials read.

Rules, from "Use the Instance Metadata Service to access instance metadata"
and "Retrieve security credentials from instance metadata" (EC2 User Guide,
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/configuring-instance-metadata-service.html,
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html,
https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/iam-roles-for-amazon-ec2.html):
- PUT /latest/api/token with X-aws-ec2-metadata-token-ttl-seconds: an integer
  1..21600 (missing or other: 400).  The answer is the token (text/plain)
  and the same TTL header.  A PUT carrying X-Forwarded-For is refused (403),
  "IMDSv2 ... will not accept requests with X-Forwarded-For".
- GET with X-aws-ec2-metadata-token: a token that is unknown or past its
  TTL answers 401, whether or not IMDSv1 is allowed.  Without a token: 401
  when IMDSv2 is required (the default here, --allow-imdsv1 permits it).
- GET /latest/meta-data/iam/security-credentials/ -> the role name;
  .../security-credentials/NAME -> JSON {"Code": "Success", "LastUpdated",
  "Type": "AWS-HMAC", "AccessKeyId", "SecretAccessKey", "Token",
  "Expiration"} (ISO 8601 UTC with Z); another name -> 404.
- "We make new credentials available at least five minutes before the
  expiration of the old credentials": the same credentials are served until
  --rotate-before seconds before their Expiration (--lifetime after issue).
- GET /latest/meta-data/placement/region, .../placement/availability-zone
  (botocore reads this one for the region, botocore/utils.py
  InstanceMetadataRegionFetcher), /latest/dynamic/instance-identity/document.
- Error statuses: 400 bad PUT, 401 bad or missing token, 403 forbidden, 404
  no such path, 405 other methods (with Allow), 503 (a fault) -- the
  "Error codes" table of instancedata-data-retrieval.html.  IMDS answers
  plain text bodies.
Trailing slashes are accepted as IMDS does (botocore asks for
"latest/meta-data/iam/security-credentials/" and
"latest/meta-data/placement/availability-zone/").

Admin API (loopback, no auth; under /_imds/, never metadata):
  GET  /_imds/health, /_imds/stats ({"token_requests", "credential_requests",
       "by_status", "rotations", "pending_faults"})
  GET/DELETE /_imds/requests  [{"method", "path", "status", "token"}]
       ("token": "none" | "valid" | "invalid", never the token itself)
  POST /_imds/settings  {"imdsv1": bool, "role_available": bool}
       (role_available false: the role list is empty and NAME answers 404,
       as on an instance without a profile)
  POST /_imds/rotate    the next credentials request gets new credentials
  POST /_imds/expire    everything issued so far expires now (at the storage
                        stand-ins) and the next request gets new ones
  POST/GET/DELETE /_imds/faults  {"kind": "503"|"500"|"drop"|"delay",
       "count", "after", "method", "path_regex", "delay_ms"}
  POST /_imds/reset     clear faults, requests and counters
Tokens, keys and secrets are never logged.
"""

import argparse
import datetime
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import emu_common as ec  # noqa: E402
import issued_creds  # noqa: E402

PROG = "aws_imds"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL = 21600
CREDS_PATH = "/latest/meta-data/iam/security-credentials"
FAULT_KINDS = ("503", "500", "drop", "delay")
INSTANCE_ID = "i-0123456789abcdef0"


class State:
    def __init__(self, args):
        self.role = issued_creds.RotatingRole(
            args.role_arn, args.lifetime, args.rotate_before,
            issued_creds.IssuedWriter(args.issued_file), PROG)
        self.region = args.region
        self.imdsv1 = args.allow_imdsv1
        self.role_available = True
        self.tokens = {}   # sha256(token) -> expiry
        self.faults = ec.FaultQueue(FAULT_KINDS)
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.counters = {"token_requests": 0, "credential_requests": 0,
                             "by_status": {}}
            self.requests = []

    def record(self, method, path, status, token):
        with self.lock:
            d = self.counters["by_status"]
            d[str(status)] = d.get(str(status), 0) + 1
            self.requests.append({"method": method, "path": path, "status": status,
                                  "token": token})
            del self.requests[:-10000]

    def new_token(self, ttl):
        tok = "AQAEA" + secrets.token_urlsafe(42)
        with self.lock:
            now = time.time()
            self.tokens = {k: v for k, v in self.tokens.items() if v > now}
            self.tokens[issued_creds.token_sha256(tok)] = now + ttl
            self.counters["token_requests"] += 1
        return tok

    def token_state(self, tok):
        if tok is None:
            return "none"
        with self.lock:
            exp = self.tokens.get(issued_creds.token_sha256(tok))
        return "valid" if exp is not None and exp > time.time() else "invalid"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "EC2ws"
    state = None

    def log_request(self, code="-", size="-"):
        ec.log(PROG, "%s %s %s" % (self.command, urlsplit(self.path).path, code))

    def log_message(self, fmt, *args):
        if not fmt.startswith('"%s" %s %s'):
            ec.log(PROG, fmt % args)

    def _send(self, status, body, ctype="text/plain", extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log_request(status)

    def do_GET(self):
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

    def _handle(self):
        path = urlsplit(self.path).path
        if path.startswith("/_imds/"):
            return self._admin(path)
        st = self.state
        try:
            ec.read_body(self)[0].close()
        except ec.BodyError:
            self.close_connection = True
            return self._send(400, "Bad Request")
        fault = st.faults.take(self.command, path)
        if fault:
            if fault["kind"] == "delay":
                time.sleep(fault.get("delay_ms", 1000) / 1000.0)
            elif fault["kind"] == "drop":
                self.close_connection = True
                return
            else:
                st.record(self.command, path, int(fault["kind"]), "-")
                return self._send(int(fault["kind"]), "Service Unavailable"
                                  if fault["kind"] == "503" else "Internal Server Error")
        if path == "/latest/api/token":
            return self._token(path)
        if self.command not in ("GET", "HEAD"):
            st.record(self.command, path, 405, "-")
            return self._send(405, "Method Not Allowed", extra=[("Allow", "GET, HEAD")])
        tstate = st.token_state(self.headers.get(TOKEN_HEADER))
        if tstate == "invalid" or (tstate == "none" and not st.imdsv1):
            st.record(self.command, path, 401, tstate)
            return self._send(401, "Unauthorized")
        status, body, ctype = self._metadata(path.rstrip("/") or "/")
        st.record(self.command, path, status, tstate)
        self._send(status, body, ctype)

    def _token(self, path):
        st = self.state
        if self.command != "PUT":
            st.record(self.command, path, 405, "-")
            return self._send(405, "Method Not Allowed", extra=[("Allow", "PUT")])
        if self.headers.get("X-Forwarded-For") is not None:
            st.record(self.command, path, 403, "-")
            return self._send(403, "Forbidden")
        raw = self.headers.get(TTL_HEADER)
        try:
            ttl = int(raw)
            if not re.fullmatch(r"\d+", raw.strip()) or not 1 <= ttl <= MAX_TTL:
                raise ValueError
        except (TypeError, ValueError):
            st.record(self.command, path, 400, "-")
            return self._send(400, "Bad Request")
        tok = st.new_token(ttl)
        st.record(self.command, path, 200, "-")
        self._send(200, tok, extra=[(TTL_HEADER, str(ttl))])

    def _metadata(self, path):
        st = self.state
        role = st.role
        az = st.region + "a"
        if path == CREDS_PATH:
            if not st.role_available:
                return 404, "Not Found", "text/plain"
            return 200, role.role_name, "text/plain"
        if path.startswith(CREDS_PATH + "/"):
            name = path[len(CREDS_PATH) + 1:]
            if not st.role_available or name != role.role_name:
                return 404, "Not Found", "text/plain"
            with st.lock:
                st.counters["credential_requests"] += 1
            c = role.get(INSTANCE_ID)
            return 200, json.dumps({
                "Code": "Success",
                "LastUpdated": issued_creds.utc_iso(c["LastUpdated"]),
                "Type": "AWS-HMAC", "AccessKeyId": c["AccessKeyId"],
                "SecretAccessKey": c["SecretAccessKey"], "Token": c["Token"],
                "Expiration": issued_creds.utc_iso(c["Expiration"])}, indent=2), \
                "text/plain"
        if path == "/latest/meta-data/placement/region":
            return 200, st.region, "text/plain"
        if path == "/latest/meta-data/placement/availability-zone":
            return 200, az, "text/plain"
        if path == "/latest/meta-data/instance-id":
            return 200, INSTANCE_ID, "text/plain"
        if path == "/latest/dynamic/instance-identity/document":
            return 200, json.dumps({
                "accountId": role.account, "architecture": "x86_64",
                "availabilityZone": az, "imageId": "ami-0abcdef1234567890",
                "instanceId": INSTANCE_ID, "instanceType": "m5.large",
                "pendingTime": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%dT%H:%M:%SZ"),
                "privateIp": "10.0.0.10", "region": st.region, "version": "2017-09-30"},
                indent=2), "text/plain"
        return 404, "Not Found", "text/plain"

    def _admin(self, path):
        st = self.state
        try:
            spool, _, _, _ = ec.read_body(self)
            body = spool.read()
        except ec.BodyError:
            self.close_connection = True
            return self._send(400, ec.json_bytes({"error": "bad body"}), "application/json")
        m = self.command
        path = path.rstrip("/")
        try:
            if path == "/_imds/health" and m == "GET":
                out = {"ok": True, "role": st.role.role_arn, "imdsv1": st.imdsv1}
            elif path == "/_imds/stats" and m == "GET":
                with st.lock:
                    out = json.loads(json.dumps(st.counters))
                out["rotations"] = st.role.rotations
                out["pending_faults"] = st.faults.list()
            elif path == "/_imds/requests" and m in ("GET", "DELETE"):
                with st.lock:
                    if m == "DELETE":
                        st.requests = []
                    out = {"requests": [dict(r) for r in st.requests]}
            elif path == "/_imds/settings" and m == "POST":
                s = json.loads(body or b"{}")
                if "imdsv1" in s:
                    st.imdsv1 = bool(s["imdsv1"])
                if "role_available" in s:
                    st.role_available = bool(s["role_available"])
                out = {"imdsv1": st.imdsv1, "role_available": st.role_available}
            elif path == "/_imds/rotate" and m == "POST":
                st.role.rotate()
                out = {"ok": True}
            elif path == "/_imds/expire" and m == "POST":
                st.role.rotate()
                out = {"expired": st.role.writer.expire_all()}
            elif path == "/_imds/faults" and m == "GET":
                out = {"faults": st.faults.list()}
            elif path == "/_imds/faults" and m == "POST":
                spec = json.loads(body or b"{}")
                out = {"added": [st.faults.add(s) for s in
                                 (spec if isinstance(spec, list) else [spec])]}
            elif path == "/_imds/faults" and m == "DELETE":
                st.faults.clear()
                out = {"faults": []}
            elif path == "/_imds/reset" and m == "POST":
                st.faults.clear()
                st.reset()
                out = {"ok": True}
            else:
                return self._send(404, ec.json_bytes({"error": "no admin route %s %s"
                                                      % (m, path)}), "application/json")
        except (ValueError, TypeError, re.error) as e:
            return self._send(400, ec.json_bytes({"error": str(e)}), "application/json")
        self._send(200, ec.json_bytes(out), "application/json")


def main(argv=None):
    p = argparse.ArgumentParser(description="EC2 IMDSv2 stand-in")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--port-file", help="write the listening port here (atomic)")
    p.add_argument("--role-arn", required=True, help="the instance profile's role")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--allow-imdsv1", action="store_true",
                   help="answer GETs without a token (http-tokens optional)")
    p.add_argument("--lifetime", type=int, default=21600,
                   help="seconds from issue to Expiration")
    p.add_argument("--rotate-before", type=int, default=300,
                   help="new credentials this many seconds before Expiration")
    p.add_argument("--issued-file", help="write the credentials handed out here "
                   "(issued_creds.py)")
    args = p.parse_args(argv)
    if not re.match(r"^arn:aws:iam::\d{12}:role/", args.role_arn):
        p.error("--role-arn wants arn:aws:iam::ACCOUNT:role/NAME")
    Handler.state = State(args)
    srv = ec.LoopbackHTTPServer(args.host, args.port, Handler)
    port = srv.server_address[1]
    if args.port_file:
        ec.write_port_file(args.port_file, port)
    ec.log(PROG, "listening on %s:%d, role %s, IMDSv1 %s"
           % (srv.server_address[0], port, args.role_arn,
              "allowed" if args.allow_imdsv1 else "refused"))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


def _sigterm(signum, frame):
    raise KeyboardInterrupt()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _sigterm)
    main()
