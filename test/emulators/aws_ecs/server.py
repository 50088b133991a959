#!/usr/bin/python3
"""ECS container credentials endpoint stand-in (task role; also the EKS Pod
Identity agent's form) for the sfexport tests.

    server.py --port 0 --port-file F --role-arn arn:aws:iam::123456789012:role/NAME
              [--relative-uri /v2/credentials/ID] [--full-path /v1/credentials]
              [--auth-token TOKEN | --auth-token-file FILE] [--pod-identity]
              [--lifetime 21600] [--rotate-before 300]
              [--issued-file ISSUED.json] [--host 127.0.0.1]

How a client reaches it (AWS SDKs and Tools Reference Guide, "Container
credential provider", https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html;
"Amazon ECS task IAM role", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html;
"EKS Pod Identity", https://docs.aws.amazon.com/eks/latest/userguide/pod-id-how-it-works.html):
- AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: GET http://169.254.170.2<URI>;
  in tests the host is this stand-in, the path is --relative-uri.
- AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:PORT<--full-path>,
  with the Authorization header equal to AWS_CONTAINER_AUTHORIZATION_TOKEN or
  to the contents of AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (EKS Pod
  Identity: http://169.254.170.23/v1/credentials and a projected token file).
  --auth-token / --auth-token-file (re-read for every request, as the
  projected file is rotated) make the header required on --full-path.
Answer (200, application/json):
  {"AccessKeyId", "Expiration" (ISO 8601 UTC, Z), "RoleArn",
   "SecretAccessKey", "Token"}  (the task-role document in task-iam-roles.html);
  --pod-identity adds "AccountId" and leaves out RoleArn, as the Pod
  Identity agent answers.
Refusals: an unknown /v2/credentials/ID 400 {"code": "InvalidIdInRequest",
"message": "CredentialsV2Request: Credentials not found"} (amazon-ecs-agent,
agent/handlers/v1 credentials handler); other paths 404; methods other than
GET 405.  Authorization missing: 401, wrong: 403 (the agents' exact answers
are not documented; these are the stand-in's).
Credentials are the same until --rotate-before seconds before their
Expiration (issued_creds.RotatingRole) and are written to --issued-file for
sigv4_front.py and aws_sts.

Admin API (loopback; under /_ecs/):
  GET  /_ecs/health, /_ecs/stats ({"credential_requests", "by_status",
       "rotations", "pending_faults"})
  GET/DELETE /_ecs/requests   [{"method", "path", "status", "authorization":
       "none" | "valid" | "invalid"}]  (never the token)
  POST /_ecs/rotate, /_ecs/expire (as aws_imds), /_ecs/reset
  POST/GET/DELETE /_ecs/faults {"kind": "500"|"503"|"drop"|"delay", ...}
Tokens, keys and secrets are never logged.
"""

import argparse
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import emu_common as ec  # noqa: E402
import issued_creds  # noqa: E402

PROG = "aws_ecs"
FAULT_KINDS = ("500", "503", "drop", "delay")


