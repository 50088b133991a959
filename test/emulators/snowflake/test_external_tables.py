"""Tests for external tables with file registration, refresh, partitions, SHOW EXTERNAL
TABLES, grants and COPY GRANTS (sfemu/exttables.py, sfemu/account.py).

Run: /usr/bin/python3 -m unittest discover -s test/emulators/snowflake -p 'test_*.py' -v
"""

import os
import unittest

from test_account import body
from test_server import Client, ObjectStore, make_jwt
from test_merge import DmlTestCase

SALES = ("CREATE OR REPLACE EXTERNAL TABLE sales (\n"
         "  id INT AS (value:c1::INT),\n"
         "  amount NUMBER(10,2) AS (value:c2::NUMBER(10,2)),\n"
         "  country VARCHAR AS (SPLIT_PART(SPLIT_PART(METADATA$FILENAME, '/', 2), '=', 2)))\n"
         "PARTITION BY (country)\n"
         "LOCATION = @ST/sales/\n"
         "AUTO_REFRESH = FALSE\n"
         "FILE_FORMAT = (TYPE = CSV)")


class ExtTestCase(DmlTestCase):
    def setUp(self):
        super().setUp()
        self.stage()
        self.write("sales/country=US/a.csv", "1,10.50\n2,3\n")
        self.write("sales/country=FR/b.csv", "3,7.25\n")

    def files(self, table="DB.PUBLIC.SALES"):
        doc = self.client.admin("GET", "external_tables?table=" + table)["external_tables"]
        return sorted(f["relative_path"] for f in doc[0]["files"]) if doc else None

    def refresh(self, sql):
        return sorted(tuple(r) for r in self.rows(sql))

    def path(self, rel):
        """The refresh result's file column for a file:// stage: the storage path."""
        return os.path.join(self.stage_dir, rel)


