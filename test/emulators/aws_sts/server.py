#!/usr/bin/python3
"""AWS STS stand-in (Query API, Version 2011-06-15) for the sfexport tests.

    server.py --port 0 --port-file F --config sts.json
              [--region us-east-1 ...] [--issued-file ISSUED.json]
              [--issued-credentials OTHER-ISSUED.json ...]
              [--lifetime SECONDS] [--host 127.0.0.1]

Actions: AssumeRole (SigV4-signed), AssumeRoleWithWebIdentity (unsigned),
GetCallerIdentity (signed).  Every credential handed out is written to
--issued-file (issued_creds.py), which s3_front --issued-credentials
reads, so the temporary key works against s3rver behind the front.

Protocol, with sources:
- Query API: POST / with a form-encoded body (or GET with the same
  parameters in the query), Action=..., Version=2011-06-15; XML answers in
  the namespace https://sts.amazonaws.com/doc/2011-06-15/, the result in
  <ActionResult>, then <ResponseMetadata><RequestId>.  Errors:
  <ErrorResponse><Error><Type>Sender</Type><Code/><Message/></Error>
  <RequestId/></ErrorResponse>.
  https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html
  https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
  https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html
  https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html
  botocore/data/sts/2011-06-15/service-2.json (shapes, constraints:
  DurationSeconds 900..43200, RoleSessionName 2..64 [\\w+=,.@-]*,
  ExternalId 2..1224 [\\w+=,.@:/-]*; errors ExpiredTokenException 400,
  InvalidIdentityToken 400, IDPRejectedClaim 403).
- SigV4 (service "sts"), verified with botocore's SigV4Auth over exactly the
  headers the client signed and the received body, as s3_front does
  for S3.  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html
  Failures: no signature 403 MissingAuthenticationToken; unknown key or wrong
  session token 403 InvalidClientTokenId "The security token included in the
  request is invalid."; expired session credentials 403 ExpiredToken "The
  security token included in the request is expired"; wrong signature,
  wrong scope or more than 15 min clock skew 403 SignatureDoesNotMatch;
  malformed Authorization 400 IncompleteSignature.
- Regions: the global endpoint sts.amazonaws.com signs with us-east-1, a
  regional endpoint sts.REGION.amazonaws.com with REGION
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_temp_region-endpoints.html).
  --region lists the regions this endpoint answers for (default us-east-1);
  a request scoped to another: 403 SignatureDoesNotMatch "Credential should
  be scoped to a valid region."
- AssumeRole authorization: the role's trust policy (AssumeRolePolicyDocument)
  must allow sts:AssumeRole for the caller, and no statement deny it
  ("Policy evaluation logic", IAM User Guide).  Principal {"AWS": ...}
  matches the caller's ARN, its account ("123456789012" or
  "arn:aws:iam::123456789012:root"), "*", and for a role session
  (arn:aws:sts::A:assumed-role/R/S) also the role's ARN.  Conditions are
  evaluated by iam_policy.py with the keys sts:ExternalId (when given),
  sts:RoleSessionName, aws:PrincipalArn.  A refusal, also for a role that
  does not exist: 403 AccessDenied "User: ARN is not authorized to perform:
  sts:AssumeRole on resource: ROLE".  (Callers' identity policies are not
  evaluated: deviation.)
  DurationSeconds (default 3600) above the role's MaxSessionDuration: 400
  ValidationError "The requested DurationSeconds exceeds the
  MaxSessionDuration set for this role."; a role session assuming a role
  (role chaining, also from EC2/ECS role credentials) is limited to one hour
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_terms-and-concepts.html#iam-term-role-chaining):
  400 ValidationError "The requested DurationSeconds exceeds the 1 hour
  session limit for roles assumed by role chaining."
- AssumeRoleWithWebIdentity: the token is a JWT signed by a registered OIDC
  provider (found by its iss, which must equal the provider's URL; keys from
  its JWKS); aud must be one of the provider's client IDs (IRSA uses
  sts.amazonaws.com).  https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_providers_create_oidc.html
  https://docs.aws.amazon.com/eks/latest/userguide/iam-roles-for-service-accounts.html
  No provider for iss, bad signature or audience, malformed token: 400
  InvalidIdentityToken; past exp: 400 ExpiredTokenException.  The trust
  policy needs Principal {"Federated": PROVIDER_ARN}, Action
  sts:AssumeRoleWithWebIdentity, with the condition keys HOST/PATH:aud and
  HOST/PATH:sub ("Available keys for AWS web identity federation");
  otherwise 403 AccessDenied "Not authorized to perform
  sts:AssumeRoleWithWebIdentity".

--lifetime N: the credentials handed out expire after N seconds whatever
DurationSeconds asks (Expiration says so), so tests see expiry and renewal
(deviation, for tests only).

Config (JSON):
  {"account_id": "123456789012",
   "users": [{"access_key_id": "AKID...", "secret_access_key": "...",
              "arn": "arn:aws:iam::123456789012:user/alice"}],
   "roles": [{"arn": "arn:aws:iam::123456789012:role/exporter",
              "max_session_duration": 3600,
              "trust_policy": {IAM trust policy document}}],
   "oidc_providers": [{"arn": "arn:aws:iam::123456789012:oidc-provider/HOST/PATH",
                       "url": "https://HOST/PATH",
                       "client_ids": ["sts.amazonaws.com"],
                       "jwks": {"keys": [...]}}]}

Admin API under /_sts/ (cred_common.py: health, stats with "by_action"
and "issued", requests [{"action", "status", "code", "role_arn",
"session", "duration", "region"}], faults -- kinds "throttling" (400
Throttling), "500", "503", "drop", "delay"; path_regex matches
"/<Action>" --, reset), and:
  POST   /_sts/config         replace the config (same JSON)
  POST   /_sts/expire         every credential issued so far expires now
Secrets (keys, tokens, signatures, web identity tokens) are never logged.
"""

