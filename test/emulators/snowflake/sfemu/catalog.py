"""SQLite persistence: catalog objects, table rows, load metadata, load
history, statements, and the emulator's clock.

One file, <data-dir>/snowflake.db, so state survives an emulator restart.
All access goes through one connection guarded by the engine's lock.

The clock (now()) is the wall clock plus an offset a test sets with
POST /_emulator/clock, so that a test can let 64 days pass: load metadata,
a staged file's LAST_MODIFIED and the load history are judged by it.  A
file's LAST_MODIFIED on that clock is its store's time plus the offset in
force when it was written (clock_log keeps when each offset began), so a
file staged after the jump is new, one staged before it is old.
"""

import json
import os
import sqlite3
import time

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
  kind TEXT NOT NULL, db TEXT NOT NULL, schema TEXT NOT NULL, name TEXT NOT NULL,
  object_id INTEGER NOT NULL, definition TEXT NOT NULL, created_on REAL NOT NULL,
  PRIMARY KEY (kind, db, schema, name));
CREATE TABLE IF NOT EXISTS load_metadata (
  table_id INTEGER NOT NULL, file TEXT NOT NULL, etag TEXT, status TEXT,
  rows_parsed INTEGER, rows_loaded INTEGER, errors_seen INTEGER, first_error TEXT,
  statement_handle TEXT, loaded_at REAL, PRIMARY KEY (table_id, file));
CREATE TABLE IF NOT EXISTS statement_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, handle TEXT, parent_handle TEXT,
  request_id TEXT, retry INTEGER, user TEXT, statement TEXT, bindings TEXT,
  database TEXT, schema TEXT, warehouse TEXT, role TEXT, executed INTEGER,
  deduplicated_from TEXT, status TEXT, http_status INTEGER, code TEXT, message TEXT,
  submitted_at REAL, finished_at REAL);
CREATE TABLE IF NOT EXISTS statements (
  handle TEXT PRIMARY KEY, request_id TEXT, user TEXT, status TEXT NOT NULL,
  outcome TEXT, created_on INTEGER);
