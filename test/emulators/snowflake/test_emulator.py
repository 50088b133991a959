"""Tests for the Snowflake SQL API v2 emulator.

Run: /usr/bin/python3 -m unittest discover -s test/emulators/snowflake -p 'test_*.py' -v
Each test class starts the emulator as a subprocess on a free loopback port.
"""

import base64
import binascii
import datetime
import gzip
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "snowflake_emulator.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
ACCOUNT = "TESTACCT"


def make_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pub_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def fingerprint(key):
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii")


def make_jwt(key, account=ACCOUNT, user="LOADER", fp_key=None, iat=None, exp=None,
             iss=None, sub=None):
    now = int(time.time())
    iat = now if iat is None else iat
    exp = iat + 3540 if exp is None else exp
    claims = {"iss": iss or "%s.%s.%s" % (account, user, fingerprint(fp_key or key)),
              "sub": sub or "%s.%s" % (account, user), "iat": iat, "exp": exp}
    return jwt.encode(claims, key, algorithm="RS256")


class Emulator:
    """The emulator as a subprocess."""

    def __init__(self, data_dir, extra_args=()):
        self.data_dir = data_dir
        self.extra = list(extra_args)
        self.proc = None
        self.port = None

    def start(self):
        port_file = os.path.join(self.data_dir, "port")
        if os.path.exists(port_file):
            os.remove(port_file)
        self.log = open(os.path.join(self.data_dir, "emulator.log"), "ab")
        self.proc = subprocess.Popen([PYTHON, EMULATOR, "--port", "0", "--port-file", port_file,
                                      "--data-dir", self.data_dir] + self.extra,
                                     stdout=self.log, stderr=self.log)
        deadline = time.time() + 15
        while time.time() < deadline:
            if os.path.exists(port_file):
                with open(port_file) as f:
                    self.port = int(f.read())
                return self
            if self.proc.poll() is not None:
                raise RuntimeError("emulator exited: see %s" % self.log.name)
            time.sleep(0.05)
        raise RuntimeError("emulator did not start")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        self.log.close()


class Resp:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw

    @property
    def json(self):
        data = self.raw
        if self.headers.get("Content-Encoding") == "gzip":
            data = gzip.decompress(data)
        return json.loads(data)


class Client:
    def __init__(self, port, token, token_type="KEYPAIR_JWT", database="DB", schema="PUBLIC"):
        self.port = port
        self.token = token
        self.token_type = token_type
        self.database = database
        self.schema = schema

    def request(self, method, path, body=None, headers=None, token=None):
        h = {"Accept": "application/json", "User-Agent": "sfexport-tests/1.0",
             "Content-Type": "application/json"}
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
            if self.token_type:
                h["X-Snowflake-Authorization-Token-Type"] = self.token_type
        if headers:
            h.update(headers)
        h = {k: v for k, v in h.items() if v is not None}
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     headers=h, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return Resp(r.status, dict(r.headers.items()), r.read())
        except urllib.error.HTTPError as e:
            return Resp(e.code, dict(e.headers.items()), e.read())

    def submit(self, statement, request_id=None, retry=False, is_async=False, bindings=None,
               **fields):
        q = {"requestId": request_id or str(uuid.uuid4())}
        if retry:
            q["retry"] = "true"
        if is_async:
            q["async"] = "true"
        body = {"statement": statement, "database": self.database, "schema": self.schema,
                "warehouse": "WH", "role": "LOADER_ROLE"}
        if bindings:
            body["bindings"] = bindings
        body.update(fields)
        return self.request("POST", "/api/v2/statements?" + urllib.parse.urlencode(q), body)

    def poll(self, handle, partition=None, timeout=20):
        path = "/api/v2/statements/" + handle
        if partition is not None:
            path += "?partition=%d" % partition
        deadline = time.time() + timeout
        while True:
            r = self.request("GET", path)
            if r.status != 202 or time.time() > deadline:
                return r
            time.sleep(0.05)

    def run(self, statement, **kw):
        """Submit and wait; returns the final Resp."""
        r = self.submit(statement, **kw)
        if r.status == 202:
            r = self.poll(r.json["statementHandle"])
        return r

    def ok(self, statement, **kw):
        r = self.run(statement, **kw)
        if r.status != 200:
            raise AssertionError("%s -> %d %s" % (statement, r.status, r.raw[:500]))
        return r.json

    def rows(self, statement, **kw):
        return self.ok(statement, **kw)["data"]

    def admin(self, method, name, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d/_emulator/%s" % (self.port, name),
                                     data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())


