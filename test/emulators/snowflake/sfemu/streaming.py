"""Snowpipe Streaming REST API (high-performance architecture).

Built from docs/streaming.md, which cites Snowflake's pages for every shape
used here ("Snowpipe Streaming REST API endpoints",
https://docs.snowflake.com/en/user-guide/snowpipe-streaming/snowpipe-streaming-high-performance-rest-api,
"Named Channels and exactly-once delivery",
https://docs.snowflake.com/en/user-guide/snowpipe-streaming/snowpipe-streaming-channels,
"Error handling in Snowpipe Streaming high-performance architecture",
https://docs.snowflake.com/en/user-guide/snowpipe-streaming/snowpipe-streaming-high-performance-error-handling)
and lists, in its section 8, the emulator's choices where the documents are
silent.

  GET    /v2/streaming/hostname                                      host discovery
  POST   /oauth/token   (grant_type=...jwt-bearer, scope=<host>)      scoped token
  PUT    /v2/streaming/databases/D/schemas/S/pipes/P/channels/C       open channel
  POST   /v2/streaming/data/databases/D/schemas/S/pipes/P/channels/C/rows   append rows
  POST   /v2/streaming/databases/D/schemas/S/pipes/P:bulk-channel-status    channel status
  DELETE /v2/streaming/databases/D/schemas/S/pipes/P/channels/C       drop channel

State lives in snowflake.db next to the tables (streaming_channels,
streaming_inflight), and every change goes through the engine's lock and the
catalog's connection: a commit inserts the batch's rows, advances the
channel's committed offset token and deletes the in-flight batch in one
SQLite transaction, so the committed offset token and the committed rows
never disagree, even across an emulator restart.

Sequencers: a channel has a client sequencer (bumped by every open, which
discards the in-flight batches and makes older continuation tokens stale)
and a row sequencer (bumped by every accepted append). A continuation token
carries both, signed with the emulator's key.
"""

import base64
import contextlib
import datetime
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
import traceback
import urllib.parse
import uuid

import jwt

from . import storage
from .auth import AuthError, register_secret
from .engine import Session, convert_any, eval_copy, fqn_text
from .errors import ConvError, SfError
from .sftypes import ConvContext, Variant, parse_json_text
from .snowpipe import split_pipe_name
from .sqltok import Parser, tokenize
from .statements import _copy

# Fault actions of /_emulator/faults only streaming requests use (sfemu/server.py
# adds them to the queue's list). 408 and 5xx/429 are what the SDK retries
# ("Error handling ...", "SDK retry logic for transient errors"); 410 is the
# "pipe failover" Snowflake's Kafka connector tests inject (docs/streaming.md).
FAULT_ACTIONS = {"408", "410", "invalidate", "supersede"}

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SUCCESS = "SUCCESS"
SCOPED_ISSUER = "sfemu-streaming"
# the reference's example error ("Error response structure"); status 400 as observed
STALE_MESSAGE = ("Channel sequencer in the continuation token is stale. Please reopen the "
                 "channel")
MAC_LEN = 12