CREATE INDEX IF NOT EXISTS statements_request ON statements (request_id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS clock_log (real_at REAL NOT NULL, offset_s INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS table_first_load (
  table_id INTEGER PRIMARY KEY, loaded_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS load_history (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, table_id INTEGER NOT NULL, catalog_name TEXT,
  schema_name TEXT, table_name TEXT, file_name TEXT, last_load_time REAL, status TEXT,
  row_count INTEGER, row_parsed INTEGER, first_error_message TEXT,
  first_error_line_number INTEGER, first_error_character_position INTEGER,
  first_error_col_name TEXT, error_count INTEGER, error_limit INTEGER);
"""


class Catalog:
    def __init__(self, data_dir, recover=True):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, "snowflake.db")
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                  timeout=60)
        self.db.execute("PRAGMA busy_timeout=60000")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._txn_stack = []
        self._savepoints = 0
        self.reset_tables = []   # tables of other modules that reset() empties too
        if not recover:
            return
        # Statements that were running when the emulator stopped never finish.
        self.db.execute("UPDATE statements SET status='failed', outcome=? WHERE status='running'",
                        (json.dumps({"http_status": 422, "code": "000604", "sqlState": "57014",
                                     "message": "SQL execution canceled"}),))

    # -- transactions -------------------------------------------------------
    # begin() inside an open transaction (a statement inside an explicit
    # transaction, sfemu/txn.py) opens a savepoint, so that commit() / rollback()
    # end only that statement's changes.
    def begin(self):
        if self.db.in_transaction:
            self._savepoints += 1
            name = "sfemu_%d" % self._savepoints
            self.db.execute("SAVEPOINT " + name)
            self._txn_stack.append(name)
        else:
            self.db.execute("BEGIN IMMEDIATE")
            self._txn_stack = [None]

    def commit(self):
        name = self._txn_stack.pop() if self._txn_stack else None
        self.db.execute("RELEASE " + name if name else "COMMIT")

    def rollback(self):
        name = self._txn_stack.pop() if self._txn_stack else None
        try:
            if name:
                self.db.execute("ROLLBACK TO " + name)
                self.db.execute("RELEASE " + name)
            else:
                self.db.execute("ROLLBACK")
        except sqlite3.OperationalError:
            pass

    def next_id(self, name="object"):
        cur = self.db.execute("SELECT value FROM counters WHERE name=?", (name,))
        row = cur.fetchone()
        value = (row[0] if row else 0) + 1
        self.db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES (?, ?)", (name, value))
        return value

    # -- objects ------------------------------------------------------------
    def get(self, kind, fqn):
        cur = self.db.execute("SELECT object_id, definition, created_on FROM objects "
                              "WHERE kind=? AND db=? AND schema=? AND name=?", (kind,) + tuple(fqn))
        row = cur.fetchone()
        if not row:
            return None
        d = json.loads(row[1])
        d["object_id"] = row[0]
        d["created_on"] = row[2]
        d["fqn"] = list(fqn)
        return d

    def put(self, kind, fqn, definition, object_id=None):
        if object_id is None:
            object_id = self.next_id()
        d = {k: v for k, v in definition.items() if k not in ("object_id", "created_on", "fqn")}
        self.db.execute("INSERT OR REPLACE INTO objects (kind, db, schema, name, object_id, "
                        "definition, created_on) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (kind,) + tuple(fqn) + (object_id, json.dumps(d), time.time()))
        return object_id

    def delete(self, kind, fqn):
        self.db.execute("DELETE FROM objects WHERE kind=? AND db=? AND schema=? AND name=?",
                        (kind,) + tuple(fqn))

    def list_objects(self, kind=None):
        q = "SELECT kind, db, schema, name, object_id, definition, created_on FROM objects"
        args = ()
        if kind:
            q += " WHERE kind=?"
            args = (kind,)
        out = []
        for k, db, sc, name, oid, d, created in self.db.execute(q + " ORDER BY kind, db, schema, name", args):
            item = json.loads(d)
            item.update(kind=k, fqn=[db, sc, name], object_id=oid, created_on=created)
            out.append(item)
        return out

    # -- data tables --------------------------------------------------------
    @staticmethod
    def data_table(object_id):
        return "data_%d" % object_id

    def create_data_table(self, object_id, sqlcols):
        cols = ", ".join('"%s" TEXT' % c for c in sqlcols)
        self.db.execute('CREATE TABLE IF NOT EXISTS "%s" (%s%s__file TEXT, __line INTEGER, '
                        '__handle TEXT)' % (self.data_table(object_id), cols, ", " if cols else ""))

    def add_data_column(self, object_id, sqlcol):
        self.db.execute('ALTER TABLE "%s" ADD COLUMN "%s" TEXT' % (self.data_table(object_id), sqlcol))

    def drop_data_table(self, object_id):
        self.db.execute('DROP TABLE IF EXISTS "%s"' % self.data_table(object_id))
        self.db.execute("DELETE FROM load_metadata WHERE table_id=?", (object_id,))
        self.db.execute("DELETE FROM table_first_load WHERE table_id=?", (object_id,))

    def truncate_data_table(self, object_id):
        self.db.execute('DELETE FROM "%s"' % self.data_table(object_id))
        # TRUNCATE TABLE also deletes the table's load metadata.
        self.db.execute("DELETE FROM load_metadata WHERE table_id=?", (object_id,))
        self.db.execute("DELETE FROM table_first_load WHERE table_id=?", (object_id,))

    def insert_rows(self, object_id, sqlcols, rows):
        """rows: iterable of (values tuple aligned with sqlcols, file, line, handle)."""
        cols = ", ".join('"%s"' % c for c in sqlcols)
        ph = ", ".join("?" for _ in sqlcols)
        sql = 'INSERT INTO "%s" (%s%s__file, __line, __handle) VALUES (%s%s?, ?, ?)' % (
            self.data_table(object_id), cols, ", " if cols else "", ph, ", " if ph else "")
        self.db.executemany(sql, (tuple(v) + (f, ln, h) for v, f, ln, h in rows))

    def scan(self, object_id, sqlcols):
        cols = ", ".join('"%s"' % c for c in sqlcols) or "1"
        return self.db.execute('SELECT %s FROM "%s" ORDER BY rowid' % (cols, self.data_table(object_id)))

    def count(self, object_id):
        return self.db.execute('SELECT COUNT(*) FROM "%s"' % self.data_table(object_id)).fetchone()[0]

    # -- load metadata ------------------------------------------------------
    def load_meta_get(self, table_id, file):
        cur = self.db.execute("SELECT etag, status, loaded_at FROM load_metadata "
                              "WHERE table_id=? AND file=?", (table_id, file))
        return cur.fetchone()

    def load_meta_put(self, table_id, file, etag, status, parsed, loaded, errors, first_error, handle):
        self.db.execute("INSERT OR REPLACE INTO load_metadata (table_id, file, etag, status, "
                        "rows_parsed, rows_loaded, errors_seen, first_error, statement_handle, "
                        "loaded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (table_id, file, etag, status, parsed, loaded, errors, first_error,
                         handle, self.now()))

    def load_meta_list(self, table_id):
        cur = self.db.execute("SELECT file, etag, status, rows_parsed, rows_loaded, errors_seen, "
                              "first_error, statement_handle, loaded_at FROM load_metadata "
                              "WHERE table_id=? ORDER BY loaded_at, file", (table_id,))
        keys = ["file", "etag", "status", "rows_parsed", "rows_loaded", "errors_seen",
                "first_error", "statement_handle", "loaded_at"]
        return [dict(zip(keys, r)) for r in cur]

    def first_load_get(self, table_id):
        """When data was first loaded into the table (the "initial set of
        data" of "Loading older files"), or None."""
        row = self.db.execute("SELECT loaded_at FROM table_first_load WHERE table_id=?",
                              (table_id,)).fetchone()
        return row[0] if row else None

    def first_load_put(self, table_id):
        self.db.execute("INSERT OR IGNORE INTO table_first_load (table_id, loaded_at) "
                        "VALUES (?, ?)", (table_id, self.now()))

    def age_load_metadata(self, table_id, file, seconds):
        """Test hook: make one file's load metadata (and the table's first
        load) older by seconds.  Returns the number of files aged."""
        q = "UPDATE load_metadata SET loaded_at = loaded_at - ? WHERE table_id=?"
        args = [seconds, table_id]
        if file:
            q += " AND file=?"
            args.append(file)
        n = self.db.execute(q, args).rowcount
        self.db.execute("UPDATE table_first_load SET loaded_at = loaded_at - ? WHERE table_id=?",
                        (seconds, table_id))
        return n

    # -- load history (SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY) ----------------
    def history_add(self, table_id, fqn, r):
        self.db.execute("INSERT INTO load_history (table_id, catalog_name, schema_name, "
                        "table_name, file_name, last_load_time, status, row_count, row_parsed, "
                        "first_error_message, first_error_line_number, "
                        "first_error_character_position, first_error_col_name, error_count, "
                        "error_limit) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (table_id, fqn[0], fqn[1], fqn[2], r["file"], self.now(),
                         r["status"].replace("_", " "), r["rows_loaded"], r["rows_parsed"],
                         r["first_error"], r["first_error_line"], r["first_error_character"],
                         r["first_error_column_name"], r["errors_seen"], r["error_limit"]))

    def history_list(self, since):
        cur = self.db.execute("SELECT table_id, catalog_name, schema_name, table_name, file_name, "
                              "last_load_time, status, row_count, row_parsed, "
                              "first_error_message, first_error_line_number, "
                              "first_error_character_position, first_error_col_name, "
                              "error_count, error_limit FROM load_history "
                              "WHERE last_load_time >= ? ORDER BY seq", (since,))
        return cur.fetchall()

    # -- the clock ------------------------------------------------------------
    def now(self):
        row = self.db.execute("SELECT value FROM counters WHERE name='clock_offset_s'").fetchone()
        return time.time() + (row[0] if row else 0)

    def clock_offset(self):
        row = self.db.execute("SELECT value FROM counters WHERE name='clock_offset_s'").fetchone()
        return row[0] if row else 0

    def set_clock_offset(self, seconds):
        self.db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES "
                        "('clock_offset_s', ?)", (int(seconds),))
        self.db.execute("INSERT INTO clock_log (real_at, offset_s) VALUES (?, ?)",
                        (time.time(), int(seconds)))

    def clock_at(self, real_ts):
        """A wall-clock time (a file's mtime) on the emulator's clock."""
        row = self.db.execute("SELECT offset_s FROM clock_log WHERE real_at <= ? "
                              "ORDER BY real_at DESC, rowid DESC LIMIT 1", (real_ts,)).fetchone()
        return real_ts + (row[0] if row else 0)

    # -- statements ---------------------------------------------------------
    def log_statement(self, **kw):
        keys = sorted(kw)
        cur = self.db.execute("INSERT INTO statement_log (%s) VALUES (%s)"
                              % (", ".join(keys), ", ".join("?" for _ in keys)),
                              [kw[k] for k in keys])
        return cur.lastrowid

    def update_log(self, seq, **kw):
        keys = sorted(kw)
        self.db.execute("UPDATE statement_log SET %s WHERE seq=?"
                        % ", ".join("%s=?" % k for k in keys), [kw[k] for k in keys] + [seq])

    def read_log(self, since=0, limit=None):
        q = "SELECT * FROM statement_log WHERE seq > ? ORDER BY seq"
        args = [since]
        if limit:
            q += " LIMIT ?"
            args.append(limit)
        cur = self.db.execute(q, args)
        names = [d[0] for d in cur.description]
        out = []
        for r in cur:
            item = dict(zip(names, r))
            if item.get("bindings"):
                item["bindings"] = json.loads(item["bindings"])
            item["retry"] = bool(item["retry"])
            item["executed"] = bool(item["executed"])
            out.append(item)
        return out

    def save_statement(self, handle, request_id, user, status, outcome, created_on):
        self.db.execute("INSERT OR REPLACE INTO statements (handle, request_id, user, status, "
                        "outcome, created_on) VALUES (?, ?, ?, ?, ?, ?)",
                        (handle, request_id, user, status,
                         json.dumps(outcome) if outcome is not None else None, created_on))

    def load_statement(self, handle):
        cur = self.db.execute("SELECT handle, request_id, user, status, outcome, created_on "
                              "FROM statements WHERE handle=?", (handle,))
        r = cur.fetchone()
        if not r:
            return None
        return {"handle": r[0], "request_id": r[1], "user": r[2], "status": r[3],
                "outcome": json.loads(r[4]) if r[4] else None, "created_on": r[5]}

    def latest_for_request(self, request_id, user):
        cur = self.db.execute("SELECT handle FROM statements WHERE request_id=? AND user=? "
                              "ORDER BY rowid DESC LIMIT 1", (request_id, user))
        r = cur.fetchone()
        return r[0] if r else None

    # -- reset --------------------------------------------------------------
    def reset(self):
        for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                       "AND name LIKE 'data_%'").fetchall():
            self.db.execute('DROP TABLE "%s"' % name)
        for t in ["objects", "load_metadata", "statement_log", "statements", "counters",
                  "table_first_load", "load_history", "clock_log"] + self.reset_tables:
            self.db.execute("DELETE FROM %s" % t)