class RegistrationTests(ExtTestCase):
    def test_refresh_on_create_and_query(self):
        self.ok(SALES)
        self.assertEqual(self.files(), ["country=FR/b.csv", "country=US/a.csv"])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM sales"), [["3"]])
        self.assertEqual(self.rows("SELECT country, SUM(amount) FROM sales GROUP BY country "
                                   "ORDER BY country"), [["FR", "7.25"], ["US", "13.50"]])
        self.assertEqual(self.rows("SELECT value:c1::VARCHAR, id FROM sales WHERE country = 'FR'"),
                         [["3", "3"]])
        body = self.ok("SELECT * FROM sales WHERE id = 1")
        self.assertEqual([c["name"] for c in body["resultSetMetaData"]["rowType"]],
                         ["VALUE", "ID", "AMOUNT", "COUNTRY"])
        self.assertEqual(body["data"][0][1:], ["1", "10.50", "US"])
        self.assertIn('"c2": "10.50"', body["data"][0][0])
        self.assertEqual(self.rows("SELECT METADATA$FILENAME, METADATA$FILE_ROW_NUMBER FROM sales "
                                   "WHERE id = 2"), [["sales/country=US/a.csv", "2"]])
        # REFRESH_ON_CREATE = FALSE registers nothing
        self.ok(SALES + "\nREFRESH_ON_CREATE = FALSE")
        self.assertEqual(self.files(), [])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM sales"), [["0"]])

    def test_new_partition_not_visible_until_refresh(self):
        self.ok(SALES)
        self.write("sales/country=DE/c.csv", "4,1\n5,2\n")
        self.assertEqual(self.rows("SELECT COUNT(*) FROM sales"), [["3"]], "not registered yet")
        body = self.ok("ALTER EXTERNAL TABLE sales REFRESH 'country=DE/'")
        self.assertEqual([c["name"] for c in body["resultSetMetaData"]["rowType"]],
                         ["file", "status", "description"])
        self.assertEqual(body["data"], [[self.path("sales/country=DE/c.csv"), "REGISTERED_NEW",
                                         "File registered successfully."]])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM sales WHERE country = 'DE'"), [["2"]])
        # nothing changed: no rows
        self.assertEqual(self.rows("ALTER EXTERNAL TABLE sales REFRESH"), [])
        # a changed file, and a removed one under another path
        self.write("sales/country=DE/c.csv", "4,1\n5,2\n6,3\n")
        os.remove(os.path.join(self.stage_dir, "sales/country=FR/b.csv"))
        self.assertEqual(self.refresh("ALTER EXTERNAL TABLE sales REFRESH 'country=DE'"),
                         [(self.path("sales/country=DE/c.csv"), "REGISTERED_UPDATE",
                           "File registered successfully.")])
        self.assertIn("country=FR/b.csv", self.files(), "only the refreshed path changes")
        self.assertEqual(self.rows("SELECT COUNT(*) FROM sales"), [["5"]],
                         "a registered file that is gone is skipped")
        self.assertEqual(self.refresh("ALTER EXTERNAL TABLE sales REFRESH"),
                         [(self.path("sales/country=FR/b.csv"), "UNREGISTERED",
                           "File unregistered successfully.")])
        self.assertEqual(self.files(), ["country=DE/c.csv", "country=US/a.csv"])

    def test_add_and_remove_files(self):
        self.ok(SALES + "\nREFRESH_ON_CREATE = FALSE")
        rows = self.refresh("ALTER EXTERNAL TABLE sales ADD FILES ('country=US/a.csv', "
                            "'country=XX/none.csv')")
        self.assertEqual(rows, [(self.path("sales/country=US/a.csv"), "REGISTERED_NEW",
                                 "File registered successfully."),
                                (self.path("sales/country=XX/none.csv"), "REGISTER_FAILED",
                                 "File does not exist or is not accessible.")])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM sales"), [["2"]])
        rows = self.refresh("ALTER EXTERNAL TABLE sales REMOVE FILES ('country=US/a.csv')")
        self.assertEqual(rows, [(self.path("sales/country=US/a.csv"), "UNREGISTERED",
                                 "File unregistered successfully.")])
        self.assertEqual(self.files(), [])

    def test_refresh_is_transactional(self):
        self.ok(SALES + "\nREFRESH_ON_CREATE = FALSE")
        r = self.client.run("BEGIN; ALTER EXTERNAL TABLE sales REFRESH; ROLLBACK",
                            parameters={"MULTI_STATEMENT_COUNT": "3"})
        self.assertEqual(r.status, 200, r.raw[:300])
        self.assertEqual(self.files(), [], "rolled back with its transaction")
        r = self.client.run("BEGIN; ALTER EXTERNAL TABLE sales REFRESH; COMMIT",
                            parameters={"MULTI_STATEMENT_COUNT": "3"})
        self.assertEqual(self.files(), ["country=FR/b.csv", "country=US/a.csv"])

    def test_user_specified_partitions(self):
        self.write("logs/2022/01/24.csv", "x\ny\n")
        self.write("logs/2022/02/01.csv", "z\n")
        ddl = ("CREATE EXTERNAL TABLE et2 (\n"
               "  col1 DATE AS (PARSE_JSON(METADATA$EXTERNAL_TABLE_PARTITION):COL1::DATE),\n"
               "  col2 VARCHAR AS (parse_json(metadata$external_table_partition):COL2::varchar),\n"
               "  v VARCHAR AS (value:c1::VARCHAR))\n"
               "PARTITION BY (col1, col2) LOCATION = @ST/logs/\n"
               "PARTITION_TYPE = USER_SPECIFIED FILE_FORMAT = (TYPE = CSV)")
        err = self.fail(ddl + " AUTO_REFRESH = TRUE")
        self.assertEqual(err["code"], "001008")
        self.ok(ddl)
        self.assertEqual(self.files("DB.PUBLIC.ET2"), [], "no refresh on create")
        rows = self.refresh("ALTER EXTERNAL TABLE et2 ADD PARTITION (col1 = '2022-01-24', "
                            "col2 = 'a') LOCATION '2022/01'")
        self.assertEqual(rows, [(self.path("logs/2022/01/24.csv"), "REGISTERED_NEW",
                                 "File registered successfully.")])
        self.assertEqual(self.rows("SELECT col1::VARCHAR, col2, v FROM et2 ORDER BY v"),
                         [["2022-01-24", "a", "x"], ["2022-01-24", "a", "y"]])
        for sql in ("ALTER EXTERNAL TABLE et2 REFRESH", "ALTER EXTERNAL TABLE et2 ADD FILES ('x')",
                    "ALTER EXTERNAL TABLE et2 SET AUTO_REFRESH = TRUE",
                    "ALTER EXTERNAL TABLE sales ADD PARTITION (country = 'x') LOCATION 'y'"):
            if "sales" in sql:
                self.ok(SALES)
            self.assertEqual(self.fail(sql)["code"], "001003", sql)
        err = self.fail("ALTER EXTERNAL TABLE et2 ADD PARTITION (nosuch = '1') LOCATION '2022/02'")
        self.assertEqual(err["code"], "001003")
        self.ok("ALTER EXTERNAL TABLE et2 ADD PARTITION (col1 = '2022-02-01', col2 = 'b') "
                "LOCATION '2022/02'")
        self.assertEqual(self.rows("SELECT COUNT(*) FROM et2 WHERE col2 = 'b'"), [["1"]])
        rows = self.refresh("ALTER EXTERNAL TABLE et2 DROP PARTITION LOCATION '2022/01'")
        self.assertEqual(rows, [(self.path("logs/2022/01/24.csv"), "UNREGISTERED",
                                 "File unregistered successfully.")])
        self.assertEqual(self.rows("SELECT v FROM et2"), [["z"]])
        doc = self.client.admin("GET", "external_tables?table=ET2")["external_tables"][0]
        self.assertEqual(doc["partitions"], [{"location": "2022/02/",
                                              "values": {"COL1": "2022-02-01", "COL2": "b"}}])
        self.assertEqual(doc["files"][0]["partition"], {"COL1": "2022-02-01", "COL2": "b"})

    def test_columns_added_and_dropped(self):
        self.ok(SALES)
        self.ok("ALTER TABLE sales ADD COLUMN twice NUMBER(10,2) AS (value:c2::NUMBER(10,2) * 2)")
        self.assertEqual(self.rows("SELECT twice FROM sales WHERE id = 3"), [["14.50"]])
        self.ok("ALTER TABLE sales ADD COLUMN (label VARCHAR AS (value:c1::VARCHAR || '!'))")
        self.assertEqual(self.rows("SELECT label FROM sales WHERE id = 3"), [["3!"]])
        self.assertEqual(self.fail("ALTER TABLE sales ADD COLUMN plain INT")["code"], "001003")
        self.assertEqual(self.fail("ALTER TABLE sales ADD COLUMN id INT AS (1)")["code"], "002025")
        self.ok("ALTER TABLE sales DROP COLUMN twice")
        self.assertEqual(self.fail("SELECT twice FROM sales")["code"], "000904")
        self.assertEqual(self.fail("ALTER TABLE sales DROP COLUMN value")["code"], "001003")
        self.assertEqual(self.fail("ALTER TABLE sales DROP COLUMN country")["code"], "001003")
        # ADD COLUMN is an ALTER TABLE action, not an ALTER EXTERNAL TABLE one
        self.assertEqual(self.fail("ALTER EXTERNAL TABLE sales ADD COLUMN x INT AS (1)")["code"],
                         "001003")
        self.assertEqual(self.fail("INSERT INTO sales SELECT 1")["code"], "002003",
                         "external tables are read-only")

    def test_json_table_as_glue_creates_it(self):
        self.write("ev/dt=2024-01-02%3A00/e.json", '{"ID": 7, "Name": "x"}\n{"id": 8}\n')
        self.ok('CREATE OR REPLACE EXTERNAL TABLE "DB"."PUBLIC"."EV" (\n'
                '  "ID" NUMBER(19,0) AS (GET_IGNORE_CASE(value, \'id\')::NUMBER(19,0)),\n'
                '  "NAME" VARCHAR AS (GET_IGNORE_CASE(value, \'name\')::VARCHAR),\n'
                '  "DT" VARCHAR AS (REPLACE(REPLACE(SPLIT_PART(SPLIT_PART(METADATA$FILENAME, '
                "'/', 2), '=', 2), '%3A', CHR(58)), '%25', CHR(37))::VARCHAR)\n)\n"
                'PARTITION BY ("DT")\nLOCATION = @"DB"."PUBLIC"."ST"/ev/\nAUTO_REFRESH = FALSE\n'
                "FILE_FORMAT = (TYPE = JSON)")
        self.assertEqual(self.rows('SELECT "ID", "NAME", "DT" FROM ev ORDER BY 1'),
                         [["7", "x", "2024-01-02:00"], ["8", None, "2024-01-02:00"]])

    def test_drop(self):
        self.ok(SALES)
        self.assertEqual(self.ok("DROP EXTERNAL TABLE IF EXISTS nosuch")["data"][0][0],
                         "Drop statement executed successfully (NOSUCH already dropped).")
        self.ok("DROP EXTERNAL TABLE sales")
        self.assertIsNone(self.files())
        self.assertEqual(self.fail("DROP EXTERNAL TABLE sales")["code"], "002003")
        self.assertEqual(self.fail("SELECT COUNT(*) FROM sales")["code"], "002003")


