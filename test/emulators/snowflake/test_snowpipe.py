"""Tests for the emulator's Snowpipe REST API (sfemu/snowpipe.py).

Run: /usr/bin/python3 -m unittest discover -s test/emulators/snowflake -p 'test_*.py' -v
"""

import datetime
import time
import unittest
import urllib.parse

from test_server import EmulatorTestCase


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SnowpipeTests(EmulatorTestCase):
    extra_args = ("--pipe-delay-ms", "300")

    def setUp(self):
        super().setUp()
        self.client.admin("POST", "snowpipe", {"pipe_delay_ms": 300, "suppress_reports": False})
        self.stage()
        self.client.ok("CREATE TABLE T (A NUMBER, B VARCHAR)")
        self.client.ok("CREATE PIPE DB.PUBLIC.P AS COPY INTO T FROM @ST "
                       "FILE_FORMAT = (TYPE = CSV) ON_ERROR = SKIP_FILE")

    def pipe(self, op, method="GET", body=None, query=None, token=None, name="DB.PUBLIC.P"):
        q = {"requestId": "r1"}
        q.update(query or {})
        return self.client.request(method, "/v1/data/pipes/%s/%s?%s" % (
            urllib.parse.quote(name), op, urllib.parse.urlencode(q)), body, token=token)

    def insert(self, *paths):
        r = self.pipe("insertFiles", "POST", {"files": [{"path": p} for p in paths]})
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["responseCode"], "SUCCESS")
        self.assertEqual(r.json["requestId"], "r1")
        return r.json

    def report_until(self, n, mark=None, timeout=10):
        deadline = time.time() + timeout
        files = []
        while time.time() < deadline:
            r = self.pipe("insertReport", query={"beginMark": mark} if mark else None)
            self.assertEqual(r.status, 200, r.raw)
            files = r.json["files"]
            if len(files) >= n:
                return r.json
            time.sleep(0.1)
        self.fail("only %d report entries" % len(files))

    def count(self):
        return int(self.client.rows("SELECT COUNT(*) FROM T")[0][0])

    def test_insert_report_loaded(self):
        self.write("a.csv", "1,x\n2,y\n")
        self.insert("a.csv")
        self.assertEqual(self.pipe("insertReport").json["files"], [])  # delayed
        rep = self.report_until(1)
        f = rep["files"][0]
        self.assertEqual((f["path"], f["status"], f["rowsParsed"], f["rowsInserted"]),
                         ("a.csv", "LOADED", 2, 2))
        for k in ("stageLocation", "fileSize", "timeReceived", "lastInsertTime", "errorsSeen",
                  "firstError", "complete"):
            self.assertIn(k, f)
        self.assertTrue(rep["completeResult"])
        self.assertEqual(self.count(), 2)
        # nextBeginMark: nothing new after it
        again = self.pipe("insertReport", query={"beginMark": rep["nextBeginMark"]}).json
        self.assertEqual(again["files"], [])

    def test_managed_user_loads_without_warehouse(self):
        """A user made with CREATE USER (sfemu/account.py) submits to a pipe its role
        owns; the load is serverless: no warehouse needed."""
        from test_account import body
        from test_server import make_jwt
        c = self.client
        c.ok("CREATE ROLE R")
        c.ok("CREATE USER SVC DEFAULT_ROLE = R RSA_PUBLIC_KEY = '%s'" % body(self.key2))
        c.ok("GRANT ROLE R TO USER SVC")
        c.ok("GRANT USAGE ON DATABASE DB TO ROLE R")
        c.ok("GRANT USAGE, CREATE PIPE ON SCHEMA DB.PUBLIC TO ROLE R")
        c.ok("GRANT INSERT ON TABLE T TO ROLE R")
        svc = make_jwt(self.key2, user="SVC")

        def run_as_svc(sql):
            r = c.request("POST", "/api/v2/statements", {"statement": sql, "database": "DB",
                                                         "schema": "PUBLIC"}, token=svc)
            deadline = time.time() + 10
            while r.status == 202 and time.time() < deadline:
                time.sleep(0.05)
                r = c.request("GET", "/api/v2/statements/" + r.json["statementHandle"],
                              token=svc)
            return r
        create = ("CREATE PIPE DB.PUBLIC.P2 AS COPY INTO T FROM @ST "
                  "FILE_FORMAT = (TYPE = CSV) ON_ERROR = SKIP_FILE")
        r = run_as_svc(create)
        self.assertEqual(r.status, 422, r.raw)   # no USAGE on the stage yet
        self.assertIn("does not exist or not authorized", r.json["message"])
        c.ok("GRANT USAGE ON STAGE ST TO ROLE R")
        r = run_as_svc(create)
        self.assertEqual(r.status, 200, r.raw)
        self.write("m.csv", "5,m\n")
        r = self.pipe("insertFiles", "POST", {"files": [{"path": "m.csv"}]}, token=svc,
                      name="DB.PUBLIC.P2")
        self.assertEqual(r.status, 200, r.raw)
        deadline = time.time() + 10
        while time.time() < deadline and self.count() < 1:
            time.sleep(0.1)
        self.assertEqual(self.count(), 1)

    def test_resubmitted_file_is_not_loaded_twice(self):
        self.write("a.csv", "1,x\n")
        self.insert("a.csv")
        rep = self.report_until(1)
        self.insert("a.csv")
        self.insert("a.csv", "a.csv")
        time.sleep(1.0)
        self.assertEqual(self.count(), 1)
        more = self.pipe("insertReport", query={"beginMark": rep["nextBeginMark"]}).json
        self.assertEqual(more["files"], [])
        # even when modified (same name): documented Snowpipe rule
        self.write("a.csv", "1,x\n2,z\n")
        self.insert("a.csv")
        time.sleep(1.0)
        self.assertEqual(self.count(), 1)

    def test_pipe_history_is_not_the_tables_load_metadata(self):
        self.write("a.csv", "1,x\n")
        self.copy_rows("T", ["a.csv"])
        self.insert("a.csv")
        self.report_until(1)
        self.assertEqual(self.count(), 2)  # two histories: the caller must not mix them
        # and the pipe load left the table's load metadata alone: COPY still skips
        r = self.copy("T", ["a.csv"])
        self.assertEqual(r.status, 200)
        self.assertEqual(self.count(), 2)

    def test_load_failed_and_history_scan(self):
        t0 = time.time() - 1
        self.write("bad.csv", "1,x\nnot-a-number,y\n")
        self.write("ok.csv", "3,z\n")
        self.insert("bad.csv", "ok.csv")
        rep = self.report_until(2)
        by = {f["path"]: f for f in rep["files"]}
        self.assertEqual(by["bad.csv"]["status"], "LOAD_FAILED")
        self.assertTrue(by["bad.csv"]["firstError"])
        self.assertEqual(by["bad.csv"]["rowsInserted"], 0)
        self.assertEqual(by["ok.csv"]["status"], "LOADED")
        self.assertEqual(self.count(), 1)
        h = self.pipe("loadHistoryScan", query={"startTimeInclusive": iso(t0),
                                                 "endTimeExclusive": iso(time.time() + 2)}).json
        self.assertEqual(sorted(f["path"] for f in h["files"]), ["bad.csv", "ok.csv"])
        h = self.pipe("loadHistoryScan", query={"startTimeInclusive": iso(time.time() + 5)}).json
        self.assertEqual(h["files"], [])
        # a failed file may be submitted again (emulator choice, see snowpipe.py)
        self.write("bad.csv", "1,x\n")
        self.insert("bad.csv")
        self.report_until(1, mark=rep["nextBeginMark"])
        self.assertEqual(self.count(), 2)

    def test_suppressed_reports_still_in_history(self):
        self.client.admin("POST", "snowpipe", {"suppress_reports": True})
        self.write("a.csv", "1,x\n")
        self.insert("a.csv")
        time.sleep(1.0)
        self.assertEqual(self.pipe("insertReport").json["files"], [])
        h = self.pipe("loadHistoryScan", query={"startTimeInclusive": iso(time.time() - 60)}).json
        self.assertEqual([f["status"] for f in h["files"]], ["LOADED"])

    def test_auth_and_errors(self):
        r = self.pipe("insertFiles", "POST", {"files": [{"path": "a.csv"}]}, token="")
        self.assertEqual(r.status, 401)
        r = self.pipe("insertFiles", "POST", {"files": [{"path": "a.csv"}]}, token="x.y.z")
        self.assertEqual(r.status, 401)
        self.assertEqual(r.json["code"], "390144")
        r = self.pipe("insertReport", name="DB.PUBLIC.NOPE")
        self.assertEqual(r.status, 404)
        r = self.pipe("insertFiles", "POST", {"files": []})
        self.assertEqual(r.status, 400)
        # quoted parts are case-sensitive, unquoted ones also match upper case
        self.assertEqual(self.pipe("insertReport", name='db.public."P"').status, 200)
        self.assertEqual(self.pipe("insertReport", name='DB.PUBLIC."p"').status, 404)


if __name__ == "__main__":
    unittest.main()
