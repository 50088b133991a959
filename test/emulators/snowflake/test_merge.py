"""Tests for DML, MERGE, staged-file queries, window functions and transactions in
multi-statement requests (sfemu/dml.py, sfemu/relations.py, sfemu/txn.py).

Run: /usr/bin/python3 -m unittest discover -s test/emulators/snowflake -p 'test_*.py' -v
"""

import unittest

from test_server import EmulatorTestCase

MULTI = {"MULTI_STATEMENT_COUNT": "0"}


class DmlTestCase(EmulatorTestCase):
    def ok(self, sql, **kw):
        return self.client.ok(sql, **kw)

    def rows(self, sql, **kw):
        return self.client.rows(sql, **kw)

    def fail(self, sql, **kw):
        r = self.client.run(sql, **kw)
        self.assertEqual(r.status, 422, "%s -> %d %s" % (sql, r.status, r.raw[:300]))
        return r.json

    def counts(self, sql, **kw):
        body = self.ok(sql, **kw)
        names = [c["name"] for c in body["resultSetMetaData"]["rowType"]]
        return dict(zip(names, [int(x) for x in body["data"][0]])), body.get("stats")

    def multi(self, sql, **kw):
        return self.client.run(sql, parameters=dict(MULTI, **kw.pop("parameters", {})), **kw)


