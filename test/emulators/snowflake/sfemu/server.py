"""HTTP server: the SQL API v2 endpoints and the /_emulator admin endpoints.

Never logs Authorization headers or tokens: the request log is method, path
(the path carries only handles and requestIds) and status.
"""

import email.utils
import json
import re
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .auth import AuthError
from .engine import Session
from .errors import SfError
from .sqltok import split_statements, substitute_binds, tokenize
from .streaming import FAULT_ACTIONS as STREAMING_FAULT_ACTIONS


class Faults:
    """Fault injection: next N matching requests get a canned behaviour.

    action: "429" | "500" | "503" | "504" | "401" | "drop" | "drop_after" |
            "delay" (delay_ms, then handle normally) |
            "202" (statement runs for delay_ms; POST answers 202 at once) |
            "slow" (statement execution takes delay_ms; POST waits as usual) |
            "hold" (a POST: the statement is registered and runs for delay_ms,
                    and the answer is held back until it ends: a submit still
                    in flight while the statement runs) |
            "422" (statement fails with code / message / sql_state)
    retry_after: with 429, 500, 503, 504, the value of a Retry-After header
            (delay-seconds such as "3", or an HTTP-date); "+N" is turned
            into the HTTP-date N seconds after the answer
    """

    ACTIONS = {"429", "500", "503", "504", "401", "drop", "drop_after", "delay", "202",
               "pending", "slow", "hold", "422"} | STREAMING_FAULT_ACTIONS

    def __init__(self):
        self.items = []
        self.lock = threading.Lock()
        self.seq = 0

    def add(self, spec):
        action = str(spec.get("action", "")).lower()
        if action not in self.ACTIONS:
            raise ValueError("unknown action %r; one of %s" % (action, sorted(self.ACTIONS)))
        f = {"action": action, "count": int(spec.get("count", 1)),
             "delay_ms": int(spec.get("delay_ms", 0)),
             "path": spec.get("path"), "statement": spec.get("statement"),
             "method": (spec.get("method") or "").upper() or None,
             "code": spec.get("code"), "message": spec.get("message"),
             "sql_state": spec.get("sql_state"),
             "retry_after": (str(spec["retry_after"])
                             if spec.get("retry_after") is not None else None)}
        for k in ("path", "statement"):
            if f[k]:
                re.compile(f[k])
        with self.lock:
            self.seq += 1
            f["id"] = self.seq
            self.items.append(f)
        return f

    def match(self, method, path, statement):
        with self.lock:
            for f in self.items:
                if f["count"] <= 0:
                    continue
                if f["method"] and f["method"] != method:
                    continue
                if f["path"] and not re.search(f["path"], path):
                    continue
                if f["statement"] and not (statement is not None and
                                           re.search(f["statement"], statement, re.I | re.S)):
                    continue
                f["count"] -= 1
                hit = dict(f)
                self.items = [x for x in self.items if x["count"] > 0]
                return hit
        return None

    def list(self):
        with self.lock:
            return [dict(f) for f in self.items]

    def clear(self):
        with self.lock:
            self.items = []


class App:
    def __init__(self, engine, executor, auth, catalog, account=None):
        self.engine = engine
        self.executor = executor
        self.auth = auth
        self.cat = catalog
        self.account = account
        self.faults = Faults()
        self.snowpipe = None
        self.streaming = None   # Snowpipe Streaming REST API (sfemu/streaming.py)
        self.sql_log = None     # file every SQL API statement is appended to
        self.sql_log_lock = threading.Lock()
        # arrival time, method and path (no query) of every API request, and
        # the fault it got: GET /_emulator/requests (Retry-After tests)
        self.requests = []
        self.requests_lock = threading.Lock()

    def log_request(self, method, path, fault):
        rec = {"t": round(time.time(), 3), "method": method, "path": path, "fault": fault}
        with self.requests_lock:
            self.requests.append(rec)
            del self.requests[:-10000]
        return rec

    def log_sql(self, doc, request_id, user):
        """Append a statement received on /api/v2/statements (for the test
        suite's secret scan: the SQL sfexport generated)."""
        if not self.sql_log:
            return
        text = "-- statement, request %s, user %s\n%s\n" % (request_id, user, doc.get("statement"))
        if doc.get("bindings"):
            text += "-- bindings %s\n" % json.dumps(doc["bindings"], sort_keys=True)
        with self.sql_log_lock, open(self.sql_log, "a", encoding="utf-8") as f:
            f.write(text)


