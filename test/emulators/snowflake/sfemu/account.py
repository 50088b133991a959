"""Account-level objects and access control: roles, users, warehouses,
storage integrations, grants.

Statements (Snowflake SQL reference, "CREATE ROLE", "CREATE USER",
"CREATE WAREHOUSE", "CREATE STORAGE INTEGRATION", "GRANT <privileges>",
"GRANT ROLE", "DESCRIBE INTEGRATION", "DESCRIBE USER"):

  CREATE [OR REPLACE] ROLE [IF NOT EXISTS] r [COMMENT = '...']
  CREATE [OR REPLACE] WAREHOUSE [IF NOT EXISTS] w [WITH] [WAREHOUSE_SIZE = ...] ...
  CREATE [OR REPLACE] USER [IF NOT EXISTS] u [TYPE = SERVICE|PERSON|...]
      [DEFAULT_ROLE = r] [DEFAULT_WAREHOUSE = w] [RSA_PUBLIC_KEY = '...']
      [RSA_PUBLIC_KEY_2 = '...'] [DISABLED = TRUE|FALSE] ...
  ALTER USER [IF EXISTS] u SET prop = value ... | UNSET prop [, ...]
  CREATE [OR REPLACE] STORAGE INTEGRATION [IF NOT EXISTS] i TYPE = EXTERNAL_STAGE
      STORAGE_PROVIDER = 'S3' | 'GCS' | 'AZURE' ENABLED = TRUE|FALSE
      [STORAGE_AWS_ROLE_ARN = '...'] STORAGE_ALLOWED_LOCATIONS = ('url', ...)
      [STORAGE_BLOCKED_LOCATIONS = ('url', ...)]
  GRANT priv [, ...] | ALL [PRIVILEGES] ON {ACCOUNT | WAREHOUSE w | DATABASE d |
      SCHEMA [d.]s | INTEGRATION i | TABLE t | STAGE s | FILE FORMAT f | PIPE p |
      EXTERNAL TABLE t} TO ROLE r
  GRANT ROLE r TO {ROLE r2 | USER u};  REVOKE ... FROM ...
  DROP {ROLE | USER | WAREHOUSE | [STORAGE] INTEGRATION} [IF EXISTS] name
  DESC[RIBE] [STORAGE] INTEGRATION i;  DESC[RIBE] USER u

Users created with RSA_PUBLIC_KEY can authenticate with a key-pair JWT
(sfemu/auth.py checks the JWT against the keys registered here).  Their
requests are *managed*: the session's role is the request's `role` (which
must be granted to the user, directly or through other roles, or be PUBLIC)
or the user's DEFAULT_ROLE; the warehouse is the request's or the user's
DEFAULT_WAREHOUSE if it exists and the role has USAGE on it, else none.
Object access then follows the privilege model of "Access control
privileges": USAGE on the database and schema, CREATE <kind> on the schema
to create, INSERT on a table to COPY into it, USAGE on a stage, file format
or integration to use it, ownership for DROP / ALTER / TRUNCATE, and a
warehouse for COPY and for SELECT from a table.  The role that creates an
object owns it.

Users registered on the command line or through the admin API (and the
admin query endpoint) are not managed: they act as ACCOUNTADMIN, as before.
Deviations: ACCOUNTADMIN has every privilege on everything (in Snowflake it
reaches objects of custom roles only through the role hierarchy);
databases and schemas exist implicitly; no future grants; SHOW GRANTS ON
<object> only.
"""

import base64
import hashlib
import json
import time

from .errors import SfError
from .sqltok import quote_ident

SYSTEM_ROLES = ("ACCOUNTADMIN", "SECURITYADMIN", "USERADMIN", "SYSADMIN", "PUBLIC", "ORGADMIN")
SUPER = "ACCOUNTADMIN"
# kind of catalog object -> the schema privilege that creates it
CREATE_PRIV = {"TABLE": "CREATE TABLE", "EXTERNAL_TABLE": "CREATE EXTERNAL TABLE",
               "STAGE": "CREATE STAGE", "FILE_FORMAT": "CREATE FILE FORMAT",
               "PIPE": "CREATE PIPE"}
OBJ_LABEL = {"TABLE": "Table", "EXTERNAL_TABLE": "Table", "STAGE": "Stage",
             "FILE_FORMAT": "File format", "PIPE": "Pipe", "WAREHOUSE": "Warehouse",
             "INTEGRATION": "Integration", "DATABASE": "Database", "SCHEMA": "Schema",
             "ROLE": "Role", "USER": "User"}
