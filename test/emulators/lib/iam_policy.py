"""IAM identity-policy evaluation for S3 requests (used by ../s3_front/server.py and ../glue/server.py).

Two parts, each from AWS documentation:

* request -> (action, resource ARN, condition context): "Actions, resources,
  and condition keys for Amazon S3" (Service Authorization Reference) and the
  per-operation "Permissions" sections of the S3 API reference:
    GetObject / HeadObject            s3:GetObject (s3:GetObjectVersion with versionId)
    PutObject, UploadPart, CreateMultipartUpload, CompleteMultipartUpload
                                      s3:PutObject (CopyObject also s3:GetObject on the source)
    DeleteObject                      s3:DeleteObject (s3:DeleteObjectVersion with versionId)
    DeleteObjects (POST ?delete)      s3:DeleteObject on every key
    AbortMultipartUpload              s3:AbortMultipartUpload
    ListParts (GET key?uploadId)      s3:ListMultipartUploadParts
    ListObjects(V2), HeadBucket       s3:ListBucket on the bucket; keys s3:prefix,
                                      s3:delimiter, s3:max-keys
    GetBucketLocation                 s3:GetBucketLocation
    ListMultipartUploads              s3:ListBucketMultipartUploads
    ListObjectVersions                s3:ListBucketVersions
    ListBuckets                       s3:ListAllMyBuckets on "*"
  Object ARNs are arn:aws:s3:::bucket/key, bucket ARNs arn:aws:s3:::bucket.

* evaluation: "Policy evaluation logic" (IAM User Guide): an explicit Deny
  wins, else an Allow is needed, else the request is implicitly denied.  A
  statement applies when its Action (or NotAction) and Resource (or
  NotResource) match -- wildcards * and ?, actions case-insensitive,
  resources case-sensitive -- and every condition holds: operators of one
  block are ANDed, keys of one operator ANDed, values of one key ORed.
  Condition operators: String{Equals,NotEquals,EqualsIgnoreCase,
  NotEqualsIgnoreCase,Like,NotLike}, Numeric{Equals,NotEquals,LessThan,
  LessThanEquals,GreaterThan,GreaterThanEquals}, Bool, Null, each with the
  ...IfExists form.  A key absent from the request makes a positive operator
  false and a negated one true ("IAM JSON policy elements: Condition
  operators"); IfExists makes an absent key true.

Deviations: no policy variables (${aws:username}), no ForAnyValue/ForAllValues
set operators, no resource-based policies, SCPs or permission boundaries.
DeleteObjects with one denied key is refused as a whole (S3 reports per key).
"""

import json
import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote

VERSIONS = ("2012-10-17", "2008-10-17")
NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "NumericNotEquals"}
OPERATORS = {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase",
             "StringNotEqualsIgnoreCase", "StringLike", "StringNotLike", "NumericEquals",
             "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals",
             "NumericGreaterThan", "NumericGreaterThanEquals", "Bool", "Null"}