def retry_after_header(fault):
    """The Retry-After header a fault asks for: {} or {"Retry-After": v}."""
    v = fault.get("retry_after")
    if v is None:
        return {}
    if v.startswith("+"):
        v = email.utils.formatdate(time.time() + float(v[1:]), usegmt=True)
    return {"Retry-After": v}


def make_handler(app):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "SnowflakeEmulator/1.0"

        def log_message(self, fmt, *args):  # path + status only; never headers
            sys.stderr.write("[sfemu] %s %s\n" % (self.address_string(), fmt % args))

        # -- plumbing ----------------------------------------------------
        def _body(self):
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                # the stand-ins' shared reader (test/emulators/lib, on the path
                # through the entry point ../server.py)
                from emu_common import read_body
                return read_body(self, ())[0].read()
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n > 0 else b""

        def _send(self, status, body, headers=None, content_type="application/json"):
            if isinstance(body, (dict, list)):
                data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            elif isinstance(body, str):
                data = body.encode("utf-8")
            else:
                data = body or b""
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _drop(self):
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def _fault(self, method, path, statement):
            """The fault queued for this request, if any (recorded and logged)."""
            fault = app.faults.match(method, self.path, statement)
            if fault:
                with app.requests_lock:
                    self._rec["fault"] = fault["action"]
                sys.stderr.write("[sfemu] fault %s on %s %s\n" % (fault["action"], method, path))
            return fault

        def _canned(self, fault, busy_body):
            """Answer a 429 (busy_body), 401, 408, 410 or 5xx fault."""
            a = fault["action"]
            if a == "429":
                return self._send(429, busy_body, headers=retry_after_header(fault))
            if a == "401":
                return self._send(401, {"code": "390144",
                                        "message": "JWT token is invalid. [injected]"})
            text = {"408": "Request Timeout", "410": "Gone", "500": "Internal Server Error",
                    "503": "Service Unavailable", "504": "Gateway Timeout"}[a]
            # like a load balancer: an HTML body
            return self._send(int(a), "<html><body><h1>%s %s</h1></body></html>" % (a, text),
                              content_type="text/html", headers=retry_after_header(fault))

        def do_GET(self):
            self._dispatch("GET")

        def do_POST(self):
            self._dispatch("POST")

        def do_DELETE(self):
            self._dispatch("DELETE")

        def do_PUT(self):
            self._dispatch("PUT")

        def _dispatch(self, method):
            url = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
            body = self._body()
            try:
                if url.path.startswith("/_emulator/"):
                    return self._admin(method, url.path, query, body)
                self._rec = {}
                if not url.path.startswith("/_emulator/"):
                    self._rec = app.log_request(method, url.path, None)
                if url.path.startswith("/api/v2/statements"):
                    return self._api(method, url.path, query, body)
                if url.path.startswith("/v1/data/pipes/"):
                    return self._pipe(method, url.path, query, body)
                if app.streaming is not None and app.streaming.owns(url.path):
                    return app.streaming.serve(self, method, url.path, query, body)
                self._send(404, {"code": "390404", "message": "Not found"})
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as e:  # never crash the server
                import traceback
                traceback.print_exc()
                try:
                    self._send(500, {"code": "390000", "message": "internal emulator error: %s" % e})
                except OSError:
                    pass

        # -- SQL API -------------------------------------------------------
        def _api(self, method, path, query, raw):
            statement = None
            doc = None
            if method == "POST" and path.rstrip("/") == "/api/v2/statements":
                try:
                    doc = json.loads(raw.decode("utf-8")) if raw else None
                except (ValueError, UnicodeDecodeError):
                    doc = None
                if isinstance(doc, dict) and isinstance(doc.get("statement"), str):
                    statement = doc["statement"]
            fault = self._fault(method, path, statement)
            exec_fault = None
            if fault:
                a = fault["action"]
                if a == "drop":
                    return self._drop()
                if a == "delay":
                    time.sleep(fault["delay_ms"] / 1000.0)
                elif a in ("429", "500", "503", "504", "401"):
                    return self._canned(fault, {"code": "390505",
                                                "message": "Too many requests."})
                elif a in ("202", "pending", "slow", "hold", "422"):
                    exec_fault = fault
            accept = self.headers.get("Accept") or ""
            if not accept or not ("application/json" in accept or "*/*" in accept):
                return self._send(406, {"code": "390142",
                                        "message": "Accept header must include application/json."})
            if not self.headers.get("User-Agent"):
                return self._send(400, {"code": "390142",
                                        "message": "User-Agent header is required."})
            if method == "POST":
                ctype = (self.headers.get("Content-Type") or "application/json").lower()
                if "application/json" not in ctype:
                    return self._send(415, {"code": "390142",
                                            "message": "Unsupported Content-Type %s" % ctype})
            try:
                user = app.auth.authenticate(self.headers.get("Authorization"),
                                             self.headers.get("X-Snowflake-Authorization-Token-Type"))
            except AuthError as e:
                sys.stderr.write("[sfemu] 401: %s\n" % e.reason)
                return self._send(401, {"code": e.code, "message": e.message})
            account = app.account or "EMULATOR"
            tok = None
            m = re.match(r"(?i)bearer\s+(\S+)", self.headers.get("Authorization") or "")
            if m and m.group(1).count(".") == 2:
                try:
                    import jwt as _jwt
                    tok = _jwt.decode(m.group(1), options={"verify_signature": False})
                    account = tok["sub"].split(".", 1)[0]
                except Exception:
                    pass
            drop_after = fault is not None and fault["action"] == "drop_after"
            ex = app.executor
            parts = [p for p in path.split("/") if p]
            # /api/v2/statements
            if len(parts) == 3:
                if method != "POST":
                    return self._send(405, b"")
                if not isinstance(doc, dict):
                    return self._send(400, {"code": "390142", "message":
                                            "Incoming request does not contain a valid payload."})
                retry = query.get("retry", "").lower() == "true"
                is_async = query.get("async", "").lower() == "true"
                app.log_sql(doc, query.get("requestId"), user)
                try:
                    s = ex.submit(doc, query.get("requestId"), retry, user, account, exec_fault)
                except SfError as e:
                    return self._send(e.http_status, {"code": e.code, "message": e.message})
                if exec_fault is not None and exec_fault["action"] == "hold":
                    s.done.wait(exec_fault["delay_ms"] / 1000.0)
                if is_async or s.force_async:
                    # async=true: answer 202 with the handle at once, however fast it runs.
                    status, body, headers = ex.respond_running(s)
                else:
                    s.done.wait(ex.cfg.sync_wait_ms / 1000.0)
                    status, body, headers = ex.respond(s, for_post=True)
                if status == 200 and isinstance(body, dict) and query.get("nullable") == "false":
                    body["data"] = [["null" if v is None else v for v in r] for r in body["data"]]
                if drop_after:
                    if not is_async:
                        s.done.wait(ex.cfg.sync_wait_ms / 1000.0)
                    return self._drop()
                return self._send(status, body, headers)
            # /api/v2/statements/<handle>[/cancel]
            handle = parts[3] if len(parts) >= 4 else None
            s = ex.get(handle) if handle else None
            if len(parts) == 5 and parts[4] == "cancel":
                if method != "POST":
                    return self._send(405, b"")
                if s is None or s.user != user:
                    return self._send(422, {"code": "000709", "sqlState": "02000",
                                            "message": "Statement %s not found" % handle,
                                            "statementHandle": handle})
                if ex.cancel(s):
                    s.done.wait(2)
                    body = {"code": "000604", "sqlState": "57014",
                            "message": "SQL execution canceled", "statementHandle": s.handle,
                            "statementStatusUrl": ex.status_url(s)}
                    if drop_after:
                        return self._drop()
                    return self._send(200, body)
                return self._send(422, {"code": "000605", "sqlState": "01000",
                                        "message": "Identified SQL statement is not currently "
                                                   "executing.", "statementHandle": s.handle,
                                        "statementStatusUrl": ex.status_url(s)})
            if len(parts) != 4:
                return self._send(404, {"code": "390404", "message": "Not found"})
            if method != "GET":
                return self._send(405, b"")
            if s is None or s.user != user:
                return self._send(422, {"code": "000709", "sqlState": "02000",
                                        "message": "Statement %s not found" % handle,
                                        "statementHandle": handle})
            try:
                partition = int(query.get("partition", "0") or 0)
            except ValueError:
                return self._send(400, {"code": "390142", "message": "invalid partition"})
            status, body, headers = ex.respond(s, partition=partition)
            if drop_after:
                return self._drop()
            return self._send(status, body, headers)

        # -- Snowpipe REST API (sfemu/snowpipe.py) -------------------------------
        def _pipe(self, method, path, query, raw):
            sp = app.snowpipe
            if sp is None:
                return self._send(404, {"code": "390404", "message": "Not found"})
            accept = self.headers.get("Accept") or ""
            if accept and not ("application/json" in accept or "*/*" in accept):
                return self._send(406, {"code": "390142",
                                        "message": "Accept header must include application/json."})
            try:
                user = app.auth.authenticate(self.headers.get("Authorization"),
                                             self.headers.get("X-Snowflake-Authorization-Token-Type"))
            except AuthError as e:
                sys.stderr.write("[sfemu] 401: %s\n" % e.reason)
                return self._send(401, {"code": e.code, "message": e.message})
            account = app.account or "EMULATOR"
            rest = path[len("/v1/data/pipes/"):]
            name, _, op = rest.rpartition("/")
            name = urllib.parse.unquote(name)
            try:
                if op == "insertFiles" and method == "POST":
                    try:
                        doc = json.loads(raw.decode("utf-8")) if raw else None
                    except (ValueError, UnicodeDecodeError):
                        doc = None
                    body = sp.insert_files(name, doc, user, account)
                    body["requestId"] = query.get("requestId")
                    return self._send(200, body)
                if op == "insertReport" and method == "GET":
                    return self._send(200, sp.insert_report(name, query.get("beginMark")))
                if op == "loadHistoryScan" and method == "GET":
                    return self._send(200, sp.load_history_scan(
                        name, query.get("startTimeInclusive"), query.get("endTimeExclusive")))
            except ValueError as e:
                return self._send(400, {"code": "390142", "message": "Invalid pipe name: %s" % e})
            except SfError as e:
                return self._send(e.http_status, {"code": e.code, "message": e.message})
            return self._send(404, {"code": "390404", "message": "Not found"})

        # -- admin -------------------------------------------------------------
        def _admin(self, method, path, query, raw):
            try:
                doc = json.loads(raw.decode("utf-8")) if raw else {}
            except ValueError:
                return self._send(400, {"error": "invalid JSON body"})
            name = path[len("/_emulator/"):].strip("/")
            cat = app.cat
            lock = app.engine.lock
            if name == "health":
                return self._send(200, {"ok": True})
            if name == "users" and method == "GET":
                return self._send(200, {"users": app.auth.describe()})
            if name == "users" and method == "POST":
                user = doc.get("name") or doc.get("user")
                if not user:
                    return self._send(400, {"error": "name required"})
                out = {"name": user.upper(), "fingerprints": []}
                try:
                    keys = doc.get("public_keys") or []
                    if doc.get("public_key_pem"):
                        keys = [(doc.get("slot"), doc["public_key_pem"])] + \
                            [(None, k) for k in keys]
                    else:
                        keys = [(i + 1, k) for i, k in enumerate(keys)]
                    for slot, pem in keys:
                        out["fingerprints"].append(app.auth.add_key(user, pem, slot))
                except Exception as e:
                    return self._send(400, {"error": "bad public key: %s" % e})
                if doc.get("token"):
                    app.auth.add_token(user, doc["token"], doc.get("token_type", "OAUTH"))
                return self._send(200, out)
            if name.startswith("users/") and method == "DELETE":
                app.auth.remove_user(name.split("/", 1)[1])
                return self._send(200, {"ok": True})
            if name == "faults":
                if method == "POST":
                    specs = doc if isinstance(doc, list) else [doc]
                    try:
                        added = [app.faults.add(s) for s in specs]
                    except (ValueError, re.error) as e:
                        return self._send(400, {"error": str(e)})
                    return self._send(200, {"faults": added})
                if method == "DELETE":
                    app.faults.clear()
                    return self._send(200, {"ok": True})
                return self._send(200, {"faults": app.faults.list()})
            if name == "requests":
                if method == "DELETE":
                    with app.requests_lock:
                        app.requests = []
                with app.requests_lock:
                    reqs = [dict(r) for r in app.requests]
                return self._send(200, {"requests": reqs})
            if name == "statements":
                since = int(query.get("since", "0") or 0)
                with app.executor.loglock:
                    log = app.executor.cat.read_log(since)
                return self._send(200, {"statements": log})
            if name == "clock":
                # the emulator's clock: wall clock + offset (load metadata expiry,
                # LAST_MODIFIED of staged files, load history)
                with lock:
                    if method == "POST":
                        offset = cat.clock_offset()
                        if "offset_s" in doc:
                            offset = int(doc["offset_s"])
                        offset += int(doc.get("advance_s", 0)) + int(doc.get("advance_days", 0)) * 86400
                        cat.set_clock_offset(offset)
                    return self._send(200, {"now": cat.now(), "offset_s": cat.clock_offset()})
            if name == "load_metadata" and method == "POST":
                # age the load metadata of a table (or one file of it) by age_s
                want = doc.get("table")
                if not want or "age_s" not in doc:
                    return self._send(400, {"error": "table and age_s required"})
                with lock:
                    n = 0
                    for o in cat.list_objects("TABLE"):
                        if _table_matches(want, o["fqn"]):
                            n += cat.age_load_metadata(o["object_id"], doc.get("file"),
                                                       float(doc["age_s"]))
                return self._send(200, {"aged": n})
            if name == "load_metadata":
                with lock:
                    tables = [o for o in cat.list_objects("TABLE")]
                    want = query.get("table")
                    out = []
                    for o in tables:
                        label = ".".join(o["fqn"])
                        if want and not _table_matches(want, o["fqn"]):
                            continue
                        out.append({"table": label, "files": cat.load_meta_list(o["object_id"])})
                return self._send(200, {"tables": out})
            if name == "objects":
                with lock:
                    objs = cat.list_objects(query.get("kind"))
                for o in objs:
                    if o.get("credentials"):
                        o["credentials"] = {k: "***" for k in o["credentials"]}
                return self._send(200, {"objects": objs})
            if name in ("external_tables", "external_tables/notify"):
                from . import exttables   # registered files, grants; event notifications
                with lock:
                    if name == "external_tables":
                        return self._send(200, exttables.admin_list(
                            app.engine, query.get("table"), _table_matches))
                    try:
                        return self._send(200, exttables.admin_notify(app.engine, doc,
                                                                      _table_matches))
                    except SfError as e:
                        return self._send(200, {"error": {"code": e.code, "sqlState":
                                                          e.sql_state, "message": e.message}})
            if name == "account" and method == "GET":
                with lock:
                    return self._send(200, app.engine.acct.dump())
            if name == "query" and method == "POST":
                return self._admin_query(doc)
            if name == "reset" and method == "POST":
                with lock, app.executor.loglock:
                    cat.reset()
                    app.engine.acct.reset()
                with app.executor.lock:
                    app.executor.stmts.clear()
                app.faults.clear()
                if app.snowpipe is not None:
                    app.snowpipe.reset()
                if app.streaming is not None:
                    app.streaming.reset()
                if doc.get("users"):
                    app.auth.users.clear()
                    app.auth.tokens.clear()
                return self._send(200, {"ok": True})
            if name == "snowpipe":
                sp = app.snowpipe
                if method == "POST":
                    for k in ("pipe_delay_ms", "report_retention_s"):
                        if k in doc:
                            setattr(sp, k, int(doc[k]))
                    if "suppress_reports" in doc:
                        sp.suppress_reports = bool(doc["suppress_reports"])
                return self._send(200, sp.admin())
            if (name == "streaming" or name.startswith("streaming/")) and app.streaming:
                return app.streaming.admin(self, method, name, query, doc)
            if name == "config":
                cfg = app.executor.cfg
                if method == "POST":
                    for k in ("partition_rows", "exec_delay_ms", "sync_wait_ms"):
                        if k in doc:
                            setattr(cfg, k, int(doc[k]))
                return self._send(200, cfg.to_dict())
            return self._send(404, {"error": "unknown admin endpoint %s" % name})

        def _admin_query(self, doc):
            sql = doc.get("statement") or doc.get("sql")
            if not isinstance(sql, str):
                return self._send(400, {"error": "statement required"})
            session = Session(user=doc.get("user", "ADMIN"), account=app.account or "EMULATOR",
                              database=doc.get("database"), schema=doc.get("schema"),
                              warehouse=doc.get("warehouse"), role=doc.get("role"),
                              parameters=doc.get("parameters"))
            try:
                parts = split_statements(tokenize(sql))
                if len(parts) != 1:
                    raise SfError("exactly one statement expected", "000008", "0A000")
                res = app.engine.execute(substitute_binds(parts[0], doc.get("bindings")), sql,
                                         session, "admin")
            except SfError as e:
                return self._send(200, {"error": {"code": e.code, "sqlState": e.sql_state,
                                                  "message": e.message}})
            return self._send(200, {"columns": [c["name"] for c in res.columns],
                                    "rowType": res.columns, "rows": res.rows,
                                    "numRows": len(res.rows)})

    return Handler


def _table_matches(want, fqn):
    parts = want.split(".")
    return [p.upper() if not p.startswith('"') else p.strip('"') for p in parts] == \
        list(fqn)[-len(parts):] or parts == list(fqn)[-len(parts):]


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(app, port):
    httpd = Server(("127.0.0.1", port), make_handler(app))
    return httpd
