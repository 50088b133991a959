"""Tests for the Snowflake SQL API v2 emulator.

Run: /usr/bin/python3 -m unittest discover -s test/emulators/snowflake -p 'test_*.py' -v
Each test class starts the emulator as a subprocess on a free loopback port.
"""

import base64
import binascii
import datetime
import email.utils
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
EMULATOR = os.path.join(HERE, "server.py")
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

    def test_held_submit_found_by_retry_and_cancelled(self):
        """A submit whose answer is still in flight: the same requestId with
        retry=true reports the running statement (not run again); cancel it."""
        import threading
        self.client.admin("POST", "faults", {"action": "hold", "delay_ms": 8000,
                                             "statement": "held-marker"})
        rid = str(uuid.uuid4())
        out = {}

        def first():
            t0 = time.time()
            try:
                out["status"] = self.client.submit("SELECT 'held-marker'", request_id=rid,
                                                   is_async=True).status
            except Exception as e:  # noqa: BLE001
                out["status"] = repr(e)
            out["elapsed"] = time.time() - t0
        th = threading.Thread(target=first)
        th.start()
        time.sleep(0.5)
        again = self.client.submit("SELECT 'held-marker'", request_id=rid, retry=True,
                                   is_async=True)
        self.assertEqual(again.status, 202)
        handle = again.json["statementHandle"]
        r = self.client.request("POST", "/api/v2/statements/%s/cancel" % handle)
        self.assertEqual(r.status, 200)
        th.join(20)
        self.assertLess(out["elapsed"], 6, "the held answer ends with the statement")
        mine = [e for e in self.client.admin("GET", "statements")["statements"]
                if e["request_id"] == rid]
        self.assertEqual([e["executed"] for e in mine], [True, False])
        self.assertEqual(mine[0]["status"], "cancelled")
        self.assertEqual(mine[1]["deduplicated_from"], handle)

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

    def test_retry_after_and_request_log(self):
        self.client.admin("DELETE", "requests")
        self.client.admin("POST", "faults", [{"action": "429", "retry_after": "3"},
                                             {"action": "503", "retry_after": "+4"},
                                             {"action": "504"}])
        r = self.client.submit("SELECT 1")
        self.assertEqual((r.status, r.headers.get("Retry-After")), (429, "3"))
        r = self.client.submit("SELECT 1")
        self.assertEqual(r.status, 503)
        when = email.utils.parsedate_to_datetime(r.headers["Retry-After"]).timestamp()
        self.assertAlmostEqual(when - time.time(), 4, delta=1.5)
        r = self.client.submit("SELECT 1")
        self.assertEqual(r.status, 504)
        self.assertIsNone(r.headers.get("Retry-After"))
        self.assertEqual(self.client.submit("SELECT 1").status, 200)
        reqs = self.client.admin("GET", "requests")["requests"]
        self.assertEqual([q["fault"] for q in reqs], ["429", "503", "504", None])
        self.assertEqual({q["path"] for q in reqs}, {"/api/v2/statements"})
        self.assertTrue(all(a["t"] <= b["t"] for a, b in zip(reqs, reqs[1:])))
        self.assertEqual(self.client.admin("DELETE", "requests")["requests"], [])

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



def zstd_compress(data):
    try:
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    except ImportError:
        return subprocess.run(["zstd", "-c", "-q"], input=data, capture_output=True,
                              check=True).stdout