ACCOUNT_KINDS = ("ROLE", "USER", "WAREHOUSE", "INTEGRATION")
USER_PROPS = {"PASSWORD", "LOGIN_NAME", "DISPLAY_NAME", "FIRST_NAME", "MIDDLE_NAME",
              "LAST_NAME", "EMAIL", "MUST_CHANGE_PASSWORD", "DISABLED", "DAYS_TO_EXPIRY",
              "MINS_TO_UNLOCK", "DEFAULT_WAREHOUSE", "DEFAULT_NAMESPACE", "DEFAULT_ROLE",
              "DEFAULT_SECONDARY_ROLES", "MINS_TO_BYPASS_MFA", "RSA_PUBLIC_KEY",
              "RSA_PUBLIC_KEY_FP", "RSA_PUBLIC_KEY_2", "RSA_PUBLIC_KEY_2_FP", "TYPE",
              "COMMENT", "NETWORK_POLICY"}
USER_TYPES = ("PERSON", "SERVICE", "LEGACY_SERVICE", "NULL")
WAREHOUSE_PROPS = {"WAREHOUSE_TYPE", "WAREHOUSE_SIZE", "MAX_CLUSTER_COUNT", "MIN_CLUSTER_COUNT",
                   "SCALING_POLICY", "AUTO_SUSPEND", "AUTO_RESUME", "INITIALLY_SUSPENDED",
                   "RESOURCE_MONITOR", "COMMENT", "ENABLE_QUERY_ACCELERATION",
                   "QUERY_ACCELERATION_MAX_SCALE_FACTOR", "MAX_CONCURRENCY_LEVEL",
                   "STATEMENT_QUEUED_TIMEOUT_IN_SECONDS", "STATEMENT_TIMEOUT_IN_SECONDS",
                   "RESOURCE_CONSTRAINT"}
WAREHOUSE_SIZES = ("XSMALL", "X-SMALL", "SMALL", "MEDIUM", "LARGE", "XLARGE", "X-LARGE",
                   "XXLARGE", "X2LARGE", "2X-LARGE", "XXXLARGE", "X3LARGE", "3X-LARGE",
                   "X4LARGE", "4X-LARGE", "X5LARGE", "5X-LARGE", "X6LARGE", "6X-LARGE")
INTEGRATION_PROPS = {"TYPE", "STORAGE_PROVIDER", "ENABLED", "STORAGE_AWS_ROLE_ARN",
                     "STORAGE_AWS_OBJECT_ACL", "STORAGE_AWS_EXTERNAL_ID",
                     "STORAGE_ALLOWED_LOCATIONS", "STORAGE_BLOCKED_LOCATIONS", "AZURE_TENANT_ID",
                     "USE_PRIVATELINK_ENDPOINT", "COMMENT"}
PROVIDER_SCHEMES = {"S3": ("s3",), "S3GOV": ("s3gov",), "S3CHINA": ("s3china",),
                    "GCS": ("gcs",), "AZURE": ("azure",)}


def access_error(kind, name):
    return SfError("SQL access control error:\nInsufficient privileges to operate on %s '%s'"
                   % (kind.lower().replace("_", " "), name), "003001", "42501")


def not_authorized(kind, name):
    return SfError("SQL compilation error:\n%s '%s' does not exist or not authorized."
                   % (OBJ_LABEL.get(kind, kind.capitalize()), name), "002003", "02000")


def no_warehouse():
    return SfError("No active warehouse selected in the current session.  Select an active "
                   "warehouse with the 'use warehouse' command.\n", "000606", "57P03")


def _v(v):
    """Raw option value -> plain Python (('KW', x) -> x)."""
    if isinstance(v, tuple) and v and v[0] == "KW":
        return v[1]
    return v


def _text(v):
    v = _v(v)
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _bool(v, what):
    v = _v(v)
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.upper() in ("TRUE", "FALSE"):
        return v.upper() == "TRUE"
    raise SfError("SQL compilation error:\ninvalid value [%s] for parameter '%s'" % (v, what),
                  "001008", "22023")


def _name_text(v):
    """An identifier given as an option value (DEFAULT_ROLE = r or 'r')."""
    v = _v(v)
    if v is None:
        return None
    s = str(v)
    if s.startswith('"') and s.endswith('"'):
        return s[1:-1].replace('""', '"')
    return s.upper()


def key_of(parts):
    return "\x1f".join(parts)