class DmlTests(DmlTestCase):
    def test_insert_values_select_and_not_null(self):
        self.ok("CREATE TABLE t (id INT PRIMARY KEY, name VARCHAR(5) NOT NULL, note VARCHAR)")
        c, stats = self.counts("INSERT INTO t (id, name) VALUES (1, 'a'), (2, 'b')")
        self.assertEqual(c, {"number of rows inserted": 2})
        self.assertEqual(stats["numRowsInserted"], 2)
        # PRIMARY KEY is not enforced: a second row with id 1 is accepted
        self.ok("INSERT INTO t VALUES (1, 'dup', NULL)")
        self.assertEqual(self.rows("SELECT COUNT(*) FROM t WHERE id = 1"), [["2"]])
        # ... but it implies NOT NULL, and NOT NULL is enforced
        err = self.fail("INSERT INTO t (name) VALUES ('x')")
        self.assertEqual(err["code"], "100072")
        err = self.fail("INSERT INTO t (id, name) VALUES (3, NULL)")
        self.assertEqual(err["code"], "100072")
        err = self.fail("INSERT INTO t (id, name) VALUES (3, 'toolong')")
        self.assertEqual(err["code"], "100078")
        err = self.fail("INSERT INTO t (id, name) VALUES (3)")
        self.assertEqual(err["code"], "002020")
        self.assertEqual(self.rows("SELECT COUNT(*) FROM t"), [["3"]], "nothing was inserted")
        self.ok("CREATE TABLE u (id NUMBER(10,2), name VARCHAR)")
        c, _ = self.counts("INSERT INTO u SELECT id, name FROM t WHERE id = 1")
        self.assertEqual(c["number of rows inserted"], 2)
        self.assertEqual(self.rows("SELECT id, name FROM u ORDER BY name"),
                         [["1.00", "a"], ["1.00", "dup"]])
        self.ok("INSERT OVERWRITE INTO u (id) SELECT 7")
        self.assertEqual(self.rows("SELECT id, name FROM u"), [["7.00", None]])
        r = self.client.run("DESC TABLE t")
        cols = {row[0]: row for row in r.json["data"]}
        self.assertEqual(cols["ID"][3:6], ["N", None, "Y"], "null? N, primary key Y")
        self.assertEqual(cols["NOTE"][5], "N")

    def test_update_and_delete(self):
        self.ok("CREATE TABLE t (k INT, v INT)")
        self.ok("INSERT INTO t VALUES (0, 10), (1, 20), (2, 30)")
        c, stats = self.counts("UPDATE t SET v = v + 1 WHERE k >= 1")
        self.assertEqual(c, {"number of rows updated": 2, "number of multi-joined rows updated": 0})
        self.assertEqual(stats["numRowsUpdated"], 2)
        self.assertEqual(self.rows("SELECT v FROM t ORDER BY k"), [["10"], ["21"], ["31"]])
        # the documented multi-joined update: ERROR_ON_NONDETERMINISTIC_UPDATE is FALSE by default
        self.ok("CREATE TABLE src (k INT, v INT)")
        self.ok("INSERT INTO src VALUES (0, 11), (0, 12), (0, 13)")
        c, _ = self.counts("UPDATE t SET v = src.v FROM src WHERE t.k = src.k")
        self.assertEqual(c, {"number of rows updated": 1, "number of multi-joined rows updated": 1})
        self.assertIn(self.rows("SELECT v FROM t WHERE k = 0")[0][0], ("11", "12", "13"))
        err = self.fail("UPDATE t SET v = src.v FROM src WHERE t.k = src.k",
                        parameters={"ERROR_ON_NONDETERMINISTIC_UPDATE": "TRUE"})
        self.assertEqual(err["code"], "100090")
        self.assertIn("Duplicate row detected during DML action", err["message"])
        err = self.fail("UPDATE t SET t.v = 1")
        self.assertEqual(err["code"], "000904", "UPDATE t SET t.col is invalid (docs)")
        c, stats = self.counts("DELETE FROM t WHERE v > 25")
        self.assertEqual(c, {"number of rows deleted": 1})
        self.assertEqual(stats["numRowsDeleted"], 1)
        c, _ = self.counts("DELETE FROM t USING src WHERE t.k = src.k")
        self.assertEqual(c, {"number of rows deleted": 1})
        self.assertEqual(self.rows("SELECT k FROM t"), [["1"]])
        err = self.fail("DELETE FROM nosuch")
        self.assertEqual(err["code"], "002003")

    def test_subqueries_and_timestamps(self):
        self.ok("CREATE TABLE t (id INT, at TIMESTAMP_NTZ, d DATE)")
        self.ok("INSERT INTO t (id, at, d) VALUES (1, CURRENT_TIMESTAMP(), '2024-01-02'), "
                "(2, '2024-05-06 07:08:09', CURRENT_DATE())")
        self.assertEqual(self.rows("SELECT COUNT(*) FROM t WHERE at IS NOT NULL AND d IS NOT NULL"),
                         [["2"]])
        self.ok("CREATE TABLE gone (id INT)")
        self.ok("INSERT INTO gone VALUES (2), (3)")
        c, _ = self.counts("DELETE FROM t WHERE id IN (SELECT id FROM gone)")
        self.assertEqual(c, {"number of rows deleted": 1})
        self.ok("CREATE TABLE wm (table_name VARCHAR, last_batch INT)")
        self.ok("INSERT INTO wm VALUES ('T', 4)")
        # apply a batch only when the watermark is behind it (idempotent re-apply)
        sql = ("UPDATE t SET id = id + 10 WHERE (SELECT last_batch FROM wm WHERE "
               "table_name = 'T') < %d")
        self.assertEqual(self.counts(sql % 5)[0]["number of rows updated"], 1)
        self.assertEqual(self.counts(sql % 4)[0]["number of rows updated"], 0)
        self.assertEqual(self.rows("SELECT id FROM t WHERE EXISTS (SELECT 1 FROM wm) AND id NOT IN "
                                   "(SELECT id FROM gone)"), [["11"]])
        err = self.fail("SELECT (SELECT id FROM gone)")
        self.assertEqual(err["code"], "090150")
        self.assertEqual(self.rows("SELECT d::VARCHAR FROM t"), [["2024-01-02"]])

    def test_transient_if_not_exists_out_of_line_key(self):
        self.ok("CREATE OR REPLACE TRANSIENT TABLE ch (id INT, seq INT, op VARCHAR)")
        self.ok("CREATE TABLE IF NOT EXISTS wm (table_name VARCHAR, last_batch INT, "
                "CONSTRAINT pk PRIMARY KEY (table_name))")
        body = self.ok("CREATE TABLE IF NOT EXISTS wm (table_name VARCHAR)")
        self.assertIn("already exists", body["data"][0][0])
        objs = {tuple(o["fqn"]): o for o in self.client.admin("GET", "objects?kind=TABLE")["objects"]}
        self.assertTrue(objs[("DB", "PUBLIC", "CH")].get("transient"))
        wm = objs[("DB", "PUBLIC", "WM")]
        self.assertTrue(wm["columns"][0]["primary_key"])
        self.assertFalse(wm["columns"][0]["nullable"])
        self.assertEqual(self.fail("INSERT INTO wm (last_batch) VALUES (1)")["code"], "100072")


