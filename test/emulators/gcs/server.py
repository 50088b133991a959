#!/usr/bin/python3
"""Google Cloud Storage (JSON API) + OAuth token endpoint stand-in for sfexport.

    test/emulators/start gcs --port 0 --port-file F --data-dir DIR
                    --service-account /path/key.json [--service-account ...]
                    [--bucket NAME ...] [--host 127.0.0.1]
                    [--token-lifetime 3599] [--crc32c-max-bytes N]
                    [--issued-tokens FILE ...]

--issued-tokens: the --issued-file of gce_metadata (issued_creds.py); the
access tokens it handed out are accepted as if issued here, with their
scopes, until they expire.

Point a client at it with STORAGE_EMULATOR_HOST=127.0.0.1:PORT (or an
endpoint override) and use service-account key files whose token_uri is
http://127.0.0.1:PORT/token (../lib/gcs_keys.make_service_account writes such files).

Sources for the protocol rules (cited where they are applied below):
- OAuth 2.0 for service accounts ("Preparing to make an authorized API call",
  JWT header/claim set, "Making the access token request", error responses):
  https://developers.google.com/identity/protocols/oauth2/service-account
- JSON API uploads: https://cloud.google.com/storage/docs/uploading-objects,
  https://cloud.google.com/storage/docs/performing-resumable-uploads
  (308 "Resume Incomplete" with a Range header, chunks multiples of 256 KiB
  except the last, "Content-Range: bytes */*" to query status, "bytes */SIZE"),
  https://cloud.google.com/storage/docs/json_api/v1/objects (object resource,
  size/generation as strings, md5Hash/crc32c base64 big-endian),
  https://cloud.google.com/storage/docs/json_api/v1/status-codes (error JSON
  {"error": {"code", "message", "errors": [{"domain","reason","message"}]}}).
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import secrets
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, quote, unquote, urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import jwt  # noqa: E402  (Debian python3-jwt)
from cryptography.hazmat.primitives import serialization  # noqa: E402

import emu_common as ec  # noqa: E402
import issued_creds  # noqa: E402

PROG = "gcs"
CHUNK_UNIT = 256 * 1024
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE_RO = {"https://www.googleapis.com/auth/devstorage.read_only",
            "https://www.googleapis.com/auth/cloud-platform.read-only"}
SCOPE_RW = {"https://www.googleapis.com/auth/devstorage.read_write",
            "https://www.googleapis.com/auth/devstorage.full_control",
            "https://www.googleapis.com/auth/cloud-platform"}
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")
FAULT_KINDS = {"503", "429", "500", "error", "drop", "drop_after", "delay"}


# ---------------------------------------------------------------------------
# CRC32C (Castagnoli), reflected polynomial 0x82F63B78; pure Python.

def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_T = _crc32c_table()


class Crc32c:
    def __init__(self):
        self.crc = 0xFFFFFFFF

    def update(self, data):
        crc, t = self.crc, _CRC_T
        for b in data:
            crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
        self.crc = crc

    def b64(self):
        return base64.b64encode((self.crc ^ 0xFFFFFFFF).to_bytes(4, "big")).decode()


def rfc3339(ts):
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


class GcsError(Exception):
    def __init__(self, status, message, reason, extra_headers=(), **err_extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.extra_headers = list(extra_headers)
        self.err_extra = err_extra

    def body(self):
        e = {"message": self.message, "domain": "global", "reason": self.reason}
        e.update(self.err_extra)
        return {"error": {"code": self.status, "message": self.message,
                          "errors": [e]}}


class OAuthError(Exception):
    """Google OAuth token endpoint error: {"error", "error_description"}."""

    def __init__(self, error, description, status=400):
        super().__init__(error)
        self.error = error
        self.description = description
        self.status = status


def not_found_object(bucket, name):
    return GcsError(404, "No such object: %s/%s" % (bucket, name), "notFound")


def not_found_bucket():
    return GcsError(404, "The specified bucket does not exist.", "notFound")


# ---------------------------------------------------------------------------
# State


class Store:
    """Buckets and objects under data_dir; resumable sessions under uploads/."""

    def __init__(self, data_dir, crc_max):
        self.root = os.path.abspath(data_dir)
        self.crc_max = crc_max
        os.makedirs(os.path.join(self.root, "buckets"), exist_ok=True)
        os.makedirs(os.path.join(self.root, "uploads"), exist_ok=True)
        self.lock = threading.RLock()
        self._last_gen = 0

    # -- buckets
    def bucket_dir(self, b):
        return os.path.join(self.root, "buckets", b)

    def bucket_exists(self, b):
        return bool(BUCKET_RE.match(b)) and os.path.isdir(self.bucket_dir(b))

    def create_bucket(self, b):
        if not BUCKET_RE.match(b):
            raise GcsError(400, "Invalid bucket name: '%s'" % b, "invalid")
        with self.lock:
            if self.bucket_exists(b):
                return False
            os.makedirs(os.path.join(self.bucket_dir(b), "objects"), exist_ok=True)
            with open(os.path.join(self.bucket_dir(b), "bucket.json"), "w") as f:
                json.dump({"timeCreated": time.time()}, f)
            return True

    def bucket_resource(self, b):
        try:
            with open(os.path.join(self.bucket_dir(b), "bucket.json")) as f:
                created = json.load(f)["timeCreated"]
        except (OSError, ValueError, KeyError):
            created = time.time()
        return {"kind": "storage#bucket", "id": b, "name": b,
                "projectNumber": "0", "metageneration": "1", "location": "US",
                "storageClass": "STANDARD", "etag": "CAE=",
                "timeCreated": rfc3339(created), "updated": rfc3339(created),
                "locationType": "multi-region"}

    def require_bucket(self, b):
        if not self.bucket_exists(b):
            raise not_found_bucket()

    # -- objects
    def _obj_base(self, b, name):
        h = hashlib.sha256(name.encode("utf-8", "surrogateescape")).hexdigest()
        return os.path.join(self.bucket_dir(b), "objects", h)

    def get_meta(self, b, name):
        try:
            with open(self._obj_base(b, name) + ".json") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def open_data(self, b, name):
        """(meta, open file) read consistently, or raise 404."""
        with self.lock:
            meta = self.get_meta(b, name)
            if meta is None:
                raise not_found_object(b, name)
            return meta, open(self._obj_base(b, name) + ".data", "rb")

    def next_generation(self):
        with self.lock:
            g = max(int(time.time() * 1e6), self._last_gen + 1)
            self._last_gen = g
            return g

    @staticmethod
    def check_preconditions(params, meta, write=False):
        cur = int(meta["generation"]) if meta else 0
        m = params.get("ifGenerationMatch")
        if m is not None and int(m) != cur:
            raise GcsError(412, "At least one of the pre-conditions you specified "
                                "did not hold.", "conditionNotMet",
                           locationType="header", location="If-Match")
        nm = params.get("ifGenerationNotMatch")
        if nm is not None and int(nm) == cur:
            if write:
                raise GcsError(412, "At least one of the pre-conditions you specified "
                                    "did not hold.", "conditionNotMet")
            raise GcsError(304, "Not Modified", "notModified")

    def commit(self, b, name, src_path, size, md5_hex, crc_b64, content_type,
               params, metadata=None, expect_hashes=None):
        """Move a fully written temp file into place as the new generation."""
        md5_b64 = base64.b64encode(bytes.fromhex(md5_hex)).decode()
        if expect_hashes:
            for algo, want in expect_hashes.items():
                have = md5_b64 if algo == "md5" else crc_b64
                if algo == "crc32c" and have is None:
                    continue  # not computed for very large objects
                if want != have:
                    raise GcsError(
                        400, "Provided %s hash \"%s\" doesn't match calculated %s "
                        "hash \"%s\"." % ("MD5" if algo == "md5" else "CRC32C",
                                           want, "MD5" if algo == "md5" else "CRC32C",
                                           have), "invalid")
        with self.lock:
            self.require_bucket(b)
            old = self.get_meta(b, name)
            self.check_preconditions(params, old, write=True)
            gen = self.next_generation()
            now = time.time()
            meta = {"kind": "storage#object", "name": name, "bucket": b,
                    "generation": str(gen), "metageneration": "1",
                    "contentType": content_type or "application/octet-stream",
                    "storageClass": "STANDARD", "size": str(size),
                    "md5Hash": md5_b64,
                    "etag": base64.b64encode(b"\x08" + gen.to_bytes(8, "little")
                                             + b"\x10\x01").decode(),
                    "timeCreated": rfc3339(now), "updated": rfc3339(now),
                    "timeStorageClassUpdated": rfc3339(now)}
            if crc_b64 is not None:
                meta["crc32c"] = crc_b64
            if metadata:
                meta["metadata"] = {str(k): str(v) for k, v in metadata.items()}
            base = self._obj_base(b, name)
            os.replace(src_path, base + ".data")
            tmp = base + ".json.tmp"
            with open(tmp, "w") as f:
                json.dump(meta, f)
            os.replace(tmp, base + ".json")
            return meta

    def delete(self, b, name, params):
        with self.lock:
            self.require_bucket(b)
            meta = self.get_meta(b, name)
            if meta is None:
                raise not_found_object(b, name)
            self.check_preconditions(params, meta, write=True)
            base = self._obj_base(b, name)
            os.unlink(base + ".json")
            try:
                os.unlink(base + ".data")
            except FileNotFoundError:
                pass

    def list_names(self, b):
        d = os.path.join(self.bucket_dir(b), "objects")
        out = []
        for fn in os.listdir(d):
            if fn.endswith(".json"):
                try:
                    with open(os.path.join(d, fn)) as f:
                        out.append(json.load(f))
                except (OSError, ValueError):
                    continue  # deleted meanwhile
        out.sort(key=lambda m: m["name"])
        return out

    def tmp_path(self):
        return os.path.join(self.root, "uploads", "tmp-%s" % secrets.token_hex(8))

    # -- resumable sessions (persisted, so they survive an emulator restart)
    def session_paths(self, uid):
        if not re.match(r"^[A-Za-z0-9_-]{10,100}$", uid or ""):
            return None, None
        base = os.path.join(self.root, "uploads", uid)
        return base + ".json", base + ".part"

    def save_session(self, uid, sess):
        jp, _ = self.session_paths(uid)
        with open(jp + ".tmp", "w") as f:
            json.dump(sess, f)
        os.replace(jp + ".tmp", jp)

    def load_session(self, uid):
        jp, pp = self.session_paths(uid)
        if jp is None:
            return None
        try:
            with open(jp) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None


class Accounts:
    """Registered service accounts: client_email -> (public key, key id, token_uri).

    Files named with --service-account are (re)read when they change, so a test
    can start the emulator first (port 0), then write the key file whose
    token_uri names the emulator's port.
    """

    def __init__(self, paths):
        self.paths = list(paths)
        self.lock = threading.Lock()
        self.by_email = {}
        self._mtimes = {}
        self.reload()

    @staticmethod
    def parse(info):
        for f in ("client_email", "private_key", "token_uri"):
            if not isinstance(info.get(f), str) or not info[f]:
                raise ValueError("service-account JSON lacks %s" % f)
        priv = serialization.load_pem_private_key(info["private_key"].encode(), None)
        return {"public_key": priv.public_key(), "key_id": info.get("private_key_id"),
                "token_uri": info["token_uri"], "email": info["client_email"]}

    def add_info(self, info):
        acct = self.parse(info)
        with self.lock:
            self.by_email[acct["email"]] = acct
        return acct["email"]

    def reload(self):
        for p in self.paths:
            try:
                m = os.stat(p).st_mtime_ns
            except OSError:
                continue
            if self._mtimes.get(p) == m:
                continue
            try:
                with open(p) as f:
                    email = self.add_info(json.load(f))
                self._mtimes[p] = m
                ec.log(PROG, "service account %s loaded from %s" % (email, p))
            except (OSError, ValueError, TypeError) as e:
                ec.log(PROG, "cannot load service account %s: %s" % (p, e))

    def get(self, email):
        self.reload()
        with self.lock:
            return self.by_email.get(email)


class Tokens:
    def __init__(self, lifetime, issued_files=()):
        self.lifetime = lifetime
        self.lock = threading.Lock()
        self.tokens = {}  # sha256(token) -> (email, expiry, scopes)
        # Tokens handed out by gce_metadata (its --issued-file), accepted as
        # if issued here (issued_creds.py).
        self.issued = issued_creds.IssuedReader(issued_files)

    @staticmethod
    def _key(tok):
        return hashlib.sha256(tok.encode()).hexdigest()

    def issue(self, email, scopes):
        tok = "ya29.emu-" + secrets.token_urlsafe(40)
        ec.register_secret("GCS access token issued to %s" % email, tok)
        with self.lock:
            self.tokens[self._key(tok)] = (email, time.time() + self.lifetime + 1,
                                           frozenset(scopes))
        return tok

    def check(self, tok):
        with self.lock:
            ent = self.tokens.get(self._key(tok))
        if ent is None:
            ent = self.issued.gcp(tok)
        if ent is None or ent[1] <= time.time():
            return None
        return ent

    def expire_all(self):
        with self.lock:
            n = len(self.tokens)
            self.tokens.clear()
        return n


class EmuState:
    def __init__(self, args):
        self.store = Store(args.data_dir, args.crc32c_max_bytes)
        for b in args.bucket:
            self.store.create_bucket(b)
        self.accounts = Accounts(args.service_account)
        self.tokens = Tokens(args.token_lifetime, args.issued_tokens)
        self.faults = ec.FaultQueue(FAULT_KINDS)
        self.lock = threading.Lock()
        # hostile mode (admin /_emulator/session-location): the scheme://host:port
        # resumable sessions are announced on instead of the request's own
        self.session_base = None
        self.reset_counters()

    def reset_counters(self):
        self.counters = {"requests": 0, "tokens_issued": 0, "token_errors": 0,
                         "unauthorized": 0, "uploads_completed": 0,
                         "resumable_chunks": 0, "reads": 0, "deletes": 0,
                         "lists": 0, "faults_injected": 0, "errors_by_status": {}}

    def bump(self, name, status=None):
        with self.lock:
            if status is not None:
                d = self.counters["errors_by_status"]
                d[str(status)] = d.get(str(status), 0) + 1
            else:
                self.counters[name] += 1

    def snapshot(self):
        with self.lock:
            c = json.loads(json.dumps(self.counters))
        c["pending_faults"] = self.faults.list()
        return c


# ---------------------------------------------------------------------------
# HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "sfexport-gcs-emulator/1"
    state = None
    _drop_reply = False

    def log_request(self, code="-", size="-"):
        ec.log(PROG, "%s %s %s %s" % (self.client_address[0], self.command,
                                      ec.redact_target(self.path), code))

    def log_message(self, fmt, *args):
        if fmt.startswith('"%s" %s %s'):
            return
        ec.log(PROG, fmt % args)

    def log_error(self, fmt, *args):
        ec.log(PROG, "error: " + (fmt % args))

    def do_GET(self):
        self._handle()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET

    # -- response helpers
    def _drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        ec.log(PROG, "%s %s dropped (fault)" % (self.command, ec.redact_target(self.path)))

    def _send(self, status, body=b"", ctype="application/json; charset=UTF-8",
              headers=(), reason=None, stream=None, length=None):
        if self._drop_reply:
            if stream is not None:
                stream.close()
            return self._drop()
        self.send_response_only(status, reason)
        self.send_header("Date", self.date_time_string())
        self.send_header("Server", "UploadServer")
        self.send_header("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
        if ctype and (body or stream is not None):
            self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        n = length if stream is not None else len(body)
        if status != 304:
            self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.command != "HEAD" and status != 304:
            if stream is not None:
                with stream:
                    ec.copy_stream(stream, self.wfile.write, n)
            elif body:
                self.wfile.write(body)
        elif stream is not None:
            stream.close()
        self.log_request(status)

    def _json(self, status, obj, headers=()):
        self._send(status, ec.json_bytes(obj), headers=headers)

    def _gcs_error(self, e):
        self.state.bump(None, e.status)
        if e.status == 401:
            self.state.bump("unauthorized")
        self._send(e.status, ec.json_bytes(e.body()) if e.status != 304 else b"",
                   headers=e.extra_headers)

    def host(self):
        return self.headers.get("Host") or "127.0.0.1:%d" % self.server.server_address[1]

    def object_resource(self, meta):
        m = dict(meta)
        enc = quote(m["name"], safe="")
        base = "http://%s" % self.host()
        m["id"] = "%s/%s/%s" % (m["bucket"], m["name"], m["generation"])
        m["selfLink"] = "%s/storage/v1/b/%s/o/%s" % (base, m["bucket"], enc)
        m["mediaLink"] = "%s/download/storage/v1/b/%s/o/%s?generation=%s&alt=media" % (
            base, m["bucket"], enc, m["generation"])
        return m

    # -- main dispatch
    def _handle(self):
        parts = urlsplit(self.path)
        if parts.path.startswith("/_emulator/") or parts.path == "/_emulator":
            return self._admin(parts)
        st = self.state
        st.bump("requests")
        fault = st.faults.take(self.command, self.path)
        if fault:
            st.bump("faults_injected")
            if fault["kind"] == "delay":
                time.sleep(fault.get("delay_ms", 1000) / 1000.0)
                fault = None
            elif fault["kind"] == "drop":
                return self._drop()
        try:
            spool, length, hashes, _ = ec.read_body(self, ("md5",))
        except ec.BodyError as e:
            self.close_connection = True
            return self._gcs_error(GcsError(400, "Bad request body: %s" % e, "invalid"))
        with spool:
            if fault and fault["kind"] == "drop_after":
                self._drop_reply = True
                fault = None
            if fault:
                return self._answer_fault(fault)
            try:
                self._route(parts, spool, length)
            except GcsError as e:
                self._gcs_error(e)
            except OAuthError as e:
                st.bump("token_errors")
                st.bump(None, e.status)
                ec.log(PROG, "token request rejected: %s: %s" % (e.error, e.description))
                self._json(e.status, {"error": e.error,
                                      "error_description": e.description})

    def _answer_fault(self, f):
        k = f["kind"]
        if k == "503":
            e = GcsError(503, f.get("message", "Backend Error"), "backendError")
        elif k == "429":
            e = GcsError(429, f.get("message", "The rate of change requests to the "
                                    "object exceeds the rate limit. Please reduce "
                                    "the rate of create, update, and delete "
                                    "requests."), "rateLimitExceeded")
        elif k == "500":
            e = GcsError(500, f.get("message", "Internal Error"), "internalError")
        else:
            e = GcsError(int(f.get("status", 503)), f.get("message", "Injected error"),
                         f.get("reason", "backendError"))
        self._gcs_error(e)

    def _route(self, parts, spool, length):
        path = parts.path
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        m = self.command
        if path in ("/token", "/oauth2/v4/token") and m == "POST":
            return self._token(spool)
        segs = path.split("/")
        # /upload/storage/v1/b/<bucket>/o
        if len(segs) == 7 and segs[1:4] == ["upload", "storage", "v1"] and \
                segs[4] == "b" and segs[6] == "o":
            bucket = unquote(segs[5])
            if "upload_id" in params:
                if m in ("PUT", "POST"):
                    return self._resumable_chunk(bucket, params, spool, length)
                if m == "DELETE":
                    return self._resumable_cancel(params)
            elif m == "POST":
                return self._upload(bucket, params, spool, length)
            raise GcsError(405, "Method not allowed", "methodNotAllowed")
        # /storage/v1/b[/<bucket>[/o[/<object>]]] and /download/storage/v1/b/<b>/o/<o>
        if path.startswith("/download/storage/v1/b/"):
            rest = path[len("/download/storage/v1/b/"):].split("/")
            if len(rest) == 3 and rest[1] == "o" and m in ("GET", "HEAD"):
                params["alt"] = "media"
                return self._get_object(unquote(rest[0]), unquote(rest[2]), params)
            raise GcsError(404, "Not Found", "notFound")
        if path in ("/storage/v1/b", "/storage/v1/b/"):
            return self._buckets(m, params, spool)
        if path.startswith("/storage/v1/b/"):
            rest = path[len("/storage/v1/b/"):].split("/")
            bucket = unquote(rest[0])
            if len(rest) == 1 and m == "GET":
                self._auth(read=True, perm="storage.buckets.get")
                self.state.store.require_bucket(bucket)
                return self._json(200, self.state.store.bucket_resource(bucket))
            if len(rest) == 2 and rest[1] == "o":
                if m == "GET":
                    return self._list(bucket, params)
                if m == "POST":
                    # JSON API simple "insert" without /upload is metadata-only.
                    raise GcsError(400, "Upload requests must use the /upload URL.",
                                   "wrongUrlForUpload")
            # Object names are one path segment, percent-encoded ('/' as %2F).
            # A raw '/' inside the name is a different (unknown) route, as at
            # Google.
            if len(rest) == 3 and rest[1] == "o" and rest[2]:
                name = unquote(rest[2])
                if m in ("GET", "HEAD"):
                    return self._get_object(bucket, name, params)
                if m == "DELETE":
                    return self._delete(bucket, name, params)
        raise GcsError(404, "Not Found", "notFound")

    # -- auth
    def _auth(self, read, perm):
        """Bearer token check; 401 with Google's error JSON when missing/bad."""
        h = self.headers.get("Authorization")
        if not h:
            kind = perm.split(".")[1]
            raise GcsError(
                401, "Anonymous caller does not have %s access to the Google Cloud "
                "Storage %s. Permission '%s' denied on resource (or it may not exist)."
                % (perm, "bucket" if kind == "buckets" else "object", perm),
                "required", locationType="header", location="Authorization")
        scheme, _, tok = h.partition(" ")
        ent = self.state.tokens.check(tok.strip()) if scheme.lower() == "bearer" else None
        if ent is None:
            raise GcsError(401, "Invalid Credentials", "authError",
                           extra_headers=[("WWW-Authenticate",
                                           'Bearer realm="https://accounts.google.com/", '
                                           'error="invalid_token"')],
                           locationType="header", location="Authorization")
        scopes = ent[2]
        ok = scopes & SCOPE_RW or (read and scopes & SCOPE_RO)
        if not ok:
            raise GcsError(403, "Provided scope(s) are not authorized", "forbidden",
                           extra_headers=[("WWW-Authenticate",
                                           'Bearer realm="https://accounts.google.com/", '
                                           'error="insufficient_scope"')])
        return ent

    # -- OAuth token endpoint
    def _token(self, spool):
        """Service-account JWT bearer grant, as documented at
        https://developers.google.com/identity/protocols/oauth2/service-account
        ("Making the access token request"): form-encoded grant_type and
        assertion; JWT header {"alg":"RS256","typ":"JWT"[,"kid"]}; claims iss
        (client_email), scope (space-delimited), aud (the token URI), iat, exp
        (at most one hour after iat)."""
        st = self.state
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request",
                             "Content-Type must be application/x-www-form-urlencoded")
        form = dict(parse_qsl(spool.read().decode("utf-8", "replace"),
                              keep_blank_values=True))
        gt = form.get("grant_type")
        if gt is None:
            raise OAuthError("invalid_request", "Missing required parameter: grant_type")
        if gt != JWT_BEARER:
            raise OAuthError("unsupported_grant_type", "Invalid grant_type: %s" % gt)
        assertion = form.get("assertion")
        if not assertion:
            raise OAuthError("invalid_request", "Missing required parameter: assertion")
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        acct = st.accounts.get(claims.get("iss"))
        if acct is None:
            raise OAuthError("invalid_grant", "Invalid grant: account not found")
        kid = header.get("kid")
        if kid is not None and acct["key_id"] and kid != acct["key_id"]:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        try:
            claims = jwt.decode(assertion, acct["public_key"], algorithms=["RS256"],
                                options={"verify_aud": False, "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
        except jwt.PyJWTError:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") != acct["token_uri"]:
            raise OAuthError("invalid_grant", "Invalid JWT: Failed audience check. "
                             "The right audience is %s" % acct["token_uri"])
        iat, exp = claims.get("iat"), claims.get("exp")
        now = time.time()
        timing_ok = (isinstance(iat, int) and isinstance(exp, int)
                     and not isinstance(iat, bool) and not isinstance(exp, bool)
                     and iat < exp and exp - iat <= 3600
                     and exp > now and iat <= now + 300)
        if not timing_ok:
            raise OAuthError("invalid_grant", "Invalid JWT: Token must be a short-lived "
                             "token (60 minutes) and in a reasonable timeframe. Check "
                             "your iat and exp values in the JWT claim.")
        if claims.get("sub") not in (None, acct["email"]):
            raise OAuthError("unauthorized_client", "Client is unauthorized to retrieve "
                             "access tokens using this method, or client not "
                             "authorized for any of the scopes requested.", status=401)
        scope = claims.get("scope")
        scopes = scope.split() if isinstance(scope, str) else []
        if not scopes:
            raise OAuthError("invalid_scope",
                             "Invalid OAuth scope or ID token audience provided.")
        tok = st.tokens.issue(acct["email"], scopes)
        st.bump("tokens_issued")
        ec.log(PROG, "issued access token to %s" % acct["email"])
        self._send(200, ec.json_bytes({"access_token": tok,
                                       "expires_in": st.tokens.lifetime,
                                       "token_type": "Bearer"}),
                   headers=[("Pragma", "no-cache")])

    # -- buckets
    def _buckets(self, m, params, spool):
        st = self.state
        if m == "POST":
            self._auth(read=False, perm="storage.buckets.create")
            try:
                body = json.loads(spool.read() or b"{}")
            except ValueError:
                raise GcsError(400, "Parse Error", "parseError")
            name = body.get("name")
            if not name:
                raise GcsError(400, "Required", "required")
            if not st.store.create_bucket(name):
                raise GcsError(409, "Your previous request to create the named bucket "
                               "succeeded and you already own it.", "conflict")
            return self._json(200, st.store.bucket_resource(name))
        if m == "GET":
            self._auth(read=True, perm="storage.buckets.list")
            names = sorted(os.listdir(os.path.join(st.store.root, "buckets")))
            items = [st.store.bucket_resource(n) for n in names if st.store.bucket_exists(n)]
            out = {"kind": "storage#buckets"}
            if items:
                out["items"] = items
            return self._json(200, out)
        raise GcsError(405, "Method not allowed", "methodNotAllowed")

    # -- uploads
    @staticmethod
    def _expect_hashes(goog_hash):
        out = {}
        for part in (goog_hash or "").split(","):
            k, sep, v = part.strip().partition("=")
            if sep and k in ("md5", "crc32c"):
                out[k] = v
        return out

    def _hash_file(self, path, size):
        crc = None
        if size <= self.state.store.crc_max:
            c = Crc32c()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    c.update(chunk)
            crc = c.b64()
        return crc

    def _spool_to_file(self, spool, path, skip=0, limit=None):
        md5 = hashlib.md5()
        n = 0
        with open(path, "wb") as out:
            if skip:
                spool.seek(skip)
            while True:
                data = spool.read(ec.COPY_CHUNK)
                if not data:
                    break
                if limit is not None:
                    data = data[:max(0, limit - n)]
                    if not data:
                        break
                out.write(data)
                md5.update(data)
                n += len(data)
        return n, md5.hexdigest()

    def _finish_object(self, bucket, name, tmp, size, md5_hex, ctype, params,
                       metadata=None, expect=None):
        st = self.state
        try:
            crc = self._hash_file(tmp, size)
            meta = st.store.commit(bucket, name, tmp, size, md5_hex, crc, ctype, params,
                                   metadata, expect)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        st.bump("uploads_completed")
        return meta

    def _upload(self, bucket, params, spool, length):
        st = self.state
        self._auth(read=False, perm="storage.objects.create")
        st.store.require_bucket(bucket)
        ut = params.get("uploadType")
        if ut == "media":
            name = params.get("name")
            if not name:
                raise GcsError(400, "Required", "required",
                               locationType="parameter", location="name")
            tmp = st.store.tmp_path()
            n, md5_hex = self._spool_to_file(spool, tmp)
            meta = self._finish_object(bucket, name, tmp, n, md5_hex,
                                       self.headers.get("Content-Type"), params,
                                       expect=self._expect_hashes(
                                           self.headers.get("X-Goog-Hash")))
            return self._json(200, self.object_resource(meta))
        if ut == "multipart":
            return self._upload_multipart(bucket, params, spool)
        if ut == "resumable":
            return self._resumable_start(bucket, params, spool)
        raise GcsError(400, "Invalid upload type: %s" % ut, "invalid",
                       locationType="parameter", location="uploadType")

    def _upload_multipart(self, bucket, params, spool):
        """multipart/related: part 1 JSON metadata, part 2 the media."""
        st = self.state
        ctype = self.headers.get("Content-Type") or ""
        mm = re.search(r'boundary="?([^";]+)"?', ctype)
        if not ctype.lower().startswith("multipart/related") or not mm:
            raise GcsError(400, "Invalid multipart request: Content-Type must be "
                           "multipart/related with a boundary", "invalid")
        raw = spool.read()
        delim = b"--" + mm.group(1).encode()
        pieces = raw.split(delim)
        parts = []
        for p in pieces[1:]:
            if p.startswith(b"--"):
                break
            if p.startswith(b"\r\n"):
                p = p[2:]
            hdr, sep, content = p.partition(b"\r\n\r\n")
            if not sep:
                continue
            if content.endswith(b"\r\n"):
                content = content[:-2]
            hdrs = {}
            for line in hdr.split(b"\r\n"):
                k, _, v = line.decode("latin-1").partition(":")
                hdrs[k.strip().lower()] = v.strip()
            parts.append((hdrs, content))
        if len(parts) != 2:
            raise GcsError(400, "Invalid multipart request with %d parts" % len(parts),
                           "invalid")
        try:
            md = json.loads(parts[0][1] or b"{}")
        except ValueError:
            raise GcsError(400, "Parse Error", "parseError")
        name = md.get("name") or params.get("name")
        if not name:
            raise GcsError(400, "Required", "required")
        data = parts[1][1]
        tmp = st.store.tmp_path()
        with open(tmp, "wb") as f:
            f.write(data)
        expect = {k: md[k].strip() for k in ("md5Hash", "crc32c") if md.get(k)}
        expect = {("md5" if k == "md5Hash" else k): v for k, v in expect.items()}
        meta = self._finish_object(bucket, name, tmp, len(data),
                                   hashlib.md5(data).hexdigest(),
                                   md.get("contentType") or parts[1][0].get("content-type"),
                                   params, md.get("metadata"), expect)
        return self._json(200, self.object_resource(meta))

    def _resumable_start(self, bucket, params, spool):
        st = self.state
        body = spool.read()
        md = {}
        if body:
            try:
                md = json.loads(body)
            except ValueError:
                raise GcsError(400, "Parse Error", "parseError")
        name = params.get("name") or md.get("name")
        if not name:
            raise GcsError(400, "Required", "required",
                           locationType="parameter", location="name")
        hint = self.headers.get("X-Upload-Content-Length")
        uid = "EMU" + secrets.token_urlsafe(48).replace("-", "_")
        sess = {"bucket": bucket, "name": name, "persisted": 0, "done": None,
                "contentType": self.headers.get("X-Upload-Content-Type")
                or md.get("contentType"),
                "metadata": md.get("metadata"),
                "total_hint": int(hint) if hint and hint.isdigit() else None,
                "preconditions": {k: params[k] for k in
                                  ("ifGenerationMatch", "ifGenerationNotMatch")
                                  if k in params},
                "created": time.time()}
        _, pp = st.store.session_paths(uid)
        open(pp, "wb").close()
        st.store.save_session(uid, sess)
        q = "uploadType=resumable&name=%s&upload_id=%s" % (quote(name, safe=""), uid)
        # GCS answers with the session URI on the host the upload was
        # started on (performing-resumable-uploads: "Location:
        # https://storage.googleapis.com/upload/storage/v1/b/...&upload_id=...");
        # a test may make it announce another origin (session_base).
        base = st.session_base or "http://%s" % self.host()
        loc = "%s/upload/storage/v1/b/%s/o?%s" % (base, quote(bucket), q)
        self._send(200, b"", headers=[("Location", loc), ("X-GUploader-UploadID", uid)])

    def _resumable_cancel(self, params):
        st = self.state
        uid = params["upload_id"]
        jp, pp = st.store.session_paths(uid)
        if jp is None or st.store.load_session(uid) is None:
            raise GcsError(404, "No such upload session", "notFound")
        for p in (jp, pp):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        # Documented: a cancelled session answers 499 Client Closed Request.
        self._send(499, b"", reason="Client Closed Request")

    def _send_308(self, sess, uid):
        hdrs = [("X-GUploader-UploadID", uid)]
        if sess["persisted"] > 0:
            hdrs.append(("Range", "bytes=0-%d" % (sess["persisted"] - 1)))
        self._send(308, b"", headers=hdrs, reason="Resume Incomplete")

    def _resumable_chunk(self, bucket, params, spool, length):
        """PUT to the session URI (see performing-resumable-uploads):
        Content-Range "bytes A-B/*" or "bytes A-B/TOTAL" carries a chunk;
        "bytes */*" or "bytes */TOTAL" with no body queries the status (and
        finalizes when TOTAL equals what was received).  Non-final chunks must
        be multiples of 256 KiB.  308 Resume Incomplete with Range:
        bytes=0-LAST until the final chunk, then 200 with the object."""
        st = self.state
        uid = params["upload_id"]
        with st.store.lock:
            sess = st.store.load_session(uid)
            if sess is None or sess["bucket"] != bucket:
                raise GcsError(404, "No such upload session (it may have expired or "
                               "been cancelled)", "notFound")
            if sess["done"]:
                meta = st.store.get_meta(bucket, sess["name"])
                if meta and meta["generation"] == sess["done"]:
                    return self._json(200, self.object_resource(meta))
                raise GcsError(410, "The upload session has completed and its object "
                               "is gone", "gone")
            cr = self.headers.get("Content-Range")
            if cr is None:
                cr = "bytes 0-%d/%d" % (length - 1, length) if length else "bytes */0"
            mm = re.match(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)$", cr.strip())
            if not mm:
                raise GcsError(400, "Failed to parse Content-Range header.", "invalid")
            a, b, total = mm.group(1), mm.group(2), mm.group(3)
            total = None if total == "*" else int(total)
            persisted = sess["persisted"]
            if sess["total_hint"] is not None and total is not None \
                    and total != sess["total_hint"]:
                raise GcsError(400, "The total size %d does not match the "
                               "X-Upload-Content-Length %d given when the upload "
                               "started." % (total, sess["total_hint"]), "invalid")
            if a is None:
                if length:
                    raise GcsError(400, "A status query (Content-Range: bytes */...) "
                                   "must have an empty body.", "invalid")
                if total is not None and total == persisted:
                    return self._finalize(uid, sess)
                if total is not None and total < persisted:
                    raise GcsError(400, "Total size %d is less than the %d bytes "
                                   "already received." % (total, persisted), "invalid")
                return self._send_308(sess, uid)
            a, b = int(a), int(b)
            if b < a or b - a + 1 != length:
                raise GcsError(400, "Content-Range %s does not match the %d bytes in "
                               "the request body." % (cr, length), "invalid")
            if total is not None and b >= total:
                raise GcsError(400, "Content-Range end %d is beyond the total size %d."
                               % (b, total), "invalid")
            final = total is not None and b + 1 == total
            if not final and length % CHUNK_UNIT != 0:
                # Message as returned by GCS (see e.g. googleapis/gcs-resumable-
                # upload#17).
                raise GcsError(400, "Invalid request.  The number of bytes uploaded is "
                               "required to be equal or greater than 262144, except "
                               "for the final request (it's recommended to be the "
                               "exact multiple of 262144).  The received request "
                               "contained %d bytes, which does not meet this "
                               "requirement." % length, "invalid")
            if a > persisted:
                # Deviation: a gap is refused outright; the client must query
                # the status and resume at the persisted offset.
                raise GcsError(400, "Content-Range starts at byte %d but only %d bytes "
                               "have been received; query the upload status with "
                               "Content-Range: bytes */* and resume from there."
                               % (a, persisted), "invalid")
            _, pp = st.store.session_paths(uid)
            if b + 1 > persisted:
                skip = persisted - a
                spool.seek(skip)
                with open(pp, "ab") as f:
                    f.truncate(persisted)
                    ec.copy_stream(spool, f.write)
                sess["persisted"] = b + 1
                st.store.save_session(uid, sess)
            st.bump("resumable_chunks")
            if final:
                return self._finalize(uid, sess)
            return self._send_308(sess, uid)

    def _finalize(self, uid, sess):
        st = self.state
        jp, pp = st.store.session_paths(uid)
        if sess["total_hint"] is not None and sess["persisted"] != sess["total_hint"]:
            raise GcsError(400, "Upload size %d does not match X-Upload-Content-Length "
                           "%d." % (sess["persisted"], sess["total_hint"]), "invalid")
        md5 = hashlib.md5()
        with open(pp, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                md5.update(chunk)
        tmp = st.store.tmp_path()
        os.link(pp, tmp)
        meta = self._finish_object(sess["bucket"], sess["name"], tmp, sess["persisted"],
                                   md5.hexdigest(), sess["contentType"],
                                   sess["preconditions"], sess.get("metadata"),
                                   self._expect_hashes(self.headers.get("X-Goog-Hash")))
        sess["done"] = meta["generation"]
        st.store.save_session(uid, sess)
        try:
            os.unlink(pp)
        except FileNotFoundError:
            pass
        self._json(200, self.object_resource(meta))

    # -- reads, deletes, lists
    def _get_object(self, bucket, name, params):
        st = self.state
        self._auth(read=True, perm="storage.objects.get")
        st.store.require_bucket(bucket)
        if params.get("alt") != "media":
            meta = st.store.get_meta(bucket, name)
            if meta is None:
                raise not_found_object(bucket, name)
            if params.get("generation") not in (None, meta["generation"]):
                raise not_found_object(bucket, name)
            st.store.check_preconditions(params, meta)
            st.bump("reads")
            return self._json(200, self.object_resource(meta))
        meta, f = st.store.open_data(bucket, name)
        try:
            if params.get("generation") not in (None, meta["generation"]):
                raise not_found_object(bucket, name)
            st.store.check_preconditions(params, meta)
        except GcsError:
            f.close()
            raise
        size = int(meta["size"])
        hdrs = [("X-Goog-Generation", meta["generation"]),
                ("X-Goog-Metageneration", meta["metageneration"]),
                ("X-Goog-Stored-Content-Length", meta["size"]),
                ("X-Goog-Storage-Class", "STANDARD"),
                ("ETag", meta["etag"]),
                ("Last-Modified", self.date_time_string(
                    datetime.datetime.strptime(meta["updated"][:19], "%Y-%m-%dT%H:%M:%S")
                    .replace(tzinfo=datetime.timezone.utc).timestamp())),
                ("Accept-Ranges", "bytes")]
        gh = "md5=%s" % meta["md5Hash"]
        if "crc32c" in meta:
            gh = "crc32c=%s,%s" % (meta["crc32c"], gh)
        hdrs.append(("X-Goog-Hash", gh))
        st.bump("reads")
        rng = self.headers.get("Range")
        status, start, end = 200, 0, size - 1
        if rng:
            mm = re.match(r"^bytes=(\d*)-(\d*)$", rng.strip())
            if mm and (mm.group(1) or mm.group(2)):
                if mm.group(1):
                    start = int(mm.group(1))
                    end = min(int(mm.group(2)), size - 1) if mm.group(2) else size - 1
                else:
                    start = max(0, size - int(mm.group(2)))
                if start >= size or start > end:
                    f.close()
                    raise GcsError(416, "Request range not satisfiable",
                                   "requestedRangeNotSatisfiable",
                                   extra_headers=[("Content-Range", "bytes */%d" % size)])
                status = 206
                hdrs.append(("Content-Range", "bytes %d-%d/%d" % (start, end, size)))
        f.seek(start)
        self._send(status, ctype=meta["contentType"], headers=hdrs, stream=f,
                   length=max(0, end - start + 1))

    def _delete(self, bucket, name, params):
        st = self.state
        self._auth(read=False, perm="storage.objects.delete")
        st.store.require_bucket(bucket)
        st.store.delete(bucket, name, params)
        st.bump("deletes")
        self._send(204, b"")

    def _list(self, bucket, params):
        """objects.list: prefix, delimiter, maxResults (<= 1000), pageToken,
        startOffset, endOffset; "items" and "prefixes" omitted when empty."""
        st = self.state
        self._auth(read=True, perm="storage.objects.list")
        st.store.require_bucket(bucket)
        prefix = params.get("prefix", "")
        delim = params.get("delimiter", "")
        try:
            max_results = int(params.get("maxResults", "1000"))
        except ValueError:
            raise GcsError(400, "Invalid value for maxResults", "invalid")
        max_results = max(1, min(max_results, 1000))
        after, after_is_prefix = None, False
        if params.get("pageToken"):
            try:
                tok = json.loads(base64.urlsafe_b64decode(params["pageToken"].encode()))
                after, after_is_prefix = tok["a"], tok["p"]
            except (ValueError, KeyError, TypeError):
                raise GcsError(400, "Invalid pageToken", "invalid")
        start_off, end_off = params.get("startOffset"), params.get("endOffset")
        entries = []  # (sort key, is_prefix, value)
        seen_prefixes = set()
        for meta in st.store.list_names(bucket):
            n = meta["name"]
            if not n.startswith(prefix):
                continue
            if start_off and n < start_off or end_off and n >= end_off:
                continue
            if delim:
                i = n.find(delim, len(prefix))
                if i >= 0:
                    p = n[:i + len(delim)]
                    if p not in seen_prefixes:
                        seen_prefixes.add(p)
                        entries.append((p, True, p))
                    continue
            entries.append((n, False, meta))
        entries.sort(key=lambda e: e[0])
        if after is not None:
            entries = [e for e in entries if e[0] > after
                       and not (after_is_prefix and e[0].startswith(after))]
        page, rest = entries[:max_results], entries[max_results:]
        out = {"kind": "storage#objects"}
        if rest:
            last = page[-1]
            out["nextPageToken"] = base64.urlsafe_b64encode(json.dumps(
                {"a": last[0], "p": last[1]}).encode()).decode()
        prefixes = [e[2] for e in page if e[1]]
        items = [self.object_resource(e[2]) for e in page if not e[1]]
        if prefixes:
            out["prefixes"] = prefixes
        if items:
            out["items"] = items
        st.bump("lists")
        self._json(200, out)

    # -- admin API
    def _admin(self, parts):
        st = self.state
        try:
            spool, _, _, _ = ec.read_body(self)
            body = spool.read()
        except ec.BodyError:
            self.close_connection = True
            return self._json(400, {"error": "bad body"})
        path = parts.path.rstrip("/")
        m = self.command
        try:
            if path == "/_emulator/health" and m == "GET":
                out = {"ok": True}
            elif path == "/_emulator/stats" and m == "GET":
                out = st.snapshot()
            elif path == "/_emulator/faults" and m == "GET":
                out = {"faults": st.faults.list()}
            elif path == "/_emulator/faults" and m == "POST":
                spec = json.loads(body or b"{}")
                specs = spec if isinstance(spec, list) else [spec]
                out = {"added": [st.faults.add(s) for s in specs]}
            elif path == "/_emulator/faults" and m == "DELETE":
                st.faults.clear()
                out = {"faults": []}
            elif path == "/_emulator/reset" and m == "POST":
                st.faults.clear()
                with st.lock:
                    st.reset_counters()
                out = {"ok": True}
            elif path == "/_emulator/buckets" and m == "POST":
                name = json.loads(body or b"{}").get("name", "")
                out = {"name": name, "created": st.store.create_bucket(name)}
            elif path == "/_emulator/service-accounts" and m == "POST":
                out = {"client_email": st.accounts.add_info(json.loads(body))}
            elif path == "/_emulator/session-location" and m == "POST":
                base = json.loads(body or b"{}").get("base")
                if base is not None and not re.match(r"^[a-z]+://[^/?#]+$", base):
                    raise ValueError("base must be scheme://host[:port] or null")
                st.session_base = base
                out = {"base": base}
            elif path == "/_emulator/expire-tokens" and m == "POST":
                out = {"expired": st.tokens.expire_all()}
            else:
                return self._json(404, {"error": "no admin route %s %s" % (m, path)})
        except GcsError as e:
            return self._json(400, {"error": e.message})
        except (ValueError, TypeError, AttributeError, re.error) as e:
            return self._json(400, {"error": str(e)})
        self._json(200, out)


def main(argv=None):
    p = argparse.ArgumentParser(description="GCS JSON API + OAuth stand-in")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--port-file", help="write the listening port here (atomic)")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--service-account", action="append", default=[],
                   metavar="KEY.json", help="service-account key file (re-read "
                   "when it changes; may be created after start-up)")
    p.add_argument("--bucket", action="append", default=[])
    p.add_argument("--token-lifetime", type=int, default=3599,
                   help="expires_in of issued access tokens (seconds)")
    p.add_argument("--issued-tokens", action="append", default=[], metavar="FILE",
                   help="--issued-file of gce_metadata: access tokens accepted "
                   "as well (issued_creds.py)")
    p.add_argument("--crc32c-max-bytes", type=int, default=16 * 1024 * 1024,
                   help="objects larger than this get no crc32c (pure-Python CRC)")
    args = p.parse_args(argv)
    Handler.state = EmuState(args)
    srv = ec.LoopbackHTTPServer(args.host, args.port, Handler)
    port = srv.server_address[1]
    if args.port_file:
        ec.write_port_file(args.port_file, port)
    ec.log(PROG, "listening on %s:%d data-dir %s buckets [%s]"
           % (srv.server_address[0], port, args.data_dir, ",".join(args.bucket)))
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