DEFAULTS = {
    "commit_delay_ms": 1000,        # append -> committed (Snowflake: 5-10 s end to end)
    "pause_commits": False,         # hold every batch in flight
    "hostname": None,               # Get Hostname answer, and then the only Host the
                                    # channel endpoints accept; None: the request's Host
    "hostname_format": "json",      # "json" {"hostname": h} (reference) | "text" (tutorial)
    "token_format": "json",         # "json" {"token": t} (reference) | "text" (tutorial)
    "scoped_token_ttl_s": 3600,     # not documented
    "require_scoped_token": False,  # refuse JWT/OAuth/PAT on the ingest endpoints
    "requests_per_second": 10,      # appends per channel ("Request rate: 10 RPS"); 0: off
    "max_payload_bytes": 4 * 1024 * 1024,   # "4 MB per request ... after compression"
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS streaming_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS streaming_channels (
  pipe_id INTEGER NOT NULL, channel_key TEXT NOT NULL, channel_name TEXT NOT NULL,
  db TEXT NOT NULL, schema TEXT NOT NULL, pipe TEXT NOT NULL,
  client_seq INTEGER NOT NULL, row_seq INTEGER NOT NULL, status_code TEXT NOT NULL,
  committed_offset TEXT, created_on REAL NOT NULL,
  rows_inserted INTEGER NOT NULL DEFAULT 0, rows_parsed INTEGER NOT NULL DEFAULT 0,
  rows_errors INTEGER NOT NULL DEFAULT 0, last_error_offset TEXT, last_error_message TEXT,
  last_error_at REAL, latency_ms_total REAL NOT NULL DEFAULT 0,
  latency_batches INTEGER NOT NULL DEFAULT 0, opened_at REAL,
  PRIMARY KEY (pipe_id, channel_key));
CREATE TABLE IF NOT EXISTS streaming_inflight (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, pipe_id INTEGER NOT NULL, channel_key TEXT NOT NULL,
  client_seq INTEGER NOT NULL, row_seq INTEGER NOT NULL, start_offset TEXT, end_offset TEXT,
  payload BLOB NOT NULL, appended_at REAL NOT NULL, request_id TEXT);
"""

CHANNEL_COLS = ("pipe_id", "channel_key", "channel_name", "db", "schema", "pipe", "client_seq",
                "row_seq", "status_code", "committed_offset", "created_on", "rows_inserted",
                "rows_parsed", "rows_errors", "last_error_offset", "last_error_message",
                "last_error_at", "latency_ms_total", "latency_batches", "opened_at")
INFLIGHT_COLS = ("seq", "pipe_id", "channel_key", "client_seq", "row_seq", "start_offset",
                 "end_offset", "payload", "appended_at", "request_id")


class Reply(Exception):
    """An error reply: {"code": ..., "message": ...} ("Error response structure")."""

    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def _iso_ms(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _dashed(host):
    """The tutorial: if the account name has underscores, "replace all
    underscores with dashes in the INGEST_HOST before generating the scoped
    token", and use that form "for all subsequent REST API calls"."""
    return (host or "").strip().lower().replace("_", "-")


def _redact(message):
    """last_error_message comes "with sensitive customer data redacted"."""
    return re.sub(r"'[^']*'", "'***'", message)


class Streaming:
    def __init__(self, engine, catalog, auth, account=None, commit_delay_ms=None):
        self.engine = engine
        self.cat = catalog
        self.auth = auth
        self.account = account or "EMULATOR"
        self.defaults = dict(DEFAULTS)
        if commit_delay_ms is not None:
            self.defaults["commit_delay_ms"] = int(commit_delay_ms)
        self.settings = dict(self.defaults)
        self.lock = threading.Lock()     # settings, rate windows, row errors, pipe cache
        self.rate = {}                   # (pipe_id, channel_key) -> [append times]
        self.row_errors = []             # the last 200 row errors (admin)
        self.pipes = {}                  # (object_id, copy text) -> compiled pipe
        with engine.lock:
            self.cat.db.executescript(SCHEMA)
            self.key = self._secret()
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _secret(self):
        """The key continuation and scoped tokens are signed with; kept in
        snowflake.db so tokens survive a restart."""
        row = self.cat.db.execute("SELECT value FROM streaming_meta WHERE name='key'").fetchone()
        if row:
            return bytes.fromhex(row[0])
        key = os.urandom(32)
        self.cat.db.execute("INSERT INTO streaming_meta (name, value) VALUES ('key', ?)",
                            (key.hex(),))
        return key

    def reset(self):
        with self.engine.lock:
            self.cat.db.execute("DELETE FROM streaming_channels")
            self.cat.db.execute("DELETE FROM streaming_inflight")
        with self.lock:
            self.settings = dict(self.defaults)
            self.rate.clear()
            self.row_errors = []
            self.pipes.clear()

    def setting(self, name):
        with self.lock:
            return self.settings[name]

    @contextlib.contextmanager
    def _txn(self):
        with self.engine.lock:
            self.cat.begin()
            try:
                yield
                self.cat.commit()
            except BaseException:
                self.cat.rollback()
                raise

    # -- HTTP entry (sfemu/server.py routes /v2/streaming/ and /oauth/token here) --
    @staticmethod
    def owns(path):
        return path.startswith("/v2/streaming/") or path == "/oauth/token"

    def serve(self, h, method, path, query, raw):
        """Answer one request (h: the server's handler, for _send, _drop and
        the fault queue of /_emulator/faults)."""
        fault = h._fault(method, path, None)
        drop_after = False
        if fault:
            a = fault["action"]
            if a == "drop":
                return h._drop()
            if a == "delay":
                time.sleep(fault["delay_ms"] / 1000.0)
            elif a in ("429", "401", "408", "410", "500", "503", "504"):
                return h._canned(fault, {"code": fault.get("code") or "ERR_TOO_MANY_REQUESTS",
                                         "message": fault.get("message") or "Too many requests."})
            elif a == "drop_after":
                drop_after = True
            elif a in ("invalidate", "supersede"):
                self._fault_channel(path, a, fault.get("code"))
        try:
            status, body, ctype = self._route(h, method, path, query, raw)
            headers = {}
        except Reply as r:
            status, body, ctype, headers = (r.status, {"code": r.code, "message": r.message},
                                            "application/json", r.headers)
        if drop_after:
            return h._drop()
        return h._send(status, body, headers, content_type=ctype)

    def _route(self, h, method, path, query, raw):
        if path == "/v2/streaming/hostname":
            self._method(method, "GET")
            self._auth_control(h)
            host = self._hostname(h)
            if self.setting("hostname_format") == "text":
                return 200, host, "text/plain"
            return 200, {"hostname": host}, "application/json"
        if path == "/oauth/token":
            self._method(method, "POST")
            return self._exchange(h, raw)
        want = self.setting("hostname")
        if want and (h.headers.get("Host") or "").strip().lower() != _dashed(want):
            # a configured ingest host is the only one the channel endpoints answer on
            raise Reply(404, "ERR_MALFORMED_REQUEST", "Not the account's ingest host.")
        parts = [urllib.parse.unquote(x) for x in path.split("/")[1:]]
        user = self._auth_ingest(h)
        # v2/streaming/data/databases/D/schemas/S/pipes/P/channels/C/rows
        if len(parts) == 12 and parts[2] == "data" and \
                [parts[i] for i in (3, 5, 7, 9, 11)] == \
                ["databases", "schemas", "pipes", "channels", "rows"]:
            self._method(method, "POST")
            return self._append(h, user, parts[4], parts[6], parts[8], parts[10], query, raw)
        if len(parts) >= 8 and [parts[i] for i in (2, 4, 6)] == ["databases", "schemas", "pipes"]:
            db, sc = parts[3], parts[5]
            # v2/streaming/databases/D/schemas/S/pipes/P:bulk-channel-status
            if len(parts) == 8 and parts[7].endswith(":bulk-channel-status"):
                self._method(method, "POST")
                return self._bulk_status(h, user, db, sc,
                                         parts[7][:-len(":bulk-channel-status")], raw)
            # v2/streaming/databases/D/schemas/S/pipes/P/channels/C
            if len(parts) == 10 and parts[8] == "channels":
                if method == "PUT":
                    return self._open(h, user, db, sc, parts[7], parts[9], raw)
                if method == "DELETE":
                    return self._drop(h, user, db, sc, parts[7], parts[9], raw)
                self._method(method, "PUT")
        raise Reply(404, "ERR_MALFORMED_REQUEST", "Unknown Snowpipe Streaming endpoint.")

    @staticmethod
    def _method(method, want):
        if method != want:
            raise Reply(405, "ERR_MALFORMED_REQUEST", "Method %s not allowed." % method)

    def _hostname(self, h):
        return self.setting("hostname") or h.headers.get("Host") or "127.0.0.1"

    # -- authentication -----------------------------------------------------
    def _auth_control(self, h):
        """Host discovery and the token exchange take the credentials the SQL
        API takes (key-pair JWT, OAuth, PAT: sfemu/auth.py)."""
        try:
            return self.auth.authenticate(h.headers.get("Authorization"),
                                          h.headers.get("X-Snowflake-Authorization-Token-Type"))
        except AuthError as e:
            sys.stderr.write("[sfemu] 401: %s\n" % e.reason)
            raise Reply(401, e.code, e.message)

    def _auth_ingest(self, h):
        """The ingest endpoints: a scoped token this emulator issued, else
        (unless require_scoped_token) what _auth_control accepts."""
        m = re.match(r"(?i)bearer\s+(\S+)\s*$", h.headers.get("Authorization") or "")
        if m:
            claims = self._scoped_claims(m.group(1))
            if claims is not None:
                if claims.get("exp", 0) < time.time():
                    raise Reply(401, "390318", "OAuth access token expired. [%s]" % uuid.uuid4())
                return claims["user"]
        if self.setting("require_scoped_token"):
            raise Reply(401, "390303", "Invalid OAuth access token. [%s]" % uuid.uuid4())
        return self._auth_control(h)

    def _scoped_claims(self, token):
        try:
            claims = jwt.decode(token, self.key, algorithms=["HS256"],
                                options={"verify_exp": False, "verify_aud": False})
        except jwt.PyJWTError:
            return None
        return claims if claims.get("iss") == SCOPED_ISSUER else None

    def _exchange(self, h, raw):
        """Exchange Scoped Token: form grant_type=...jwt-bearer&scope=<ingest host>."""
        user = self._auth_control(h)
        ctype = (h.headers.get("Content-Type") or "").lower()
        if "application/x-www-form-urlencoded" not in ctype:
            raise Reply(400, "ERR_MALFORMED_REQUEST",
                        "Content-Type must be application/x-www-form-urlencoded.")
        try:
            form = urllib.parse.parse_qs(raw.decode("utf-8"), keep_blank_values=True,
                                         strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise Reply(400, "ERR_MALFORMED_REQUEST", "Invalid form body.")
        grant = (form.get("grant_type") or [""])[0]
        scope = (form.get("scope") or [""])[0]
        if grant != JWT_BEARER:
            raise Reply(400, "ERR_MALFORMED_REQUEST", "Unsupported grant_type.")
        if scope.strip().lower() != _dashed(self._hostname(h)):
            raise Reply(400, "ERR_MALFORMED_REQUEST", "Invalid scope: not this account's "
                        "ingest host (with dashes for underscores).")
        now = int(time.time())
        token = jwt.encode({"iss": SCOPED_ISSUER, "sub": "%s.%s" % (self.account, user),
                            "user": user, "scope": scope, "iat": now,
                            "exp": now + int(self.setting("scoped_token_ttl_s")),
                            "jti": str(uuid.uuid4())}, self.key, algorithm="HS256")
        # a credential the client holds: for the test suite's secret scan
        register_secret("Snowpipe Streaming scoped token issued", token)
        if self.setting("token_format") == "text":
            return 200, token, "text/plain"
        return 200, {"token": token}, "application/json"

    # -- names, pipes and privileges -------------------------------------------
    def _find(self, kind, db, sc, name):
        """A catalog object named case-insensitively ("Database name,
        case-insensitive", ...): exact, then upper case, then any case."""
        for cand in ((db, sc, name), (db.upper(), sc.upper(), name.upper())):
            obj = self.cat.get(kind, cand)
            if obj:
                return cand, obj
        low = (db.lower(), sc.lower(), name.lower())
        for o in self.cat.list_objects(kind):
            if tuple(x.lower() for x in o["fqn"]) == low:
                return tuple(o["fqn"]), self.cat.get(kind, tuple(o["fqn"]))
        return None, None

    def _pipe(self, db, sc, name, create_default=False):
        """The pipe in a path; <TABLE>-STREAMING is the table's default pipe,
        created on demand by the first successful open ("The PIPE object")."""
        fqn, obj = self._find("PIPE", db, sc, name)
        if obj is None and name.upper().endswith("-STREAMING") and len(name) > 10:
            tfqn, tbl = self._find("TABLE", db, sc, name[:-10])
            if tbl is not None and create_default:
                fqn = tfqn[:2] + (tfqn[2] + "-STREAMING",)
                self.cat.put("PIPE", fqn, {
                    "copy_statement": "COPY INTO %s FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING')) "
                                      "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE" % fqn_text(tfqn),
                    "table": list(tfqn), "options": {}, "owner": None, "streaming": True,
                    "default": True})
                obj = self.cat.get("PIPE", fqn)
        if obj is None:
            raise Reply(404, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED",
                        "Pipe '%s.%s.%s' does not exist or not authorized." % (db, sc, name))
        if not obj.get("streaming"):
            raise Reply(400, "ERR_PIPE_KIND_NOT_SUPPORTED",
                        "Pipe '%s' does not have a streaming source." % ".".join(fqn))
        return fqn, obj

    def _table(self, pipe):
        tfqn = tuple(pipe["table"])
        tbl = self.cat.get("TABLE", tfqn)
        if tbl is None:
            raise Reply(404, "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED",
                        "Table '%s' does not exist or not authorized." % ".".join(tfqn))
        return tfqn, tbl

    def _check_privileges(self, user, pfqn, pipe, tfqn, tbl):
        """Users made with CREATE USER (sfemu/account.py): INSERT on the table,
        OPERATE on a named pipe ("Access control",
        https://docs.snowflake.com/en/user-guide/snowpipe-streaming/snowpipe-streaming-access-control)."""
        acct = self.engine.acct
        session = Session(user=user, account=self.account)
        try:
            acct.prepare(session)
            if session.roles is None:
                return
            acct.check_object(session, "TABLE", tfqn, tbl, ("INSERT",))
        except SfError as e:
            raise Reply(403, "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED", e.message)
        if not pipe.get("default"):
            try:
                acct.check_object(session, "PIPE", pfqn, pipe, ("OPERATE",))
            except SfError as e:
                raise Reply(403, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED", e.message)

    def _target(self, user, db, sc, pname, create_default=False):
        """The pipe of a request, once its table and the user's privileges are
        checked."""
        pfqn, pipe = self._pipe(db, sc, pname, create_default)
        tfqn, tbl = self._table(pipe)
        self._check_privileges(user, pfqn, pipe, tfqn, tbl)
        return pfqn, pipe

    def _existing_channel(self, pfqn, pipe, cname):
        ch = self._channel(pipe["object_id"], cname)
        if ch is None:
            raise Reply(404, "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED",
                        "Channel '%s' on pipe '%s' does not exist or is not authorized."
                        % (cname, ".".join(pfqn)))
        return ch

    def _compiled(self, pipe):
        """The pipe's copy statement, parsed once."""
        key = (pipe["object_id"], pipe["copy_statement"])
        with self.lock:
            pd = self.pipes.get(key)
        if pd is None:
            text = pipe["copy_statement"]
            copy = _copy(Parser(tokenize(text), text), in_pipe=True)
            opts = {k: (v[1] if isinstance(v, tuple) else v) for k, v in copy["options"].items()}
            pd = {"columns": copy["columns"], "transform": copy["transform"],
                  "match_by": str(opts.get("MATCH_BY_COLUMN_NAME") or "NONE").upper(),
                  # "Binary column encoding": BASE64 for default pipes, else
                  # BINARY_INPUT_FORMAT (default HEX)
                  "binary": "BASE64" if pipe.get("default") else "HEX"}
            with self.lock:
                self.pipes[key] = pd
        return pd

    # -- channels ---------------------------------------------------------------
    def _channel(self, pipe_id, name):
        cur = self.cat.db.execute("SELECT %s FROM streaming_channels WHERE pipe_id=? AND "
                                  "channel_key=?" % ", ".join(CHANNEL_COLS),
                                  (pipe_id, name.upper()))
        row = cur.fetchone()
        return dict(zip(CHANNEL_COLS, row)) if row else None

    def _update_channel(self, ch, **kw):
        ch.update(kw)
        keys = sorted(kw)
        self.cat.db.execute("UPDATE streaming_channels SET %s WHERE pipe_id=? AND channel_key=?"
                            % ", ".join("%s=?" % k for k in keys),
                            [kw[k] for k in keys] + [ch["pipe_id"], ch["channel_key"]])

    def _inflight(self, ch):
        return self.cat.db.execute("SELECT COUNT(*) FROM streaming_inflight WHERE pipe_id=? AND "
                                   "channel_key=?",
                                   (ch["pipe_id"], ch["channel_key"])).fetchone()[0]

    def _discard_inflight(self, ch):
        self.cat.db.execute("DELETE FROM streaming_inflight WHERE pipe_id=? AND channel_key=?",
                            (ch["pipe_id"], ch["channel_key"]))

    def _status(self, ch, variant):
        """channel_status of Open Channel ("open") or an entry of Bulk Get
        Channel Status ("bulk"); each with the field names and types its table
        in the reference gives (docs/streaming.md, 4.1 and 4.4)."""
        n = ch["latency_batches"]
        d = {"database_name": ch["db"], "schema_name": ch["schema"], "pipe_name": ch["pipe"],
             "channel_name": ch["channel_name"], "channel_status_code": ch["status_code"],
             "last_committed_offset_token": ch["committed_offset"],
             "created_on_ms": int(ch["created_on"] * 1000),
             "rows_inserted": ch["rows_inserted"], "rows_parsed": ch["rows_parsed"],
             "rows_error_count": ch["rows_errors"],
             "last_error_offset_upper_bound": ch["last_error_offset"],
             "last_error_message": ch["last_error_message"],
             "snowflake_avg_processing_latency_ms": int(round(ch["latency_ms_total"] / n))
             if n else None}
        at = ch["last_error_at"]
        if variant == "open":
            d["last_error_timestamp"] = int(at * 1000) if at is not None else None
        else:
            d["rows_errors"] = ch["rows_errors"]
            d["last_error_timestamp"] = _iso_ms(at) if at is not None else None
        return d

    def _token(self, ch):
        """Continuation token: pipe, client and row sequencer, a nonce, and a
        MAC over them and the channel. Standard base64 with at least one '+',
        so a client that does not URL-encode it (the '+' reads as a space)
        fails."""
        while True:
            body = ("%d.%d.%d.%s" % (ch["pipe_id"], ch["client_seq"], ch["row_seq"],
                                     os.urandom(6).hex())).encode()
            mac = hmac.new(self.key, ch["channel_key"].encode() + b"|" + body,
                           hashlib.sha256).digest()[:MAC_LEN]
            tok = base64.b64encode(body + mac).decode("ascii")
            if "+" in tok:
                return tok

    def _read_token(self, tok, ch):
        """(pipe_id, client_seq, row_seq) of a token issued for channel ch."""
        try:
            raw = base64.b64decode(tok, validate=True)
        except (ValueError, TypeError):
            raise Reply(400, "ERR_MALFORMED_REQUEST", "Invalid continuation token.")
        body, mac = raw[:-MAC_LEN], raw[-MAC_LEN:]
        want = hmac.new(self.key, ch["channel_key"].encode() + b"|" + body,
                        hashlib.sha256).digest()[:MAC_LEN]
        if len(raw) > MAC_LEN and hmac.compare_digest(mac, want):
            pid, cs, rs, _ = body.decode("ascii").split(".")
            return int(pid), int(cs), int(rs)
        # a token of another channel (or none at all)
        raise Reply(400, "STALE_CONTINUATION_TOKEN_SEQUENCER", STALE_MESSAGE)

    def _json_body(self, raw, h):
        if not raw.strip():
            return {}
        ctype = (h.headers.get("Content-Type") or "application/json").lower()
        if "json" not in ctype:
            raise Reply(415, "ERR_MALFORMED_REQUEST", "Content-Type must be application/json.")
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise Reply(400, "ERR_MALFORMED_REQUEST", "The request body is not valid JSON.")
        if not isinstance(doc, dict):
            raise Reply(400, "ERR_MALFORMED_REQUEST", "The request body must be a JSON object.")
        return doc

    def _open(self, h, user, db, sc, pname, cname, raw):
        """Open Channel: create, or reopen (bump the client sequencer, discard
        what is in flight, return the last committed offset token)."""
        doc = self._json_body(raw, h)
        offset = doc.get("offset_token")
        if offset is not None and not isinstance(offset, str):
            raise Reply(400, "ERR_MALFORMED_REQUEST", "offset_token must be a string.")
        strict = doc.get("fail_on_uncommitted_rows", False)
        if not isinstance(strict, bool):
            raise Reply(400, "ERR_MALFORMED_REQUEST", "fail_on_uncommitted_rows must be a boolean.")
        if not cname:
            raise Reply(400, "ERR_MALFORMED_REQUEST", "Channel name is empty.")
        with self._txn():
            pfqn, pipe = self._target(user, db, sc, pname, create_default=True)
            ch = self._channel(pipe["object_id"], cname)
            now = time.time()
            if ch is None:
                ch = dict.fromkeys(CHANNEL_COLS)
                ch.update(pipe_id=pipe["object_id"], channel_key=cname.upper(),
                          channel_name=cname, db=pfqn[0], schema=pfqn[1], pipe=pfqn[2],
                          client_seq=1, row_seq=0, status_code=SUCCESS, committed_offset=offset,
                          created_on=now, rows_inserted=0, rows_parsed=0, rows_errors=0,
                          latency_ms_total=0, latency_batches=0, opened_at=now)
                self.cat.db.execute("INSERT INTO streaming_channels (%s) VALUES (%s)"
                                    % (", ".join(CHANNEL_COLS), ", ".join("?" * len(CHANNEL_COLS))),
                                    [ch[k] for k in CHANNEL_COLS])
            else:
                if strict and self._inflight(ch):
                    raise Reply(409, "ERR_CHANNEL_HAS_UNCOMMITTED_DATA",
                                "The channel has uncommitted data.")
                self._discard_inflight(ch)
                kw = {"client_seq": ch["client_seq"] + 1, "row_seq": 0, "status_code": SUCCESS,
                      "opened_at": now}
                if "offset_token" in doc:
                    kw["committed_offset"] = offset
                self._update_channel(ch, **kw)
            body = {"next_continuation_token": self._token(ch),
                    "channel_status": self._status(ch, "open")}
        with self.lock:
            self.rate.pop((ch["pipe_id"], ch["channel_key"]), None)
        return 200, body, "application/json"

    def _drop(self, h, user, db, sc, pname, cname, raw):
        """Drop Channel: the channel and its offset token go."""
        doc = self._json_body(raw, h)
        strict = doc.get("fail_on_uncommitted_rows", False)
        with self._txn():
            pfqn, pipe = self._target(user, db, sc, pname)
            ch = self._existing_channel(pfqn, pipe, cname)
            if strict is True and self._inflight(ch):
                raise Reply(409, "ERR_CHANNEL_HAS_UNCOMMITTED_DATA",
                            "The channel has uncommitted data.")
            self._discard_inflight(ch)
            self.cat.db.execute("DELETE FROM streaming_channels WHERE pipe_id=? AND channel_key=?",
                                (ch["pipe_id"], ch["channel_key"]))
        return 200, {}, "application/json"

    def _bulk_status(self, h, user, db, sc, pname, raw):
        doc = self._json_body(raw, h)
        names = doc.get("channel_names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise Reply(400, "ERR_MALFORMED_REQUEST", "channel_names must be a list of strings.")
        out = {}
        with self.engine.lock:
            pfqn, pipe = self._target(user, db, sc, pname)
            for n in names:
                ch = self._channel(pipe["object_id"], n)
                # "the names are case-sensitive": the name as first opened, exactly
                if ch is not None and ch["channel_name"] == n:
                    out[n] = self._status(ch, "bulk")
        return 200, {"channel_statuses": out}, "application/json"

    def _append(self, h, user, db, sc, pname, cname, query, raw):
        """Append Rows: NDJSON, continuationToken required; the batch is in
        flight until the committer takes it (commit_delay_ms)."""
        limit = int(self.setting("max_payload_bytes"))
        if limit and len(raw) > limit:
            raise Reply(413, "ERR_PAYLOAD_TOO_LARGE", "The request payload (%d bytes) is over "
                        "the limit of %d bytes." % (len(raw), limit))
        ctype = (h.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in ("application/x-ndjson", "application/json"):
            raise Reply(415, "ERR_MALFORMED_REQUEST",
                        "Content-Type must be application/x-ndjson.")
        enc = (h.headers.get("Content-Encoding") or "identity").strip().lower()
        if enc not in ("identity", "gzip", "zstd"):
            raise Reply(415, "ERR_MALFORMED_REQUEST", "Unsupported Content-Encoding %s." % enc)
        token = query.get("continuationToken")
        if not token:
            raise Reply(400, "ERR_MALFORMED_REQUEST", "continuationToken is required.")
        start = query.get("startOffsetToken")
        end = query.get("endOffsetToken", query.get("offsetToken"))
        payload = raw
        if enc != "identity":
            try:
                payload = storage.decompress(raw, enc.upper(), "")
            except storage.StorageError as e:
                raise Reply(400, "ERR_MALFORMED_REQUEST", "Cannot decompress the payload: %s" % e)
        with self._txn():
            pfqn, pipe = self._target(user, db, sc, pname)
            ch = self._existing_channel(pfqn, pipe, cname)
            if ch["status_code"] != SUCCESS:
                raise Reply(409, ch["status_code"], "The channel is invalid and must be "
                            "reopened.")
            pid, cs, rs = self._read_token(token, ch)
            if pid != ch["pipe_id"] or cs != ch["client_seq"]:
                raise Reply(400, "STALE_CONTINUATION_TOKEN_SEQUENCER", STALE_MESSAGE)
            if rs != ch["row_seq"]:
                raise Reply(400, "ERR_CHANNEL_HAS_INVALID_ROW_SEQUENCER",
                            "The row sequencer in the continuation token is not the channel's; "
                            "use the latest continuation token or reopen the channel.")
            self._rate_check(ch)
            now = time.time()
            self.cat.db.execute("INSERT INTO streaming_inflight (pipe_id, channel_key, client_seq, "
                                "row_seq, start_offset, end_offset, payload, appended_at, "
                                "request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                (ch["pipe_id"], ch["channel_key"], cs, rs, start, end, payload,
                                 now, query.get("requestId")))
            self._update_channel(ch, row_seq=rs + 1)
            nxt = self._token(ch)
        self.wake.set()
        return 200, {"next_continuation_token": nxt}, "application/json"

    def _rate_check(self, ch):
        """"Request rate: 10 requests per second (RPS)" per channel."""
        rps = int(self.setting("requests_per_second"))
        if rps <= 0:
            return
        now = time.time()
        key = (ch["pipe_id"], ch["channel_key"])
        with self.lock:
            window = [t for t in self.rate.get(key, []) if t > now - 1.0]
            if len(window) >= rps:
                self.rate[key] = window
                raise Reply(429, "ERR_TOO_MANY_REQUESTS", "Too many requests on this channel.",
                            {"Retry-After": "1"})
            window.append(now)
            self.rate[key] = window

    # -- committing -----------------------------------------------------------
    def _run(self):
        while not self.stop.is_set():
            self.wake.wait(0.05)
            self.wake.clear()
            if self.setting("pause_commits"):
                continue
            try:
                self.commit_due()
            except Exception:  # never kill the thread
                traceback.print_exc()

    def commit_due(self, force=False):
        """Commit, in append order, every batch in flight for commit_delay_ms
        (every batch if force). Returns the number of batches committed."""
        n = 0
        while True:
            cutoff = float("inf") if force else \
                time.time() - int(self.setting("commit_delay_ms")) / 1000.0
            with self._txn():
                row = self.cat.db.execute(
                    "SELECT %s FROM streaming_inflight WHERE appended_at <= ? ORDER BY seq LIMIT 1"
                    % ", ".join(INFLIGHT_COLS), (cutoff,)).fetchone()
                if row is None:
                    return n
                self._commit(dict(zip(INFLIGHT_COLS, row)))
            n += 1

    def _commit(self, b):
        self.cat.db.execute("DELETE FROM streaming_inflight WHERE seq=?", (b["seq"],))
        ch = self._channel(b["pipe_id"], b["channel_key"])
        if ch is None or ch["client_seq"] != b["client_seq"] or ch["status_code"] != SUCCESS:
            return      # dropped, reopened or invalidated since: discarded
        pipe = self.cat.get("PIPE", (ch["db"], ch["schema"], ch["pipe"]))
        if pipe is None or pipe["object_id"] != ch["pipe_id"]:
            self._invalidate(ch, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED")
            return
        tbl = self.cat.get("TABLE", tuple(pipe["table"]))
        if tbl is None:
            self._invalidate(ch, "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED")
            return
        try:
            pd = self._compiled(pipe)
        except SfError:
            self._invalidate(ch, "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED")
            return
        ctx = ConvContext(binary_format=pd["binary"], timezone="UTC")
        pipe_label = ".".join((ch["db"], ch["schema"], ch["pipe"]))
        label = "streaming:%s/%s" % (pipe_label, ch["channel_name"])
        text = bytes(b["payload"]).decode("utf-8", errors="surrogateescape")
        rows, errors, parsed = [], [], 0
        for i, line in enumerate(text.split("\n")):
            line = line[:-1] if line.endswith("\r") else line
            if not line.strip():
                continue
            parsed += 1
            try:
                if re.search("[\udc80-\udcff]", line):
                    raise ConvError("Invalid UTF8 detected in the row", "100069", "22P02")
                rows.append((self._map_row(line, pd, tbl, ctx, parsed), ch["rows_parsed"] + parsed))
            except (ConvError, SfError) as e:
                errors.append((i + 1, e.message))
            except Exception as e:   # an emulator bug must not wedge the channel
                traceback.print_exc()
                errors.append((i + 1, "internal emulator error: %s" % e))
        now = time.time()
        if rows:
            self.cat.insert_rows(tbl["object_id"], [c["sqlcol"] for c in tbl["columns"]],
                                 ((vals, label, line_no, b["end_offset"])
                                  for vals, line_no in rows))
        kw = {"rows_parsed": ch["rows_parsed"] + parsed,
              "rows_inserted": ch["rows_inserted"] + len(rows),
              "rows_errors": ch["rows_errors"] + len(errors),
              "latency_ms_total": ch["latency_ms_total"] + (now - b["appended_at"]) * 1000,
              "latency_batches": ch["latency_batches"] + 1}
        # "updated when the rows with a provided offset token are committed"
        if b["end_offset"] is not None:
            kw["committed_offset"] = b["end_offset"]
        if errors:
            kw.update(last_error_offset=b["end_offset"], last_error_at=now,
                      last_error_message=_redact(errors[-1][1]))
            with self.lock:
                self.row_errors = (self.row_errors + [
                    {"pipe": pipe_label, "channel": ch["channel_name"], "row_seq": b["row_seq"],
                     "line": ln, "end_offset_token": b["end_offset"], "message": msg, "at": now}
                    for ln, msg in errors])[-200:]
        self._update_channel(ch, **kw)

    def _invalidate(self, ch, code):
        self._discard_inflight(ch)
        self._update_channel(ch, status_code=code)

    def _map_row(self, line, pd, tbl, ctx, n):
        """One NDJSON line -> the table's stored values, through the pipe's
        copy statement (MATCH_BY_COLUMN_NAME, a transformation, or the row as
        one VARIANT). Raises ConvError / SfError: a row error."""
        v = parse_json_text(line)   # RFC 8259: no NaN/Infinity
        doc = v.v if v is not None else None
        if not isinstance(doc, dict):
            raise ConvError("Error parsing JSON: the row is not a JSON object", "100069", "22P02")
        columns = tbl["columns"]
        if pd["columns"]:
            by_name = {c["name"]: c for c in columns}
            missing = [c for c in pd["columns"] if c not in by_name]
            if missing:
                raise SfError("invalid identifier '%s'" % missing[0], "000904", "42000")
            targets = [by_name[c] for c in pd["columns"]]
        else:
            targets = list(columns)
        if pd["transform"]:
            env = {"fields": [(doc, 1)], "json": True, "file": "", "row": n, "ctx": ctx}
            values = [eval_copy(item["expr"], env) for item in pd["transform"]["items"]]
        elif pd["match_by"] != "NONE":
            keymap = doc if pd["match_by"] == "CASE_SENSITIVE" else \
                {k.upper(): x for k, x in doc.items()}
            values = []
            for c in targets:
                key = c["name"] if pd["match_by"] == "CASE_SENSITIVE" else c["name"].upper()
                values.append(Variant(keymap[key]) if key in keymap and keymap[key] is not None
                              else None)
        else:
            values = [Variant(doc)]
        out = {}
        for col, val in zip(targets, values):
            try:
                sv = convert_any(val, col["type"], ctx)
                if sv is None and not col["nullable"]:
                    raise ConvError("NULL result in a non-nullable column", "100072", "22000")
            except ConvError as e:
                raise ConvError('%s, column "%s"' % (e.message, col["name"]), e.code, e.sql_state)
            out[col["name"]] = sv
        names = {c["name"] for c in targets}
        for col in columns:
            if col["name"] not in names and not col["nullable"]:
                raise ConvError('NULL result in a non-nullable column, column "%s"' % col["name"],
                                "100072", "22000")
        return [out.get(c["name"]) for c in columns]

    # -- faults and admin -----------------------------------------------------
    def _path_channel(self, path):
        """(db, schema, pipe, channel) of an open/drop/append path, else None."""
        parts = [urllib.parse.unquote(x) for x in path.split("/")[1:]]
        if len(parts) == 12 and parts[2] == "data":
            return parts[4], parts[6], parts[8], parts[10]
        if len(parts) == 10 and parts[2] == "databases":
            return parts[3], parts[5], parts[7], parts[9]
        return None

    def _fault_channel(self, path, action, code=None):
        where = self._path_channel(path)
        if where:
            self.mark(where[:3], where[3], action, code)

    def mark(self, pipe_parts, channel, action, code=None):
        """invalidate: the channel's status code becomes code
        (ERR_CHANNEL_MUST_BE_REOPENED), as SYSTEM$STREAMING_CHANNEL_INVALIDATE
        does in Snowflake's connector tests; supersede: another client reopened
        it (client sequencer bumped, in-flight batches discarded). Returns
        False if there is no such channel."""
        with self._txn():
            try:
                pfqn, pipe = self._pipe(*pipe_parts)
            except Reply:
                return False
            ch = self._channel(pipe["object_id"], channel)
            if ch is None:
                return False
            if action == "invalidate":
                self._invalidate(ch, code or "ERR_CHANNEL_MUST_BE_REOPENED")
            else:
                self._discard_inflight(ch)
                self._update_channel(ch, client_seq=ch["client_seq"] + 1, row_seq=0)
        return True

    def state(self):
        with self.engine.lock:
            chans = [dict(zip(CHANNEL_COLS, r)) for r in self.cat.db.execute(
                "SELECT %s FROM streaming_channels ORDER BY db, schema, pipe, channel_name"
                % ", ".join(CHANNEL_COLS))]
            flight = [dict(zip(INFLIGHT_COLS, r)) for r in self.cat.db.execute(
                "SELECT %s FROM streaming_inflight ORDER BY seq" % ", ".join(INFLIGHT_COLS))]
        out = []
        for ch in chans:
            out.append({"pipe": "%s.%s.%s" % (ch["db"], ch["schema"], ch["pipe"]),
                        "pipe_id": ch["pipe_id"], "channel": ch["channel_name"],
                        "client_seq": ch["client_seq"], "row_seq": ch["row_seq"],
                        "status": self._status(ch, "bulk"),
                        "in_flight": [{"row_seq": b["row_seq"],
                                       "start_offset_token": b["start_offset"],
                                       "end_offset_token": b["end_offset"],
                                       "bytes": len(b["payload"]),
                                       "appended_at": round(b["appended_at"], 3)}
                                      for b in flight if b["pipe_id"] == ch["pipe_id"] and
                                      b["channel_key"] == ch["channel_key"] and
                                      b["client_seq"] == ch["client_seq"]]})
        with self.lock:
            return {"settings": dict(self.settings), "channels": out,
                    "row_errors": list(self.row_errors)}

    def committed_rows(self, table, channel=None):
        """Rows the streaming API committed into a table, with their channel,
        the batch's end offset token and the row's number in its channel."""
        parts = split_pipe_name(table)
        with self.engine.lock:
            fqn, tbl = self._find("TABLE", *[v for _, v in parts])
            if tbl is None:
                return None
            cols = [c["sqlcol"] for c in tbl["columns"]]
            cur = self.cat.db.execute(
                'SELECT %s, __file, __line, __handle FROM "%s" WHERE __file LIKE \'streaming:%%\' '
                "ORDER BY rowid" % (", ".join('"%s"' % c for c in cols) or "1",
                                    self.cat.data_table(tbl["object_id"])))
            rows = []
            for r in cur:
                label = r[len(cols)]
                pipe, _, chname = label[len("streaming:"):].rpartition("/")
                if channel is not None and chname != channel:
                    continue
                rows.append({"pipe": pipe, "channel": chname, "row": r[len(cols) + 1],
                             "offset_token": r[len(cols) + 2], "values": list(r[:len(cols)])})
        return {"table": ".".join(fqn), "columns": [c["name"] for c in tbl["columns"]],
                "rows": rows}

    def admin(self, h, method, name, query, doc):
        """/_emulator/streaming[/rows]; see README.md, "Snowpipe Streaming"."""
        sub = name[len("streaming"):].strip("/")
        if sub == "rows":
            if not query.get("table"):
                return h._send(400, {"error": "table required"})
            try:
                res = self.committed_rows(query["table"], query.get("channel"))
            except ValueError as e:
                return h._send(400, {"error": str(e)})
            if res is None:
                return h._send(404, {"error": "no table %s" % query["table"]})
            return h._send(200, res)
        if sub:
            return h._send(404, {"error": "unknown admin endpoint %s" % name})
        if method == "POST":
            unknown = [k for k in doc if k not in DEFAULTS and
                       k not in ("invalidate", "supersede", "commit_now")]
            if unknown:
                return h._send(400, {"error": "unknown settings %s" % unknown})
            with self.lock:
                for k in DEFAULTS:
                    if k in doc:
                        self.settings[k] = doc[k]
            for action in ("invalidate", "supersede"):
                if action in doc:
                    spec = doc[action]
                    try:
                        parts = [v for _, v in split_pipe_name(spec["pipe"])]
                    except (KeyError, TypeError, ValueError) as e:
                        return h._send(400, {"error": "pipe: %s" % e})
                    if not self.mark(parts, spec.get("channel", ""), action, spec.get("code")):
                        return h._send(404, {"error": "no such channel"})
            if doc.get("commit_now"):
                self.commit_due(force=True)
            self.wake.set()
        return h._send(200, self.state())
