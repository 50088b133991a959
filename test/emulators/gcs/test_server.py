"""Unit tests of the GCS stand-in (server.py): the JSON API and the Google
OAuth token endpoint, with service-account keys from ../lib/gcs_keys.py.

Run:  cd test/emulators/gcs && /usr/bin/python3 -m unittest -q test_server
"""

import base64
import datetime
import hashlib
import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest
from urllib.parse import quote, urlencode, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import jwt  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from gcs_keys import make_service_account  # noqa: E402
from testkit import http_req, start  # noqa: E402

BUCKET = "sfexport-test"


class GcsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = t = tempfile.mkdtemp(prefix="gcsemu-")
        cls.sa_path = os.path.join(t, "sa.json")
        cls.emu = start("gcs", ["--data-dir", os.path.join(t, "data"),
                                "--service-account", cls.sa_path, "--bucket", BUCKET], t)
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


if __name__ == "__main__":
    unittest.main()