import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import sys
import time
import uuid
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape as xml_escape

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import cred_common  # noqa: E402
import emu_common as ec  # noqa: E402
import iam_policy  # noqa: E402
import issued_creds  # noqa: E402
import jwt  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.compat import HTTPHeaders  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

PROG = "aws_sts"
NS = "https://sts.amazonaws.com/doc/2011-06-15/"
VERSION = "2011-06-15"
MAX_SKEW = datetime.timedelta(minutes=15)
ACTIONS = ("AssumeRole", "AssumeRoleWithWebIdentity", "GetCallerIdentity")
FAULT_KINDS = ("throttling", "500", "503", "drop", "delay")
SESSION_NAME = re.compile(r"^[\w+=,.@-]*$")
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]*$")
ROLE_ARN = re.compile(r"^arn:aws:iam::(\d{12}):role/(?:[\w+=,.@/-]*/)?([\w+=,.@-]+)$")
BAD_TOKEN = "The security token included in the request is invalid."
BAD_SIGNATURE = ("The request signature we calculated does not match the signature you "
                 "provided. Check your AWS Secret Access Key and signing method. Consult "
                 "the service documentation for details.")


class StsError(Exception):
    def __init__(self, status, code, message, type_="Sender"):
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message
        self.type = type_


def validation(value, field, constraint):
    # The form of an AWS ValidationError for a member constraint, as STS
    # answers it ("1 validation error detected: Value ... at 'durationSeconds'
    # failed to satisfy constraint: Member must ...").
    return StsError(400, "ValidationError",
                    "1 validation error detected: Value %s at '%s' failed to satisfy "
                    "constraint: Member must %s"
                    % ("null" if value is None else "'%s'" % value, field, constraint))


def iso_z(epoch):
    return issued_creds.utc_iso(epoch)


# ---------------------------------------------------------------------------
# Configuration: callers, roles, OIDC providers