class CsvTests(EmulatorTestCase):
    """CSV parsing rules of CREATE FILE FORMAT, applied by COPY INTO."""

    def load(self, content, fmt, columns="a VARCHAR, b VARCHAR", name="f.csv", extra=""):
        self.client.ok("CREATE OR REPLACE TABLE t (%s)" % columns)
        self.write(name, content)
        self.stage(fmt)
        res = self.copy_rows("t", [name], extra)
        return res, self.client.rows("SELECT * FROM t")

    def test_quotes_doubled_quotes_newlines(self):
        content = ('"plain","with, comma"\n'
                   '"say ""hi""","multi\nline"\n'
                   'unquoted,"crlf\r\ninside"\r\n')
        res, rows = self.load(content, "TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"'")
        self.assertEqual(res[0]["status"], "LOADED")
        self.assertEqual(res[0]["rows_parsed"], "3")
        self.assertEqual(rows, [["plain", "with, comma"], ['say "hi"', "multi\nline"],
                                ["unquoted", "crlf\r\ninside"]])

    def test_null_vs_empty_string(self):
        content = 'x,\n"",y\n\\N,"\\N"\nNULL,z\n'
        res, rows = self.load(content, "TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"'")
        # ,, -> NULL (EMPTY_FIELD_AS_NULL); "" -> empty string; \N -> NULL (NULL_IF default)
        self.assertEqual(rows, [["x", None], ["", "y"], [None, None], ["NULL", "z"]])
        res, rows = self.load("x,\nNULL,z\n", "TYPE = CSV EMPTY_FIELD_AS_NULL = FALSE "
                              "NULL_IF = ('NULL')")
        self.assertEqual(rows, [["x", ""], [None, "z"]])

    def test_escape_unenclosed_field_default_backslash(self):
        content = "a\\,b,c\\\\d\nC:\\path,x\\\ny\n"
        res, rows = self.load(content, "TYPE = CSV")
        # default ESCAPE_UNENCLOSED_FIELD = '\\': \, is a literal comma, \\ a backslash,
        # \p drops the backslash, and a backslash before the newline escapes it.
        self.assertEqual(rows, [["a,b", "c\\d"], ["C:path", "x\ny"]])

    def test_escape_unenclosed_field_none(self):
        content = "C:\\path,x\\y\n"
        res, rows = self.load(content, "TYPE = CSV ESCAPE_UNENCLOSED_FIELD = NONE")
        self.assertEqual(rows, [["C:\\path", "x\\y"]])

    def test_escape_in_enclosed_fields(self):
        content = '"a\\"b","c"\n'
        res, rows = self.load(content, "TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"' "
                              "ESCAPE = '\\\\'")
        self.assertEqual(rows, [['a"b', "c"]])

    def test_skip_header_trim_delimiters(self):
        content = "h1|h2\nh3|h4\n  a | \"b c\" \n"
        res, rows = self.load(content, "TYPE = CSV FIELD_DELIMITER = '|' SKIP_HEADER = 2 "
                              "TRIM_SPACE = TRUE FIELD_OPTIONALLY_ENCLOSED_BY = '\"'")
        self.assertEqual(rows, [["a", "b c"]])
        res, rows = self.load("1;2#3;4#", "TYPE = CSV FIELD_DELIMITER = ';' "
                              "RECORD_DELIMITER = '#'")
        self.assertEqual(rows, [["1", "2"], ["3", "4"]])
        res, rows = self.load("1\t2\n", "TYPE = CSV FIELD_DELIMITER = '\\t'")
        self.assertEqual(rows, [["1", "2"]])

    def test_column_count_mismatch(self):
        res, rows = self.load("1,2,3\n4,5\n", "TYPE = CSV", extra="ON_ERROR = CONTINUE")
        self.assertEqual(res[0]["status"], "PARTIALLY_LOADED")
        self.assertIn("Number of columns in file (3) does not match", res[0]["first_error"])
        self.assertEqual(res[0]["first_error_line"], "1")
        res, rows = self.load("1,2,3\n4\n", "TYPE = CSV ERROR_ON_COLUMN_COUNT_MISMATCH = FALSE")
        self.assertEqual(rows, [["1", "2"], ["4", None]])

    def test_compression_gzip_zstd(self):
        self.client.ok("CREATE TABLE t (a INT, b VARCHAR)")
        self.write("g.csv.gz", gzip.compress(b"1,gz\n2,gz\n"))
        self.write("z.csv.zst", zstd_compress(b"3,zst\n"))
        self.write("noext", gzip.compress(b"4,magic\n"))
        self.write("plain.csv", b"5,plain\n")
        self.stage("TYPE = CSV")
        res = self.copy_rows("t", ["g.csv.gz", "z.csv.zst", "noext", "plain.csv"])
        self.assertEqual([r["status"] for r in res], ["LOADED"] * 4)
        self.assertEqual(self.client.rows("SELECT a, b FROM t ORDER BY a"),
                         [["1", "gz"], ["2", "gz"], ["3", "zst"], ["4", "magic"], ["5", "plain"]])
        self.write("bad.gz", b"not gzip at all")
        r = self.copy("t", ["bad.gz"], "FILE_FORMAT = (TYPE = CSV COMPRESSION = GZIP)")
        self.assertEqual(r.status, 422)

    def test_encoding_and_bom(self):
        res, rows = self.load("\ufeffa,\u00e9\n".encode("utf-8"), "TYPE = CSV")
        self.assertEqual(rows, [["a", "\u00e9"]])
        res, rows = self.load("a,\u00e9\n".encode("latin-1"), "TYPE = CSV ENCODING = 'ISO88591'")
        self.assertEqual(rows, [["a", "\u00e9"]])
        res, rows = self.load(b"a,\xff\n", "TYPE = CSV", extra="ON_ERROR = CONTINUE")
        self.assertEqual(res[0]["status"], "LOAD_FAILED")
        self.assertIn("Invalid UTF8", res[0]["first_error"])
        res, rows = self.load(b"a,\xff\n", "TYPE = CSV REPLACE_INVALID_CHARACTERS = TRUE")
        self.assertEqual(rows, [["a", "\ufffd"]])

    def test_types(self):
        cols = ("n NUMBER(5,2), i INT, f FLOAT, s VARCHAR(5), bo BOOLEAN, d DATE, tm TIME, "
                "ntz TIMESTAMP_NTZ, ltz TIMESTAMP_LTZ, tz TIMESTAMP_TZ, bi BINARY, v VARIANT, "
                "o OBJECT, ar ARRAY")
        content = ('1.005,42,NaN,abc,yes,2024-02-29,13:45:01.5,2024-02-29 13:45:01.123456789,'
                   '2024-01-01 00:00:00+02:00,2024-01-01 10:00:00.5 -08:00,CAFE,'
                   '"{""k"": [1, 2]}","{""a"": 1}","[1, ""x""]"\n'
                   '-999.994,-7,-inf,,off,1970-01-01,00:00,2024-01-01T00:00:00Z,'
                   '2024-01-01T00:00:00Z,2024-06-01T12:00:00+05:30,,"""str""",,\n')
        res, rows = self.load(content, "TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"'",
                              columns=cols)
        self.assertEqual(res[0]["status"], "LOADED", res)
        r1, r2 = rows
        self.assertEqual(r1[:6], ["1.01", "42", "NaN", "abc", "true", "19782"])
        self.assertEqual(r1[6], "49501.500000000")
        self.assertEqual(r1[7], "1709214301.123456789")
        self.assertEqual(r1[8], "1704060000.000000000")            # 2023-12-31T22:00Z
        self.assertEqual(r1[9], "1704132000.500000000 960")        # -08:00 -> 1440-480
        self.assertEqual(r1[10], "CAFE")
        self.assertEqual(json.loads(r1[11]), {"k": [1, 2]})
        self.assertEqual(json.loads(r1[12]), {"a": 1})
        self.assertEqual(json.loads(r1[13]), [1, "x"])
        self.assertEqual(r2[:6], ["-999.99", "-7", "-inf", None, "false", "0"])
        self.assertEqual(r2[6], "0.000000000")
        self.assertEqual(r2[7], "1704067200.000000000")
        self.assertEqual(r2[9], "1717223400.000000000 1770")       # +05:30 -> 1440+330
        self.assertEqual(json.loads(r2[11]), "str")
        types = {c["name"]: c["type"] for c in
                 self.client.ok("SELECT * FROM t")["resultSetMetaData"]["rowType"]}
        self.assertEqual(types["N"], "fixed")
        self.assertEqual(types["TZ"], "timestamp_tz")
        self.assertEqual(types["V"], "variant")

    def test_custom_date_formats(self):
        res, rows = self.load("31/12/2023|2023-12-31 23:59|12.05\n",
                              "TYPE = CSV FIELD_DELIMITER = '|' DATE_FORMAT = 'DD/MM/YYYY' "
                              "TIMESTAMP_FORMAT = 'YYYY-MM-DD HH24:MI' TIME_FORMAT = 'HH24.MI'",
                              columns="d DATE, ts TIMESTAMP_NTZ, tm TIME")
        self.assertEqual(rows, [["19722", "1704067140.000000000", "43500.000000000"]])

    def test_conversion_errors(self):
        cases = [("NUMBER(3,0)", "1000", "out of range"),
                 ("NUMBER", "abc", "Numeric value 'abc' is not recognized"),
                 ("VARCHAR(3)", "abcd", "User character length limit (3) exceeded"),
                 ("BOOLEAN", "maybe", "Boolean value 'maybe' is not recognized"),
                 ("DATE", "2024-13-01", "Date '2024-13-01' is not recognized"),
                 ("TIMESTAMP_NTZ", "yesterday", "Timestamp 'yesterday' is not recognized"),
                 ("BINARY", "XYZ", "hex"),
                 ("VARIANT", "{bad json", "Error parsing JSON"),
                 ("OBJECT", "[1]", "OBJECT")]
        for ctype, value, msg in cases:
            res, rows = self.load("ok,%s\n" % value, "TYPE = CSV",
                                  columns="a VARCHAR, b %s" % ctype, extra="ON_ERROR = SKIP_FILE")
            self.assertEqual(res[0]["status"], "LOAD_FAILED", ctype)
            self.assertEqual(res[0]["rows_loaded"], "0")
            self.assertIn(msg, res[0]["first_error"], ctype)
            self.assertEqual(res[0]["first_error_line"], "1")
            self.assertEqual(res[0]["first_error_character"], "4")
            self.assertEqual(res[0]["first_error_column_name"], '"T"["B":2]')
            self.assertEqual(rows, [])

    def test_not_null(self):
        res, rows = self.load("1,\n2,x\n", "TYPE = CSV", columns="a INT, b VARCHAR NOT NULL",
                              extra="ON_ERROR = CONTINUE")
        self.assertEqual(res[0]["status"], "PARTIALLY_LOADED")
        self.assertIn("NULL result in a non-nullable column", res[0]["first_error"])
        self.assertEqual(rows, [["2", "x"]])

    def test_json_format(self):
        self.client.ok("CREATE TABLE j (v VARIANT)")
        self.write("a.json", '{"id": 1, "tags": ["x"]}\n{"id": 2}\n')
        self.write("arr.json", '[{"id": 3}, {"id": 4}]')
        self.stage("TYPE = JSON")
        res = self.copy_rows("j", ["a.json"])
        self.assertEqual(res[0]["rows_loaded"], "2")
        res = self.copy_rows("j", ["arr.json"], "FILE_FORMAT = (TYPE = JSON STRIP_OUTER_ARRAY = TRUE)")
        self.assertEqual(res[0]["rows_loaded"], "2")
        ids = sorted(json.loads(r[0])["id"] for r in self.client.rows("SELECT v FROM j"))
        self.assertEqual(ids, [1, 2, 3, 4])
        self.client.ok("CREATE TABLE j2 (id INT, name VARCHAR, raw VARIANT)")
        self.write("b.json", '{"id": 5, "name": "five"}\n')
        res = self.copy_rows("j2", ["b.json"]) if False else None
        r = self.client.run("COPY INTO j2 FROM (SELECT $1:id::NUMBER, $1:name, $1 FROM @ST) "
                            "FILES = ('b.json')")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(self.client.rows("SELECT id, name FROM j2"), [["5", "five"]])
        r = self.client.run("COPY INTO j2 FROM @ST FILES = ('b.json')")
        self.assertEqual(r.status, 422)  # JSON needs a single VARIANT column
        r = self.client.run("COPY INTO j2 FROM @ST FILES = ('b.json') "
                            "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE")
        self.assertEqual(r.status, 200, r.raw)

    def test_transform_select(self):
        self.client.ok("CREATE TABLE tr (id INT, doc VARIANT, note VARCHAR, fname VARCHAR)")
        self.write("x.csv", '1,"{""a"": 1}",hello\n')
        self.stage("TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '\"'")
        r = self.client.run("COPY INTO tr (id, doc, note, fname) FROM (SELECT t.$1, "
                            "PARSE_JSON($2), $3, METADATA$FILENAME FROM @ST t) FILES = ('x.csv')")
        self.assertEqual(r.status, 200, r.raw)
        row = self.client.rows("SELECT id, doc, note, fname FROM tr")[0]
        self.assertEqual(row[0], "1")
        self.assertEqual(json.loads(row[1]), {"a": 1})
        self.assertEqual(row[2:], ["hello", "x.csv"])


class CopyTests(EmulatorTestCase):
    """ON_ERROR, per-file results, load metadata, PURGE, FILES rules."""

    def setUp(self):
        super().setUp()
        self.client.ok("CREATE TABLE t (id INT, name VARCHAR)")
        self.stage("TYPE = CSV")

    def test_result_columns(self):
        self.write("a.csv", "1,a\n")
        r = self.copy("t", ["a.csv"])
        names = [c["name"] for c in r.json["resultSetMetaData"]["rowType"]]
        self.assertEqual(names, ["file", "status", "rows_parsed", "rows_loaded", "error_limit",
                                 "errors_seen", "first_error", "first_error_line",
                                 "first_error_character", "first_error_column_name"])
        self.assertEqual(r.json["data"][0], ["file://%s/a.csv" % self.stage_dir, "LOADED", "1",
                                             "1", "1", "0", None, None, None, None])

    def test_abort_statement_loads_nothing(self):
        self.write("good.csv", "1,a\n2,b\n")
        self.write("bad.csv", "3,c\nx,d\n")
        r = self.copy("t", ["good.csv", "bad.csv"])
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json["code"], "100038")
        self.assertEqual(r.json["sqlState"], "22018")
        self.assertIn("Numeric value 'x' is not recognized", r.json["message"])
        self.assertIn("File 'bad.csv', line 2, character 1", r.json["message"])
        self.assertIn('column "T"["ID":1]', r.json["message"])
        self.assertIn("statementHandle", r.json)
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM t"), [["0"]])
        # nothing was recorded as loaded, so a corrected retry loads both files
        self.write("bad.csv", "3,c\n4,d\n")
        res = self.copy_rows("t", ["good.csv", "bad.csv"])
        self.assertEqual([r["status"] for r in res], ["LOADED", "LOADED"])

    def test_continue(self):
        self.write("a.csv", "1,a\nx,b\n3,c\ny,d\n")
        res = self.copy_rows("t", ["a.csv"], "ON_ERROR = CONTINUE")
        r = res[0]
        self.assertEqual((r["status"], r["rows_parsed"], r["rows_loaded"], r["error_limit"],
                          r["errors_seen"]), ("PARTIALLY_LOADED", "4", "2", "4", "2"))
        self.assertEqual(r["first_error_line"], "2")
        self.assertEqual(r["first_error_column_name"], '"T"["ID":1]')
        self.assertEqual(self.client.rows("SELECT id FROM t ORDER BY id"), [["1"], ["3"]])
        # a partially loaded file counts as loaded for load metadata
        r2 = self.copy("t", ["a.csv"], "ON_ERROR = CONTINUE")
        self.assertEqual(r2.json["data"], [["Copy executed with 0 files processed."]])

    def test_continue_all_rows_bad(self):
        self.write("a.csv", "x,a\ny,b\n")
        res = self.copy_rows("t", ["a.csv"], "ON_ERROR = 'CONTINUE'")
        self.assertEqual(res[0]["status"], "LOAD_FAILED")

    def test_skip_file(self):
        self.write("good.csv", "1,a\n")
        self.write("bad.csv", "2,b\nx,c\n")
        res = self.copy_rows("t", ["good.csv", "bad.csv"], "ON_ERROR = SKIP_FILE")
        self.assertEqual([(r["status"], r["rows_loaded"], r["error_limit"]) for r in res],
                         [("LOADED", "1", "1"), ("LOAD_FAILED", "0", "1")])
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM t"), [["1"]])
        # failed files are not in load metadata as loaded: fixing and retrying loads them
        self.write("bad.csv", "2,b\n3,c\n")
        res = self.copy_rows("t", ["good.csv", "bad.csv"], "ON_ERROR = SKIP_FILE")
        self.assertEqual([(r["file"].rsplit("/", 1)[1], r["status"]) for r in res],
                         [("bad.csv", "LOADED")])
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM t"), [["3"]])

    def test_skip_file_n(self):
        self.write("one.csv", "1,a\nx,b\n")
        self.write("two.csv", "1,a\nx,b\ny,c\n")
        res = self.copy_rows("t", ["one.csv", "two.csv"], "ON_ERROR = SKIP_FILE_2")
        self.assertEqual([(r["status"], r["rows_loaded"], r["error_limit"]) for r in res],
                         [("PARTIALLY_LOADED", "1", "2"), ("LOAD_FAILED", "0", "2")])

    def test_skip_file_percent(self):
        self.write("p.csv", "1,a\n2,b\n3,c\nx,d\n")     # 25% errors
        res = self.copy_rows("t", ["p.csv"], "ON_ERROR = 'SKIP_FILE_30%'")
        self.assertEqual(res[0]["status"], "PARTIALLY_LOADED")
        self.write("q.csv", "1,a\nx,b\n")               # 50% errors
        res = self.copy_rows("t", ["q.csv"], "ON_ERROR = 'SKIP_FILE_30%'")
        self.assertEqual(res[0]["status"], "LOAD_FAILED")

    def test_load_metadata_skip_force_and_change(self):
        self.write("a.csv", "1,a\n")
        self.write("b.csv", "2,b\n")
        self.assertEqual(len(self.copy_rows("t", ["a.csv"])), 1)
        res = self.copy_rows("t", ["a.csv", "b.csv"])
        self.assertEqual([r["file"].rsplit("/", 1)[1] for r in res], ["b.csv"])
        r = self.copy("t", ["a.csv", "b.csv"])
        self.assertEqual(r.json["resultSetMetaData"]["rowType"][0]["name"], "status")
        self.assertEqual(r.json["data"], [["Copy executed with 0 files processed."]])
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM t"), [["2"]])
        res = self.copy_rows("t", ["a.csv"], "FORCE = TRUE")
        self.assertEqual(res[0]["status"], "LOADED")
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM t"), [["3"]])
        self.write("a.csv", "1,a\n9,changed\n")  # new content = new ETag -> loaded again
        self.assertEqual(self.copy_rows("t", ["a.csv"])[0]["rows_loaded"], "2")
        meta = self.client.admin("GET", "load_metadata?table=DB.PUBLIC.T")["tables"]
        self.assertEqual(len(meta), 1)
        files = {m["file"].rsplit("/", 1)[1]: m for m in meta[0]["files"]}
        self.assertEqual(set(files), {"a.csv", "b.csv"})
        self.assertEqual(files["a.csv"]["status"], "LOADED")
        self.assertTrue(files["a.csv"]["etag"])
        # metadata is per table
        self.client.ok("CREATE TABLE t2 (id INT, name VARCHAR)")
        self.assertEqual(self.copy_rows("t2", ["a.csv"])[0]["rows_loaded"], "2")
        # TRUNCATE and CREATE OR REPLACE forget the load metadata
        self.client.ok("TRUNCATE TABLE t2")
        self.assertEqual(self.copy_rows("t2", ["a.csv"])[0]["status"], "LOADED")

    def test_missing_file(self):
        self.write("a.csv", "1,a\n")
        r = self.copy("t", ["a.csv", "missing.csv"])
        self.assertEqual(r.status, 422)
        self.assertIn("missing.csv", r.json["message"])
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM t"), [["0"]])
        res = self.copy_rows("t", ["a.csv", "missing.csv"], "ON_ERROR = CONTINUE")
        self.assertEqual([r["status"] for r in res], ["LOADED", "LOAD_FAILED"])

    def test_purge(self):
        path = self.write("a.csv", "1,a\n")
        self.copy_rows("t", ["a.csv"], "PURGE = TRUE")
        self.assertFalse(os.path.exists(path))

    def test_stage_path_and_listing(self):
        self.write("day=1/a.csv", "1,a\n")
        self.write("day=1/b.csv", "2,b\n")
        self.write("day=2/c.csv", "3,c\n")
        res = self.copy_rows("t", ["a.csv"], stage="ST/day=1/")
        self.assertEqual(res[0]["file"], "file://%s/day=1/a.csv" % self.stage_dir)
        r = self.client.run("COPY INTO t FROM @ST/day=1/")
        self.assertEqual([x[0].rsplit("/", 1)[1] for x in r.json["data"]], ["b.csv"])
        r = self.client.run("COPY INTO t FROM @ST PATTERN = '.*c[.]csv'")
        self.assertEqual(len(r.json["data"]), 1)
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM t"), [["3"]])

    def test_files_rules(self):
        r = self.client.run("COPY INTO t FROM @ST FILES = ('a.csv') PATTERN = '.*'")
        self.assertEqual(r.status, 422)
        many = ", ".join("'f%d.csv'" % i for i in range(1001))
        r = self.client.run("COPY INTO t FROM @ST FILES = (%s)" % many)
        self.assertEqual(r.status, 422)
        r = self.client.run("COPY INTO t FROM @NOPE FILES = ('a.csv')")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json["code"], "002003")

    def test_copy_column_list_and_named_format(self):
        self.client.ok("CREATE OR REPLACE TABLE t (id INT, name VARCHAR, extra VARCHAR)")
        self.client.ok("CREATE FILE FORMAT pipe_fmt TYPE = CSV FIELD_DELIMITER = '|'")
        self.write("a.psv", "n1|1\n")
        r = self.client.run("COPY INTO t (name, id) FROM @ST FILES = ('a.psv') "
                            "FILE_FORMAT = (FORMAT_NAME = 'pipe_fmt')")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(self.client.rows("SELECT * FROM t"), [["1", "n1", None]])



