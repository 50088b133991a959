"""Unit tests of iam_policy.py (S3 request -> IAM action, policy evaluation);
the S3 front enforcing a policy (--policy) is tested in ../s3_front/test_server.py.

Run: cd test/emulators/lib && /usr/bin/python3 -m unittest -q test_iam_policy
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import iam_policy  # noqa: E402
from iam_policy import Policy, PolicyError, s3_authorizations  # noqa: E402

# The shape of README.md's permissions policy.
README_LIKE = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow",
         "Action": ["s3:PutObject", "s3:GetObject", "s3:GetObjectVersion", "s3:DeleteObject",
                    "s3:DeleteObjectVersion", "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts"],
         "Resource": "arn:aws:s3:::my-bucket/sfexport/*"},
        {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
         "Resource": "arn:aws:s3:::my-bucket",
         "Condition": {"StringLike": {"s3:prefix": ["sfexport/*"]}}},
    ],
}


def auth(method, target, headers=None, body=b""):
    path, _, q = target.partition("?")
    pairs = [(p.partition("=")[0], p.partition("=")[2]) for p in q.split("&") if p]
    return s3_authorizations(method, path, pairs, headers or {}, body)


class MappingTests(unittest.TestCase):
    def test_objects(self):
        o = "arn:aws:s3:::b/k/x.csv.gz"
        self.assertEqual(auth("PUT", "/b/k/x.csv.gz"), [("s3:PutObject", o, {})])
        self.assertEqual(auth("PUT", "/b/k/x.csv.gz?partNumber=2&uploadId=U"),
                         [("s3:PutObject", o, {})])
        self.assertEqual(auth("POST", "/b/k/x.csv.gz?uploads"), [("s3:PutObject", o, {})])
        self.assertEqual(auth("POST", "/b/k/x.csv.gz?uploadId=U"), [("s3:PutObject", o, {})])
        self.assertEqual(auth("GET", "/b/k/x.csv.gz"), [("s3:GetObject", o, {})])
        self.assertEqual(auth("HEAD", "/b/k/x.csv.gz"), [("s3:GetObject", o, {})])
        self.assertEqual(auth("GET", "/b/k/x.csv.gz?versionId=3"),
                         [("s3:GetObjectVersion", o, {})])
        self.assertEqual(auth("GET", "/b/k/x.csv.gz?uploadId=U"),
                         [("s3:ListMultipartUploadParts", o, {})])
        self.assertEqual(auth("DELETE", "/b/k/x.csv.gz"), [("s3:DeleteObject", o, {})])
        self.assertEqual(auth("DELETE", "/b/k/x.csv.gz?uploadId=U"),
                         [("s3:AbortMultipartUpload", o, {})])
        self.assertEqual(auth("DELETE", "/b/k/x.csv.gz?versionId=3"),
                         [("s3:DeleteObjectVersion", o, {})])
        # percent-encoded keys are decoded in the ARN
        self.assertEqual(auth("GET", "/b/a%20b/c%2Bd")[0][1], "arn:aws:s3:::b/a b/c+d")
        # CopyObject reads the source too
        self.assertEqual(auth("PUT", "/b/new", {"x-amz-copy-source": "/src/old%20key"}),
                         [("s3:PutObject", "arn:aws:s3:::b/new", {}),
                          ("s3:GetObject", "arn:aws:s3:::src/old key", {})])

    def test_buckets(self):
        b = "arn:aws:s3:::b"
        self.assertEqual(auth("GET", "/b?list-type=2&prefix=p/"),
                         [("s3:ListBucket", b, {"s3:prefix": "p/"})])
        self.assertEqual(auth("GET", "/b/?list-type=2&delimiter=/&max-keys=5"),
                         [("s3:ListBucket", b, {"s3:delimiter": "/", "s3:max-keys": "5"})])
        self.assertEqual(auth("HEAD", "/b"), [("s3:ListBucket", b, {})])
        self.assertEqual(auth("GET", "/b?location"), [("s3:GetBucketLocation", b, {})])
        self.assertEqual(auth("GET", "/b?uploads"), [("s3:ListBucketMultipartUploads", b, {})])
        self.assertEqual(auth("GET", "/b?versions"), [("s3:ListBucketVersions", b, {})])
        self.assertEqual(auth("PUT", "/b"), [("s3:CreateBucket", b, {})])
        self.assertEqual(auth("DELETE", "/b"), [("s3:DeleteBucket", b, {})])
        self.assertEqual(auth("GET", "/"), [("s3:ListAllMyBuckets", "*", {})])
        body = b"<Delete><Object><Key>p/1</Key></Object><Object><Key>q/2</Key></Object></Delete>"
        self.assertEqual(auth("POST", "/b?delete", body=body),
                         [("s3:DeleteObject", b + "/p/1", {}), ("s3:DeleteObject", b + "/q/2", {})])


class EvaluationTests(unittest.TestCase):
    def setUp(self):
        self.p = Policy(json.dumps(README_LIKE))

    def ev(self, method, target, **kw):
        return [self.p.evaluate(a, r, c) for a, r, c in auth(method, target, **kw)]

    def test_readme_policy(self):
        for m, t in (("PUT", "/my-bucket/sfexport/1/2/f.csv.gz"),
                     ("GET", "/my-bucket/sfexport/f"), ("DELETE", "/my-bucket/sfexport/f"),
                     ("POST", "/my-bucket/sfexport/f?uploads"),
                     ("DELETE", "/my-bucket/sfexport/f?uploadId=U"),
                     ("GET", "/my-bucket/sfexport/f?uploadId=U"),
                     ("GET", "/my-bucket?list-type=2&prefix=sfexport/"),
                     ("GET", "/my-bucket?list-type=2&prefix=sfexport/1/")):
            self.assertEqual(self.ev(m, t), ["Allow"], (m, t))
        for m, t in (("PUT", "/my-bucket/elsewhere/f"), ("PUT", "/my-bucket/sfexport"),
                     ("PUT", "/other-bucket/sfexport/f"), ("GET", "/my-bucket/SFEXPORT/f"),
                     ("GET", "/my-bucket?list-type=2&prefix=other/"),
                     ("GET", "/my-bucket?list-type=2"),      # no prefix: condition false
                     ("GET", "/my-bucket?location"),          # no s3:prefix either
                     ("PUT", "/my-bucket"), ("GET", "/"),
                     ("PUT", "/my-bucket/sfexport/f?acl")):
            self.assertEqual(self.ev(m, t), ["ImplicitDeny"], (m, t))

    def test_explicit_deny_wins(self):
        doc = json.loads(json.dumps(README_LIKE))
        doc["Statement"].append({"Effect": "Deny", "Action": "s3:Delete*",
                                 "Resource": "arn:aws:s3:::my-bucket/sfexport/keep/*"})
        p = Policy(doc)
        self.assertEqual(p.evaluate("s3:DeleteObject", "arn:aws:s3:::my-bucket/sfexport/keep/x", {}),
                         "ExplicitDeny")
        self.assertEqual(p.evaluate("s3:DeleteObject", "arn:aws:s3:::my-bucket/sfexport/x", {}),
                         "Allow")
        # actions match case-insensitively, resources case-sensitively
        self.assertEqual(p.evaluate("s3:deleteobject", "arn:aws:s3:::my-bucket/sfexport/x", {}),
                         "Allow")

    def test_not_action_not_resource_and_operators(self):
        p = Policy({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "NotAction": "s3:Delete*", "NotResource": "arn:aws:s3:::secret/*"},
            {"Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"StringNotEqualsIfExists": {"s3:prefix": "ok/"}}}]})
        # ...IfExists: an absent key makes the condition true, so the Deny applies
        self.assertEqual(p.evaluate("s3:GetObject", "arn:aws:s3:::b/x", {}), "ExplicitDeny")
        p0 = Policy({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "NotAction": "s3:Delete*", "NotResource": "arn:aws:s3:::secret/*"},
            {"Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"StringEquals": {"s3:prefix": "no/"}}}]})
        self.assertEqual(p0.evaluate("s3:GetObject", "arn:aws:s3:::b/x", {}), "Allow")
        self.assertEqual(p0.evaluate("s3:DeleteObject", "arn:aws:s3:::b/x", {}), "ImplicitDeny")
        self.assertEqual(p0.evaluate("s3:GetObject", "arn:aws:s3:::secret/x", {}), "ImplicitDeny")
        self.assertEqual(p0.evaluate("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "no/"}),
                         "ExplicitDeny")
        self.assertEqual(p.evaluate("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "ok/"}),
                         "Allow")
        self.assertEqual(p.evaluate("s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "no/"}),
                         "ExplicitDeny")
        # negated operator without IfExists: an absent key makes it true
        p2 = Policy({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
             "Condition": {"StringNotLike": {"s3:prefix": "private/*"},
                           "NumericLessThanEquals": {"s3:max-keys": "100"}}}]})
        self.assertEqual(p2.evaluate("s3:ListBucket", "arn:aws:s3:::b",
                                     {"s3:prefix": "x", "s3:max-keys": "50"}), "Allow")
        self.assertEqual(p2.evaluate("s3:ListBucket", "arn:aws:s3:::b",
                                     {"s3:prefix": "private/a", "s3:max-keys": "50"}),
                         "ImplicitDeny")
        self.assertEqual(p2.evaluate("s3:ListBucket", "arn:aws:s3:::b",
                                     {"s3:prefix": "x", "s3:max-keys": "500"}), "ImplicitDeny")
        self.assertEqual(p2.evaluate("s3:ListBucket", "arn:aws:s3:::b", {}), "ImplicitDeny")
        p3 = Policy({"Version": "2012-10-17", "Statement": {
            "Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*",
            "Condition": {"Null": {"s3:prefix": "false"}}}})
        self.assertEqual(p3.evaluate("s3:ListBucket", "*", {"s3:prefix": ""}), "Allow")
        self.assertEqual(p3.evaluate("s3:ListBucket", "*", {}), "ImplicitDeny")

    def test_wildcards(self):
        p = Policy({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "s3:Get?bject", "Resource": "arn:aws:s3:::b/a?c/*.gz"}]})
        self.assertEqual(p.evaluate("s3:GetObject", "arn:aws:s3:::b/abc/d/e.gz", {}), "Allow")
        self.assertEqual(p.evaluate("s3:GetObject", "arn:aws:s3:::b/abbc/e.gz", {}), "ImplicitDeny")
        self.assertEqual(p.evaluate("s3:GetObject", "arn:aws:s3:::b/a.c/e.gz", {}), "Allow")
        self.assertEqual(p.evaluate("s3:GetObject", "arn:aws:s3:::b/abc/e.gzip", {}), "ImplicitDeny")

    def test_malformed_policies(self):
        bad = [
            "not json",
            {"Statement": []},
            {"Version": "2012-10-17"},
            {"Version": "2012-10-17", "Statement": [{"Effect": "Maybe", "Action": "*",
                                                      "Resource": "*"}]},
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*"}]},
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*"}]},
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "PutObject",
                                                      "Resource": "*"}]},
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                      "Resource": "my-bucket/*"}]},
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                      "Resource": "*", "Principal": "*"}]},
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*",
                                                      "Resource": "*",
                                                      "Condition": {"StringSorta": {"a": "b"}}}]},
        ]
        for doc in bad:
            with self.assertRaises(PolicyError, msg=repr(doc)):
                Policy(doc if isinstance(doc, str) else json.dumps(doc))

    def test_denial_message(self):
        self.assertEqual(
            iam_policy.denial_message("arn:aws:iam::1:user/u", "s3:PutObject",
                                      "arn:aws:s3:::b/k", "ImplicitDeny"),
            'User: arn:aws:iam::1:user/u is not authorized to perform: s3:PutObject on resource: '
            '"arn:aws:s3:::b/k" because no identity-based policy allows the s3:PutObject action')


if __name__ == "__main__":
    unittest.main()
