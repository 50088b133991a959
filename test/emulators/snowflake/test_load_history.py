"""Tests of the emulator's load metadata expiry, LOAD_UNCERTAIN_FILES and
SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY.

What Snowflake documents ("Loading data", "Loading older files";
COPY INTO <table>, LOAD_UNCERTAIN_FILES; "LOAD_HISTORY view"):
  - load metadata expires after 64 days;
  - a file's load status is unknown when its LAST_MODIFIED is older than 64
    days, the table's initial set of data was loaded more than 64 days ago,
    and any successful load of the file is older than 64 days; COPY skips
    such a file by default;
  - LOAD_UNCERTAIN_FILES = TRUE loads it, and still skips files whose
    (unexpired) load metadata says they were loaded; FORCE = TRUE loads
    everything;
  - LOAD_HISTORY has one row per file of every COPY INTO <table> that ran to
    completion (LOADED, LOAD FAILED, PARTIALLY LOADED), for 365 days.

Run: /usr/bin/python3 -m unittest discover -s test/emulators/snowflake -p 'test_*.py' -v
"""

import time
import unittest

from test_server import EmulatorTestCase, make_jwt, pub_pem, Client

DAY = 86400
ZERO = [["Copy executed with 0 files processed."]]


class LoadMetadataExpiryTests(EmulatorTestCase):
    def setUp(self):
        super().setUp()
        self.client.ok("CREATE TABLE t (id INT, name VARCHAR)")
        self.stage("TYPE = CSV")

    def advance(self, days):
        # a file's LAST_MODIFIED is judged by the offset in force at its
        # mtime, and file mtimes come from the kernel's coarse clock (up to a
        # tick behind time.time()): keep writes clear of the jump itself
        time.sleep(0.05)
        doc = self.client.admin("POST", "clock", {"advance_days": days})
        time.sleep(0.05)
        return doc

    def count(self):
        return int(self.client.rows("SELECT COUNT(*) FROM t")[0][0])

    def test_clock_endpoint(self):
        before = self.client.admin("GET", "clock")
        self.assertEqual(before["offset_s"], 0)
        after = self.advance(70)
        self.assertEqual(after["offset_s"], 70 * DAY)
        self.assertGreaterEqual(after["now"] - before["now"], 70 * DAY)
        # reset puts the clock back
        self.client.admin("POST", "reset")
        self.assertEqual(self.client.admin("GET", "clock")["offset_s"], 0)

    def test_uncertain_file_skipped_unless_load_uncertain_files(self):
        self.write("first.csv", "1,a\n")
        self.copy_rows("t", ["first.csv"])          # the table's initial set of data
        self.write("late.csv", "2,b\n")             # staged, never loaded
        self.advance(70)
        # LAST_MODIFIED > 64 days, initial load > 64 days, never loaded: unknown
        r = self.copy("t", ["late.csv"], "ON_ERROR = SKIP_FILE")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["data"], ZERO, "skipped silently, absent from the result")
        self.assertEqual(self.count(), 1)
        res = self.copy_rows("t", ["late.csv"], "ON_ERROR = SKIP_FILE LOAD_UNCERTAIN_FILES = TRUE")
        self.assertEqual([x["status"] for x in res], ["LOADED"])
        self.assertEqual(self.count(), 2)
        # now loaded within 64 days: known again, skipped either way
        self.assertEqual(self.copy("t", ["late.csv"], "LOAD_UNCERTAIN_FILES = TRUE").json["data"],
                         ZERO)
        self.assertEqual(self.copy("t", ["late.csv"]).json["data"], ZERO)
        self.assertEqual(self.count(), 2)

    def test_status_known_cases(self):
        # a table that never got its initial set of data: an old file loads
        self.write("old.csv", "1,a\n")
        self.advance(70)
        self.assertEqual([x["status"] for x in self.copy_rows("t", ["old.csv"])], ["LOADED"])
        # a recent file (LAST_MODIFIED within 64 days) in an old table loads
        self.advance(70)
        self.write("new.csv", "2,b\n")
        self.assertEqual([x["status"] for x in self.copy_rows("t", ["new.csv"])], ["LOADED"])
        self.assertEqual(self.count(), 2)

    def test_failed_file_turns_uncertain(self):
        self.write("first.csv", "1,a\n")
        self.copy_rows("t", ["first.csv"])
        self.write("bad.csv", "x,b\n")
        res = self.copy_rows("t", ["bad.csv"], "ON_ERROR = SKIP_FILE")
        self.assertEqual(res[0]["status"], "LOAD_FAILED")
        self.write("bad.csv", "2,b\n")              # fixed... but LAST_MODIFIED is new
        self.advance(70)
        # fixed 70 days ago: old file, old table, never loaded -> skipped
        self.assertEqual(self.copy("t", ["bad.csv"], "ON_ERROR = SKIP_FILE").json["data"], ZERO)
        self.assertEqual(self.count(), 1)
        res = self.copy_rows("t", ["bad.csv"], "ON_ERROR = SKIP_FILE LOAD_UNCERTAIN_FILES = TRUE")
        self.assertEqual(res[0]["status"], "LOADED")
        self.assertEqual(self.count(), 2)

    def test_expired_metadata_reloads_with_load_uncertain_files(self):
        self.write("a.csv", "1,a\n")
        self.copy_rows("t", ["a.csv"])
        self.advance(10)
        # metadata 10 days old: LOAD_UNCERTAIN_FILES still skips the loaded file
        self.assertEqual(self.copy("t", ["a.csv"], "LOAD_UNCERTAIN_FILES = TRUE").json["data"],
                         ZERO)
        self.advance(60)
        # 70 days: the load is forgotten; default skips, the option loads it again
        self.assertEqual(self.copy("t", ["a.csv"]).json["data"], ZERO)
        self.assertEqual(self.count(), 1)
        res = self.copy_rows("t", ["a.csv"], "LOAD_UNCERTAIN_FILES = TRUE")
        self.assertEqual(res[0]["status"], "LOADED")
        self.assertEqual(self.count(), 2, "expired metadata: the documented duplicate")
        self.assertEqual(self.copy_rows("t", ["a.csv"], "FORCE = TRUE")[0]["status"], "LOADED")
        self.assertEqual(self.count(), 3)

    def test_age_one_file(self):
        self.write("a.csv", "1,a\n")
        self.write("b.csv", "2,b\n")
        self.copy_rows("t", ["a.csv", "b.csv"])
        url_a = "file://%s/a.csv" % self.stage_dir
        aged = self.client.admin("POST", "load_metadata",
                                 {"table": "DB.PUBLIC.T", "file": url_a, "age_s": 70 * DAY})
        self.assertEqual(aged["aged"], 1)
        meta = self.client.admin("GET", "load_metadata?table=DB.PUBLIC.T")["tables"][0]["files"]
        ages = {m["file"].rsplit("/", 1)[1]: m["loaded_at"] for m in meta}
        self.assertGreater(ages["b.csv"] - ages["a.csv"], 69 * DAY)
        # only the aged file's metadata is expired (its LAST_MODIFIED is recent:
        # status known, the file is loaded again, as Snowflake would)
        res = self.copy_rows("t", ["a.csv", "b.csv"])
        self.assertEqual([x["file"].rsplit("/", 1)[1] for x in res], ["a.csv"])


