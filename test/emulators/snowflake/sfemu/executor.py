"""Statement lifecycle: submit, run (with delay / timeout / cancel), dedupe, respond.

Response bodies follow the SQL API reference
(https://docs.snowflake.com/en/developer-guide/sql-api/reference):
  200 ResultSet, 202 QueryStatus (code 333334), 408 QueryStatus (timeout),
  422 QueryFailureStatus. Partitions N >= 1 are fetched with ?partition=N and
  carry only {"data": [...]}, gzip-encoded
  (https://docs.snowflake.com/en/developer-guide/sql-api/handling-responses#retrieving-additional-partitions).

requestId: resubmitting with the same requestId AND retry=true does not run a
statement that already succeeded (the original result is returned); without
retry=true a reused requestId runs the statement again, as documented
(https://docs.snowflake.com/en/developer-guide/sql-api/submitting-requests#resubmitting-a-request-to-execute-sql-statements).
"""

import gzip
import json
import threading
import time
import uuid

from .engine import Session
from .errors import SfError
from .sqltok import split_statements, substitute_binds, tokenize

MSG_RUNNING = ("Asynchronous execution in progress. Use provided query id to perform query "
               "monitoring and management.")
DEFAULT_TIMEOUT = 172800     # STATEMENT_TIMEOUT_IN_SECONDS default
MAX_TIMEOUT = 604800


class Config:
    def __init__(self, partition_rows=10000, exec_delay_ms=0, sync_wait_ms=45000):
        self.partition_rows = partition_rows
        self.exec_delay_ms = exec_delay_ms
        self.sync_wait_ms = sync_wait_ms

    def to_dict(self):
        return {"partition_rows": self.partition_rows, "exec_delay_ms": self.exec_delay_ms,
                "sync_wait_ms": self.sync_wait_ms}


def new_handle():
    u = uuid.uuid4().hex
    return "01%s-%s-%s-%s-%s" % (u[2:8], u[8:12], u[12:16], u[16:20], u[20:32])


class Stmt:
    def __init__(self, handle, request_id, user, sql, created_on):
        self.handle = handle
        self.request_id = request_id
        self.user = user
        self.sql = sql
        self.created_on = created_on      # ms since epoch
        self.status = "running"           # running | success | failed | timeout | cancelled
        self.outcome = None
        self.done = threading.Event()
        self.cancel_requested = False
        self.force_async = False
        self.log_seq = None

    @classmethod
    def from_db(cls, rec):
        s = cls(rec["handle"], rec["request_id"], rec["user"], "", rec["created_on"])
        s.status = rec["status"]
        s.outcome = rec["outcome"]
        s.done.set()
        return s