BUCKET_SUBRESOURCES = {
    # query name -> (GET action, PUT action, DELETE action)
    "location": ("s3:GetBucketLocation", None, None),
    "uploads": ("s3:ListBucketMultipartUploads", None, None),
    "versions": ("s3:ListBucketVersions", None, None),
    "acl": ("s3:GetBucketAcl", "s3:PutBucketAcl", None),
    "policy": ("s3:GetBucketPolicy", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy"),
    "cors": ("s3:GetBucketCORS", "s3:PutBucketCORS", "s3:PutBucketCORS"),
    "lifecycle": ("s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration",
                  "s3:PutLifecycleConfiguration"),
    "versioning": ("s3:GetBucketVersioning", "s3:PutBucketVersioning", None),
    "tagging": ("s3:GetBucketTagging", "s3:PutBucketTagging", "s3:PutBucketTagging"),
    "website": ("s3:GetBucketWebsite", "s3:PutBucketWebsite", "s3:DeleteBucketWebsite"),
    "encryption": ("s3:GetEncryptionConfiguration", "s3:PutEncryptionConfiguration",
                   "s3:PutEncryptionConfiguration"),
}


class PolicyError(ValueError):
    pass


def _list(v):
    return v if isinstance(v, list) else [v]


def _wildcard(pattern, ignore_case):
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(rx + r"\Z", re.S | (re.I if ignore_case else 0))


class Policy:
    def __init__(self, doc):
        if isinstance(doc, (str, bytes)):
            try:
                doc = json.loads(doc)
            except ValueError as e:
                raise PolicyError("policy is not valid JSON: %s" % e)
        if not isinstance(doc, dict):
            raise PolicyError("policy must be a JSON object")
        if doc.get("Version") not in VERSIONS:
            raise PolicyError("Version must be one of %s" % ", ".join(VERSIONS))
        stmts = doc.get("Statement")
        if stmts is None:
            raise PolicyError("Statement is required")
        self.statements = [self._statement(s) for s in _list(stmts)]

    @staticmethod
    def _statement(s):
        if not isinstance(s, dict):
            raise PolicyError("a statement must be an object")
        if s.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError("Effect must be Allow or Deny")
        if "Principal" in s or "NotPrincipal" in s:
            raise PolicyError("an identity-based policy has no Principal")
        if ("Action" in s) == ("NotAction" in s):
            raise PolicyError("a statement needs exactly one of Action and NotAction")
        if ("Resource" in s) == ("NotResource" in s):
            raise PolicyError("a statement needs exactly one of Resource and NotResource")
        out = {"effect": s["Effect"], "sid": s.get("Sid")}
        akey = "Action" if "Action" in s else "NotAction"
        rkey = "Resource" if "Resource" in s else "NotResource"
        for a in _list(s[akey]):
            if not isinstance(a, str) or (a != "*" and ":" not in a):
                raise PolicyError("bad action %r (service:Action)" % (a,))
        for r in _list(s[rkey]):
            if not isinstance(r, str) or (r != "*" and not r.startswith("arn:")):
                raise PolicyError("bad resource %r" % (r,))
        out["actions"] = [_wildcard(a, True) for a in _list(s[akey])]
        out["not_action"] = akey == "NotAction"
        out["resources"] = [_wildcard(r, False) for r in _list(s[rkey])]
        out["not_resource"] = rkey == "NotResource"
        cond = s.get("Condition") or {}
        if not isinstance(cond, dict):
            raise PolicyError("Condition must be an object")
        conds = []
        for op, block in cond.items():
            base = op[:-len("IfExists")] if op.endswith("IfExists") else op
            if base not in OPERATORS:
                raise PolicyError("unsupported condition operator %s" % op)
            if not isinstance(block, dict):
                raise PolicyError("condition %s must map keys to values" % op)
            for key, vals in block.items():
                conds.append((base, op.endswith("IfExists"), key.lower(),
                              [str(v).lower() if isinstance(v, bool) else str(v)
                               for v in _list(vals)]))
        out["conditions"] = conds
        return out

    def evaluate(self, action, resource, context):
        """'Allow', 'ExplicitDeny' or 'ImplicitDeny'."""
        ctx = {k.lower(): v for k, v in context.items()}
        allowed = False
        for s in self.statements:
            if not self._applies(s, action, resource, ctx):
                continue
            if s["effect"] == "Deny":
                return "ExplicitDeny"
            allowed = True
        return "Allow" if allowed else "ImplicitDeny"

    @staticmethod
    def _applies(s, action, resource, ctx):
        hit = any(rx.match(action) for rx in s["actions"])
        if hit == s["not_action"]:
            return False
        hit = any(rx.match(resource) for rx in s["resources"])
        if hit == s["not_resource"]:
            return False
        return all(_condition(op, if_exists, ctx.get(key), vals)
                   for op, if_exists, key, vals in s["conditions"])


def _condition(op, if_exists, value, wanted):
    if op == "Null":
        return any((value is None) == (w.lower() == "true") for w in wanted)
    if value is None:
        return True if if_exists else op in NEGATED
    if op.startswith("String"):
        ic = "IgnoreCase" in op
        if "Like" in op:
            hit = any(_wildcard(w, False).match(value) for w in wanted)
        elif ic:
            hit = any(w.lower() == value.lower() for w in wanted)
        else:
            hit = value in wanted
        return not hit if op in NEGATED else hit
    if op == "Bool":
        return any(w.lower() == str(value).lower() for w in wanted)
    try:
        v = float(value)
        ws = [float(w) for w in wanted]
    except ValueError:
        return False
    cmp = {"NumericEquals": lambda a, b: a == b, "NumericNotEquals": lambda a, b: a == b,
           "NumericLessThan": lambda a, b: a < b, "NumericLessThanEquals": lambda a, b: a <= b,
           "NumericGreaterThan": lambda a, b: a > b,
           "NumericGreaterThanEquals": lambda a, b: a >= b}[op]
    hit = any(cmp(v, w) for w in ws)
    return not hit if op in NEGATED else hit


def s3_authorizations(method, raw_path, query_pairs, headers, body=b""):
    """The (action, resource, context) triples a path-style S3 request needs."""
    path = raw_path.split("?", 1)[0]
    segs = path.lstrip("/").split("/", 1)
    bucket = unquote(segs[0]) if segs[0] else ""
    key = unquote(segs[1]) if len(segs) > 1 and segs[1] != "" else None
    q = {}
    for name, value in query_pairs:
        q.setdefault(name, value)
    method = method.upper()
    if not bucket:
        return [("s3:ListAllMyBuckets", "*", {})]
    barn = "arn:aws:s3:::%s" % bucket
    if key is None:
        if method == "POST" and "delete" in q:
            keys = _delete_keys(body)
            return [("s3:DeleteObject", "%s/%s" % (barn, k), {}) for k in keys] or \
                [("s3:DeleteObject", barn + "/", {})]
        for sub, (get_a, put_a, del_a) in BUCKET_SUBRESOURCES.items():
            if sub in q:
                a = {"GET": get_a, "HEAD": get_a, "PUT": put_a, "DELETE": del_a}.get(method)
                return [(a or "s3:UnknownOperation", barn, {})]
        if method in ("GET", "HEAD"):
            ctx = {}
            for k in ("prefix", "delimiter", "max-keys"):
                if k in q:
                    ctx["s3:" + k] = q[k]
            return [("s3:ListBucket", barn, ctx)]
        if method == "PUT":
            return [("s3:CreateBucket", barn, {})]
        if method == "DELETE":
            return [("s3:DeleteBucket", barn, {})]
        return [("s3:UnknownOperation", barn, {})]
    oarn = "%s/%s" % (barn, key)
    if method in ("GET", "HEAD"):
        if "uploadId" in q:
            return [("s3:ListMultipartUploadParts", oarn, {})]
        for sub, a in (("acl", "s3:GetObjectAcl"), ("tagging", "s3:GetObjectTagging"),
                       ("attributes", "s3:GetObjectAttributes")):
            if sub in q:
                return [(a, oarn, {})]
        return [("s3:GetObjectVersion" if "versionId" in q else "s3:GetObject", oarn, {})]
    if method == "PUT":
        for sub, a in (("acl", "s3:PutObjectAcl"), ("tagging", "s3:PutObjectTagging")):
            if sub in q:
                return [(a, oarn, {})]
        out = [("s3:PutObject", oarn, {})]
        src = headers.get("x-amz-copy-source") if headers is not None else None
        if src:
            s = unquote(src.split("?", 1)[0]).lstrip("/")
            out.append(("s3:GetObject", "arn:aws:s3:::%s" % s, {}))
        return out
    if method == "POST":
        if "restore" in q:
            return [("s3:RestoreObject", oarn, {})]
        return [("s3:PutObject", oarn, {})]
    if method == "DELETE":
        if "uploadId" in q:
            return [("s3:AbortMultipartUpload", oarn, {})]
        return [("s3:DeleteObjectVersion" if "versionId" in q else "s3:DeleteObject", oarn, {})]
    return [("s3:UnknownOperation", oarn, {})]


def _delete_keys(body):
    try:
        root = ET.fromstring(body or b"<Delete/>")
    except ET.ParseError:
        return []
    return [el.text or "" for el in root.iter() if el.tag.split("}")[-1] == "Key"]


def denial_message(principal, action, resource, decision):
    why = "with an explicit deny in an identity-based policy" if decision == "ExplicitDeny" \
        else "because no identity-based policy allows the %s action" % action
    return "User: %s is not authorized to perform: %s on resource: \"%s\" %s" % (
        principal, action, resource, why)