class Account:
    def __init__(self, catalog, auth, storage_cfg=None, account=None):
        self.cat = catalog
        self.auth = auth
        self.storage_cfg = storage_cfg
        self.account = (account or "EMULATOR").upper()
        self.cat.db.execute(
            "CREATE TABLE IF NOT EXISTS grants (privilege TEXT NOT NULL, object_type TEXT NOT NULL, "
            "object_key TEXT NOT NULL, grantee_type TEXT NOT NULL, grantee TEXT NOT NULL, "
            "granted_by TEXT, PRIMARY KEY (privilege, object_type, object_key, grantee_type, "
            "grantee))")
        # when each grant was made (SHOW GRANTS' created_on); older data dirs lack it
        if "created_on" not in [r[1] for r in self.cat.db.execute("PRAGMA table_info(grants)")]:
            self.cat.db.execute("ALTER TABLE grants ADD COLUMN created_on REAL")
        self.sync_auth()

    # -- catalog helpers ------------------------------------------------------
    def _get(self, kind, name):
        return self.cat.get(kind, ("", "", name))

    def _put(self, kind, name, d):
        self.cat.put(kind, ("", "", name), d)

    def sync_auth(self):
        """Register the keys of SQL-created users with the authenticator (after a
        restart or an admin reset)."""
        keys = {}
        for u in self.cat.list_objects("USER"):
            keys[u["fqn"][2]] = [u.get("rsa_public_key"), u.get("rsa_public_key_2")] \
                if not u.get("disabled") else [None, None]
        self.auth.set_sql_users(keys)

    def reset(self):
        self.cat.db.execute("DELETE FROM grants")
        self.sync_auth()

    # -- role resolution ------------------------------------------------------
    def role_exists(self, role):
        return role in SYSTEM_ROLES or self._get("ROLE", role) is not None

    def _granted_roles(self, grantee_type, grantee):
        cur = self.cat.db.execute("SELECT object_key FROM grants WHERE privilege='USAGE' AND "
                                  "object_type='ROLE' AND grantee_type=? AND grantee=?",
                                  (grantee_type, grantee))
        return [r[0] for r in cur]

    def closure(self, role):
        """The role and every role granted to it, transitively (plus PUBLIC)."""
        seen = {role, "PUBLIC"}
        todo = [role]
        while todo:
            r = todo.pop()
            for g in self._granted_roles("ROLE", r):
                if g not in seen:
                    seen.add(g)
                    todo.append(g)
        # system hierarchy: ACCOUNTADMIN > SECURITYADMIN > USERADMIN, ACCOUNTADMIN > SYSADMIN
        if "ACCOUNTADMIN" in seen:
            seen.update(("SECURITYADMIN", "USERADMIN", "SYSADMIN"))
        if "SECURITYADMIN" in seen:
            seen.add("USERADMIN")
        return seen

    def user_roles(self, user):
        roles = {"PUBLIC"}
        for r in self._granted_roles("USER", user):
            roles |= self.closure(r)
        return roles

    def is_managed(self, user):
        return bool(user) and self._get("USER", user) is not None

    def prepare(self, session):
        """Resolve the role and warehouse of a managed user's session."""
        if getattr(session, "prepared", False):
            return
        session.prepared = True
        u = self._get("USER", session.user) if session.user else None
        if u is None:
            session.roles = None  # unmanaged: unrestricted
            return
        granted = self.user_roles(session.user)
        want = session.role.upper() if session.role and not session.role.startswith('"') \
            else (session.role.strip('"') if session.role else None)
        if want:
            if want not in granted:
                raise SfError("Role '%s' specified in the connect string is not granted to this "
                              "user. Contact your local system administrator, or attempt to "
                              "login with another role, e.g. PUBLIC." % want, "390189", "08004")
            role = want
        else:
            role = u.get("default_role") if u.get("default_role") in granted else "PUBLIC"
        session.role = role
        session.roles = self.closure(role)
        wh = session.warehouse or u.get("default_warehouse")
        if wh:
            wh = wh.strip('"') if wh.startswith('"') else wh.upper()
        session.warehouse = wh if wh and self._get("WAREHOUSE", wh) and \
            self.has(session, "WAREHOUSE", (wh,), ("USAGE", "OPERATE")) else None

    # -- privilege checks -----------------------------------------------------
    def owner_for(self, session):
        return session.role.upper() if session.role else SUPER

    def _grants_on(self, object_type, parts, roles):
        q = ("SELECT privilege FROM grants WHERE object_type=? AND object_key=? AND "
             "grantee_type='ROLE' AND grantee IN (%s)" % ",".join("?" for _ in roles))
        return {r[0] for r in self.cat.db.execute(q, [object_type, key_of(parts)] + list(roles))}

    def privileges(self, session, object_type, parts, owner=None):
        """Privileges the session's roles hold on an object (None: all)."""
        roles = session.roles
        if roles is None or SUPER in roles:
            return None
        if owner is None:
            obj = self._owner_object(object_type, parts)
            owner = obj.get("owner") if obj else None
        if owner and owner in roles:
            return None
        privs = self._grants_on(object_type, parts, roles)
        if "OWNERSHIP" in privs or "ALL" in privs:
            return None
        return privs

    def _owner_object(self, object_type, parts):
        if object_type in ACCOUNT_KINDS:
            return self._get(object_type, parts[0])
        if object_type == "DATABASE":
            return self.cat.get("DATABASE", ("", "", parts[0]))
        if object_type == "SCHEMA":
            return self.cat.get("SCHEMA", (parts[0], "", parts[1]))
        return self.cat.get(object_type, tuple(parts))

    def has(self, session, object_type, parts, wanted, owner=None):
        privs = self.privileges(session, object_type, parts, owner)
        return privs is None or any(w in privs for w in wanted)

    def check_schema(self, session, fqn, priv=None):
        """USAGE on the database and schema of fqn; and priv on the schema."""
        if session.roles is None:
            return
        db, sc = fqn[0], fqn[1]
        if not self.has(session, "DATABASE", (db,), ("USAGE",)):
            raise not_authorized("DATABASE", db)
        sprivs = self.privileges(session, "SCHEMA", (db, sc))
        if sprivs is not None and not sprivs:
            raise not_authorized("SCHEMA", "%s.%s" % (db, sc))
        if sprivs is not None and "USAGE" not in sprivs:
            raise not_authorized("SCHEMA", "%s.%s" % (db, sc))
        if priv and sprivs is not None and priv not in sprivs:
            raise access_error("schema", sc)

    def check_object(self, session, kind, fqn, obj, wanted, label=None):
        """Some privilege in wanted on a schema object (after schema USAGE)."""
        if session.roles is None:
            return
        self.check_schema(session, fqn)
        privs = self.privileges(session, kind, fqn, owner=(obj or {}).get("owner") or "")
        if privs is None or any(w in privs for w in wanted):
            return
        if not privs:
            raise not_authorized(kind, ".".join(quote_ident(x) for x in fqn))
        raise access_error(label or OBJ_LABEL.get(kind, kind), fqn[2])

    def check_warehouse(self, session):
        if session.roles is not None and not session.warehouse:
            raise no_warehouse()

    def check_integration(self, session, name, url):
        """A stage over url with STORAGE_INTEGRATION = name."""
        integ = self._get("INTEGRATION", name)
        if integ is None:
            if session.roles is None:
                return  # unmanaged sessions may name integrations the emulator never saw
            raise not_authorized("INTEGRATION", name)
        if session.roles is not None and not self.has(session, "INTEGRATION", (name,), ("USAGE",)):
            raise access_error("integration", name)
        if not integ.get("enabled"):
            raise SfError("SQL execution error: Integration '%s' is disabled." % name,
                          "003162", "22023")
        scheme = url.split(":", 1)[0].lower()
        if scheme not in PROVIDER_SCHEMES.get(integ["storage_provider"], ()):
            raise SfError("SQL compilation error:\nStorage provider of URL '%s' does not match "
                          "integration '%s' (STORAGE_PROVIDER = %s)."
                          % (url, name, integ["storage_provider"]), "003163", "22023")
        if not _location_allowed(url, integ.get("allowed_locations") or [],
                                 integ.get("blocked_locations") or []):
            raise SfError("SQL execution error: Location '%s' is not allowed by integration "
                          "'%s'. Please use DESC INTEGRATION to check out allowed and blocked "
                          "locations." % (url, name), "003160", "22023")

    def _require_admin(self, session, roles, what):
        if session.roles is None or any(r in session.roles for r in roles):
            return
        raise access_error("account", self.account)

    # -- statements -----------------------------------------------------------
    def execute(self, st, session):
        return getattr(self, "_" + st["op"])(st, session)

    def _exists_check(self, kind, name, st):
        existing = self._get(kind, name)
        if kind == "ROLE" and name in SYSTEM_ROLES:
            existing = True
        if existing:
            if st.get("if_not_exists"):
                return "%s already exists, statement succeeded." % name
            if not st.get("or_replace") or (kind == "ROLE" and name in SYSTEM_ROLES):
                raise SfError("SQL compilation error:\nObject '%s' already exists." % name,
                              "002002", "42710")
            if kind == "USER":
                pass
        if kind == "USER" and not existing and name in self.auth.static_users():
            raise SfError("SQL compilation error:\nUser '%s' already exists." % name,
                          "003004", "42710")
        return None

    def _create_role(self, st, session):
        self._require_admin(session, ("USERADMIN", "SECURITYADMIN"), "CREATE ROLE")
        name = st["name"]
        msg = self._exists_check("ROLE", name, st)
        if msg:
            return msg
        self._drop_grants_of("ROLE", name)
        self._put("ROLE", name, {"owner": self.owner_for(session),
                                 "comment": _text(st["options"].get("COMMENT"))})
        return "Role %s successfully created." % name

    def _create_warehouse(self, st, session):
        self._require_admin(session, ("SYSADMIN",), "CREATE WAREHOUSE")
        name = st["name"]
        o = st["options"]
        for k in o:
            if k not in WAREHOUSE_PROPS:
                raise SfError("SQL compilation error:\ninvalid property '%s' for 'WAREHOUSE'" % k,
                              "001008", "22023")
        size = str(_v(o.get("WAREHOUSE_SIZE", "XSMALL"))).upper()
        if size not in WAREHOUSE_SIZES:
            raise SfError("SQL compilation error:\ninvalid value '%s' for property "
                          "'WAREHOUSE_SIZE'" % size, "001008", "22023")
        msg = self._exists_check("WAREHOUSE", name, st)
        if msg:
            return msg
        d = {"owner": self.owner_for(session), "size": size.replace("-", ""),
             "auto_suspend": _v(o.get("AUTO_SUSPEND", 600)),
             "auto_resume": _bool(o.get("AUTO_RESUME", True), "AUTO_RESUME")}
        self._put("WAREHOUSE", name, d)
        return "Warehouse %s successfully created." % name

    def _user_props(self, o, d):
        for k, v in o.items():
            if k not in USER_PROPS:
                raise SfError("SQL compilation error:\ninvalid property '%s' for 'USER'" % k,
                              "001008", "22023")
            if k in ("RSA_PUBLIC_KEY", "RSA_PUBLIC_KEY_2"):
                d[k.lower()] = self._check_key(v, k) if v not in (None, "") else None
            elif k == "TYPE":
                t = str(_v(v)).upper()
                if t not in USER_TYPES:
                    raise SfError("SQL compilation error:\ninvalid value '%s' for property "
                                  "'TYPE'" % t, "001008", "22023")
                d["type"] = t
                if t == "SERVICE" and (d.get("password") or "PASSWORD" in o):
                    raise SfError("SQL compilation error:\nProperty 'PASSWORD' is not supported "
                                  "for users of TYPE = SERVICE.", "001008", "22023")
            elif k in ("DEFAULT_ROLE", "DEFAULT_WAREHOUSE"):
                d[k.lower()] = _name_text(v)
            elif k == "DISABLED":
                d["disabled"] = _bool(v, k)
            elif k == "PASSWORD":
                if d.get("type") == "SERVICE":
                    raise SfError("SQL compilation error:\nProperty 'PASSWORD' is not supported "
                                  "for users of TYPE = SERVICE.", "001008", "22023")
                d["password"] = True  # never stored
            else:
                d[k.lower()] = _text(v)
        return d

    def _check_key(self, v, what):
        text = _text(v)
        try:
            self.auth.fingerprint_of(text)
        except Exception:
            raise SfError("SQL compilation error:\nInvalid %s: the value is not a valid RSA "
                          "public key (give the base64 body of the PEM public key)." % what,
                          "001008", "22023")
        return "".join(l for l in text.strip().splitlines() if not l.startswith("-----")) \
            .replace(" ", "")

    def _create_user(self, st, session):
        self._require_admin(session, ("USERADMIN", "SECURITYADMIN"), "CREATE USER")
        name = st["name"]
        msg = self._exists_check("USER", name, st)
        if msg:
            return msg
        d = self._user_props(st["options"], {"owner": self.owner_for(session), "type": "NULL"})
        self._drop_grants_of("USER", name)
        self._put("USER", name, d)
        self.sync_auth()
        return "User %s successfully created." % name

    def _alter_user(self, st, session):
        name = st["name"]
        u = self._get("USER", name)
        if session.roles is not None and session.user != name:
            self._require_admin(session, ("USERADMIN", "SECURITYADMIN"), "ALTER USER")
        if u is None:
            if st.get("if_exists"):
                return "Statement executed successfully."
            raise not_authorized("USER", name)
        if st["set"]:
            self._user_props(st["set"], u)
        for k in st["unset"]:
            if k not in USER_PROPS:
                raise SfError("SQL compilation error:\ninvalid property '%s' for 'USER'" % k,
                              "001008", "22023")
            u[k.lower()] = None
        self._put("USER", name, u)
        self.sync_auth()
        return "Statement executed successfully."

    def _create_integration(self, st, session):
        self._require_admin(session, (SUPER,), "CREATE INTEGRATION")
        name = st["name"]
        o = st["options"]
        for k in o:
            if k not in INTEGRATION_PROPS:
                raise SfError("SQL compilation error:\ninvalid property '%s' for 'INTEGRATION'" % k,
                              "001008", "22023")
        if str(_v(o.get("TYPE", ""))).upper() != "EXTERNAL_STAGE":
            raise SfError("SQL compilation error:\nmissing or invalid property 'TYPE' (a storage "
                          "integration has TYPE = EXTERNAL_STAGE)", "001008", "22023")
        prov = str(_v(o.get("STORAGE_PROVIDER", ""))).upper()
        if prov not in PROVIDER_SCHEMES:
            raise SfError("SQL compilation error:\ninvalid value '%s' for property "
                          "'STORAGE_PROVIDER'" % prov, "001008", "22023")
        if "ENABLED" not in o:
            raise SfError("SQL compilation error:\nmissing required property 'ENABLED'",
                          "001008", "22023")
        allowed = o.get("STORAGE_ALLOWED_LOCATIONS")
        if isinstance(allowed, str):
            allowed = [allowed]
        if not allowed:
            raise SfError("SQL compilation error:\nmissing required property "
                          "'STORAGE_ALLOWED_LOCATIONS'", "001008", "22023")
        blocked = o.get("STORAGE_BLOCKED_LOCATIONS") or []
        if isinstance(blocked, str):
            blocked = [blocked]
        for loc in list(allowed) + list(blocked):
            if loc != "*" and loc.split(":", 1)[0].lower() not in PROVIDER_SCHEMES[prov]:
                raise SfError("SQL compilation error:\nLocation '%s' does not match "
                              "STORAGE_PROVIDER = %s" % (loc, prov), "003163", "22023")
        role_arn = _text(o.get("STORAGE_AWS_ROLE_ARN"))
        if prov.startswith("S3") and not role_arn:
            raise SfError("SQL compilation error:\nmissing required property "
                          "'STORAGE_AWS_ROLE_ARN'", "001008", "22023")
        if prov == "GCS" and role_arn:
            raise SfError("SQL compilation error:\ninvalid property 'STORAGE_AWS_ROLE_ARN' for "
                          "STORAGE_PROVIDER = GCS", "001008", "22023")
        msg = self._exists_check("INTEGRATION", name, st)
        if msg:
            return msg
        seed = hashlib.sha256(("%s/%s" % (self.account, name)).encode()).digest()
        d = {"owner": self.owner_for(session), "storage_provider": prov,
             "enabled": _bool(o["ENABLED"], "ENABLED"), "allowed_locations": list(allowed),
             "blocked_locations": list(blocked), "comment": _text(o.get("COMMENT"))}
        if prov.startswith("S3"):
            acct = "%012d" % (int.from_bytes(seed[:6], "big") % 10 ** 12)
            d["aws_role_arn"] = role_arn
            d["aws_iam_user_arn"] = "arn:aws:iam::%s:user/%s-s-%s" % (
                acct, seed[6:8].hex(), self.account.lower()[:8])
            d["aws_external_id"] = _text(o.get("STORAGE_AWS_EXTERNAL_ID")) or "%s_SFCRole=2_%s" % (
                self.account, base64.b64encode(seed[8:28]).decode())
            d["aws_object_acl"] = _text(o.get("STORAGE_AWS_OBJECT_ACL"))
        elif prov == "GCS":
            d["gcp_service_account"] = "%s@gcpuscentral1-%s.iam.gserviceaccount.com" % (
                seed[:4].hex(), seed[4:6].hex())
        self._drop_grants_of("INTEGRATION", name)
        self._put("INTEGRATION", name, d)
        return "Integration %s successfully created." % name

    def _drop(self, st, session):
        kind, name = st["object"], st["name"]
        obj = self._get(kind, name)
        if obj is None or (kind == "ROLE" and name in SYSTEM_ROLES):
            if kind == "ROLE" and name in SYSTEM_ROLES:
                raise SfError("SQL execution error:\nCannot drop system role '%s'." % name,
                              "003535", "42501")
            if st["if_exists"]:
                return "Drop statement executed successfully (%s already dropped)." % name
            raise not_authorized(kind, name)
        if session.roles is not None and not self.has(session, kind, (name,), ("OWNERSHIP",)):
            raise access_error(kind, name)
        self.cat.delete(kind, ("", "", name))
        self._drop_grants_of(kind, name)
        if kind == "USER":
            self.sync_auth()
        return "%s successfully dropped." % name

    def _drop_grants_of(self, kind, name):
        self.cat.db.execute("DELETE FROM grants WHERE object_type=? AND object_key=?",
                            (kind, key_of((name,))))
        if kind in ("ROLE", "USER"):
            self.cat.db.execute("DELETE FROM grants WHERE grantee_type=? AND grantee=?",
                                (kind, name))

    def record_container(self, what, fqn, session, or_replace=False):
        """CREATE DATABASE / SCHEMA: remember the owner (existence stays implicit)."""
        key = ("", "", fqn[-1]) if what == "DATABASE" else (fqn[0], "", fqn[1])
        if what == "SCHEMA" and session.roles is not None:
            self.check_schema_create(session, fqn[0])
        if what == "DATABASE":
            self._require_admin(session, ("SYSADMIN",), "CREATE DATABASE")
        if self.cat.get(what, key) and not or_replace:
            return
        self.cat.put(what, key, {"owner": self.owner_for(session)})

    def check_schema_create(self, session, db):
        privs = self.privileges(session, "DATABASE", (db,))
        if privs is not None and "CREATE SCHEMA" not in privs:
            if not privs:
                raise not_authorized("DATABASE", db)
            raise access_error("database", db)

    def _grant(self, st, session):
        return self._grant_or_revoke(st, session, True)

    def _revoke(self, st, session):
        return self._grant_or_revoke(st, session, False)

    def _grant_or_revoke(self, st, session, grant):
        if st["role_grant"]:
            role = st["role"]
            if not self.role_exists(role):
                raise not_authorized("ROLE", role)
            gt, gname = st["grantee_type"], st["grantee"]
            if gt == "USER" and not self.is_managed(gname):
                raise not_authorized("USER", gname)
            if gt == "ROLE" and not self.role_exists(gname):
                raise not_authorized("ROLE", gname)
            if session.roles is not None and not (
                    "SECURITYADMIN" in session.roles or
                    self.has(session, "ROLE", (role,), ("OWNERSHIP",))):
                raise access_error("role", role)
            if gt == "ROLE" and grant and role in self.closure(gname) and role != "PUBLIC":
                pass  # already granted (possibly through another role)
            if gt == "ROLE" and grant and gname in self.closure(role):
                raise SfError("SQL execution error:\nGrant would create a cycle in the role "
                              "hierarchy.", "003523", "42000")
            self._set_grant("USAGE", "ROLE", (role,), gt, gname, grant, session)
            return "Statement executed successfully."
        otype, parts = st["object_type"], st["object"]
        if not self.role_exists(st["grantee"]):
            raise not_authorized("ROLE", st["grantee"])
        if otype == "ACCOUNT":
            self._require_admin(session, ("SECURITYADMIN",), "GRANT")
        elif otype in ACCOUNT_KINDS:
            if self._get(otype, parts[0]) is None:
                raise not_authorized(otype, parts[0])
        elif otype in ("DATABASE", "SCHEMA"):
            pass  # implicit existence
        elif self.cat.get(otype, tuple(parts)) is None:
            raise not_authorized(otype, ".".join(quote_ident(x) for x in parts))
        if otype != "ACCOUNT" and session.roles is not None and \
                "SECURITYADMIN" not in session.roles and \
                not self.has(session, otype, parts, ("OWNERSHIP",)):
            raise access_error(otype, parts[-1])
        for p in st["privileges"]:
            self._set_grant(p, otype, parts, "ROLE", st["grantee"], grant, session)
        return "Statement executed successfully."

    def _set_grant(self, priv, otype, parts, gtype, grantee, grant, session):
        if grant:
            self.cat.db.execute("INSERT OR REPLACE INTO grants (privilege, object_type, "
                                "object_key, grantee_type, grantee, granted_by, created_on) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (priv, otype, key_of(parts), gtype, grantee,
                                 self.owner_for(session), time.time()))
        else:
            self.cat.db.execute("DELETE FROM grants WHERE privilege=? AND object_type=? AND "
                                "object_key=? AND grantee_type=? AND grantee=?",
                                (priv, otype, key_of(parts), gtype, grantee))

    # -- grants of schema objects: replace, COPY GRANTS, SHOW GRANTS -------------
    def object_grants(self, kind, fqn):
        """The grants on an object (OWNERSHIP is the object's owner, not a grant)."""
        cur = self.cat.db.execute("SELECT privilege, grantee_type, grantee, granted_by, "
                                  "created_on FROM grants WHERE object_type=? AND object_key=? "
                                  "ORDER BY created_on, privilege, grantee",
                                  (kind, key_of(fqn)))
        return [dict(zip(("privilege", "grantee_type", "grantee", "granted_by", "created_on"),
                         r)) for r in cur]

    def drop_object_grants(self, kind, fqn):
        """A dropped (or replaced) object takes its grants with it."""
        self.cat.db.execute("DELETE FROM grants WHERE object_type=? AND object_key=?",
                            (kind, key_of(fqn)))

    def copy_grants(self, kind, fqn, grants):
        """COPY GRANTS: "copies all permissions, except OWNERSHIP, from the existing table
        to the new table" (https://docs.snowflake.com/en/sql-reference/sql/create-external-table)."""
        for g in grants:
            if g["privilege"] == "OWNERSHIP":
                continue
            self.cat.db.execute("INSERT OR REPLACE INTO grants (privilege, object_type, "
                                "object_key, grantee_type, grantee, granted_by, created_on) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (g["privilege"], kind, key_of(fqn), g["grantee_type"],
                                 g["grantee"], g["granted_by"], g["created_on"]))

    def show_grants(self, otype, parts, session):
        """SHOW GRANTS ON <object_type> <name>: columns created_on, privilege, granted_on,
        name, granted_to, grantee_name, grant_option, granted_by_role_type, granted_by
        (https://docs.snowflake.com/en/sql-reference/sql/show-grants); the owner's
        OWNERSHIP first.  The role needs some privilege on the object."""
        ltz = {"type": "TIMESTAMP_LTZ", "scale": 9}
        text = {"type": "TEXT", "length": 16777216}
        names = ["created_on", "privilege", "granted_on", "name", "granted_to", "grantee_name",
                 "grant_option", "granted_by_role_type", "granted_by"]
        types = [ltz, text, text, text, text, text, text, text, text]
        if otype == "ACCOUNT":
            parts = ()
            obj, label = {}, self.account
        else:
            obj = self._owner_object(otype, parts)
            if obj is None and otype not in ("DATABASE", "SCHEMA"):
                raise not_authorized(otype, ".".join(quote_ident(x) for x in parts))
            obj = obj or {}
            label = ".".join(quote_ident(x) for x in parts)
            if session.roles is not None:
                privs = self.privileges(session, otype, parts, owner=obj.get("owner") or "")
                if privs is not None and not privs:
                    raise not_authorized(otype, label)

        def ts(t):
            return None if t is None else "%.9f" % t
        rows = []
        if obj.get("owner"):
            created = obj.get("created", obj.get("created_on"))
            rows.append([ts(created), "OWNERSHIP", otype, label, "ROLE", obj["owner"], "true",
                         "ROLE", obj["owner"]])
        for g in self.object_grants(otype, parts):
            rows.append([ts(g["created_on"]), g["privilege"], otype, label, g["grantee_type"],
                         g["grantee"], "false", "ROLE" if g["granted_by"] else None,
                         g["granted_by"] or ""])
        return names, types, rows

    # -- DESCRIBE -------------------------------------------------------------
    def describe_integration(self, name, session):
        integ = self._get("INTEGRATION", name)
        if integ is None or (session.roles is not None and
                             not self.has(session, "INTEGRATION", (name,), ("USAGE",))):
            raise not_authorized("INTEGRATION", name)

        def lst(xs):
            return ",".join(xs)
        rows = [["ENABLED", "Boolean", "true" if integ["enabled"] else "false", "false"],
                ["STORAGE_PROVIDER", "String", integ["storage_provider"], ""],
                ["STORAGE_ALLOWED_LOCATIONS", "List", lst(integ["allowed_locations"]), "[]"],
                ["STORAGE_BLOCKED_LOCATIONS", "List", lst(integ["blocked_locations"]), "[]"]]
        if integ["storage_provider"].startswith("S3"):
            rows += [["STORAGE_AWS_IAM_USER_ARN", "String", integ["aws_iam_user_arn"], ""],
                     ["STORAGE_AWS_ROLE_ARN", "String", integ["aws_role_arn"], ""],
                     ["STORAGE_AWS_OBJECT_ACL", "String", integ.get("aws_object_acl") or "", ""],
                     ["STORAGE_AWS_EXTERNAL_ID", "String", integ["aws_external_id"], ""]]
        elif integ["storage_provider"] == "GCS":
            # The account the emulator itself reads GCS as (--gcs-credentials), when it has one.
            creds = getattr(self.storage_cfg, "gcs_credentials", None) if self.storage_cfg else None
            sa = (creds or {}).get("client_email") or integ["gcp_service_account"]
            rows += [["STORAGE_GCP_SERVICE_ACCOUNT", "String", sa, ""]]
        rows.append(["COMMENT", "String", integ.get("comment") or "", ""])
        return ["property", "property_type", "property_value", "property_default"], rows

    def describe_user(self, name, session):
        u = self._get("USER", name)
        if u is None or (session.roles is not None and session.user != name and
                         not any(r in session.roles for r in ("USERADMIN", "SECURITYADMIN"))):
            raise not_authorized("USER", name)

        def fp(k):
            return self.auth.fingerprint_of(k) if k else "null"
        rows = [["NAME", name, "null", "Name"],
                ["TYPE", u.get("type") or "NULL", "null", "Type of the user"],
                ["DISABLED", "true" if u.get("disabled") else "false", "false",
                 "Whether the user is disabled"],
                ["DEFAULT_WAREHOUSE", u.get("default_warehouse") or "null", "null",
                 "Default warehouse for this user"],
                ["DEFAULT_ROLE", u.get("default_role") or "null", "null",
                 "Primary default role for this user"],
                ["RSA_PUBLIC_KEY", u.get("rsa_public_key") or "null", "null",
                 "RSA public key of the user"],
                ["RSA_PUBLIC_KEY_FP", fp(u.get("rsa_public_key")), "null",
                 "Fingerprint of user's RSA public key."],
                ["RSA_PUBLIC_KEY_2", u.get("rsa_public_key_2") or "null", "null",
                 "Second RSA public key of the user"],
                ["RSA_PUBLIC_KEY_2_FP", fp(u.get("rsa_public_key_2")), "null",
                 "Fingerprint of user's second RSA public key."],
                ["COMMENT", u.get("comment") or "null", "null", "user comment associated to an "
                 "object in the dictionary"]]
        return ["property", "value", "default", "description"], rows

    def dump(self):
        out = {k.lower() + "s": {o["fqn"][2]: {kk: vv for kk, vv in o.items()
                                              if kk not in ("fqn", "object_id", "kind")}
                                 for o in self.cat.list_objects(k)} for k in ACCOUNT_KINDS}
        out["grants"] = [dict(zip(("privilege", "object_type", "object", "grantee_type",
                                   "grantee"), (p, t, k.split("\x1f"), gt, g)))
                         for p, t, k, gt, g in self.cat.db.execute(
                             "SELECT privilege, object_type, object_key, grantee_type, grantee "
                             "FROM grants ORDER BY 1, 2, 3, 4, 5")]
        return json.loads(json.dumps(out))


def _location_allowed(url, allowed, blocked):
    def covers(loc):
        if loc == "*":
            return True
        loc_l = loc.lower()
        u = url.lower()
        if not loc_l.endswith("/"):
            loc_l += "/"
        return (u if u.endswith("/") else u + "/").startswith(loc_l)
    if any(covers(b) for b in blocked):
        return False
    return any(covers(a) for a in allowed)
