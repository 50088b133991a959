#!/usr/bin/python3
"""SigV4-verifying reverse proxy placed in front of s3rver (sfexport tests).

s3rver (npm, 3.7.1) checks the form of the Authorization header, the clock and
the key id but does not verify SigV4 signatures ("Signature version 4
calculation is unimplemeneted", lib/middleware/authentication.js).  This front
verifies every request with an independent implementation -- botocore's
S3SigV4Auth (Debian's python3-botocore) -- and forwards good requests
unchanged to s3rver.

    test/emulators/start s3_front --port 0 --port-file F --upstream http://127.0.0.1:S3RVERPORT
                   --key ACCESS=SECRET [--key ...] [--session-token ACCESS=TOKEN]
                   --region R [--host 127.0.0.1]
                   [--issued-credentials FILE ...] [--upstream-key ACCESS]

Temporary credentials handed out by the credential stand-ins (aws_sts,
aws_imds, aws_ecs: their --issued-file, issued_creds.py) are accepted too;
an expired one gets 400 ExpiredToken.  s3rver knows only the keys it was
started with, so such a request, once verified, is signed anew with
--upstream-key (a --key) before it is forwarded.

Admin API (never forwarded) under /_front/: see README.md.

Rules, with sources:
- Canonical request / string to sign / signing key: botocore/auth.py
  (SigV4Auth.canonical_request, string_to_sign, signature; S3SigV4Auth does
  not normalize the URI path: "For S3, we do not normalize the path").
  AWS doc: https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
  (CanonicalURI = URI-encoded path, each segment encoded once for S3;
  CanonicalQueryString = names and values URI-encoded with only
  A-Za-z0-9-_.~ unreserved, sorted by name).
- x-amz-content-sha256 is required on every SigV4 request to S3 and must equal
  the hex SHA-256 of the payload or be UNSIGNED-PAYLOAD; otherwise 400
  XAmzContentSHA256Mismatch.
  https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
- Error codes and HTTP statuses: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
  (SignatureDoesNotMatch 403, InvalidAccessKeyId 403, RequestTimeTooSkewed 403,
  XAmzContentSHA256Mismatch 400, InvalidToken 400, AuthorizationHeaderMalformed
  400, MissingContentLength 411, SlowDown 503, ServiceUnavailable 503,
  InternalError 500).
- Clock skew: at most 15 minutes between X-Amz-Date and server time.
- Presigned URLs (query auth):
  https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html
  (payload "UNSIGNED-PAYLOAD", X-Amz-Signature excluded from the canonical
  query, X-Amz-Expires at most 604800).
"""

import argparse
import datetime
import email.utils
import hmac
import http.client
import json
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import quote, unquote, unquote_plus, urlsplit
from xml.sax.saxutils import escape as xml_escape

import os
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.compat import HTTPHeaders  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

import emu_common as ec  # noqa: E402
import iam_policy  # noqa: E402
import issued_creds  # noqa: E402

PROG = "s3_front"
MAX_SKEW = datetime.timedelta(minutes=15)
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
# Hop-by-hop headers (RFC 9110 7.6.1) are not forwarded; Expect is handled by
# this server (100-continue) and not repeated upstream.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authenticate",
              "proxy-authorization", "te", "trailer", "transfer-encoding",
              "upgrade", "expect"}

FAULT_KINDS = {"slowdown", "unavailable", "internal", "error", "drop",
               "drop_after", "delay"}


class S3Error(Exception):
    def __init__(self, status, code, message, **extra):
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


def s3_error_xml(code, message, extra, request_id, host_id):
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<Error>',
             "<Code>%s</Code>" % xml_escape(code),
             "<Message>%s</Message>" % xml_escape(message)]
    for k, v in extra.items():
        parts.append("<%s>%s</%s>" % (k, xml_escape(str(v)), k))
    parts.append("<RequestId>%s</RequestId><HostId>%s</HostId></Error>"
                 % (request_id, host_id))
    return "".join(parts).encode()


# ---------------------------------------------------------------------------
# Verification with botocore


class _ExactHeadersMixin:
    """Make botocore sign exactly the headers the client listed.

    botocore's headers_to_sign() takes every request header except a small
    blacklist (expect, user-agent, x-amzn-trace-id) and adds host from the URL.
    To verify a received request we need exactly the SignedHeaders it names,
    with their received values; everything else (canonical_headers trimming,
    canonical query encoding, string to sign, HMAC chain) is botocore's.
    """

    def __init__(self, credentials, region, signed_values):
        super().__init__(credentials, "s3", region)
        self._signed_values = signed_values  # list of (lname, value)

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name, value in self._signed_values:
            hm[name] = value
        return hm