# ---------------------------------------------------------------------------
# Tiny object-store stand-ins for the storage tests

def sigv4_check(method, raw_path, headers, secrets):
    """Independent SigV4 verification (S3 flavour). Returns (access key, ok)."""
    import re
    auth = headers.get("Authorization", "")
    m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, ?"
                 r"SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$", auth)
    if not m:
        return None, False
    akid, date, region, signed, sig = m.groups()
    path, _, query = raw_path.partition("?")
    enc = lambda x: urllib.parse.quote(x, safe="-_.~")  # noqa: E731
    pairs = sorted((enc(k), enc(v)) for k, v in
                   urllib.parse.parse_qsl(query, keep_blank_values=True))
    cq = "&".join("%s=%s" % kv for kv in pairs)
    low = {k.lower(): " ".join(v.strip().split()) for k, v in headers.items()}
    if "host" in signed.split(";") and "host" not in low:
        return akid, False
    ch = "".join("%s:%s\n" % (h, low.get(h, "")) for h in signed.split(";"))
    creq = "\n".join([method, path, cq, ch, signed, low.get("x-amz-content-sha256", "")])
    sts = "\n".join(["AWS4-HMAC-SHA256", low.get("x-amz-date", ""),
                     "%s/%s/s3/aws4_request" % (date, region),
                     hashlib.sha256(creq.encode()).hexdigest()])
    secret = secrets.get(akid)
    if secret is None:
        return akid, False
    k = ("AWS4" + secret).encode()
    for part in (date, region, "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return akid, hmac.compare_digest(hmac.new(k, sts.encode(), hashlib.sha256).hexdigest(), sig)


class ObjectStore:
    """S3 (path-style, SigV4-checked) and GCS JSON API stand-in on loopback."""

    def __init__(self, kind, secrets=None):
        self.kind = kind
        self.objects = {}       # (bucket, key) -> bytes
        self.secrets = secrets or {}
        self.requests = []
        store = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def reply(self, code, body=b"", ctype="application/xml", headers=None):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def handle_any(self):
                store.requests.append((self.command, self.path, dict(self.headers.items())))
                if store.kind == "s3":
                    return self.s3()
                return self.gcs()

            do_GET = do_DELETE = handle_any

            def s3(self):
                akid, ok = sigv4_check(self.command, self.path, dict(self.headers.items()),
                                       store.secrets)
                if not ok:
                    return self.reply(403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
                path, _, query = self.path.partition("?")
                bucket, _, key = urllib.parse.unquote(path[1:]).partition("/")
                q = dict(urllib.parse.parse_qsl(query))
                if not key and q.get("list-type") == "2":
                    keys = sorted(k for (b, k) in store.objects if b == bucket
                                  and k.startswith(q.get("prefix", "")))
                    xml = "".join("<Contents><Key>%s</Key></Contents>" % k for k in keys)
                    body = ('<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                            '%s<IsTruncated>false</IsTruncated></ListBucketResult>' % xml)
                    return self.reply(200, body.encode())
                data = store.objects.get((bucket, key))
                if data is None:
                    return self.reply(404, b"<Error><Code>NoSuchKey</Code></Error>")
                if self.command == "DELETE":
                    del store.objects[(bucket, key)]
                    return self.reply(204)
                return self.reply(200, data, "application/octet-stream",
                                  {"ETag": '"%s"' % hashlib.md5(data).hexdigest()})

            def gcs(self):
                path, _, query = self.path.partition("?")
                q = dict(urllib.parse.parse_qsl(query))
                parts = path.split("/")
                # /storage/v1/b/<bucket>/o[/<name>]
                if len(parts) < 6 or parts[1:4] != ["storage", "v1", "b"] or parts[5] != "o":
                    return self.reply(404, b"{}", "application/json")
                bucket = urllib.parse.unquote(parts[4])
                if len(parts) == 6:
                    items = [{"name": k} for (b, k) in sorted(store.objects)
                             if b == bucket and k.startswith(q.get("prefix", ""))]
                    return self.reply(200, json.dumps({"items": items}).encode(),
                                      "application/json")
                name = urllib.parse.unquote(parts[6])
                data = store.objects.get((bucket, name))
                if data is None:
                    return self.reply(404, b'{"error": {"code": 404}}', "application/json")
                if self.command == "DELETE":
                    del store.objects[(bucket, name)]
                    return self.reply(204, b"", "application/json")
                if q.get("alt") != "media":
                    return self.reply(200, json.dumps({"name": name}).encode(), "application/json")
                return self.reply(200, data, "application/octet-stream",
                                  {"ETag": hashlib.md5(data).hexdigest()})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class StorageTests(EmulatorTestCase):
    @classmethod
    def setUpClass(cls):
        cls.s3 = ObjectStore("s3", {"AKIDSTAGE": "stage-secret", "AKIDGLOBAL": "global-secret"})
        cls.gcs = ObjectStore("gcs")
        cls.extra_args = ("--s3-endpoint", "http://127.0.0.1:%d" % cls.s3.port,
                          "--s3-access-key", "AKIDGLOBAL", "--s3-secret-key", "global-secret",
                          "--gcs-endpoint", "http://127.0.0.1:%d" % cls.gcs.port)
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.s3.stop()
        cls.gcs.stop()

    def setUp(self):
        super().setUp()
        self.client.ok("CREATE TABLE t (id INT, name VARCHAR)")

    def test_s3_stage_credentials_sigv4(self):
        key = "exports/dt=2024-01-01/part 1+a.csv.gz"
        self.s3.objects[("bkt", key)] = gzip.compress(b"1,one\n2,two\n")
        self.client.ok("CREATE STAGE s3st URL = 's3://bkt/exports/' CREDENTIALS = "
                       "(AWS_KEY_ID = 'AKIDSTAGE' AWS_SECRET_KEY = 'stage-secret' "
                       "AWS_TOKEN = 'session-tok') FILE_FORMAT = (TYPE = CSV)")
        res = self.copy_rows("t", ["dt=2024-01-01/part 1+a.csv.gz"], stage="s3st")
        self.assertEqual(res[0]["status"], "LOADED")
        self.assertEqual(res[0]["file"], "s3://bkt/" + key)
        method, path, headers = self.s3.requests[-1]
        self.assertIn("Credential=AKIDSTAGE/", headers["Authorization"])
        self.assertEqual(headers.get("X-Amz-Security-Token") or headers.get("x-amz-security-token"),
                         "session-tok")
        self.assertIn("x-amz-security-token", headers["Authorization"])
        # load metadata uses the S3 ETag
        r = self.copy("t", ["dt=2024-01-01/part 1+a.csv.gz"], stage="s3st")
        self.assertEqual(r.json["data"], [["Copy executed with 0 files processed."]])
        # objects listed through ListObjectsV2 when FILES is omitted
        self.s3.objects[("bkt", "exports/dt=2024-01-02/b.csv")] = b"3,three\n"
        r = self.client.run("COPY INTO t FROM @s3st PURGE = TRUE")
        self.assertEqual([x[0] for x in r.json["data"]], ["s3://bkt/exports/dt=2024-01-02/b.csv"])
        self.assertNotIn(("bkt", "exports/dt=2024-01-02/b.csv"), self.s3.objects)
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM t"), [["3"]])

    def test_s3_storage_integration_uses_global_keys(self):
        self.s3.objects[("bkt", "x/a.csv")] = b"1,a\n"
        self.client.ok("CREATE STAGE s3i URL = 's3://bkt/x/' STORAGE_INTEGRATION = my_int")
        self.assertEqual(self.copy_rows("t", ["a.csv"], stage="s3i")[0]["status"], "LOADED")
        self.assertIn("Credential=AKIDGLOBAL/", self.s3.requests[-1][2]["Authorization"])

    def test_s3_bad_credentials(self):
        self.s3.objects[("bkt", "x/a.csv")] = b"1,a\n"
        self.client.ok("CREATE STAGE s3bad URL = 's3://bkt/x/' CREDENTIALS = "
                       "(AWS_KEY_ID = 'AKIDSTAGE' AWS_SECRET_KEY = 'wrong')")
        r = self.copy("t", ["a.csv"], stage="s3bad")
        self.assertEqual(r.status, 422)
        objs = self.client.admin("GET", "objects?kind=STAGE")["objects"]
        self.assertEqual(objs[0]["credentials"]["AWS_SECRET_KEY"], "***")

    def test_gcs_stage(self):
        self.gcs.objects[("gbkt", "pre/dir/a b.csv")] = b"1,a\n2,b\n"
        self.client.ok("CREATE STAGE g URL = 'gcs://gbkt/pre/' STORAGE_INTEGRATION = gi")
        res = self.copy_rows("t", ["dir/a b.csv"], stage="g")
        self.assertEqual(res[0]["status"], "LOADED")
        self.assertEqual(res[0]["file"], "gcs://gbkt/pre/dir/a b.csv")
        self.assertTrue(any("/o/dir%2Fa%20b.csv" in p or "/o/pre%2Fdir%2Fa%20b.csv" in p
                            for _, p, _ in self.gcs.requests))
        r = self.client.run("CREATE STAGE g2 URL = 'gcs://gbkt/' CREDENTIALS = (AWS_KEY_ID='x' "
                            "AWS_SECRET_KEY='y')")
        self.assertEqual(r.status, 422)


class DdlTests(EmulatorTestCase):
    def test_create_variants(self):
        self.assertEqual(self.client.rows("CREATE TABLE t (a INT)"),
                         [["Table T successfully created."]])
        r = self.client.run("CREATE TABLE t (a INT)")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json["code"], "002002")
        self.assertEqual(self.client.rows("CREATE TABLE IF NOT EXISTS t (a INT)"),
                         [["T already exists, statement succeeded."]])
        self.client.ok("CREATE OR REPLACE TABLE t (a INT, b VARCHAR(10) NOT NULL)")
        desc = self.client.rows("DESCRIBE TABLE t")
        self.assertEqual([(d[0], d[1], d[3]) for d in desc],
                         [("A", "NUMBER(38,0)", "Y"), ("B", "VARCHAR(10)", "N")])
        self.assertEqual(self.client.rows("DROP TABLE t"), [["T successfully dropped."]])
        self.assertEqual(self.client.run("DROP TABLE t").status, 422)
        self.client.ok("DROP TABLE IF EXISTS t")

    def test_identifiers(self):
        self.client.ok('CREATE TABLE "Mixed Case" ("id" INT, Name VARCHAR)')
        self.client.ok("CREATE TABLE mixed_case (x INT)")
        self.assertEqual(self.client.run('SELECT COUNT(*) FROM "mixed case"').status, 422)
        self.assertEqual(self.client.rows('SELECT COUNT(*) FROM "Mixed Case"'), [["0"]])
        self.assertEqual(self.client.rows('SELECT COUNT(*) FROM DB.PUBLIC."Mixed Case"'), [["0"]])
        self.assertEqual(self.client.rows('SELECT COUNT(*) FROM db.public.MIXED_CASE'), [["0"]])
        cols = [c["name"] for c in
                self.client.ok('SELECT * FROM "Mixed Case"')["resultSetMetaData"]["rowType"]]
        self.assertEqual(cols, ["id", "NAME"])
        self.client.ok('CREATE TABLE "we""ird" (a INT)')
        self.assertEqual(self.client.rows('SELECT COUNT(*) FROM "we""ird"'), [["0"]])
        self.client.ok("CREATE TABLE OTHERDB.S1.T (a INT)")
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM otherdb.s1.t"), [["0"]])
        self.assertEqual(self.client.run("SELECT COUNT(*) FROM t").status, 422)

    def test_alter_add_column(self):
        self.client.ok("CREATE TABLE t (a INT)")
        self.client.ok("ALTER TABLE t ADD COLUMN b VARCHAR")
        self.client.ok("ALTER TABLE t ADD COLUMN IF NOT EXISTS b VARCHAR")
        self.assertEqual(self.client.run("ALTER TABLE t ADD COLUMN b VARCHAR").status, 422)
        self.client.ok("ALTER TABLE t ADD c DATE, d BOOLEAN")
        self.assertEqual([d[0] for d in self.client.rows("DESC TABLE t")], ["A", "B", "C", "D"])

    def test_file_format_stage_validation(self):
        self.client.ok("CREATE FILE FORMAT f TYPE = CSV FIELD_DELIMITER = '|' "
                       "NULL_IF = ('\\\\N', 'NULL') EMPTY_FIELD_AS_NULL = FALSE COMPRESSION = ZSTD")
        self.assertEqual(self.client.run("CREATE FILE FORMAT g TYPE = CSV BOGUS = 1").status, 422)
        self.assertEqual(self.client.run("CREATE FILE FORMAT g TYPE = CSV "
                                         "FIELD_OPTIONALLY_ENCLOSED_BY = 'x'").status, 422)
        self.client.ok("CREATE STAGE s URL = 's3://b/p/' CREDENTIALS = (AWS_KEY_ID = 'k' "
                       "AWS_SECRET_KEY = 's') FILE_FORMAT = (FORMAT_NAME = 'f')")
        self.assertEqual(self.client.run("CREATE STAGE s2 URL = 's3://b/' CREDENTIALS = "
                                         "(AWS_KEY_ID='k' AWS_SECRET_KEY='s') "
                                         "STORAGE_INTEGRATION = i").status, 422)
        self.client.ok("DROP FILE FORMAT f")
        self.client.ok("DROP STAGE IF EXISTS s")

    def test_external_table_and_pipe_recorded(self):
        self.client.ok("CREATE STAGE ext URL = 's3://lake/sales/'")
        self.client.ok("CREATE OR REPLACE EXTERNAL TABLE sales (amount NUMBER(10,2) AS "
                       "(value:c2::NUMBER(10,2)), country VARCHAR AS "
                       "(SPLIT_PART(SPLIT_PART(METADATA$FILENAME, '/', 2), '=', 2))) "
                       "PARTITION BY (country) LOCATION = @ext/data/ AUTO_REFRESH = FALSE "
                       "FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
        objs = self.client.admin("GET", "objects?kind=EXTERNAL_TABLE")["objects"]
        self.assertEqual(len(objs), 1)
        et = objs[0]
        self.assertEqual(et["fqn"], ["DB", "PUBLIC", "SALES"])
        self.assertEqual(et["columns"][0]["expr"], "value:c2::NUMBER(10,2)")
        self.assertIn("METADATA$FILENAME", et["columns"][1]["expr"])
        self.assertEqual(et["partition_by"], ["COUNTRY"])
        self.assertEqual(et["location"], {"stage": ["DB", "PUBLIC", "EXT"], "path": "data/"})
        self.assertIs(et["auto_refresh"], False)
        self.assertEqual(et["file_format"]["options"]["SKIP_HEADER"], 1)
        self.client.ok("CREATE TABLE t (a INT)")
        self.client.ok("CREATE PIPE p AUTO_INGEST = TRUE AS COPY INTO t FROM @ext "
                       "FILE_FORMAT = (TYPE = CSV)")
        pipe = self.client.admin("GET", "objects?kind=PIPE")["objects"][0]
        self.assertTrue(pipe["copy_statement"].startswith("COPY INTO t FROM @ext"))
        self.client.ok("DROP EXTERNAL TABLE sales")
        self.client.ok("DROP PIPE p")
        log = self.client.admin("GET", "statements")["statements"]
        self.assertTrue(any(e["statement"].startswith("CREATE OR REPLACE EXTERNAL TABLE")
                            for e in log))

    def test_select_features(self):
        self.client.ok("CREATE TABLE t (id INT, name VARCHAR, amount NUMBER(10,2))")
        self.write("a.csv", "1,a,1.50\n2,b,\n3,,2.25\n")
        self.stage()
        self.copy_rows("t", ["a.csv"])
        self.assertEqual(self.client.rows("SELECT id FROM t WHERE amount IS NULL"), [["2"]])
        self.assertEqual(self.client.rows("SELECT id, name FROM t ORDER BY name NULLS FIRST LIMIT 2"),
                         [["3", None], ["1", "a"]])
        self.assertEqual(self.client.rows("SELECT SUM(amount), MAX(id), COUNT(name) FROM t"),
                         [["3.75", "3", "2"]])
        self.assertEqual(self.client.rows("SELECT COUNT(*) FROM t WHERE id IN (1, 3) AND "
                                          "NOT (name = 'a')"), [["0"]])
        r = self.client.run("SELECT nope FROM t")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json["code"], "000904")

    def test_fully_quoted_generated_sql(self):
        self.client.ok('CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."Events" ("id" NUMBER(38,0) '
                       'NOT NULL, "payload" VARIANT, "at" TIMESTAMP_TZ)')
        self.client.ok('CREATE OR REPLACE FILE FORMAT "DB"."PUBLIC"."sfx_fmt" TYPE = CSV '
                       "FIELD_DELIMITER = ',' RECORD_DELIMITER = '\\n' "
                       "FIELD_OPTIONALLY_ENCLOSED_BY = '\"' ESCAPE = NONE "
                       "ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = ('\\\\N') "
                       "EMPTY_FIELD_AS_NULL = FALSE ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE "
                       "COMPRESSION = AUTO")
        self.client.ok('CREATE STAGE IF NOT EXISTS "DB"."PUBLIC"."sfx_stage" URL = \'file://%s/\' '
                       'FILE_FORMAT = (FORMAT_NAME = \'"DB"."PUBLIC"."sfx_fmt"\')' % self.stage_dir)
        self.write("out/0001.csv.gz", gzip.compress(
            b'1,"{""k"":""v\\\\""}",2024-01-01 00:00:00.000000 +00:00\n2,\\N,\\N\n'))
        r = self.client.run('COPY INTO "DB"."PUBLIC"."Events" ("id", "payload", "at") '
                            'FROM @"DB"."PUBLIC"."sfx_stage"/out/ FILES = (\'0001.csv.gz\') '
                            "FILE_FORMAT = (FORMAT_NAME = sfx_fmt) ON_ERROR = ABORT_STATEMENT",
                            bindings=None)
        self.assertEqual(r.status, 422)  # unquoted sfx_fmt resolves to SFX_FMT: not found
        r = self.client.run('COPY INTO "DB"."PUBLIC"."Events" ("id", "payload", "at") '
                            'FROM @"DB"."PUBLIC"."sfx_stage"/out/ FILES = (\'0001.csv.gz\') '
                            'FILE_FORMAT = (FORMAT_NAME = "DB"."PUBLIC"."sfx_fmt")')
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json["data"][0][1], "LOADED")
        rows = self.client.rows('SELECT "id", "payload", "at" FROM "Events" ORDER BY "id"')
        self.assertEqual(json.loads(rows[0][1]), {"k": "v\\"})
        self.assertEqual(rows[0][2], "1704067200.000000000 1440")
        self.assertEqual(rows[1], ["2", None, None])

    def test_admin_query_and_persistence(self):
        self.client.ok("CREATE TABLE t (id INT)")
        self.write("a.csv", "1\n2\n")
        self.stage()
        self.copy_rows("t", ["a.csv"])
        handle = self.client.ok("SELECT COUNT(*) FROM t")["statementHandle"]
        q = self.client.admin("POST", "query", {"statement": "SELECT COUNT(*) FROM t",
                                                "database": "DB", "schema": "PUBLIC"})
        self.assertEqual(q["rows"], [["2"]])
        q = self.client.admin("POST", "query", {"statement": "SELECT * FROM nope",
                                                "database": "DB", "schema": "PUBLIC"})
        self.assertEqual(q["error"]["code"], "002003")
        # restart on the same data dir: rows, load metadata and handles survive
        self.emu.stop()
        self.emu.start()
        c = Client(self.emu.port, self.client.token)
        type(self).client = c
        self.assertEqual(c.rows("SELECT COUNT(*) FROM t"), [["2"]])
        self.assertEqual(c.rows("COPY INTO t FROM @ST FILES = ('a.csv')"),
                         [["Copy executed with 0 files processed."]])
        self.assertEqual(c.poll(handle).json["data"], [["2"]])


if __name__ == "__main__":
    unittest.main()
