"""Tests for account objects and access control (sfemu/account.py): users with
RSA keys, roles, warehouses, grants, storage integrations, DESC INTEGRATION /
DESC USER.

Run: /usr/bin/python3 -m unittest discover -s test/emulators/snowflake -p 'test_*.py' -v
"""

import base64
import unittest

from cryptography.hazmat.primitives import serialization

from test_server import ACCOUNT, Client, EmulatorTestCase, fingerprint, make_jwt, pub_pem


def body(key):
    """RSA_PUBLIC_KEY value: the PEM body without armour, as users paste it."""
    return "".join(l for l in pub_pem(key).decode().splitlines() if not l.startswith("-----"))


class AccountTests(EmulatorTestCase):
    def setUp(self):
        super().setUp()
        self.admin = self.client  # LOADER is preconfigured: not managed, acts as ACCOUNTADMIN

    def svc(self, key=None, user="SVC", **fields):
        c = Client(self.emu.port, make_jwt(key or self.key2, user=user))
        orig = c.submit

        def submit(statement, **kw):
            for k, v in dict({"role": None, "warehouse": None}, **fields).items():
                kw.setdefault(k, v)
            return orig(statement, **kw)
        c.submit = submit
        return c

    def err(self, resp):
        self.assertEqual(resp.status, 422, resp.raw[:400])
        return resp.json["code"], resp.json["message"]

    def desc(self, sql, col=2):
        return {r[0]: r[col] for r in self.admin.rows(sql)}

    # -- users and key-pair authentication ---------------------------------
    def test_create_user_registers_key(self):
        self.assertEqual(self.svc().run("SELECT 1").status, 401)  # no such user yet
        self.admin.ok("CREATE USER SVC TYPE = SERVICE RSA_PUBLIC_KEY = '%s'" % body(self.key2))
        self.assertEqual(self.svc().rows("SELECT CURRENT_USER()"), [["SVC"]])
        # signed with another key (fingerprint of the registered one, or of its own)
        bad = Client(self.emu.port, make_jwt(self.key, user="SVC", fp_key=self.key2))
        r = bad.run("SELECT 1")
        self.assertEqual((r.status, r.json["code"]), (401, "390144"))
        self.assertEqual(self.svc(key=self.key).run("SELECT 1").status, 401)
        d = self.desc("DESC USER SVC", col=1)
        self.assertEqual(d["RSA_PUBLIC_KEY_FP"], fingerprint(self.key2))
        self.assertEqual(d["TYPE"], "SERVICE")
        self.assertEqual(d["RSA_PUBLIC_KEY_2_FP"], "null")
        # key rotation: RSA_PUBLIC_KEY_2, then unset the first
        self.admin.ok("ALTER USER SVC SET RSA_PUBLIC_KEY_2 = '%s'" % body(self.key))
        self.assertEqual(self.svc(key=self.key).run("SELECT 1").status, 200)
        self.admin.ok("ALTER USER SVC UNSET RSA_PUBLIC_KEY")
        self.assertEqual(self.svc().run("SELECT 1").status, 401)
        self.assertEqual(self.svc(key=self.key).run("SELECT 1").status, 200)
        self.assertEqual(self.admin.admin("GET", "users")["users"]["SVC"],
                         [None, fingerprint(self.key)])
        self.admin.ok("DROP USER SVC")
        self.assertEqual(self.svc(key=self.key).run("SELECT 1").status, 401)

    def test_user_options_checked(self):
        code, msg = self.err(self.admin.run("CREATE USER U RSA_PUBLIC_KEY = 'not a key'"))
        self.assertEqual(code, "001008")
        code, msg = self.err(self.admin.run("CREATE USER U FAVOURITE_COLOUR = 'red'"))
        self.assertIn("invalid property 'FAVOURITE_COLOUR'", msg)
        code, msg = self.err(self.admin.run("CREATE USER U TYPE = SERVICE PASSWORD = 'x'"))
        self.assertIn("PASSWORD", msg)
        # the preconfigured user cannot be created again; a created one only with OR REPLACE
        self.assertEqual(self.err(self.admin.run("CREATE USER LOADER"))[0], "003004")
        self.admin.ok("CREATE USER U")
        self.assertEqual(self.err(self.admin.run("CREATE USER U"))[0], "002002")
        self.admin.ok("CREATE USER IF NOT EXISTS U")
        self.admin.ok("CREATE OR REPLACE USER U")

    def test_users_survive_restart(self):
        self.admin.ok("CREATE USER SVC RSA_PUBLIC_KEY = '%s'" % body(self.key2))
        self.emu.stop()
        self.emu.start()
        self.assertEqual(self.svc().rows("SELECT CURRENT_USER()"), [["SVC"]])

    # -- roles and warehouses ---------------------------------------------------
    def test_role_and_warehouse_resolution(self):
        self.admin.ok("CREATE ROLE R")
        self.admin.ok("CREATE WAREHOUSE W WAREHOUSE_SIZE = XSMALL AUTO_SUSPEND = 60 "
                      "AUTO_RESUME = TRUE")
        self.admin.ok("CREATE USER SVC DEFAULT_ROLE = R DEFAULT_WAREHOUSE = W "
                      "RSA_PUBLIC_KEY = '%s'" % body(self.key2))
        q = "SELECT CURRENT_ROLE(), CURRENT_WAREHOUSE()"
        # default role not granted: PUBLIC, and no warehouse
        self.assertEqual(self.svc().rows(q), [["PUBLIC", None]])
        code, msg = self.err(self.svc(role="R").run(q))
        self.assertEqual(code, "390189")
        self.assertIn("Role 'R' specified in the connect string is not granted to this user", msg)
        self.admin.ok("GRANT ROLE R TO USER SVC")
        self.assertEqual(self.svc().rows(q), [["R", None]])  # no USAGE on W yet
        self.admin.ok("GRANT USAGE ON WAREHOUSE W TO ROLE R")
        self.assertEqual(self.svc().rows(q), [["R", "W"]])
        self.assertEqual(self.svc(warehouse="NOPE").rows(q), [["R", None]])
        # role hierarchy: R2 granted to R2's user through R
        self.admin.ok("CREATE ROLE R2")
        self.admin.ok("GRANT ROLE R2 TO ROLE R")
        self.assertEqual(self.svc(role="R2").rows("SELECT CURRENT_ROLE()"), [["R2"]])
        self.assertEqual(self.err(self.admin.run("GRANT ROLE R TO ROLE R2"))[0], "003523")
        self.admin.ok("REVOKE ROLE R FROM USER SVC")
        self.assertEqual(self.err(self.svc(role="R").run(q))[0], "390189")
        self.assertEqual(self.err(self.admin.run("GRANT USAGE ON WAREHOUSE NOPE TO ROLE R"))[0],
                         "002003")
        self.assertEqual(self.err(self.admin.run("CREATE WAREHOUSE W2 WAREHOUSE_SIZE = HUGE"))[0],
                         "001008")

    def test_privileges(self):
        self.admin.ok("CREATE ROLE R")
        self.admin.ok("CREATE WAREHOUSE W")
        self.admin.ok("CREATE USER SVC DEFAULT_ROLE = R RSA_PUBLIC_KEY = '%s'" % body(self.key2))
        self.admin.ok("GRANT ROLE R TO USER SVC")
        self.admin.ok("CREATE TABLE ADMIN_T (A NUMBER)")
        svc = self.svc(warehouse="W")
        code, msg = self.err(svc.run("CREATE TABLE T (A NUMBER)"))
        self.assertEqual((code, msg.splitlines()[-1]),
                         ("002003", "Database 'DB' does not exist or not authorized."))
        self.admin.ok("GRANT USAGE ON DATABASE DB TO ROLE R")
        code, msg = self.err(svc.run("CREATE TABLE T (A NUMBER)"))
        self.assertIn("Schema 'DB.PUBLIC' does not exist or not authorized", msg)
        self.admin.ok("GRANT USAGE ON SCHEMA DB.PUBLIC TO ROLE R")
        code, msg = self.err(svc.run("CREATE TABLE T (A NUMBER)"))
        self.assertEqual(code, "003001")
        self.assertIn("Insufficient privileges to operate on schema 'PUBLIC'", msg)
        self.admin.ok("GRANT CREATE TABLE, CREATE STAGE ON SCHEMA DB.PUBLIC TO ROLE R")
        svc.ok("CREATE TABLE T (A NUMBER)")
        self.write("a.csv", "1\n2\n")
        svc.ok("CREATE STAGE ST URL = 'file://%s/'" % self.stage_dir)
        objs = {o["fqn"][2]: o for o in self.admin.admin("GET", "objects")["objects"]}
        self.assertEqual(objs["T"]["owner"], "R")
        self.assertEqual(objs["ST"]["owner"], "R")
        # a warehouse is needed for COPY: none until USAGE is granted
        self.assertEqual(self.err(svc.run("COPY INTO T FROM @ST FILES = ('a.csv')"))[0], "000606")
        self.admin.ok("GRANT USAGE ON WAREHOUSE W TO ROLE R")
        self.assertEqual(svc.ok("COPY INTO T FROM @ST FILES = ('a.csv')")["data"][0][1], "LOADED")
        self.assertEqual(svc.rows("SELECT COUNT(*) FROM T"), [["2"]])
        # the admin's table: invisible, then readable, then insertable
        code, msg = self.err(svc.run("COPY INTO ADMIN_T FROM @ST FILES = ('a.csv')"))
        self.assertIn("does not exist or not authorized", msg)
        self.admin.ok("GRANT SELECT ON TABLE ADMIN_T TO ROLE R")
        code, msg = self.err(svc.run("COPY INTO ADMIN_T FROM @ST FILES = ('a.csv')"))
        self.assertEqual(code, "003001")
        self.admin.ok("GRANT INSERT ON TABLE DB.PUBLIC.ADMIN_T TO ROLE R")
        svc.ok("COPY INTO ADMIN_T FROM @ST FILES = ('a.csv')")
        self.assertEqual(self.err(svc.run("DROP TABLE ADMIN_T"))[0], "003001")
        svc.ok("DROP TABLE T")
        self.admin.ok("REVOKE USAGE ON DATABASE DB FROM ROLE R")
        self.assertEqual(self.err(svc.run("SELECT COUNT(*) FROM ADMIN_T"))[0], "002003")
        # account-level DDL needs an administrator role
        code, msg = self.err(svc.run("CREATE ROLE X"))
        self.assertIn("Insufficient privileges to operate on account '%s'" % ACCOUNT, msg)
        self.assertEqual(self.err(svc.run("CREATE STORAGE INTEGRATION I TYPE = EXTERNAL_STAGE "
                                          "STORAGE_PROVIDER = 'GCS' ENABLED = TRUE "
                                          "STORAGE_ALLOWED_LOCATIONS = ('gcs://b/')"))[0],
                         "003001")

    # -- storage integrations ----------------------------------------------------
    def test_storage_integration_s3(self):
        self.admin.ok("CREATE STORAGE INTEGRATION S3I TYPE = EXTERNAL_STAGE "
                      "STORAGE_PROVIDER = 'S3' ENABLED = TRUE "
                      "STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/r' "
                      "STORAGE_ALLOWED_LOCATIONS = ('s3://b/ok/', 's3://c/') "
                      "STORAGE_BLOCKED_LOCATIONS = ('s3://c/secret/')")
        d = self.desc("DESC INTEGRATION S3I")
        self.assertRegex(d["STORAGE_AWS_IAM_USER_ARN"], r"^arn:aws:iam::\d{12}:user/\S+$")
        self.assertTrue(d["STORAGE_AWS_EXTERNAL_ID"].startswith(ACCOUNT + "_SFCRole="))
        self.assertEqual(d["STORAGE_AWS_ROLE_ARN"], "arn:aws:iam::123456789012:role/r")
        self.assertEqual(d["STORAGE_ALLOWED_LOCATIONS"], "s3://b/ok/,s3://c/")
        self.assertEqual(d["ENABLED"], "true")
        cols = [c["name"] for c in self.admin.ok("DESCRIBE STORAGE INTEGRATION S3I")
                ["resultSetMetaData"]["rowType"]]
        self.assertEqual(cols, ["property", "property_type", "property_value",
                                "property_default"])
        # stable: the trust policy made from it keeps working
        self.assertEqual(self.desc("DESC INTEGRATION S3I"), d)
        ok = "CREATE STAGE %s URL = '%s' STORAGE_INTEGRATION = S3I"
        self.admin.ok(ok % ("S1", "s3://b/ok/sub/"))
        self.admin.ok(ok % ("S2", "s3://c/any/"))
        for url in ("s3://b/other/", "s3://c/secret/x/", "s3://b/"):
            code, msg = self.err(self.admin.run(ok % ("SX", url)))
            self.assertEqual(code, "003160", url)
            self.assertIn("is not allowed by integration 'S3I'", msg)
        self.assertEqual(self.err(self.admin.run(ok % ("SX", "gcs://b/ok/")))[0], "003163")
        # users that are not managed may name integrations the emulator never saw
        self.admin.ok("CREATE STAGE SY URL = 's3://b/ok/' STORAGE_INTEGRATION = NOPE")
        self.assertEqual(self.err(self.admin.run(
            "CREATE STORAGE INTEGRATION X TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'S3' "
            "ENABLED = TRUE STORAGE_ALLOWED_LOCATIONS = ('s3://b/')"))[0], "001008")
        self.admin.ok("CREATE OR REPLACE STORAGE INTEGRATION S3I TYPE = EXTERNAL_STAGE "
                      "STORAGE_PROVIDER = 'S3' ENABLED = FALSE "
                      "STORAGE_AWS_ROLE_ARN = 'arn:aws:iam::123456789012:role/r' "
                      "STORAGE_ALLOWED_LOCATIONS = ('s3://b/ok/')")
        self.assertEqual(self.err(self.admin.run(ok % ("S3", "s3://b/ok/")))[0], "003162")

    def test_integration_usage_grant(self):
        self.admin.ok("CREATE STORAGE INTEGRATION G TYPE = EXTERNAL_STAGE "
                      "STORAGE_PROVIDER = 'GCS' ENABLED = TRUE "
                      "STORAGE_ALLOWED_LOCATIONS = ('gcs://bkt/pre/')")
        d = self.desc("DESC INTEGRATION G")
        self.assertRegex(d["STORAGE_GCP_SERVICE_ACCOUNT"], r"^[^@\s]+@[\w.-]+\.iam\.gserviceaccount\.com$")
        self.assertNotIn("STORAGE_AWS_IAM_USER_ARN", d)
        self.admin.ok("CREATE ROLE R")
        self.admin.ok("CREATE USER SVC DEFAULT_ROLE = R RSA_PUBLIC_KEY = '%s'" % body(self.key2))
        self.admin.ok("GRANT ROLE R TO USER SVC")
        self.admin.ok("GRANT USAGE ON DATABASE DB TO ROLE R")
        self.admin.ok("GRANT USAGE, CREATE STAGE ON SCHEMA DB.PUBLIC TO ROLE R")
        svc = self.svc()
        sql = "CREATE STAGE S URL = 'gcs://bkt/pre/' STORAGE_INTEGRATION = G"
        self.assertEqual(self.err(svc.run(sql.replace("= G", "= NOPE")))[0], "002003")
        code, msg = self.err(svc.run(sql))
        self.assertEqual(code, "003001")
        self.assertIn("Insufficient privileges to operate on integration 'G'", msg)
        self.assertEqual(self.err(svc.run("DESC INTEGRATION G"))[0], "002003")
        self.admin.ok("GRANT USAGE ON INTEGRATION G TO ROLE R")
        svc.ok(sql)
        self.assertIn("STORAGE_GCP_SERVICE_ACCOUNT", {r[0] for r in svc.rows("DESC INTEGRATION G")})
        acct = self.admin.admin("GET", "account")
        self.assertIn({"privilege": "USAGE", "object_type": "INTEGRATION", "object": ["G"],
                       "grantee_type": "ROLE", "grantee": "R"}, acct["grants"])
        self.admin.ok("DROP INTEGRATION G")
        self.assertEqual(self.err(self.admin.run("DESC INTEGRATION G"))[0], "002003")

    def test_reset_forgets_sql_users(self):
        self.admin.ok("CREATE USER SVC RSA_PUBLIC_KEY = '%s'" % body(self.key2))
        self.assertEqual(self.svc().run("SELECT 1").status, 200)
        self.admin.admin("POST", "reset")
        self.assertEqual(self.svc().run("SELECT 1").status, 401)
        self.assertEqual(self.admin.run("SELECT 1").status, 200)  # preconfigured users stay


if __name__ == "__main__":
    unittest.main()
