#!/usr/bin/python3
"""Google Security Token Service (token exchange, RFC 8693) and IAM
Credentials generateAccessToken stand-in, for external-account (workload
identity federation) credentials in the sfexport tests.

    server.py --port 0 --port-file F --config wif.json
              [--lifetime 3600] [--issued-file ISSUED.json] [--host 127.0.0.1]

An external-account JSON names this server twice:
    "token_url": "http://127.0.0.1:PORT/v1/token",
    "service_account_impersonation_url":
      "http://127.0.0.1:PORT/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken"
Both kinds of token it hands out are written to --issued-file (hashed,
issued_creds.py), which gcs --issued-tokens reads.

Protocol, with sources:
- POST /v1/token, form-encoded (google-auth's sts.py sends
  application/x-www-form-urlencoded): grant_type
  urn:ietf:params:oauth:grant-type:token-exchange, audience (the provider:
  //iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/PROV),
  scope (space-separated), requested_token_type
  urn:ietf:params:oauth:token-type:access_token, subject_token,
  subject_token_type urn:ietf:params:oauth:token-type:jwt or :id_token.
  Answer {"access_token", "issued_token_type", "token_type": "Bearer",
  "expires_in"}.  https://cloud.google.com/iam/docs/reference/sts/rest/v1/TopLevel/token
  https://datatracker.ietf.org/doc/html/rfc8693#section-2 ;
  errors as RFC 6749 5.2 / RFC 8693 2.2.2: 400 {"error", "error_description"}
  with unsupported_grant_type, invalid_request, invalid_target (no such
  provider), invalid_grant (the subject token is refused).
- The subject token is an OIDC ID token: signed by a key of the provider's
  JWKS, iss equal to the provider's issuer, aud one of its allowed
  audiences -- by default the provider's resource URL
  https://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/PROV
  ("Configure Workload Identity Federation with other identity providers",
  https://cloud.google.com/iam/docs/workload-identity-federation-with-other-providers),
  exp in the future.  google.subject = assertion.sub (the default mapping);
  the federated principal is
  principal://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/subject/SUB.
- POST /v1/projects/-/serviceAccounts/EMAIL:generateAccessToken with
  Authorization: Bearer <federated token> and JSON {"scope": [...],
  "lifetime": "3600s", "delegates": []} -> {"accessToken", "expireTime"}
  (RFC 3339, Z).  https://cloud.google.com/iam/docs/reference/credentials/rest/v1/projects.serviceAccounts/generateAccessToken
  The principal needs roles/iam.workloadIdentityUser on the service account
  (config "members", principal:// or principalSet://.../*), else 403
  PERMISSION_DENIED "Permission 'iam.serviceAccounts.getAccessToken' denied
  on resource (or it may not exist)."; a missing or unknown bearer token 401
  UNAUTHENTICATED; lifetime above 3600s or no scope 400 INVALID_ARGUMENT.
  Google API error JSON: {"error": {"code", "message", "status", "details"}}
  (https://cloud.google.com/apis/design/errors).

Config (JSON):
  {"providers": [{"audience": "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/prov",
                  "issuer": "https://issuer.example", "jwks": {"keys": [...]},
                  "allowed_audiences": [...] (optional)}],
   "service_accounts": [{"email": "sa@p.iam.gserviceaccount.com",
                         "members": ["principal://iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/subject/SUB"]}]}

--lifetime: expires_in of federated tokens (3600 at Google); impersonated
tokens live for the requested lifetime, capped by --lifetime (so tests see
expiry).

Admin API under /_gsts/ (cred_common.py: health, stats with "exchanges"
and "impersonations", requests [{"path", "status", "code"}], faults,
reset), and POST /_gsts/expire: every token issued so far expires now.
Tokens are never logged.
"""

import argparse
import json
import os
import re
import secrets
import sys
import time
from urllib.parse import parse_qsl, unquote

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import cred_common  # noqa: E402
import emu_common as ec  # noqa: E402
import issued_creds  # noqa: E402
import jwt  # noqa: E402

PROG = "google_sts"
GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
SUBJECT_TYPES = ("urn:ietf:params:oauth:token-type:jwt",
                 "urn:ietf:params:oauth:token-type:id_token")
AUDIENCE = re.compile(r"^//iam\.googleapis\.com/(projects/(\d+)/locations/global/"
                      r"workloadIdentityPools/([^/]+))/providers/([^/]+)$")
IMPERSONATE = re.compile(r"^/v1/projects/-/serviceAccounts/([^/:]+):generateAccessToken$")
MAX_LIFETIME = 3600