class AutoRefreshTests(ExtTestCase):
    def test_s3_notification_channel_and_gcs_integration(self):
        self.ok("CREATE STAGE s3st URL = 's3://lake/x/'")
        self.ok("CREATE EXTERNAL TABLE s3t (a VARCHAR AS (value:c1::VARCHAR)) LOCATION = @s3st/t/ "
                "AUTO_REFRESH = TRUE FILE_FORMAT = (TYPE = CSV)")
        show = self.client.ok("SHOW EXTERNAL TABLES LIKE 'S3T'")
        names = [c["name"] for c in show["resultSetMetaData"]["rowType"]]
        row = dict(zip(names, show["data"][0]))
        self.assertRegex(row["notification_channel"],
                         r"^arn:aws:sqs:us-east-1:\d{12}:sf-snowpipe-AIDA[0-9A-F]{16}-[0-9a-f]{22}$")
        self.assertEqual((row["cloud"], row["region"]), ("AWS", "us-east-1"))
        # the emulator has no S3 endpoint here: an explicit refresh cannot reach the files
        self.assertEqual(self.fail("ALTER EXTERNAL TABLE s3t REFRESH")["code"], "091003")
        self.ok("ALTER EXTERNAL TABLE s3t SET AUTO_REFRESH = FALSE")
        row = dict(zip(names, self.client.ok("SHOW EXTERNAL TABLES LIKE 'S3T'")["data"][0]))
        self.assertIsNone(row["notification_channel"])
        self.ok("CREATE STAGE gst URL = 'gcs://lake/y/'")
        err = self.fail("CREATE EXTERNAL TABLE gt LOCATION = @gst AUTO_REFRESH = TRUE "
                        "FILE_FORMAT = (TYPE = CSV)")
        self.assertEqual(err["code"], "001008")
        self.ok("CREATE EXTERNAL TABLE gt INTEGRATION = 'MY_NOTIFICATIONS' LOCATION = @gst "
                "AUTO_REFRESH = TRUE FILE_FORMAT = (TYPE = CSV)")

    def test_event_notification_refreshes_auto_refresh_tables(self):
        self.ok(SALES.replace("AUTO_REFRESH = FALSE", "AUTO_REFRESH = TRUE"))
        self.ok(SALES.replace("sales (", "manual (", 1))
        self.write("sales/country=DE/c.csv", "9,9\n")
        out = self.client.admin("POST", "external_tables/notify", {"table": "DB.PUBLIC.SALES",
                                                                  "path": "country=DE/"})
        self.assertEqual(out["notified"][0]["files"],
                         [{"file": self.path("sales/country=DE/c.csv"), "status": "REGISTERED_NEW"}])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM sales"), [["4"]])
        # an event on the table's channel names the file: created, then removed
        chan = [o for o in self.client.admin("GET", "external_tables")["external_tables"]
                if o["table"] == "DB.PUBLIC.SALES"][0]["notification_channel"]
        self.assertIsNone(chan, "a file:// stage has no SQS queue")
        self.ok(SALES.replace("AUTO_REFRESH = FALSE", "AUTO_REFRESH = TRUE INTEGRATION = 'EVENTS'")
                .replace("sales (", "evt (", 1))
        url = "file://" + self.path("sales/country=NL/d.csv")
        self.write("sales/country=NL/d.csv", "10,1\n")
        out = self.client.admin("POST", "external_tables/notify", {"channel": "EVENTS",
                                                                  "files": [url]})
        self.assertEqual(out["notified"], [{"table": "DB.PUBLIC.EVT", "refreshed": True,
                                            "files": [{"file": self.path("sales/country=NL/d.csv"),
                                                       "status": "REGISTERED_NEW"}]}])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM evt WHERE country = 'NL'"), [["1"]])
        os.remove(os.path.join(self.stage_dir, "sales/country=NL/d.csv"))
        out = self.client.admin("POST", "external_tables/notify", {"channel": "EVENTS",
                                                                  "files": [url]})
        self.assertEqual(out["notified"][0]["files"][0]["status"], "UNREGISTERED")
        self.assertNotIn("country=NL/d.csv", self.files("DB.PUBLIC.EVT"))
        out = self.client.admin("POST", "external_tables/notify", {"table": "MANUAL"})
        self.assertEqual(out["notified"], [{"table": "DB.PUBLIC.MANUAL", "refreshed": False,
                                            "reason": "AUTO_REFRESH = FALSE"}])
        self.assertEqual(self.rows("SELECT COUNT(*) FROM manual"), [["3"]])


