"""SQLite persistence: catalog objects, table rows, load metadata, statements.

One file, <data-dir>/snowflake.db, so state survives an emulator restart.
All access goes through one connection guarded by the engine's lock.
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

    def truncate_data_table(self, object_id):
        self.db.execute('DELETE FROM "%s"' % self.data_table(object_id))
        # TRUNCATE TABLE also deletes the table's load metadata.
        self.db.execute("DELETE FROM load_metadata WHERE table_id=?", (object_id,))

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
                         handle, time.time()))

    def load_meta_list(self, table_id):
        cur = self.db.execute("SELECT file, etag, status, rows_parsed, rows_loaded, errors_seen, "
                              "first_error, statement_handle, loaded_at FROM load_metadata "
                              "WHERE table_id=? ORDER BY loaded_at, file", (table_id,))
        keys = ["file", "etag", "status", "rows_parsed", "rows_loaded", "errors_seen",
                "first_error", "statement_handle", "loaded_at"]
        return [dict(zip(keys, r)) for r in cur]

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
        for t in ["objects", "load_metadata", "statement_log", "statements", "counters"] + \
                self.reset_tables:
            self.db.execute("DELETE FROM %s" % t)