class OAuthError(Exception):
    def __init__(self, error, description):
        super().__init__(error)
        self.error = error
        self.description = description


class ApiError(Exception):
    def __init__(self, code, status, message, reason=None):
        super().__init__(status)
        self.code = code
        self.status = status
        self.message = message
        self.reason = reason


class Config:
    def __init__(self, data):
        self.providers = {}
        for p in data.get("providers", []):
            m = AUDIENCE.match(p["audience"])
            if not m:
                raise ValueError("bad provider audience %r" % p["audience"])
            self.providers[p["audience"]] = {
                "issuer": p["issuer"].rstrip("/"),
                "keys": jwt.PyJWKSet.from_dict(p["jwks"]).keys,
                "allowed": p.get("allowed_audiences") or
                ["https:" + p["audience"]],
                "pool": m.group(1)}
        self.members = {sa["email"]: list(sa.get("members", []))
                        for sa in data.get("service_accounts", [])}


class State(cred_common.StandIn):
    def __init__(self, args):
        with open(args.config) as f:
            self.config = Config(json.load(f))
        self.lifetime = args.lifetime
        self.writer = issued_creds.IssuedWriter(args.issued_file)
        self.federated = {}   # sha256(token) -> (principal, pool, expires_at)
        super().__init__()

    def own_counters(self):
        return {"exchanges": 0, "impersonations": 0}

    def expire(self, body):
        with self.lock:
            self.federated = {k: (v[0], v[1], 0) for k, v in self.federated.items()}
        return {"expired": self.writer.expire_all()}

    def issue(self, who, scopes, lifetime):
        tok = "ya29.d.emu-" + secrets.token_urlsafe(60)
        exp = time.time() + lifetime
        ec.register_secret("Google STS token for %s" % who, tok)
        self.writer.add_gcp(tok, exp, who, scopes, PROG)
        return tok, exp


def exchange(st, form):
    if form.get("grant_type") != GRANT:
        raise OAuthError("unsupported_grant_type",
                         "Invalid value for \"grant_type\": %s" % form.get("grant_type"))
    for need in ("audience", "subject_token", "subject_token_type",
                 "requested_token_type"):
        if not form.get(need):
            raise OAuthError("invalid_request", "Missing required parameter: %s" % need)
    if form["requested_token_type"] != ACCESS_TOKEN_TYPE:
        raise OAuthError("invalid_request", "Invalid value for \"requested_token_type\"")
    if form["subject_token_type"] not in SUBJECT_TYPES:
        raise OAuthError("invalid_request", "Invalid value for \"subject_token_type\": "
                         "this stand-in takes OIDC tokens only")
    scopes = form.get("scope", "").split()
    if not scopes:
        raise OAuthError("invalid_scope", "A scope is required")
    prov = st.config.providers.get(form["audience"])
    if prov is None:
        raise OAuthError("invalid_target",
                         "The target service indicated by the \"audience\" parameters is "
                         "invalid. This might either be because the pool or provider is "
                         "disabled or deleted or because it doesn't exist.")
    tok = form["subject_token"]
    try:
        kid = jwt.get_unverified_header(tok).get("kid")
        key = next((k for k in prov["keys"] if k.key_id == kid), None)
        if key is None:
            raise OAuthError("invalid_grant", "Invalid ID token: no key %s in the "
                             "provider's JWKS." % kid)
        claims = jwt.decode(tok, key.key, algorithms=["RS256", "ES256"],
                            options={"verify_aud": False, "verify_exp": False,
                                     "verify_iss": False})
    except jwt.PyJWTError:
        raise OAuthError("invalid_grant", "Invalid ID token: its signature could not be "
                         "verified.")
    if str(claims.get("iss", "")).rstrip("/") != prov["issuer"]:
        raise OAuthError("invalid_grant", "The issuer in ID Token %s does not match the "
                         "expected issuer %s." % (claims.get("iss"), prov["issuer"]))
    auds = claims.get("aud") if isinstance(claims.get("aud"), list) else [claims.get("aud")]
    if not any(a in prov["allowed"] for a in auds):
        raise OAuthError("invalid_grant", "The audience in ID Token %s does not match "
                         "the expected audience." % auds)
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or exp <= time.time():
        raise OAuthError("invalid_grant", "ID Token expired or has no expiry (exp).")
    if not claims.get("sub"):
        raise OAuthError("invalid_grant", "The ID token has no sub claim "
                         "(google.subject).")
    principal = "principal://iam.googleapis.com/%s/subject/%s" % (prov["pool"],
                                                                  claims["sub"])
    access, expires = st.issue(principal, scopes, st.lifetime)
    with st.lock:
        st.federated[issued_creds.token_sha256(access)] = (principal, prov["pool"],
                                                           expires)
        st.counters["exchanges"] += 1
    return {"access_token": access, "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer", "expires_in": st.lifetime}


