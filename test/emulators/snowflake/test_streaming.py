"""Tests for the emulator's Snowpipe Streaming REST API (sfemu/streaming.py,
sfemu/streaming_pipe.py), built from docs/streaming.md.

Run: /usr/bin/python3 -m unittest discover -s test/emulators/snowflake -p 'test_*.py' -v
"""

import base64
import gzip
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.parse

import jwt

from test_server import Client, EmulatorTestCase, Resp, make_jwt

DB, SC = "DB", "PUBLIC"


def zstd_compress(data):
    try:
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    except ImportError:
        pass
    if shutil.which("zstd") is None:
        return None
    return subprocess.run(["zstd", "-q", "-c"], input=data, stdout=subprocess.PIPE,
                          check=True).stdout


def ndjson(rows):
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


class StreamingTestCase(EmulatorTestCase):
    extra_args = ("--stream-commit-delay-ms", "200")

    def setUp(self):
        super().setUp()
        self.settings(commit_delay_ms=200, pause_commits=False, requests_per_second=0)
        self.jwt = self.client.token

    # -- plumbing ---------------------------------------------------------------
    def settings(self, **kw):
        return self.client.admin("POST", "streaming", kw)

    def state(self):
        return self.client.admin("GET", "streaming")

    def http(self, method, path, data=None, headers=None, token=None, token_type=None,
             chunked=False):
        h = {}
        tok = self.jwt if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        if token_type:
            h["X-Snowflake-Authorization-Token-Type"] = token_type
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=30)
        try:
            if chunked:
                conn.putrequest(method, path)
                for k, v in h.items():
                    conn.putheader(k, v)
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for i in range(0, len(data), 7):
                    piece = data[i:i + 7]
                    conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.send(b"0\r\n\r\n")
            else:
                conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            return Resp(r.status, dict(r.getheaders()), r.read())
        finally:
            conn.close()

    @staticmethod
    def q(name):
        return urllib.parse.quote(name, safe="")

    def chan_path(self, pipe, channel, db=DB, sc=SC):
        return "/v2/streaming/databases/%s/schemas/%s/pipes/%s/channels/%s" % (
            self.q(db), self.q(sc), self.q(pipe), self.q(channel))

    def open(self, pipe, channel, body=None, expect=200, headers=None, **kw):
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        r = self.http("PUT", self.chan_path(pipe, channel),
                      json.dumps(body if body is not None else {}).encode(), h, **kw)
        if expect is not None:
            self.assertEqual(r.status, expect, r.raw)
        return r

    def append(self, pipe, channel, cont, rows=None, data=None, offset=None, start=None,
               expect=200, headers=None, raw_query=None, **kw):
        q = {"continuationToken": cont}
        if offset is not None:
            q["endOffsetToken"] = offset
        if start is not None:
            q["startOffsetToken"] = start
        query = raw_query if raw_query is not None else urllib.parse.urlencode(q)
        path = "/v2/streaming/data/databases/%s/schemas/%s/pipes/%s/channels/%s/rows?%s" % (
            self.q(DB), self.q(SC), self.q(pipe), self.q(channel), query)
        h = {"Content-Type": "application/x-ndjson"}
        h.update(headers or {})
        r = self.http("POST", path, data if data is not None else ndjson(rows or []), h, **kw)
        if expect is not None:
            self.assertEqual(r.status, expect, r.raw)
        return r

    def status(self, pipe, names, expect=200, **kw):
        path = "/v2/streaming/databases/%s/schemas/%s/pipes/%s:bulk-channel-status" % (
            self.q(DB), self.q(SC), self.q(pipe))
        r = self.http("POST", path, json.dumps({"channel_names": names}).encode(),
                      {"Content-Type": "application/json"}, **kw)
        self.assertEqual(r.status, expect, r.raw)
        return r.json.get("channel_statuses") if expect == 200 else r.json

    def drop(self, pipe, channel, body=None, expect=200):
        r = self.http("DELETE", self.chan_path(pipe, channel),
                      json.dumps(body).encode() if body is not None else None,
                      {"Content-Type": "application/json"})
        self.assertEqual(r.status, expect, r.raw)
        return r

    def count(self, table="T"):
        return int(self.client.rows("SELECT COUNT(*) FROM %s" % table)[0][0])

    def commit_now(self):
        self.settings(commit_now=True)

    def wait_committed(self, pipe, channel, token, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st = self.status(pipe, [channel])[channel]
            if st["last_committed_offset_token"] == token:
                return st
            time.sleep(0.05)
        self.fail("offset %s never committed" % token)

    def err(self, r, status, code):
        self.assertEqual(r.status, status, r.raw)
        self.assertEqual(r.json["code"], code, r.raw)
        self.assertIsInstance(r.json["message"], str)


class ControlPlaneTests(StreamingTestCase):
    def test_hostname_json_then_text(self):
        r = self.http("GET", "/v2/streaming/hostname", token_type="KEYPAIR_JWT")
        self.assertEqual(r.status, 200, r.raw)
        self.assertEqual(r.json, {"hostname": "127.0.0.1:%d" % self.emu.port})
        self.settings(hostname_format="text", hostname="acct-x.ingest.example")
        r = self.http("GET", "/v2/streaming/hostname", token_type="KEYPAIR_JWT")
        self.assertEqual((r.status, r.raw), (200, b"acct-x.ingest.example"))
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain"))

    def test_hostname_needs_credentials(self):
        r = self.http("GET", "/v2/streaming/hostname", token="")
        self.err(r, 401, "390101")
        r = self.http("GET", "/v2/streaming/hostname", token=make_jwt(self.key2))
        self.err(r, 401, "390144")
        r = self.http("POST", "/v2/streaming/hostname")
        self.assertEqual(r.status, 405)

    def exchange(self, scope=None, grant="urn:ietf:params:oauth:grant-type:jwt-bearer",
                 ctype="application/x-www-form-urlencoded", token=None):
        body = urllib.parse.urlencode({"grant_type": grant,
                                       "scope": scope or "127.0.0.1:%d" % self.emu.port})
        return self.http("POST", "/oauth/token", body.encode(), {"Content-Type": ctype},
                         token=token)

    def test_scoped_token_exchange(self):
        r = self.exchange()
        self.assertEqual(r.status, 200, r.raw)
        tok = r.json["token"]
        claims = jwt.decode(tok, options={"verify_signature": False})
        self.assertAlmostEqual(claims["exp"] - time.time(), 3600, delta=30)
        self.err(self.exchange(grant="client_credentials"), 400, "ERR_MALFORMED_REQUEST")
        self.err(self.exchange(scope="other.host"), 400, "ERR_MALFORMED_REQUEST")
        self.err(self.exchange(ctype="application/json"), 400, "ERR_MALFORMED_REQUEST")
        self.err(self.exchange(token=make_jwt(self.key2)), 401, "390144")
        self.settings(token_format="text")
        r = self.exchange()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.raw.count(b"."), 2)      # a bare JWT
        self.assertTrue(r.headers["Content-Type"].startswith("text/plain"))

    def test_configured_ingest_host(self):
        """The tutorial: underscores in the host become dashes before the exchange
        and in every later call; the channel endpoints answer on that host only."""
        self.client.ok("CREATE TABLE T (A NUMBER)")
        self.settings(hostname="my_acct.region.ingest.example")
        host = self.http("GET", "/v2/streaming/hostname").json["hostname"]
        self.assertEqual(host, "my_acct.region.ingest.example")
        self.err(self.exchange(scope=host), 400, "ERR_MALFORMED_REQUEST")
        tok = self.exchange(scope="my-acct.region.ingest.example").json["token"]
        self.err(self.open("T-STREAMING", "C1", expect=404, token=tok), 404,
                 "ERR_MALFORMED_REQUEST")
        self.err(self.open("T-STREAMING", "C1", expect=404, token=tok, headers={"Host": host}),
                 404, "ERR_MALFORMED_REQUEST")
        self.open("T-STREAMING", "C1", token=tok,
                  headers={"Host": "MY-ACCT.region.ingest.example"})

    def test_ingest_auth_scoped_jwt_oauth(self):
        self.client.ok("CREATE TABLE T (A NUMBER)")
        scoped = self.exchange().json["token"]
        self.open("T-STREAMING", "C1", token=scoped)
        self.open("T-STREAMING", "C1", token_type="KEYPAIR_JWT")   # the JWT, no exchange
        self.client.admin("POST", "users", {"name": "OAUSER", "public_keys": [],
                                            "token": "oauth-tok-1", "token_type": "OAUTH"})
        self.open("T-STREAMING", "C1", token="oauth-tok-1", token_type="OAUTH")
        self.settings(require_scoped_token=True)
        self.err(self.open("T-STREAMING", "C1", expect=401, token_type="KEYPAIR_JWT"),
                 401, "390303")
        self.open("T-STREAMING", "C1", token=scoped)
        self.settings(scoped_token_ttl_s=-10)
        expired = self.exchange().json["token"]
        self.err(self.open("T-STREAMING", "C1", expect=401, token=expired), 401, "390318")
        forged = jwt.encode({"iss": "sfemu-streaming", "user": "LOADER",
                             "exp": time.time() + 60}, b"k" * 32, algorithm="HS256")
        self.assertEqual(self.open("T-STREAMING", "C1", expect=401, token=forged).status, 401)


