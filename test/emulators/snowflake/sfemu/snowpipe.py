"""Snowpipe REST API: insertFiles, insertReport, loadHistoryScan.

Documented shapes ("Snowpipe REST API",
https://docs.snowflake.com/en/user-guide/data-load-snowpipe-rest-apis):

  POST /v1/data/pipes/<db.schema.pipe>/insertFiles?requestId=<uuid>
       {"files": [{"path": "..."}]}  (at most 5000)
       -> {"requestId": ..., "responseCode": "SUCCESS"}
  GET  /v1/data/pipes/<pipe>/insertReport?requestId=&beginMark=
       -> {"pipe", "completeResult": true, "nextBeginMark", "files": [entry],
           "statistics": {"activeFilesCount"}}   (events kept ~10 minutes)
  GET  /v1/data/pipes/<pipe>/loadHistoryScan?startTimeInclusive=&endTimeExclusive=
       -> {"pipe", "completeResult": true, "startTimeInclusive",
           "endTimeExclusive", "rangeStartTime", "rangeEndTime", "files": [entry]}

entry: {"path", "stageLocation", "fileSize", "timeReceived", "lastInsertTime",
        "rowsInserted", "rowsParsed", "errorsSeen", "errorLimit", "firstError",
        "firstErrorLineNum", "firstErrorCharacterPos", "firstErrorColumnName",
        "systemError", "complete", "status"}  status: LOADED | LOAD_FAILED |
        PARTIALLY_LOADED (LOAD_IN_PROGRESS entries are not reported here).

A submitted file is loaded `pipe_delay_ms` after insertFiles by running the
pipe's COPY with FILES = ('<path>'), on a background thread.

Load history ("Load history" in "Introduction to Snowpipe",
https://docs.snowflake.com/en/user-guide/data-load-snowpipe-intro#load-history):
kept per pipe; a path the pipe LOADED or PARTIALLY_LOADED is never loaded
again (even if the file changed), and a path already queued is not queued
twice. The pipe's history is separate from the table's COPY load metadata:
a pipe load leaves the table's load metadata as it was, and a pipe ignores
it (its COPY runs with FORCE = TRUE, then the metadata row is restored).
Emulator choice where the docs are silent: a LOAD_FAILED path may be
submitted and loaded again. History is in memory (lost on restart) and
never expires (real: 14 days); DROP/CREATE OR REPLACE PIPE forgets it.
"""

import datetime
import threading
import time

from .engine import Session
from .errors import SfError
from .sqltok import tokenize


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text):
    t = text.strip().replace("Z", "+00:00")
    d = datetime.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=datetime.timezone.utc)
    return d.timestamp()


