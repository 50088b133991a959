"""Credentials issued at run time by the credential stand-ins, shared with
the storage stand-ins that must accept them (stdlib only).

The issuers (aws_sts, aws_imds, aws_ecs, gce_metadata) each own one file
(``--issued-file PATH``); the verifiers read any number of them
(s3_front ``--issued-credentials PATH``, gcs
``--issued-tokens PATH``) and re-read a file whenever it changes, so a test
starts the storage stand-in and the issuer in any order and a credential is
valid there as soon as it has been handed out.

File (JSON, mode 0600, always rewritten whole: temp file + rename, so a
reader never sees half of it; one writer per file):

    {"aws": [{"AccessKeyId": "ASIA...", "SecretAccessKey": "...",
              "SessionToken": "...", "Expiration": "2026-01-01T00:00:00Z",
              "Arn": "arn:aws:sts::123456789012:assumed-role/R/S",
              "RoleArn": "arn:aws:iam::123456789012:role/R",
              "Issuer": "aws_sts"}],
     "gcp": [{"token_sha256": "<hex>", "expires_at": 1767225600.0,
              "email": "sa@p.iam.gserviceaccount.com",
              "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
              "issuer": "gce_metadata"}]}

AWS records carry the secret key because a verifier of SigV4 needs it.
Google access tokens are bearer tokens, so only their SHA-256 is written.
Expired records stay for an hour after their expiry, so that a verifier can
tell "expired" (S3: 400 ExpiredToken) from "never issued".
"""

import base64
import datetime
import hashlib
import json
import os
import secrets
import tempfile
import threading
import time

import emu_common as ec

KEEP_EXPIRED = 3600


def utc_iso(epoch):
    """ISO 8601 UTC with a Z, seconds precision (the form STS, IMDS and ECS
    use for Expiration)."""
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) \
        .strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value):
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def token_sha256(token):
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_aws_credentials():
    """Random temporary credentials of the form AWS hands out: an ASIA key id,
    a 40-character secret, a long base64 session token (with + / =)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    akid = "ASIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    token = "IQoJb3JpZ2luX2VjE" + base64.b64encode(secrets.token_bytes(190)).decode()
    return akid, secret, token


def _write_atomic(path, obj):
    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(prefix=".issued.", dir=os.path.dirname(path))
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class IssuedWriter:
    """The issuing side: one per stand-in process and file."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.data = {"aws": [], "gcp": []}
        if path:
            self._flush()

    def _prune(self, now):
        self.data["aws"] = [r for r in self.data["aws"]
                            if parse_iso(r["Expiration"]) + KEEP_EXPIRED > now]
        self.data["gcp"] = [r for r in self.data["gcp"]
                            if r["expires_at"] + KEEP_EXPIRED > now]

    def _flush(self):
        if self.path:
            _write_atomic(self.path, self.data)

    def add_aws(self, access_key, secret, token, expiration_epoch, arn, role_arn,
                issuer):
        with self.lock:
            self._prune(time.time())
            self.data["aws"].append({"AccessKeyId": access_key,
                                     "SecretAccessKey": secret,
                                     "SessionToken": token,
                                     "Expiration": utc_iso(expiration_epoch),
                                     "Arn": arn, "RoleArn": role_arn,
                                     "Issuer": issuer})
            self._flush()

    def add_gcp(self, token, expires_at, email, scopes, issuer):
        with self.lock:
            self._prune(time.time())
            self.data["gcp"].append({"token_sha256": token_sha256(token),
                                     "expires_at": float(expires_at),
                                     "email": email, "scopes": list(scopes),
                                     "issuer": issuer})
            self._flush()

    def aws(self, access_key):
        """The record of a key this writer issued, or None."""
        with self.lock:
            for r in reversed(self.data["aws"]):
                if r["AccessKeyId"] == access_key:
                    return dict(r)
        return None

    def expire_all(self):
        """Mark everything issued so far as expired (a test of renewal)."""
        with self.lock:
            past = time.time() - 1
            for r in self.data["aws"]:
                r["Expiration"] = utc_iso(min(parse_iso(r["Expiration"]), past))
            for r in self.data["gcp"]:
                r["expires_at"] = min(r["expires_at"], past)
            self._flush()
            return len(self.data["aws"]) + len(self.data["gcp"])