class Config:
    def __init__(self, data):
        if not isinstance(data, dict):
            raise ValueError("config must be a JSON object")
        self.account = str(data.get("account_id", "123456789012"))
        self.users = {}
        for u in data.get("users", []):
            self.users[u["access_key_id"]] = (u["secret_access_key"], u["arn"])
        self.roles = {}
        for r in data.get("roles", []):
            m = ROLE_ARN.match(r["arn"])
            if not m:
                raise ValueError("bad role ARN %r" % r["arn"])
            trust = r.get("trust_policy") or {"Version": "2012-10-17", "Statement": []}
            self.roles[r["arn"]] = {
                "arn": r["arn"], "account": m.group(1), "name": m.group(2),
                "max": int(r.get("max_session_duration", 3600)),
                "statements": [self._trust_statement(s) for s in
                               (trust["Statement"] if isinstance(trust["Statement"], list)
                                else [trust["Statement"]])],
                "id": "AROA" + base64.b32encode(hashlib.sha256(
                    r["arn"].encode()).digest()).decode()[:17]}
        self.providers = {}
        for p in data.get("oidc_providers", []):
            jwks = p.get("jwks")
            if jwks is None and p.get("jwks_file"):
                with open(p["jwks_file"]) as f:
                    jwks = json.load(f)
            self.providers[p["url"].rstrip("/")] = {
                "arn": p["arn"], "url": p["url"].rstrip("/"),
                "client_ids": list(p.get("client_ids", [])),
                "keys": jwt.PyJWKSet.from_dict(jwks).keys}

    @staticmethod
    def _trust_statement(s):
        """(effect, principal dict, compiled policy for Action + Condition)."""
        principal = s.get("Principal")
        if principal == "*":
            principal = {"AWS": "*"}
        if not isinstance(principal, dict):
            raise ValueError("a trust policy statement needs a Principal")
        body = {k: v for k, v in s.items() if k not in ("Principal", "Sid")}
        body["Resource"] = "*"
        return (s["Effect"], principal,
                iam_policy.Policy({"Version": "2012-10-17", "Statement": [body]}))


def _principals(principal, kind):
    v = principal.get(kind, [])
    return v if isinstance(v, list) else [v]


def trust_allows(role, action, kind, candidates, context):
    """The role's trust policy: an explicit Deny wins, else an Allow whose
    Principal (of kind AWS / Federated) names one of candidates."""
    allowed = False
    for effect, principal, policy in role["statements"]:
        names = _principals(principal, kind)
        if not ("*" in names or any(c in names for c in candidates)):
            continue
        if policy.evaluate(action, "*", context) == "ImplicitDeny":
            continue
        if effect == "Deny":
            return False
        allowed = True
    return allowed


# ---------------------------------------------------------------------------
# SigV4 with botocore


class _ExactHeadersSigV4(SigV4Auth):
    """botocore's SigV4Auth over exactly the headers the client signed."""

    def __init__(self, credentials, region, signed_values):
        super().__init__(credentials, "sts", region)
        self._signed_values = signed_values

    def headers_to_sign(self, request):
        hm = HTTPHeaders()
        for name, value in self._signed_values:
            hm[name] = value
        return hm


def parse_amz_date(value):
    try:
        return datetime.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


class Caller:
    def __init__(self, access, arn, session_of_role=None):
        self.access = access
        self.arn = arn
        self.role_arn = session_of_role   # set for role sessions