class LoadHistoryTests(EmulatorTestCase):
    COLUMNS = [("TABLE_ID", "fixed"), ("TABLE_NAME", "text"), ("SCHEMA_ID", "fixed"),
               ("SCHEMA_NAME", "text"), ("CATALOG_ID", "fixed"), ("CATALOG_NAME", "text"),
               ("FILE_NAME", "text"), ("LAST_LOAD_TIME", "timestamp_ltz"), ("STATUS", "text"),
               ("ROW_COUNT", "fixed"), ("ROW_PARSED", "fixed"), ("FIRST_ERROR_MESSAGE", "text"),
               ("FIRST_ERROR_LINE_NUMBER", "fixed"), ("FIRST_ERROR_CHARACTER_POSITION", "fixed"),
               ("FIRST_ERROR_COL_NAME", "text"), ("ERROR_COUNT", "fixed"),
               ("ERROR_LIMIT", "fixed")]

    def setUp(self):
        super().setUp()
        self.client.ok("CREATE TABLE t (id INT, name VARCHAR)")
        self.stage("TYPE = CSV")

    def test_rows_and_shape(self):
        self.write("good.csv", "1,a\n2,b\n")
        self.write("bad.csv", "x,c\n")
        self.copy_rows("t", ["good.csv", "bad.csv"], "ON_ERROR = SKIP_FILE")
        # a statement that aborts did not run to completion: no rows
        self.write("worse.csv", "y,d\n")
        self.assertEqual(self.copy("t", ["worse.csv"]).status, 422)
        r = self.client.run("SELECT * FROM SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY"
                            " WHERE TABLE_NAME = 'T' ORDER BY FILE_NAME")
        self.assertEqual(r.status, 200, r.raw)
        cols = [(c["name"], c["type"]) for c in r.json["resultSetMetaData"]["rowType"]]
        self.assertEqual(cols, self.COLUMNS)
        rows = [dict(zip([c[0] for c in cols], x)) for x in r.json["data"]]
        self.assertEqual([(x["FILE_NAME"].rsplit("/", 1)[1], x["STATUS"], x["ROW_COUNT"],
                           x["ROW_PARSED"], x["ERROR_COUNT"]) for x in rows],
                         [("bad.csv", "LOAD FAILED", "0", "1", "1"),
                          ("good.csv", "LOADED", "2", "2", "0")])
        self.assertEqual({(x["CATALOG_NAME"], x["SCHEMA_NAME"]) for x in rows}, {("DB", "PUBLIC")})
        self.assertIsNotNone(rows[0]["FIRST_ERROR_MESSAGE"])
        # filtered the way sfexport asks
        r = self.client.run("SELECT FILE_NAME, STATUS FROM SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY"
                            " WHERE CATALOG_NAME = ? AND SCHEMA_NAME = ? AND TABLE_NAME = ?"
                            " AND FILE_NAME LIKE ?",
                            bindings={"1": {"type": "TEXT", "value": "DB"},
                                      "2": {"type": "TEXT", "value": "PUBLIC"},
                                      "3": {"type": "TEXT", "value": "T"},
                                      "4": {"type": "TEXT", "value": "%good.csv"}})
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual([x[1] for x in r.json["data"]], ["LOADED"])

    def test_365_days(self):
        self.write("a.csv", "1,a\n")
        self.copy_rows("t", ["a.csv"])
        q = "SELECT COUNT(*) FROM SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY"
        self.client.admin("POST", "clock", {"advance_days": 300})
        self.assertEqual(self.client.rows(q), [["1"]], "kept after the load metadata expired")
        self.client.admin("POST", "clock", {"advance_days": 70})
        self.assertEqual(self.client.rows(q), [["0"]])

    def test_access(self):
        self.client.ok("CREATE ROLE LOADER_R")
        self.client.ok("CREATE WAREHOUSE WH")
        self.client.ok("GRANT USAGE ON WAREHOUSE WH TO ROLE LOADER_R")
        self.client.ok("CREATE USER SVC DEFAULT_ROLE = LOADER_R DEFAULT_WAREHOUSE = WH "
                       "RSA_PUBLIC_KEY = '%s'" % "".join(
                           pub_pem(self.key2).decode().strip().splitlines()[1:-1]))
        self.client.ok("GRANT ROLE LOADER_R TO USER SVC")
        svc = Client(self.emu.port, make_jwt(self.key2, user="SVC"))
        q = "SELECT COUNT(*) FROM SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY"
        # the user's default role and warehouse
        r = svc.run(q, role=None, warehouse=None)
        self.assertEqual(r.status, 422, r.raw)
        self.assertEqual(r.json["code"], "002003")
        self.client.ok("GRANT IMPORTED PRIVILEGES ON DATABASE SNOWFLAKE TO ROLE LOADER_R")
        r = svc.run(q, role=None, warehouse=None)
        self.assertEqual(r.status, 200, r.raw)


if __name__ == "__main__":
    unittest.main()
