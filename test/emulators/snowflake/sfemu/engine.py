"""Statement execution against the SQLite-backed catalog.

Engine.execute(sql_tokens, sql, session, handle) -> Result (columns, rows).
Every object name is resolved per Snowflake's identifier rules against the
request's database / schema.
"""

import json
import math
import re
import threading
import time
import zlib
from decimal import Decimal, InvalidOperation

from . import storage
from .account import Account, CREATE_PRIV
from .errors import ConvError, SfError, already_exists, not_exist
from .fileformat import (effective_options, ENCODINGS, normalize_format_options, parse_csv,
                         parse_json_records)
from .sftypes import (ConvContext, Variant, convert, fmt_secs, infer_literal_type, make_type,
                      parse_json_text, row_type, sort_key, variant_text, NS)
from .sqltok import quote_ident
from .statements import parse_statement
from .streaming_pipe import check_pipe as check_streaming_pipe

VERSION = "9.5.0"

# Load metadata expires after 64 days ("Loading data", "Loading older files":
# https://docs.snowflake.com/en/user-guide/data-load-considerations-load#loading-older-files)
METADATA_TTL_S = 64 * 86400
LOADED_STATES = ("LOADED", "PARTIALLY_LOADED")
# SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY, columns and types as documented
# (https://docs.snowflake.com/en/sql-reference/account-usage/load_history); 365 days kept
LOAD_HISTORY_FQN = ("SNOWFLAKE", "ACCOUNT_USAGE", "LOAD_HISTORY")
LOAD_HISTORY_COLUMNS = (
    ("TABLE_ID", "NUMBER"), ("TABLE_NAME", "VARCHAR"), ("SCHEMA_ID", "NUMBER"),
    ("SCHEMA_NAME", "VARCHAR"), ("CATALOG_ID", "NUMBER"), ("CATALOG_NAME", "VARCHAR"),
    ("FILE_NAME", "VARCHAR"), ("LAST_LOAD_TIME", "TIMESTAMP_LTZ"), ("STATUS", "VARCHAR"),
    ("ROW_COUNT", "NUMBER"), ("ROW_PARSED", "NUMBER"), ("FIRST_ERROR_MESSAGE", "VARCHAR"),
    ("FIRST_ERROR_LINE_NUMBER", "NUMBER"), ("FIRST_ERROR_CHARACTER_POSITION", "NUMBER"),
    ("FIRST_ERROR_COL_NAME", "VARCHAR"), ("ERROR_COUNT", "NUMBER"), ("ERROR_LIMIT", "NUMBER"))
LOAD_HISTORY_RETENTION_S = 365 * 86400

KIND_LABEL = {"TABLE": "Table", "EXTERNAL_TABLE": "External table", "STAGE": "Stage",
              "FILE_FORMAT": "File format", "PIPE": "Pipe"}

TEXT_T = {"type": "TEXT", "length": 16777216}
FIXED0 = {"type": "FIXED", "precision": 18, "scale": 0}
BOOL_T = {"type": "BOOLEAN"}
VARIANT_T = {"type": "VARIANT"}

# Statement kinds run by other modules: kind -> fn(engine, st, session, handle) -> Result
# (filled by Engine.__init__: sfemu/dml.py, sfemu/txn.py, sfemu/exttables.py)
HANDLERS = {}


class Session:
    def __init__(self, user="", account="", database=None, schema=None, warehouse=None,
                 role=None, parameters=None):
        self.user = user
        self.account = account
        self.database = database
        self.schema = schema
        self.warehouse = warehouse
        self.role = role
        self.parameters = {str(k).upper(): v for k, v in (parameters or {}).items()}
        self.roles = None        # the role and the roles it inherits; None: unrestricted
        self.prepared = False    # role and warehouse resolved (sfemu/account.py)

    @property
    def timezone(self):
        return self.parameters.get("TIMEZONE") or "America/Los_Angeles"


class Result:
    def __init__(self, columns, rows, stats=None):
        self.columns = columns  # list of rowType dicts
        self.rows = rows        # list of lists of str / None
        self.stats = stats


def status_result(message):
    return Result([row_type("status", TEXT_T, nullable=False)], [[message]])


def fqn_text(fqn):
    return ".".join(quote_ident(x) for x in fqn)


# ---------------------------------------------------------------------------
# Typed runtime values for SELECT evaluation

class Val:
    __slots__ = ("s", "t")

    def __init__(self, s, t):
        self.s = s   # jsonv2 string or None
        self.t = t   # type dict


def lit_val(value, btype=None):
    t = infer_literal_type(value, btype)
    if value is None:
        return Val(None, t if btype else TEXT_T)
    if isinstance(value, bool):
        return Val("true" if value else "false", BOOL_T)
    if isinstance(value, Decimal):
        if btype in ("REAL",):
            return Val(repr(float(value)), {"type": "REAL"})
        return Val(format(value, "f"), t)
    if isinstance(value, float):
        return Val(repr(value), {"type": "REAL"})
    if btype and btype not in ("TEXT", "FIXED", "REAL", "BOOLEAN"):
        try:
            return Val(convert(value, t), t)
        except ConvError as e:
            raise SfError(e.message, e.code, e.sql_state)
    return Val(value, t)