class ChannelTests(StreamingTestCase):
    def setUp(self):
        super().setUp()
        c = self.client
        c.ok("CREATE TABLE T (ID NUMBER NOT NULL, NAME VARCHAR, TS TIMESTAMP_NTZ, DOC VARIANT)")
        c.ok("CREATE PIPE P AS COPY INTO T (ID, NAME, TS, DOC) FROM (SELECT $1:id, "
             "$1:name::VARCHAR, $1:ts, $1 FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING')))")

    def test_open_append_commit_after_delay(self):
        self.settings(pause_commits=True)
        r = self.open("P", "CH1").json
        st = r["channel_status"]
        self.assertEqual((st["database_name"], st["schema_name"], st["pipe_name"],
                          st["channel_name"], st["channel_status_code"],
                          st["last_committed_offset_token"], st["rows_inserted"],
                          st["rows_error_count"]), ("DB", "PUBLIC", "P", "CH1", "SUCCESS", None,
                                                    0, 0))
        for k in ("created_on_ms", "rows_parsed", "last_error_offset_upper_bound",
                  "last_error_message", "last_error_timestamp",
                  "snowflake_avg_processing_latency_ms"):
            self.assertIn(k, st)
        tok = r["next_continuation_token"]
        rows = [{"id": i, "name": "n%d" % i, "ts": "2024-01-02T03:04:05"} for i in (1, 2, 3)]
        a = self.append("P", "CH1", tok, rows, offset="3", start="1").json
        self.assertNotEqual(a["next_continuation_token"], tok)
        # appended, not committed: not in the table, offset not advanced
        self.assertEqual(self.count(), 0)
        self.assertIsNone(self.status("P", ["CH1"])["CH1"]["last_committed_offset_token"])
        ch = self.state()["channels"][0]
        self.assertEqual([(b["start_offset_token"], b["end_offset_token"])
                          for b in ch["in_flight"]], [("1", "3")])
        self.settings(pause_commits=False)
        st = self.wait_committed("P", "CH1", "3")
        self.assertEqual((st["rows_inserted"], st["rows_parsed"], st["rows_errors"]), (3, 3, 0))
        self.assertEqual(self.client.rows("SELECT ID, NAME, TS, DOC:id FROM T ORDER BY ID"),
                         [["1", "n1", "1704164645.000000000", "1"],
                          ["2", "n2", "1704164645.000000000", "2"],
                          ["3", "n3", "1704164645.000000000", "3"]])
        self.assertIsInstance(st["snowflake_avg_processing_latency_ms"], int)
        self.assertGreaterEqual(st["snowflake_avg_processing_latency_ms"], 150)

    def test_commit_waits_for_the_delay(self):
        self.settings(commit_delay_ms=1500)
        tok = self.open("P", "CH1").json["next_continuation_token"]
        self.append("P", "CH1", tok, [{"id": 1}], offset="1")
        time.sleep(0.5)
        self.assertEqual(self.count(), 0)
        self.wait_committed("P", "CH1", "1")
        self.assertEqual(self.count(), 1)

    def test_batches_commit_in_order_and_offset_follows_the_last(self):
        self.settings(pause_commits=True)
        tok = self.open("P", "CH1").json["next_continuation_token"]
        for i in range(1, 5):
            tok = self.append("P", "CH1", tok, [{"id": i}], offset=str(i)).json[
                "next_continuation_token"]
        # a batch without an offset token leaves the committed token as it was
        self.append("P", "CH1", tok, [{"id": 5}])
        self.commit_now()
        st = self.status("P", ["CH1"])["CH1"]
        self.assertEqual((st["last_committed_offset_token"], st["rows_inserted"]), ("4", 5))
        rows = self.client.admin("GET", "streaming/rows?table=DB.PUBLIC.T")["rows"]
        self.assertEqual([(r["channel"], r["row"], r["offset_token"], r["values"][0])
                          for r in rows],
                         [("CH1", 1, "1", "1"), ("CH1", 2, "2", "2"), ("CH1", 3, "3", "3"),
                          ("CH1", 4, "4", "4"), ("CH1", 5, None, "5")])

    def test_legacy_offset_token_parameter(self):
        """The tutorial and the older reference: one offsetToken parameter."""
        tok = self.open("P", "CH1").json["next_continuation_token"]
        self.append("P", "CH1", tok, [{"id": 1}], raw_query=urllib.parse.urlencode(
            {"continuationToken": tok, "offsetToken": "17"}))
        self.wait_committed("P", "CH1", "17")

    def test_continuation_token_rotates_and_is_single_use(self):
        self.settings(pause_commits=True)
        tok0 = self.open("P", "CH1").json["next_continuation_token"]
        self.assertIn("+", tok0)
        tok1 = self.append("P", "CH1", tok0, [{"id": 1}], offset="1").json[
            "next_continuation_token"]
        # the same token again (a retry after a lost reply): refused, not applied
        r = self.append("P", "CH1", tok0, [{"id": 1}], offset="1", expect=None)
        self.err(r, 400, "ERR_CHANNEL_HAS_INVALID_ROW_SEQUENCER")
        # a token sent without URL-encoding ('+' turns into ' '): refused
        raw = "continuationToken=%s&endOffsetToken=2" % tok1
        r = self.append("P", "CH1", tok1, [{"id": 2}], raw_query=raw, expect=None)
        self.assertEqual(r.status, 400, r.raw)
        self.append("P", "CH1", tok1, [{"id": 2}], offset="2")
        self.commit_now()
        self.assertEqual(self.count(), 2)
        r = self.append("P", "CH1", "", [{"id": 3}], expect=None)
        self.err(r, 400, "ERR_MALFORMED_REQUEST")
        # a token of another channel
        other = self.open("P", "CH2").json["next_continuation_token"]
        self.err(self.append("P", "CH1", other, [{"id": 3}], expect=None), 400,
                 "STALE_CONTINUATION_TOKEN_SEQUENCER")

    def test_reopen_discards_in_flight_and_stales_old_tokens(self):
        tok = self.open("P", "CH1").json["next_continuation_token"]
        tok = self.append("P", "CH1", tok, [{"id": 1}], offset="1").json[
            "next_continuation_token"]
        self.wait_committed("P", "CH1", "1")
        self.settings(pause_commits=True)
        old = self.append("P", "CH1", tok, [{"id": 2}], offset="2").json[
            "next_continuation_token"]
        r = self.open("P", "CH1").json
        self.assertEqual(r["channel_status"]["last_committed_offset_token"], "1")
        self.err(self.append("P", "CH1", old, [{"id": 3}], offset="3", expect=None), 400,
                 "STALE_CONTINUATION_TOKEN_SEQUENCER")
        self.commit_now()
        self.assertEqual(self.count(), 1)          # the in-flight batch was discarded
        tok = self.append("P", "CH1", r["next_continuation_token"], [{"id": 2}],
                          offset="2").json["next_continuation_token"]
        self.commit_now()
        self.assertEqual(self.client.rows("SELECT ID FROM T ORDER BY ID"), [["1"], ["2"]])

    def test_reopen_fail_on_uncommitted_rows(self):
        self.settings(pause_commits=True)
        tok = self.open("P", "CH1").json["next_continuation_token"]
        tok = self.append("P", "CH1", tok, [{"id": 1}], offset="1").json[
            "next_continuation_token"]
        r = self.open("P", "CH1", {"fail_on_uncommitted_rows": True}, expect=409)
        self.err(r, 409, "ERR_CHANNEL_HAS_UNCOMMITTED_DATA")
        # nothing changed: the token still works and the batch still commits
        self.append("P", "CH1", tok, [{"id": 2}], offset="2")
        self.commit_now()
        self.assertEqual(self.count(), 2)
        self.open("P", "CH1", {"fail_on_uncommitted_rows": True})

    def test_open_with_offset_token_sets_it(self):
        r = self.open("P", "CH1", {"offset_token": "41"}).json
        self.assertEqual(r["channel_status"]["last_committed_offset_token"], "41")
        self.assertEqual(self.status("P", ["CH1"])["CH1"]["last_committed_offset_token"], "41")
        r = self.open("P", "CH1", {"offset_token": "7"}).json
        self.assertEqual(r["channel_status"]["last_committed_offset_token"], "7")
        r = self.open("P", "CH1").json   # no offset_token: kept
        self.assertEqual(r["channel_status"]["last_committed_offset_token"], "7")
        self.err(self.open("P", "CH1", {"offset_token": 5}, expect=400), 400,
                 "ERR_MALFORMED_REQUEST")

    def test_offset_tokens_do_not_deduplicate(self):
        """"Snowflake stores this value but doesn't use it ... to prevent
        re-ingestion": resending committed offsets inserts the rows again."""
        tok = self.open("P", "CH1").json["next_continuation_token"]
        tok = self.append("P", "CH1", tok, [{"id": 1}], offset="1").json[
            "next_continuation_token"]
        self.append("P", "CH1", tok, [{"id": 1}], offset="1")
        self.wait_committed("P", "CH1", "1")
        deadline = time.time() + 5
        while self.count() < 2 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.count(), 2)

    def test_row_errors_are_counted_not_refused(self):
        """ON_ERROR = CONTINUE only: bad rows are skipped and counted."""
        tok = self.open("P", "CH1").json["next_continuation_token"]
        data = (b'{"id": 1, "name": "ok"}\n'
                b'{"id": "abc-secret"}\n'          # not a number
                b'[1, 2]\n'                        # not an object
                b'{"id": 2,\n'                     # not JSON
                b'{"name": "no id"}\r\n'           # NULL into NOT NULL
                b'\n'                              # blank: not a row
                b'{"id": 4, "name": "\xff\xfe"}\n'   # not UTF-8
                b'{"id": 3, "ts": "not a time"}\n')
        self.append("P", "CH1", tok, data=data, offset="b1")
        st = self.wait_committed("P", "CH1", "b1")
        self.assertEqual((st["rows_parsed"], st["rows_inserted"], st["rows_errors"],
                          st["rows_error_count"]), (7, 1, 6, 6))
        self.assertEqual(st["last_error_offset_upper_bound"], "b1")
        self.assertIn("Timestamp", st["last_error_message"])
        self.assertRegex(st["last_error_timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        r = self.open("P", "CH1").json["channel_status"]
        self.assertEqual(r["rows_error_count"], 6)
        self.assertIsInstance(r["last_error_timestamp"], int)
        self.assertEqual(self.client.rows("SELECT ID, NAME FROM T"), [["1", "ok"]])
        errors = self.state()["row_errors"]
        self.assertEqual(len(errors), 6)
        self.assertIn("abc-secret", errors[0]["message"])
        # the API's message is redacted; the admin list is not
        msgs = [e["message"] for e in errors]
        self.assertTrue(any("NULL result in a non-nullable column" in m for m in msgs))
        self.assertNotIn("not a time", st["last_error_message"])

    def test_bulk_status(self):
        self.open("P", "C1")
        self.open("P", "Mixed")
        st = self.status("P", ["C1", "Mixed", "NOPE", "c1", "MIXED"])
        self.assertEqual(sorted(st), ["C1", "Mixed"])   # names exact; unknown: no entry
        self.assertEqual(st["C1"]["channel_name"], "C1")
        for k in ("channel_status_code", "last_committed_offset_token", "database_name",
                  "schema_name", "pipe_name", "channel_name", "rows_inserted", "rows_parsed",
                  "rows_errors", "last_error_offset_upper_bound", "last_error_message",
                  "last_error_timestamp", "snowflake_avg_processing_latency_ms"):
            self.assertIn(k, st["C1"])
        # paths are case-insensitive: "mixed" reopens "Mixed"
        self.open("p", "mixed")
        self.assertEqual(len(self.state()["channels"]), 2)
        self.assertEqual(self.status("P", []), {})
        r = self.http("POST", "/v2/streaming/databases/DB/schemas/PUBLIC/pipes/P"
                      ":bulk-channel-status", b'{"channel_names": "C1"}',
                      {"Content-Type": "application/json"})
        self.err(r, 400, "ERR_MALFORMED_REQUEST")
        self.err(Resp(*self._status_raw("NOPIPE")), 404,
                 "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED")

    def _status_raw(self, pipe):
        r = self.http("POST", "/v2/streaming/databases/DB/schemas/PUBLIC/pipes/%s"
                      ":bulk-channel-status" % pipe, b'{"channel_names": []}',
                      {"Content-Type": "application/json"})
        return r.status, r.headers, r.raw

    def test_drop_channel(self):
        tok = self.open("P", "C1", {"offset_token": "9"}).json["next_continuation_token"]
        self.drop("P", "c1")
        self.assertEqual(self.status("P", ["C1"]), {})
        self.err(self.append("P", "C1", tok, [{"id": 1}], expect=None), 404,
                 "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED")
        r = self.open("P", "C1").json      # a new channel: its offset token is gone
        self.assertIsNone(r["channel_status"]["last_committed_offset_token"])
        self.err(self.drop("P", "NOPE", expect=404), 404,
                 "ERR_CHANNEL_DOES_NOT_EXIST_OR_IS_NOT_AUTHORIZED")
        self.settings(pause_commits=True)
        self.append("P", "C1", r["next_continuation_token"], [{"id": 1}], offset="1")
        self.err(self.drop("P", "C1", {"fail_on_uncommitted_rows": True}, expect=409), 409,
                 "ERR_CHANNEL_HAS_UNCOMMITTED_DATA")
        self.drop("P", "C1")       # blind drop: the in-flight batch is discarded
        self.commit_now()
        self.assertEqual(self.count(), 0)

    def test_compression_size_limit_and_media_types(self):
        tok = self.open("P", "C1").json["next_continuation_token"]
        body = ndjson([{"id": i, "name": "x" * 200} for i in range(40)])   # ~9 KB
        self.settings(max_payload_bytes=4000)
        r = self.append("P", "C1", tok, data=body, expect=None)
        self.err(r, 413, "ERR_PAYLOAD_TOO_LARGE")
        # the limit is on the wire, after compression
        tok = self.append("P", "C1", tok, data=gzip.compress(body), offset="g",
                          headers={"Content-Encoding": "gzip"}).json["next_continuation_token"]
        z = zstd_compress(ndjson([{"id": 100}]))
        if z is not None:
            tok = self.append("P", "C1", tok, data=z, offset="z",
                              headers={"Content-Encoding": "zstd"}).json[
                "next_continuation_token"]
        self.err(self.append("P", "C1", tok, data=b"\x1f\x8bnot gzip", expect=None,
                             headers={"Content-Encoding": "gzip"}), 400, "ERR_MALFORMED_REQUEST")
        self.err(self.append("P", "C1", tok, [{"id": 1}], expect=None,
                             headers={"Content-Encoding": "br"}), 415, "ERR_MALFORMED_REQUEST")
        self.err(self.append("P", "C1", tok, [{"id": 1}], expect=None,
                             headers={"Content-Type": "text/plain"}), 415, "ERR_MALFORMED_REQUEST")
        # chunked transfer encoding
        tok = self.append("P", "C1", tok, [{"id": 200}, {"id": 201}], offset="c",
                          chunked=True).json["next_continuation_token"]
        self.wait_committed("P", "C1", "c")
        self.assertEqual(self.count(), 40 + (1 if z is not None else 0) + 2)

    def test_request_rate_limit(self):
        self.settings(requests_per_second=3)
        tok = self.open("P", "C1").json["next_continuation_token"]
        accepted = 0
        for i in range(20):     # a burst: at most 3 accepted within any second
            r = self.append("P", "C1", tok, [{"id": i}], expect=None)
            if r.status != 200:
                break
            accepted += 1
            tok = r.json["next_continuation_token"]
        self.err(r, 429, "ERR_TOO_MANY_REQUESTS")
        self.assertGreaterEqual(accepted, 3)
        self.assertEqual(r.headers.get("Retry-After"), "1")
        time.sleep(1.05)
        self.append("P", "C1", tok, [{"id": 9}])    # the refused request did not use the token

    def test_unknown_names(self):
        self.err(self.open("NOPE", "C1", expect=404), 404,
                 "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED")
        self.assertEqual(self.http("GET", "/v2/streaming/databases/DB").status, 404)
        self.assertEqual(self.http("POST", self.chan_path("P", "C1"), b"{}").status, 405)


class PipeTests(StreamingTestCase):
    def test_default_pipe_created_on_open(self):
        c = self.client
        c.ok("CREATE TABLE EVENTS (ID NUMBER, LABEL VARCHAR, RAW BINARY, OK BOOLEAN)")
        pipes = lambda: [o["fqn"] for o in c.admin("GET", "objects?kind=PIPE")["objects"]]  # noqa
        self.assertEqual(pipes(), [])
        self.err(Resp(*self._status("EVENTS-STREAMING")), 404,
                 "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED")
        tok = self.open("events-streaming", "C1").json   # names are case-insensitive
        self.assertEqual(tok["channel_status"]["pipe_name"], "EVENTS-STREAMING")
        self.assertEqual(pipes(), [["DB", "PUBLIC", "EVENTS-STREAMING"]])
        # MATCH_BY_COLUMN_NAME (case-insensitive); binary as BASE64; extra keys ignored
        rows = [{"id": 1, "Label": "a", "raw": base64.b64encode(b"\x00\xff").decode(),
                 "ok": True, "extra": [1]}]
        self.append("EVENTS-STREAMING", "C1", tok["next_continuation_token"], rows, offset="1")
        self.wait_committed("EVENTS-STREAMING", "C1", "1")
        self.assertEqual(c.rows("SELECT ID, LABEL, RAW, OK FROM EVENTS"),
                         [["1", "a", "00FF", "true"]])
        self.assertEqual(c.rows('SELECT COUNT(*) FROM EVENTS'), [["1"]])

    def _status(self, pipe):
        r = self.http("POST", "/v2/streaming/databases/DB/schemas/PUBLIC/pipes/%s"
                      ":bulk-channel-status" % self.q(pipe), b'{"channel_names": ["C1"]}',
                      {"Content-Type": "application/json"})
        return r.status, r.headers, r.raw

    def test_named_pipe_forms(self):
        c = self.client
        c.ok("CREATE TABLE T (A NUMBER, B VARCHAR)")
        c.ok("CREATE TABLE V (DOC VARIANT)")
        c.ok("CREATE PIPE PM AS COPY INTO T FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING')) "
             "MATCH_BY_COLUMN_NAME = CASE_SENSITIVE")
        c.ok("CREATE PIPE PV AS COPY INTO V FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING'))")
        c.ok("CREATE PIPE PT AS COPY INTO T FROM (SELECT TO_NUMBER($1:x), UPPER($1:y) "
             "FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING'))) CLUSTER_AT_INGEST_TIME = TRUE")
        for pipe, rows in (("PM", [{"A": 1, "B": "m", "a": 9}, {"a": 2, "b": "lower"}]),
                           ("PV", [{"k": [1, 2]}]),
                           ("PT", [{"x": "7", "y": "up"}])):
            tok = self.open(pipe, "C").json["next_continuation_token"]
            self.append(pipe, "C", tok, rows, offset="1")
            self.wait_committed(pipe, "C", "1")
        self.assertEqual(c.rows("SELECT A, B FROM T ORDER BY A NULLS LAST"),
                         [["1", "m"], ["7", "UP"], [None, None]])
        self.assertEqual(c.rows("SELECT DOC:k[1] FROM V"), [["2"]])

    def test_create_pipe_checks(self):
        c = self.client
        c.ok("CREATE TABLE T (A NUMBER, B VARCHAR)")
        src = "FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING'))"

        def fails(sql, code):
            r = c.run(sql)
            self.assertEqual(r.status, 422, r.raw)
            self.assertEqual(r.json["code"], code, r.raw)

        fails("CREATE PIPE X AS COPY INTO T FROM (SELECT $1:a %s)" % src, "002020")
        fails("CREATE PIPE X AS COPY INTO T (A) FROM (SELECT $1:a %s) "
              "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE" % src, "001003")
        fails("CREATE PIPE X AS COPY INTO T %s MATCH_BY_COLUMN_NAME = CASE_SENSITIVE "
              "ON_ERROR = ABORT_STATEMENT" % src, "001008")
        fails("CREATE PIPE X AS COPY INTO T %s" % src, "002023")
        fails("CREATE PIPE X AS COPY INTO T (A, NOPE) FROM (SELECT $1:a, $1:b %s)" % src,
              "000904")
        fails("CREATE PIPE X AS COPY INTO T (A) FROM (SELECT $2 %s)" % src, "001003")
        fails("CREATE PIPE X AS COPY INTO T (A) FROM (SELECT $1:a "
              "FROM TABLE(DATA_SOURCE(TYPE => 'KAFKA')))", "001008")
        fails("CREATE PIPE X AS COPY INTO T %s MATCH_BY_COLUMN_NAME = CASE_SENSITIVE "
              "PURGE = TRUE" % src, "001008")
        fails("COPY INTO T %s MATCH_BY_COLUMN_NAME = CASE_SENSITIVE" % src, "001003")
        fails("CREATE PIPE X AS COPY INTO NOPE %s MATCH_BY_COLUMN_NAME = CASE_SENSITIVE" % src,
              "002003")
        self.assertEqual([o for o in c.admin("GET", "objects?kind=PIPE")["objects"]], [])

    def test_classic_pipe_is_not_a_streaming_pipe(self):
        self.stage()
        self.client.ok("CREATE TABLE T (A NUMBER)")
        self.client.ok("CREATE PIPE SP AS COPY INTO T FROM @ST FILE_FORMAT = (TYPE = CSV)")
        self.err(self.open("SP", "C1", expect=400), 400, "ERR_PIPE_KIND_NOT_SUPPORTED")

    def test_table_or_pipe_dropped(self):
        c = self.client
        c.ok("CREATE TABLE T (A NUMBER)")
        c.ok("CREATE PIPE P AS COPY INTO T FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING')) "
             "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")
        self.settings(pause_commits=True)
        tok = self.open("P", "C1").json["next_continuation_token"]
        tok = self.append("P", "C1", tok, [{"a": 1}], offset="1").json["next_continuation_token"]
        c.ok("DROP TABLE T")
        self.commit_now()
        ch = self.state()["channels"][0]
        self.assertEqual(ch["status"]["channel_status_code"],
                         "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED")
        self.assertIsNone(ch["status"]["last_committed_offset_token"])
        self.err(self.append("P", "C1", tok, [{"a": 1}], expect=None), 404,
                 "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED")
        c.ok("CREATE TABLE T (A NUMBER)")
        self.err(self.append("P", "C1", tok, [{"a": 1}], expect=None), 409,
                 "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED")
        tok = self.open("P", "C1").json["next_continuation_token"]   # reopen: valid again
        self.append("P", "C1", tok, [{"a": 2}], offset="2")
        self.commit_now()
        self.assertEqual(c.rows("SELECT A FROM T"), [["2"]])
        c.ok("DROP PIPE P")
        self.err(self.append("P", "C1", tok, [{"a": 1}], expect=None), 404,
                 "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED")

    def test_privileges_of_managed_users(self):
        from test_account import body
        c = self.client
        c.ok("CREATE TABLE T (A NUMBER)")
        c.ok("CREATE PIPE P AS COPY INTO T FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING')) "
             "MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE")
        c.ok("CREATE ROLE R")
        c.ok("CREATE USER SVC DEFAULT_ROLE = R RSA_PUBLIC_KEY = '%s'" % body(self.key2))
        c.ok("GRANT ROLE R TO USER SVC")
        c.ok("GRANT USAGE ON DATABASE DB TO ROLE R")
        c.ok("GRANT USAGE ON SCHEMA DB.PUBLIC TO ROLE R")
        svc = make_jwt(self.key2, user="SVC")
        self.err(self.open("P", "C1", expect=403, token=svc), 403,
                 "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED")
        self.err(self.open("T-STREAMING", "C1", expect=403, token=svc), 403,
                 "ERR_TABLE_DOES_NOT_EXIST_NOT_AUTHORIZED")
        c.ok("GRANT INSERT ON TABLE T TO ROLE R")
        self.open("T-STREAMING", "C1", token=svc)   # a default pipe needs no OPERATE
        self.err(self.open("P", "C1", expect=403, token=svc), 403,
                 "ERR_PIPE_DOES_NOT_EXIST_OR_NOT_AUTHORIZED")
        c.ok("GRANT OPERATE ON PIPE P TO ROLE R")
        tok = self.open("P", "C1", token=svc).json["next_continuation_token"]
        self.append("P", "C1", tok, [{"a": 5}], offset="1", token=svc)
        self.wait_committed("P", "C1", "1")
        self.assertEqual(c.rows("SELECT A FROM T"), [["5"]])


class FaultTests(StreamingTestCase):
    def setUp(self):
        super().setUp()
        self.client.ok("CREATE TABLE T (A NUMBER)")
        self.tok = self.open("T-STREAMING", "C1").json["next_continuation_token"]

    def fault(self, **spec):
        spec.setdefault("path", "/v2/streaming/")
        self.client.admin("POST", "faults", spec)

    def test_throttling_and_server_errors(self):
        self.client.admin("DELETE", "requests")
        self.fault(action="429", retry_after="2", path="/rows")
        r = self.append("T-STREAMING", "C1", self.tok, [{"a": 1}], expect=None)
        self.err(r, 429, "ERR_TOO_MANY_REQUESTS")
        self.assertEqual(r.headers["Retry-After"], "2")
        for status in ("408", "410", "500", "503", "504"):
            self.fault(action=status, path="/rows")
            r = self.append("T-STREAMING", "C1", self.tok, [{"a": 1}], expect=None)
            self.assertEqual(r.status, int(status))
            self.assertTrue(r.headers["Content-Type"].startswith("text/html"))
        self.fault(action="401", path="/hostname")
        self.assertEqual(self.http("GET", "/v2/streaming/hostname").status, 401)
        # none of these appended anything: the token is still the current one
        self.append("T-STREAMING", "C1", self.tok, [{"a": 1}], offset="1")
        self.wait_committed("T-STREAMING", "C1", "1")
        self.assertEqual(self.count(), 1)
        faults = [r["fault"] for r in self.client.admin("GET", "requests")["requests"]
                  if r["fault"]]
        self.assertEqual(faults, ["429", "408", "410", "500", "503", "504", "401"])

    def test_timeouts_and_lost_replies(self):
        self.settings(pause_commits=True)
        self.fault(action="drop", path="/rows")
        with self.assertRaises((http.client.HTTPException, ConnectionError)):
            self.append("T-STREAMING", "C1", self.tok, [{"a": 1}], offset="1")
        # applied, but the reply is lost: the client cannot know the token moved on
        self.fault(action="drop_after", path="/rows")
        with self.assertRaises((http.client.HTTPException, ConnectionError)):
            self.append("T-STREAMING", "C1", self.tok, [{"a": 1}], offset="1")
        r = self.append("T-STREAMING", "C1", self.tok, [{"a": 1}], offset="1", expect=None)
        self.err(r, 400, "ERR_CHANNEL_HAS_INVALID_ROW_SEQUENCER")
        # recovery: reopen, wait for the committed offset, resend what it lacks
        self.fault(action="delay", delay_ms=300, path="/channels/C1$")
        t0 = time.time()
        r = self.open("T-STREAMING", "C1").json
        self.assertGreaterEqual(time.time() - t0, 0.3)
        # the reopen discarded the batch that was still in flight
        self.assertIsNone(r["channel_status"]["last_committed_offset_token"])
        tok = self.append("T-STREAMING", "C1", r["next_continuation_token"], [{"a": 1}],
                          offset="1").json["next_continuation_token"]
        self.settings(pause_commits=False)
        self.wait_committed("T-STREAMING", "C1", "1")
        self.assertEqual(self.count(), 1)
        # a lost reply whose batch did commit: the reopen reports it, nothing to resend
        self.fault(action="drop_after", path="/rows")
        with self.assertRaises((http.client.HTTPException, ConnectionError)):
            self.append("T-STREAMING", "C1", tok, [{"a": 2}], offset="2")
        self.wait_committed("T-STREAMING", "C1", "2")
        r = self.open("T-STREAMING", "C1").json
        self.assertEqual(r["channel_status"]["last_committed_offset_token"], "2")
        self.assertEqual(self.count(), 2)

    def test_invalidated_channel(self):
        self.fault(action="invalidate", path="/rows")
        r = self.append("T-STREAMING", "C1", self.tok, [{"a": 1}], expect=None)
        self.err(r, 409, "ERR_CHANNEL_MUST_BE_REOPENED")
        st = self.status("T-STREAMING", ["C1"])["C1"]
        self.assertEqual(st["channel_status_code"], "ERR_CHANNEL_MUST_BE_REOPENED")
        r = self.open("T-STREAMING", "C1").json
        self.assertEqual(r["channel_status"]["channel_status_code"], "SUCCESS")
        tok = r["next_continuation_token"]
        self.client.admin("POST", "streaming", {"invalidate": {
            "pipe": 'DB.PUBLIC."T-STREAMING"', "channel": "C1",
            "code": "ERR_CHANNEL_MUST_BE_REOPENED_DUE_TO_ROW_SEQ_GAP"}})
        self.err(self.append("T-STREAMING", "C1", tok, [{"a": 1}], expect=None), 409,
                 "ERR_CHANNEL_MUST_BE_REOPENED_DUE_TO_ROW_SEQ_GAP")

    def test_superseded_channel(self):
        """Another client reopened the channel: the old continuation token is stale."""
        self.settings(pause_commits=True)
        tok = self.append("T-STREAMING", "C1", self.tok, [{"a": 1}], offset="1").json[
            "next_continuation_token"]
        self.fault(action="supersede", path="/rows")
        self.err(self.append("T-STREAMING", "C1", tok, [{"a": 2}], expect=None), 400,
                 "STALE_CONTINUATION_TOKEN_SEQUENCER")
        self.commit_now()
        self.assertEqual(self.count(), 0)    # what was in flight was discarded

    def test_restart_keeps_channels_and_in_flight(self):
        self.settings(pause_commits=True)
        tok = self.append("T-STREAMING", "C1", self.tok, [{"a": 1}], offset="1").json[
            "next_continuation_token"]
        self.emu.stop()
        self.emu.start()
        type(self).client = Client(self.emu.port, self.jwt)
        self.settings(commit_delay_ms=200, pause_commits=False, requests_per_second=0)
        st = self.wait_committed("T-STREAMING", "C1", "1")
        self.assertEqual(st["rows_inserted"], 1)
        self.append("T-STREAMING", "C1", tok, [{"a": 2}], offset="2")   # the token survives
        self.wait_committed("T-STREAMING", "C1", "2")
        self.assertEqual(self.count(), 2)

    def test_reset_forgets_channels(self):
        self.client.admin("POST", "reset")
        self.assertEqual(self.state()["channels"], [])


class SecretRegistryTests(StreamingTestCase):
    @classmethod
    def setUpClass(cls):
        fd, cls.secrets = tempfile.mkstemp(prefix="sfemu-secrets-")
        os.close(fd)
        os.environ["SFEXPORT_SECRETS_FILE"] = cls.secrets
        try:
            super().setUpClass()
        finally:
            del os.environ["SFEXPORT_SECRETS_FILE"]

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        os.remove(cls.secrets)

    def test_issued_scoped_tokens_are_registered(self):
        body = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                       "scope": "127.0.0.1:%d" % self.emu.port}).encode()
        r = self.http("POST", "/oauth/token", body,
                      {"Content-Type": "application/x-www-form-urlencoded"})
        tok = r.json["token"]
        with open(self.secrets, "rb") as f:
            values = [base64.b64decode(line.split(b"\t")[1]) for line in f if b"\t" in line]
        self.assertIn(tok.encode(), values)


if __name__ == "__main__":
    unittest.main()
