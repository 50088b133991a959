"""Unit tests of the Glue stand-in (server.py), driven by botocore's own Glue client.

botocore builds every request from the Glue service model and parses every
answer with it, so these tests check that the emulator speaks the
documented shapes (paging, errors) as well as SigV4 verification.

    cd test/emulators/glue && /usr/bin/python3 -m unittest -q test_server
"""

import json
import os
import sys
import tempfile
import threading
import unittest
import urllib.error
import urllib.request
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import botocore.session  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

import server as glue_emulator  # noqa: E402  (glue/server.py)

KEY, SECRET = "AKIDGLUE", "glue-secret-1"
TKEY, TSECRET, TOKEN = "ASIATEMP", "temp-secret", "session-token-xyz"
PKEY, PSECRET = "AKIDPOLICY", "policy-secret"   # restricted by --policy
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["glue:GetTables", "glue:GetPartitions"],
     "Resource": ["arn:aws:glue:eu-west-1:123456789012:catalog",
                  "arn:aws:glue:eu-west-1:123456789012:database/logs",
                  "arn:aws:glue:eu-west-1:123456789012:table/logs/*"]}]}


def table(name, fmt="parquet", loc=None):
    return {"Name": name, "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": fmt},
            "StorageDescriptor": {"Columns": [{"Name": "id", "Type": "bigint"}],
                                  "Location": loc or "s3://lake/t/%s/"}}


FIXTURE = {
    "catalogs": {"210987654321": {"databases": [{"Name": "shared"}],
                                  "tables": {"shared": [table("other_account")]}}},
    "databases": [{"Name": "sales__raw", "Description": "sales"}, {"Name": "logs"}],
    "tables": {"sales__raw": [table("t%02d" % i) for i in range(25)],
               "logs": [table("web"), table("app")]},
    "partitions": {"logs": {"web": [
        {"Values": ["2024-01-0%d" % i],
         "StorageDescriptor": {"Location": "s3://lake/t/web/dt=2024-01-0%d/" % i,
                               "Columns": [{"Name": "id", "Type": "bigint"}]}}
        for i in range(1, 6)]}},
}


class GlueEmulatorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        warnings.simplefilter("ignore", ResourceWarning)
        cls.dir = tempfile.TemporaryDirectory()
        cls.fixture = os.path.join(cls.dir.name, "catalog.json")
        with open(cls.fixture, "w") as f:
            json.dump(FIXTURE, f)
        policy = os.path.join(cls.dir.name, "policy.json")
        with open(policy, "w") as f:
            json.dump(POLICY, f)
        args = glue_emulator.parse_args(
            ["--port", "0", "--fixture", cls.fixture, "--key", "%s=%s" % (KEY, SECRET),
             "--key", "%s=%s" % (TKEY, TSECRET), "--session-token", "%s=%s" % (TKEY, TOKEN),
             "--key", "%s=%s" % (PKEY, PSECRET), "--policy", "%s=%s" % (PKEY, policy),
             "--region", "eu-west-1", "--quiet"])
        cls.httpd = glue_emulator.make_server(args)
        cls.url = "http://127.0.0.1:%d" % cls.httpd.server_address[1]
        cls.thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.httpd.shutdown()
        cls.httpd.server_close()
        cls.dir.cleanup()

    def setUp(self):
        self.admin("DELETE", "faults")
        self.admin("DELETE", "requests")

    def client(self, key=KEY, secret=SECRET, token=None, region="eu-west-1", retries=1):
        s = botocore.session.get_session()
        return s.create_client(
            "glue", region_name=region, endpoint_url=self.url,
            aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
            config=Config(retries={"total_max_attempts": retries, "mode": "standard"}))

    def admin(self, method, path, body=None):
        req = urllib.request.Request(self.url + "/_emulator/" + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())

    def code(self, fn, **kw):
        with self.assertRaises(ClientError) as cm:
            fn(**kw)
        return cm.exception.response["Error"]["Code"]

    def test_get_tables_pages_with_next_token(self):
        c = self.client()
        first = c.get_tables(DatabaseName="sales__raw", MaxResults=10)
        self.assertEqual(len(first["TableList"]), 10)
        self.assertIn("NextToken", first)
        names = [t["Name"] for p in c.get_paginator("get_tables").paginate(
            DatabaseName="sales__raw", PaginationConfig={"PageSize": 10}) for t in p["TableList"]]
        self.assertEqual(names, ["t%02d" % i for i in range(25)])
        reqs = [r for r in self.admin("GET", "requests")["requests"]
                if r["operation"] == "GetTables"]
        self.assertEqual(len(reqs), 4)  # 1 + 3 pages
        self.assertEqual(reqs[-1]["body"]["MaxResults"], 10)
        self.assertIn("NextToken", reqs[-1]["body"])

    def test_table_shapes(self):
        t = self.client().get_table(DatabaseName="logs", Name="web")["Table"]
        self.assertEqual(t["DatabaseName"], "logs")
        self.assertEqual(t["StorageDescriptor"]["Columns"][0]["Type"], "bigint")
        self.assertEqual(t["Parameters"]["classification"], "parquet")

    def test_expression_filter_is_a_regex(self):
        c = self.client()
        names = [t["Name"] for t in c.get_tables(DatabaseName="sales__raw",
                                                 Expression="t1[0-4]")["TableList"]]
        self.assertEqual(names, ["t10", "t11", "t12", "t13", "t14"])
        self.assertEqual(self.code(c.get_tables, DatabaseName="sales__raw", Expression="("),
                         "InvalidInputException")

    def test_expression_modes(self):
        c = self.client()

        def names(expr):
            return [t["Name"] for t in c.get_tables(DatabaseName="sales__raw",
                                                    Expression=expr)["TableList"]]
        try:
            self.assertEqual(names("1[0-1]"), [])  # regex: the whole name
            self.admin("POST", "settings", {"expression_mode": "search"})
            self.assertEqual(names("1[0-1]"), ["t10", "t11"])  # anywhere in the name
            self.admin("POST", "settings", {"expression_mode": "hive"})
            self.assertEqual(names("T0*|t2*"), ["t00", "t01", "t02", "t03", "t04", "t05",
                                                "t06", "t07", "t08", "t09", "t20", "t21",
                                                "t22", "t23", "t24"])
            self.assertEqual(names(r"^t1([\s\S]+)?$"), ["t%d" % i for i in range(10, 20)])
            with self.assertRaises(urllib.error.HTTPError):
                self.admin("POST", "settings", {"expression_mode": "glob"})
        finally:
            self.admin("POST", "settings", {"expression_mode": "regex"})

    def test_max_results_and_bad_token(self):
        c = self.client()
        self.assertEqual(self.code(c.get_tables, DatabaseName="logs", MaxResults=101),
                         "ValidationException")
        self.assertEqual(self.code(c.get_tables, DatabaseName="logs", NextToken="garbage"),
                         "InvalidInputException")

    def test_databases(self):
        c = self.client()
        dbs = [d["Name"] for d in c.get_databases()["DatabaseList"]]
        self.assertEqual(dbs, ["sales__raw", "logs"])
        self.assertEqual(c.get_database(Name="logs")["Database"]["Name"], "logs")
        self.assertEqual(self.code(c.get_database, Name="nope"), "EntityNotFoundException")

    def test_entity_not_found(self):
        c = self.client()
        self.assertEqual(self.code(c.get_tables, DatabaseName="nope"), "EntityNotFoundException")
        self.assertEqual(self.code(c.get_table, DatabaseName="logs", Name="nope"),
                         "EntityNotFoundException")

    def test_catalog_id(self):
        c = self.client()
        names = lambda r: [t["Name"] for t in r["TableList"]]  # noqa: E731
        self.assertEqual(names(c.get_tables(DatabaseName="shared", CatalogId="210987654321")),
                         ["other_account"])
        self.assertEqual(names(c.get_tables(DatabaseName="logs", CatalogId="123456789012")),
                         ["web", "app"])
        self.assertEqual(self.code(c.get_tables, DatabaseName="shared"), "EntityNotFoundException")
        self.assertEqual(self.code(c.get_tables, DatabaseName="shared", CatalogId="999999999999"),
                         "AccessDeniedException")

    def test_partitions(self):
        c = self.client()
        p = c.get_partitions(DatabaseName="logs", TableName="web", MaxResults=2,
                             ExcludeColumnSchema=True)
        self.assertEqual(len(p["Partitions"]), 2)
        self.assertNotIn("Columns", p["Partitions"][0]["StorageDescriptor"])
        self.assertEqual(p["Partitions"][0]["Values"], ["2024-01-01"])
        self.assertIn("NextToken", p)
        self.assertEqual(c.get_partitions(DatabaseName="logs", TableName="app")["Partitions"], [])

    def test_sigv4_checked_by_botocore(self):
        self.assertEqual(self.code(self.client(secret="wrong").get_databases),
                         "InvalidSignatureException")
        self.assertEqual(self.code(self.client(key="AKIDUNKNOWN").get_databases),
                         "UnrecognizedClientException")
        self.assertEqual(self.code(self.client(region="us-east-1").get_databases),
                         "InvalidSignatureException")
        # session credentials: the token is required and signed
        self.client(TKEY, TSECRET, TOKEN).get_databases()
        self.assertEqual(self.code(self.client(TKEY, TSECRET, "other").get_databases),
                         "UnrecognizedClientException")
        self.assertEqual(self.code(self.client(TKEY, TSECRET).get_databases),
                         "UnrecognizedClientException")
        for r in self.admin("GET", "requests")["requests"]:
            self.assertNotIn(SECRET, json.dumps(r))
            self.assertNotIn(TOKEN, json.dumps(r))

    def test_unsigned_request_refused(self):
        req = urllib.request.Request(self.url + "/", method="POST", data=b"{}", headers={
            "X-Amz-Target": "AWSGlue.GetDatabases",
            "Content-Type": "application/x-amz-json-1.1"})
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req)
        self.assertEqual(cm.exception.code, 400)
        self.assertIn("MissingAuthenticationTokenException", cm.exception.read().decode())

    def test_faults(self):
        self.admin("POST", "faults", {"kind": "throttling", "count": 1, "path_regex": "GetTables"})
        c = self.client()
        self.assertEqual(self.code(c.get_tables, DatabaseName="logs"), "ThrottlingException")
        c.get_tables(DatabaseName="logs")
        self.admin("POST", "faults", {"kind": "500"})
        self.assertEqual(self.code(c.get_databases), "InternalServiceException")
        # botocore's own retries get through a throttle
        self.admin("POST", "faults", {"kind": "throttling", "count": 2})
        self.client(retries=4).get_databases()
        self.admin("POST", "faults", {"kind": "drop"})
        with self.assertRaises(Exception):
            c.get_databases()

    def test_fixture_reloaded_when_the_file_changes(self):
        c = self.client()
        data = json.loads(json.dumps(FIXTURE))
        data["tables"]["logs"].append(table("new"))
        with open(self.fixture, "w") as f:
            json.dump(data, f)
        try:
            names = [t["Name"] for t in c.get_tables(DatabaseName="logs")["TableList"]]
            self.assertIn("new", names)
        finally:
            with open(self.fixture, "w") as f:
                json.dump(FIXTURE, f)

    # -- --policy: the IAM identity policy of a key (../lib/iam_policy.py)

    def test_policy_allows_and_denies(self):
        c = self.client(key=PKEY, secret=PSECRET)
        self.assertEqual(len(c.get_tables(DatabaseName="logs")["TableList"]), 2)
        self.assertEqual(len(c.get_partitions(DatabaseName="logs", TableName="web")["Partitions"]), 5)
        for call, res in ((lambda: c.get_tables(DatabaseName="sales__raw"), "database/sales__raw"),
                          (lambda: c.get_table(DatabaseName="logs", Name="web"), "table/logs/web"),
                          (lambda: c.get_databases(), "database/*")):
            with self.assertRaises(ClientError) as cm:
                call()
            err = cm.exception.response["Error"]
            self.assertEqual(err["Code"], "AccessDeniedException")
            self.assertIn("is not authorized to perform: glue:", err["Message"])
        self.assertIn("on resource: arn:aws:glue:eu-west-1:123456789012:catalog",
                      err["Message"])  # GetDatabases: the catalog is checked first
        # keys without a policy are not restricted
        self.assertEqual(len(self.client().get_tables(DatabaseName="sales__raw")["TableList"]), 25)

    def test_resources(self):
        st = self.httpd.state
        self.assertEqual(st.resources("GetTables", {"DatabaseName": "d"}),
                         ["arn:aws:glue:eu-west-1:123456789012:catalog",
                          "arn:aws:glue:eu-west-1:123456789012:database/d",
                          "arn:aws:glue:eu-west-1:123456789012:table/d/*"])
        self.assertEqual(st.resources("GetPartitions", {"DatabaseName": "d", "TableName": "t"})[-1],
                         "arn:aws:glue:eu-west-1:123456789012:table/d/t")
        self.assertEqual(st.resources("GetDatabase", {"Name": "d"})[-1],
                         "arn:aws:glue:eu-west-1:123456789012:database/d")


if __name__ == "__main__":
    unittest.main()
