"""Unit tests of the Google STS / IAM Credentials stand-in, with requests
formed as google-auth forms them (google/oauth2/sts.py: form-encoded token
exchange; google/auth/impersonated_credentials.py: generateAccessToken with
{"scope", "lifetime": "3600s", "delegates"}), and end to end: the tokens
work at gcs --issued-tokens.

    cd test/emulators/google_sts && /usr/bin/python3 -m unittest -q test_google_sts
"""

import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import warnings
from urllib.parse import urlencode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

import cred_testlib as tl  # noqa: E402

POOL = "projects/123456789012/locations/global/workloadIdentityPools/sfexport-pool"
AUDIENCE = "//iam.googleapis.com/%s/providers/oidc" % POOL
ISSUER = "https://token.actions.example.com"
SA = "loader@sfexport-test.iam.gserviceaccount.com"
OTHER_SA = "nobody@sfexport-test.iam.gserviceaccount.com"
SUB = "repo:acme/etl:ref:refs/heads/main"
CP = "https://www.googleapis.com/auth/cloud-platform"
RW = "https://www.googleapis.com/auth/devstorage.read_write"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def key_and_jwk():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "gh1", "alg": "RS256", "use": "sig"})
    return key, jwk


class GoogleStsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        warnings.simplefilter("ignore", ResourceWarning)
        cls.tmp = tempfile.mkdtemp(prefix="gsts-")
        cls.key, jwk = key_and_jwk()
        cls.other_key, _ = key_and_jwk()
        cfg = os.path.join(cls.tmp, "wif.json")
        with open(cfg, "w") as f:
            json.dump({"providers": [{"audience": AUDIENCE, "issuer": ISSUER,
                                      "jwks": {"keys": [jwk]}}],
                       "service_accounts": [
                           {"email": SA, "members": [
                               "principal://iam.googleapis.com/%s/subject/%s" % (POOL, SUB)]},
                           {"email": OTHER_SA, "members": []}]}, f)
        cls.issued = os.path.join(cls.tmp, "gsts-issued.json")
        cls.sts = tl.start(cls.tmp, "google_sts", "gsts", [
            "--config", cfg, "--issued-file", cls.issued])
        cls.port = cls.sts.port
        cls.gcs = tl.start_gcs(cls.tmp, [cls.issued])
        cls.tokens = []

    @classmethod
    def tearDownClass(cls):
        cls.sts.stop()
        cls.gcs.stop()
        log = tl.read_log(cls.tmp, "gsts") + tl.read_log(cls.tmp, "gcs")
        for t in cls.tokens:
            assert t.encode() not in log, "a token reached a log"
        assert b"eyJ" not in log and b"ya29." not in log
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        tl.http_req(self.port, "POST", "/_gsts/reset")

    def subject(self, key=None, **over):
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "https:" + AUDIENCE, "sub": SUB,
                  "iat": now, "exp": now + 300}
        claims.update(over)
        return jwt.encode(claims, key or self.key, algorithm="RS256",
                          headers={"kid": "gh1"})

    def exchange(self, **over):
        form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
                "audience": AUDIENCE, "scope": CP,
                "requested_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "subject_token": self.subject(),
                "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}
        form.update(over)
        st, _, body = tl.http_req(self.port, "POST", "/v1/token",
                                  urlencode({k: v for k, v in form.items()
                                             if v is not None}).encode(), FORM)
        out = json.loads(body)
        if st == 200:
            self.tokens.append(out["access_token"])
        return st, out

    def impersonate(self, token, email=SA, body=None):
        st, _, data = tl.http_req(
            self.port, "POST", "/v1/projects/-/serviceAccounts/%s:generateAccessToken"
            % email, json.dumps(body or {"scope": [RW], "lifetime": "3600s",
                                         "delegates": []}).encode(),
            {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        out = json.loads(data)
        if st == 200:
            self.tokens.append(out["accessToken"])
        return st, out

    def upload(self, tok, name):
        st, _, body = tl.http_req(
            self.gcs.port, "POST", "/upload/storage/v1/b/%s/o?uploadType=media&name=%s"
            % (tl.BUCKET, name), b"x\n",
            {"Authorization": "Bearer " + tok, "Content-Type": "text/csv"})
        return st

    def test_exchange_and_impersonate(self):
        st, fed = self.exchange()
        self.assertEqual(st, 200, fed)
        self.assertEqual((fed["token_type"], fed["issued_token_type"], fed["expires_in"]),
                         ("Bearer", "urn:ietf:params:oauth:token-type:access_token", 3600))
        self.assertEqual(self.upload(fed["access_token"], "federated.csv"), 200)
        st, sa = self.impersonate(fed["access_token"])
        self.assertEqual(st, 200, sa)
        self.assertRegex(sa["expireTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(self.upload(sa["accessToken"], "impersonated.csv"), 200)
        stats = json.loads(tl.http_req(self.port, "GET", "/_gsts/stats")[2])
        self.assertEqual((stats["exchanges"], stats["impersonations"]), (1, 1))

    def test_exchange_refusals(self):
        cases = [
            ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
            ({"subject_token": None}, "invalid_request"),
            ({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"},
             "invalid_request"),
            ({"scope": None}, "invalid_scope"),
            ({"audience": AUDIENCE.replace("/oidc", "/nope")}, "invalid_target"),
            ({"subject_token": self.subject(aud="https://elsewhere")}, "invalid_grant"),
            ({"subject_token": self.subject(iss="https://evil.example")}, "invalid_grant"),
            ({"subject_token": self.subject(exp=int(time.time()) - 5)}, "invalid_grant"),
            ({"subject_token": self.subject(key=self.other_key)}, "invalid_grant"),
            ({"subject_token": "not.a.jwt"}, "invalid_grant"),
        ]
        for over, error in cases:
            st, body = self.exchange(**over)
            self.assertEqual((st, body.get("error")), (400, error), over)
            self.assertTrue(body["error_description"])

    def test_impersonation_refusals(self):
        st, fed = self.exchange()
        self.assertEqual(self.impersonate(fed["access_token"], OTHER_SA)[1]["error"]
                         ["status"], "PERMISSION_DENIED")
        st, body = self.impersonate("ya29.unknown")
        self.assertEqual((st, body["error"]["status"]), (401, "UNAUTHENTICATED"))
        st, body = self.impersonate(fed["access_token"],
                                    body={"scope": [RW], "lifetime": "7200s"})
        self.assertEqual((st, body["error"]["status"]), (400, "INVALID_ARGUMENT"))
        st, body = self.impersonate(fed["access_token"], body={"lifetime": "60s"})
        self.assertEqual((st, body["error"]["status"]), (400, "INVALID_ARGUMENT"))

    def test_expire(self):
        st, fed = self.exchange()
        st, sa = self.impersonate(fed["access_token"])
        tl.http_req(self.port, "POST", "/_gsts/expire")
        self.assertEqual(self.upload(sa["accessToken"], "late.csv"), 401)
        self.assertEqual(self.impersonate(fed["access_token"])[0], 401)
        st, fresh = self.exchange()
        self.assertEqual(self.impersonate(fresh["access_token"])[0], 200)


if __name__ == "__main__":
    unittest.main()