class _HeaderVerifier(_ExactHeadersMixin, S3SigV4Auth):
    pass


class _QueryVerifier(_ExactHeadersMixin, S3SigV4QueryAuth):
    def __init__(self, credentials, region, signed_values):
        S3SigV4QueryAuth.__init__(self, credentials, "s3", region)
        self._signed_values = signed_values


def canonical_path(raw_path):
    """S3 canonical URI: decode the received path, URI-encode each segment once.

    No dot-segment removal and no slash merging for S3 (botocore
    S3SigV4Auth._normalize_url_path returns the path untouched; botocore builds
    the URL path with quote(key, safe='/~')).  Decoding and re-encoding makes
    the check independent of how the client chose to escape characters that
    need no escaping (e.g. %7E vs ~) -- the canonical form is what is signed.

    A raw '+' in the path is decoded as a space, as S3 does: S3's own
    SignatureDoesNotMatch answer for GET /libstdc++-docs.x86_64.rpm shows the
    CanonicalRequest "GET /libstdc%20%20-docs.x86_64.rpm"
    (github.com/anomalizer/ngx_aws_auth issue #87).  A client must send a
    literal plus as %2B (botocore does).
    """
    return quote(unquote_plus(raw_path), safe="/~")


def decoded_query_pairs(raw_query, drop=()):
    """(name, value) pairs, percent-decoded; '+' decodes to a space as in the
    path (canonical form encodes a space as %20, a plus as %2B)."""
    pairs = []
    if not raw_query:
        return pairs
    for item in raw_query.split("&"):
        if item == "":
            continue
        k, _, v = item.partition("=")
        k, v = unquote_plus(k), unquote_plus(v)
        if k in drop:
            continue
        pairs.append((k, v))
    return pairs


def claimed_access_key(target, headers):
    """The access key id of the credential scope a request names
    (<key id>/<date>/<region>/<service>/aws4_request), from the Authorization
    header or the X-Amz-Credential query parameter; None without one.
    https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html"""
    auth = headers.get("Authorization") or ""
    m = re.search(r"Credential=([^/,\s]+)/", auth)
    if m:
        return m.group(1)
    for k, v in decoded_query_pairs(urlsplit(target).query):
        if k == "X-Amz-Credential":
            return v.split("/", 1)[0]
    return None


