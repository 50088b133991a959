"""Tests for the storage stand-ins: s3rver + sigv4_front.py, gcs_emulator.py.

Run:  /usr/bin/python3 -m unittest discover -s test/emulators -p 'test_*.py' -v
(needs `npm ci --prefix test/emulators/s3rver` once for the S3 tests).
"""

import base64
import datetime
import email.utils
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import tempfile
import time
import unittest
import urllib.request
from urllib.parse import quote, urlencode, urlsplit
from xml.etree import ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import botocore.session  # noqa: E402
import jwt  # noqa: E402
from botocore.auth import S3SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from gcs_keys import make_service_account  # noqa: E402

PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
REGION = "eu-west-1"
AK, SK = "AKIDSFEXPORTTEST", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AK_S, SK_S, TOK_S = "ASIASFEXPORTTEST", "sessionsecret/abc+def", "FQoGZXIvYXdzE//token+with/odd=chars"
BUCKET = "sfexport-test"
AK_P, SK_P = "AKIDPOLICYTEST", "policy-secret"   # restricted by an IAM policy (--policy)


def wait_port_file(path, proc, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("process exited early with %s" % proc.returncode)
        try:
            with open(path) as f:
                s = f.read().strip()
            if s:
                return int(s)
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise RuntimeError("no port file %s after %ss" % (path, timeout))


class Proc:
    def __init__(self, cmd, port_file, log_path):
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = wait_port_file(port_file, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def http_req(port, method, target, body=b"", headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, target, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def xml_code(body):
    return ElementTree.fromstring(body).findtext("Code")


# ---------------------------------------------------------------------------
# S3: s3rver behind the SigV4 front


class S3FrontTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        node = shutil.which("node")
        mod = os.path.join(HERE, "s3rver", "node_modules", "s3rver")
        if os.environ.get("SFEXPORT_SKIP_S3RVER") == "1":
            raise unittest.SkipTest("SFEXPORT_SKIP_S3RVER=1")
        if not node or not os.path.isdir(mod):
            raise RuntimeError("s3rver is not installed: run "
                               "`npm ci --prefix test/emulators/s3rver` first")
        cls.tmp = tempfile.mkdtemp(prefix="s3emu-")
        t = cls.tmp
        cls.s3rver = Proc([node, os.path.join(HERE, "s3rver", "start-s3rver.js"),
                           "--directory", os.path.join(t, "s3data"), "--port", "0",
                           "--port-file", os.path.join(t, "s3rver.port"),
                           "--configure-bucket", BUCKET, "--key", "%s=%s" % (AK, SK),
                           "--key", "%s=%s" % (AK_S, SK_S), "--key", "%s=%s" % (AK_P, SK_P),
                           "--silent"],
                          os.path.join(t, "s3rver.port"), os.path.join(t, "s3rver.log"))
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
            cls.front = Proc([PY, os.path.join(HERE, "sigv4_front.py"), "--port", "0",
                              "--port-file", os.path.join(t, "front.port"),
                              "--upstream", "http://127.0.0.1:%d" % cls.s3rver.port,
                              "--key", "%s=%s" % (AK, SK), "--key", "%s=%s" % (AK_S, SK_S),
                              "--session-token", "%s=%s" % (AK_S, TOK_S),
                              "--key", "%s=%s" % (AK_P, SK_P),
                              "--policy", "%s=%s" % (AK_P, policy),
                              "--region", REGION],
                             os.path.join(t, "front.port"), os.path.join(t, "front.log"))
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


# ---------------------------------------------------------------------------
# GCS emulator


class GcsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = t = tempfile.mkdtemp(prefix="gcsemu-")
        cls.sa_path = os.path.join(t, "sa.json")
        cls.emu = Proc([PY, os.path.join(HERE, "gcs_emulator.py"), "--port", "0",
                        "--port-file", os.path.join(t, "gcs.port"),
                        "--data-dir", os.path.join(t, "data"),
                        "--service-account", cls.sa_path, "--bucket", BUCKET],
                       os.path.join(t, "gcs.port"), os.path.join(t, "gcs.log"))
        cls.port = cls.emu.port
        cls.token_uri = "http://127.0.0.1:%d/token" % cls.port
        # Written after start-up: the emulator picks it up when it changes.
        cls.sa = make_service_account(cls.sa_path, cls.token_uri)
        cls.token = cls.get_token()

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()
        with open(os.path.join(cls.tmp, "gcs.log"), "rb") as f:
            log = f.read()
        for s in (cls.token, "ya29.", "BEGIN PRIVATE KEY", "upload_id=EMU"):
            assert s.encode() not in log, "secret %r leaked into the emulator log" % s
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        http_req(self.port, "POST", "/_emulator/reset")

    # -- helpers
    @classmethod
    def assertion(cls, **over):
        now = int(time.time())
        claims = {"iss": cls.sa["client_email"],
                  "scope": "https://www.googleapis.com/auth/devstorage.read_write",
                  "aud": cls.sa["token_uri"], "iat": now, "exp": now + 3600}
        key = over.pop("_key", cls.sa["private_key"])
        kid = over.pop("_kid", cls.sa["private_key_id"])
        claims.update(over)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm="RS256",
                          headers={"kid": kid} if kid else None)

    @classmethod
    def token_request(cls, assertion, grant="urn:ietf:params:oauth:grant-type:jwt-bearer"):
        body = urlencode({"grant_type": grant, "assertion": assertion}).encode()
        st, _, data = http_req(cls.port, "POST", "/token", body,
                               {"Content-Type": "application/x-www-form-urlencoded"})
        return st, json.loads(data)

    @classmethod
    def get_token(cls, **over):
        st, body = cls.token_request(cls.assertion(**over))
        assert st == 200, body
        return body["access_token"]

    def auth(self, extra=None):
        h = {"Authorization": "Bearer " + self.token}
        h.update(extra or {})
        return h

    def media_upload(self, name, data, ctype="text/csv", bucket=BUCKET, extra=""):
        return http_req(self.port, "POST",
                        "/upload/storage/v1/b/%s/o?uploadType=media&name=%s%s"
                        % (bucket, quote(name, safe=""), extra), data,
                        self.auth({"Content-Type": ctype}))

    def obj_path(self, name, bucket=BUCKET):
        return "/storage/v1/b/%s/o/%s" % (bucket, quote(name, safe=""))

    def assertGoogleError(self, st, body, code, reason=None):
        self.assertEqual(st, code, body)
        e = json.loads(body)["error"]
        self.assertEqual(e["code"], code)
        self.assertIsInstance(e["message"], str)
        if reason:
            self.assertEqual(e["errors"][0]["reason"], reason)

    # -- OAuth
    def test_token_good(self):
        st, body = self.token_request(self.assertion())
        self.assertEqual(st, 200)
        self.assertEqual(body["token_type"], "Bearer")
        self.assertEqual(body["expires_in"], 3599)
        self.assertTrue(body["access_token"])
        # full_control and cloud-platform work too, kid optional
        for scope in ("https://www.googleapis.com/auth/devstorage.full_control",
                      "https://www.googleapis.com/auth/cloud-platform"):
            st, _ = self.token_request(self.assertion(scope=scope, _kid=None))
            self.assertEqual(st, 200)

    def test_token_wrong_key(self):
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = other.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()).decode()
        st, body = self.token_request(self.assertion(_key=pem))
        self.assertEqual(st, 400)
        self.assertEqual(body["error"], "invalid_grant")
        self.assertIn("error_description", body)

    def test_token_expired_and_too_long(self):
        now = int(time.time())
        st, body = self.token_request(self.assertion(iat=now - 7200, exp=now - 3600))
        self.assertEqual((st, body["error"]), (400, "invalid_grant"))
        st, body = self.token_request(self.assertion(iat=now, exp=now + 3601))
        self.assertEqual((st, body["error"]), (400, "invalid_grant"))

    def test_token_wrong_aud_iss_grant(self):
        st, body = self.token_request(self.assertion(
            aud="https://oauth2.googleapis.com/token"))
        self.assertEqual((st, body["error"]), (400, "invalid_grant"))
        st, body = self.token_request(self.assertion(iss="nobody@x.iam.gserviceaccount.com"))
        self.assertEqual((st, body["error"]), (400, "invalid_grant"))
        st, body = self.token_request(self.assertion(), grant="client_credentials")
        self.assertEqual((st, body["error"]), (400, "unsupported_grant_type"))
        st, body = self.token_request(self.assertion(scope=None))
        self.assertEqual((st, body["error"]), (400, "invalid_scope"))
        st, body = self.token_request("not.a.jwt")
        self.assertEqual((st, body["error"]), (400, "invalid_grant"))

    def test_read_only_scope_cannot_write(self):
        tok = self.get_token(scope="https://www.googleapis.com/auth/devstorage.read_only")
        st, _, body = http_req(self.port, "POST",
                               "/upload/storage/v1/b/%s/o?uploadType=media&name=ro" % BUCKET,
                               b"x", {"Authorization": "Bearer " + tok})
        self.assertGoogleError(st, body, 403)
        st, _, body = http_req(self.port, "GET", "/storage/v1/b/%s/o" % BUCKET,
                               headers={"Authorization": "Bearer " + tok})
        self.assertEqual(st, 200)

    def test_401_without_or_with_bad_token(self):
        st, _, body = http_req(self.port, "GET", "/storage/v1/b/%s/o" % BUCKET)
        self.assertGoogleError(st, body, 401, "required")
        st, hdr, body = http_req(self.port, "GET", "/storage/v1/b/%s/o" % BUCKET,
                                 headers={"Authorization": "Bearer ya29.bogus"})
        self.assertGoogleError(st, body, 401, "authError")
        self.assertIn("www-authenticate", hdr)
        st, _, body = http_req(self.port, "POST",
                               "/upload/storage/v1/b/%s/o?uploadType=media&name=x" % BUCKET,
                               b"data")
        self.assertGoogleError(st, body, 401, "required")
        # Tokens expire (admin endpoint simulates it); a fresh one works again.
        tok = self.get_token()
        http_req(self.port, "POST", "/_emulator/expire-tokens")
        st, _, body = http_req(self.port, "GET", "/storage/v1/b/%s/o" % BUCKET,
                               headers={"Authorization": "Bearer " + tok})
        self.assertGoogleError(st, body, 401, "authError")
        type(self).token = self.get_token()
        st, _, _ = http_req(self.port, "GET", "/storage/v1/b/%s/o" % BUCKET,
                            headers=self.auth())
        self.assertEqual(st, 200)
        stats = json.loads(http_req(self.port, "GET", "/_emulator/stats")[2])
        self.assertEqual(stats["unauthorized"], 4)

    # -- objects
    def test_media_upload_and_read(self):
        name = "exports/t1/file 1+(a)~.csv.gz"
        data = os.urandom(300000)
        st, _, body = self.media_upload(name, data, "application/gzip")
        self.assertEqual(st, 200, body)
        o = json.loads(body)
        self.assertEqual(o["kind"], "storage#object")
        self.assertEqual(o["name"], name)
        self.assertEqual(o["bucket"], BUCKET)
        self.assertEqual(o["size"], str(len(data)))
        self.assertEqual(o["md5Hash"], base64.b64encode(hashlib.md5(data).digest()).decode())
        self.assertEqual(len(base64.b64decode(o["crc32c"])), 4)
        self.assertTrue(o["generation"].isdigit())
        self.assertEqual(o["contentType"], "application/gzip")
        datetime.datetime.strptime(o["updated"], "%Y-%m-%dT%H:%M:%S.%fZ")
        st, hdr, got = http_req(self.port, "GET", self.obj_path(name) + "?alt=media",
                                headers=self.auth())
        self.assertEqual(st, 200)
        self.assertEqual(got, data)
        self.assertIn("md5=" + o["md5Hash"], hdr["x-goog-hash"])
        st, _, meta = http_req(self.port, "GET", self.obj_path(name), headers=self.auth())
        self.assertEqual(json.loads(meta)["md5Hash"], o["md5Hash"])
        st, _, part = http_req(self.port, "GET", self.obj_path(name) + "?alt=media",
                               headers=self.auth({"Range": "bytes=10-19"}))
        self.assertEqual((st, part), (206, data[10:20]))

    def test_crc32c_known_value(self):
        st, _, body = self.media_upload("crc/check", b"123456789")
        # CRC-32C check value of "123456789" is 0xE3069283.
        self.assertEqual(json.loads(body)["crc32c"],
                         base64.b64encode(bytes.fromhex("e3069283")).decode())

    def test_if_generation_match(self):
        st, _, body = self.media_upload("cond/once", b"1", extra="&ifGenerationMatch=0")
        self.assertEqual(st, 200)
        st, _, body = self.media_upload("cond/once", b"2", extra="&ifGenerationMatch=0")
        self.assertGoogleError(st, body, 412, "conditionNotMet")

    def test_multipart_upload(self):
        b = "==sfexport_boundary=="
        md = json.dumps({"name": "mp/obj.json", "contentType": "application/json"})
        payload = b'{"a": 1}\r\n--not-a-boundary\r\n'
        body = ("--%s\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n%s\r\n"
                "--%s\r\nContent-Type: application/json\r\n\r\n" % (b, md, b)).encode() \
            + payload + ("\r\n--%s--\r\n" % b).encode()
        st, _, resp = http_req(self.port, "POST",
                               "/upload/storage/v1/b/%s/o?uploadType=multipart" % BUCKET,
                               body, self.auth({"Content-Type":
                                                'multipart/related; boundary="%s"' % b}))
        self.assertEqual(st, 200, resp)
        self.assertEqual(json.loads(resp)["size"], str(len(payload)))
        st, _, got = http_req(self.port, "GET", self.obj_path("mp/obj.json") + "?alt=media",
                              headers=self.auth())
        self.assertEqual(got, payload)

    def start_resumable(self, name, extra_headers=None):
        h = self.auth({"X-Upload-Content-Type": "application/gzip",
                       "Content-Type": "application/json; charset=UTF-8"})
        h.update(extra_headers or {})
        st, hdr, body = http_req(self.port, "POST",
                                 "/upload/storage/v1/b/%s/o?uploadType=resumable" % BUCKET,
                                 json.dumps({"name": name}).encode(), h)
        self.assertEqual(st, 200, body)
        loc = urlsplit(hdr["location"])
        self.assertEqual(loc.netloc, "127.0.0.1:%d" % self.port)
        return loc.path + "?" + loc.query

    def test_resumable_upload_multichunk(self):
        name = "exports/resumable/big.csv.gz"
        unit = 256 * 1024
        data = os.urandom(unit * 3 + 12345)
        sess = self.start_resumable(name)
        # status before any byte: 308, no Range header
        st, hdr, _ = http_req(self.port, "PUT", sess, b"", {"Content-Range": "bytes */*"})
        self.assertEqual(st, 308)
        self.assertNotIn("range", hdr)
        chunks = [(0, 2 * unit), (2 * unit, 3 * unit)]
        for a, b in chunks:
            st, hdr, _ = http_req(self.port, "PUT", sess, data[a:b],
                                  {"Content-Range": "bytes %d-%d/*" % (a, b - 1)})
            self.assertEqual(st, 308)
            self.assertEqual(hdr["range"], "bytes=0-%d" % (b - 1))
        st, hdr, _ = http_req(self.port, "PUT", sess, b"", {"Content-Range": "bytes */*"})
        self.assertEqual((st, hdr["range"]), (308, "bytes=0-%d" % (3 * unit - 1)))
        # a resent chunk that overlaps what is persisted is accepted
        st, hdr, _ = http_req(self.port, "PUT", sess, data[2 * unit:3 * unit],
                              {"Content-Range": "bytes %d-%d/*" % (2 * unit, 3 * unit - 1)})
        self.assertEqual((st, hdr["range"]), (308, "bytes=0-%d" % (3 * unit - 1)))
        last = data[3 * unit:]
        st, _, body = http_req(self.port, "PUT", sess, last, {
            "Content-Range": "bytes %d-%d/%d" % (3 * unit, len(data) - 1, len(data))})
        self.assertEqual(st, 200, body)
        o = json.loads(body)
        self.assertEqual(o["size"], str(len(data)))
        self.assertEqual(o["contentType"], "application/gzip")
        self.assertEqual(o["md5Hash"], base64.b64encode(hashlib.md5(data).digest()).decode())
        st, _, got = http_req(self.port, "GET", self.obj_path(name) + "?alt=media",
                              headers=self.auth())
        self.assertEqual(got, data)
        # completed session keeps answering with the object
        st, _, body = http_req(self.port, "PUT", sess, b"", {"Content-Range": "bytes */*"})
        self.assertEqual((st, json.loads(body)["name"]), (200, name))

    def test_resumable_bad_chunk_size(self):
        sess = self.start_resumable("exports/resumable/bad")
        st, _, body = http_req(self.port, "PUT", sess, b"x" * 100000,
                               {"Content-Range": "bytes 0-99999/*"})
        self.assertGoogleError(st, body, 400)
        self.assertIn("262144", json.loads(body)["error"]["message"])
        st, hdr, _ = http_req(self.port, "PUT", sess, b"", {"Content-Range": "bytes */*"})
        self.assertEqual(st, 308)
        self.assertNotIn("range", hdr)
        # a final chunk may be any size
        st, _, body = http_req(self.port, "PUT", sess, b"x" * 100000,
                               {"Content-Range": "bytes 0-99999/100000"})
        self.assertEqual(st, 200, body)
        # Content-Range length must match the body
        sess = self.start_resumable("exports/resumable/bad2")
        st, _, body = http_req(self.port, "PUT", sess, b"x" * 10,
                               {"Content-Range": "bytes 0-19/20"})
        self.assertGoogleError(st, body, 400)

    def test_resumable_finalize_with_star_total_and_cancel(self):
        unit = 256 * 1024
        data = os.urandom(unit)
        sess = self.start_resumable("exports/resumable/exact")
        st, _, _ = http_req(self.port, "PUT", sess, data, {"Content-Range": "bytes 0-%d/*"
                                                           % (unit - 1)})
        self.assertEqual(st, 308)
        st, _, body = http_req(self.port, "PUT", sess, b"",
                               {"Content-Range": "bytes */%d" % unit})
        self.assertEqual(st, 200, body)
        self.assertEqual(json.loads(body)["size"], str(unit))
        sess = self.start_resumable("exports/resumable/cancelled")
        st, _, _ = http_req(self.port, "DELETE", sess)
        self.assertEqual(st, 499)
        st, _, body = http_req(self.port, "PUT", sess, b"", {"Content-Range": "bytes */*"})
        self.assertGoogleError(st, body, 404)

    def test_session_location_override(self):
        """A hostile or broken service: the session announced elsewhere."""
        st, _, body = http_req(self.port, "POST", "/_emulator/session-location",
                               json.dumps({"base": "https://elsewhere.example:8443"}).encode())
        self.assertEqual(st, 200, body)
        try:
            st, hdr, body = http_req(self.port, "POST",
                                     "/upload/storage/v1/b/%s/o?uploadType=resumable" % BUCKET,
                                     json.dumps({"name": "exports/hostile"}).encode(),
                                     self.auth({"Content-Type": "application/json; charset=UTF-8"}))
            self.assertEqual(st, 200, body)
            loc = urlsplit(hdr["location"])
            self.assertEqual((loc.scheme, loc.netloc), ("https", "elsewhere.example:8443"))
            self.assertIn("upload_id=", loc.query)
            st, _, _ = http_req(self.port, "POST", "/_emulator/session-location",
                                json.dumps({"base": "no scheme"}).encode())
            self.assertEqual(st, 400)
        finally:
            http_req(self.port, "POST", "/_emulator/session-location",
                     json.dumps({"base": None}).encode())
        self.start_resumable("exports/back-to-normal")   # asserts our own host again

    def test_list_paged_and_delete(self):
        names = ["list/a/1.csv", "list/a/2.csv", "list/b/3.csv", "list/c.csv", "list/d.csv"]
        for n in names:
            self.assertEqual(self.media_upload(n, n.encode())[0], 200)
        got, token, pages = [], None, 0
        while True:
            q = "?prefix=list/&maxResults=2" + ("&pageToken=" + quote(token) if token else "")
            st, _, body = http_req(self.port, "GET", "/storage/v1/b/%s/o%s" % (BUCKET, q),
                                   headers=self.auth())
            self.assertEqual(st, 200)
            page = json.loads(body)
            self.assertEqual(page["kind"], "storage#objects")
            self.assertLessEqual(len(page.get("items", [])), 2)
            got += [o["name"] for o in page.get("items", [])]
            pages += 1
            token = page.get("nextPageToken")
            if not token:
                break
        self.assertEqual(got, names)
        self.assertEqual(pages, 3)
        st, _, body = http_req(self.port, "GET", "/storage/v1/b/%s/o?prefix=list/&delimiter=/"
                               % BUCKET, headers=self.auth())
        page = json.loads(body)
        self.assertEqual(page["prefixes"], ["list/a/", "list/b/"])
        self.assertEqual([o["name"] for o in page["items"]], ["list/c.csv", "list/d.csv"])
        st, _, body = http_req(self.port, "GET", "/storage/v1/b/%s/o?prefix=nothing/" % BUCKET,
                               headers=self.auth())
        self.assertNotIn("items", json.loads(body))
        st, _, body = http_req(self.port, "DELETE", self.obj_path("list/c.csv"),
                               headers=self.auth())
        self.assertEqual((st, body), (204, b""))
        st, _, body = http_req(self.port, "GET", self.obj_path("list/c.csv"),
                               headers=self.auth())
        self.assertGoogleError(st, body, 404, "notFound")
        st, _, body = http_req(self.port, "DELETE", self.obj_path("list/c.csv"),
                               headers=self.auth())
        self.assertGoogleError(st, body, 404, "notFound")

    def test_missing_bucket_and_object(self):
        st, _, body = http_req(self.port, "GET", "/storage/v1/b/no-such-bucket/o",
                               headers=self.auth())
        self.assertGoogleError(st, body, 404, "notFound")
        st, _, body = self.media_upload("x", b"x", bucket="no-such-bucket")
        self.assertGoogleError(st, body, 404, "notFound")
        st, _, body = http_req(self.port, "GET", self.obj_path("nope") + "?alt=media",
                               headers=self.auth())
        self.assertGoogleError(st, body, 404, "notFound")
        st, _, body = http_req(self.port, "GET", "/storage/v1/b/%s" % BUCKET,
                               headers=self.auth())
        self.assertEqual(json.loads(body)["name"], BUCKET)

    def test_faults(self):
        http_req(self.port, "POST", "/_emulator/faults",
                 json.dumps([{"kind": "503", "count": 2}, {"kind": "429"}]).encode())
        for code in (503, 503, 429):
            st, _, body = self.media_upload("fault/x", b"x")
            self.assertGoogleError(st, body, code)
        st, _, _ = self.media_upload("fault/x", b"x")
        self.assertEqual(st, 200)
        http_req(self.port, "POST", "/_emulator/faults",
                 json.dumps({"kind": "drop", "method": "POST"}).encode())
        with self.assertRaises((ConnectionError, http.client.HTTPException, socket.error)):
            self.media_upload("fault/dropped", b"x")
        st, _, _ = http_req(self.port, "GET", self.obj_path("fault/dropped"),
                            headers=self.auth())
        self.assertEqual(st, 404)
        http_req(self.port, "POST", "/_emulator/faults",
                 json.dumps({"kind": "drop_after", "path_regex": "uploadType=media"}).encode())
        with self.assertRaises((ConnectionError, http.client.HTTPException, socket.error)):
            self.media_upload("fault/ghost", b"boo")
        st, _, got = http_req(self.port, "GET", self.obj_path("fault/ghost") + "?alt=media",
                              headers=self.auth())
        self.assertEqual((st, got), (200, b"boo"))
        http_req(self.port, "POST", "/_emulator/faults",
                 json.dumps({"kind": "delay", "delay_ms": 500}).encode())
        t0 = time.time()
        self.media_upload("fault/slow", b"x")
        self.assertGreaterEqual(time.time() - t0, 0.5)
        stats = json.loads(http_req(self.port, "GET", "/_emulator/stats")[2])
        self.assertEqual(stats["faults_injected"], 6)
        self.assertEqual(stats["errors_by_status"], {"503": 2, "429": 1, "404": 1})


# ---------------------------------------------------------------------------
# TLS terminator and forward proxy (tls_proxy.py, forward_proxy.py)


class ProxyTests(unittest.TestCase):
    """A CA and certificates made with the openssl command; a tiny upstream."""

    @classmethod
    def setUpClass(cls):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        cls.tmp = tempfile.mkdtemp(prefix="proxyemu-")
        t = cls.tmp

        def ossl(*args):
            subprocess.run(("openssl",) + args, check=True, capture_output=True)
        for ca in ("ca", "other"):
            ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                 "-keyout", os.path.join(t, ca + ".key"), "-out", os.path.join(t, ca + ".pem"),
                 "-subj", "/CN=test " + ca)
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", os.path.join(t, "srv.key"),
             "-out", os.path.join(t, "srv.csr"), "-subj", "/CN=127.0.0.1")
        with open(os.path.join(t, "ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        ossl("x509", "-req", "-in", os.path.join(t, "srv.csr"), "-CA", os.path.join(t, "ca.pem"),
             "-CAkey", os.path.join(t, "ca.key"), "-CAcreateserial", "-days", "1",
             "-out", os.path.join(t, "srv.pem"), "-extfile", os.path.join(t, "ext"))

        class Up(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                data = ("%s %s" % (self.path, self.headers.get("Host"))).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass
        cls.up = ThreadingHTTPServer(("127.0.0.1", 0), Up)
        threading.Thread(target=cls.up.serve_forever, daemon=True).start()
        up_port = cls.up.server_address[1]
        cls.tls_log = os.path.join(t, "tls.jsonl")
        cls.tls = Proc([PY, os.path.join(HERE, "tls_proxy.py"), "--port", "0",
                        "--port-file", os.path.join(t, "tls.port"),
                        "--cert", os.path.join(t, "srv.pem"), "--key", os.path.join(t, "srv.key"),
                        "--upstream", "http://127.0.0.1:%d" % up_port, "--log", cls.tls_log],
                       os.path.join(t, "tls.port"), os.path.join(t, "tls.log"))
        cls.fp_log = os.path.join(t, "fp.log")
        cls.fp = Proc([PY, os.path.join(HERE, "forward_proxy.py"), "--port", "0",
                       "--port-file", os.path.join(t, "fp.port"), "--auth", "u:Pw-secret-1"],
                      os.path.join(t, "fp.port"), cls.fp_log)
        cls.up_port = up_port

    @classmethod
    def tearDownClass(cls):
        cls.tls.stop()
        cls.fp.stop()
        cls.up.shutdown()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ctx(self, ca="ca"):
        return ssl.create_default_context(cafile=os.path.join(self.tmp, ca + ".pem"))

    def https_get(self, ctx, host="127.0.0.1", path="/x"):
        c = http.client.HTTPSConnection(host, self.tls.port, context=ctx, timeout=10)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def events(self):
        with open(self.tls_log) as f:
            return [json.loads(line) for line in f]

    def test_tls_terminator(self):
        st, body = self.https_get(self.ctx(), path="/a?b=1")
        self.assertEqual(st, 200)
        self.assertEqual(body, "/a?b=1 127.0.0.1:%d" % self.tls.port)  # Host unchanged
        self.assertEqual(self.https_get(self.ctx(), host="localhost")[0], 200)
        self.assertIn("localhost", [e.get("sni") for e in self.events()])
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.https_get(self.ctx("other"))
        time.sleep(0.2)
        self.assertEqual(self.events()[-1]["event"], "handshake_failed")

    def proxy_log(self, method="GET"):
        st, _, body = http_req(self.fp.port, method, "/_proxy/log")
        self.assertEqual(st, 200)
        return json.loads(body)["requests"]

    def test_forward_proxy(self):
        self.proxy_log("DELETE")
        auth = {"Proxy-Authorization": "Basic " + base64.b64encode(b"u:Pw-secret-1").decode()}
        # CONNECT tunnel to the TLS terminator
        c = http.client.HTTPSConnection("127.0.0.1", self.fp.port, context=self.ctx(), timeout=10)
        c.set_tunnel("127.0.0.1", self.tls.port, headers=auth)
        c.request("GET", "/t")
        r = c.getresponse()
        self.assertEqual((r.status, r.read().decode()), (200, "/t 127.0.0.1:%d" % self.tls.port))
        c.close()
        # plain HTTP, absolute target
        st, _, body = http_req(self.fp.port, "GET", "http://127.0.0.1:%d/p?sig=1" % self.up_port,
                               headers=auth)
        self.assertEqual((st, body.decode()), (200, "/p?sig=1 127.0.0.1:%d" % self.up_port))
        # without and with wrong credentials: 407
        st, h, _ = http_req(self.fp.port, "GET", "http://127.0.0.1:%d/p" % self.up_port)
        self.assertEqual(st, 407)
        self.assertIn("proxy-authenticate", h)
        c = http.client.HTTPConnection("127.0.0.1", self.fp.port, timeout=10)
        c.set_tunnel("127.0.0.1", self.tls.port,
                     headers={"Proxy-Authorization": "Basic " + base64.b64encode(b"u:bad").decode()})
        with self.assertRaises(OSError):
            c.connect()
        c.close()
        # non-loopback targets are refused
        st, _, _ = http_req(self.fp.port, "GET", "http://192.0.2.1/x", headers=auth)
        self.assertEqual(st, 403)
        log = self.proxy_log()
        self.assertEqual([(r["method"], r["tunnel"], r["auth"], r["status"]) for r in log],
                         [("CONNECT", True, "ok", 200), ("GET", False, "ok", 200),
                          ("GET", False, "missing", 407), ("CONNECT", True, "wrong", 407),
                          ("GET", False, "ok", 403)])
        self.assertEqual(log[1]["target"], "127.0.0.1:%d/p" % self.up_port)  # no query
        with open(self.fp_log) as f:
            text = f.read()
        self.assertNotIn("Pw-secret-1", text)
        self.assertNotIn(base64.b64encode(b"u:Pw-secret-1").decode(), text)
        self.assertNotIn("sig=1", text)


if __name__ == "__main__":
    unittest.main()