class Verifier:
    def __init__(self, state):
        self.state = state

    def lookup(self, access):
        """(secret, session token or None, Caller, expired) or None."""
        cfg = self.state.config
        if access in cfg.users:
            secret, arn = cfg.users[access]
            return secret, None, Caller(access, arn), False
        rec = self.state.issued.aws(access) or self.state.others.aws(access)
        if rec is None:
            return None
        return (rec["SecretAccessKey"], rec["SessionToken"],
                Caller(access, rec["Arn"], rec.get("RoleArn")),
                issued_creds.IssuedReader.expired(rec))

    def verify(self, method, target, headers, body, now=None):
        """Raise StsError, or return (Caller, region)."""
        now = now or datetime.datetime.now(datetime.timezone.utc)
        auth = headers.get("Authorization")
        if not auth:
            raise StsError(403, "MissingAuthenticationToken",
                           "Request is missing Authentication Token")
        algo, _, rest = auth.strip().partition(" ")
        comps = {}
        for c in rest.split(","):
            k, sep, v = c.strip().partition("=")
            if sep:
                comps[k] = v
        if algo != "AWS4-HMAC-SHA256" or not all(
                k in comps for k in ("Credential", "SignedHeaders", "Signature")):
            raise StsError(400, "IncompleteSignature",
                           "Authorization header requires 'Credential', 'Signature' and "
                           "'SignedHeaders' parameters.")
        parts = comps["Credential"].split("/")
        if len(parts) != 5:
            raise StsError(400, "IncompleteSignature", "Invalid credential scope.")
        access, date, region, service, term = parts
        found = self.lookup(access)
        if found is None:
            raise StsError(403, "InvalidClientTokenId", BAD_TOKEN)
        secret, want_token, caller, expired = found
        if service != "sts" or term != "aws4_request":
            raise StsError(403, "SignatureDoesNotMatch",
                           "Credential should be scoped to correct service: 'sts'.")
        if region not in self.state.regions:
            raise StsError(403, "SignatureDoesNotMatch",
                           "Credential should be scoped to a valid region.")
        amz_date_s = headers.get("X-Amz-Date")
        amz_date = parse_amz_date(amz_date_s)
        if amz_date is None or date != amz_date_s[:8]:
            raise StsError(400, "IncompleteSignature",
                           "Date in Credential scope does not match YYYYMMDD from "
                           "ISO-8601 version of date from HTTP.")
        if abs(now - amz_date) > MAX_SKEW:
            raise StsError(403, "SignatureDoesNotMatch",
                           "Signature expired: %s is now earlier than %s (%s - 15 min.)"
                           % (amz_date_s, (now - MAX_SKEW).strftime("%Y%m%dT%H%M%SZ"),
                              now.strftime("%Y%m%dT%H%M%SZ")))
        signed = [s for s in comps["SignedHeaders"].split(";") if s]
        for must in ("host", "x-amz-date"):
            if must not in signed:
                raise StsError(403, "SignatureDoesNotMatch",
                               "'%s' must be a signed header." % must)
        token = headers.get("X-Amz-Security-Token")
        if want_token is not None or token is not None:
            if want_token is None or token is None or "x-amz-security-token" not in signed \
                    or not hmac.compare_digest(token.encode(), want_token.encode()):
                raise StsError(403, "InvalidClientTokenId", BAD_TOKEN)
        values = []
        for n in signed:
            for v in headers.get_all(n) or []:
                values.append((n, v))
        signer = _ExactHeadersSigV4(Credentials(access, secret, token), region, values)
        parts = urlsplit(target)
        req = AWSRequest(method=method, url="http://verify.invalid" + parts.path,
                         data=body, params=parse_qsl(parts.query, keep_blank_values=True))
        req.context["timestamp"] = amz_date_s
        creq = signer.canonical_request(req)
        sig = signer.signature(signer.string_to_sign(req, creq), req)
        if not hmac.compare_digest(sig, comps["Signature"].lower()):
            raise StsError(403, "SignatureDoesNotMatch", BAD_SIGNATURE)
        if expired:
            raise StsError(403, "ExpiredToken",
                           "The security token included in the request is expired")
        return caller, region


# ---------------------------------------------------------------------------
# Issuing


class State(cred_common.StandIn):
    def __init__(self, args):
        with open(args.config) as f:
            self.config = Config(json.load(f))
        self.regions = set(args.region or ["us-east-1"])
        self.lifetime = args.lifetime
        self.issued = issued_creds.IssuedWriter(args.issued_file)
        self.others = issued_creds.IssuedReader(args.issued_credentials)
        self.verifier = Verifier(self)
        super().__init__(FAULT_KINDS)

    def own_counters(self):
        return {"by_action": {}, "issued": 0}

    def record(self, entry):
        super().record(entry)
        with self.lock:
            a = entry.get("action") or "-"
            self.counters["by_action"][a] = self.counters["by_action"].get(a, 0) + 1

    def config_from(self, body):
        try:
            self.config = Config(json.loads(body))
        except jwt.PyJWTError as e:
            raise ValueError("bad JWKS: %s" % e)
        return {"ok": True}

    def issue(self, role, session, duration):
        akid, secret, token = issued_creds.new_aws_credentials()
        lifetime = self.lifetime if self.lifetime is not None else duration
        expires = time.time() + lifetime
        arn = "arn:aws:sts::%s:assumed-role/%s/%s" % (role["account"], role["name"], session)
        ec.register_secret("STS secret access key %s" % akid, secret)
        ec.register_secret("STS session token %s" % akid, token)
        self.issued.add_aws(akid, secret, token, expires, arn, role["arn"], PROG)
        self.count("issued")
        return {"AccessKeyId": akid, "SecretAccessKey": secret, "SessionToken": token,
                "Expiration": iso_z(expires)}, arn