def human(s, t):
    """Readable text of a stored value (for casts to TEXT and re-conversion)."""
    if s is None:
        return None
    k = t["type"]
    import datetime as _dt
    if k == "DATE":
        return (_dt.date(1970, 1, 1) + _dt.timedelta(days=int(s))).isoformat()
    if k in ("TIME", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"):
        parts = s.split(" ")
        ns = int((Decimal(parts[0]) * NS).to_integral_value())
        off = int(parts[1]) - 1440 if len(parts) > 1 else 0
        ns += off * 60 * NS
        if k == "TIME":
            secs, frac = divmod(ns, NS)
            return "%02d:%02d:%02d.%09d" % (secs // 3600, secs // 60 % 60, secs % 60, frac)
        secs, frac = divmod(ns, NS)
        dt = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=secs)
        out = dt.strftime("%Y-%m-%d %H:%M:%S") + ".%09d" % frac
        if k == "TIMESTAMP_TZ" or k == "TIMESTAMP_LTZ":
            out += " %s%02d:%02d" % ("-" if off < 0 else "+", abs(off) // 60, abs(off) % 60)
        return out
    return s


class Engine:
    def __init__(self, catalog, storage_cfg, account=None, auth=None):
        self.cat = catalog
        self.storage_cfg = storage_cfg
        self.account = account
        self.lock = threading.RLock()
        if auth is None:
            from .auth import Authenticator
            auth = Authenticator(account)
        # roles, users, warehouses, integrations, grants (sfemu/account.py)
        self.acct = Account(catalog, auth, storage_cfg, account)
        from . import dml, exttables, txn
        for mod in (dml, exttables, txn):
            mod.register(HANDLERS)
        exttables.init(self)
        txn.drop_leftover_temporary(self)

    # -- names --------------------------------------------------------------
    def resolve(self, parts, session, op="query"):
        parts = tuple(parts)
        if len(parts) == 3:
            return parts
        if len(parts) == 2:
            if not session.database:
                raise SfError("Cannot perform %s. This session does not have a current database. "
                              "Call 'USE DATABASE', or use a qualified name." % op,
                              "090105", "22000")
            return (session.database,) + parts
        if not session.database:
            raise SfError("Cannot perform %s. This session does not have a current database. "
                          "Call 'USE DATABASE', or use a qualified name." % op, "090105", "22000")
        if not session.schema:
            raise SfError("Cannot perform %s. This session does not have a current schema. "
                          "Call 'USE SCHEMA', or use a qualified name." % op, "090106", "22000")
        return (session.database, session.schema) + parts

    # -- entry point --------------------------------------------------------
    def execute(self, toks, sql, session, handle):
        st = parse_statement(toks, sql)
        kind = st["kind"]
        from . import txn
        with self.lock:
            self.acct.prepare(session)
            txn.before_statement(self, st, session)
            if kind in HANDLERS:
                return HANDLERS[kind](self, st, session, handle)
            if kind == "select":
                return self.select(st, session)
            if kind == "copy":
                return self.copy(st, session, handle)
            if kind == "describe":
                return self.describe(st, session)
            self.cat.begin()
            try:
                res = getattr(self, "do_" + kind)(st, session)
                self.cat.commit()
            except BaseException:
                self.cat.rollback()
                raise
            return res

    # -- DDL ------------------------------------------------------------------
    def _create_common(self, st, session, kind, op, also=()):
        fqn = self.resolve(st["name"], session, op)
        self.acct.check_schema(session, fqn, CREATE_PRIV[kind])
        existing = self.cat.get(kind, fqn)
        other = next((k for k in also if self.cat.get(k, fqn)), None)
        st["_old_grants"] = []
        if existing or other:
            if st.get("if_not_exists"):
                return fqn, "%s already exists, statement succeeded." % fqn[2]
            if not st.get("or_replace") or (other and not existing):
                raise already_exists(fqn[2])
            st["_old_grants"] = self.acct.object_grants(kind, fqn)
            self._drop_object(kind, fqn, existing)
        return fqn, None

    def _drop_object(self, kind, fqn, obj):
        if kind == "TABLE" and obj:
            self.cat.drop_data_table(obj["object_id"])
        if kind == "EXTERNAL_TABLE" and obj:
            from . import exttables
            exttables.dropped(self, obj)
        self.acct.drop_object_grants(kind, fqn)
        self.cat.delete(kind, fqn)

    def do_create_table(self, st, session):
        if st.get("temporary"):
            prev = self.cat.get("TABLE", self.resolve(st["name"], session, "CREATE TABLE"))
            if prev and not prev.get("temporary"):
                raise SfError("SQL compilation error:\nA temporary table cannot take the name of "
                              "the existing table %s in the emulator." % fqn_text(prev["fqn"]),
                              "002040", "0A000")
        fqn, msg = self._create_common(st, session, "TABLE", "CREATE TABLE", ("EXTERNAL_TABLE",))
        if msg:
            return status_result(msg)
        cols = []
        for i, c in enumerate(st["columns"]):
            cols.append({"name": c["name"], "type": c["type"], "nullable": c["nullable"],
                         "sqlcol": "c%d" % i, "primary_key": bool(c.get("primary_key"))})
        d = {"columns": cols, "next_col": len(cols), "owner": self.acct.owner_for(session)}
        if st.get("temporary"):
            d["temporary"] = True
            session.temp_tables.append(fqn)   # dropped at the end of the request
        if st.get("transient"):
            d["transient"] = True
        oid = self.cat.put("TABLE", fqn, d)
        self.cat.create_data_table(oid, [c["sqlcol"] for c in cols])
        if st.get("copy_grants"):
            self.acct.copy_grants("TABLE", fqn, st["_old_grants"])
        return status_result("Table %s successfully created." % fqn[2])

    def do_create_external_table(self, st, session):
        fqn, msg = self._create_common(st, session, "EXTERNAL_TABLE", "CREATE EXTERNAL TABLE",
                                       ("TABLE",))
        if msg:
            return status_result(msg)
        loc = dict(st["location"])
        loc["stage"] = list(self.resolve(loc.pop("name"), session, "CREATE EXTERNAL TABLE"))
        if not self.cat.get("STAGE", tuple(loc["stage"])):
            raise not_exist("Stage", fqn_text(loc["stage"]))
        props = {k: (v[1] if isinstance(v, tuple) and v[0] == "KW" else v)
                 for k, v in st["properties"].items() if k != "FILE_FORMAT"}
        ff = st["properties"].get("FILE_FORMAT")
        fmt = self._format_from_option(ff, session) if ff is not None else None
        cols = [{"name": c["name"], "type": c["type"], "nullable": c["nullable"],
                 "expr": c.get("expr")} for c in st["columns"]]
        copy_grants = props.pop("COPY_GRANTS", False)
        self.cat.put("EXTERNAL_TABLE", fqn, {
            "columns": cols, "partition_by": st["partition_by"], "location": loc,
            "file_format": fmt, "auto_refresh": props.pop("AUTO_REFRESH", True),
            "properties": props, "owner": self.acct.owner_for(session)})
        if copy_grants:
            self.acct.copy_grants("EXTERNAL_TABLE", fqn, st["_old_grants"])
        from . import exttables
        exttables.created(self, fqn, session, st)   # registration (REFRESH_ON_CREATE) ...
        return status_result("Table %s successfully created." % fqn[2])

    def do_create_file_format(self, st, session):
        fqn, msg = self._create_common(st, session, "FILE_FORMAT", "CREATE FILE FORMAT")
        if msg:
            return status_result(msg)
        opts = normalize_format_options(st["options"])
        self.cat.put("FILE_FORMAT", fqn, {"options": opts, "owner": self.acct.owner_for(session)})
        return status_result("File format %s successfully created." % fqn[2])

    def do_create_stage(self, st, session):
        fqn, msg = self._create_common(st, session, "STAGE", "CREATE STAGE")
        if msg:
            return status_result(msg)
        o = st["options"]
        known = {"URL", "STORAGE_INTEGRATION", "CREDENTIALS", "ENCRYPTION", "FILE_FORMAT",
                 "COPY_OPTIONS", "DIRECTORY", "COMMENT", "ENDPOINT", "TAG"}
        for k in o:
            if k not in known:
                raise SfError("SQL compilation error:\ninvalid property '%s' for 'STAGE'" % k,
                              "001008", "22023")
        url = o.get("URL")
        if url is None:
            raise SfError("Internal stages are not supported by the emulator (no PUT in the SQL "
                          "API); give URL = 's3://...', 'gcs://...' or 'file:///...'.",
                          "002040", "0A000")
        if not isinstance(url, str):
            raise SfError("SQL compilation error:\nURL must be a string literal.", "001003", "42000")
        try:
            scheme, bucket, _ = storage.split_url(url)
        except storage.StorageError as e:
            raise SfError("SQL compilation error:\n%s" % e, "001003", "42000")
        if scheme == "file" and not url.lower().startswith("file:///"):
            raise SfError("SQL compilation error:\nfile:// stage URLs must be absolute "
                          "(file:///dir/).", "001003", "42000")
        creds = None
        if "CREDENTIALS" in o:
            c = o["CREDENTIALS"]
            if not (isinstance(c, tuple) and c[0] == "LIST"):
                raise SfError("SQL compilation error:\nCREDENTIALS must be (...)", "001003", "42000")
            creds = {k: (v[1] if isinstance(v, tuple) else v) for k, v in c[1].items()}
            if scheme == "gcs":
                raise SfError("SQL compilation error:\nCREDENTIALS are not supported for GCS "
                              "stages; use STORAGE_INTEGRATION.", "001003", "42000")
            for k in creds:
                if k not in ("AWS_KEY_ID", "AWS_SECRET_KEY", "AWS_TOKEN", "AWS_ROLE",
                             "AZURE_SAS_TOKEN"):
                    raise SfError("SQL compilation error:\ninvalid property '%s' for "
                                  "'CREDENTIALS'" % k, "001008", "22023")
        integ = o.get("STORAGE_INTEGRATION")
        if isinstance(integ, tuple):
            integ = integ[1]
        if creds and integ:
            raise SfError("SQL compilation error:\nCREDENTIALS and STORAGE_INTEGRATION cannot "
                          "both be specified.", "001003", "42000")
        if integ:
            self.acct.check_integration(session, integ.strip('"') if integ.startswith('"')
                                        else integ.upper(), url)
        fmt = self._format_from_option(o["FILE_FORMAT"], session, resolve_named=False) \
            if "FILE_FORMAT" in o else None
        copy_opts = {}
        if "COPY_OPTIONS" in o:
            c = o["COPY_OPTIONS"]
            if isinstance(c, tuple) and c[0] == "LIST":
                copy_opts = {k: (v[1] if isinstance(v, tuple) else v) for k, v in c[1].items()}
        self.cat.put("STAGE", fqn, {"url": url, "credentials": creds,
                                    "storage_integration": integ, "file_format": fmt,
                                    "copy_options": copy_opts,
                                    "comment": o.get("COMMENT"),
                                    "owner": self.acct.owner_for(session)})
        return status_result("Stage area %s successfully created." % fqn[2])

    def do_create_pipe(self, st, session):
        fqn, msg = self._create_common(st, session, "PIPE", "CREATE PIPE")
        if msg:
            return status_result(msg)
        copy = st["copy"]
        tfqn = self.resolve(copy["table"], session, "CREATE PIPE")
        if not self.cat.get("TABLE", tfqn):
            raise not_exist("Table", fqn_text(tfqn))
        opts = {k: (v[1] if isinstance(v, tuple) else v) for k, v in st["options"].items()}
        self.acct.check_object(session, "TABLE", tfqn, self.cat.get("TABLE", tfqn),
                               ("INSERT",))
        if copy["source"].get("streaming"):     # Snowpipe Streaming (sfemu/streaming_pipe.py)
            check_streaming_pipe(copy, self.cat.get("TABLE", tfqn))
        if "name" in copy["source"]:
            sfqn = self.resolve(copy["source"]["name"], session, "CREATE PIPE")
            stage = self.cat.get("STAGE", sfqn)
            if not stage:
                raise not_exist("Stage", fqn_text(sfqn))
            self.acct.check_object(session, "STAGE", sfqn, stage, ("USAGE", "READ"))
        self.cat.put("PIPE", fqn, {"copy_statement": st["copy_text"], "table": list(tfqn),
                                   "options": opts, "owner": self.acct.owner_for(session),
                                   "streaming": bool(copy["source"].get("streaming"))})
        return status_result("Pipe %s successfully created." % fqn[2])

    def do_create_container(self, st, session):
        parts = st["name"]
        if st["what"] == "SCHEMA":
            parts = self.resolve(parts + ("x",), session, "CREATE SCHEMA")[:2] \
                if len(parts) == 1 else parts[-2:]
        self.acct.record_container(st["what"], parts, session, st.get("or_replace"))
        what = st["what"].capitalize()
        return status_result("%s %s successfully created." % (what, st["name"][-1]))

    def do_drop(self, st, session):
        kind = {"table": "TABLE", "external_table": "EXTERNAL_TABLE", "stage": "STAGE",
                "file_format": "FILE_FORMAT", "pipe": "PIPE"}.get(st["object"])
        if kind is None:
            return status_result("%s successfully dropped." % st["name"][-1])
        fqn = self.resolve(st["name"], session, "DROP")
        obj = self.cat.get(kind, fqn)
        if not obj:
            if st["if_exists"]:
                return status_result("Drop statement executed successfully (%s already dropped)."
                                     % fqn[2])
            raise not_exist(KIND_LABEL[kind], fqn_text(fqn))
        self.acct.check_object(session, kind, fqn, obj, ("OWNERSHIP",))
        self._drop_object(kind, fqn, obj)
        return status_result("%s successfully dropped." % fqn[2])

    def _altered_table(self, st, session, external_action):
        """(fqn, table object, None), or (fqn, None, result) when done: a missing table
        with IF EXISTS, or an external table (its columns: sfemu/exttables.py;
        ALTER TABLE is how its columns change, per ALTER EXTERNAL TABLE's usage notes)."""
        fqn = self.resolve(st["name"], session, "ALTER TABLE")
        kind = "TABLE" if self.cat.get("TABLE", fqn) else "EXTERNAL_TABLE"
        obj = self.cat.get(kind, fqn)
        if not obj:
            if st["if_exists"]:
                return fqn, None, status_result("Statement executed successfully.")
            raise not_exist("Table", fqn_text(fqn))
        self.acct.check_object(session, kind, fqn, obj, ("OWNERSHIP",))
        if kind == "EXTERNAL_TABLE":
            from . import exttables
            return fqn, None, getattr(exttables, external_action)(self, fqn, obj, st)
        return fqn, obj, None

    def do_alter_table_drop_column(self, st, session):
        fqn, obj, done = self._altered_table(st, session, "drop_columns")
        if done:
            return done
        for name in st["columns"]:
            if not any(c["name"] == name for c in obj["columns"]):
                if st["column_if_exists"]:
                    continue
                raise SfError("SQL compilation error:\ninvalid identifier '%s'" % name,
                              "000904", "42000")
            if len(obj["columns"]) == 1:
                raise SfError("SQL compilation error:\nCannot drop column '%s': a table needs "
                              "at least one column." % name, "001003", "42000")
            obj["columns"] = [c for c in obj["columns"] if c["name"] != name]
        self.cat.put("TABLE", fqn, obj, object_id=obj["object_id"])
        return status_result("Statement executed successfully.")

    def do_alter_table_add(self, st, session):
        fqn, obj, done = self._altered_table(st, session, "add_columns")
        if done:
            return done
        names = {c["name"] for c in obj["columns"]}
        for c in st["columns"]:
            if c.get("expr"):
                raise SfError("SQL compilation error:\nA column AS (<expr>) can only be added "
                              "to an external table.", "001003", "42000")
            if c["name"] in names:
                if c["if_not_exists"]:
                    continue
                raise SfError("SQL compilation error:\ncolumn '%s' already exists" % c["name"],
                              "002025", "42S21")
            if not c["nullable"] and self.cat.count(obj["object_id"]) > 0:
                raise SfError("SQL compilation error:\nNon-nullable column '%s' cannot be added "
                              "to non-empty table '%s' unless it has a non-null default value."
                              % (c["name"], fqn[2]), "001003", "42000")
            sqlcol = "c%d" % obj["next_col"]
            obj["next_col"] += 1
            obj["columns"].append({"name": c["name"], "type": c["type"],
                                   "nullable": c["nullable"], "sqlcol": sqlcol})
            names.add(c["name"])
            self.cat.add_data_column(obj["object_id"], sqlcol)
        self.cat.put("TABLE", fqn, obj, object_id=obj["object_id"])
        return status_result("Statement executed successfully.")

    def do_alter_other(self, st, session):
        return status_result("Statement executed successfully.")

    def do_truncate(self, st, session):
        fqn = self.resolve(st["name"], session, "TRUNCATE")
        obj = self.cat.get("TABLE", fqn)
        if not obj:
            if st["if_exists"]:
                return status_result("Statement executed successfully.")
            raise not_exist("Table", fqn_text(fqn))
        self.acct.check_object(session, "TABLE", fqn, obj, ("OWNERSHIP", "TRUNCATE"))
        self.cat.truncate_data_table(obj["object_id"])
        return status_result("Statement executed successfully.")

    def do_account(self, st, session):
        if st["op"] in ("grant", "revoke") and not st["role_grant"]:
            otype, parts = st["object_type"], tuple(st["object"])
            if otype in ("TABLE", "EXTERNAL_TABLE", "STAGE", "FILE_FORMAT", "PIPE"):
                parts = self.resolve(parts, session, st["op"].upper())
            elif otype == "SCHEMA":
                if len(parts) == 1:
                    parts = self.resolve(parts + ("x",), session, st["op"].upper())[:2]
                elif len(parts) != 2:
                    raise SfError("SQL compilation error:\ninvalid schema name '%s'"
                                  % ".".join(parts), "001003", "42000")
            elif otype != "ACCOUNT" and len(parts) != 1:
                raise SfError("SQL compilation error:\ninvalid identifier '%s'"
                              % ".".join(parts), "001003", "42000")
            st["object"] = parts
        return status_result(self.acct.execute(st, session))

    def describe(self, st, session):
        if st["object"] in ("integration", "user"):
            fn = self.acct.describe_integration if st["object"] == "integration" \
                else self.acct.describe_user
            names, rows = fn(st["name"][0], session)
            return Result([row_type(n, TEXT_T) for n in names], rows)
        kind = "EXTERNAL_TABLE" if st["object"] == "external_table" else "TABLE"
        fqn = self.resolve(st["name"], session, "DESCRIBE")
        obj = self.cat.get(kind, fqn) or (self.cat.get("EXTERNAL_TABLE", fqn)
                                          if kind == "TABLE" else None)
        if not obj:
            raise not_exist("Table", fqn_text(fqn))
        self.acct.check_object(session, kind if self.cat.get(kind, fqn) else "EXTERNAL_TABLE", fqn, obj,
                               ("SELECT", "INSERT", "REFERENCES", "UPDATE", "DELETE", "TRUNCATE"))
        names = ["name", "type", "kind", "null?", "default", "primary key", "unique key",
                 "check", "expression", "comment"]
        cols = [row_type(n, TEXT_T) for n in names]
        rows = []
        for c in obj["columns"]:
            rows.append([c["name"], _type_display(c["type"]), "COLUMN",
                         "Y" if c["nullable"] else "N", None,
                         "Y" if c.get("primary_key") else "N", "N", None,
                         c.get("expr"), None])
        return Result(cols, rows)

    # -- file formats ---------------------------------------------------------
    def _format_from_option(self, ff, session, resolve_named=True):
        """FILE_FORMAT = (FORMAT_NAME = 'x' | TYPE = ... opts) -> stored dict.

        Returns {"format_name": [fqn]} or {"options": {...}}."""
        if isinstance(ff, str):  # FILE_FORMAT = 'name'
            ff = ("LIST", {"FORMAT_NAME": ff})
        if isinstance(ff, tuple) and ff[0] == "KW":
            ff = ("LIST", {"FORMAT_NAME": ff[1]})
        if not (isinstance(ff, tuple) and ff[0] == "LIST"):
            raise SfError("SQL compilation error:\nFILE_FORMAT must be (FORMAT_NAME = ... | "
                          "TYPE = ...)", "001003", "42000")
        inner = ff[1]
        if "FORMAT_NAME" in inner:
            if len(inner) > 1:
                raise SfError("SQL compilation error:\nFORMAT_NAME and TYPE are mutually "
                              "exclusive.", "001003", "42000")
            name = inner["FORMAT_NAME"]
            if isinstance(name, tuple):
                name = name[1]
            from .sqltok import parse_qname_text
            parts = parse_qname_text(name) if isinstance(name, str) else name
            fqn = self.resolve(parts, session, "COPY")
            if resolve_named and not self.cat.get("FILE_FORMAT", fqn):
                raise not_exist("File format", fqn_text(fqn))
            return {"format_name": list(fqn)}
        return {"options": normalize_format_options(inner)}

    def _effective_format(self, stored):
        if stored is None:
            return effective_options({"TYPE": "CSV"})
        if "format_name" in stored:
            obj = self.cat.get("FILE_FORMAT", tuple(stored["format_name"]))
            if not obj:
                raise not_exist("File format", fqn_text(stored["format_name"]))
            return effective_options(obj["options"])
        return effective_options(stored["options"])

    # -- COPY INTO <table> ----------------------------------------------------
    def copy(self, st, session, handle):
        """COPY INTO <table>
        (https://docs.snowflake.com/en/sql-reference/sql/copy-into-table).

        One result row per file with the columns file, status, rows_parsed,
        rows_loaded, error_limit, errors_seen, first_error, first_error_line,
        first_error_character, first_error_column_name; a single `status` column
        "Copy executed with 0 files processed." when every file was skipped.
        Load metadata (https://docs.snowflake.com/en/user-guide/data-load-considerations-load#load-metadata):
        a file already loaded into this table with an unchanged ETag is skipped
        unless FORCE = TRUE. ABORT_STATEMENT aborts the whole statement on the
        first error; explicitly listed files that are missing abort it too.

        The metadata expires after 64 days (METADATA_TTL_S, by the catalog's
        clock).  A file's load status is then unknown ("uncertain") when all
        of these hold (LOAD_UNCERTAIN_FILES in the COPY INTO reference,
        "Loading older files"): its LAST_MODIFIED is older than 64 days, the
        table's initial set of data was loaded more than 64 days ago, and no
        successful load of the file is younger than 64 days.  Such a file is
        skipped silently (absent from the result), unless LOAD_UNCERTAIN_FILES
        = TRUE (which still skips files with unexpired metadata) or FORCE =
        TRUE.  Every file of a COPY that runs to completion gets a row in
        SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY (not Snowpipe's loads).
        """
        fqn = self.resolve(st["table"], session, "COPY")
        tbl = self.cat.get("TABLE", fqn)
        if not tbl:
            if self.cat.get("EXTERNAL_TABLE", fqn):
                raise SfError("SQL compilation error:\nCannot COPY INTO external table '%s'."
                              % fqn[2], "001003", "42000")
            raise not_exist("Table", fqn_text(fqn))
        self.acct.check_object(session, "TABLE", fqn, tbl, ("INSERT",))
        opts = st["options"]
        src = st["source"]
        stage = None
        if "url" in src:
            base_url = src["url"]
            creds = None
            if "CREDENTIALS" in opts and isinstance(opts["CREDENTIALS"], tuple):
                creds = {k: (v[1] if isinstance(v, tuple) else v)
                         for k, v in opts["CREDENTIALS"][1].items()}
            stage_format = None
            stage_copy = {}
        else:
            sfqn = self.resolve(src["name"], session, "COPY")
            stage = self.cat.get("STAGE", sfqn)
            if not stage:
                raise not_exist("Stage", fqn_text(sfqn))
            self.acct.check_object(session, "STAGE", sfqn, stage, ("USAGE", "READ"))
            base_url = stage["url"]
            creds = stage.get("credentials")
            stage_format = stage.get("file_format")
            stage_copy = stage.get("copy_options") or {}
        if "FILE_FORMAT" in opts:
            fmt = self._effective_format(self._format_from_option(opts["FILE_FORMAT"], session))
        else:
            fmt = self._effective_format(stage_format)
        ff = opts.get("FILE_FORMAT") if "FILE_FORMAT" in opts else stage_format
        ff = self._format_from_option(ff, session) if isinstance(ff, (str, tuple)) else ff
        if isinstance(ff, dict) and "format_name" in ff:
            ffqn = tuple(ff["format_name"])
            self.acct.check_object(session, "FILE_FORMAT", ffqn, self.cat.get("FILE_FORMAT", ffqn),
                                   ("USAGE",))
        self.acct.check_warehouse(session)
        if fmt["TYPE"] not in ("CSV", "JSON"):
            raise SfError("File format type %s is not supported by the emulator's COPY."
                          % fmt["TYPE"], "002040", "0A000")
        copt = dict(stage_copy)
        for k, v in opts.items():
            copt[k] = v[1] if isinstance(v, tuple) and v[0] == "KW" else v
        if copt.get("VALIDATION_MODE") is not None:
            raise SfError("VALIDATION_MODE is not supported by the emulator.", "002040", "0A000")
        on_error = _parse_on_error(copt.get("ON_ERROR", "ABORT_STATEMENT"))
        force = _truthy(copt.get("FORCE", False))
        load_uncertain = _truthy(copt.get("LOAD_UNCERTAIN_FILES", False))
        purge = _truthy(copt.get("PURGE", False))
        match_by = str(copt.get("MATCH_BY_COLUMN_NAME") or "NONE").upper()
        return_failed_only = _truthy(copt.get("RETURN_FAILED_ONLY", False))
        truncate_cols = _truthy(copt.get("TRUNCATECOLUMNS", False)) or \
            not _truthy(copt.get("ENFORCE_LENGTH", True))

        columns = tbl["columns"]
        by_name = {c["name"]: c for c in columns}
        if st["columns"]:
            targets = []
            for n in st["columns"]:
                if n not in by_name:
                    raise SfError("SQL compilation error:\ninvalid identifier '%s'" % n,
                                  "000904", "42000")
                targets.append(by_name[n])
        else:
            targets = list(columns)
        transform = st["transform"]
        if transform and len(transform["items"]) != len(targets):
            raise SfError("SQL compilation error:\nInsert value list does not match column list "
                          "expecting %d but got %d" % (len(targets), len(transform["items"])),
                          "002020", "21S01")
        if fmt["TYPE"] == "JSON" and not transform and match_by == "NONE":
            if len(targets) != 1 or targets[0]["type"]["type"] not in ("VARIANT", "OBJECT", "ARRAY"):
                raise SfError("SQL compilation error:\nJSON file format can produce one and only "
                              "one column of type variant, object, or array. Use CSV file format "
                              "if you want to load more than one column.", "002023", "0A000")
        if match_by != "NONE" and (transform or fmt["TYPE"] != "JSON"):
            raise SfError("SQL compilation error:\nMATCH_BY_COLUMN_NAME is only supported by the "
                          "emulator for JSON without a transformation.", "002040", "0A000")

        # Which files?
        prefix_url = storage.join_url(base_url, src.get("path", ""))
        listed = st["files"] is None
        if st["files"] is not None:
            urls = [storage.join_url(prefix_url, f) for f in st["files"]]
        else:
            try:
                urls = storage.list_files(prefix_url, creds, self.storage_cfg)
            except storage.StorageError as e:
                raise SfError("Failure using stage area. Cause: [%s]" % e, "091003", "XX000")
            pat = copt.get("PATTERN")
            if pat:
                try:
                    rx = re.compile(pat)
                except re.error:
                    raise SfError("SQL compilation error:\ninvalid PATTERN", "001003", "42000")
                base = base_url if base_url.endswith("/") else base_url + "/"
                urls = [u for u in urls if rx.fullmatch(u[len(base):] if u.startswith(base) else u)]
        ctx = ConvContext(fmt.get("DATE_FORMAT"), fmt.get("TIME_FORMAT"),
                          fmt.get("TIMESTAMP_FORMAT"), fmt.get("BINARY_FORMAT"), session.timezone)
        # first_error_column_name looks like "TABLE"["COLUMN":position] (table name always
        # quoted), as in the COPY INTO output examples of the Snowflake docs.
        table_label = '"%s"' % fqn[2].replace('"', '""')
        positions = {c["name"]: i + 1 for i, c in enumerate(columns)}

        now = self.cat.now()
        expired = now - METADATA_TTL_S
        first_load = self.cat.first_load_get(tbl["object_id"])
        table_old = first_load is not None and first_load <= expired
        file_results = []
        pending_rows = []   # (file url, rows)
        seen = set()
        for url in urls:
            if url in seen:
                continue
            seen.add(url)
            rel = url[len(base_url):].lstrip("/") if url.startswith(base_url) else url
            try:
                data, etag, modified = storage.fetch(url, creds, self.storage_cfg,
                                                     with_modified=True)
            except storage.NotFound:
                msg = ("Remote file '%s' was not found. There are several potential causes. The "
                       "file might not exist. The required credentials may be missing or "
                       "invalid." % url)
                if listed:
                    continue
                if on_error[0] == "ABORT_STATEMENT":
                    raise SfError(msg, "003001", "22000")
                file_results.append(_file_row(url, "LOAD_FAILED", 0, 0, 1, 1, msg, None, None,
                                              None))
                continue
            except storage.StorageError as e:
                raise SfError("Failure using stage area. Cause: [%s]" % e, "091003", "XX000")
            meta = self.cat.load_meta_get(tbl["object_id"], url)
            fresh = meta is not None and meta[2] is not None and meta[2] > expired
            loaded_fresh = fresh and meta[1] in LOADED_STATES
            if loaded_fresh and meta[0] == etag and not force:
                continue  # load metadata: already loaded, unchanged
            uncertain = (modified is not None and self.cat.clock_at(modified) <= expired
                         and table_old and not loaded_fresh)
            if uncertain and not force and not load_uncertain:
                continue  # load status unknown: skipped by default

            res = self._load_file(url, rel, data, fmt, ctx, targets, columns, transform, match_by,
                                  on_error, table_label, positions, truncate_cols)
            res["etag"] = etag
            file_results.append(res)
            if res["rows"]:
                pending_rows.append((url, res["rows"]))

        if not file_results:
            return status_result("Copy executed with 0 files processed.")

        sqlcols = [c["sqlcol"] for c in columns]
        self.cat.begin()
        try:
            for url, rows in pending_rows:
                self.cat.insert_rows(tbl["object_id"], sqlcols,
                                     ((vals, url, line, handle) for vals, line in rows))
            # Snowpipe's loads run this COPY too (sfemu/snowpipe.py, handle
            # "pipe-..."): LOAD_HISTORY leaves them out, as documented.
            pipe_load = str(handle).startswith("pipe-")
            for r in file_results:
                if not pipe_load:
                    self.cat.history_add(tbl["object_id"], fqn, r)
                if r["status"] in LOADED_STATES and r["rows_loaded"]:
                    self.cat.first_load_put(tbl["object_id"])
                if r.get("etag") is None:
                    continue
                prev = self.cat.load_meta_get(tbl["object_id"], r["file"])
                if r["status"] == "LOAD_FAILED" and prev and prev[1] in LOADED_STATES and \
                        prev[2] is not None and prev[2] > expired:
                    continue
                self.cat.load_meta_put(tbl["object_id"], r["file"], r["etag"], r["status"],
                                       r["rows_parsed"], r["rows_loaded"], r["errors_seen"],
                                       r["first_error"], handle)
            self.cat.commit()
        except BaseException:
            self.cat.rollback()
            raise
        if purge:
            for r in file_results:
                if r["status"] in ("LOADED", "PARTIALLY_LOADED"):
                    try:
                        storage.delete(r["file"], creds, self.storage_cfg)
                    except Exception:
                        pass  # purge failures are ignored, as documented
        names = ["file", "status", "rows_parsed", "rows_loaded", "error_limit", "errors_seen",
                 "first_error", "first_error_line", "first_error_character",
                 "first_error_column_name"]
        types = [TEXT_T, TEXT_T, FIXED0, FIXED0, FIXED0, FIXED0, TEXT_T, FIXED0, FIXED0, TEXT_T]
        cols = [row_type(n, t) for n, t in zip(names, types)]
        rows = []
        for r in file_results:
            if return_failed_only and r["status"] == "LOADED":
                continue
            rows.append([r["file"], r["status"], _s(r["rows_parsed"]), _s(r["rows_loaded"]),
                         _s(r["error_limit"]), _s(r["errors_seen"]), r["first_error"],
                         _s(r["first_error_line"]), _s(r["first_error_character"]),
                         r["first_error_column_name"]])
        loaded = sum(r["rows_loaded"] for r in file_results)
        return Result(cols, rows, stats={"numRowsInserted": loaded})

    def _load_file(self, url, rel, data, fmt, ctx, targets, columns, transform, match_by,
                   on_error, table_label, positions, truncate_cols):
        mode, limit = on_error
        rows = []
        errors = 0
        parsed = 0
        first = None

        def fail(message, code, sqlstate, line, char, colname, rowno):
            nonlocal errors, first
            errors += 1
            if first is None:
                first = (message, line, char, colname)
            if mode == "ABORT_STATEMENT":
                where = "  File '%s', line %s, character %s\n" % (rel, line, char)
                if rowno is not None:
                    where += "  Row %d" % rowno
                    where += (", column %s\n" % colname) if colname else "\n"
                raise SfError("%s\n%s  If you would like to continue loading when an error is "
                              "encountered, use other values such as 'SKIP_FILE' or 'CONTINUE' "
                              "for the ON_ERROR option. For more information on loading options, "
                              "please run 'info loading_data' in a SQL client."
                              % (message, where), code, sqlstate)

        try:
            raw = storage.decompress(data, fmt.get("COMPRESSION"), url)
            codec = ENCODINGS.get(str(fmt.get("ENCODING", "UTF8")).upper(), "utf-8")
            text = raw.decode(codec, errors="surrogateescape" if codec == "utf-8" else "strict")
        except (storage.StorageError, UnicodeDecodeError, LookupError) as e:
            fail(str(e), "100069", "22000", 1, 1, None, None)
            return _file_result(url, mode, limit, 0, [], errors, first)

        replace_invalid = fmt.get("REPLACE_INVALID_CHARACTERS") or fmt.get("IGNORE_UTF8_ERRORS")
        if fmt["TYPE"] == "CSV":
            records = parse_csv(text, fmt)
        else:
            records = parse_json_records(text, fmt)
        ncols = len(targets)
        check_count = fmt["TYPE"] == "CSV" and not transform and \
            fmt.get("ERROR_ON_COLUMN_COUNT_MISMATCH", True)
        target_names = {c["name"] for c in targets}
        for rec in records:
            parsed += 1
            if rec.error:
                msg, code, sqlstate, char = rec.error
                fail(msg, code, sqlstate, rec.line, char, None, parsed)
                continue
            fields = rec.fields
            bad_utf8 = None
            for i, (v, pos) in enumerate(fields):
                if isinstance(v, str) and _has_surrogates(v):
                    if replace_invalid:
                        fields[i] = (_fix_surrogates(v), pos)
                    else:
                        bad_utf8 = (v, pos)
                        break
            if bad_utf8:
                fail("Invalid UTF8 detected in string '%s'" % _fix_surrogates(bad_utf8[0])[:60],
                     "100069", "22P02", rec.line, bad_utf8[1], None, parsed)
                continue
            if fmt["TYPE"] == "CSV" and not transform:
                if check_count and len(fields) != ncols:
                    fail("Number of columns in file (%d) does not match that of the corresponding "
                         "table (%d), use file format option error_on_column_count_mismatch=false "
                         "to ignore this error" % (len(fields), ncols), "100080", "22000",
                         rec.line, 1, None, parsed)
                    continue
                values = [(fields[i][0], fields[i][1]) if i < len(fields) else (None, 1)
                          for i in range(ncols)]
            elif fmt["TYPE"] == "JSON" and not transform:
                doc = fields[0][0]
                if match_by != "NONE":
                    values = []
                    if not isinstance(doc, dict):
                        fail("Error parsing JSON: document is not an object", "100069", "22P02",
                             rec.line, 1, None, parsed)
                        continue
                    keymap = doc if match_by == "CASE_SENSITIVE" else \
                        {k.upper(): v for k, v in doc.items()}
                    for c in targets:
                        key = c["name"] if match_by == "CASE_SENSITIVE" else c["name"].upper()
                        values.append((Variant(keymap[key]) if key in keymap else None, 1))
                else:
                    values = [(Variant(doc), 1)]
            else:
                env = {"fields": fields, "json": fmt["TYPE"] == "JSON", "file": rel,
                       "row": parsed, "ctx": ctx}
                values = []
                try:
                    for item in transform["items"]:
                        values.append((eval_copy(item["expr"], env), _first_pos(item["expr"], fields)))
                except ConvError as e:
                    fail(e.message, e.code, e.sql_state, rec.line, 1, None, parsed)
                    continue
            out = {}
            ok = True
            for col, (v, pos) in zip(targets, values):
                colname = '%s["%s":%d]' % (table_label, col["name"].replace('"', '""'),
                                            positions[col["name"]])
                try:
                    t = col["type"]
                    if truncate_cols and t["type"] == "TEXT" and isinstance(v, str):
                        v = v[:t["length"]]
                    sv = convert_any(v, t, ctx)
                    if sv is None and not col["nullable"]:
                        raise ConvError("NULL result in a non-nullable column", "100072", "22000")
                except ConvError as e:
                    fail(e.message, e.code, e.sql_state, rec.line, pos, colname, parsed)
                    ok = False
                    break
                out[col["name"]] = sv
            if not ok:
                continue
            for col in columns:
                if col["name"] not in target_names and not col["nullable"]:
                    colname = '%s["%s":%d]' % (table_label, col["name"].replace('"', '""'),
                                            positions[col["name"]])
                    fail("NULL result in a non-nullable column", "100072", "22000", rec.line, 1,
                         colname, parsed)
                    ok = False
                    break
            if not ok:
                continue
            rows.append(([out.get(c["name"]) for c in columns], rec.line))
        return _file_result(url, mode, limit, parsed, rows, errors, first)

    # -- SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY -----------------------------------
    def load_history_source(self, session, alias=None):
        """The LOAD_HISTORY view: one row per file of each COPY INTO <table>
        that ran to completion in the last 365 days (Snowpipe loads are not
        in it).  Reading ACCOUNT_USAGE takes ACCOUNTADMIN or IMPORTED
        PRIVILEGES on the SNOWFLAKE database, and a warehouse
        (https://docs.snowflake.com/en/sql-reference/account-usage#enabling-other-roles-to-use-schemas-in-the-snowflake-database).
        The real view lags by up to 90 minutes (2 days for a quiet table);
        the emulator's has no latency.  A relations.Source."""
        if session.roles is not None and \
                not self.acct.has(session, "DATABASE", ("SNOWFLAKE",), ("IMPORTED PRIVILEGES",)):
            raise SfError("SQL compilation error:\nDatabase 'SNOWFLAKE' does not exist or not "
                          "authorized.", "002003", "02000")
        self.acct.check_warehouse(session)
        tcols = []
        for name, tname in LOAD_HISTORY_COLUMNS:
            t = FIXED0 if tname == "NUMBER" else TEXT_T if tname == "VARCHAR" else \
                make_type(tname)
            tcols.append({"name": name, "type": t, "nullable": True, "sqlcol": name})
        rows = []
        for (tid, cat_name, sch, tname, fname, at, status, rc, rp, fe, fel, fec, fecol, ec,
             el) in self.cat.history_list(self.cat.now() - LOAD_HISTORY_RETENTION_S):
            # the emulator has no ids for databases and schemas: stable ones
            schema_id = zlib.crc32(("%s.%s" % (cat_name, sch)).encode())
            catalog_id = zlib.crc32(cat_name.encode())
            rows.append((_s(tid), tname, _s(schema_id), sch, _s(catalog_id), cat_name, fname,
                         fmt_secs(int(at * NS)), status, _s(rc), _s(rp), fe, _s(fel), _s(fec),
                         fecol, _s(ec), _s(el)))
        from . import relations
        pseudo = {"fqn": list(LOAD_HISTORY_FQN), "columns": tcols, "object_id": None}
        return relations.Source(tcols, rows, relations.qualifiers(LOAD_HISTORY_FQN, alias), pseudo)

    # -- SELECT -----------------------------------------------------------------
    def select(self, st, session):
        q = self.query(st, session)
        return Result(q.rowtype, q.rows)

    def query(self, st, session):
        """Evaluate a SELECT: FROM (sfemu/relations.py) -> WHERE -> GROUP BY / aggregates
        or window functions -> QUALIFY -> ORDER BY -> DISTINCT -> LIMIT / OFFSET."""
        from . import relations
        src = relations.source_for(self, st.get("source"), session, "SELECT")
        tbl = src.tbl
        tcols = src.tcols
        env = SelectEnv(self, session, tcols, tbl)
        items = []
        for it in st["items"]:
            if it["expr"][0] == "star":
                for c in src.star_columns():
                    items.append({"expr": ("col", (c["name"],)), "alias": c["name"],
                                  "text": c["name"]})
            else:
                items.append(it)
        agg = any(_has_agg(it["expr"]) for it in items) or st["group"]
        windows = relations.window_nodes([it["expr"] for it in items] +
                                         ([st["qualify"]] if st.get("qualify") else []))
        if windows and agg:
            raise SfError("SQL compilation error:\nwindow functions together with GROUP BY or "
                          "aggregates are not supported by the emulator.", "001003", "42000")
        if st.get("qualify") and not windows:
            raise SfError("SQL compilation error:\nQUALIFY needs a window function in the "
                          "SELECT list or in the QUALIFY clause.", "001003", "42000")
        # Fast path: SELECT COUNT(*) FROM t with no WHERE
        if (src.count is not None and agg and not st["where"] and not st["group"]
                and len(items) == 1 and items[0]["expr"] == ("func", "COUNT", [("star",)])):
            n = src.count()
            return relations.QueryResult([_item_name(items[0])], [FIXED0], [[str(n)]],
                                         [row_type(_item_name(items[0]), FIXED0,
                                                   nullable=False)])
        filtered = []
        for r in src.all_rows():
            env.row = r
            if st["where"] is not None and not _true(env.eval(st["where"])):
                continue
            filtered.append(r)
        out_rows = []
        out_types = [None] * len(items)
        if agg:
            groups = {}
            order_keys = []
            for r in filtered:
                env.row = r
                key = tuple(env.eval(g).s for g in st["group"]) if st["group"] else ()
                if key not in groups:
                    groups[key] = []
                    order_keys.append(key)
                groups[key].append(r)
            if not st["group"] and not groups:
                groups[()] = []
                order_keys.append(())
            keyed = []
            for key in order_keys:
                env.group = groups[key]
                env.row = groups[key][0] if groups[key] else None
                vals = [env.eval(it["expr"]) for it in items]
                keyed.append((vals, env.row, None))
            env.group = None
        else:
            if windows:
                relations.compute_windows(env, filtered, windows)
            keyed = []
            names = [_item_name(it) for it in items]
            for i, r in enumerate(filtered):
                env.row = r
                env.row_pos = i
                vals = [env.eval(it["expr"]) for it in items]
                if st.get("qualify") is not None:
                    env.aliases = dict(zip(names, vals))
                    keep = _true(env.eval(st["qualify"]))
                    env.aliases = None
                    if not keep:
                        continue
                keyed.append((vals, r, i))
        if st["order"]:
            alias_idx = {(_item_name(it)): i for i, it in enumerate(items)}

            def okey(entry):
                vals, env.row, env.row_pos = entry
                ks = []
                for o in st["order"]:
                    e = o["expr"]
                    if e[0] == "lit" and isinstance(e[1], Decimal):
                        v = vals[int(e[1]) - 1]
                    elif e[0] == "col" and len(e[1]) == 1 and e[1][0] in alias_idx:
                        v = vals[alias_idx[e[1][0]]]
                    else:
                        v = env.eval(e)
                    k = sort_key(v.s, v.t)
                    nulls_first = o["nulls_first"] if o["nulls_first"] is not None else o["desc"]
                    ks.append(_OrderKey(k, o["desc"], nulls_first))
                return ks
            keyed.sort(key=okey)
        if st["distinct"]:
            seen = set()
            uniq = []
            for entry in keyed:
                k = tuple(v.s for v in entry[0])
                if k not in seen:
                    seen.add(k)
                    uniq.append(entry)
            keyed = uniq
        start = st["offset"] or 0
        end = start + st["limit"] if st["limit"] is not None else None
        keyed = keyed[start:end]
        for vals, _, _ in keyed:
            out_rows.append([v.s for v in vals])
            for i, v in enumerate(vals):
                if out_types[i] is None or (out_types[i] is TEXT_T and v.t is not TEXT_T):
                    out_types[i] = v.t
        cols = []
        for i, it in enumerate(items):
            t = out_types[i]
            if t is None:
                env.row = None
                try:
                    t = env.eval(it["expr"]).t if not _has_agg(it["expr"]) else FIXED0
                except Exception:
                    t = TEXT_T
                out_types[i] = t
            nullable = True
            table = ""
            if it["expr"][0] == "col" and tbl:
                c = env.column(it["expr"][1])
                if c:
                    nullable = c["nullable"]
                    table = tbl["fqn"][2]
            cols.append(row_type(_item_name(it), t, nullable=nullable, table=table,
                                 database=tbl["fqn"][0] if table else "",
                                 schema=tbl["fqn"][1] if table else ""))
        return relations.QueryResult([_item_name(it) for it in items], out_types, out_rows, cols)


# ---------------------------------------------------------------------------
# helpers

def _s(v):
    return None if v is None else str(v)


def _truthy(v):
    if isinstance(v, bool):
        return v
    return str(v).upper() in ("TRUE", "1", "YES")


def _type_display(t):
    k = t["type"]
    if k == "FIXED":
        return "NUMBER(%d,%d)" % (t["precision"], t["scale"])
    if k == "TEXT":
        return "VARCHAR(%d)" % t["length"]
    if k == "BINARY":
        return "BINARY(%d)" % t["length"]
    if k == "REAL":
        return "FLOAT"
    if k in ("TIME", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"):
        return "%s(%d)" % (k, t.get("scale", 9))
    return k


def _parse_on_error(v):
    """ON_ERROR = CONTINUE | SKIP_FILE | SKIP_FILE_<n> | 'SKIP_FILE_<n>%' | ABORT_STATEMENT
    (https://docs.snowflake.com/en/sql-reference/sql/copy-into-table#copy-options-copyoptions)."""
    s = str(v).strip().upper()
    if s in ("CONTINUE", "SKIP_FILE", "ABORT_STATEMENT"):
        return (s, None)
    m = re.fullmatch(r"SKIP_FILE_(\d+)(%?)", s)
    if m:
        n = int(m.group(1))
        if m.group(2):
            return ("SKIP_FILE_PCT", n)
        return ("SKIP_FILE_N", n)
    raise SfError("SQL compilation error:\ninvalid value '%s' for parameter 'ON_ERROR'" % v,
                  "001008", "22023")


def _file_result(url, mode, limit, parsed, rows, errors, first):
    loaded = len(rows)
    if mode == "CONTINUE":
        error_limit = parsed
        skip = False
    elif mode == "SKIP_FILE" or mode == "ABORT_STATEMENT":
        error_limit = 1
        skip = errors > 0
    elif mode == "SKIP_FILE_N":
        error_limit = limit
        skip = errors >= limit
    else:  # SKIP_FILE_PCT: skip when the share of error rows exceeds n percent
        error_limit = max(1, int(math.ceil(parsed * limit / 100.0)))
        skip = parsed > 0 and errors * 100.0 / parsed > limit
    if skip:
        rows = []
        loaded = 0
    if errors == 0:
        status = "LOADED"
    elif loaded == 0:
        status = "LOAD_FAILED"
    else:
        status = "PARTIALLY_LOADED"
    r = _file_row(url, status, parsed, loaded, error_limit, errors,
                  first[0] if first else None, first[1] if first else None,
                  first[2] if first else None, first[3] if first else None)
    r["rows"] = rows
    return r


def _file_row(url, status, parsed, loaded, limit, errors, first_error, line, char, colname):
    return {"file": url, "status": status, "rows_parsed": parsed, "rows_loaded": loaded,
            "error_limit": limit, "errors_seen": errors, "first_error": first_error,
            "first_error_line": line, "first_error_character": char,
            "first_error_column_name": colname, "rows": [], "etag": None}


def _has_surrogates(s):
    return any("\udc80" <= ch <= "\udcff" for ch in s)


def _fix_surrogates(s):
    return "".join("\ufffd" if "\udc80" <= ch <= "\udcff" else ch for ch in s)


def _first_pos(expr, fields):
    """Start character of the first $n a transform expression reads."""
    if expr[0] == "pos":
        n = expr[1]
        return fields[n - 1][1] if 0 < n <= len(fields) else 1
    for sub in expr[1:]:
        if isinstance(sub, tuple):
            r = _first_pos(sub, fields)
            if r != 1:
                return r
        elif isinstance(sub, list):
            for x in sub:
                if isinstance(x, tuple):
                    r = _first_pos(x, fields)
                    if r != 1:
                        return r
    return 1


class Typed:
    """A value produced by a cast in a COPY transformation."""
    __slots__ = ("s", "t")

    def __init__(self, s, t):
        self.s = s
        self.t = t


def convert_any(v, t, ctx):
    if isinstance(v, Typed):
        if v.s is None:
            return None
        if v.t["type"] == t["type"] and t["type"] not in ("FIXED", "TEXT", "BINARY"):
            return v.s
        if v.t["type"] in ("VARIANT", "OBJECT", "ARRAY"):
            return convert(Variant(json.loads(v.s)), t, ctx)
        return convert(human(v.s, v.t), t, ctx)
    return convert(v, t, ctx)


def _to_raw(v):
    if isinstance(v, Typed):
        if v.t["type"] in ("VARIANT", "OBJECT", "ARRAY") and v.s is not None:
            return Variant(json.loads(v.s))
        return human(v.s, v.t)
    return v


def _as_text(v):
    v = _to_raw(v)
    if v is None:
        return None
    if isinstance(v, Variant):
        x = v.v
        if x is None:
            return None
        if isinstance(x, str):
            return x
        return json.dumps(x, separators=(",", ":"))
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Decimal):
        return format(v, "f")
    return str(v)


_CAST_FUNCS = {"TO_DATE": "DATE", "DATE": "DATE", "TO_TIME": "TIME", "TIME": "TIME",
               "TO_TIMESTAMP": "TIMESTAMP_NTZ", "TO_TIMESTAMP_NTZ": "TIMESTAMP_NTZ",
               "TO_TIMESTAMP_LTZ": "TIMESTAMP_LTZ", "TO_TIMESTAMP_TZ": "TIMESTAMP_TZ",
               "TO_NUMBER": "NUMBER", "TO_DECIMAL": "NUMBER", "TO_NUMERIC": "NUMBER",
               "TO_DOUBLE": "FLOAT", "TO_BOOLEAN": "BOOLEAN", "TO_BINARY": "BINARY",
               "TO_VARCHAR": "VARCHAR", "TO_CHAR": "VARCHAR", "TO_OBJECT": "OBJECT",
               "TO_ARRAY": "ARRAY"}


def eval_copy(e, env):
    """Evaluate a COPY transformation expression over one parsed record."""
    k = e[0]
    if k == "pos":
        n = e[1]
        fields = env["fields"]
        if n < 1 or n > len(fields):
            if env["json"] and n == 1:
                return None
            return None
        v = fields[n - 1][0]
        return Variant(v) if env["json"] else v
    if k == "lit":
        return e[1]
    if k == "path":
        base = _to_raw(eval_copy(e[1], env))
        if base is None:
            return None
        if not isinstance(base, Variant):
            base = parse_json_text(str(base))
            if base is None:
                return None
        return Variant(_walk(base.v, e[2]))
    if k == "cast":
        v = eval_copy(e[1], env)
        t = e[2]
        return Typed(convert_any(v, t, env["ctx"]), t)
    if k == "func":
        name, args = e[1], e[2]
        if name == "METADATA$FILENAME":
            return env["file"]
        if name == "METADATA$FILE_ROW_NUMBER":
            return Decimal(env["row"])
        if name in ("METADATA$START_SCAN_TIME", "METADATA$FILE_LAST_MODIFIED",
                    "CURRENT_TIMESTAMP", "SYSDATE"):
            return Typed(_now_ltz(), make_type("TIMESTAMP_LTZ"))
        vals = [eval_copy(a, env) for a in args]
        if name in ("PARSE_JSON", "TRY_PARSE_JSON"):
            s = _as_text(vals[0]) if vals else None
            try:
                return parse_json_text(s)
            except ConvError:
                if name == "TRY_PARSE_JSON":
                    return None
                raise
        if name == "TO_VARIANT":
            v = _to_raw(vals[0])
            if isinstance(v, Variant) or v is None:
                return v
            if isinstance(v, Decimal):
                return Variant(int(v) if v == v.to_integral_value() else float(v))
            return Variant(v)
        if name in ("NULLIF",):
            a, b = _as_text(vals[0]), _as_text(vals[1])
            return None if a == b else vals[0]
        if name in ("COALESCE", "NVL", "IFNULL"):
            return next((v for v in vals if _to_raw(v) is not None), None)
        if name in ("TRIM", "LTRIM", "RTRIM", "UPPER", "LOWER"):
            s = _as_text(vals[0])
            if s is None:
                return None
            return {"TRIM": s.strip, "LTRIM": s.lstrip, "RTRIM": s.rstrip,
                    "UPPER": s.upper, "LOWER": s.lower}[name]()
        if name in ("CONCAT",):
            parts = [_as_text(v) for v in vals]
            return None if any(p is None for p in parts) else "".join(parts)
        if name in _CAST_FUNCS:
            t = make_type(_CAST_FUNCS[name])
            ctx = env["ctx"]
            if len(args) > 1 and isinstance(vals[1], str) and t["type"] in (
                    "DATE", "TIME", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"):
                ctx = ConvContext(vals[1], vals[1], vals[1], ctx.binary_format, ctx.timezone)
            if t["type"] == "FIXED" and len(args) >= 2:
                nums = [int(a[1]) for a in args[1:] if a[0] == "lit" and isinstance(a[1], Decimal)]
                if nums:
                    t = make_type("NUMBER", nums[:2])
            v = vals[0]
            if isinstance(v, Variant) and isinstance(v.v, str):
                v = v.v
            return Typed(convert_any(v, t, ctx), t)
        raise ConvError("Unsupported function %s in COPY transformation" % name, "002140", "42601")
    if k == "bin" and e[1] == "||":
        a, b = _as_text(eval_copy(e[2], env)), _as_text(eval_copy(e[3], env))
        return None if a is None or b is None else a + b
    raise SfError("SQL compilation error:\nexpression not supported in a COPY transformation by "
                  "the emulator.", "001003", "42000")


def _walk(v, keys):
    for key in keys:
        if v is None:
            return None
        if isinstance(key, int):
            v = v[key] if isinstance(v, list) and -len(v) <= key < len(v) else None
        else:
            v = v.get(key) if isinstance(v, dict) else None
    return v


def _now_ltz():
    return fmt_secs(int(time.time() * NS))


# ---------------------------------------------------------------------------
# SELECT evaluation

class _OrderKey:
    __slots__ = ("k", "desc", "nulls_first")

    def __init__(self, k, desc, nulls_first):
        self.k = k
        self.desc = desc
        self.nulls_first = nulls_first

    def __lt__(self, other):
        a, b = self.k, other.k
        if a is None or b is None:
            if a is None and b is None:
                return False
            return (a is None) == self.nulls_first
        try:
            return (b < a) if self.desc else (a < b)
        except TypeError:
            return (str(b) < str(a)) if self.desc else (str(a) < str(b))

    def __eq__(self, other):
        return self.k == other.k


_AGGS = {"COUNT", "COUNT DISTINCT", "SUM", "MIN", "MAX", "AVG"}


def _has_agg(e):
    if not isinstance(e, tuple):
        return False
    if e[0] == "func" and e[1] in _AGGS:
        return True
    for sub in e[1:]:
        if isinstance(sub, tuple) and _has_agg(sub):
            return True
        if isinstance(sub, list) and any(_has_agg(x) for x in sub if isinstance(x, tuple)):
            return True
    return False


def _item_name(it):
    if it.get("alias"):
        return it["alias"]
    e = it["expr"]
    if e[0] == "col":
        return e[1][-1]
    if e[0] == "pos":
        return "$%d" % e[1]
    return it["text"].upper()


def _true(v):
    return v.s == "true"


def _bool(b):
    return Val(None if b is None else ("true" if b else "false"), BOOL_T)


class SelectEnv:
    def __init__(self, engine, session, tcols, tbl):
        self.engine = engine
        self.session = session
        self.tcols = tcols
        self.tbl = tbl
        self.index = {c["name"]: i for i, c in enumerate(tcols)}
        self.row = None
        self.group = None
        self.row_pos = None      # index of the row among the filtered rows (window functions)
        self.windows = {}        # id(window node) -> [Val per filtered row] (sfemu/relations.py)
        self.aliases = None      # SELECT-list aliases visible to QUALIFY
        self.subqueries = {}     # id(select) -> its result, for this statement

    def column(self, parts):
        name = parts[-1]
        if name in self.index:
            return self.tcols[self.index[name]]
        return None

    def lookup(self, parts):
        """The value of a column reference (subclasses resolve qualified names)."""
        c = self.column(parts)
        if c is None:
            if self.aliases and len(parts) == 1 and parts[0] in self.aliases:
                return self.aliases[parts[0]]
            raise SfError("SQL compilation error: error line 1 at position 7\ninvalid "
                          "identifier '%s'" % ".".join(parts), "000904", "42000")
        if self.row is None:
            return Val(None, c["type"])
        return Val(self.row[self.index[c["name"]]], c["type"])

    def eval(self, e):
        k = e[0]
        if k == "lit":
            return lit_val(e[1], e[2])
        if k == "col":
            return self.lookup(e[1])
        if k == "bin":
            op = e[1]
            if op in ("AND", "OR"):
                a = self.eval(e[2])
                b = self.eval(e[3])
                av = None if a.s is None else a.s == "true"
                bv = None if b.s is None else b.s == "true"
                if op == "AND":
                    if av is False or bv is False:
                        return _bool(False)
                    return _bool(None if av is None or bv is None else True)
                if av is True or bv is True:
                    return _bool(True)
                return _bool(None if av is None or bv is None else False)
            a, b = self.eval(e[2]), self.eval(e[3])
            if op in ("=", "<>", "<", "<=", ">", ">="):
                c = self._cmp(a, b)
                if c is None:
                    return _bool(None)
                return _bool({"=": c == 0, "<>": c != 0, "<": c < 0, "<=": c <= 0,
                              ">": c > 0, ">=": c >= 0}[op])
            if op == "||":
                if a.s is None or b.s is None:
                    return Val(None, TEXT_T)
                return Val(human(a.s, a.t) + human(b.s, b.t), TEXT_T)
            return self._arith(op, a, b)
        if k == "not":
            v = self.eval(e[1])
            return _bool(None if v.s is None else v.s != "true")
        if k == "neg":
            v = self.eval(e[1])
            return self._arith("-", lit_val(Decimal(0)), v)
        if k == "isnull":
            v = self.eval(e[1])
            return _bool((v.s is None) != e[2])
        if k == "in":
            v = self.eval(e[1])
            if v.s is None:
                return _bool(None)
            found = any(self._cmp(v, self.eval(x)) == 0 for x in e[2])
            return _bool(found != e[3])
        if k == "between":
            v, lo, hi = self.eval(e[1]), self.eval(e[2]), self.eval(e[3])
            c1, c2 = self._cmp(v, lo), self._cmp(v, hi)
            if c1 is None or c2 is None:
                return _bool(None)
            return _bool((c1 >= 0 and c2 <= 0) != e[4])
        if k == "like":
            v, pat = self.eval(e[1]), self.eval(e[2])
            if v.s is None or pat.s is None:
                return _bool(None)
            rx = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pat.s)
            flags = re.S | (re.I if e[4] else 0)
            return _bool(bool(re.fullmatch(rx, v.s, flags)) != e[3])
        if k == "cast":
            v = self.eval(e[1])
            t = e[2]
            if v.s is None:
                return Val(None, t)
            try:
                if v.t["type"] in ("VARIANT", "OBJECT", "ARRAY"):
                    return Val(convert(Variant(json.loads(v.s)), t), t)
                return Val(convert(human(v.s, v.t), t), t)
            except ConvError as err:
                raise SfError(err.message, err.code, err.sql_state)
        if k == "path":
            v = self.eval(e[1])
            if v.s is None:
                return Val(None, VARIANT_T)
            base = json.loads(v.s) if v.t["type"] in ("VARIANT", "OBJECT", "ARRAY") else None
            r = _walk(base, e[2])
            return Val(None if r is None else variant_text(r), VARIANT_T)
        if k == "func":
            return self._func(e[1], e[2])
        if k == "pos":
            if self.column(("$%d" % e[1],)) is None and not any(
                    c["name"].startswith("$") for c in self.tcols):
                raise SfError("SQL compilation error:\n$%d is only valid when querying staged "
                              "files." % e[1], "001003", "42000")
            if self.column(("$%d" % e[1],)) is None:
                return Val(None, TEXT_T)   # a field the record does not have
            return self.lookup(("$%d" % e[1],))
        if k == "window":
            vals = self.windows.get(id(e))
            if vals is None or self.row_pos is None:
                raise SfError("SQL compilation error:\nwindow function %s is not allowed here."
                              % e[1], "001003", "42000")
            return vals[self.row_pos]
        if k == "case":
            return self._case(e)
        if k in ("subquery", "in_query", "exists"):
            return self._subquery(e)
        if k == "star":
            raise SfError("SQL compilation error:\n* is not valid here", "001003", "42000")
        raise SfError("SQL compilation error:\nunsupported expression", "001003", "42000")

    def _subquery(self, e):
        """Uncorrelated subqueries: run once per statement (the result is kept on the
        node's id).  A scalar subquery must give one column and at most one row."""
        sub = e[2] if e[0] == "in_query" else e[1]
        q = self.subqueries.get(id(sub))
        if q is None:
            q = self.subqueries[id(sub)] = self.engine.query(sub, self.session)
        if e[0] == "exists":
            return _bool(bool(q.rows))
        if len(q.names) != 1:
            raise SfError("SQL compilation error:\nSubquery has too many columns (%d)."
                          % len(q.names), "002025", "42601")
        if e[0] == "subquery":
            if len(q.rows) > 1:
                raise SfError("Single-row subquery returns more than one row.", "090150",
                              "22000")
            return Val(q.rows[0][0] if q.rows else None, q.types[0])
        v = self.eval(e[1])
        if v.s is None:
            return _bool(None)
        vals = [Val(r[0], q.types[0]) for r in q.rows]
        found = any(self._cmp(v, x) == 0 for x in vals)
        if not found and any(x.s is None for x in vals):
            return _bool(None)
        return _bool(found != e[3])

    def _case(self, e):
        _, operand, whens, other = e
        base = self.eval(operand) if operand is not None else None
        for w, then in whens:
            if base is not None:
                wv = self.eval(w)
                hit = self._cmp(base, wv) == 0
            else:
                hit = _true(self.eval(w))
            if hit:
                return self.eval(then)
        if other is not None:
            return self.eval(other)
        return Val(None, self.eval(whens[0][1]).t if self.row is not None else TEXT_T)

    def _cmp(self, a, b):
        if a.s is None or b.s is None:
            return None
        # Coerce a literal to the other side's type (e.g. '2024-01-01' vs a DATE column).
        ta, tb = a.t, b.t
        if ta["type"] != tb["type"]:
            numeric = ("FIXED", "REAL")
            if not (ta["type"] in numeric and tb["type"] in numeric):
                try:
                    if ta["type"] == "TEXT":
                        a = Val(convert(a.s, tb), tb)
                    elif tb["type"] == "TEXT":
                        b = Val(convert(b.s, ta), ta)
                except ConvError as err:
                    raise SfError(err.message, err.code, err.sql_state)
        ka, kb = sort_key(a.s, a.t), sort_key(b.s, b.t)
        if isinstance(ka, Decimal) and isinstance(kb, float):
            ka = float(ka)
        if isinstance(kb, Decimal) and isinstance(ka, float):
            kb = float(kb)
        try:
            return (ka > kb) - (ka < kb)
        except TypeError:
            return (str(ka) > str(kb)) - (str(ka) < str(kb))

    def _arith(self, op, a, b):
        if a.s is None or b.s is None:
            return Val(None, FIXED0)
        try:
            if a.t["type"] == "REAL" or b.t["type"] == "REAL":
                x, y = float(a.s), float(b.s)
                r = {"+": x + y, "-": x - y, "*": x * y, "/": x / y if y else None,
                     "%": math.fmod(x, y) if y else None}[op]
                if r is None:
                    raise SfError("Division by zero", "100051", "22012")
                return Val(repr(r), {"type": "REAL"})
            x, y = Decimal(a.s), Decimal(b.s)
        except (InvalidOperation, ValueError):
            raise SfError("Numeric value '%s' is not recognized" % (a.s if op else b.s),
                          "100038", "22018")
        sa = a.t.get("scale", 0) or 0
        sb = b.t.get("scale", 0) or 0
        if op in ("/", "%") and y == 0:
            raise SfError("Division by zero", "100051", "22012")
        if op == "+":
            r, s = x + y, max(sa, sb)
        elif op == "-":
            r, s = x - y, max(sa, sb)
        elif op == "*":
            r, s = x * y, min(sa + sb, 12)
        elif op == "/":
            r, s = x / y, max(sa, 6)
        else:
            r, s = x % y, max(sa, sb)
        t = {"type": "FIXED", "precision": 38, "scale": s}
        return Val(convert(str(r), t), t)

    def _agg_rows(self):
        return self.group if self.group is not None else ([self.row] if self.row else [])

    def _func(self, name, args):
        sess = self.session
        if name.startswith("METADATA$") and not args:
            return self.lookup((name,))
        if name in _AGGS:
            rows = self._agg_rows()
            saved = self.row
            try:
                if name == "COUNT" and args and args[0] == ("star",):
                    return Val(str(len(rows)), FIXED0)
                vals = []
                for r in rows:
                    self.row = r
                    v = self.eval(args[0])
                    if v.s is not None:
                        vals.append(v)
            finally:
                self.row = saved
            if name in ("COUNT", "COUNT DISTINCT"):
                if name == "COUNT DISTINCT":
                    return Val(str(len({v.s for v in vals})), FIXED0)
                return Val(str(len(vals)), FIXED0)
            t = vals[0].t if vals else self._arg_type(args[0])
            if not vals:
                return Val(None, t)
            if name in ("MIN", "MAX"):
                best = vals[0]
                for v in vals[1:]:
                    c = self._cmp(v, best)
                    if (name == "MIN" and c < 0) or (name == "MAX" and c > 0):
                        best = v
                return best
            if t["type"] == "REAL":
                total = sum(float(v.s) for v in vals)
                if name == "AVG":
                    total /= len(vals)
                return Val(repr(total), {"type": "REAL"})
            total = sum(Decimal(v.s) for v in vals)
            scale = t.get("scale", 0) or 0
            if name == "AVG":
                total = total / len(vals)
                scale = max(scale, 6)
            rt = {"type": "FIXED", "precision": 38, "scale": scale}
            return Val(convert(str(total), rt), rt)
        if name == "CURRENT_ACCOUNT":
            return Val(sess.account or None, TEXT_T)
        if name == "CURRENT_USER":
            return Val(sess.user or None, TEXT_T)
        if name == "CURRENT_ROLE":
            return Val(sess.role or "PUBLIC", TEXT_T)
        if name == "CURRENT_WAREHOUSE":
            return Val(sess.warehouse or None, TEXT_T)
        if name == "CURRENT_DATABASE":
            return Val(sess.database or None, TEXT_T)
        if name == "CURRENT_SCHEMA":
            return Val(sess.schema or None, TEXT_T)
        if name == "CURRENT_VERSION":
            return Val(VERSION, TEXT_T)
        if name == "CURRENT_REGION":
            return Val("EMULATOR", TEXT_T)
        if name in ("CURRENT_TIMESTAMP", "SYSDATE", "LOCALTIMESTAMP"):
            return Val(_now_ltz(), make_type("TIMESTAMP_LTZ"))
        if name == "CURRENT_DATE":
            return Val(str(int(time.time()) // 86400), make_type("DATE"))
        vals = [self.eval(a) for a in args]
        if name in ("UPPER", "LOWER", "TRIM", "LTRIM", "RTRIM"):
            v = vals[0]
            if v.s is None:
                return Val(None, TEXT_T)
            s = human(v.s, v.t)
            return Val({"UPPER": s.upper, "LOWER": s.lower, "TRIM": s.strip,
                        "LTRIM": s.lstrip, "RTRIM": s.rstrip}[name](), TEXT_T)
        if name in ("LENGTH", "LEN"):
            v = vals[0]
            return Val(None if v.s is None else str(len(human(v.s, v.t))), FIXED0)
        if name in ("COALESCE", "NVL", "IFNULL"):
            for v in vals:
                if v.s is not None:
                    return v
            return vals[-1] if vals else Val(None, TEXT_T)
        if name in ("PARSE_JSON", "TRY_PARSE_JSON"):
            v = vals[0]
            try:
                pv = parse_json_text(None if v.s is None else human(v.s, v.t))
            except ConvError as err:
                if name == "TRY_PARSE_JSON":
                    return Val(None, VARIANT_T)
                raise SfError(err.message, err.code, err.sql_state)
            return Val(None if pv is None else variant_text(pv.v), VARIANT_T)
        if name in ("TO_VARCHAR", "TO_CHAR"):
            v = vals[0]
            return Val(None if v.s is None else human(v.s, v.t), TEXT_T)
        if name in ("HASH_AGG",):
            raise SfError("SQL compilation error:\nHASH_AGG is not supported", "001003", "42000")
        if name in _CAST_FUNCS:
            return self.eval(("cast", args[0], make_type(_CAST_FUNCS[name])))
        from . import sqlfuncs
        v = sqlfuncs.call(name, vals)
        if v is not None:
            return v
        raise SfError("SQL compilation error:\nUnknown function %s" % name, "002140", "42601")

    def _arg_type(self, e):
        saved = self.row
        self.row = None
        try:
            return self.eval(e).t
        except SfError:
            return TEXT_T
        finally:
            self.row = saved