class S3Tests(DmlTestCase):
    """An S3 location (the test's S3 stand-in, SigV4-checked)."""

    @classmethod
    def setUpClass(cls):
        cls.s3 = ObjectStore("s3", {"AKIDLAKE": "lake-secret"})
        cls.extra_args = ("--s3-endpoint", "http://127.0.0.1:%d" % cls.s3.port,
                          "--s3-access-key", "AKIDLAKE", "--s3-secret-key", "lake-secret")
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.s3.stop()

    def setUp(self):
        super().setUp()
        self.s3.objects.clear()
        self.s3.objects[("lake", "sales/dt=2024-01-01/a.csv")] = b"1,10\n2,20\n"
        self.ok("CREATE STAGE lake URL = 's3://lake/' STORAGE_INTEGRATION = lake_int")

    def test_refresh_and_sqs_event(self):
        self.ok("CREATE EXTERNAL TABLE s (id INT AS (value:c1::INT), "
                "dt DATE AS (SPLIT_PART(SPLIT_PART(METADATA$FILENAME, '/', 2), '=', 2)::DATE)) "
                "PARTITION BY (dt) LOCATION = @lake/sales/ FILE_FORMAT = (TYPE = CSV)")
        self.assertEqual(self.rows("SELECT COUNT(*) FROM s"), [["2"]])
        self.s3.objects[("lake", "sales/dt=2024-01-02/b.csv")] = b"3,30\n"
        self.assertEqual(self.rows("SELECT COUNT(*) FROM s"), [["2"]])
        show = self.ok("SHOW EXTERNAL TABLES")
        row = dict(zip([c["name"] for c in show["resultSetMetaData"]["rowType"]], show["data"][0]))
        out = self.client.admin("POST", "external_tables/notify", {
            "channel": row["notification_channel"],
            "files": ["s3://lake/sales/dt=2024-01-02/b.csv", "s3://lake/elsewhere/c.csv"]})
        self.assertEqual(out["notified"][0]["files"],
                         [{"file": "lake/sales/dt=2024-01-02/b.csv", "status": "REGISTERED_NEW"}])
        self.assertEqual(self.rows("SELECT dt::VARCHAR, COUNT(*) FROM s GROUP BY dt ORDER BY dt"),
                         [["2024-01-01", "2"], ["2024-01-02", "1"]])
        del self.s3.objects[("lake", "sales/dt=2024-01-01/a.csv")]
        self.assertEqual(self.rows("ALTER EXTERNAL TABLE s REFRESH 'dt=2024-01-01/'"),
                         [["lake/sales/dt=2024-01-01/a.csv", "UNREGISTERED",
                           "File unregistered successfully."]])
        self.assertEqual(self.rows("SELECT id FROM s"), [["3"]])

    def test_merge_from_staged_s3_files(self):
        self.ok("CREATE FILE FORMAT chg TYPE = CSV")
        self.ok("CREATE TABLE tgt (id INT PRIMARY KEY, v VARCHAR)")
        self.ok("INSERT INTO tgt VALUES (1, 'old'), (2, 'gone')")
        self.s3.objects[("lake", "changes/b1/0.csv")] = b"1,U,new,1\n2,D,,2\n3,I,three,3\n3,U,drei,4\n"
        c, _ = self.counts(
            "MERGE INTO tgt USING (SELECT $1::INT AS id, $2 AS op, $3 AS v FROM @lake/changes/b1/ "
            "(FILE_FORMAT => 'chg', PATTERN => '.*[.]csv') "
            "QUALIFY ROW_NUMBER() OVER (PARTITION BY $1 ORDER BY $4::INT DESC) = 1) s "
            "ON tgt.id = s.id WHEN MATCHED AND s.op = 'D' THEN DELETE "
            "WHEN MATCHED THEN UPDATE SET v = s.v "
            "WHEN NOT MATCHED AND s.op <> 'D' THEN INSERT (id, v) VALUES (s.id, s.v)")
        self.assertEqual(c, {"number of rows inserted": 1, "number of rows updated": 1,
                             "number of rows deleted": 1})
        self.assertEqual(self.rows("SELECT id, v FROM tgt ORDER BY id"), [["1", "new"], ["3", "drei"]])


