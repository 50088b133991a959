"""Unit tests of the IMDSv2 stand-in: the raw protocol, botocore's own
instance-metadata fetchers (botocore/utils.py InstanceMetadataFetcher and
InstanceMetadataRegionFetcher, as the SDK's default chain uses them), and end
to end: the role's credentials work at s3rver behind s3_front and can
call AssumeRole at the STS stand-in (role chaining).

    cd test/emulators/aws_imds && /usr/bin/python3 -m unittest -q test_aws_imds
"""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import botocore.session  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from botocore.utils import (InstanceMetadataFetcher,  # noqa: E402
                            InstanceMetadataRegionFetcher)

import cred_testlib as tl  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/ec2-exporter"
TARGET = "arn:aws:iam::123456789012:role/loader"
CREDS = "/latest/meta-data/iam/security-credentials/"


class ImdsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        warnings.simplefilter("ignore", ResourceWarning)
        cls.tmp = tempfile.mkdtemp(prefix="imds-")
        cls.issued = os.path.join(cls.tmp, "imds-issued.json")
        cls.imds = tl.start(cls.tmp, "aws_imds", "imds", [
            "--role-arn", ROLE, "--region", tl.REGION,
            "--issued-file", cls.issued])
        cls.port = cls.imds.port
        cls.base = "http://127.0.0.1:%d/" % cls.port
        cls.s3rver, cls.front = tl.start_s3(cls.tmp, [cls.issued])
        cls.secrets = []

    @classmethod
    def tearDownClass(cls):
        cls.imds.stop()
        cls.front.stop()
        cls.s3rver.stop()
        log = tl.read_log(cls.tmp, "imds") + tl.read_log(cls.tmp, "front")
        for s in cls.secrets:
            assert s.encode() not in log, "a token or secret reached a log"
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.req("POST", "/_imds/reset")
        self.req("POST", "/_imds/settings", json.dumps({"imdsv1": False,
                                                       "role_available": True}).encode())

    def req(self, method, path, body=b"", headers=None):
        return tl.http_req(self.port, method, path, body, headers)

    def token(self, ttl="60"):
        st, h, body = self.req("PUT", "/latest/api/token",
                               headers={"X-aws-ec2-metadata-token-ttl-seconds": ttl})
        self.assertEqual(st, 200, body)
        self.assertEqual(h["x-aws-ec2-metadata-token-ttl-seconds"], ttl)
        self.secrets.append(body.decode())
        return body.decode()

    def get(self, path, tok):
        return self.req("GET", path, headers={"X-aws-ec2-metadata-token": tok}
                        if tok else {})

    def creds(self, tok=None):
        tok = tok or self.token()
        st, _, name = self.get(CREDS, tok)
        self.assertEqual((st, name), (200, b"ec2-exporter"))
        st, _, body = self.get(CREDS + "ec2-exporter", tok)
        self.assertEqual(st, 200, body)
        c = json.loads(body)
        self.secrets += [c["SecretAccessKey"], c["Token"]]
        return c

    # -- tokens
    def test_token_ttl_rules(self):
        for bad in (None, "0", "21601", "abc", "-5", "1.5", ""):
            h = {} if bad is None else {"X-aws-ec2-metadata-token-ttl-seconds": bad}
            st, _, _ = self.req("PUT", "/latest/api/token", headers=h)
            self.assertEqual(st, 400, bad)
        self.token("1")
        self.token("21600")
        st, _, _ = self.req("PUT", "/latest/api/token",
                            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60",
                                     "X-Forwarded-For": "203.0.113.7"})
        self.assertEqual(st, 403)
        st, h, _ = self.req("GET", "/latest/api/token")
        self.assertEqual((st, h.get("allow")), (405, "PUT"))

    def test_token_required_and_expiry(self):
        st, _, _ = self.get(CREDS, None)
        self.assertEqual(st, 401)                   # IMDSv2 required
        st, _, _ = self.get(CREDS, "AQAEAnot-a-token")
        self.assertEqual(st, 401)
        tok = self.token("1")
        self.assertEqual(self.get(CREDS, tok)[0], 200)
        time.sleep(1.2)
        self.assertEqual(self.get(CREDS, tok)[0], 401)   # past its TTL
        reqs = json.loads(self.req("GET", "/_imds/requests")[2])["requests"]
        self.assertEqual([(r["status"], r["token"]) for r in reqs if r["method"] == "GET"],
                         [(401, "none"), (401, "invalid"), (200, "valid"), (401, "invalid")])

    def test_imdsv1_optional(self):
        self.req("POST", "/_imds/settings", json.dumps({"imdsv1": True}).encode())
        st, _, body = self.get(CREDS, None)
        self.assertEqual((st, body), (200, b"ec2-exporter"))
        # an invalid token is refused even when IMDSv1 is allowed
        self.assertEqual(self.get(CREDS, "AQAEAbogus")[0], 401)

    def test_credentials_document(self):
        c = self.creds()
        self.assertEqual(set(c), {"Code", "LastUpdated", "Type", "AccessKeyId",
                                  "SecretAccessKey", "Token", "Expiration"})
        self.assertEqual((c["Code"], c["Type"]), ("Success", "AWS-HMAC"))
        self.assertRegex(c["Expiration"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertTrue(c["AccessKeyId"].startswith("ASIA"))
        # the same credentials until they near expiry
        self.assertEqual(self.creds()["AccessKeyId"], c["AccessKeyId"])
        tok = self.token()
        self.assertEqual(self.get(CREDS + "other-role", tok)[0], 404)
        self.assertEqual(self.get("/latest/meta-data/nothing-here", tok)[0], 404)
        self.assertEqual(self.req("POST", CREDS, headers={
            "X-aws-ec2-metadata-token": tok})[0], 405)
        self.req("POST", "/_imds/settings", json.dumps({"role_available": False}).encode())
        self.assertEqual(self.get(CREDS, tok)[0], 404)

    def test_region_paths(self):
        tok = self.token()
        self.assertEqual(self.get("/latest/meta-data/placement/region", tok)[2],
                         tl.REGION.encode())
        doc = json.loads(self.get("/latest/dynamic/instance-identity/document", tok)[2])
        self.assertEqual((doc["region"], doc["accountId"]), (tl.REGION, "123456789012"))
        region = InstanceMetadataRegionFetcher(timeout=5, num_attempts=1,
                                               base_url=self.base).retrieve_region()
        self.assertEqual(region, tl.REGION)

    def test_botocore_fetcher_and_s3(self):
        got = InstanceMetadataFetcher(timeout=5, num_attempts=1,
                                      base_url=self.base).retrieve_iam_role_credentials()
        self.assertEqual(got["role_name"], "ec2-exporter")
        self.secrets += [got["secret_key"], got["token"]]
        s3 = tl.s3_client("http://127.0.0.1:%d" % self.front.port, got["access_key"],
                          got["secret_key"], got["token"])
        s3.put_object(Bucket=tl.BUCKET, Key="imds/1", Body=b"i")
        self.assertEqual(s3.get_object(Bucket=tl.BUCKET, Key="imds/1")["Body"].read(), b"i")
        # botocore asked for a token first, then used it
        reqs = json.loads(self.req("GET", "/_imds/requests")[2])["requests"]
        self.assertEqual(reqs[0]["method"], "PUT")
        self.assertTrue(all(r["token"] == "valid" for r in reqs[1:]))

    def test_expire_and_rotate(self):
        old = self.creds()
        st, _, body = self.req("POST", "/_imds/expire")
        self.assertEqual(st, 200)
        s3 = tl.s3_client("http://127.0.0.1:%d" % self.front.port, old["AccessKeyId"],
                          old["SecretAccessKey"], old["Token"])
        with self.assertRaises(ClientError) as cm:
            s3.put_object(Bucket=tl.BUCKET, Key="imds/old", Body=b"x")
        self.assertEqual(cm.exception.response["Error"]["Code"], "ExpiredToken")
        new = self.creds()
        self.assertNotEqual(new["AccessKeyId"], old["AccessKeyId"])
        tl.s3_client("http://127.0.0.1:%d" % self.front.port, new["AccessKeyId"],
                     new["SecretAccessKey"], new["Token"]).put_object(
            Bucket=tl.BUCKET, Key="imds/new", Body=b"y")

    def test_rotation_before_expiration(self):
        tmp = tempfile.mkdtemp(prefix="imds-rot-", dir=self.tmp)
        p = tl.start(tmp, "aws_imds", "imds2", [
            "--role-arn", ROLE, "--lifetime", "4", "--rotate-before", "2"])
        try:
            def fetch():
                st, _, tok = tl.http_req(p.port, "PUT", "/latest/api/token", headers={
                    "X-aws-ec2-metadata-token-ttl-seconds": "30"})
                st, _, body = tl.http_req(p.port, "GET", CREDS + "ec2-exporter",
                                          headers={"X-aws-ec2-metadata-token": tok.decode()})
                c = json.loads(body)
                self.secrets += [tok.decode(), c["SecretAccessKey"], c["Token"]]
                return c
            first = fetch()
            self.assertEqual(fetch()["AccessKeyId"], first["AccessKeyId"])
            time.sleep(2.2)   # now within 2 s of Expiration: new ones
            second = fetch()
            self.assertNotEqual(second["AccessKeyId"], first["AccessKeyId"])
            self.assertGreater(second["Expiration"], first["Expiration"])
        finally:
            p.stop()

    def test_faults(self):
        self.req("POST", "/_imds/faults", json.dumps({"kind": "503", "method": "PUT"})
                 .encode())
        st, _, _ = self.req("PUT", "/latest/api/token",
                            headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        self.assertEqual(st, 503)
        self.token()

    def test_role_chaining_at_sts(self):
        """Instance-profile credentials call AssumeRole (aws_role_arn)."""
        cfg = os.path.join(self.tmp, "sts.json")
        with open(cfg, "w") as f:
            json.dump({"roles": [{"arn": TARGET, "trust_policy": {
                "Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"AWS": ROLE},
                     "Action": "sts:AssumeRole"}]}}]}, f)
        sts = tl.start(self.tmp, "aws_sts", "sts", [
            "--config", cfg, "--issued-credentials", self.issued])
        try:
            c = self.creds()
            client = botocore.session.get_session().create_client(
                "sts", endpoint_url="http://127.0.0.1:%d" % sts.port,
                region_name="us-east-1", aws_access_key_id=c["AccessKeyId"],
                aws_secret_access_key=c["SecretAccessKey"], aws_session_token=c["Token"],
                config=Config(retries={"total_max_attempts": 1}))
            r = client.assume_role(RoleArn=TARGET, RoleSessionName="sfexport")
            self.secrets += [r["Credentials"]["SecretAccessKey"]]
            self.assertIn("assumed-role/loader/sfexport", r["AssumedRoleUser"]["Arn"])
            with self.assertRaises(ClientError) as cm:   # role chaining: 1 hour at most
                client.assume_role(RoleArn=TARGET, RoleSessionName="long",
                                   DurationSeconds=7200)
            self.assertEqual(cm.exception.response["Error"]["Code"], "ValidationError")
        finally:
            sts.stop()


if __name__ == "__main__":
    unittest.main()