class MergeTests(DmlTestCase):
    def setUp(self):
        super().setUp()
        self.ok("CREATE OR REPLACE TABLE mt (id INTEGER, val INTEGER, status VARCHAR)")
        self.ok("INSERT INTO mt (id, val, status) VALUES (1, 10, 'Production'), (2, 20, 'Alpha'), "
                "(3, 30, 'Production')")
        self.ok("CREATE OR REPLACE TABLE ms (id INTEGER, marked VARCHAR, isnewstatus INTEGER, "
                "newval INTEGER, newstatus VARCHAR)")
        self.ok("INSERT INTO ms VALUES (1, 'Y', 0, 10, 'Production'), (2, 'N', 1, 50, 'Beta'), "
                "(3, 'N', 0, 60, 'Deprecated'), (4, 'N', 0, 40, 'Production')")

    def test_documented_example_with_all_operations(self):
        c, stats = self.counts(
            "MERGE INTO mt USING ms ON mt.id = ms.id "
            "WHEN MATCHED AND ms.marked = 'Y' THEN DELETE "
            "WHEN MATCHED AND ms.isnewstatus = 1 THEN UPDATE SET val = ms.newval, status = ms.newstatus "
            "WHEN MATCHED THEN UPDATE SET val = ms.newval "
            "WHEN NOT MATCHED THEN INSERT (id, val, status) VALUES (ms.id, ms.newval, ms.newstatus)")
        self.assertEqual(c, {"number of rows inserted": 1, "number of rows updated": 2,
                             "number of rows deleted": 1})
        self.assertEqual(stats, {"numRowsInserted": 1, "numRowsUpdated": 2, "numRowsDeleted": 1,
                                 "numDuplicateRowsUpdated": 0})
        self.assertEqual(self.rows("SELECT * FROM mt ORDER BY id"),
                         [["2", "50", "Beta"], ["3", "60", "Production"], ["4", "40", "Production"]])

    def test_result_columns_follow_the_clauses(self):
        body = self.ok("MERGE INTO mt USING ms ON mt.id = ms.id "
                       "WHEN MATCHED THEN UPDATE SET mt.val = ms.newval")
        self.assertEqual([c["name"] for c in body["resultSetMetaData"]["rowType"]],
                         ["number of rows updated"])
        self.assertEqual(body["data"], [["3"]])
        self.assertEqual(body["resultSetMetaData"]["rowType"][0]["type"], "fixed")
        body = self.ok("MERGE INTO mt t USING ms s ON t.id = s.id "
                       "WHEN MATCHED THEN UPDATE SET val = s.newval "
                       "WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)")
        self.assertEqual([c["name"] for c in body["resultSetMetaData"]["rowType"]],
                         ["number of rows inserted", "number of rows updated"])
        self.assertEqual(body["data"], [["1", "3"]])
        c, _ = self.counts("MERGE INTO mt USING (SELECT id FROM ms WHERE id > 3) s "
                           "ON mt.id = s.id WHEN MATCHED THEN DELETE")
        self.assertEqual(c, {"number of rows deleted": 1})

    def test_nondeterministic_update_is_an_error(self):
        self.ok("CREATE OR REPLACE TABLE tgt (k NUMBER, v NUMBER)")
        self.ok("INSERT INTO tgt VALUES (0, 10)")
        self.ok("CREATE OR REPLACE TABLE src (k NUMBER, v NUMBER)")
        self.ok("INSERT INTO src VALUES (0, 11), (0, 12), (0, 13)")
        for sql in ("MERGE INTO tgt USING src ON tgt.k = src.k "
                    "WHEN MATCHED THEN UPDATE SET tgt.v = src.v",
                    "MERGE INTO tgt USING src ON tgt.k = src.k "
                    "WHEN MATCHED AND src.v = 11 THEN DELETE "
                    "WHEN MATCHED THEN UPDATE SET tgt.v = src.v"):
            err = self.fail(sql)
            self.assertEqual((err["code"], err["sqlState"]), ("100090", "42P18"))
            self.assertEqual(err["message"],
                             "Duplicate row detected during DML action\nRow Values: [0, 10]")
            self.assertEqual(self.rows("SELECT k, v FROM tgt"), [["0", "10"]], "nothing changed")
        # ERROR_ON_NONDETERMINISTIC_MERGE = FALSE: one of the source rows is used
        body = self.ok("MERGE INTO tgt USING src ON tgt.k = src.k "
                       "WHEN MATCHED THEN UPDATE SET tgt.v = src.v",
                       parameters={"ERROR_ON_NONDETERMINISTIC_MERGE": False})
        self.assertEqual(body["stats"]["numDuplicateRowsUpdated"], 1)
        self.assertIn(self.rows("SELECT v FROM tgt")[0][0], ("11", "12", "13"))

    def test_deterministic_duplicate_joins(self):
        self.ok("CREATE OR REPLACE TABLE tgt (k NUMBER, v NUMBER)")
        self.ok("CREATE OR REPLACE TABLE src (k NUMBER, v NUMBER)")
        self.ok("INSERT INTO src VALUES (0, 11), (0, 12), (0, 13)")
        # joined values that match no clause do not prevent an update
        self.ok("INSERT INTO tgt VALUES (0, 10)")
        c, _ = self.counts("MERGE INTO tgt USING src ON tgt.k = src.k "
                           "WHEN MATCHED AND src.v = 11 THEN UPDATE SET tgt.v = src.v")
        self.assertEqual(c, {"number of rows updated": 1})
        self.assertEqual(self.rows("SELECT v FROM tgt"), [["11"]])
        # several deletes do not conflict
        c, _ = self.counts("MERGE INTO tgt USING src ON tgt.k = src.k "
                           "WHEN MATCHED AND src.v <= 12 THEN DELETE")
        self.assertEqual(c, {"number of rows deleted": 1})
        # duplicates in the source with no match in the target: each copy is inserted
        c, _ = self.counts("MERGE INTO tgt USING src ON tgt.k = src.k "
                           "WHEN MATCHED THEN UPDATE SET tgt.v = src.v "
                           "WHEN NOT MATCHED THEN INSERT (k, v) VALUES (src.k, src.v)")
        self.assertEqual(c, {"number of rows inserted": 3, "number of rows updated": 0})
        # GROUP BY in the source makes it one row per key
        c, _ = self.counts("MERGE INTO tgt USING (SELECT k, MAX(v) AS v FROM src GROUP BY k) b "
                           "ON tgt.k = b.k WHEN MATCHED AND tgt.v = 13 THEN UPDATE SET tgt.v = b.v "
                           "WHEN MATCHED THEN DELETE")
        self.assertEqual(c, {"number of rows updated": 1, "number of rows deleted": 2})

    def test_names_aliases_and_syntax_errors(self):
        err = self.fail("MERGE INTO mt USING ms ON id = ms.id WHEN MATCHED THEN DELETE")
        self.assertEqual(err["code"], "002028", "an unqualified name in both tables is ambiguous")
        err = self.fail("MERGE INTO mt AS t USING ms AS s ON mt.id = s.id WHEN MATCHED THEN DELETE")
        self.assertEqual(err["code"], "000904", "a table with an alias is named by its alias")
        err = self.fail("MERGE INTO mt USING ms ON mt.id = ms.id WHEN MATCHED THEN DELETE "
                        "WHEN MATCHED AND ms.marked = 'Y' THEN UPDATE SET val = 1")
        self.assertEqual(err["code"], "001003", "a clause without AND must come last")
        err = self.fail("MERGE INTO mt USING ms ON mt.id = ms.id WHEN NOT MATCHED THEN "
                        "INSERT (id, val) VALUES (ms.id)")
        self.assertEqual(err["code"], "002020")
        err = self.fail("MERGE INTO mt USING ms ON mt.id = ms.id WHEN MATCHED THEN "
                        "UPDATE SET nosuch = 1")
        self.assertEqual(err["code"], "000904")
        self.assertEqual(self.rows("SELECT COUNT(*) FROM mt"), [["3"]])

    def test_all_by_name_and_watermark_upsert(self):
        self.ok("CREATE TABLE wm (table_name VARCHAR PRIMARY KEY, last_batch INT)")
        sql = ("MERGE INTO wm USING (SELECT 'PUBLIC.T1' AS table_name, %d AS last_batch) s "
               "ON wm.table_name = s.table_name "
               "WHEN MATCHED THEN UPDATE SET last_batch = s.last_batch "
               "WHEN NOT MATCHED THEN INSERT (table_name, last_batch) VALUES (s.table_name, s.last_batch)")
        self.assertEqual(self.counts(sql % 5)[0], {"number of rows inserted": 1,
                                                   "number of rows updated": 0})
        self.assertEqual(self.counts(sql % 6)[0], {"number of rows inserted": 0,
                                                   "number of rows updated": 1})
        self.assertEqual(self.rows("SELECT table_name, last_batch FROM wm"), [["PUBLIC.T1", "6"]])
        self.ok("CREATE TABLE wm2 (last_batch INT, table_name VARCHAR)")
        c, _ = self.counts("MERGE INTO wm2 USING wm ON wm2.table_name = wm.table_name "
                           "WHEN MATCHED THEN UPDATE ALL BY NAME WHEN NOT MATCHED THEN INSERT ALL BY NAME")
        self.assertEqual(c, {"number of rows inserted": 1, "number of rows updated": 0})
        self.assertEqual(self.rows("SELECT table_name, last_batch FROM wm2"), [["PUBLIC.T1", "6"]])


