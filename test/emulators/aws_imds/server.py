#!/usr/bin/python3
"""EC2 instance metadata service (IMDSv2) stand-in for the sfexport tests.

    server.py --port 0 --port-file F --role-arn arn:aws:iam::123456789012:role/NAME
              [--region eu-west-1] [--allow-imdsv1] [--lifetime 21600]
              [--rotate-before 300] [--issued-file ISSUED.json] [--host 127.0.0.1]

Point a client at it with AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT.
The role's credentials are written to --issued-file (issued_creds.py), which
s3_front --issued-credentials and aws_sts --issued-credentials read.

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

Admin API under /_imds/, never metadata (cred_common.py: health, stats with
"token_requests", "credential_requests", "rotations", requests
[{"method", "path", "status", "token": "none" | "valid" | "invalid"}] --
never the token itself --, faults, reset), and:
  POST /_imds/settings  {"imdsv1": bool, "role_available": bool}
       (role_available false: the role list and NAME answer 404, as on an
       instance without a profile)
  POST /_imds/rotate    the next credentials request gets new credentials
  POST /_imds/expire    everything issued so far expires now (at the storage
                        stand-ins) and the next request gets new ones
Tokens, keys and secrets are never logged.
"""

import argparse
import datetime
import json
import os
import re
import secrets
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import cred_common  # noqa: E402
import issued_creds  # noqa: E402

TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aws-ec2-metadata-token"
MAX_TTL = 21600
CREDS_PATH = "/latest/meta-data/iam/security-credentials"
INSTANCE_ID = "i-0123456789abcdef0"


class State(cred_common.StandIn):
    def __init__(self, args):
        self.role = issued_creds.RotatingRole(
            args.role_arn, args.lifetime, args.rotate_before,
            issued_creds.IssuedWriter(args.issued_file), "aws_imds")
        self.region = args.region
        self.imdsv1 = args.allow_imdsv1
        self.role_available = True
        self.tokens = {}   # sha256(token) -> expiry
        super().__init__()

    def own_counters(self):
        return {"token_requests": 0, "credential_requests": 0}

    def stats(self):
        return dict(super().stats(), rotations=self.role.rotations)

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

    def settings(self, body):
        s = json.loads(body or b"{}")
        if "imdsv1" in s:
            self.imdsv1 = bool(s["imdsv1"])
        if "role_available" in s:
            self.role_available = bool(s["role_available"])
        return {"imdsv1": self.imdsv1, "role_available": self.role_available}


class Handler(cred_common.Handler):
    server_version = "EC2ws"
    PROG = "aws_imds"
    ADMIN = "/_imds/"

    def answer(self, path, status, body, token="-", extra=()):
        self.state.record({"method": self.command, "path": path, "status": status,
                           "token": token})
        self.send_body(status, body, "text/plain", extra)

    def service(self, path, body, fault):
        st = self.state
        if fault:
            return self.answer(path, int(fault["kind"]), "Service Unavailable"
                               if fault["kind"] == "503" else "Internal Server Error")
        if path == "/latest/api/token":
            return self._token(path)
        if self.command not in ("GET", "HEAD"):
            return self.answer(path, 405, "Method Not Allowed",
                               extra=[("Allow", "GET, HEAD")])
        tstate = st.token_state(self.headers.get(TOKEN_HEADER))
        if tstate == "invalid" or (tstate == "none" and not st.imdsv1):
            return self.answer(path, 401, "Unauthorized", tstate)
        status, body = self._metadata(path.rstrip("/") or "/")
        self.answer(path, status, body, tstate)

    def _token(self, path):
        if self.command != "PUT":
            return self.answer(path, 405, "Method Not Allowed", extra=[("Allow", "PUT")])
        if self.headers.get("X-Forwarded-For") is not None:
            return self.answer(path, 403, "Forbidden")
        raw = self.headers.get(TTL_HEADER)
        if raw is None or not re.fullmatch(r"\d+", raw.strip()) \
                or not 1 <= int(raw) <= MAX_TTL:
            return self.answer(path, 400, "Bad Request")
        ttl = int(raw)
        self.answer(path, 200, self.state.new_token(ttl), extra=[(TTL_HEADER, str(ttl))])

    def _metadata(self, path):
        st = self.state
        role = st.role
        az = st.region + "a"
        if path == CREDS_PATH:
            return (200, role.role_name) if st.role_available else (404, "Not Found")
        if path.startswith(CREDS_PATH + "/"):
            if not st.role_available or path[len(CREDS_PATH) + 1:] != role.role_name:
                return 404, "Not Found"
            st.count("credential_requests")
            c = role.get(INSTANCE_ID)
            return 200, json.dumps({
                "Code": "Success",
                "LastUpdated": issued_creds.utc_iso(c["LastUpdated"]),
                "Type": "AWS-HMAC", "AccessKeyId": c["AccessKeyId"],
                "SecretAccessKey": c["SecretAccessKey"], "Token": c["Token"],
                "Expiration": issued_creds.utc_iso(c["Expiration"])}, indent=2)
        if path == "/latest/meta-data/placement/region":
            return 200, st.region
        if path == "/latest/meta-data/placement/availability-zone":
            return 200, az
        if path == "/latest/meta-data/instance-id":
            return 200, INSTANCE_ID
        if path == "/latest/dynamic/instance-identity/document":
            return 200, json.dumps({
                "accountId": role.account, "architecture": "x86_64",
                "availabilityZone": az, "imageId": "ami-0abcdef1234567890",
                "instanceId": INSTANCE_ID, "instanceType": "m5.large",
                "pendingTime": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%dT%H:%M:%SZ"),
                "privateIp": "10.0.0.10", "region": st.region, "version": "2017-09-30"},
                indent=2)
        return 404, "Not Found"

    def health(self):
        return {"ok": True, "role": self.state.role.role_arn, "imdsv1": self.state.imdsv1}

    def admin_routes(self):
        role = self.state.role
        return {("POST", "settings"): self.state.settings,
                ("POST", "rotate"): lambda b: role.rotate() or {"ok": True},
                ("POST", "expire"): lambda b: role.rotate() or
                {"expired": role.writer.expire_all()}}


def main(argv=None):
    p = argparse.ArgumentParser(description="EC2 IMDSv2 stand-in")
    cred_common.add_common_args(p, "write the credentials handed out here "
                                "(issued_creds.py)")
    p.add_argument("--role-arn", required=True, help="the instance profile's role")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--allow-imdsv1", action="store_true",
                   help="answer GETs without a token (http-tokens optional)")
    p.add_argument("--lifetime", type=int, default=21600,
                   help="seconds from issue to Expiration")
    p.add_argument("--rotate-before", type=int, default=300,
                   help="new credentials this many seconds before Expiration")
    args = p.parse_args(argv)
    if not re.match(r"^arn:aws:iam::\d{12}:role/", args.role_arn):
        p.error("--role-arn wants arn:aws:iam::ACCOUNT:role/NAME")
    Handler.state = State(args)
    cred_common.serve(Handler, args, "role %s, IMDSv1 %s" % (
        args.role_arn, "allowed" if args.allow_imdsv1 else "refused"))


if __name__ == "__main__":
    main()
