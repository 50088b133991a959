"""Authentication: key-pair JWT (as Snowflake documents it) and registered tokens.

Key-pair JWT rules
(https://docs.snowflake.com/en/developer-guide/sql-api/authenticating#using-key-pair-authentication,
https://docs.snowflake.com/en/user-guide/key-pair-auth-troubleshooting):
  * RS256, signed with the private key matching RSA_PUBLIC_KEY or RSA_PUBLIC_KEY_2
    of the user;
  * iss = ACCOUNT.USER.SHA256:<fingerprint>, fingerprint = standard base64 of the
    SHA-256 of the DER SubjectPublicKeyInfo (what DESC USER shows as
    RSA_PUBLIC_KEY_FP);
  * sub = ACCOUNT.USER; ACCOUNT and USER in upper case;
  * iat and exp present, exp in the future, and the token is not honoured more
    than one hour after iat whatever exp says.
Failures answer 401 {"code": "390144", "message": "JWT token is invalid. [uuid]"}.
"""

import base64
import hashlib
import os
import re
import threading
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization

MAX_AGE = 3600
CLOCK_SKEW = 60


def register_secret(label, value):
    """Add a credential to the test suite's secrets registry
    (SFEXPORT_SECRETS_FILE, see scripts/secret-scan.py), if it keeps one."""
    path = os.environ.get("SFEXPORT_SECRETS_FILE")
    if not path or not value:
        return
    line = label.encode() + b"\t" + base64.b64encode(value.encode("utf-8")) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


class AuthError(Exception):
    def __init__(self, code, message, reason):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason  # for the emulator's own log; not sent to the client


def fingerprint(public_key):
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def load_public_key(pem):
    if isinstance(pem, str):
        pem = pem.encode("utf-8")
    pem = pem.strip()
    if not pem.startswith(b"-----BEGIN"):
        # RSA_PUBLIC_KEY is usually given without the PEM armour.
        body = b"".join(pem.split())
        pem = b"-----BEGIN PUBLIC KEY-----\n" + body + b"\n-----END PUBLIC KEY-----\n"
    return serialization.load_pem_public_key(pem)


class Authenticator:
    def __init__(self, account=None):
        self.account = account.upper() if account else None
        self._registered = set()
        self.users = {}      # USER -> [public keys]
        self.tokens = {}     # token -> {"user", "type"}
        self.sql_users = {}  # USER -> [public keys], users made with CREATE USER (sfemu/account.py)
        self.lock = threading.Lock()

    @staticmethod
    def fingerprint_of(pem_or_body):
        return fingerprint(load_public_key(pem_or_body))

    def set_sql_users(self, keys):
        """keys: USER -> [RSA_PUBLIC_KEY, RSA_PUBLIC_KEY_2] (base64 bodies or None)."""
        loaded = {u: [load_public_key(k) if k else None for k in ks] for u, ks in keys.items()}
        with self.lock:
            self.sql_users = loaded

    def static_users(self):
        with self.lock:
            return set(self.users)

    def add_key(self, user, pem, slot=None):
        key = load_public_key(pem)
        with self.lock:
            keys = self.users.setdefault(user.upper(), [None, None])
            if slot in (1, 2):
                keys[slot - 1] = key
            elif keys[0] is None:
                keys[0] = key
            else:
                keys[1] = key
        return fingerprint(key)

    def remove_user(self, user):
        with self.lock:
            self.users.pop(user.upper(), None)
            for t in [t for t, v in self.tokens.items() if v["user"] == user.upper()]:
                del self.tokens[t]

    def add_token(self, user, token, token_type="OAUTH"):
        with self.lock:
            self.tokens[token] = {"user": user.upper(), "type": token_type.upper()}

    def describe(self):
        with self.lock:
            out = {u: [fingerprint(k) if k else None for k in keys]
                   for u, keys in self.users.items()}
            out.update({u: [fingerprint(k) if k else None for k in keys]
                        for u, keys in self.sql_users.items()})
            return out

    # ------------------------------------------------------------------
    def authenticate(self, auth_header, token_type):
        """Returns the user name or raises AuthError."""
        if not auth_header:
            raise AuthError("390101", "Authorization header not found in the request data.",
                            "no Authorization header")
        m = re.match(r"(?i)bearer\s+(\S+)\s*$", auth_header)
        if not m:
            raise AuthError("390101", "Authorization header is malformed.", "not Bearer")
        token = m.group(1)
        if token not in self._registered:
            # a key-pair JWT or a token sfexport sent: a credential, for the
            # suite's secret scan (scripts/secret-scan.py)
            self._registered.add(token)
            register_secret("Snowflake bearer token (JWT or OAuth) received", token)
        ttype = (token_type or "").strip().upper()
        if ttype in ("OAUTH", "PROGRAMMATIC_ACCESS_TOKEN"):
            return self._check_token(token, ttype)
        if ttype in ("", "KEYPAIR_JWT"):
            if ttype == "" and token.count(".") != 2:
                return self._check_token(token, "OAUTH")
            return self._check_jwt(token)
        raise AuthError("390144", self._invalid(), "unknown token type %s" % ttype)

    @staticmethod
    def _invalid():
        return "JWT token is invalid. [%s]" % uuid.uuid4()

    def _check_token(self, token, ttype):
        with self.lock:
            info = self.tokens.get(token)
        if not info or info["type"] != ttype:
            raise AuthError("390303", "Invalid OAuth access token. [%s]" % uuid.uuid4(),
                            "unknown %s token" % ttype)
        return info["user"]

    def _check_jwt(self, token):
        def bad(reason):
            return AuthError("390144", self._invalid(), reason)

        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as e:
            raise bad("malformed JWT: %s" % e)
        if header.get("alg") != "RS256":
            raise bad("alg is %r, not RS256" % header.get("alg"))
        iss, sub = claims.get("iss"), claims.get("sub")
        if not isinstance(iss, str) or not isinstance(sub, str):
            raise bad("iss/sub missing")
        m = re.fullmatch(r"(.+)\.(SHA256:[A-Za-z0-9+/]+={0,2})", iss)
        if not m:
            raise bad("iss is not ACCOUNT.USER.SHA256:fingerprint")
        prefix, fp = m.group(1), m.group(2)
        if sub != prefix:
            raise bad("sub %r does not match iss prefix %r" % (sub, prefix))
        if "." not in prefix:
            raise bad("sub is not ACCOUNT.USER")
        account, user = prefix.split(".", 1)
        if account != account.upper() or user != user.upper():
            raise bad("account/user in claims are not upper case")
        if self.account and account != self.account:
            raise bad("account %r is not %r" % (account, self.account))
        with self.lock:
            keys = [k for k in (self.sql_users[user] if user in self.sql_users
                                else self.users.get(user, [])) if k is not None]
        if not keys:
            raise bad("unknown user %r" % user)
        key = next((k for k in keys if fingerprint(k) == fp), None)
        if key is None:
            raise bad("public key fingerprint mismatch for %r" % user)
        try:
            jwt.decode(token, key=key, algorithms=["RS256"], leeway=CLOCK_SKEW,
                       options={"require": ["iat", "exp"], "verify_aud": False,
                                "verify_iss": False})
        except jwt.ExpiredSignatureError:
            raise bad("token expired")
        except jwt.PyJWTError as e:
            raise bad("verification failed: %s" % e)
        now = time.time()
        iat = claims.get("iat")
        if not isinstance(iat, (int, float)):
            raise bad("iat not numeric")
        if iat > now + CLOCK_SKEW:
            raise bad("iat in the future")
        if now - iat > MAX_AGE:
            raise bad("token older than one hour")
        return user