class StagedQueryTests(DmlTestCase):
    def test_csv_with_named_format_pattern_and_metadata(self):
        self.write("d/data1.csv", "a|b\nc|d\n")
        self.write("d/data2.csv", "e|f\ng|h\n")
        self.write("d/skip.txt", "x|y\n")
        self.stage()
        self.ok("CREATE FILE FORMAT myformat TYPE = CSV FIELD_DELIMITER = '|'")
        body = self.ok("SELECT t.$1, t.$2 FROM @ST/d/ (file_format => 'myformat', "
                       "pattern => '.*data.*[.]csv') t ORDER BY 1")
        self.assertEqual([c["name"] for c in body["resultSetMetaData"]["rowType"]], ["$1", "$2"])
        self.assertEqual(body["data"], [["a", "b"], ["c", "d"], ["e", "f"], ["g", "h"]])
        # without the format the default delimiter applies
        self.assertEqual(self.rows("SELECT $1, $2 FROM @ST/d/data1.csv"), [["a|b", None], ["c|d", None]])
        self.assertEqual(self.rows("SELECT METADATA$FILENAME, METADATA$FILE_ROW_NUMBER, $1 "
                                   "FROM @ST (FILE_FORMAT => myformat) WHERE $2 = 'h'"),
                         [["d/data2.csv", "2", "g"]])
        err = self.fail("SELECT $1 FROM @NOSTAGE")
        self.assertEqual(err["code"], "002003")
        err = self.fail("SELECT $1 FROM @ST (FILE_FORMAT => 'nofmt')")
        self.assertEqual(err["code"], "002003")

    def test_json_stage_format(self):
        self.write("j/data1.json", '{"a": {"b": "x1", "c": "y1"}}\n{"a": {"b": "x2", "c": "y2"}}\n')
        self.stage("TYPE = JSON", name="JST")
        self.assertEqual(self.rows("SELECT $1:a.b::VARCHAR, GET_IGNORE_CASE($1:a, 'C') "
                                   "FROM @JST/j/ ORDER BY 1"),
                         [["x1", '"y1"'], ["x2", '"y2"']])


