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
s3_front and aws_sts.

Admin API under /_ecs/ (cred_common.py: health, stats with
"credential_requests" and "rotations", requests [{"method", "path",
"status", "authorization": "none" | "valid" | "invalid"}] -- never the
token --, faults, reset), and:
  POST /_ecs/rotate    the next request gets new credentials
  POST /_ecs/expire    everything issued so far expires now (at the storage
                       stand-ins) and the next request gets new credentials
Tokens, keys and secrets are never logged.
"""

import argparse
import hmac
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import cred_common  # noqa: E402
import issued_creds  # noqa: E402


class State(cred_common.StandIn):
    def __init__(self, args):
        self.role = issued_creds.RotatingRole(
            args.role_arn, args.lifetime, args.rotate_before,
            issued_creds.IssuedWriter(args.issued_file), "aws_ecs")
        self.relative_uri = args.relative_uri
        self.full_path = args.full_path
        self.auth_token = args.auth_token
        self.auth_token_file = args.auth_token_file
        self.pod_identity = args.pod_identity
        super().__init__()

    def own_counters(self):
        return {"credential_requests": 0}

    def stats(self):
        return dict(super().stats(), rotations=self.role.rotations)

    def expected_token(self):
        if self.auth_token_file:
            try:
                with open(self.auth_token_file) as f:
                    return f.read().strip()
            except OSError:
                return None
        return self.auth_token


class Handler(cred_common.Handler):
    server_version = "sfexport-aws-ecs/1"
    PROG = "aws_ecs"
    ADMIN = "/_ecs/"

    def service(self, path, body, fault):
        st = self.state
        auth = "none" if self.headers.get("Authorization") is None else "invalid"

        def answer(status, obj, code=None, extra=()):
            st.record({"method": self.command, "path": path, "status": status,
                       "code": code, "authorization": auth})
            self.send_json(status, obj, extra)
        if fault:
            return answer(int(fault["kind"]), {"code": "InternalServerError",
                                               "message": "injected fault"}, "fault")
        if path not in (st.relative_uri, st.full_path):
            if path.startswith("/v2/credentials/"):
                return answer(400, {"code": "InvalidIdInRequest", "message":
                                    "CredentialsV2Request: Credentials not found"},
                              "InvalidIdInRequest")
            return answer(404, {"code": "NotFound", "message": "Not Found"}, "NotFound")
        if self.command != "GET":
            return answer(405, {"code": "MethodNotAllowed", "message":
                                "Method Not Allowed"}, "MethodNotAllowed", [("Allow", "GET")])
        if path == st.full_path and (st.auth_token or st.auth_token_file):
            want = st.expected_token()
            got = self.headers.get("Authorization")
            if got is None:
                return answer(401, {"code": "AccessDenied", "message":
                                    "Authorization header is missing"}, "AccessDenied")
            if not want or not hmac.compare_digest(got.encode(), want.encode()):
                return answer(403, {"code": "AccessDenied", "message":
                                    "Authorization token is not valid"}, "AccessDenied")
            auth = "valid"
        st.count("credential_requests")
        c = st.role.get("ecs-task")
        out = {"AccessKeyId": c["AccessKeyId"],
               "Expiration": issued_creds.utc_iso(c["Expiration"]),
               "RoleArn": st.role.role_arn,
               "SecretAccessKey": c["SecretAccessKey"], "Token": c["Token"]}
        if st.pod_identity:
            del out["RoleArn"]
            out["AccountId"] = st.role.account
        answer(200, out)

    def health(self):
        return {"ok": True, "role": self.state.role.role_arn}

    def admin_routes(self):
        role = self.state.role
        return {("POST", "rotate"): lambda b: role.rotate() or {"ok": True},
                ("POST", "expire"): lambda b: role.rotate() or
                {"expired": role.writer.expire_all()}}


def main(argv=None):
    p = argparse.ArgumentParser(description="ECS container credentials stand-in")
    cred_common.add_common_args(p, "write the credentials handed out here "
                                "(issued_creds.py)")
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
    cred_common.serve(Handler, args, "role %s" % args.role_arn)


if __name__ == "__main__":
    main()