class State:
    def __init__(self, args):
        self.role = issued_creds.RotatingRole(
            args.role_arn, args.lifetime, args.rotate_before,
            issued_creds.IssuedWriter(args.issued_file), PROG)
        self.relative_uri = args.relative_uri
        self.full_path = args.full_path
        self.auth_token = args.auth_token
        self.auth_token_file = args.auth_token_file
        self.pod_identity = args.pod_identity
        self.faults = ec.FaultQueue(FAULT_KINDS)
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        with self.lock:
            self.counters = {"credential_requests": 0, "by_status": {}}
            self.requests = []

    def record(self, method, path, status, auth):
        with self.lock:
            d = self.counters["by_status"]
            d[str(status)] = d.get(str(status), 0) + 1
            self.requests.append({"method": method, "path": path, "status": status,
                                  "authorization": auth})
            del self.requests[:-10000]

    def expected_token(self):
        if self.auth_token_file:
            try:
                with open(self.auth_token_file) as f:
                    return f.read().strip()
            except OSError:
                return None
        return self.auth_token


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sfexport-aws-ecs/1"
    state = None

    def log_request(self, code="-", size="-"):
        ec.log(PROG, "%s %s %s" % (self.command, urlsplit(self.path).path, code))

    def log_message(self, fmt, *args):
        if not fmt.startswith('"%s" %s %s'):
            ec.log(PROG, fmt % args)

    def _send(self, status, obj, extra=()):
        body = ec.json_bytes(obj)
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.log_request(status)

    def do_GET(self):
        self._handle()

    do_PUT = do_POST = do_DELETE = do_PATCH = do_GET

    def _handle(self):
        path = urlsplit(self.path).path
        if path.startswith("/_ecs/"):
            return self._admin(path)
        st = self.state
        try:
            ec.read_body(self)[0].close()
        except ec.BodyError:
            self.close_connection = True
            return self._send(400, {"code": "BadRequest", "message": "bad request body"})
        fault = st.faults.take(self.command, path)
        if fault:
            if fault["kind"] == "delay":
                time.sleep(fault.get("delay_ms", 1000) / 1000.0)
            elif fault["kind"] == "drop":
                self.close_connection = True
                return
            else:
                st.record(self.command, path, int(fault["kind"]), "-")
                return self._send(int(fault["kind"]), {"code": "InternalServerError",
                                                       "message": "injected fault"})
        auth = "none" if self.headers.get("Authorization") is None else "invalid"
        known = path in (st.relative_uri, st.full_path)
        if not known:
            st.record(self.command, path, 400 if path.startswith("/v2/credentials/") else 404,
                      auth)
            if path.startswith("/v2/credentials/"):
                return self._send(400, {"code": "InvalidIdInRequest",
                                        "message": "CredentialsV2Request: Credentials "
                                        "not found"})
            return self._send(404, {"code": "NotFound", "message": "Not Found"})
        if self.command != "GET":
            st.record(self.command, path, 405, auth)
            return self._send(405, {"code": "MethodNotAllowed",
                                    "message": "Method Not Allowed"}, [("Allow", "GET")])
        if path == st.full_path and (st.auth_token or st.auth_token_file):
            want = st.expected_token()
            got = self.headers.get("Authorization")
            if got is None:
                st.record(self.command, path, 401, auth)
                return self._send(401, {"code": "AccessDenied",
                                        "message": "Authorization header is missing"})
            if not want or not hmac.compare_digest(got.encode(), want.encode()):
                st.record(self.command, path, 403, auth)
                return self._send(403, {"code": "AccessDenied",
                                        "message": "Authorization token is not valid"})
            auth = "valid"
        with st.lock:
            st.counters["credential_requests"] += 1
        c = st.role.get("ecs-task")
        out = {"AccessKeyId": c["AccessKeyId"],
               "Expiration": issued_creds.utc_iso(c["Expiration"]),
               "RoleArn": st.role.role_arn,
               "SecretAccessKey": c["SecretAccessKey"], "Token": c["Token"]}
        if st.pod_identity:
            del out["RoleArn"]
            out["AccountId"] = st.role.account
        st.record(self.command, path, 200, auth)
        self._send(200, out)

    def _admin(self, path):
        st = self.state
        try:
            spool, _, _, _ = ec.read_body(self)
            body = spool.read()
        except ec.BodyError:
            self.close_connection = True
            return self._send(400, {"error": "bad body"})
        m = self.command
        path = path.rstrip("/")
        try:
            if path == "/_ecs/health" and m == "GET":
                out = {"ok": True, "role": st.role.role_arn}
            elif path == "/_ecs/stats" and m == "GET":
                with st.lock:
                    out = json.loads(json.dumps(st.counters))
                out["rotations"] = st.role.rotations
                out["pending_faults"] = st.faults.list()
            elif path == "/_ecs/requests" and m in ("GET", "DELETE"):
                with st.lock:
                    if m == "DELETE":
                        st.requests = []
                    out = {"requests": [dict(r) for r in st.requests]}
            elif path == "/_ecs/rotate" and m == "POST":
                st.role.rotate()
                out = {"ok": True}
            elif path == "/_ecs/expire" and m == "POST":
                st.role.rotate()
                out = {"expired": st.role.writer.expire_all()}
            elif path == "/_ecs/faults" and m == "GET":
                out = {"faults": st.faults.list()}
            elif path == "/_ecs/faults" and m == "POST":
                spec = json.loads(body or b"{}")
                out = {"added": [st.faults.add(s) for s in
                                 (spec if isinstance(spec, list) else [spec])]}
            elif path == "/_ecs/faults" and m == "DELETE":
                st.faults.clear()
                out = {"faults": []}
            elif path == "/_ecs/reset" and m == "POST":
                st.faults.clear()
                st.reset()
                out = {"ok": True}
            else:
                return self._send(404, {"error": "no admin route %s %s" % (m, path)})
        except (ValueError, TypeError, re.error) as e:
            return self._send(400, {"error": str(e)})
        self._send(200, out)


def main(argv=None):
    p = argparse.ArgumentParser(description="ECS container credentials stand-in")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--port-file", help="write the listening port here (atomic)")
    p.add_argument("--role-arn", required=True, help="the task role")
    p.add_argument("--relative-uri", help="path of AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
    p.add_argument("--full-path", help="path of AWS_CONTAINER_CREDENTIALS_FULL_URI")
    p.add_argument("--auth-token", help="Authorization value required on --full-path")
    p.add_argument("--auth-token-file", help="file holding it (re-read every request)")
    p.add_argument("--pod-identity", action="store_true",
                   help="answer as the EKS Pod Identity agent (AccountId, no RoleArn)")
    p.add_argument("--lifetime", type=int, default=21600,
                   help="seconds from issue to Expiration")
    p.add_argument("--rotate-before", type=int, default=300,
                   help="new credentials this many seconds before Expiration")
    p.add_argument("--issued-file", help="write the credentials handed out here "
                   "(issued_creds.py)")
    args = p.parse_args(argv)
    if not args.relative_uri and not args.full_path:
        p.error("give --relative-uri or --full-path (or both)")
    if args.auth_token and args.auth_token_file:
        p.error("--auth-token and --auth-token-file exclude each other")
    if not re.match(r"^arn:aws:iam::\d{12}:role/", args.role_arn):
        p.error("--role-arn wants arn:aws:iam::ACCOUNT:role/NAME")
    for path in (args.relative_uri, args.full_path):
        if path and not path.startswith("/"):
            p.error("paths start with /")
    Handler.state = State(args)
    srv = ec.LoopbackHTTPServer(args.host, args.port, Handler)
    port = srv.server_address[1]
    if args.port_file:
        ec.write_port_file(args.port_file, port)
    ec.log(PROG, "listening on %s:%d, role %s" % (srv.server_address[0], port,
                                                   args.role_arn))
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