class WindowTests(DmlTestCase):
    def test_row_number_rank_and_qualify(self):
        self.ok("CREATE TABLE ev (k INT, seq INT, v VARCHAR)")
        self.ok("INSERT INTO ev VALUES (1, 1, 'a'), (1, 3, 'c'), (1, 2, 'b'), (2, 1, 'x'), "
                "(3, 5, 'p'), (3, 5, 'q')")
        self.assertEqual(self.rows("SELECT k, v FROM ev QUALIFY ROW_NUMBER() OVER "
                                   "(PARTITION BY k ORDER BY seq DESC) = 1 ORDER BY k")[:2],
                         [["1", "c"], ["2", "x"]])
        self.assertEqual(self.rows("SELECT k, seq, ROW_NUMBER() OVER (PARTITION BY k ORDER BY seq) "
                                   "AS rn FROM ev WHERE k = 1 ORDER BY rn"),
                         [["1", "1", "1"], ["1", "2", "2"], ["1", "3", "3"]])
        self.assertEqual(self.rows("SELECT v, RANK() OVER (ORDER BY seq DESC) r, DENSE_RANK() "
                                   "OVER (ORDER BY seq DESC) d FROM ev ORDER BY r, v"),
                         [["p", "1", "1"], ["q", "1", "1"], ["c", "3", "2"], ["b", "4", "3"],
                          ["a", "5", "4"], ["x", "5", "4"]])
        self.assertEqual(self.rows("SELECT k, COUNT(*) OVER (PARTITION BY k) n FROM ev "
                                   "QUALIFY n > 1 AND ROW_NUMBER() OVER (PARTITION BY k ORDER BY v) = 1 "
                                   "ORDER BY k"), [["1", "3"], ["3", "2"]])
        self.assertEqual(self.fail("SELECT k FROM ev QUALIFY k = 1")["code"], "001003")
        self.assertEqual(self.fail("SELECT ROW_NUMBER() OVER (PARTITION BY k) FROM ev")["code"],
                         "002303")
        # a subquery as a FROM item
        self.assertEqual(self.rows("SELECT COUNT(*) FROM (SELECT k FROM ev WHERE seq > 1) x"),
                         [["3"]])
        self.assertEqual(self.rows("SELECT CASE WHEN k = 1 THEN 'one' ELSE 'other' END, "
                                   "SPLIT_PART('a/b/c', '/', 2), REPLACE('a%3Ab', '%3A', CHR(58)) "
                                   "FROM ev WHERE seq = 1 ORDER BY k"),
                         [["one", "b", "a:b"], ["other", "b", "a:b"]])