class Executor:
    def __init__(self, engine, catalog, config):
        """catalog: a Catalog connection of its own (statement log and finished
        statements), so submitting and polling never wait for a running COPY."""
        self.engine = engine
        self.cat = catalog
        self.cfg = config
        self.stmts = {}
        self.lock = threading.Lock()
        self.loglock = threading.RLock()

    # ------------------------------------------------------------------
    def get(self, handle):
        with self.lock:
            s = self.stmts.get(handle)
        if s is not None:
            return s
        with self.loglock:
            rec = self.cat.load_statement(handle)
        return Stmt.from_db(rec) if rec else None

    def submit(self, body, request_id, retry, user, account, fault=None):
        stmt_text = body.get("statement")
        if not isinstance(stmt_text, str):
            raise SfError("Incoming request does not contain a valid payload.", "390142", "",
                          http_status=400)
        bindings = body.get("bindings") or None
        if bindings is not None and not isinstance(bindings, dict):
            raise SfError("Incoming request does not contain a valid payload.", "390142", "",
                          http_status=400)
        now = time.time()
        if retry and request_id:
            with self.loglock:
                h = self.cat.latest_for_request(request_id, user)
            prev = self.get(h) if h else None
            if prev is not None and prev.status in ("running", "success"):
                with self.loglock:
                    self.cat.log_statement(
                        handle=prev.handle, request_id=request_id, retry=1, user=user,
                        statement=stmt_text, bindings=json.dumps(bindings) if bindings else None,
                        database=body.get("database"), schema=body.get("schema"),
                        warehouse=body.get("warehouse"), role=body.get("role"), executed=0,
                        deduplicated_from=prev.handle, status="deduplicated",
                        submitted_at=now, finished_at=now)
                return prev
        rid = request_id or str(uuid.uuid4())
        s = Stmt(new_handle(), rid, user, stmt_text, int(now * 1000))
        session = Session(user=user, account=account, database=body.get("database"),
                          schema=body.get("schema"), warehouse=body.get("warehouse"),
                          role=body.get("role"), parameters=body.get("parameters"))
        timeout = body.get("timeout")
        try:
            timeout = DEFAULT_TIMEOUT if timeout is None else int(timeout)
        except (TypeError, ValueError):
            raise SfError("Incoming request does not contain a valid payload.", "390142", "",
                          http_status=400)
        if timeout <= 0 or timeout > MAX_TIMEOUT:
            timeout = MAX_TIMEOUT
        delay_ms = self.cfg.exec_delay_ms
        forced = None
        if fault:
            if fault["action"] in ("202", "pending"):
                delay_ms = max(delay_ms, fault.get("delay_ms", 0))
                s.force_async = True
            elif fault["action"] in ("slow", "hold"):
                delay_ms = max(delay_ms, fault.get("delay_ms", 0))
            elif fault["action"] == "422":
                forced = SfError(fault.get("message") or "Injected failure", fault.get("code")
                                 or "100000", fault.get("sql_state") or "XX000")
        with self.lock:
            self.stmts[s.handle] = s
        with self.loglock:
            s.log_seq = self.cat.log_statement(
                handle=s.handle, request_id=rid, retry=1 if retry else 0, user=user,
                statement=stmt_text, bindings=json.dumps(bindings) if bindings else None,
                database=body.get("database"), schema=body.get("schema"),
                warehouse=body.get("warehouse"), role=body.get("role"), executed=1,
                status="running", submitted_at=now)
            self.cat.save_statement(s.handle, rid, user, "running", None, s.created_on)
        t = threading.Thread(target=self._run, name="stmt-" + s.handle,
                             args=(s, session, bindings, timeout, delay_ms, forced), daemon=True)
        t.start()
        return s

    def _run(self, s, session, bindings, timeout, delay_ms, forced):
        start = time.time()
        try:
            deadline = start + delay_ms / 1000.0
            while time.time() < deadline:
                if s.cancel_requested:
                    raise _Cancelled()
                if time.time() - start >= timeout:
                    raise _TimedOut()
                time.sleep(min(0.02, max(0.0, deadline - time.time())))
            if s.cancel_requested:
                raise _Cancelled()
            if time.time() - start >= timeout:
                raise _TimedOut()
            if forced:
                raise forced
            outcome = self._execute(s, session, bindings)
            self._finish(s, "success", outcome)
        except _Cancelled:
            self._finish(s, "cancelled", {"http_status": 422, "code": "000604",
                                          "sqlState": "57014",
                                          "message": "SQL execution canceled"})
        except _TimedOut:
            self._finish(s, "timeout", {"http_status": 408, "code": "000630", "sqlState": "57014",
                                        "message": "Statement reached its statement timeout and "
                                                   "was canceled."})
        except SfError as e:
            self._finish(s, "failed", {"http_status": 422, "code": e.code,
                                       "sqlState": e.sql_state, "message": e.message})
        except Exception as e:  # never crash: report as an internal error
            import traceback
            traceback.print_exc()
            self._finish(s, "failed", {"http_status": 422, "code": "000603", "sqlState": "XX000",
                                       "message": "SQL execution internal error: %s" % e})

    def _finish(self, s, status, outcome):
        s.outcome = outcome
        s.status = status
        with self.loglock:
            self.cat.save_statement(s.handle, s.request_id, s.user, status, outcome, s.created_on)
            if s.log_seq is not None:
                self.cat.update_log(s.log_seq, status=status,
                                    http_status=outcome.get("http_status", 200),
                                    code=outcome.get("code", "090001"),
                                    message=outcome.get("message", "Statement executed successfully."),
                                    finished_at=time.time())
        s.done.set()

    def _execute(self, s, session, bindings):
        toks = tokenize(s.sql)
        parts = split_statements(toks)
        if not parts:
            raise SfError("SQL compilation error:\nEmpty SQL statement.", "000900", "42000")
        params = session.parameters
        expected = params.get("MULTI_STATEMENT_COUNT", 1)
        try:
            expected = int(expected)
        except (TypeError, ValueError):
            expected = 1
        if len(parts) == 1 and expected in (0, 1):
            ptoks = substitute_binds(parts[0], bindings)
            res = self.engine.execute(ptoks, s.sql, session, s.handle)
            return _result_outcome(res)
        if bindings:
            raise SfError("Bind variables are not supported in a multi-statement request.",
                          "000008", "0A000")
        if expected != 0 and expected != len(parts):
            raise SfError("Actual statement count %d did not match the desired statement count %d."
                          % (len(parts), expected), "000008", "0A000")
        from . import txn
        return txn.run_multi(self, s, session, parts)

    def cancel(self, s):
        if s.status != "running":
            return False
        s.cancel_requested = True
        return True

    # ------------------------------------------------------------------
    # Responses: (http_status, body (dict or bytes), extra headers)

    def status_url(self, s):
        return "/api/v2/statements/%s?requestId=%s" % (s.handle, s.request_id)

    def respond_running(self, s):
        return 202, {"code": "333334", "message": MSG_RUNNING, "statementHandle": s.handle,
                     "statementStatusUrl": self.status_url(s)}, {}

    def respond(self, s, partition=None, for_post=False):
        base = {"statementHandle": s.handle, "statementStatusUrl": self.status_url(s)}
        if s.status == "running":
            return self.respond_running(s)
        o = s.outcome or {}
        if s.status in ("failed", "cancelled", "timeout"):
            http = 408 if (s.status == "timeout" and for_post) else 422
            body = {"code": o.get("code"), "sqlState": o.get("sqlState"),
                    "message": o.get("message"), "createdOn": s.created_on}
            body.update(base)
            return http, body, {}
        if o.get("kind") == "multi":
            body = {"resultSetMetaData": {
                "numRows": 1, "format": "jsonv2",
                "rowType": [{"name": "multiple statement execution", "database": "", "schema": "",
                             "table": "", "type": "text", "scale": None, "precision": None,
                             "byteLength": 16777216, "nullable": False, "collation": None,
                             "length": 16777216}],
                "partitionInfo": [{"rowCount": 1, "uncompressedSize": 57}]},
                "data": [["Multiple statements executed successfully."]],
                "code": "090001", "statementHandles": o["handles"], "sqlState": "00000",
                "message": "Statement executed successfully.", "createdOn": s.created_on}
            body.update(base)
            return 200, body, {}
        rows = o.get("rows", [])
        size = max(1, int(self.cfg.partition_rows))
        parts = [rows[i:i + size] for i in range(0, len(rows), size)] or [[]]
        n = len(parts)
        links = self._links(s, n, partition or 0)
        if partition:
            if partition < 0 or partition >= n:
                return 422, dict(code="000709", sqlState="02000",
                                 message="Partition %d of statement %s not found"
                                 % (partition, s.handle), **base), {}
            raw = json.dumps({"data": parts[partition]}, ensure_ascii=False).encode("utf-8")
            return 200, gzip.compress(raw), {"Content-Encoding": "gzip", "Link": links}
        info = []
        for i, p in enumerate(parts):
            unc = len(json.dumps(p, ensure_ascii=False).encode("utf-8"))
            entry = {"rowCount": len(p), "uncompressedSize": unc}
            if i > 0:
                entry["compressedSize"] = len(gzip.compress(
                    json.dumps({"data": p}, ensure_ascii=False).encode("utf-8")))
            info.append(entry)
        body = {"resultSetMetaData": {"numRows": len(rows), "format": "jsonv2",
                                      "partitionInfo": info, "rowType": o.get("columns", [])},
                "data": parts[0], "code": "090001", "sqlState": "00000",
                "message": "Statement executed successfully.", "createdOn": s.created_on}
        if o.get("stats"):
            body["stats"] = o["stats"]
        body.update(base)
        return 200, body, {"Link": links}

    def _links(self, s, n, cur):
        def u(p):
            return "</api/v2/statements/%s?requestId=%s&partition=%d>" % (s.handle, s.request_id, p)
        out = ['%s; rel="first"' % u(0)]
        if cur > 0:
            out.append('%s; rel="prev"' % u(cur - 1))
        if cur + 1 < n:
            out.append('%s; rel="next"' % u(cur + 1))
        out.append('%s; rel="last"' % u(n - 1))
        return ",".join(out)


def _result_outcome(res):
    return {"kind": "result", "columns": res.columns, "rows": res.rows, "stats": res.stats}


class _Cancelled(Exception):
    pass


class _TimedOut(Exception):
    pass
