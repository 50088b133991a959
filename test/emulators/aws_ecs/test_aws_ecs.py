"""Unit tests of the ECS container credentials stand-in: the raw protocol,
botocore's own ContainerProvider (AWS_CONTAINER_CREDENTIALS_FULL_URI +
AWS_CONTAINER_AUTHORIZATION_TOKEN, botocore/credentials.py), and end to end
at s3rver behind s3_front.

    cd test/emulators/aws_ecs && /usr/bin/python3 -m unittest -q test_aws_ecs
"""

import json
import os
import shutil
import sys
import tempfile
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from botocore.credentials import ContainerProvider  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

import cred_testlib as tl  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/ecs-task"
REL = "/v2/credentials/6c8a8c2e-0f3b-4d55-9a0e-3a1f9f0e2b71"
TOKEN = "ecs-auth-token-1"


class EcsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        warnings.simplefilter("ignore", ResourceWarning)
        cls.tmp = tempfile.mkdtemp(prefix="ecs-")
        cls.issued = os.path.join(cls.tmp, "ecs-issued.json")
        cls.ecs = tl.start(cls.tmp, "aws_ecs", "ecs", [
            "--role-arn", ROLE, "--relative-uri", REL,
            "--full-path", "/v1/credentials", "--auth-token", TOKEN,
            "--issued-file", cls.issued])
        cls.port = cls.ecs.port
        cls.s3rver, cls.front = tl.start_s3(cls.tmp, [cls.issued])
        cls.secrets = [TOKEN]

    @classmethod
    def tearDownClass(cls):
        cls.ecs.stop()
        cls.front.stop()
        cls.s3rver.stop()
        log = tl.read_log(cls.tmp, "ecs") + tl.read_log(cls.tmp, "front")
        for s in cls.secrets:
            assert s.encode() not in log, "a token or secret reached a log"
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        tl.http_req(self.port, "POST", "/_ecs/reset")

    def get(self, path, headers=None, method="GET"):
        st, h, body = tl.http_req(self.port, method, path, headers=headers)
        return st, json.loads(body)

    def test_relative_uri(self):
        st, c = self.get(REL)
        self.assertEqual(st, 200, c)
        self.secrets += [c["SecretAccessKey"], c["Token"]]
        self.assertEqual(set(c), {"AccessKeyId", "Expiration", "RoleArn",
                                  "SecretAccessKey", "Token"})
        self.assertEqual(c["RoleArn"], ROLE)
        self.assertRegex(c["Expiration"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.get(REL)[1]["AccessKeyId"], c["AccessKeyId"])  # cached
        s3 = tl.s3_client("http://127.0.0.1:%d" % self.front.port, c["AccessKeyId"],
                          c["SecretAccessKey"], c["Token"])
        s3.put_object(Bucket=tl.BUCKET, Key="ecs/1", Body=b"e")
        self.assertEqual(s3.get_object(Bucket=tl.BUCKET, Key="ecs/1")["Body"].read(), b"e")

    def test_refusals(self):
        st, body = self.get("/v2/credentials/00000000-0000-0000-0000-000000000000")
        self.assertEqual((st, body["code"]), (400, "InvalidIdInRequest"))
        self.assertEqual(self.get("/elsewhere")[0], 404)
        self.assertEqual(self.get(REL, method="POST")[0], 405)
        self.assertEqual(self.get("/v1/credentials")[0], 401)
        self.assertEqual(self.get("/v1/credentials", {"Authorization": "wrong"})[0], 403)
        self.assertEqual(self.get("/v1/credentials",
                                  {"Authorization": "Bearer " + TOKEN})[0], 403)
        st, c = self.get("/v1/credentials", {"Authorization": TOKEN})
        self.assertEqual(st, 200)
        self.secrets += [c["SecretAccessKey"], c["Token"]]
        reqs = json.loads(tl.http_req(self.port, "GET", "/_ecs/requests")[2])["requests"]
        self.assertEqual([(r["status"], r["authorization"]) for r in reqs[3:]],
                         [(401, "none"), (403, "invalid"), (403, "invalid"), (200, "valid")])

    def test_botocore_container_provider(self):
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI":
               "http://127.0.0.1:%d/v1/credentials" % self.port,
               "AWS_CONTAINER_AUTHORIZATION_TOKEN": TOKEN}
        creds = ContainerProvider(environ=env).load()
        self.assertEqual(creds.method, "container-role")
        frozen = creds.get_frozen_credentials()
        self.secrets += [frozen.secret_key, frozen.token]
        s3 = tl.s3_client("http://127.0.0.1:%d" % self.front.port, frozen.access_key,
                          frozen.secret_key, frozen.token)
        s3.put_object(Bucket=tl.BUCKET, Key="ecs/botocore", Body=b"b")

    def test_expire_and_token_file(self):
        st, old = self.get(REL)
        self.secrets += [old["SecretAccessKey"], old["Token"]]
        tl.http_req(self.port, "POST", "/_ecs/expire")
        s3 = tl.s3_client("http://127.0.0.1:%d" % self.front.port, old["AccessKeyId"],
                          old["SecretAccessKey"], old["Token"])
        with self.assertRaises(ClientError) as cm:
            s3.put_object(Bucket=tl.BUCKET, Key="ecs/old", Body=b"x")
        self.assertEqual(cm.exception.response["Error"]["Code"], "ExpiredToken")
        self.assertNotEqual(self.get(REL)[1]["AccessKeyId"], old["AccessKeyId"])
        # Pod Identity form: the token file is re-read, so a rotated token counts
        tmp = tempfile.mkdtemp(prefix="ecs-pod-", dir=self.tmp)
        tfile = os.path.join(tmp, "eks-pod-identity-token")
        with open(tfile, "w") as f:
            f.write("pod-token-1\n")
        p = tl.start(tmp, "aws_ecs", "pod", [
            "--role-arn", ROLE, "--full-path", "/v1/credentials",
            "--auth-token-file", tfile, "--pod-identity"])
        try:
            def call(tok):
                st, _, body = tl.http_req(p.port, "GET", "/v1/credentials",
                                          headers={"Authorization": tok})
                return st, json.loads(body)
            st, c = call("pod-token-1")
            self.assertEqual(st, 200)
            self.secrets += [c["SecretAccessKey"], c["Token"]]
            self.assertEqual((c["AccountId"], "RoleArn" in c), ("123456789012", False))
            with open(tfile, "w") as f:
                f.write("pod-token-2\n")
            self.assertEqual(call("pod-token-1")[0], 403)
            self.assertEqual(call("pod-token-2")[0], 200)
        finally:
            p.stop()
        log = tl.read_log(tmp, "pod")
        for s in ("pod-token-1", "pod-token-2", c["SecretAccessKey"]):
            self.assertNotIn(s.encode(), log)


if __name__ == "__main__":
    unittest.main()
