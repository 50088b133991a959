"""Unit tests of the STS stand-in, driven by botocore's own STS client (it
builds the Query requests from the service model, signs them, and parses the
XML answers with the same model), and end to end: the credentials it hands
out are accepted by s3rver behind s3_front.

    cd test/emulators/aws_sts && /usr/bin/python3 -m unittest -q test_aws_sts
"""

import datetime
import json
import os
import shutil
import sys
import tempfile
import time
import unittest
import warnings
from urllib.parse import urlencode
from xml.etree import ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import botocore.session  # noqa: E402
import jwt  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

import cred_testlib as tl  # noqa: E402

ACCT = "123456789012"
UK, US = "AKIDSTSUSER000001", "sts-user-secret/1+"
USER = "arn:aws:iam::%s:user/alice" % ACCT
OTHER_K, OTHER_S = "AKIDSTSOTHER00001", "sts-other-secret"
ROLE = "arn:aws:iam::%s:role/exporter" % ACCT
EXT_ROLE = "arn:aws:iam::%s:role/partner" % ACCT
CHAIN_ROLE = "arn:aws:iam::%s:role/second" % ACCT
IRSA_ROLE = "arn:aws:iam::%s:role/irsa" % ACCT
ISSUER = "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
PROVIDER = "arn:aws:iam::%s:oidc-provider/%s" % (ACCT, ISSUER[len("https://"):])
COND = ISSUER[len("https://"):]
SUBJECT = "system:serviceaccount:etl:sfexport"
NS = {"s": "https://sts.amazonaws.com/doc/2011-06-15/"}


def make_key():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    return key, jwk


class StsTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        warnings.simplefilter("ignore", ResourceWarning)
        cls.tmp = tempfile.mkdtemp(prefix="sts-")
        cls.key, jwk = make_key()
        cls.other_key, _ = make_key()
        cls.issued = os.path.join(cls.tmp, "sts-issued.json")
        config = {
            "account_id": ACCT,
            "users": [{"access_key_id": UK, "secret_access_key": US, "arn": USER},
                      {"access_key_id": OTHER_K, "secret_access_key": OTHER_S,
                       "arn": "arn:aws:iam::%s:user/mallory" % ACCT}],
            "roles": [
                {"arn": ROLE, "max_session_duration": 3600, "trust_policy": {
                    "Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Principal": {"AWS": USER},
                         "Action": "sts:AssumeRole"}]}},
                {"arn": EXT_ROLE, "max_session_duration": 43200, "trust_policy": {
                    "Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::%s:root"
                                                          % ACCT},
                         "Action": "sts:AssumeRole",
                         "Condition": {"StringEquals": {"sts:ExternalId": "ext-4711"}}}]}},
                {"arn": CHAIN_ROLE, "max_session_duration": 43200, "trust_policy": {
                    "Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Principal": {"AWS": ROLE},
                         "Action": "sts:AssumeRole"}]}},
                {"arn": IRSA_ROLE, "trust_policy": {
                    "Version": "2012-10-17", "Statement": [
                        {"Effect": "Allow", "Principal": {"Federated": PROVIDER},
                         "Action": "sts:AssumeRoleWithWebIdentity",
                         "Condition": {"StringEquals": {COND + ":aud": "sts.amazonaws.com",
                                                        COND + ":sub": SUBJECT}}}]}}],
            "oidc_providers": [{"arn": PROVIDER, "url": ISSUER,
                                "client_ids": ["sts.amazonaws.com"],
                                "jwks": {"keys": [jwk]}}]}
        cls.config_path = os.path.join(cls.tmp, "sts.json")
        with open(cls.config_path, "w") as f:
            json.dump(config, f)
        cls.sts = tl.start(cls.tmp, "aws_sts", "sts", [
            "--config", cls.config_path, "--region", "us-east-1",
            "--region", tl.REGION, "--issued-file", cls.issued])
        cls.endpoint = "http://127.0.0.1:%d" % cls.sts.port
        cls.s3rver, cls.front = tl.start_s3(cls.tmp, [cls.issued])
        cls.secrets = [US, OTHER_S]

    @classmethod
    def tearDownClass(cls):
        cls.sts.stop()
        cls.front.stop()
        cls.s3rver.stop()
        log = tl.read_log(cls.tmp, "sts") + tl.read_log(cls.tmp, "front")
        for s in cls.secrets:
            assert s.encode() not in log, "a secret reached a log"
        assert b"eyJ" not in log, "a JWT reached a log"
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        tl.http_req(self.sts.port, "POST", "/_sts/reset")

    # -- helpers
    def client(self, ak=UK, sk=US, token=None, region="us-east-1"):
        return botocore.session.get_session().create_client(
            "sts", endpoint_url=self.endpoint, region_name=region,
            aws_access_key_id=ak, aws_secret_access_key=sk, aws_session_token=token,
            config=Config(retries={"total_max_attempts": 1}))

    def anon(self):
        from botocore import UNSIGNED
        return botocore.session.get_session().create_client(
            "sts", endpoint_url=self.endpoint, region_name="us-east-1",
            config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}))

    def err(self, fn, **kw):
        with self.assertRaises(ClientError) as cm:
            fn(**kw)
        r = cm.exception.response
        return r["Error"]["Code"], r["ResponseMetadata"]["HTTPStatusCode"], \
            r["Error"]["Message"]

    def assume(self, role=ROLE, **kw):
        r = self.client(**kw.pop("_creds", {})).assume_role(
            RoleArn=role, RoleSessionName=kw.pop("session", "s1"), **kw)
        self.secrets += [r["Credentials"]["SecretAccessKey"], r["Credentials"]["SessionToken"]]
        return r

    def web_token(self, key=None, **over):
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": "sts.amazonaws.com", "sub": SUBJECT,
                  "iat": now, "exp": now + 3600}
        claims.update(over)
        return jwt.encode({k: v for k, v in claims.items() if v is not None},
                          key or self.key, algorithm="RS256", headers={"kid": "k1"})

    def creds_of(self, r):
        c = r["Credentials"]
        return {"ak": c["AccessKeyId"], "sk": c["SecretAccessKey"], "token": c["SessionToken"]}

    # -- AssumeRole
    def test_assume_role_and_use_at_s3(self):
        before = time.time()
        r = self.assume()
        c = r["Credentials"]
        self.assertTrue(c["AccessKeyId"].startswith("ASIA"))
        self.assertEqual(r["AssumedRoleUser"]["Arn"],
                         "arn:aws:sts::%s:assumed-role/exporter/s1" % ACCT)
        self.assertTrue(r["AssumedRoleUser"]["AssumedRoleId"].startswith("AROA"))
        left = c["Expiration"].timestamp() - before
        self.assertTrue(3590 <= left <= 3602, left)   # default DurationSeconds 3600
        s3 = tl.s3_client("http://127.0.0.1:%d" % self.front.port, c["AccessKeyId"],
                          c["SecretAccessKey"], c["SessionToken"])
        s3.put_object(Bucket=tl.BUCKET, Key="sts/one.csv", Body=b"x\n")
        self.assertEqual(s3.get_object(Bucket=tl.BUCKET, Key="sts/one.csv")["Body"].read(),
                         b"x\n")
        who = self.client(**self.creds_of(r)).get_caller_identity()
        self.assertEqual((who["Arn"], who["Account"]), (r["AssumedRoleUser"]["Arn"], ACCT))
        reqs = json.loads(tl.http_req(self.sts.port, "GET", "/_sts/requests")[2])["requests"]
        self.assertEqual([(q["action"], q["status"]) for q in reqs],
                         [("AssumeRole", 200), ("GetCallerIdentity", 200)])
        self.assertEqual(reqs[0]["role_arn"], ROLE)

    def test_trust_policy(self):
        code = self.err(self.client(OTHER_K, OTHER_S).assume_role, RoleArn=ROLE,
                        RoleSessionName="s1")
        self.assertEqual(code, ("AccessDenied", 403,
                                "User: arn:aws:iam::%s:user/mallory is not authorized to "
                                "perform: sts:AssumeRole on resource: %s" % (ACCT, ROLE)))
        code = self.err(self.client().assume_role, RoleSessionName="s1",
                        RoleArn="arn:aws:iam::%s:role/nosuchrole" % ACCT)
        self.assertEqual(code[:2], ("AccessDenied", 403))

    def test_external_id(self):
        c = self.client(OTHER_K, OTHER_S)   # account root principal: any user
        self.assertEqual(self.err(c.assume_role, RoleArn=EXT_ROLE,
                                  RoleSessionName="p0")[:2], ("AccessDenied", 403))
        self.assertEqual(self.err(c.assume_role, RoleArn=EXT_ROLE, RoleSessionName="p0",
                                  ExternalId="ext-0000")[:2], ("AccessDenied", 403))
        r = self.assume(EXT_ROLE, ExternalId="ext-4711",
                        _creds={"ak": OTHER_K, "sk": OTHER_S}, session="p0")
        self.assertIn("assumed-role/partner/p0", r["AssumedRoleUser"]["Arn"])

    def test_duration_seconds(self):
        c = self.client()
        # below the API minimum, raw (botocore's own validation would refuse it)
        st, body = self.raw_signed({"Action": "AssumeRole", "Version": "2011-06-15",
                                    "RoleArn": ROLE, "RoleSessionName": "s0",
                                    "DurationSeconds": "899"})
        self.assertEqual((st, self.code_of(body)), (400, "ValidationError"))
        self.assertIn("Value '899' at 'durationSeconds' failed to satisfy constraint: "
                      "Member must have value greater than or equal to 900", body.decode())
        code = self.err(c.assume_role, RoleArn=ROLE, RoleSessionName="s0",
                        DurationSeconds=7200)
        self.assertEqual(code, ("ValidationError", 400, "The requested DurationSeconds "
                                "exceeds the MaxSessionDuration set for this role."))
        before = time.time()
        r = self.assume(DurationSeconds=900)
        left = r["Credentials"]["Expiration"].timestamp() - before
        self.assertTrue(890 <= left <= 902, left)
        # above the API maximum, raw (botocore's own validation would refuse it)
        st, body = self.raw_signed({"Action": "AssumeRole", "Version": "2011-06-15",
                                    "RoleArn": EXT_ROLE, "RoleSessionName": "s0",
                                    "DurationSeconds": "43201", "ExternalId": "ext-4711"})
        self.assertEqual((st, self.code_of(body)), (400, "ValidationError"))
        self.assertIn("less than or equal to 43200", body.decode())

    def test_session_name_rules(self):
        st, body = self.raw_signed({"Action": "AssumeRole", "Version": "2011-06-15",
                                    "RoleArn": ROLE, "RoleSessionName": "bad name"})
        self.assertEqual((st, self.code_of(body)), (400, "ValidationError"))
        st, body = self.raw_signed({"Action": "AssumeRole", "Version": "2011-06-15",
                                    "RoleArn": ROLE})
        self.assertEqual((st, self.code_of(body)), (400, "ValidationError"))
        self.assertIn("Value null at 'roleSessionName'", body.decode())
        st, body = self.raw_signed({"Action": "AssumeRole", "Version": "2011-06-15",
                                    "RoleArn": ROLE, "RoleSessionName": "s"})
        self.assertEqual((st, self.code_of(body)), (400, "ValidationError"))
        self.assertIn("length greater than or equal to 2", body.decode())

    def test_role_chaining(self):
        first = self.assume()
        second = self.assume(CHAIN_ROLE, _creds=self.creds_of(first), session="s2")
        self.assertIn("assumed-role/second/s2", second["AssumedRoleUser"]["Arn"])
        code = self.err(self.client(**self.creds_of(first)).assume_role,
                        RoleArn=CHAIN_ROLE, RoleSessionName="s3", DurationSeconds=7200)
        self.assertEqual(code[:2], ("ValidationError", 400))
        self.assertIn("role chaining", code[2])

    def test_signature_refusals(self):
        self.assertEqual(self.err(self.client(UK, "wrong").assume_role, RoleArn=ROLE,
                                  RoleSessionName="s0")[:2], ("SignatureDoesNotMatch", 403))
        self.assertEqual(self.err(self.client("AKIDUNKNOWN", US).assume_role, RoleArn=ROLE,
                                  RoleSessionName="s0")[:2], ("InvalidClientTokenId", 403))
        code = self.err(self.client(region="ap-south-1").assume_role, RoleArn=ROLE,
                        RoleSessionName="s0")
        self.assertEqual(code, ("SignatureDoesNotMatch", 403,
                                "Credential should be scoped to a valid region."))
        # the regional endpoint's region is accepted too (--region eu-west-1)
        self.assertIn("Arn", self.client(region=tl.REGION).get_caller_identity())
        self.assertEqual(self.err(self.anon().assume_role, RoleArn=ROLE,
                                  RoleSessionName="s0")[:2],
                         ("MissingAuthenticationToken", 403))
        old = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)
        st, body = self.raw_signed({"Action": "GetCallerIdentity", "Version": "2011-06-15"},
                                   when=old)
        self.assertEqual((st, self.code_of(body)), (403, "SignatureDoesNotMatch"))
        self.assertIn("Signature expired", body.decode())
        r = self.assume()
        bad = dict(self.creds_of(r), token="not-the-token")
        self.assertEqual(self.err(self.client(**bad).get_caller_identity)[:2],
                         ("InvalidClientTokenId", 403))

    def test_expiry(self):
        r = self.assume()
        creds = self.creds_of(r)
        st, _, body = tl.http_req(self.sts.port, "POST", "/_sts/expire")
        self.assertEqual(st, 200)
        self.assertEqual(self.err(self.client(**creds).get_caller_identity)[:2],
                         ("ExpiredToken", 403))
        s3 = tl.s3_client("http://127.0.0.1:%d" % self.front.port, creds["ak"],
                          creds["sk"], creds["token"])
        with self.assertRaises(ClientError) as cm:
            s3.put_object(Bucket=tl.BUCKET, Key="late", Body=b"x")
        self.assertEqual(cm.exception.response["Error"]["Code"], "ExpiredToken")
        # renewal: a new AssumeRole gives working credentials
        fresh = self.assume()
        self.assertNotEqual(fresh["Credentials"]["AccessKeyId"], creds["ak"])
        self.client(**self.creds_of(fresh)).get_caller_identity()

    def test_lifetime_option(self):
        tmp = tempfile.mkdtemp(prefix="sts-life-", dir=self.tmp)
        p = tl.start(tmp, "aws_sts", "sts2", [
            "--config", self.config_path, "--lifetime", "2"])
        try:
            c = botocore.session.get_session().create_client(
                "sts", endpoint_url="http://127.0.0.1:%d" % p.port, region_name="us-east-1",
                aws_access_key_id=UK, aws_secret_access_key=US,
                config=Config(retries={"total_max_attempts": 1}))
            r = c.assume_role(RoleArn=ROLE, RoleSessionName="short", DurationSeconds=900)
            self.secrets += [r["Credentials"]["SecretAccessKey"]]
            left = r["Credentials"]["Expiration"].timestamp() - time.time()
            self.assertTrue(0 < left <= 2.5, left)
            time.sleep(max(0, left) + 1.1)
            c2 = botocore.session.get_session().create_client(
                "sts", endpoint_url="http://127.0.0.1:%d" % p.port, region_name="us-east-1",
                aws_access_key_id=r["Credentials"]["AccessKeyId"],
                aws_secret_access_key=r["Credentials"]["SecretAccessKey"],
                aws_session_token=r["Credentials"]["SessionToken"],
                config=Config(retries={"total_max_attempts": 1}))
            self.assertEqual(self.err(c2.get_caller_identity)[:2], ("ExpiredToken", 403))
        finally:
            p.stop()

    # -- AssumeRoleWithWebIdentity
    def test_web_identity(self):
        r = self.anon().assume_role_with_web_identity(
            RoleArn=IRSA_ROLE, RoleSessionName="botocore-session-1",
            WebIdentityToken=self.web_token())
        self.secrets += [r["Credentials"]["SecretAccessKey"], r["Credentials"]["SessionToken"]]
        self.assertEqual(r["SubjectFromWebIdentityToken"], SUBJECT)
        self.assertEqual(r["Audience"], "sts.amazonaws.com")
        self.assertEqual(r["AssumedRoleUser"]["Arn"],
                         "arn:aws:sts::%s:assumed-role/irsa/botocore-session-1" % ACCT)
        s3 = tl.s3_client("http://127.0.0.1:%d" % self.front.port,
                          r["Credentials"]["AccessKeyId"],
                          r["Credentials"]["SecretAccessKey"],
                          r["Credentials"]["SessionToken"])
        s3.put_object(Bucket=tl.BUCKET, Key="irsa/1", Body=b"1")

    def test_web_identity_refusals(self):
        a = self.anon()

        def call(tok, role=IRSA_ROLE):
            return self.err(a.assume_role_with_web_identity, RoleArn=role,
                            RoleSessionName="s0", WebIdentityToken=tok)[:2]
        self.assertEqual(call(self.web_token(aud="other")), ("InvalidIdentityToken", 400))
        self.assertEqual(call(self.web_token(exp=int(time.time()) - 10)),
                         ("ExpiredTokenException", 400))
        self.assertEqual(call(self.web_token(key=self.other_key)),
                         ("InvalidIdentityToken", 400))
        self.assertEqual(call(self.web_token(iss="https://elsewhere.example")),
                         ("InvalidIdentityToken", 400))
        self.assertEqual(call("not-a-jwt"), ("InvalidIdentityToken", 400))
        self.assertEqual(call(self.web_token(sub="system:serviceaccount:etl:other")),
                         ("AccessDenied", 403))
        self.assertEqual(call(self.web_token(), role=ROLE), ("AccessDenied", 403))

    # -- wire format
    def raw_signed(self, params, when=None, ak=UK, sk=US, region="us-east-1"):
        body = urlencode(params).encode()
        req = AWSRequest(method="POST", url=self.endpoint + "/", data=body,
                         headers={"Content-Type":
                                  "application/x-www-form-urlencoded; charset=utf-8"})
        signer = SigV4Auth(Credentials(ak, sk), "sts", region)
        if when is None:
            signer.add_auth(req)
        else:
            req.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
            signer._modify_request_before_signing(req)
            creq = signer.canonical_request(req)
            signer._inject_signature_to_request(
                req, signer.signature(signer.string_to_sign(req, creq), req))
        st, _, data = tl.http_req(self.sts.port, "POST", "/", body, dict(req.headers.items()))
        return st, data

    @staticmethod
    def code_of(body):
        return ElementTree.fromstring(body).findtext("s:Error/s:Code", namespaces=NS)

    def test_error_shape_and_actions(self):
        st, body = self.raw_signed({"Action": "AssumeRole", "Version": "2011-06-15",
                                    "RoleArn": ROLE, "RoleSessionName": "s0",
                                    "DurationSeconds": "100"})
        root = ElementTree.fromstring(body)
        self.assertEqual(root.tag, "{%s}ErrorResponse" % NS["s"])
        self.assertEqual(root.findtext("s:Error/s:Type", namespaces=NS), "Sender")
        self.assertEqual(root.findtext("s:Error/s:Code", namespaces=NS), "ValidationError")
        self.assertTrue(root.findtext("s:Error/s:Message", namespaces=NS))
        self.assertTrue(root.findtext("s:RequestId", namespaces=NS))
        st, body = self.raw_signed({"Action": "AssumeRole", "Version": "2011-01-01",
                                    "RoleArn": ROLE, "RoleSessionName": "s0"})
        self.assertEqual((st, self.code_of(body)), (400, "InvalidAction"))
        st, body = self.raw_signed({"Action": "GetSessionToken", "Version": "2011-06-15"})
        self.assertEqual((st, self.code_of(body)), (400, "InvalidAction"))

    def test_faults(self):
        tl.http_req(self.sts.port, "POST", "/_sts/faults",
                    json.dumps({"kind": "throttling", "path_regex": "/AssumeRole$"}).encode())
        self.assertEqual(self.err(self.client().assume_role, RoleArn=ROLE,
                                  RoleSessionName="s0")[:2], ("Throttling", 400))
        self.assume()
        stats = json.loads(tl.http_req(self.sts.port, "GET", "/_sts/stats")[2])
        self.assertEqual(stats["by_action"], {"AssumeRole": 2})
        self.assertEqual(stats["errors_by_code"], {"Throttling": 1})
        self.assertEqual(stats["issued"], 1)


if __name__ == "__main__":
    unittest.main()