def parse_amz_date(value):
    try:
        return datetime.datetime.strptime(value, SIGV4_TIMESTAMP).replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def iso_z(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


class Verifier:
    def __init__(self, keys, tokens, region, issued=None):
        self.keys = keys        # access -> secret
        self.tokens = tokens    # access -> session token
        self.region = region
        # Temporary credentials handed out by the credential stand-ins
        # (aws_sts, aws_imds, aws_ecs), read from their --issued-file.
        self.issued = issued or issued_creds.IssuedReader([])

    def secret_of(self, access):
        """(secret, session token or None, issued record or None), or None
        for an unknown key."""
        if access in self.keys:
            return self.keys[access], self.tokens.get(access), None
        rec = self.issued.aws(access)
        if rec is None:
            return None
        return rec["SecretAccessKey"], rec["SessionToken"], rec

    # Header values as botocore would see them: all values of a repeated
    # header, in order (joined with ',' by canonical_headers).
    @staticmethod
    def _signed_values(headers, names):
        out = []
        missing = []
        for n in names:
            vals = headers.get_all(n) or []
            if not vals:
                missing.append(n)
            for v in vals:
                out.append((n, v))
        return out, missing

    def _check_credential(self, cred, amz_date_s, now):
        parts = cred.split("/")
        if len(parts) != 5:
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed; the Credential is "
                          "mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/"
                          "SERVICE/aws4_request\".")
        access, date, region, service, term = parts
        if self.secret_of(access) is None:
            raise S3Error(403, "InvalidAccessKeyId",
                          "The AWS Access Key Id you provided does not exist in our "
                          "records.", AWSAccessKeyId=access)
        if term != "aws4_request":
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed; incorrect "
                          "terminal \"%s\". This endpoint uses \"aws4_request\"." % term)
        if service != "s3":
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed; incorrect service "
                          "\"%s\". This endpoint belongs to \"s3\"." % service)
        if region != self.region:
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed; the region '%s' is "
                          "wrong; expecting '%s'" % (region, self.region),
                          Region=self.region)
        amz_date = parse_amz_date(amz_date_s)
        if amz_date is None:
            raise S3Error(403, "AccessDenied",
                          "AWS authentication requires a valid Date or x-amz-date header")
        if date != amz_date_s[:8]:
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed; Invalid credential "
                          "date. Date is not the same as X-Amz-Date.")
        return access, amz_date

    def _check_unsigned_amz_headers(self, headers, signed):
        unsigned = sorted({k.lower() for k in headers.keys()
                           if k.lower().startswith("x-amz-")} - set(signed))
        if unsigned:
            raise S3Error(403, "AccessDenied",
                          "There were headers present in the request which were not "
                          "signed", HeadersNotSigned=", ".join(unsigned))

    def _check_token(self, access, token, token_signed):
        _, want, issued = self.secret_of(access)
        if want is None:
            if token is not None:
                raise S3Error(400, "InvalidToken",
                              "The provided token is malformed or otherwise invalid.")
            return
        if token is None:
            # Temporary (session) credentials used without their token.
            raise S3Error(403, "InvalidAccessKeyId",
                          "The AWS Access Key Id you provided does not exist in our "
                          "records.", AWSAccessKeyId=access)
        if not token_signed:
            raise S3Error(403, "AccessDenied",
                          "There were headers present in the request which were not "
                          "signed", HeadersNotSigned="x-amz-security-token")
        if not hmac.compare_digest(token.encode(), want.encode()):
            raise S3Error(400, "InvalidToken",
                          "The provided token is malformed or otherwise invalid.")
        if issued is not None and self.issued.expired(issued):
            # https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
            raise S3Error(400, "ExpiredToken", "The provided token has expired.")

    def _sign(self, signer_cls, creds, amz_date_s, method, raw_path, params,
              headers, signed_values):
        """(canonical request, string to sign, signature), botocore's."""
        signer = signer_cls(creds, self.region, signed_values)
        req = AWSRequest(method=method,
                         url="http://verify.invalid" + canonical_path(raw_path),
                         headers={}, params=params)
        for k, v in headers.items():
            req.headers[k] = v
        req.context["timestamp"] = amz_date_s
        creq = signer.canonical_request(req)
        sts = signer.string_to_sign(req, creq)
        return creq, sts, signer.signature(sts, req)

    def _compare(self, signer_cls, access, amz_date_s, method, raw_path, params,
                 headers, signed_values, provided, token):
        creds = Credentials(access, self.secret_of(access)[0], token)
        creq, sts, sig = self._sign(signer_cls, creds, amz_date_s, method, raw_path,
                                    params, headers, signed_values)
        if not hmac.compare_digest(sig, provided.lower()):
            # S3 echoes CanonicalRequest and StringToSign (helps debugging).
            # Deviation: the session token value is masked, and
            # SignatureProvided is omitted, so these never reach a log.
            if token:
                creq = creq.replace(token, "<redacted>")
            raise S3Error(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the "
                          "signature you provided. Check your key and signing method.",
                          AWSAccessKeyId=access, StringToSign=sts,
                          StringToSignBytes=" ".join("%02x" % b for b in sts.encode()),
                          CanonicalRequest=creq,
                          CanonicalRequestBytes=" ".join(
                              "%02x" % b for b in creq.encode()))

    def resign(self, method, target, headers, up_access):
        """A verified request signed with an issued (temporary) credential,
        as it goes to s3rver, which knows only the keys it was started with:
        (target, headers to set, header names to drop).  It is signed anew
        with the front's own key up_access (same X-Amz-Date and signed
        headers, less the session token, which s3rver would not know)."""
        creds = Credentials(up_access, self.keys[up_access])
        parts = urlsplit(target)
        auth = headers.get("Authorization")
        if auth is not None:
            comps = dict(c.strip().partition("=")[::2]
                         for c in auth.strip().partition(" ")[2].split(","))
            signed = [n for n in comps["SignedHeaders"].split(";")
                      if n and n != "x-amz-security-token"]
            values, _ = self._signed_values(headers, signed)
            amz_date_s = headers["X-Amz-Date"]
            _, _, sig = self._sign(_HeaderVerifier, creds, amz_date_s, method, parts.path,
                                   decoded_query_pairs(parts.query), headers, values)
            scope = comps["Credential"].split("/", 1)[1]
            return target, {"Authorization": "AWS4-HMAC-SHA256 Credential=%s/%s, "
                            "SignedHeaders=%s, Signature=%s"
                            % (up_access, scope, ";".join(signed), sig)}, \
                {"x-amz-security-token"}
        params = []
        for k, v in decoded_query_pairs(parts.query,
                                        drop=("X-Amz-Signature", "X-Amz-Security-Token")):
            if k == "X-Amz-Credential":
                v = up_access + "/" + v.split("/", 1)[1]
            params.append((k, v))
        q = dict(params)
        values, _ = self._signed_values(headers, q["X-Amz-SignedHeaders"].split(";"))
        _, _, sig = self._sign(_QueryVerifier, creds, q["X-Amz-Date"], method, parts.path,
                               params, headers, values)
        query = "&".join("%s=%s" % (quote(k, safe="-_.~"), quote(v, safe="-_.~"))
                         for k, v in params + [("X-Amz-Signature", sig)])
        return parts.path + "?" + query, {}, set()

    def verify(self, method, target, headers, body_sha256, now=None):
        """Raise S3Error on failure; return the access key on success."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        parts = urlsplit(target)
        raw_path, raw_query = parts.path, parts.query
        auth = headers.get("Authorization")
        qnames = {unquote(i.partition("=")[0]) for i in raw_query.split("&") if i}
        query_auth = "X-Amz-Algorithm" in qnames
        if auth is not None and query_auth:
            raise S3Error(400, "InvalidArgument",
                          "Only one auth mechanism allowed; only the X-Amz-Algorithm "
                          "query parameter, Signature query string parameter or the "
                          "Authorization header should be specified",
                          ArgumentName="Authorization")
        if auth is None and not query_auth:
            raise S3Error(403, "AccessDenied", "Access Denied")
        if query_auth:
            return self._verify_query(method, raw_path, raw_query, headers,
                                      body_sha256, now)
        return self._verify_header(method, raw_path, raw_query, headers, auth,
                                   body_sha256, now)

    def _verify_header(self, method, raw_path, raw_query, headers, auth,
                       body_sha256, now):
        algo, _, rest = auth.strip().partition(" ")
        if algo != "AWS4-HMAC-SHA256":
            raise S3Error(400, "InvalidRequest",
                          "The authorization mechanism you have provided is not "
                          "supported. Please use AWS4-HMAC-SHA256.")
        comps = {}
        for c in rest.split(","):
            k, sep, v = c.strip().partition("=")
            if not sep:
                continue
            comps[k] = v
        for name in ("Credential", "SignedHeaders", "Signature"):
            if name not in comps:
                raise S3Error(400, "AuthorizationHeaderMalformed",
                              "The authorization header is malformed; the "
                              "authorization header requires three components: "
                              "Credential, SignedHeaders, and Signature.")
        amz_date_s = headers.get("X-Amz-Date")
        if amz_date_s is None:
            raise S3Error(403, "AccessDenied",
                          "AWS authentication requires a valid Date or x-amz-date "
                          "header")
        access, amz_date = self._check_credential(comps["Credential"], amz_date_s, now)
        signed = [s for s in comps["SignedHeaders"].split(";") if s]
        if signed != sorted(signed) or any(s != s.lower() for s in signed):
            raise S3Error(400, "AuthorizationHeaderMalformed",
                          "The authorization header is malformed; SignedHeaders must "
                          "be lower-case and sorted.")
        for must in ("host", "x-amz-date"):
            if must not in signed:
                # Deviation note: S3's exact answer for an unsigned Host is not
                # documented; this stand-in refuses it explicitly.
                raise S3Error(400, "AuthorizationHeaderMalformed",
                              "The authorization header is malformed; '%s' must be a "
                              "signed header." % must)
        if abs(now - amz_date) > MAX_SKEW:
            raise S3Error(403, "RequestTimeTooSkewed",
                          "The difference between the request time and the current "
                          "time is too large.", RequestTime=amz_date_s,
                          ServerTime=iso_z(now), MaxAllowedSkewMilliseconds="900000")
        csha = headers.get("X-Amz-Content-SHA256")
        if csha is None:
            raise S3Error(400, "InvalidRequest",
                          "Missing required header for this request: "
                          "x-amz-content-sha256")
        self._check_payload_form(csha)
        self._check_unsigned_amz_headers(headers, signed)
        token = headers.get("X-Amz-Security-Token")
        self._check_token(access, token, "x-amz-security-token" in signed)
        signed_values, missing = self._signed_values(headers, signed)
        params = decoded_query_pairs(raw_query)
        self._compare(_HeaderVerifier, access, amz_date_s, method, raw_path, params,
                      headers, signed_values, comps["Signature"], token)
        self._check_payload_hash(csha, body_sha256)
        return access

    @staticmethod
    def _check_payload_form(csha):
        if csha == "UNSIGNED-PAYLOAD" or HEX64.match(csha):
            return
        if csha.startswith("STREAMING-"):
            # Deviation: aws-chunked streaming signatures are not supported.
            raise S3Error(501, "NotImplemented",
                          "A header you provided implies functionality that is not "
                          "implemented (this stand-in does not support %s)." % csha,
                          Header="x-amz-content-sha256")
        raise S3Error(400, "InvalidArgument",
                      "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                      "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.",
                      ArgumentName="x-amz-content-sha256", ArgumentValue=csha)

    @staticmethod
    def _check_payload_hash(csha, body_sha256):
        if csha == "UNSIGNED-PAYLOAD":
            return
        if csha.lower() != body_sha256:
            raise S3Error(400, "XAmzContentSHA256Mismatch",
                          "The provided 'x-amz-content-sha256' header does not match "
                          "what was computed.", ClientComputedContentSHA256=csha,
                          S3ComputedContentSHA256=body_sha256)

    def _verify_query(self, method, raw_path, raw_query, headers, body_sha256, now):
        q = dict(decoded_query_pairs(raw_query))
        if q.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
            raise S3Error(400, "AuthorizationQueryParametersError",
                          "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
        need = ("X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                "X-Amz-SignedHeaders", "X-Amz-Expires")
        if any(n not in q for n in need):
            raise S3Error(400, "AuthorizationQueryParametersError",
                          "Query-string authentication version 4 requires the "
                          "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, "
                          "X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires "
                          "parameters.")
        amz_date_s = q["X-Amz-Date"]
        access, amz_date = self._check_credential(q["X-Amz-Credential"], amz_date_s, now)
        try:
            expires = int(q["X-Amz-Expires"])
        except ValueError:
            raise S3Error(400, "AuthorizationQueryParametersError",
                          "X-Amz-Expires should be a number")
        if expires < 1 or expires > 604800:
            raise S3Error(400, "AuthorizationQueryParametersError",
                          "X-Amz-Expires must be less than a week (in seconds) that "
                          "is 604800")
        if amz_date - now > MAX_SKEW:
            raise S3Error(403, "AccessDenied", "Request is not valid yet")
        if now > amz_date + datetime.timedelta(seconds=expires):
            raise S3Error(403, "AccessDenied", "Request has expired",
                          XAmzExpires=str(expires),
                          Expires=iso_z(amz_date + datetime.timedelta(seconds=expires)),
                          ServerTime=iso_z(now))
        signed = [s for s in q["X-Amz-SignedHeaders"].split(";") if s]
        if "host" not in signed:
            raise S3Error(400, "AuthorizationQueryParametersError",
                          "Query-string authentication requires 'host' to be a "
                          "signed header.")
        self._check_unsigned_amz_headers(headers, signed)
        token = q.get("X-Amz-Security-Token")
        # In query auth the token is a (signed) query parameter.
        self._check_token(access, token, True)
        signed_values, _ = self._signed_values(headers, signed)
        params = decoded_query_pairs(raw_query, drop=("X-Amz-Signature",))
        self._compare(_QueryVerifier, access, amz_date_s, method, raw_path, params,
                      headers, signed_values, q["X-Amz-Signature"], token)
        csha = headers.get("X-Amz-Content-SHA256")
        if csha is not None:
            self._check_payload_form(csha)
            self._check_payload_hash(csha, body_sha256)
        return access


# ---------------------------------------------------------------------------
# Server


class FrontState:
    def __init__(self, args):
        keys = {}
        for kv in args.key:
            a, sep, s = kv.partition("=")
            if not sep or not a or not s:
                raise SystemExit("--key wants ACCESS=SECRET")
            keys[a] = s
        tokens = {}
        for kv in args.session_token:
            a, sep, t = kv.partition("=")
            if not sep or a not in keys or not t:
                raise SystemExit("--session-token wants ACCESS=TOKEN for a --key ACCESS")
            tokens[a] = t
        up = urlsplit(args.upstream)
        if up.scheme != "http" or not up.hostname or not ec.is_loopback_host(up.hostname):
            raise SystemExit("--upstream must be http://<loopback>:PORT")
        self.upstream = (up.hostname, up.port or 80)
        self.verifier = Verifier(keys, tokens, args.region,
                                 issued_creds.IssuedReader(args.issued_credentials))
        # Requests signed with an issued credential go to s3rver signed with
        # this key (Verifier.resign).
        self.upstream_key = args.upstream_key or next(iter(keys))
        if self.upstream_key not in keys:
            raise SystemExit("--upstream-key wants the ACCESS of a --key")
        # --policy ACCESS=FILE: the IAM identity policy of that key's principal
        # (../lib/iam_policy.py); keys without one are not restricted.
        # --policy arn:aws:iam::ACCOUNT:role/NAME=FILE: the policy of a role,
        # for the credentials issued for it.
        self.policies = {}
        for kv in args.policy:
            a, sep, path = kv.partition("=")
            if not sep or (a not in keys and not a.startswith("arn:aws:iam::")):
                raise SystemExit("--policy wants ACCESS=FILE for a --key ACCESS, "
                                 "or ROLE_ARN=FILE")
            try:
                with open(path, "rb") as f:
                    self.policies[a] = iam_policy.Policy(f.read())
            except (OSError, iam_policy.PolicyError) as e:
                raise SystemExit("--policy %s: %s" % (path, e))
        self.faults = ec.FaultQueue(FAULT_KINDS)
        self.lock = threading.Lock()
        self.requests = []
        self.reset_counters()
        self.host_id = uuid.uuid4().hex

    def reset_counters(self):
        with getattr(self, "lock", threading.Lock()):
            self.counters = {"requests": 0, "forwarded": 0,
                             "signatures_rejected": 0, "auth_rejected": 0,
                             "policy_denied": 0,
                             "rejected_by_code": {}, "faults_injected": 0,
                             "upstream_errors": 0}

    def log_request(self, method, target, fault, headers):
        """Arrival time, method, path (no query), injected fault and the
        access key id the request claims to be signed with (the Credential
        of the Authorization header or of X-Amz-Credential, verified or not;
        never the signature) of every S3 request: GET /_front/requests
        (Retry-After tests; which identity a client used)."""
        with self.lock:
            self.requests.append({"t": round(time.time(), 3), "method": method,
                                  "path": urlsplit(target).path, "fault": fault,
                                  "access_key_id": claimed_access_key(target, headers)})
            del self.requests[:-10000]

    def bump(self, name, code=None):
        with self.lock:
            self.counters[name] += 1
            if code:
                d = self.counters["rejected_by_code"]
                d[code] = d.get(code, 0) + 1

    def snapshot(self):
        with self.lock:
            c = json.loads(json.dumps(self.counters))
        c["pending_faults"] = self.faults.list()
        return c


class FrontHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sfexport-sigv4-front/1"
    state = None  # set in main()

    # -- logging: never the Authorization header, signatures or tokens
    def log_request(self, code="-", size="-"):
        ec.log(PROG, "%s %s %s %s" % (self.client_address[0], self.command,
                                      ec.redact_target(self.path), code))

    def log_message(self, fmt, *args):
        if fmt.startswith('"%s" %s %s'):
            return
        ec.log(PROG, fmt % args)

    def log_error(self, fmt, *args):
        ec.log(PROG, "error: " + (fmt % args))

    # -- dispatch
    def do_GET(self):
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = do_GET

    def _send_simple(self, status, body=b"", ctype="application/json", extra=()):
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Server", "AmazonS3")
        if body or self.command != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        self.log_request(status)

    def _send_s3_error(self, status, code, message, extra_headers=(), **extra):
        rid = uuid.uuid4().hex[:16].upper()
        body = s3_error_xml(code, message, extra, rid, self.state.host_id)
        if self.command == "HEAD":
            body = b""  # HEAD errors have no body
        self._send_simple(status, body, "application/xml",
                          extra=(("x-amz-request-id", rid),
                                 ("x-amz-id-2", self.state.host_id)) + tuple(extra_headers))

    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        ec.log(PROG, "%s %s dropped (fault)" % (self.command, ec.redact_target(self.path)))

    def _handle(self):
        if self.path.startswith("/_front/") or self.path == "/_front":
            return self._admin()
        st = self.state
        st.bump("requests")
        fault = st.faults.take(self.command, self.path)
        st.log_request(self.command, self.path, fault["kind"] if fault else None,
                       self.headers)
        if fault:
            st.bump("faults_injected")
            kind = fault["kind"]
            if kind == "delay":
                time.sleep(fault.get("delay_ms", 1000) / 1000.0)
                fault = None
            elif kind == "drop":
                return self._drop()
        try:
            spool, length, hashes, chunked = ec.read_body(self)
        except ec.BodyError as e:
            ec.log(PROG, "bad request body: %s" % e)
            self.close_connection = True
            return self._send_s3_error(400, "IncompleteBody",
                                       "You did not provide the number of bytes "
                                       "specified by the Content-Length HTTP header")
        with spool:
            if fault and fault["kind"] != "drop_after":
                return self._answer_fault(fault)
            if chunked and self.command == "PUT":
                return self._send_s3_error(411, "MissingContentLength",
                                           "You must provide the Content-Length HTTP "
                                           "header.")
            try:
                access = st.verifier.verify(self.command, self.path, self.headers,
                                            hashes["sha256"])
                issued = st.verifier.secret_of(access)[2]
                self._authorize(access, spool, issued)
            except S3Error as e:
                st.bump("auth_rejected", e.code)
                if e.code == "SignatureDoesNotMatch":
                    st.bump("signatures_rejected")
                ec.log(PROG, "rejected %s %s: %s" % (self.command,
                                                      ec.redact_target(self.path), e.code))
                return self._send_s3_error(e.status, e.code, e.message, **e.extra)
            if self.command == "DELETE" and self._is_abort_multipart():
                return self._abort_multipart(bool(fault))
            upstream = None
            if issued is not None:
                upstream = st.verifier.resign(self.command, self.path, self.headers,
                                              st.upstream_key)
            self._forward(spool, length, drop_reply=bool(fault), upstream=upstream)

    def _authorize(self, access, spool, issued=None):
        """IAM policy of the signing key (--policy), if any: 403 AccessDenied.
        An issued credential has the policy of its role (--policy ROLE_ARN=FILE)."""
        policy = self.state.policies.get(access)
        principal = "arn:aws:iam::123456789012:user/%s" % access
        if issued is not None:
            policy = self.state.policies.get(issued.get("RoleArn"))
            principal = issued.get("Arn")
        if policy is None:
            return
        parts = urlsplit(self.path)
        body = b""
        if self.command == "POST" and "delete" in parts.query:
            body = spool.read()
            spool.seek(0)
        for action, resource, ctx in iam_policy.s3_authorizations(
                self.command, parts.path, decoded_query_pairs(parts.query), self.headers, body):
            decision = policy.evaluate(action, resource, ctx)
            if decision != "Allow":
                self.state.bump("policy_denied")
                raise S3Error(403, "AccessDenied", iam_policy.denial_message(
                    principal, action, resource, decision))

    def _is_abort_multipart(self):
        q = urlsplit(self.path).query
        names = {unquote(i.partition("=")[0]) for i in q.split("&") if i}
        return "uploadId" in names

    def _abort_multipart(self, drop_reply):
        """AbortMultipartUpload (DELETE /bucket/key?uploadId=ID).

        s3rver 3.7.1 has no route for it (answers 405 MethodNotAllowed); S3
        answers 204 No Content.  Deviation from "forward unchanged": the front
        answers 204 itself once the signature is verified; s3rver keeps the
        orphaned part files, which no S3 call can list or read.
        https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html
        """
        self.state.bump("forwarded")
        if drop_reply:
            return self._drop()
        rid = uuid.uuid4().hex[:16].upper()
        self._send_simple(204, b"", None, extra=(("x-amz-request-id", rid),
                                                 ("x-amz-id-2", self.state.host_id)))

    def _answer_fault(self, f):
        kind = f["kind"]
        # retry_after: a Retry-After header ("3", an HTTP-date, or "+N" for
        # the HTTP-date N seconds from now)
        ra = f.get("retry_after")
        extra = ()
        if ra is not None:
            ra = str(ra)
            if ra.startswith("+"):
                ra = email.utils.formatdate(time.time() + float(ra[1:]), usegmt=True)
            extra = (("Retry-After", ra),)
        if kind == "slowdown":
            return self._send_s3_error(503, "SlowDown", f.get(
                "message", "Please reduce your request rate."), extra_headers=extra)
        if kind == "unavailable":
            return self._send_s3_error(503, "ServiceUnavailable", f.get(
                "message", "Service is unable to handle request."), extra_headers=extra)
        if kind == "internal":
            return self._send_s3_error(500, "InternalError", f.get(
                "message", "We encountered an internal error. Please try again."),
                extra_headers=extra)
        if kind == "error":
            return self._send_s3_error(f.get("status", 403), f.get("code", "AccessDenied"),
                                       f.get("message", "Access Denied"))
        raise AssertionError(kind)

    def _forward(self, spool, length, drop_reply=False, upstream=None):
        st = self.state
        # upstream: (target, headers to set, names to drop) for a re-signed
        # request (Verifier.resign), else the request goes unchanged.
        target, set_headers, drop = upstream or (self.path, {}, set())
        conn = http.client.HTTPConnection(*st.upstream, timeout=600)
        try:
            conn.putrequest(self.command, target, skip_host=True,
                            skip_accept_encoding=True)
            have_cl = False
            for k, v in self.headers.items():
                lk = k.lower()
                if lk in HOP_BY_HOP or lk in drop:
                    continue
                if lk == "content-length":
                    have_cl = True
                for sk in set_headers:
                    if sk.lower() == lk:
                        v = set_headers[sk]
                conn.putheader(k, v)
            if not have_cl and (length or self.command in ("PUT", "POST")):
                conn.putheader("Content-Length", str(length))
            conn.endheaders()
            ec.copy_stream(spool, conn.send)
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as e:
            conn.close()
            st.bump("upstream_errors")
            ec.log(PROG, "upstream error: %s" % e)
            return self._send_s3_error(503, "ServiceUnavailable",
                                       "Service is unable to handle request.")
        st.bump("forwarded")
        try:
            if drop_reply:
                resp.read()
                return self._drop()
            self._relay(resp)
        finally:
            conn.close()

    def _relay(self, resp):
        self.send_response_only(resp.status, resp.reason)
        cl = resp.getheader("Content-Length")
        chunked = "chunked" in (resp.getheader("Transfer-Encoding") or "").lower()
        for k, v in resp.getheaders():
            if k.lower() in HOP_BY_HOP:
                continue
            self.send_header(k, v)
        no_body = (self.command == "HEAD" or resp.status in (204, 304)
                   or 100 <= resp.status < 200)
        if no_body:
            self.end_headers()
            self.log_request(resp.status)
            return
        if cl is not None and not chunked:
            self.end_headers()
            ec.copy_stream(resp, self.wfile.write, int(cl))
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()

            def w(data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            ec.copy_stream(resp, w)
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            ec.copy_stream(resp, self.wfile.write)
        self.log_request(resp.status)

    # -- admin API
    def _admin(self):
        st = self.state
        try:
            spool, length, _, _ = ec.read_body(self)
            body = spool.read()
        except ec.BodyError:
            self.close_connection = True
            return self._send_simple(400, ec.json_bytes({"error": "bad body"}))
        path = urlsplit(self.path).path.rstrip("/")
        m = self.command
        try:
            if path == "/_front/health" and m == "GET":
                out = {"ok": True, "upstream": "%s:%d" % st.upstream,
                       "region": st.verifier.region}
            elif path == "/_front/stats" and m == "GET":
                out = st.snapshot()
            elif path == "/_front/requests" and m in ("GET", "DELETE"):
                with st.lock:
                    if m == "DELETE":
                        st.requests = []
                    out = {"requests": [dict(r) for r in st.requests]}
            elif path == "/_front/faults" and m == "GET":
                out = {"faults": st.faults.list()}
            elif path == "/_front/faults" and m == "POST":
                spec = json.loads(body or b"{}")
                specs = spec if isinstance(spec, list) else [spec]
                out = {"added": [st.faults.add(s) for s in specs]}
            elif path == "/_front/faults" and m == "DELETE":
                st.faults.clear()
                out = {"faults": []}
            elif path == "/_front/reset" and m == "POST":
                st.faults.clear()
                st.reset_counters()
                out = {"ok": True}
            else:
                return self._send_simple(404, ec.json_bytes(
                    {"error": "no admin route %s %s" % (m, path)}))
        except (ValueError, re.error) as e:
            return self._send_simple(400, ec.json_bytes({"error": str(e)}))
        self._send_simple(200, ec.json_bytes(out))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--port-file", help="write the listening port here (atomic)")
    p.add_argument("--upstream", required=True, help="http://127.0.0.1:S3RVERPORT")
    p.add_argument("--key", action="append", default=[], required=True,
                   metavar="ACCESS=SECRET")
    p.add_argument("--session-token", action="append", default=[],
                   metavar="ACCESS=TOKEN")
    p.add_argument("--region", required=True)
    p.add_argument("--policy", action="append", default=[], metavar="ACCESS=FILE",
                   help="IAM identity policy JSON enforced for requests signed by "
                   "ACCESS (or by credentials issued for the role ROLE_ARN=FILE)")
    p.add_argument("--issued-credentials", action="append", default=[], metavar="FILE",
                   help="--issued-file of aws_sts / aws_imds / aws_ecs: temporary "
                   "credentials accepted as well (issued_creds.py)")
    p.add_argument("--upstream-key", metavar="ACCESS",
                   help="--key that re-signs requests of issued credentials toward "
                   "s3rver (default: the first --key)")
    args = p.parse_args(argv)
    FrontHandler.state = FrontState(args)
    srv = ec.LoopbackHTTPServer(args.host, args.port, FrontHandler)
    port = srv.server_address[1]
    if args.port_file:
        ec.write_port_file(args.port_file, port)
    ec.log(PROG, "listening on %s:%d -> upstream %s:%d, region %s, %d key(s)"
           % (srv.server_address[0], port, *FrontHandler.state.upstream,
              args.region, len(FrontHandler.state.verifier.keys)))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


def _sigterm(signum, frame):
    raise KeyboardInterrupt()


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGTERM, _sigterm)
    main()