# ---------------------------------------------------------------------------
# Actions


def check_duration(params, role, chained):
    raw = params.get("DurationSeconds")
    if raw is None:
        duration = 3600
    else:
        try:
            duration = int(raw)
        except ValueError:
            raise validation(raw, "durationSeconds", "be an integer")
        if duration < 900:
            raise validation(raw, "durationSeconds",
                             "have value greater than or equal to 900")
        if duration > 43200:
            raise validation(raw, "durationSeconds",
                             "have value less than or equal to 43200")
    if chained and duration > 3600:
        raise StsError(400, "ValidationError",
                       "The requested DurationSeconds exceeds the 1 hour session limit "
                       "for roles assumed by role chaining.")
    if role is not None and duration > role["max"]:
        raise StsError(400, "ValidationError",
                       "The requested DurationSeconds exceeds the MaxSessionDuration set "
                       "for this role.")
    return duration


def check_common(params):
    role_arn = params.get("RoleArn")
    if role_arn is None:
        raise validation(None, "roleArn", "not be null")
    if not 20 <= len(role_arn) <= 2048:
        raise validation(role_arn, "roleArn", "have length greater than or equal to 20")
    session = params.get("RoleSessionName")
    if session is None:
        raise validation(None, "roleSessionName", "not be null")
    if len(session) < 2:
        raise validation(session, "roleSessionName",
                         "have length greater than or equal to 2")
    if len(session) > 64:
        raise validation(session, "roleSessionName", "have length less than or equal to 64")
    if not SESSION_NAME.match(session):
        raise validation(session, "roleSessionName",
                         "satisfy regular expression pattern: [\\w+=,.@-]*")
    return role_arn, session


def assume_role(state, params, caller):
    role_arn, session = check_common(params)
    ext = params.get("ExternalId")
    if ext is not None:
        if not 2 <= len(ext) <= 1224:
            raise validation(ext, "externalId", "have length greater than or equal to 2")
        if not EXTERNAL_ID.match(ext):
            raise validation(ext, "externalId",
                             "satisfy regular expression pattern: [\\w+=,.@:/-]*")
    role = state.config.roles.get(role_arn)
    candidates = [caller.arn]
    account = caller.arn.split(":")[4]
    candidates += [account, "arn:aws:iam::%s:root" % account]
    if caller.role_arn:
        candidates.append(caller.role_arn)
    context = {"sts:RoleSessionName": session, "aws:PrincipalArn":
               caller.role_arn or caller.arn}
    if ext is not None:
        context["sts:ExternalId"] = ext
    if role is None or not trust_allows(role, "sts:AssumeRole", "AWS", candidates, context):
        raise StsError(403, "AccessDenied",
                       "User: %s is not authorized to perform: sts:AssumeRole on "
                       "resource: %s" % (caller.arn, role_arn))
    duration = check_duration(params, role, chained=caller.role_arn is not None)
    creds, arn = state.issue(role, session, duration)
    return ("<AssumedRoleUser><Arn>%s</Arn><AssumedRoleId>%s:%s</AssumedRoleId>"
            "</AssumedRoleUser>%s<PackedPolicySize>0</PackedPolicySize>"
            % (xml_escape(arn), role["id"], xml_escape(session), creds_xml(creds))), \
        {"role_arn": role_arn, "session": session, "duration": duration}