def split_pipe_name(name):
    """db.schema.pipe; a part may be "quoted" (with "" escapes)."""
    parts, i, n = [], 0, len(name)
    while i <= n:
        if i < n and name[i] == '"':
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise ValueError("unterminated quote")
                if name[j] == '"':
                    if j + 1 < n and name[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    j += 1
                    break
                buf.append(name[j])
                j += 1
            parts.append(("q", "".join(buf)))
            i = j
        else:
            j = name.find(".", i)
            j = n if j < 0 else j
            parts.append(("u", name[i:j]))
            i = j
        if i < n and name[i] != ".":
            raise ValueError("bad pipe name")
        i += 1
    if len(parts) != 3 or any(p[1] == "" for p in parts):
        raise ValueError("pipe name must be db.schema.pipe")
    return parts


class Snowpipe:
    def __init__(self, engine, catalog, pipe_delay_ms=1000, report_retention_s=600):
        self.engine = engine
        self.cat = catalog
        self.pipe_delay_ms = pipe_delay_ms
        self.report_retention_s = report_retention_s
        self.suppress_reports = False     # admin: insertReport shows nothing
        self.lock = threading.Lock()
        self.queue = []          # [due, pipe_key, path, received, user, account]
        self.events = []         # (seq, pipe_key, entry)
        self.history = {}        # pipe_key -> {path: entry}
        self.seq = 0
        self.report_requests = []   # the last 200 insertReport calls: pipe, beginMark, answer
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def reset(self):
        with self.lock:
            self.queue, self.events, self.history = [], [], {}
            self.report_requests = []
            self.suppress_reports = False

    # -- names --------------------------------------------------------------
    def resolve(self, name):
        """The pipe's catalog fqn and definition; quoted parts exact, unquoted
        parts exact or upper-case."""
        parts = split_pipe_name(name)
        cands = [[]]
        for kind, v in parts:
            opts = [v] if kind == "q" or v == v.upper() else [v, v.upper()]
            cands = [c + [o] for c in cands for o in opts]
        for c in cands:
            obj = self.cat.get("PIPE", tuple(c))
            if obj:
                return tuple(c), obj
        return None, None

    def key(self, fqn, obj):
        return (tuple(fqn), obj["object_id"])

    # -- insertFiles ----------------------------------------------------------
    def insert_files(self, name, doc, user, account):
        fqn, obj = self.resolve(name)
        if not obj:
            raise SfError("Specified object does not exist or not authorized. Pipe not found",
                          "390404", "02000", 404)
        files = doc.get("files") if isinstance(doc, dict) else None
        if not isinstance(files, list) or not files or len(files) > 5000 or \
                not all(isinstance(f, dict) and isinstance(f.get("path"), str) for f in files):
            raise SfError("Invalid request: files must be a list of 1 to 5000 {\"path\": ...}",
                          "390142", "22000", 400)
        k = self.key(fqn, obj)
        now = time.time()
        with self.lock:
            hist = self.history.setdefault(k, {})
            queued = {q[2] for q in self.queue if q[1] == k}
            for f in files:
                p = f["path"].lstrip("/")
                h = hist.get(p)
                if h and h["status"] in ("LOADED", "PARTIALLY_LOADED"):
                    continue          # the pipe's load history: never twice
                if p in queued:
                    continue
                queued.add(p)
                self.queue.append([now + self.pipe_delay_ms / 1000.0, k, p, now, user, account])
        return {"requestId": None, "responseCode": "SUCCESS"}

    # -- loading ------------------------------------------------------------
    def _run(self):
        while not self.stop.wait(0.05):
            now = time.time()
            with self.lock:
                due = [q for q in self.queue if q[0] <= now]
                self.queue = [q for q in self.queue if q[0] > now]
            for q in due:
                try:
                    self._load(*q[1:])
                except Exception:  # never kill the thread
                    import traceback
                    traceback.print_exc()

    def _load(self, k, path, received, user, account):
        fqn, object_id = k
        obj = self.cat.get("PIPE", fqn)
        entry = {"path": path, "stageLocation": None, "fileSize": None,
                 "timeReceived": iso(received), "rowsInserted": 0, "rowsParsed": 0,
                 "errorsSeen": 0, "errorLimit": 1, "firstError": None,
                 "firstErrorLineNum": None, "firstErrorCharacterPos": None,
                 "firstErrorColumnName": None, "systemError": None, "complete": True,
                 "status": "LOAD_FAILED"}
        if not obj or obj["object_id"] != object_id:
            entry["systemError"] = "Pipe was dropped."
        else:
            sql = obj["copy_statement"].rstrip().rstrip(";")
            sql += " FILES = ('%s') FORCE = TRUE" % path.replace("'", "''")
            session = Session(user=user, account=account, database=fqn[0], schema=fqn[1])
            # Snowpipe loads with serverless compute (no warehouse) and the pipe's own
            # privileges, checked when the pipe was created (sfemu/account.py).
            session.prepared, session.roles = True, None
            with self.engine.lock:
                tbl = self.cat.get("TABLE", tuple(obj["table"]))
                saved = self._meta_rows(tbl)
                try:
                    res = self.engine.execute(tokenize(sql), sql, session, "pipe-" + str(object_id))
                    cols = [c["name"].lower() for c in res.columns]
                    row = dict(zip(cols, res.rows[0])) if res.rows and "file" in cols else None
                    if row:
                        entry.update({"stageLocation": row["file"][:len(row["file"]) - len(path)],
                                      "status": row["status"],
                                      "rowsParsed": int(row["rows_parsed"] or 0),
                                      "rowsInserted": int(row["rows_loaded"] or 0),
                                      "errorsSeen": int(row["errors_seen"] or 0),
                                      "firstError": row.get("first_error"),
                                      "firstErrorLineNum": _int(row.get("first_error_line")),
                                      "firstErrorCharacterPos": _int(row.get("first_error_character")),
                                      "firstErrorColumnName": row.get("first_error_column_name")})
                    else:
                        entry["systemError"] = "File was not found or not processed."
                except SfError as e:
                    entry["firstError"] = e.message
                    entry["systemError"] = e.message
                finally:
                    self._restore_meta(tbl, saved)
        entry["lastInsertTime"] = iso(time.time())
        entry["_t"] = time.time()
        with self.lock:
            self.seq += 1
            self.events.append((self.seq, k, entry))
            self.history.setdefault(k, {})[path] = entry

    def _meta_rows(self, tbl):
        if not tbl:
            return None
        cur = self.cat.db.execute("SELECT * FROM load_metadata WHERE table_id=?",
                                  (tbl["object_id"],))
        return [tuple(r) for r in cur]

    def _restore_meta(self, tbl, saved):
        """A pipe load leaves the table's COPY load metadata as it was."""
        if saved is None:
            return
        self.cat.db.execute("DELETE FROM load_metadata WHERE table_id=?", (tbl["object_id"],))
        for r in saved:
            self.cat.db.execute("INSERT INTO load_metadata VALUES (%s)" % ", ".join("?" * len(r)), r)

    # -- reports --------------------------------------------------------------
    def _public(self, e):
        return {k: v for k, v in e.items() if not k.startswith("_")}

    def insert_report(self, name, begin_mark):
        fqn, obj = self.resolve(name)
        if not obj:
            raise SfError("Specified object does not exist or not authorized. Pipe not found",
                          "390404", "02000", 404)
        k = self.key(fqn, obj)
        try:
            mark = int(begin_mark) if begin_mark else 0
        except ValueError:
            mark = 0
        cutoff = time.time() - self.report_retention_s
        with self.lock:
            evs = [(s, e) for s, kk, e in self.events if kk == k and s > mark and e["_t"] >= cutoff]
            active = sum(1 for q in self.queue if q[1] == k)
            last = max([s for s, kk, _ in self.events if kk == k] + [mark])
        files = [] if self.suppress_reports else [self._public(e) for _, e in evs[:10000]]
        with self.lock:
            self.report_requests = self.report_requests[-199:] + [
                {"pipe": ".".join(fqn), "begin_mark": begin_mark, "next_begin_mark": str(last),
                 "files": [f["path"] for f in files]}]
        return {"pipe": ".".join(fqn), "completeResult": True, "nextBeginMark": str(last),
                "files": files, "statistics": {"activeFilesCount": active}}

    def load_history_scan(self, name, start, end):
        fqn, obj = self.resolve(name)
        if not obj:
            raise SfError("Specified object does not exist or not authorized. Pipe not found",
                          "390404", "02000", 404)
        if not start:
            raise SfError("startTimeInclusive is required", "390142", "22000", 400)
        try:
            t0 = parse_iso(start)
            t1 = parse_iso(end) if end else time.time()
        except ValueError:
            raise SfError("invalid time", "390142", "22000", 400)
        k = self.key(fqn, obj)
        with self.lock:
            files = [self._public(e) for e in self.history.get(k, {}).values()
                     if t0 <= e["_t"] < t1]
        return {"pipe": ".".join(fqn), "completeResult": True,
                "startTimeInclusive": start, "endTimeExclusive": end or iso(time.time()),
                "rangeStartTime": files[0]["lastInsertTime"] if files else None,
                "rangeEndTime": files[-1]["lastInsertTime"] if files else None,
                "files": files}

    def admin(self):
        with self.lock:
            return {"pipe_delay_ms": self.pipe_delay_ms,
                    "report_retention_s": self.report_retention_s,
                    "suppress_reports": self.suppress_reports,
                    "report_requests": list(self.report_requests),
                    "queued": [{"pipe": ".".join(q[1][0]), "path": q[2]} for q in self.queue],
                    "history": [{"pipe": ".".join(k[0]), "files": [self._public(e) for e in h.values()]}
                                for k, h in self.history.items()]}


def _int(v):
    try:
        return int(v) if v is not None else None
    except ValueError:
        return None
