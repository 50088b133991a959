"""Unit tests of the S3 stand-in: s3rver (../s3rver) behind the SigV4 front
(server.py), driven by botocore's own S3 client, with the IAM policy
evaluation of ../lib/iam_policy.py.

Run:  cd test/emulators/s3_front && /usr/bin/python3 -m unittest -q test_server
(needs `npm ci --prefix test/emulators/s3rver` once; SFEXPORT_SKIP_S3RVER=1
skips these tests).
"""

import datetime
import email.utils
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import botocore.session  # noqa: E402
from botocore.auth import S3SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from testkit import EMULATORS, http_req, start  # noqa: E402

REGION = "eu-west-1"
AK, SK = "AKIDSFEXPORTTEST", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AK_S, SK_S, TOK_S = "ASIASFEXPORTTEST", "sessionsecret/abc+def", "FQoGZXIvYXdzE//token+with/odd=chars"
BUCKET = "sfexport-test"
AK_P, SK_P = "AKIDPOLICYTEST", "policy-secret"   # restricted by an IAM policy (--policy)


def xml_code(body):
    return ElementTree.fromstring(body).findtext("Code")


class S3FrontTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        node = shutil.which("node")
        mod = os.path.join(EMULATORS, "s3rver", "node_modules", "s3rver")
        if os.environ.get("SFEXPORT_SKIP_S3RVER") == "1":
            raise unittest.SkipTest("SFEXPORT_SKIP_S3RVER=1")
        if not node or not os.path.isdir(mod):
            raise RuntimeError("s3rver is not installed: run "
                               "`npm ci --prefix test/emulators/s3rver` first")
        cls.tmp = tempfile.mkdtemp(prefix="s3emu-")
        t = cls.tmp
        cls.s3rver = start("s3rver", ["--directory", os.path.join(t, "s3data"),
                                      "--configure-bucket", BUCKET, "--key", "%s=%s" % (AK, SK),
                                      "--key", "%s=%s" % (AK_S, SK_S), "--key", "%s=%s" % (AK_P, SK_P),
                                      "--silent"], t)
        policy = os.path.join(t, "policy.json")
        with open(policy, "w") as f:
            json.dump({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject",
                                               "s3:AbortMultipartUpload",
                                               "s3:ListMultipartUploadParts"],
                 "Resource": "arn:aws:s3:::%s/allowed/*" % BUCKET},
                {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::" + BUCKET,
                 "Condition": {"StringLike": {"s3:prefix": ["allowed/*"]}}}]}, f)
        try:
            cls.front = start("s3_front", ["--upstream", "http://127.0.0.1:%d" % cls.s3rver.port,
                                           "--key", "%s=%s" % (AK, SK), "--key", "%s=%s" % (AK_S, SK_S),
                                           "--session-token", "%s=%s" % (AK_S, TOK_S),
                                           "--key", "%s=%s" % (AK_P, SK_P),
                                           "--policy", "%s=%s" % (AK_P, policy),
                                           "--region", REGION], t, "front")
        except Exception:
            cls.s3rver.stop()
            raise
        cls.endpoint = "http://127.0.0.1:%d" % cls.front.port

    @classmethod
    def tearDownClass(cls):
        cls.front.stop()
        cls.s3rver.stop()
        with open(os.path.join(cls.tmp, "front.log"), "rb") as f:
            log = f.read()
        # Secrets, signatures and tokens never reach the log.
        for s in (SK, SK_S, TOK_S, AK + "/", AK_S + "/"):
            assert s.encode() not in log, "secret %r leaked into the front's log" % s
        assert not re.search(rb"Signature=[0-9a-f]{64}", log), "signature in log"
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.admin("POST", "/_front/reset")
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def admin(self, method, path, obj=None):
        st, _, body = http_req(self.front.port, method, path,
                               json.dumps(obj).encode() if obj is not None else b"")
        self.assertEqual(st, 200, body)
        return json.loads(body)

    def client(self, ak=AK, sk=SK, token=None):
        s = botocore.session.get_session()
        c = s.create_client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=ak, aws_secret_access_key=sk, aws_session_token=token,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                          retries={"total_max_attempts": 1}))
        self.clients.append(c)
        return c

    def sign(self, method, target, body=b"", ak=AK, sk=SK, token=None, ts=None,
             headers=None, region=REGION):
        """Sign with botocore's S3SigV4Auth at an arbitrary timestamp."""
        req = AWSRequest(method=method, url=self.endpoint + target, data=body,
                         headers=headers or {})
        signer = S3SigV4Auth(Credentials(ak, sk, token), "s3", region)
        when = ts or datetime.datetime.utcnow()
        req.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
        signer._modify_request_before_signing(req)
        creq = signer.canonical_request(req)
        sig = signer.signature(signer.string_to_sign(req, creq), req)
        signer._inject_signature_to_request(req, sig)
        return dict(req.headers.items())

    def assertS3Error(self, exc, code, status):
        self.assertEqual(exc.response["Error"]["Code"], code)
        self.assertEqual(exc.response["ResponseMetadata"]["HTTPStatusCode"], status)

    # -- tests
    def test_iam_policy_enforced(self):
        c = self.client(ak=AK_P, sk=SK_P)
        c.put_object(Bucket=BUCKET, Key="allowed/a.csv", Body=b"1\n")
        self.assertEqual(c.get_object(Bucket=BUCKET, Key="allowed/a.csv")["Body"].read(), b"1\n")
        self.assertEqual([o["Key"] for o in c.list_objects_v2(
            Bucket=BUCKET, Prefix="allowed/")["Contents"]], ["allowed/a.csv"])
        up = c.create_multipart_upload(Bucket=BUCKET, Key="allowed/big")["UploadId"]
        c.upload_part(Bucket=BUCKET, Key="allowed/big", UploadId=up, PartNumber=1, Body=b"x")
        c.abort_multipart_upload(Bucket=BUCKET, Key="allowed/big", UploadId=up)
        before = self.admin("GET", "/_front/stats")["policy_denied"]
        for call in (lambda: c.put_object(Bucket=BUCKET, Key="other/a.csv", Body=b"1\n"),
                     lambda: c.get_object(Bucket=BUCKET, Key="other/a.csv"),
                     lambda: c.list_objects_v2(Bucket=BUCKET, Prefix="other/"),
                     lambda: c.list_objects_v2(Bucket=BUCKET),
                     lambda: c.create_multipart_upload(Bucket=BUCKET, Key="other/big")):
            with self.assertRaises(ClientError) as cm:
                call()
            self.assertS3Error(cm.exception, "AccessDenied", 403)
        msg = cm.exception.response["Error"]["Message"]
        self.assertIn("not authorized to perform: s3:PutObject on resource: "
                      "\"arn:aws:s3:::%s/other/big\"" % BUCKET, msg)
        self.assertEqual(self.admin("GET", "/_front/stats")["policy_denied"], before + 5)
        # denied requests never reach s3rver; other keys are not restricted
        self.client().put_object(Bucket=BUCKET, Key="other/b.csv", Body=b"2\n")
        c.delete_object(Bucket=BUCKET, Key="allowed/a.csv")

    def test_good_signature_passes_and_stores(self):
        c = self.client()
        key = "exports/t1/part 0001+x~(1).csv.gz"
        data = os.urandom(70000)
        r = c.put_object(Bucket=BUCKET, Key=key, Body=data)
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 200)
        self.assertEqual(r["ETag"].strip('"'), hashlib.md5(data).hexdigest())
        got = c.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        self.assertEqual(got, data)
        keys = [o["Key"] for o in c.list_objects_v2(
            Bucket=BUCKET, Prefix="exports/t1/part 0001+")["Contents"]]
        self.assertEqual(keys, [key])
        # Stored by s3rver itself (ask it directly with its default key).
        st, _, body = http_req(self.s3rver.port, "GET",
                               "/%s/%s" % (BUCKET, quote(key)))
        self.assertEqual(st, 200)
        self.assertEqual(body, data)
        stats = self.admin("GET", "/_front/stats")
        self.assertEqual(stats["requests"], 3)
        self.assertEqual(stats["forwarded"], 3)
        self.assertEqual(stats["signatures_rejected"], 0)

    def test_wrong_secret_rejected(self):
        with self.assertRaises(ClientError) as cm:
            self.client(sk="not-the-secret").put_object(Bucket=BUCKET, Key="bad",
                                                        Body=b"x")
        self.assertS3Error(cm.exception, "SignatureDoesNotMatch", 403)
        with self.assertRaises(ClientError) as cm:
            self.client().head_object(Bucket=BUCKET, Key="bad")
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 404)
        stats = self.admin("GET", "/_front/stats")
        self.assertEqual(stats["signatures_rejected"], 1)
        self.assertEqual(stats["rejected_by_code"], {"SignatureDoesNotMatch": 1})

    def test_signature_error_body_shape(self):
        h = self.sign("PUT", "/%s/shape" % BUCKET, b"abc", sk="wrong")
        st, hdr, body = http_req(self.front.port, "PUT", "/%s/shape" % BUCKET, b"abc", h)
        self.assertEqual(st, 403)
        self.assertEqual(hdr["content-type"], "application/xml")
        root = ElementTree.fromstring(body)
        self.assertEqual(root.tag, "Error")
        self.assertEqual(root.findtext("Code"), "SignatureDoesNotMatch")
        self.assertEqual(root.findtext("AWSAccessKeyId"), AK)
        self.assertTrue(root.findtext("StringToSign").startswith("AWS4-HMAC-SHA256\n"))
        self.assertIn("\nhost:127.0.0.1:%d\n" % self.front.port,
                      root.findtext("CanonicalRequest"))
        self.assertIsNotNone(root.findtext("RequestId"))

    def test_raw_plus_in_path_is_a_space(self):
        # S3 decodes a raw '+' in the path as a space; signing it as '+'
        # (or %2B) while sending it raw fails, as at AWS.
        target = "/%s/c++notes.txt" % BUCKET
        req = AWSRequest(method="PUT", url=self.endpoint + target, data=b"x")
        signer = S3SigV4Auth(Credentials(AK, SK), "s3", REGION)
        signer.add_auth(req)  # signs the path as given: /.../c++notes.txt
        st, _, body = http_req(self.front.port, "PUT", target, b"x",
                               dict(req.headers.items()))
        self.assertEqual((st, xml_code(body)), (403, "SignatureDoesNotMatch"))
        self.assertIn("/c%20%20notes.txt\n",
                      ElementTree.fromstring(body).findtext("CanonicalRequest"))
        # botocore's client encodes '+' as %2B and round-trips the key
        c = self.client()
        c.put_object(Bucket=BUCKET, Key="c++notes.txt", Body=b"plus")
        self.assertEqual(c.get_object(Bucket=BUCKET, Key="c++notes.txt")["Body"].read(),
                         b"plus")

    def test_libcurl_sigv4_interop(self):
        # libcurl's own SigV4 signer (CURLOPT_AWS_SIGV4), another independent
        # implementation, as the extension may use.
        curl = shutil.which("curl")
        if not curl:
            self.skipTest("curl not installed")
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"from libcurl\n")
            f.flush()
            sha = hashlib.sha256(b"from libcurl\n").hexdigest()
            url = self.endpoint + "/%s/curl%%20dir/a%%2Bb~.txt" % BUCKET
            base = [curl, "-sS", "--aws-sigv4", "aws:amz:%s:s3" % REGION,
                    "--user", "%s:%s" % (AK, SK), "-o", "/dev/null", "-w", "%{http_code}"]
            out = subprocess.run(base + ["-H", "x-amz-content-sha256: " + sha, "-T",
                                         f.name, url], capture_output=True, text=True)
            self.assertEqual(out.stdout, "200", out.stderr)
            bad = list(base)
            bad[bad.index("--user") + 1] = "%s:wrong" % AK
            out = subprocess.run(bad + ["-H", "x-amz-content-sha256: " + sha, "-T",
                                        f.name, url], capture_output=True, text=True)
            self.assertEqual(out.stdout, "403", out.stderr)
        got = self.client().get_object(Bucket=BUCKET, Key="curl dir/a+b~.txt")
        self.assertEqual(got["Body"].read(), b"from libcurl\n")

    def test_unknown_access_key(self):
        with self.assertRaises(ClientError) as cm:
            self.client(ak="AKIDUNKNOWN").put_object(Bucket=BUCKET, Key="k", Body=b"x")
        self.assertS3Error(cm.exception, "InvalidAccessKeyId", 403)

    def test_tampered_body(self):
        target = "/%s/tampered.csv" % BUCKET
        h = self.sign("PUT", target, b"good payload")
        st, _, body = http_req(self.front.port, "PUT", target, b"evil payload", h)
        self.assertEqual(st, 400)
        self.assertEqual(xml_code(body), "XAmzContentSHA256Mismatch")
        st, _, _ = http_req(self.front.port, "PUT", target, b"good payload", h)
        self.assertEqual(st, 200)

    def test_unsigned_payload_accepted(self):
        target = "/%s/unsigned.bin" % BUCKET
        # botocore's S3 signer recomputes the hash; put UNSIGNED-PAYLOAD by hand
        req = AWSRequest(method="PUT", url=self.endpoint + target, data=b"data")
        signer = S3SigV4Auth(Credentials(AK, SK), "s3", REGION)
        req.context["timestamp"] = datetime.datetime.utcnow().strftime("%Y%m%dT%H%M%SZ")
        req.context["payload_signing_enabled"] = False
        signer._modify_request_before_signing(req)
        del req.headers["X-Amz-Content-SHA256"]
        req.headers["X-Amz-Content-SHA256"] = "UNSIGNED-PAYLOAD"
        creq = signer.canonical_request(req)
        signer._inject_signature_to_request(
            req, signer.signature(signer.string_to_sign(req, creq), req))
        h = dict(req.headers.items())
        st, _, body = http_req(self.front.port, "PUT", target, b"anything at all", h)
        self.assertEqual(st, 200, body)

    def test_clock_skew(self):
        target = "/%s/skew" % BUCKET
        old = datetime.datetime.utcnow() - datetime.timedelta(minutes=16)
        h = self.sign("PUT", target, b"x", ts=old)
        st, _, body = http_req(self.front.port, "PUT", target, b"x", h)
        self.assertEqual(st, 403)
        self.assertEqual(xml_code(body), "RequestTimeTooSkewed")
        ok = datetime.datetime.utcnow() - datetime.timedelta(minutes=14)
        h = self.sign("PUT", target, b"x", ts=ok)
        st, _, body = http_req(self.front.port, "PUT", target, b"x", h)
        self.assertEqual(st, 200, body)

    def test_wrong_region(self):
        target = "/%s/region" % BUCKET
        h = self.sign("PUT", target, b"x", region="us-west-2")
        st, _, body = http_req(self.front.port, "PUT", target, b"x", h)
        self.assertEqual((st, xml_code(body)), (400, "AuthorizationHeaderMalformed"))
        self.assertIn(b"<Region>%s</Region>" % REGION.encode(), body)
        # botocore's S3 client follows that hint and retries in the right region
        c = botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name="us-west-2",
            aws_access_key_id=AK, aws_secret_access_key=SK,
            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
        self.clients.append(c)
        c.put_object(Bucket=BUCKET, Key="region", Body=b"x")

    def test_unsigned_amz_header_rejected(self):
        target = "/%s/unsignedhdr" % BUCKET
        h = self.sign("PUT", target, b"x")
        h["x-amz-meta-extra"] = "added after signing"
        st, _, body = http_req(self.front.port, "PUT", target, b"x", h)
        self.assertEqual(st, 403)
        self.assertEqual(xml_code(body), "AccessDenied")
        self.assertIn(b"<HeadersNotSigned>x-amz-meta-extra</HeadersNotSigned>", body)

    def test_session_token(self):
        good = self.client(AK_S, SK_S, TOK_S)
        good.put_object(Bucket=BUCKET, Key="session/ok", Body=b"tok")
        self.assertEqual(good.get_object(Bucket=BUCKET, Key="session/ok")["Body"].read(),
                         b"tok")
        with self.assertRaises(ClientError) as cm:
            self.client(AK_S, SK_S, None).put_object(Bucket=BUCKET, Key="s/no", Body=b"x")
        self.assertS3Error(cm.exception, "InvalidAccessKeyId", 403)
        with self.assertRaises(ClientError) as cm:
            self.client(AK_S, SK_S, "wrong-token").put_object(Bucket=BUCKET, Key="s/w",
                                                              Body=b"x")
        self.assertS3Error(cm.exception, "InvalidToken", 400)
        # A token on a key that has none.
        with self.assertRaises(ClientError) as cm:
            self.client(AK, SK, "unexpected").put_object(Bucket=BUCKET, Key="s/u",
                                                        Body=b"x")
        self.assertS3Error(cm.exception, "InvalidToken", 400)
        # Token present but not signed.
        target = "/%s/s/unsigned" % BUCKET
        h = self.sign("PUT", target, b"x", ak=AK_S, sk=SK_S)
        h["X-Amz-Security-Token"] = TOK_S
        st, _, body = http_req(self.front.port, "PUT", target, b"x", h)
        self.assertEqual((st, xml_code(body)), (403, "AccessDenied"))

    def test_multipart_upload(self):
        c = self.client()
        key = "exports/big/file.csv.gz"
        parts = [os.urandom(5 * 1024 * 1024), os.urandom(123457)]
        up = c.create_multipart_upload(Bucket=BUCKET, Key=key)
        done = []
        for i, p in enumerate(parts, 1):
            r = c.upload_part(Bucket=BUCKET, Key=key, PartNumber=i,
                              UploadId=up["UploadId"], Body=p)
            done.append({"PartNumber": i, "ETag": r["ETag"]})
        c.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=up["UploadId"],
                                    MultipartUpload={"Parts": done})
        got = c.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        self.assertEqual(got, b"".join(parts))
        # abort path (s3rver lacks it; the front answers 204 as S3 does)
        up2 = c.create_multipart_upload(Bucket=BUCKET, Key=key + ".2")
        c.upload_part(Bucket=BUCKET, Key=key + ".2", PartNumber=1,
                      UploadId=up2["UploadId"], Body=b"abc")
        r = c.abort_multipart_upload(Bucket=BUCKET, Key=key + ".2",
                                     UploadId=up2["UploadId"])
        self.assertEqual(r["ResponseMetadata"]["HTTPStatusCode"], 204)
        with self.assertRaises(ClientError):
            c.head_object(Bucket=BUCKET, Key=key + ".2")
        self.assertEqual(self.admin("GET", "/_front/stats")["signatures_rejected"], 0)

    def test_presigned_url(self):
        c = self.client()
        c.put_object(Bucket=BUCKET, Key="pre/signed.txt", Body=b"presigned!")
        url = c.generate_presigned_url("get_object", Params={
            "Bucket": BUCKET, "Key": "pre/signed.txt"}, ExpiresIn=300)
        with urllib.request.urlopen(url) as r:
            self.assertEqual(r.read(), b"presigned!")
        bad = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
        bad = bad[:len(bad) - 1]
        u = urlsplit(bad)
        st, _, body = http_req(self.front.port, "GET", u.path + "?" + u.query)
        self.assertEqual((st, xml_code(body)), (403, "SignatureDoesNotMatch"))

    def test_retry_after_and_request_log(self):
        self.admin("DELETE", "/_front/requests")
        self.admin("POST", "/_front/faults", [
            {"kind": "slowdown", "method": "PUT", "retry_after": "7"},
            {"kind": "unavailable", "method": "PUT", "retry_after": "+5"},
            {"kind": "internal", "method": "PUT"}])
        st, h, body = http_req(self.front.port, "PUT", "/%s/ra/1" % BUCKET, b"x")
        self.assertEqual((st, xml_code(body), h.get("retry-after")), (503, "SlowDown", "7"))
        st, h, body = http_req(self.front.port, "PUT", "/%s/ra/1" % BUCKET, b"x")
        self.assertEqual((st, xml_code(body)), (503, "ServiceUnavailable"))
        when = email.utils.parsedate_to_datetime(h["retry-after"]).timestamp()
        self.assertAlmostEqual(when - time.time(), 5, delta=1.5)
        st, h, _ = http_req(self.front.port, "PUT", "/%s/ra/1?uploadId=SECRETID" % BUCKET, b"x")
        self.assertEqual(st, 500)
        self.assertNotIn("retry-after", h)
        reqs = self.admin("GET", "/_front/requests")["requests"]
        self.assertEqual([r["fault"] for r in reqs], ["slowdown", "unavailable", "internal"])
        self.assertEqual({r["path"] for r in reqs}, {"/%s/ra/1" % BUCKET})  # no query
        self.assertTrue(reqs[0]["t"] <= reqs[1]["t"] <= reqs[2]["t"])
        self.assertEqual(self.admin("DELETE", "/_front/requests")["requests"], [])

    def test_request_log_names_the_claimed_key(self):
        self.admin("DELETE", "/_front/requests")
        self.client().put_object(Bucket=BUCKET, Key="who/1", Body=b"1")
        with self.assertRaises(ClientError):
            self.client(ak="AKIDNOBODYKNOWS", sk="x").put_object(Bucket=BUCKET, Key="who/2",
                                                                 Body=b"2")
        http_req(self.front.port, "GET", "/%s/who/1" % BUCKET)
        reqs = self.admin("GET", "/_front/requests")["requests"]
        self.assertEqual([r["access_key_id"] for r in reqs], [AK, "AKIDNOBODYKNOWS", None])

    def test_anonymous_rejected(self):
        st, _, body = http_req(self.front.port, "GET", "/%s/x" % BUCKET)
        self.assertEqual((st, xml_code(body)), (403, "AccessDenied"))

    def test_faults(self):
        c = self.client()
        self.admin("POST", "/_front/faults", {"kind": "slowdown", "count": 2})
        for _ in range(2):
            with self.assertRaises(ClientError) as cm:
                c.put_object(Bucket=BUCKET, Key="f/1", Body=b"x")
            self.assertS3Error(cm.exception, "SlowDown", 503)
        c.put_object(Bucket=BUCKET, Key="f/1", Body=b"x")
        self.admin("POST", "/_front/faults", [
            {"kind": "internal"},
            {"kind": "error", "status": 403, "code": "AccessDenied", "message": "nope"}])
        with self.assertRaises(ClientError) as cm:
            c.head_object(Bucket=BUCKET, Key="f/1")
        self.assertEqual(cm.exception.response["ResponseMetadata"]["HTTPStatusCode"], 500)
        with self.assertRaises(ClientError) as cm:
            c.get_object(Bucket=BUCKET, Key="f/1")
        self.assertS3Error(cm.exception, "AccessDenied", 403)
        # drop before forwarding: nothing stored
        self.admin("POST", "/_front/faults", {"kind": "drop", "method": "PUT"})
        with self.assertRaises(Exception):
            c.put_object(Bucket=BUCKET, Key="f/dropped", Body=b"x")
        with self.assertRaises(ClientError):
            c.head_object(Bucket=BUCKET, Key="f/dropped")
        # drop after forwarding: stored, but the client never hears back
        self.admin("POST", "/_front/faults", {"kind": "drop_after", "method": "PUT"})
        with self.assertRaises(Exception):
            c.put_object(Bucket=BUCKET, Key="f/ghost", Body=b"boo")
        self.assertEqual(c.get_object(Bucket=BUCKET, Key="f/ghost")["Body"].read(), b"boo")
        # delay, only for matching paths, after letting one through
        self.admin("POST", "/_front/faults", {"kind": "delay", "delay_ms": 700,
                                              "path_regex": "/f/slow", "after": 1})
        t0 = time.time()
        c.put_object(Bucket=BUCKET, Key="f/slow", Body=b"1")
        self.assertLess(time.time() - t0, 0.6)
        t0 = time.time()
        c.put_object(Bucket=BUCKET, Key="f/slow", Body=b"2")
        self.assertGreaterEqual(time.time() - t0, 0.7)
        stats = self.admin("GET", "/_front/stats")
        self.assertEqual(stats["faults_injected"], 7)
        self.assertEqual(stats["pending_faults"], [])


if __name__ == "__main__":
    unittest.main()
