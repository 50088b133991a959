"""Credentials issued at run time (issued_creds.py) and the storage stand-ins
that accept them: s3_front --issued-credentials (s3rver behind it knows
only the front's own key) and gcs --issued-tokens.

    cd test/emulators/lib && /usr/bin/python3 -m unittest -q test_issued_creds
"""

import json
import os
import shutil
import stat
import sys
import tempfile
import time
import unittest
import urllib.request
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from botocore.exceptions import ClientError  # noqa: E402

import cred_testlib as tl  # noqa: E402
import issued_creds  # noqa: E402

ROLE = "arn:aws:iam::123456789012:role/exporter"
ARN = "arn:aws:sts::123456789012:assumed-role/exporter/s1"
AK, SK, TOK = "ASIAISSUEDTEST0001", "issued-secret/1+x", "issued-session-token-1"
SA = "exporter@proj.iam.gserviceaccount.com"
CP = "https://www.googleapis.com/auth/cloud-platform"
RO = "https://www.googleapis.com/auth/devstorage.read_only"


class WriterReaderTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="issued-")
        self.path = os.path.join(self.tmp, "issued.json")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_round_trip_and_mode(self):
        w = issued_creds.IssuedWriter(self.path)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)
        r = issued_creds.IssuedReader([self.path, os.path.join(self.tmp, "absent.json")])
        self.assertIsNone(r.aws(AK))
        w.add_aws(AK, SK, TOK, time.time() + 900, ARN, ROLE, "test")
        rec = r.aws(AK)
        self.assertEqual((rec["SecretAccessKey"], rec["SessionToken"], rec["RoleArn"]),
                         (SK, TOK, ROLE))
        self.assertFalse(r.expired(rec))
        w.add_gcp("ya29.tok", time.time() + 60, SA, [CP], "test")
        email, exp, scopes = r.gcp("ya29.tok")
        self.assertEqual((email, scopes), (SA, frozenset([CP])))
        self.assertIsNone(r.gcp("ya29.other"))
        # bearer tokens are stored as hashes only
        with open(self.path) as f:
            self.assertNotIn("ya29.tok", f.read())

    def test_expire_all_and_prune(self):
        w = issued_creds.IssuedWriter(self.path)
        r = issued_creds.IssuedReader([self.path])
        w.add_aws(AK, SK, TOK, time.time() + 900, ARN, ROLE, "test")
        self.assertEqual(w.expire_all(), 1)
        self.assertTrue(r.expired(r.aws(AK)))
        # long expired records are dropped at the next write
        w.add_aws("ASIAOLD", SK, TOK, time.time() - issued_creds.KEEP_EXPIRED - 5,
                  ARN, ROLE, "test")
        w.add_aws("ASIANEW", SK, TOK, time.time() + 900, ARN, ROLE, "test")
        self.assertIsNone(r.aws("ASIAOLD"))
        self.assertIsNotNone(r.aws(AK))
        self.assertIsNotNone(r.aws("ASIANEW"))


class FrontIssuedTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        warnings.simplefilter("ignore", ResourceWarning)
        cls.tmp = tempfile.mkdtemp(prefix="issued-front-")
        cls.path = os.path.join(cls.tmp, "issued.json")   # written after start
        pol = os.path.join(cls.tmp, "role-policy.json")
        with open(pol, "w") as f:
            json.dump({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
                 "Resource": "arn:aws:s3:::%s/allowed/*" % tl.BUCKET}]}, f)
        cls.s3rver, cls.front = tl.start_s3(cls.tmp, [cls.path],
                                            policies=[(ROLE, pol)])
        cls.endpoint = "http://127.0.0.1:%d" % cls.front.port
        cls.w = issued_creds.IssuedWriter(cls.path)

    @classmethod
    def tearDownClass(cls):
        cls.front.stop()
        cls.s3rver.stop()
        log = tl.read_log(cls.tmp, "front")
        for s in (SK, TOK):
            assert s.encode() not in log, "secret in the front's log"
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def issue(self, ak, lifetime=900, role="arn:aws:iam::123456789012:role/free"):
        sk, tok = "sk-" + ak, "tok-" + ak
        self.w.add_aws(ak, sk, tok, time.time() + lifetime,
                       role.replace(":iam:", ":sts:").replace(":role/", ":assumed-role/")
                       + "/s", role, "test")
        return sk, tok

    def code(self, fn, *a, **kw):
        with self.assertRaises(ClientError) as cm:
            fn(*a, **kw)
        r = cm.exception.response
        return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"]

    def test_issued_credential_reaches_s3rver(self):
        sk, tok = self.issue("ASIAFRONT0001")
        c = tl.s3_client(self.endpoint, "ASIAFRONT0001", sk, tok)
        c.put_object(Bucket=tl.BUCKET, Key="a/b.csv", Body=b"1,2\n")
        self.assertEqual(c.get_object(Bucket=tl.BUCKET, Key="a/b.csv")["Body"].read(),
                         b"1,2\n")
        # stored in s3rver: readable with the front's own key too
        own = tl.s3_client(self.endpoint, tl.FRONT_AK, tl.FRONT_SK)
        self.assertEqual(own.get_object(Bucket=tl.BUCKET, Key="a/b.csv")["Body"].read(),
                         b"1,2\n")
        keys = [o["Key"] for o in c.list_objects_v2(Bucket=tl.BUCKET,
                                                    Prefix="a/")["Contents"]]
        self.assertEqual(keys, ["a/b.csv"])

    def test_presigned_url(self):
        sk, tok = self.issue("ASIAFRONT0002")
        c = tl.s3_client(self.endpoint, "ASIAFRONT0002", sk, tok)
        c.put_object(Bucket=tl.BUCKET, Key="p.txt", Body=b"presigned")
        url = c.generate_presigned_url("get_object", Params={"Bucket": tl.BUCKET,
                                                             "Key": "p.txt"})
        self.assertIn("X-Amz-Security-Token", url)
        with urllib.request.urlopen(url) as r:
            self.assertEqual(r.read(), b"presigned")

    def test_refusals(self):
        sk, tok = self.issue("ASIAFRONT0003")
        put = dict(Bucket=tl.BUCKET, Key="x", Body=b"x")
        self.assertEqual(self.code(tl.s3_client(self.endpoint, "ASIAFRONT0003", sk)
                                   .put_object, **put), ("InvalidAccessKeyId", 403))
        self.assertEqual(self.code(tl.s3_client(self.endpoint, "ASIAFRONT0003", sk,
                                                "tok-other").put_object, **put),
                         ("InvalidToken", 400))
        self.assertEqual(self.code(tl.s3_client(self.endpoint, "ASIAFRONT0003", "wrong",
                                                tok).put_object, **put),
                         ("SignatureDoesNotMatch", 403))
        self.assertEqual(self.code(tl.s3_client(self.endpoint, "ASIANEVERISSUED", sk,
                                                tok).put_object, **put),
                         ("InvalidAccessKeyId", 403))

    def test_expired(self):
        sk, tok = self.issue("ASIAFRONT0004", lifetime=-1)
        c = tl.s3_client(self.endpoint, "ASIAFRONT0004", sk, tok)
        self.assertEqual(self.code(c.put_object, Bucket=tl.BUCKET, Key="e", Body=b"e"),
                         ("ExpiredToken", 400))

    def test_role_policy(self):
        sk, tok = self.issue("ASIAFRONT0005", role=ROLE)
        c = tl.s3_client(self.endpoint, "ASIAFRONT0005", sk, tok)
        c.put_object(Bucket=tl.BUCKET, Key="allowed/1", Body=b"1")
        with self.assertRaises(ClientError) as cm:
            c.put_object(Bucket=tl.BUCKET, Key="other/1", Body=b"1")
        err = cm.exception.response["Error"]
        self.assertEqual(err["Code"], "AccessDenied")
        self.assertIn("User: arn:aws:sts::123456789012:assumed-role/exporter/s "
                      "is not authorized to perform: s3:PutObject", err["Message"])


class GcsIssuedTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="issued-gcs-")
        cls.path = os.path.join(cls.tmp, "issued.json")
        cls.gcs = tl.start_gcs(cls.tmp, [cls.path])
        cls.w = issued_creds.IssuedWriter(cls.path)

    @classmethod
    def tearDownClass(cls):
        cls.gcs.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def upload(self, token, name="o.csv"):
        st, _, body = tl.http_req(
            self.gcs.port, "POST", "/upload/storage/v1/b/%s/o?uploadType=media&name=%s"
            % (tl.BUCKET, name), b"a,b\n",
            {"Authorization": "Bearer " + token, "Content-Type": "text/csv"})
        return st, json.loads(body)

    def test_issued_token(self):
        self.w.add_gcp("ya29.meta-1", time.time() + 300, SA, [CP], "test")
        st, body = self.upload("ya29.meta-1")
        self.assertEqual(st, 200, body)
        self.assertEqual(body["size"], "4")
        st, body = self.upload("ya29.never-issued")
        self.assertEqual((st, body["error"]["errors"][0]["reason"]), (401, "authError"))

    def test_scopes_and_expiry(self):
        self.w.add_gcp("ya29.meta-ro", time.time() + 300, SA, [RO], "test")
        st, body = self.upload("ya29.meta-ro")
        self.assertEqual(st, 403, body)
        st, _, _ = tl.http_req(self.gcs.port, "GET", "/storage/v1/b/%s/o" % tl.BUCKET,
                               headers={"Authorization": "Bearer ya29.meta-ro"})
        self.assertEqual(st, 200)
        self.w.add_gcp("ya29.meta-old", time.time() - 1, SA, [CP], "test")
        st, body = self.upload("ya29.meta-old")
        self.assertEqual(st, 401, body)


if __name__ == "__main__":
    unittest.main()