class IssuedReader:
    """The verifying side: looks credentials up in the issuers' files,
    re-reading a file when its inode, size or mtime changed."""

    def __init__(self, paths):
        self.paths = list(paths)
        self.lock = threading.Lock()
        self._stamp = {}
        self._data = {}

    def _reload(self):
        for p in self.paths:
            try:
                st = os.stat(p)
            except OSError:
                self._data.pop(p, None)
                self._stamp.pop(p, None)
                continue
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
            if self._stamp.get(p) == stamp:
                continue
            try:
                with open(p) as f:
                    self._data[p] = json.load(f)
                self._stamp[p] = stamp
            except (OSError, ValueError):
                continue  # a file being replaced: read it next time

    def aws(self, access_key):
        """The record of an issued AWS access key (latest one), or None.
        The caller compares Expiration (``expired()``)."""
        with self.lock:
            self._reload()
            found = None
            for d in self._data.values():
                for r in d.get("aws", []):
                    if r.get("AccessKeyId") == access_key:
                        found = r
            return found

    def gcp(self, token):
        """(email, expires_at, frozenset(scopes)) of an issued Google access
        token, or None."""
        h = token_sha256(token)
        with self.lock:
            self._reload()
            for d in self._data.values():
                for r in d.get("gcp", []):
                    if r.get("token_sha256") == h:
                        return (r["email"], r["expires_at"], frozenset(r["scopes"]))
        return None

    @staticmethod
    def expired(aws_record, now=None):
        return parse_iso(aws_record["Expiration"]) <= (now or time.time())


class RotatingRole:
    """The credentials of one role as an instance profile (aws_imds) or a task
    role (aws_ecs) hands them out: the same ones until they come within
    rotate_before seconds of their expiry, then new ones.  EC2: "We make new
    credentials available at least five minutes before the expiration of the
    old credentials." (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/iam-roles-for-amazon-ec2.html)"""

    def __init__(self, role_arn, lifetime, rotate_before, writer, issuer):
        self.role_arn = role_arn
        parts = role_arn.split(":")
        self.account = parts[4]
        self.role_name = role_arn.rsplit("/", 1)[-1]
        self.lifetime = lifetime
        self.rotate_before = min(rotate_before, lifetime / 2.0)
        self.writer = writer
        self.issuer = issuer
        self.lock = threading.Lock()
        self.current = None
        self.rotations = 0

    def session_arn(self, session):
        return "arn:aws:sts::%s:assumed-role/%s/%s" % (self.account, self.role_name,
                                                       session)

    def get(self, session="i-0123456789abcdef0"):
        """dict with AccessKeyId, SecretAccessKey, Token, Expiration (epoch),
        LastUpdated (epoch)."""
        now = time.time()
        with self.lock:
            c = self.current
            if c is None or c["Expiration"] - now <= self.rotate_before:
                akid, secret, token = new_aws_credentials()
                c = {"AccessKeyId": akid, "SecretAccessKey": secret, "Token": token,
                     "Expiration": now + self.lifetime, "LastUpdated": now}
                ec.register_secret("%s secret access key %s" % (self.issuer, akid), secret)
                ec.register_secret("%s session token %s" % (self.issuer, akid), token)
                self.writer.add_aws(akid, secret, token, c["Expiration"],
                                    self.session_arn(session), self.role_arn, self.issuer)
                self.current = c
                self.rotations += 1
            return dict(c)

    def rotate(self):
        """The next get() hands out new credentials."""
        with self.lock:
            self.current = None