class ShowAndGrantTests(ExtTestCase):
    COLUMNS = ["created_on", "name", "database_name", "schema_name", "invalid", "invalid_reason",
               "owner", "comment", "stage", "location", "file_format_name", "file_format_type",
               "cloud", "region", "notification_channel", "last_refreshed_on", "table_format",
               "last_refresh_details", "owner_role_type"]

    def show(self, sql):
        body = self.ok(sql)
        names = [c["name"] for c in body["resultSetMetaData"]["rowType"]]
        return names, [dict(zip(names, r)) for r in body["data"]]

    def test_show_external_tables(self):
        self.ok(SALES + "\nCOMMENT = 'daily sales'")
        self.ok("CREATE FILE FORMAT ff TYPE = CSV")
        self.ok("CREATE EXTERNAL TABLE DB.OTHER.LINES (a VARCHAR AS (value:c1::VARCHAR)) "
                "LOCATION = @DB.PUBLIC.ST/lines/ AUTO_REFRESH = FALSE FILE_FORMAT = (FORMAT_NAME = 'DB.PUBLIC.FF')")
        names, rows = self.show("SHOW EXTERNAL TABLES IN SCHEMA DB.PUBLIC")
        self.assertEqual(names, self.COLUMNS)
        self.assertEqual([r["name"] for r in rows], ["SALES"])
        r = rows[0]
        self.assertEqual((r["database_name"], r["schema_name"], r["invalid"], r["owner"],
                          r["comment"], r["stage"], r["location"], r["file_format_name"],
                          r["file_format_type"], r["table_format"], r["owner_role_type"]),
                         ("DB", "PUBLIC", "false", "ACCOUNTADMIN", "daily sales", "DB.PUBLIC.ST",
                          "@DB.PUBLIC.ST/sales/", None, "CSV", "UNSPECIFIED", "ROLE"))
        self.assertIsNotNone(r["last_refreshed_on"])
        self.assertIsNone(r["notification_channel"])
        _, rows = self.show("SHOW EXTERNAL TABLES")
        self.assertEqual([(r["schema_name"], r["name"]) for r in rows],
                         [("OTHER", "LINES"), ("PUBLIC", "SALES")], "ordered by schema, name")
        self.assertEqual(rows[0]["file_format_name"], "DB.PUBLIC.FF")
        self.assertIsNone(rows[0]["file_format_type"])
        _, rows = self.show("SHOW EXTERNAL TABLES LIKE 'lin%' IN DATABASE DB")
        self.assertEqual([r["name"] for r in rows], ["LINES"])
        self.assertEqual(self.show("SHOW EXTERNAL TABLES STARTS WITH 'sa'")[1], [])
        names, rows = self.show("SHOW TERSE EXTERNAL TABLES IN ACCOUNT LIMIT 1")
        self.assertEqual(names, ["created_on", "name", "kind", "database_name", "schema_name"])
        self.assertEqual(len(rows), 1)
        self.assertEqual(self.show("SHOW EXTERNAL TABLES IN SCHEMA DB.NONE")[1], [])
        self.ok("DROP STAGE ST")
        _, rows = self.show("SHOW EXTERNAL TABLES LIKE 'SALES'")
        self.assertEqual(rows[0]["invalid"], "true")
        self.assertIn("DB.PUBLIC.ST", rows[0]["invalid_reason"])

    def reader(self):
        c = Client(self.emu.port, make_jwt(self.key2, user="READER"))
        orig = c.submit

        def submit(statement, **kw):
            kw.setdefault("role", None)
            kw.setdefault("warehouse", None)
            return orig(statement, **kw)
        c.submit = submit
        return c

    def test_grants_copy_grants_and_show_grants(self):
        self.ok(SALES)
        for sql in ("CREATE ROLE ANALYST", "CREATE WAREHOUSE WH",
                    "GRANT USAGE ON WAREHOUSE WH TO ROLE ANALYST",
                    "GRANT USAGE ON DATABASE DB TO ROLE ANALYST",
                    "GRANT USAGE ON SCHEMA DB.PUBLIC TO ROLE ANALYST",
                    "CREATE USER READER DEFAULT_ROLE = ANALYST DEFAULT_WAREHOUSE = WH "
                    "RSA_PUBLIC_KEY = '%s'" % body(self.key2),
                    "GRANT ROLE ANALYST TO USER READER"):
            self.ok(sql)
        reader = self.reader()
        count = "SELECT COUNT(*) FROM DB.PUBLIC.SALES"
        self.assertEqual(reader.run(count).json["code"], "002003", "no privilege yet")
        self.ok("GRANT SELECT ON EXTERNAL TABLE sales TO ROLE ANALYST")
        self.assertEqual(reader.rows(count), [["3"]])
        b = self.ok("SHOW GRANTS ON EXTERNAL TABLE sales")
        self.assertEqual([c["name"] for c in b["resultSetMetaData"]["rowType"]],
                         ["created_on", "privilege", "granted_on", "name", "granted_to",
                          "grantee_name", "grant_option", "granted_by_role_type", "granted_by"])
        self.assertEqual([r[1:] for r in b["data"]],
                         [["OWNERSHIP", "EXTERNAL_TABLE", "DB.PUBLIC.SALES", "ROLE",
                           "ACCOUNTADMIN", "true", "ROLE", "ACCOUNTADMIN"],
                          ["SELECT", "EXTERNAL_TABLE", "DB.PUBLIC.SALES", "ROLE", "ANALYST",
                           "false", "ROLE", "ACCOUNTADMIN"]])
        self.assertTrue(all(r[0] for r in b["data"]), "created_on is set")
        doc = self.client.admin("GET", "external_tables?table=SALES")["external_tables"][0]
        self.assertEqual([(g["privilege"], g["grantee"]) for g in doc["grants"]],
                         [("SELECT", "ANALYST")])
        # COPY GRANTS keeps the grant across CREATE OR REPLACE ...
        self.ok(SALES + "\nCOPY GRANTS")
        self.assertEqual(reader.rows(count), [["3"]])
        # ... without it the replaced table's grants are gone
        self.ok(SALES)
        self.assertEqual(reader.run(count).json["code"], "002003")
        self.assertEqual(len(self.ok("SHOW GRANTS ON EXTERNAL TABLE sales")["data"]), 1)
        self.ok("GRANT SELECT ON EXTERNAL TABLE sales TO ROLE ANALYST")
        self.ok("REVOKE SELECT ON EXTERNAL TABLE sales FROM ROLE ANALYST")
        self.assertEqual(reader.run(count).json["code"], "002003")
        # a table's grants follow the same rules
        self.ok("CREATE TABLE t (a INT)")
        self.ok("GRANT SELECT ON TABLE t TO ROLE ANALYST")
        self.ok("CREATE OR REPLACE TABLE t (a INT, b INT) COPY GRANTS")
        self.assertEqual([r[1] for r in self.ok("SHOW GRANTS ON TABLE t")["data"]],
                         ["OWNERSHIP", "SELECT"])
        self.assertEqual(self.fail("SHOW GRANTS ON TABLE nosuch")["code"], "002003")


if __name__ == "__main__":
    unittest.main()