class TransactionTests(DmlTestCase):
    def setUp(self):
        super().setUp()
        self.stage()
        self.ok("CREATE TABLE target (id INT PRIMARY KEY, v VARCHAR)")
        self.ok("INSERT INTO target VALUES (1, 'one'), (2, 'two')")
        self.ok("CREATE TABLE watermark (table_name VARCHAR PRIMARY KEY, last_batch INT)")
        self.ok("INSERT INTO watermark VALUES ('TARGET', 0)")
        self.ok("CREATE OR REPLACE TRANSIENT TABLE changes (id INT, op VARCHAR, v VARCHAR, seq INT)")

    def apply_batch(self, fname, batch):
        """The apply of one change batch, as issue 19 describes it."""
        return self.multi(
            "BEGIN TRANSACTION;\n"
            "COPY INTO changes FROM @ST FILES = ('%s');\n"
            "MERGE INTO target t USING (SELECT id, op, v FROM changes "
            "QUALIFY ROW_NUMBER() OVER (PARTITION BY id ORDER BY seq DESC) = 1) s ON t.id = s.id "
            "WHEN MATCHED AND s.op = 'D' THEN DELETE "
            "WHEN MATCHED THEN UPDATE SET v = s.v "
            "WHEN NOT MATCHED AND s.op <> 'D' THEN INSERT (id, v) VALUES (s.id, s.v);\n"
            "UPDATE watermark SET last_batch = %d WHERE table_name = 'TARGET';\n"
            "TRUNCATE TABLE changes;\n"
            "COMMIT" % (fname, batch))

    def state(self):
        return (self.rows("SELECT id, v FROM target ORDER BY id"),
                self.rows("SELECT last_batch FROM watermark"),
                self.rows("SELECT COUNT(*) FROM changes"))

    def test_copy_merge_watermark_commit(self):
        self.write("b1.csv", "1,U,uno,1\n1,U,eins,2\n2,D,,3\n3,I,three,4\n")
        r = self.apply_batch("b1.csv", 1)
        self.assertEqual(r.status, 200, r.raw[:500])
        body = r.json
        self.assertEqual(body["data"], [["Multiple statements executed successfully."]])
        self.assertEqual(len(body["statementHandles"]), 6)
        merge = self.client.poll(body["statementHandles"][2]).json
        self.assertEqual(merge["data"], [["1", "1", "1"]], "1 inserted, 1 updated, 1 deleted")
        copy = self.client.poll(body["statementHandles"][1]).json
        self.assertEqual(copy["data"][0][1], "LOADED")
        self.assertEqual(self.state(), ([["1", "eins"], ["3", "three"]], [["1"]], [["0"]]))

    def test_error_mid_transaction_rolls_everything_back(self):
        self.write("b2.csv", "1,U,uno,1\n4,I,four,2\n")
        # an UPDATE that fails: a value too long for the column
        r = self.multi("BEGIN;\n"
                       "COPY INTO changes FROM @ST FILES = ('b2.csv');\n"
                       "MERGE INTO target t USING changes s ON t.id = s.id "
                       "WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT (id, v) "
                       "VALUES (s.id, s.v);\n"
                       "  UPDATE watermark SET last_batch = 'not a number' WHERE table_name = 'TARGET';\n"
                       "COMMIT")
        self.assertEqual(r.status, 422, r.raw[:400])
        err = r.json
        self.assertEqual((err["code"], err["sqlState"]), ("100132", "P0000"))
        self.assertTrue(err["message"].startswith(
            'JavaScript execution error: Uncaught Execution of multiple statements failed on '
            'statement "UPDATE watermark SET last_batc..." (at line 4, position 2).\n'
            "Numeric value 'not a number' is not recognized"), err["message"])
        self.assertIn("SYSTEM$MULTISTMT", err["message"])
        self.assertIn("statementHandle", err)
        # the COPY and the MERGE were rolled back, and so was the COPY's load metadata
        self.assertEqual(self.state(), ([["1", "one"], ["2", "two"]], [["0"]], [["0"]]))
        meta = self.client.admin("GET", "load_metadata?table=DB.PUBLIC.CHANGES")["tables"]
        self.assertEqual(meta[0]["files"], [])
        # the same batch applies once the error is gone
        self.write("b2.csv", "1,U,uno,1\n4,I,four,2\n")
        r = self.apply_batch("b2.csv", 2)
        self.assertEqual(r.status, 200, r.raw[:500])
        self.assertEqual(self.state(), ([["1", "uno"], ["2", "two"], ["4", "four"]], [["2"]], [["0"]]))

    def test_duplicate_key_in_batch_fails_the_request(self):
        self.write("b3.csv", "1,U,a,1\n1,U,b,2\n")
        r = self.multi("BEGIN; COPY INTO changes FROM @ST FILES = ('b3.csv'); "
                       "MERGE INTO target t USING changes s ON t.id = s.id "
                       "WHEN MATCHED THEN UPDATE SET v = s.v; COMMIT")
        self.assertEqual(r.status, 422)
        self.assertIn("Duplicate row detected during DML action\nRow Values: [1, \"one\"]",
                      r.json["message"])
        self.assertEqual(self.state(), ([["1", "one"], ["2", "two"]], [["0"]], [["0"]]))

    def test_open_transaction_at_the_end_is_rolled_back(self):
        r = self.multi("BEGIN; INSERT INTO target VALUES (9, 'nine')")
        self.assertEqual(r.status, 422)
        self.assertEqual((r.json["code"], r.json["sqlState"]), ("000640", "25000"))
        self.assertIn("Scoped transaction started in stored procedure is incomplete",
                      r.json["message"])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM target"), [["2"]])

    def test_rollback_ddl_commit_and_autocommit(self):
        r = self.multi("BEGIN; INSERT INTO target VALUES (5, 'five'); ROLLBACK; "
                       "INSERT INTO target VALUES (6, 'six')")
        self.assertEqual(r.status, 200, r.raw[:300])
        self.assertEqual(self.rows("SELECT id FROM target WHERE id > 2"), [["6"]])
        # a DDL statement commits the open transaction; what follows autocommits
        r = self.multi("BEGIN; INSERT INTO target VALUES (7, 'seven'); CREATE TABLE other (a INT); "
                       "INSERT INTO target VALUES (8, 'eight'); ROLLBACK")
        self.assertEqual(r.status, 200, r.raw[:300])
        self.assertEqual(self.rows("SELECT id FROM target WHERE id > 6 ORDER BY id"), [["7"], ["8"]])
        # a second BEGIN inside a transaction is ignored
        r = self.multi("START TRANSACTION; INSERT INTO target VALUES (10, 'ten'); BEGIN WORK; "
                       "ROLLBACK WORK")
        self.assertEqual(r.status, 200, r.raw[:300])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM target WHERE id = 10"), [["0"]])

    def test_single_statements_of_transactions_are_refused(self):
        for sql in ("BEGIN", "START TRANSACTION", "COMMIT", "ROLLBACK",
                    "CREATE TEMPORARY TABLE tmp (a INT)", "ALTER SESSION SET TIMEZONE = 'UTC'",
                    "USE SCHEMA PUBLIC"):
            err = self.fail(sql)
            self.assertEqual(err["code"], "002040", sql)

    def test_temporary_table_and_session_statements(self):
        r = self.multi("CREATE TEMPORARY TABLE tmp (a INT, b VARCHAR); "
                       "INSERT INTO tmp VALUES (20, 'twenty'); "
                       "ALTER SESSION SET ERROR_ON_NONDETERMINISTIC_MERGE = FALSE; "
                       "INSERT INTO tmp VALUES (20, 'dup'); "
                       "MERGE INTO target USING tmp ON target.id = tmp.a "
                       "WHEN NOT MATCHED THEN INSERT (id, v) VALUES (tmp.a, tmp.b)")
        self.assertEqual(r.status, 200, r.raw[:300])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM target WHERE id = 20"), [["2"]])
        err = self.fail("SELECT * FROM tmp")
        self.assertEqual(err["code"], "002003", "the temporary table ended with its request")
        r = self.multi("USE SCHEMA OTHER; CREATE TABLE x (a INT); USE DATABASE DB2; "
                       "CREATE TABLE y (a INT)")
        self.assertEqual(r.status, 200, r.raw[:300])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM DB.OTHER.X"), [["0"]])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM DB2.PUBLIC.Y"), [["0"]])


if __name__ == "__main__":
    unittest.main()