def assume_role_with_web_identity(state, params):
    role_arn, session = check_common(params)
    tok = params.get("WebIdentityToken")
    if tok is None:
        raise validation(None, "webIdentityToken", "not be null")
    if not 4 <= len(tok) <= 20000:
        raise validation("*****", "webIdentityToken",
                         "have length greater than or equal to 4")
    try:
        header = jwt.get_unverified_header(tok)
        unverified = jwt.decode(tok, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise StsError(400, "InvalidIdentityToken", "The ID Token provided is not a "
                       "valid JWT. (You may see this error if you sent an Access Token)")
    iss = str(unverified.get("iss", "")).rstrip("/")
    prov = state.config.providers.get(iss)
    if prov is None:
        raise StsError(400, "InvalidIdentityToken",
                       "No OpenIDConnect provider found in your account for %s" % iss)
    key = next((k for k in prov["keys"] if k.key_id == header.get("kid")), None)
    if key is None and len(prov["keys"]) == 1 and not header.get("kid"):
        key = prov["keys"][0]
    if key is None:
        raise StsError(400, "InvalidIdentityToken",
                       "The web identity token that was passed could not be validated "
                       "by Amazon Web Services (no key %s in the provider's JWKS)."
                       % header.get("kid"))
    try:
        claims = jwt.decode(tok, key.key, algorithms=["RS256", "RS384", "RS512",
                                                      "ES256", "ES384"],
                            options={"verify_exp": False, "verify_aud": False,
                                     "verify_iss": False, "verify_iat": False,
                                     "verify_nbf": False})
    except jwt.PyJWTError:
        raise StsError(400, "InvalidIdentityToken",
                       "The web identity token that was passed could not be validated "
                       "by Amazon Web Services.")
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    match = [a for a in auds if a in prov["client_ids"]]
    if not match:
        raise StsError(400, "InvalidIdentityToken", "Incorrect token audience")
    now = int(time.time())
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)):
        raise StsError(400, "InvalidIdentityToken", "The token has no expiration (exp).")
    if exp <= now:
        raise StsError(400, "ExpiredTokenException",
                       "Token expired: current date/time %d must be before the "
                       "expiration date/time%d" % (now, exp))
    role = state.config.roles.get(role_arn)
    prefix = iss.split("://", 1)[-1]
    context = {prefix + ":aud": match[0], prefix + ":sub": str(claims.get("sub", "")),
               "sts:RoleSessionName": session}
    if role is None or not trust_allows(role, "sts:AssumeRoleWithWebIdentity",
                                        "Federated", [prov["arn"]], context):
        raise StsError(403, "AccessDenied",
                       "Not authorized to perform sts:AssumeRoleWithWebIdentity")
    duration = check_duration(params, role, chained=False)
    creds, arn = state.issue(role, session, duration)
    return ("<SubjectFromWebIdentityToken>%s</SubjectFromWebIdentityToken>"
            "<Audience>%s</Audience><AssumedRoleUser><Arn>%s</Arn>"
            "<AssumedRoleId>%s:%s</AssumedRoleId></AssumedRoleUser>%s"
            "<Provider>%s</Provider>"
            % (xml_escape(str(claims.get("sub", ""))), xml_escape(match[0]),
               xml_escape(arn), role["id"], xml_escape(session), creds_xml(creds),
               xml_escape(prefix))), \
        {"role_arn": role_arn, "session": session, "duration": duration}


def get_caller_identity(state, caller):
    arn = caller.arn
    account = arn.split(":")[4]
    if caller.role_arn:
        role = state.config.roles.get(caller.role_arn)
        rid = role["id"] if role else "AROA" + "X" * 17
        user_id = "%s:%s" % (rid, arn.rsplit("/", 1)[-1])
    else:
        user_id = "AIDA" + base64.b32encode(hashlib.sha256(
            arn.encode()).digest()).decode()[:17]
    return ("<Arn>%s</Arn><UserId>%s</UserId><Account>%s</Account>"
            % (xml_escape(arn), xml_escape(user_id), account)), {}


def creds_xml(c):
    return ("<Credentials><AccessKeyId>%s</AccessKeyId><SecretAccessKey>%s"
            "</SecretAccessKey><SessionToken>%s</SessionToken><Expiration>%s"
            "</Expiration></Credentials>"
            % (c["AccessKeyId"], xml_escape(c["SecretAccessKey"]),
               xml_escape(c["SessionToken"]), c["Expiration"]))


# ---------------------------------------------------------------------------
# HTTP


