"""Unit tests of the GCE metadata server stand-in, asking as google-auth does
(google/auth/compute_engine/_metadata.py: Metadata-Flavor header,
service-accounts/default/?recursive=true, .../token?scopes=A,B), and end to
end: its tokens are accepted by gcs --issued-tokens.

    cd test/emulators/gce_metadata && /usr/bin/python3 -m unittest -q test_gce_metadata
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

import cred_testlib as tl  # noqa: E402

EMAIL = "exporter@sfexport-test.iam.gserviceaccount.com"
SA = "/computeMetadata/v1/instance/service-accounts/"
FLAVOR = {"Metadata-Flavor": "Google"}
RW = "https://www.googleapis.com/auth/devstorage.read_write"
RO = "https://www.googleapis.com/auth/devstorage.read_only"


class GceMetadataTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        warnings.simplefilter("ignore", ResourceWarning)
        cls.tmp = tempfile.mkdtemp(prefix="gce-")
        cls.issued = os.path.join(cls.tmp, "gce-issued.json")
        cls.gce = tl.start(cls.tmp, "gce_metadata", "gce", [
            "--email", EMAIL, "--scope", RW,
            "--scope", "https://www.googleapis.com/auth/cloud-platform",
            "--issued-file", cls.issued])
        cls.port = cls.gce.port
        cls.gcs = tl.start_gcs(cls.tmp, [cls.issued])
        cls.tokens = []

    @classmethod
    def tearDownClass(cls):
        cls.gce.stop()
        cls.gcs.stop()
        log = tl.read_log(cls.tmp, "gce") + tl.read_log(cls.tmp, "gcs")
        for t in cls.tokens:
            assert t.encode() not in log, "a token reached a log"
        assert b"ya29." not in log
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        tl.http_req(self.port, "POST", "/_gce/reset")
        tl.http_req(self.port, "POST", "/_gce/settings",
                    json.dumps({"service_account_available": True}).encode())

    def get(self, path, headers=FLAVOR):
        st, h, body = tl.http_req(self.port, "GET", path, headers=headers)
        return st, h, body

    def token(self, query=""):
        st, h, body = self.get(SA + "default/token" + query)
        self.assertEqual(st, 200, body)
        self.assertEqual(h["metadata-flavor"], "Google")
        self.assertEqual(h["content-type"], "application/json")
        t = json.loads(body)
        self.tokens.append(t["access_token"])
        return t

    def upload(self, tok, name="o.csv"):
        st, _, body = tl.http_req(
            self.gcs.port, "POST", "/upload/storage/v1/b/%s/o?uploadType=media&name=%s"
            % (tl.BUCKET, name), b"1,2\n",
            {"Authorization": "Bearer " + tok, "Content-Type": "text/csv"})
        return st, json.loads(body)

    def test_flavor_header_required(self):
        for headers in ({}, {"Metadata-Flavor": "Other"},
                        {"X-Google-Metadata-Request": "True"}):
            st, h, _ = self.get(SA + "default/token", headers)
            self.assertEqual(st, 403, headers)
            self.assertEqual(h["metadata-flavor"], "Google")
        st, _, _ = self.get(SA + "default/token",
                            dict(FLAVOR, **{"X-Forwarded-For": "203.0.113.9"}))
        self.assertEqual(st, 403)
        st, _, _ = tl.http_req(self.port, "POST", SA + "default/token", headers=FLAVOR)
        self.assertEqual(st, 405)
        self.assertEqual(self.get("/computeMetadata/v1/nothing")[0], 404)
        stats = json.loads(tl.http_req(self.port, "GET", "/_gce/stats")[2])
        self.assertEqual(stats["token_requests"], 0)   # none of these got a token

    def test_token_and_gcs(self):
        t = self.token()
        self.assertEqual(t["token_type"], "Bearer")
        self.assertTrue(3500 <= t["expires_in"] <= 3599, t["expires_in"])
        st, body = self.upload(t["access_token"])
        self.assertEqual(st, 200, body)
        # the same token while it is far from expiry, expires_in counting down
        again = self.token()
        self.assertEqual(again["access_token"], t["access_token"])
        self.assertLessEqual(again["expires_in"], t["expires_in"])

    def test_scopes_query(self):
        ro = self.token("?scopes=" + RO)
        st, body = self.upload(ro["access_token"], "ro.csv")
        self.assertEqual(st, 403, body)                 # read-only scope: no writes
        st, _, _ = tl.http_req(self.gcs.port, "GET", "/storage/v1/b/%s/o" % tl.BUCKET,
                               headers={"Authorization": "Bearer " + ro["access_token"]})
        self.assertEqual(st, 200)
        both = self.token("?scopes=%s,%s" % (RO, RW))
        self.assertNotEqual(both["access_token"], ro["access_token"])
        self.assertEqual(self.upload(both["access_token"], "rw.csv")[0], 200)

    def test_service_account_info(self):
        st, h, body = self.get(SA + "default/?recursive=true")
        self.assertEqual((st, h["content-type"]), (200, "application/json"))
        info = json.loads(body)
        self.assertEqual(info, {"aliases": ["default"], "email": EMAIL,
                                "scopes": [RW, "https://www.googleapis.com/auth/"
                                           "cloud-platform"]})
        self.assertEqual(self.get(SA + "default/email")[2], EMAIL.encode())
        self.assertEqual(self.get(SA + "default/scopes")[2].decode().split(),
                         info["scopes"])
        self.assertEqual(self.get(SA)[2].decode().split(), ["default/", EMAIL + "/"])
        self.assertIn("token", self.get(SA + "default/")[2].decode().split())
        st, h, _ = self.get(SA + "default")
        self.assertEqual((st, h["location"]), (301, SA + "default/"))
        # the e-mail works in place of "default"
        st, _, body = self.get(SA + EMAIL + "/token")
        self.assertEqual(st, 200)
        self.tokens.append(json.loads(body)["access_token"])
        self.assertEqual(self.get("/computeMetadata/v1/project/project-id")[2],
                         b"sfexport-test")
        self.assertEqual(self.get("/computeMetadata/v1/instance/zone")[2],
                         b"projects/123456789012/zones/europe-west1-b")

    def test_no_service_account(self):
        tl.http_req(self.port, "POST", "/_gce/settings",
                    json.dumps({"service_account_available": False}).encode())
        self.assertEqual(self.get(SA + "default/token")[0], 404)
        self.assertEqual(self.get(SA)[2], b"")

    def test_expire_and_refresh(self):
        old = self.token()
        st, _, _ = tl.http_req(self.port, "POST", "/_gce/expire")
        self.assertEqual(st, 200)
        st, body = self.upload(old["access_token"], "late.csv")
        self.assertEqual((st, body["error"]["errors"][0]["reason"]), (401, "authError"))
        new = self.token()
        self.assertNotEqual(new["access_token"], old["access_token"])
        self.assertEqual(self.upload(new["access_token"], "fresh.csv")[0], 200)

    def test_refresh_before_expiry(self):
        tmp = tempfile.mkdtemp(prefix="gce-short-", dir=self.tmp)
        p = tl.start(tmp, "gce_metadata", "gce2", [
            "--lifetime", "4", "--refresh-before", "2"])
        try:
            def tok():
                st, _, body = tl.http_req(p.port, "GET", SA + "default/token",
                                          headers=FLAVOR)
                t = json.loads(body)
                self.tokens.append(t["access_token"])
                return t
            first = tok()
            self.assertLessEqual(first["expires_in"], 4)
            self.assertEqual(tok()["access_token"], first["access_token"])
            time.sleep(2.2)
            self.assertNotEqual(tok()["access_token"], first["access_token"])
        finally:
            p.stop()

    def test_faults(self):
        tl.http_req(self.port, "POST", "/_gce/faults",
                    json.dumps({"kind": "503", "path_regex": "/token$"}).encode())
        self.assertEqual(self.get(SA + "default/token")[0], 503)
        self.token()


if __name__ == "__main__":
    unittest.main()