class EmulatorTestCase(unittest.TestCase):
    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sfemu-test-")
        cls.key = make_key()
        cls.key2 = make_key()
        with open(os.path.join(cls.tmp, "loader.pem"), "wb") as f:
            f.write(pub_pem(cls.key))
        cls.data_dir = os.path.join(cls.tmp, "data")
        os.makedirs(cls.data_dir)
        cls.stage_dir = os.path.join(cls.tmp, "stage")
        os.makedirs(cls.stage_dir)
        cls.emu = Emulator(cls.data_dir, ["--account", ACCOUNT, "--user",
                                          "LOADER=" + os.path.join(cls.tmp, "loader.pem")]
                           + list(cls.extra_args(cls) if callable(cls.extra_args)
                                  else cls.extra_args)).start()
        cls.client = Client(cls.emu.port, make_jwt(cls.key))

    @classmethod
    def tearDownClass(cls):
        cls.emu.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.client.admin("POST", "reset")
        self.client.admin("POST", "config", {"partition_rows": 10000, "exec_delay_ms": 0,
                                             "sync_wait_ms": 45000})
        for fn in os.listdir(self.stage_dir):
            p = os.path.join(self.stage_dir, fn)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)

    # helpers
    def write(self, name, data):
        path = os.path.join(self.stage_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if isinstance(data, str):
            data = data.encode("utf-8")
        with open(path, "wb") as f:
            f.write(data)
        return path

    def stage(self, fmt="TYPE = CSV", name="ST"):
        self.client.ok("CREATE OR REPLACE STAGE %s URL = 'file://%s/' FILE_FORMAT = (%s)"
                       % (name, self.stage_dir, fmt))

    def copy(self, table, files, extra="", stage="ST"):
        flist = ", ".join("'%s'" % f for f in files)
        return self.client.run("COPY INTO %s FROM @%s FILES = (%s) %s" % (table, stage, flist, extra))

    def copy_rows(self, table, files, extra="", stage="ST"):
        r = self.copy(table, files, extra, stage)
        self.assertEqual(r.status, 200, r.raw[:600])
        body = r.json
        names = [c["name"] for c in body["resultSetMetaData"]["rowType"]]
        return [dict(zip(names, row)) for row in body["data"]]


# ---------------------------------------------------------------------------

class AuthTests(EmulatorTestCase):
    def test_valid_jwt_accepted(self):
        body = self.client.ok("SELECT CURRENT_USER(), CURRENT_ACCOUNT()")
        self.assertEqual(body["data"], [["LOADER", ACCOUNT]])

    def assert401(self, token, token_type="KEYPAIR_JWT", code="390144"):
        r = Client(self.emu.port, token, token_type).submit("SELECT 1")
        self.assertEqual(r.status, 401, r.raw)
        self.assertEqual(r.json["code"], code)
        self.assertIn("message", r.json)
        if code == "390144":
            self.assertTrue(r.json["message"].startswith("JWT token is invalid."))

    def test_wrong_key(self):
        # Claims name the registered key's fingerprint but the signature is by another key.
        self.assert401(make_jwt(self.key2, fp_key=self.key))

    def test_wrong_fingerprint(self):
        # Signed by the registered key, but iss carries another key's fingerprint.
        self.assert401(make_jwt(self.key, fp_key=self.key2))

    def test_expired(self):
        now = int(time.time())
        self.assert401(make_jwt(self.key, iat=now - 600, exp=now - 300))

    def test_older_than_one_hour(self):
        now = int(time.time())
        self.assert401(make_jwt(self.key, iat=now - 3700, exp=now + 600))

    def test_lower_case_claims(self):
        fp = fingerprint(self.key)
        self.assert401(make_jwt(self.key, iss="testacct.loader." + fp, sub="testacct.loader"))
        self.assert401(make_jwt(self.key, iss="TESTACCT.loader." + fp, sub="TESTACCT.loader"))

    def test_sub_mismatch_and_account_mismatch(self):
        fp = fingerprint(self.key)
        self.assert401(make_jwt(self.key, iss="TESTACCT.LOADER." + fp, sub="TESTACCT.OTHER"))
        self.assert401(make_jwt(self.key, account="OTHERACCT"))

    def test_unknown_user_and_garbage(self):
        self.assert401(make_jwt(self.key, user="NOBODY"))
        self.assert401("not.a.jwt")
        r = Client(self.emu.port, None).submit("SELECT 1")
        self.assertEqual(r.status, 401)

    def test_second_key_slot(self):
        r = self.client.admin("POST", "users", {"name": "loader", "slot": 2,
                                                "public_key_pem": pub_pem(self.key2).decode()})
        self.assertEqual(r["fingerprints"], [fingerprint(self.key2)])
        c2 = Client(self.emu.port, make_jwt(self.key2))
        self.assertEqual(c2.rows("SELECT CURRENT_USER()"), [["LOADER"]])
        # the first key keeps working (key rotation)
        self.assertEqual(self.client.rows("SELECT 1"), [["1"]])

    def test_oauth_and_pat_tokens(self):
        self.client.admin("POST", "users", {"name": "APP", "token": "oauth-secret-1",
                                            "token_type": "OAUTH"})
        self.client.admin("POST", "users", {"name": "APP", "token": "pat-secret-1",
                                            "token_type": "PROGRAMMATIC_ACCESS_TOKEN"})
        self.assertEqual(Client(self.emu.port, "oauth-secret-1", "OAUTH")
                         .rows("SELECT CURRENT_USER()"), [["APP"]])
        self.assertEqual(Client(self.emu.port, "pat-secret-1", "PROGRAMMATIC_ACCESS_TOKEN")
                         .rows("SELECT CURRENT_USER()"), [["APP"]])
        self.assert401("pat-secret-1", "OAUTH", code="390303")
        self.assert401("wrong", "OAUTH", code="390303")

    def test_required_headers(self):
        r = self.client.request("POST", "/api/v2/statements", {"statement": "SELECT 1"},
                                headers={"Accept": None})
        self.assertEqual(r.status, 406)
        r = self.client.request("POST", "/api/v2/statements", {"statement": "SELECT 1"},
                                headers={"User-Agent": ""})
        self.assertEqual(r.status, 400)

    def test_token_never_logged(self):
        self.client.ok("SELECT 1")
        with open(os.path.join(self.data_dir, "emulator.log"), "rb") as f:
            log = f.read()
        self.assertNotIn(self.client.token.encode(), log)
        self.assertNotIn(b"Bearer", log)


class ApiTests(EmulatorTestCase):
    def test_result_set_shape(self):
        body = self.client.ok("SELECT 1")
        for k in ("resultSetMetaData", "data", "code", "statementHandle", "sqlState", "message",
                  "createdOn", "statementStatusUrl"):
            self.assertIn(k, body)
        md = body["resultSetMetaData"]
        self.assertEqual(md["numRows"], 1)
        self.assertEqual(md["format"], "jsonv2")
        self.assertEqual(md["partitionInfo"][0]["rowCount"], 1)
        self.assertEqual(md["rowType"][0]["type"], "fixed")
        self.assertEqual(body["code"], "090001")
        self.assertEqual(body["sqlState"], "00000")
        self.assertTrue(body["statementStatusUrl"].startswith("/api/v2/statements/"
                                                              + body["statementHandle"]))
        # GET the handle again
        again = self.client.poll(body["statementHandle"])
        self.assertEqual(again.status, 200)
        self.assertEqual(again.json["data"], [["1"]])

    def test_current_functions_any_order(self):
        body = self.client.ok("select current_schema(), current_warehouse(), current_role(), "
                              "current_database(), current_version(), current_account()")
        row = body["data"][0]
        self.assertEqual(row[:4], ["PUBLIC", "WH", "LOADER_ROLE", "DB"])
        self.assertTrue(row[4])
        self.assertEqual(row[5], ACCOUNT)
        names = [c["name"] for c in body["resultSetMetaData"]["rowType"]]
        self.assertEqual(names[0], "CURRENT_SCHEMA()")

    def test_async_202_then_poll(self):
        self.client.admin("POST", "faults", {"action": "202", "delay_ms": 400,
                                             "statement": "^SELECT 42"})
        r = self.client.submit("SELECT 42")
        self.assertEqual(r.status, 202)
        self.assertEqual(r.json["code"], "333334")
        h = r.json["statementHandle"]
        self.assertEqual(r.json["statementStatusUrl"].split("?")[0], "/api/v2/statements/" + h)
        r2 = self.client.request("GET", "/api/v2/statements/" + h)
        self.assertEqual(r2.status, 202)
        final = self.client.poll(h)
        self.assertEqual(final.status, 200)
        self.assertEqual(final.json["data"], [["42"]])

    def test_async_true(self):
        r = self.client.submit("SELECT 7", is_async=True)
        self.assertEqual(r.status, 202)
        self.assertEqual(self.client.poll(r.json["statementHandle"]).json["data"], [["7"]])

    def test_long_statement_answers_202_without_async(self):
        self.client.admin("POST", "config", {"sync_wait_ms": 200, "exec_delay_ms": 700})
        r = self.client.submit("SELECT 1")
        self.assertEqual(r.status, 202)
        self.assertEqual(self.client.poll(r.json["statementHandle"]).status, 200)

    def test_timeout_408(self):
        self.client.admin("POST", "config", {"exec_delay_ms": 3000})
        r = self.client.submit("SELECT 1", timeout=1)
        self.assertEqual(r.status, 408, r.raw)
        self.assertEqual(r.json["code"], "000630")
        self.assertEqual(r.json["sqlState"], "57014")
        g = self.client.request("GET", "/api/v2/statements/" + r.json["statementHandle"])
        self.assertEqual(g.status, 422)
        self.assertEqual(g.json["code"], "000630")

    def test_cancel(self):
        self.client.admin("POST", "config", {"exec_delay_ms": 5000})
        r = self.client.submit("CREATE TABLE never (a INT)", is_async=True)
        h = r.json["statementHandle"]
        c = self.client.request("POST", "/api/v2/statements/%s/cancel" % h, {})
        self.assertEqual(c.status, 200, c.raw)
        self.assertEqual(c.json["statementHandle"], h)
        g = self.client.request("GET", "/api/v2/statements/" + h)
        self.assertEqual(g.status, 422)
        self.assertEqual(g.json["code"], "000604")
        self.client.admin("POST", "config", {"exec_delay_ms": 0})
        r = self.client.run("SELECT COUNT(*) FROM never")
        self.assertEqual(r.status, 422)

    def test_422_shape(self):
        r = self.client.submit("SELEC 1")
        self.assertEqual(r.status, 422)
        b = r.json
        self.assertEqual(b["code"], "001003")
        self.assertEqual(b["sqlState"], "42000")
        self.assertIn("SQL compilation error", b["message"])
        for k in ("statementHandle", "statementStatusUrl", "createdOn"):
            self.assertIn(k, b)
        g = self.client.request("GET", "/api/v2/statements/" + b["statementHandle"])
        self.assertEqual(g.status, 422)
        self.assertEqual(g.json["code"], "001003")

    def test_unknown_handle(self):
        r = self.client.request("GET", "/api/v2/statements/01000000-0000-0000-0000-000000000000")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json["code"], "000709")

    def test_unsupported_statements(self):
        for s in ("USE DATABASE X", "BEGIN", "COMMIT", "ROLLBACK", "ALTER SESSION SET TIMEZONE='UTC'",
                  "PUT file:///tmp/x @st", "GET @st file:///tmp", "CREATE TEMPORARY TABLE t (a INT)"):
            r = self.client.run(s)
            self.assertEqual(r.status, 422, s)
            self.assertIn("statementHandle", r.json)

    def test_missing_database(self):
        c = Client(self.emu.port, self.client.token, database=None, schema=None)
        r = c.run("CREATE TABLE t (a INT)", database=None, schema=None)
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json["code"], "090105")

    def test_multi_statement(self):
        r = self.client.run("SELECT 1; SELECT 2")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json["code"], "000008")
        r = self.client.run("SELECT 1; SELECT ?", bindings={"1": {"type": "FIXED", "value": "2"}},
                            parameters={"MULTI_STATEMENT_COUNT": "2"})
        self.assertEqual(r.status, 422)
        body = self.client.ok("CREATE TABLE m (a INT); SELECT COUNT(*) FROM m",
                              parameters={"MULTI_STATEMENT_COUNT": "2"})
        self.assertEqual(body["data"], [["Multiple statements executed successfully."]])
        self.assertEqual(len(body["statementHandles"]), 2)
        second = self.client.poll(body["statementHandles"][1])
        self.assertEqual(second.json["data"], [["0"]])

    def test_bindings(self):
        self.client.ok("CREATE TABLE b (id INT, name VARCHAR)")
        self.write("b.csv", "1,one\n2,two\n3,three\n")
        self.stage()
        self.copy_rows("b", ["b.csv"])
        rows = self.client.rows("SELECT name FROM b WHERE id = ? OR name = ? ORDER BY id",
                                bindings={"1": {"type": "FIXED", "value": "1"},
                                          "2": {"type": "TEXT", "value": "three"}})
        self.assertEqual(rows, [["one"], ["three"]])
        rows = self.client.rows("SELECT name FROM b WHERE id > :1 ORDER BY id DESC",
                                bindings={"1": {"type": "FIXED", "value": "1"}})
        self.assertEqual(rows, [["three"], ["two"]])
        r = self.client.run("SELECT ?")
        self.assertEqual(r.status, 422)
        # bindings are values, never SQL
        rows = self.client.rows("SELECT COUNT(*) FROM b WHERE name = ?",
                                bindings={"1": {"type": "TEXT", "value": "x' OR '1'='1"}})
        self.assertEqual(rows, [["0"]])

    def test_partitions_gzip(self):
        self.client.ok("CREATE TABLE p (id INT, v VARCHAR)")
        self.write("p.csv", "".join("%d,v%d\n" % (i, i) for i in range(25)))
        self.stage()
        self.copy_rows("p", ["p.csv"])
        self.client.admin("POST", "config", {"partition_rows": 10})
        body = self.client.ok("SELECT id, v FROM p ORDER BY id")
        md = body["resultSetMetaData"]
        self.assertEqual(md["numRows"], 25)
        self.assertEqual([pi["rowCount"] for pi in md["partitionInfo"]], [10, 10, 5])
        self.assertEqual(len(body["data"]), 10)
        got = list(body["data"])
        for n in (1, 2):
            r = self.client.request("GET", "/api/v2/statements/%s?partition=%d"
                                    % (body["statementHandle"], n))
            self.assertEqual(r.status, 200)
            self.assertEqual(r.headers.get("Content-Encoding"), "gzip")
            part = json.loads(gzip.decompress(r.raw))
            self.assertEqual(list(part.keys()), ["data"])
            got.extend(part["data"])
        self.assertEqual([int(x[0]) for x in got], list(range(25)))
        r = self.client.request("GET", "/api/v2/statements/%s?partition=3" % body["statementHandle"])
        self.assertEqual(r.status, 422)

    def test_request_id_retry_does_not_reexecute(self):
        self.client.ok("CREATE TABLE r (id INT)")
        self.write("r1.csv", "1\n2\n")
        self.write("r2.csv", "3\n")
        self.stage()
        rid = str(uuid.uuid4())
        stmt = "COPY INTO r FROM @ST FILES = ('r1.csv') FORCE = TRUE"
        first = self.client.run(stmt, request_id=rid)
        self.assertEqual(first.status, 200)
        again = self.client.run(stmt, request_id=rid, retry=True)
        self.assertEqual(again.status, 200)
        self.assertEqual(again.json["statementHandle"], first.json["statementHandle"])
        self.assertEqual(again.json["data"], first.json["data"])
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM r"), [["2"]])
        log = self.client.admin("GET", "statements")["statements"]
        mine = [e for e in log if e["request_id"] == rid]
        self.assertEqual([e["executed"] for e in mine], [True, False])
        self.assertEqual(mine[1]["deduplicated_from"], first.json["statementHandle"])
        # Without retry=true a reused requestId executes again (documented behaviour).
        third = self.client.run(stmt, request_id=rid)
        self.assertNotEqual(third.json["statementHandle"], first.json["statementHandle"])
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM r"), [["4"]])

    def test_retry_after_failure_reexecutes(self):
        rid = str(uuid.uuid4())
        r = self.client.run("SELECT COUNT(*) FROM later", request_id=rid)
        self.assertEqual(r.status, 422)
        self.client.ok("CREATE TABLE later (a INT)")
        r2 = self.client.run("SELECT COUNT(*) FROM later", request_id=rid, retry=True)
        self.assertEqual(r2.status, 200)

    def test_lost_response_then_retry(self):
        self.client.ok("CREATE TABLE lr (id INT)")
        self.write("lr.csv", "1\n2\n3\n")
        self.stage()
        self.client.admin("POST", "faults", {"action": "drop_after", "statement": "^COPY"})
        rid = str(uuid.uuid4())
        stmt = "COPY INTO lr FROM @ST FILES = ('lr.csv')"
        with self.assertRaises((urllib.error.URLError, ConnectionError, OSError)):
            self.client.submit(stmt, request_id=rid)
        r = self.client.run(stmt, request_id=rid, retry=True)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["data"][0][1], "LOADED")
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM lr"), [["3"]])

    def test_faults(self):
        self.client.admin("POST", "faults", [{"action": "429"}, {"action": "503"},
                                             {"action": "504", "path": "^/api/v2/statements"}])
        r = self.client.submit("SELECT 1")
        self.assertEqual(r.status, 429)
        self.assertEqual(r.json["code"], "390505")
        self.assertEqual(self.client.submit("SELECT 1").status, 503)
        self.assertEqual(self.client.submit("SELECT 1").status, 504)
        self.assertEqual(self.client.submit("SELECT 1").status, 200)
        self.client.admin("POST", "faults", {"action": "drop", "count": 2})
        for _ in range(2):
            with self.assertRaises((urllib.error.URLError, ConnectionError, OSError)):
                self.client.submit("SELECT 1")
        self.assertEqual(self.client.submit("SELECT 1").status, 200)
        self.client.admin("POST", "faults", {"action": "delay", "delay_ms": 300})
        t0 = time.time()
        self.assertEqual(self.client.submit("SELECT 1").status, 200)
        self.assertGreaterEqual(time.time() - t0, 0.3)
        self.client.admin("POST", "faults", {"action": "422", "statement": "COPY",
                                             "code": "100123", "message": "boom"})
        self.assertEqual(self.client.submit("SELECT 1").status, 200)
        self.client.admin("POST", "faults", {"action": "401"})
        self.assertEqual(self.client.submit("SELECT 1").status, 401)
        self.assertEqual(len(self.client.admin("GET", "faults")["faults"]), 1)
        self.client.admin("DELETE", "faults")
        self.assertEqual(self.client.admin("GET", "faults")["faults"], [])

    def test_nullable_false(self):
        r = self.client.request("POST", "/api/v2/statements?nullable=false",
                                {"statement": "SELECT NULL"})
        self.assertEqual(r.json["data"], [["null"]])


if __name__ == "__main__":
    unittest.main()