class Handler(cred_common.Handler):
    server_version = "sfexport-aws-sts/1"
    PROG = PROG
    ADMIN = "/_sts/"

    def params(self, body):
        """The Query parameters: the query string, and a form-encoded body."""
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if self.command == "POST" and ctype == "application/x-www-form-urlencoded":
            params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                    strict_parsing=bool(body)))
        return params

    def fault_target(self, path, body):
        try:
            return "/%s" % self.params(body).get("Action")
        except (UnicodeDecodeError, ValueError):
            return path

    def service(self, path, body, fault):
        st = self.state
        try:
            params = self.params(body)
        except (UnicodeDecodeError, ValueError):
            return self._error(StsError(404, "MalformedQueryString",
                                        "The query string contains a syntax error."), {})
        action = params.get("Action")
        entry = {"action": action, "region": None}
        if fault:
            return self._error({
                "throttling": StsError(400, "Throttling", "Rate exceeded"),
                "500": StsError(500, "InternalFailure", "An internal error occurred.",
                                "Receiver"),
                "503": StsError(503, "ServiceUnavailable", "Service is unavailable.",
                                "Receiver")}[fault["kind"]], entry)
        try:
            if action is None:
                raise StsError(400, "MissingAction", "Missing Action")
            if action not in ACTIONS or params.get("Version") != VERSION:
                raise StsError(400, "InvalidAction", "Could not find operation %s for "
                               "version %s" % (action, params.get("Version")))
            if action == "AssumeRoleWithWebIdentity":
                # "Calling AssumeRoleWithWebIdentity does not require the use
                # of AWS security credentials" (API reference): not verified.
                inner, info = assume_role_with_web_identity(st, params)
            else:
                caller, region = st.verifier.verify(self.command, self.path,
                                                    self.headers, body)
                entry["region"] = region
                if action == "AssumeRole":
                    inner, info = assume_role(st, params, caller)
                else:
                    inner, info = get_caller_identity(st, caller)
        except StsError as e:
            return self._error(e, entry)
        rid = str(uuid.uuid4())
        out = ('<%sResponse xmlns="%s">\n  <%sResult>%s</%sResult>\n'
               '  <ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata>\n'
               '</%sResponse>\n' % (action, NS, action, inner, action, rid, action))
        entry.update(info)
        st.record(dict(entry, status=200, code=None))
        self.send_body(200, out, "text/xml", [("x-amzn-RequestId", rid)])

    def _error(self, e, entry):
        rid = str(uuid.uuid4())
        self.state.record(dict(entry, status=e.status, code=e.code))
        ec.log(PROG, "%s refused: %s" % (entry.get("action"), e.code))
        body = ('<ErrorResponse xmlns="%s">\n  <Error>\n    <Type>%s</Type>\n'
                '    <Code>%s</Code>\n    <Message>%s</Message>\n  </Error>\n'
                '  <RequestId>%s</RequestId>\n</ErrorResponse>\n'
                % (NS, e.type, e.code, xml_escape(e.message), rid))
        self.send_body(e.status, body, "text/xml", [("x-amzn-RequestId", rid)])

    def health(self):
        return {"ok": True, "regions": sorted(self.state.regions)}

    def admin_routes(self):
        st = self.state
        return {("POST", "config"): st.config_from,
                ("POST", "expire"): lambda b: {"expired": st.issued.expire_all()}}


def main(argv=None):
    p = argparse.ArgumentParser(description="AWS STS stand-in (Query API)")
    cred_common.add_common_args(p, "write the credentials handed out here "
                                "(issued_creds.py), for s3_front "
                                "--issued-credentials")
    p.add_argument("--config", required=True, help="users, roles, OIDC providers (JSON)")
    p.add_argument("--region", action="append", default=[],
                   help="signing region this endpoint answers for (repeatable; "
                   "default us-east-1, the global endpoint's)")
    p.add_argument("--issued-credentials", action="append", default=[], metavar="FILE",
                   help="--issued-file of aws_imds / aws_ecs: their credentials may "
                   "call AssumeRole (role sessions)")
    p.add_argument("--lifetime", type=int,
                   help="credentials expire after this many seconds, whatever "
                   "DurationSeconds says (tests of expiry and renewal)")
    args = p.parse_args(argv)
    Handler.state = State(args)
    cred_common.serve(Handler, args, "regions %s, %d role(s)" % (
        ",".join(sorted(Handler.state.regions)), len(Handler.state.config.roles)))


if __name__ == "__main__":
    main()