def impersonate(st, email, auth, body):
    scheme, _, tok = (auth or "").partition(" ")
    with st.lock:
        ent = st.federated.get(issued_creds.token_sha256(tok.strip())) \
            if scheme.lower() == "bearer" else None
    if ent is None or ent[2] <= time.time():
        raise ApiError(401, "UNAUTHENTICATED", "Request had invalid authentication "
                       "credentials. Expected OAuth 2 access token, login cookie or other "
                       "valid authentication credential.", "ACCESS_TOKEN_TYPE_UNSUPPORTED")
    principal, pool, _ = ent
    members = st.config.members.get(email, [])
    pool_set = "principalSet://iam.googleapis.com/%s/*" % pool
    if principal not in members and pool_set not in members:
        raise ApiError(403, "PERMISSION_DENIED", "Permission "
                       "'iam.serviceAccounts.getAccessToken' denied on resource (or it "
                       "may not exist).", "IAM_PERMISSION_DENIED")
    try:
        req = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
    scopes = req.get("scope") or []
    if not isinstance(scopes, list) or not scopes:
        raise ApiError(400, "INVALID_ARGUMENT", "Scope required.")
    m = re.fullmatch(r"(\d+)(?:\.\d+)?s", str(req.get("lifetime", "3600s")))
    if not m or not 1 <= int(m.group(1)) <= MAX_LIFETIME:
        raise ApiError(400, "INVALID_ARGUMENT", "The lifetime must be between 1s and "
                       "%ds." % MAX_LIFETIME)
    lifetime = min(int(m.group(1)), st.lifetime)
    tok, exp = st.issue(email, scopes, lifetime)
    st.count("impersonations")
    return {"accessToken": tok, "expireTime": issued_creds.utc_iso(exp)}


class Handler(cred_common.Handler):
    server_version = "ESF"
    PROG = PROG
    ADMIN = "/_gsts/"

    def service(self, path, body, fault):
        st = self.state

        def answer(status, obj, code=None):
            st.record({"path": path, "status": status, "code": code})
            self.send_json(status, obj, ctype="application/json; charset=UTF-8")
        if fault:
            return answer(int(fault["kind"]), {"error": {
                "code": int(fault["kind"]), "message": "injected fault",
                "status": "UNAVAILABLE" if fault["kind"] == "503" else "INTERNAL"}},
                "fault")
        if path == "/v1/token":
            try:
                if self.command != "POST":
                    raise OAuthError("invalid_request", "POST is required")
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                if ctype == "application/json":
                    form = json.loads(body or b"{}")
                else:
                    form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
                out = exchange(st, form)
            except OAuthError as e:
                ec.log(PROG, "token exchange refused: %s" % e.error)
                return answer(400, {"error": e.error, "error_description": e.description},
                              e.error)
            except (ValueError, UnicodeDecodeError):
                return answer(400, {"error": "invalid_request",
                                    "error_description": "malformed request body"},
                              "invalid_request")
            return answer(200, out)
        m = IMPERSONATE.match(path)
        if m and self.command == "POST":
            try:
                out = impersonate(st, unquote(m.group(1)),
                                  self.headers.get("Authorization"), body)
            except ApiError as e:
                ec.log(PROG, "generateAccessToken refused: %s" % e.status)
                err = {"code": e.code, "message": e.message, "status": e.status}
                if e.reason:
                    err["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                       "reason": e.reason, "domain": "iam.googleapis.com",
                                       "metadata": {"permission":
                                                    "iam.serviceAccounts.getAccessToken"}}]
                return answer(e.code, {"error": err}, e.status)
            return answer(200, out)
        answer(404, {"error": {"code": 404, "message": "Not found", "status": "NOT_FOUND"}},
               "NOT_FOUND")

    def admin_routes(self):
        return {("POST", "expire"): self.state.expire}


def main(argv=None):
    p = argparse.ArgumentParser(description="Google STS + IAM Credentials stand-in")
    cred_common.add_common_args(p, "write the tokens handed out here (hashed; "
                                "issued_creds.py), for gcs --issued-tokens")
    p.add_argument("--config", required=True, help="providers and service accounts")
    p.add_argument("--lifetime", type=int, default=3600,
                   help="seconds federated tokens live (and the cap of impersonated)")
    args = p.parse_args(argv)
    Handler.state = State(args)
    cred_common.serve(Handler, args, "%d provider(s)" % len(Handler.state.config.providers))


if __name__ == "__main__":
    main()
