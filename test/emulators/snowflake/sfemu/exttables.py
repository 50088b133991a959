"""External tables: registered files, refresh, partitions, queries, SHOW.

An external table knows only the files registered in its metadata; a query reads
those files and nothing else ("Introduction to external tables",
https://docs.snowflake.com/en/user-guide/tables-external-intro).  Files are
registered
  * once when the table is created ("REFRESH_ON_CREATE ... Default: TRUE"), except
    for PARTITION_TYPE = USER_SPECIFIED tables
    (https://docs.snowflake.com/en/sql-reference/sql/create-external-table);
  * by ALTER EXTERNAL TABLE ... REFRESH [ '<relative_path>' ]: "New files in the path
    are added to the table metadata. Changes to files in the path are updated in the
    table metadata. Files no longer in the path are removed from the table metadata."
    A relative path limits the refresh to that subpath of the table's location;
    ADD FILES / REMOVE FILES (paths relative to the location) register or drop
    single files (https://docs.snowflake.com/en/sql-reference/sql/alter-external-table);
  * for USER_SPECIFIED tables by ADD PARTITION ( <col> = '<string>' [ , ... ] )
    LOCATION '<path>' ("Adding a partition also adds any new or updated files in the
    location to the external table metadata") and DROP PARTITION LOCATION '<path>'
    ("Dropping a partition also removes any files in the location"); REFRESH, ADD /
    REMOVE FILES and AUTO_REFRESH are not supported there ("Attempting to manually
    refresh this type of external table produces a user error");
  * with AUTO_REFRESH = TRUE by the storage's event notifications.  The emulator
    models the notification channel only: an S3 location gets an SQS queue ARN in
    SHOW EXTERNAL TABLES' notification_channel (one queue per account and region), a
    GCS or Azure location needs INTEGRATION = '<notification integration>' (its
    existence is not checked), and POST /_emulator/external_tables/notify stands for
    an event: it refreshes the auto-refresh tables it names (README, admin API).
Refresh results have the columns file, status, description; file is the storage
path (bucket and key, as in the ADD PARTITION example), status REGISTERED_NEW /
REGISTERED_UPDATE / UNREGISTERED (REGISTER_FAILED for a file ADD FILES cannot find).

Rows: VALUE is a VARIANT per record (for CSV an object {"c1": ..., "c2": ...}
of field texts), METADATA$FILENAME the file's path relative to the stage (as in
COPY transformations), METADATA$FILE_ROW_NUMBER, and for USER_SPECIFIED tables
METADATA$EXTERNAL_TABLE_PARTITION, the partition's values as JSON text
({"COL1": "2022-01-24", ...}, which the documented partition columns read with
parse_json(...):COL1).  Virtual columns are computed from their expressions and
cast to their declared types.  SELECT * returns VALUE and the virtual columns.  A
registered file that is gone is skipped ("If Snowflake encounters an error while
scanning a file ... the file is skipped").  CSV and JSON files only.

SHOW EXTERNAL TABLES (https://docs.snowflake.com/en/sql-reference/sql/show-external-tables):
columns created_on, name, database_name, schema_name, invalid, invalid_reason, owner,
comment, stage, location, file_format_name, file_format_type, cloud, region,
notification_channel, last_refreshed_on, table_format, last_refresh_details,
owner_role_type (TERSE: created_on, name, kind, database_name, schema_name), only
tables the role holds a privilege on, ordered by database, schema, name.
"""

import hashlib
import json
import re
import time

from . import storage
from .account import _bool
from .engine import (Result, SelectEnv, Typed, TEXT_T, FIXED0, VARIANT_T, BOOL_T,
                     convert_any, fqn_text, status_result)
from .errors import ConvError, SfError, not_exist
from .relations import Source, qualifiers, read_records, record_error, relative
from .sftypes import ConvContext, fmt_secs, make_type, row_type, variant_text, NS
from .sqltok import quote_ident
from .statements import parse_sql_expr_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS ext_files (
  table_id INTEGER NOT NULL, file TEXT NOT NULL, relpath TEXT NOT NULL, etag TEXT,
  registered_at REAL, partition TEXT, PRIMARY KEY (table_id, file));
"""
LTZ = make_type("TIMESTAMP_LTZ")
STATUS_TEXT = {"REGISTERED_NEW": "File registered successfully.",
               "REGISTERED_UPDATE": "File registered successfully.",
               "UNREGISTERED": "File unregistered successfully.",
               "REGISTER_FAILED": "File does not exist or is not accessible."}


def init(engine):
    engine.cat.db.executescript(SCHEMA)
    engine.cat.reset_tables.append("ext_files")


def register(handlers):
    handlers.update({"alter_external_table": do_alter, "show": do_show})


def _ts(t):
    return None if t is None else fmt_secs(int(t * NS))


def _prop(obj, name, default=None):
    v = (obj.get("properties") or {}).get(name, default)
    return v[1] if isinstance(v, tuple) and v and v[0] == "KW" else v


def user_specified(obj):
    return str(_prop(obj, "PARTITION_TYPE") or "").upper() == "USER_SPECIFIED"


def _stage(engine, obj):
    st = engine.cat.get("STAGE", tuple(obj["location"]["stage"]))
    if not st:
        raise SfError("SQL execution error: External table %s is invalid: its stage %s does "
                      "not exist." % (obj["fqn"][2], fqn_text(obj["location"]["stage"])),
                      "002003", "02000")
    return st


def location_url(stage, obj):
    url = storage.join_url(stage["url"], obj["location"].get("path") or "")
    return url if url.endswith("/") else url + "/"


def storage_path(url):
    """'s3://bucket/a/b.csv' -> 'bucket/a/b.csv' (the refresh result's file column)."""
    return url.split("://", 1)[1] if "://" in url else url


def notification_channel(engine, stage):
    """An SQS queue ARN for S3 auto-refresh, stable for the account and region."""
    if not stage["url"].lower().startswith("s3://"):
        return None
    region = getattr(engine.storage_cfg, "s3_region", None) or "us-east-1"
    seed = hashlib.sha256(("%s/%s" % (engine.acct.account, region)).encode()).hexdigest()
    return "arn:aws:sqs:%s:%012d:sf-snowpipe-AIDA%s-%s" % (
        region, int(seed[:10], 16) % 10 ** 12, seed[10:26].upper(), seed[26:48])


# ---------------------------------------------------------------------------
# CREATE / DROP hooks (called by engine.do_create_external_table / _drop_object)

def created(engine, fqn, session, st):
    """Finish a new external table: properties checked, auto-refresh channel, the
    refresh on create."""
    obj = engine.cat.get("EXTERNAL_TABLE", fqn)
    props = obj.get("properties") or {}
    raw_auto = st["properties"].get("AUTO_REFRESH")
    if user_specified(obj):
        if raw_auto is not None and _bool(raw_auto, "AUTO_REFRESH"):
            raise SfError("SQL compilation error:\nAUTO_REFRESH = TRUE is not supported for an "
                          "external table with PARTITION_TYPE = USER_SPECIFIED.",
                          "001008", "22023")
        auto = False
    else:
        auto = True if raw_auto is None else _bool(raw_auto, "AUTO_REFRESH")
    if str(_prop(obj, "PARTITION_TYPE") or "USER_SPECIFIED").upper() != "USER_SPECIFIED":
        raise SfError("SQL compilation error:\ninvalid value '%s' for parameter "
                      "'PARTITION_TYPE'" % _prop(obj, "PARTITION_TYPE"), "001008", "22023")
    stage = _stage(engine, obj)
    scheme = stage["url"].split(":", 1)[0].lower()
    integration = _prop(obj, "INTEGRATION")
    if auto and scheme in ("gcs", "gs", "azure") and not integration:
        raise SfError("SQL compilation error:\nAUTO_REFRESH = TRUE on a %s location needs "
                      "INTEGRATION = '<notification integration>'." % scheme.upper(),
                      "001008", "22023")
    refresh = _bool(props.get("REFRESH_ON_CREATE", True), "REFRESH_ON_CREATE")
    obj.update(auto_refresh=auto, created=time.time(), partitions=[],
               notification_channel=notification_channel(engine, stage) if auto else None,
               last_refreshed_on=None)
    engine.cat.put("EXTERNAL_TABLE", fqn, obj, object_id=obj["object_id"])
    if refresh and not user_specified(obj):
        try:
            sync(engine, obj, "")
        except NoStorage:
            pass   # the emulator was started without an endpoint for this cloud


def dropped(engine, obj):
    engine.cat.db.execute("DELETE FROM ext_files WHERE table_id=?", (obj["object_id"],))


# ---------------------------------------------------------------------------
# Registration

class NoStorage(Exception):
    """The emulator has no endpoint for the stage's cloud (no --s3-endpoint ...)."""


def _list(engine, stage, prefix):
    try:
        return storage.list_files(prefix, stage.get("credentials"), engine.storage_cfg)
    except storage.NoEndpoint as e:
        raise NoStorage(str(e))
    except (storage.StorageError, storage.NotFound) as e:   # NotFound: no such bucket
        raise SfError("Failure using stage area. Cause: [%s]" % e, "091003", "XX000")


def _etag(engine, stage, url):
    try:
        _, etag = storage.fetch(url, stage.get("credentials"), engine.storage_cfg)
        return etag
    except storage.NotFound:
        return None
    except storage.StorageError as e:
        raise SfError("Failure using stage area. Cause: [%s]" % e, "091003", "XX000")


def registered(engine, obj, subpath=""):
    cur = engine.cat.db.execute("SELECT file, relpath, etag, partition FROM ext_files WHERE "
                                "table_id=? ORDER BY file", (obj["object_id"],))
    return [dict(zip(("file", "relpath", "etag", "partition"), r)) for r in cur
            if r[1].startswith(subpath)]


def _register(engine, obj, url, rel, etag, partition=None):
    engine.cat.db.execute("INSERT OR REPLACE INTO ext_files (table_id, file, relpath, etag, "
                          "registered_at, partition) VALUES (?, ?, ?, ?, ?, ?)",
                          (obj["object_id"], url, rel, etag, time.time(),
                           json.dumps(partition) if partition is not None else None))


def _unregister(engine, obj, url):
    engine.cat.db.execute("DELETE FROM ext_files WHERE table_id=? AND file=?",
                          (obj["object_id"], url))


def _pattern_ok(obj, stage, url):
    pat = _prop(obj, "PATTERN")
    if not pat:
        return True
    try:
        return re.fullmatch(pat, relative(stage["url"], url)) is not None
    except re.error:
        raise SfError("SQL compilation error:\ninvalid PATTERN", "001003", "42000")


def sync(engine, obj, subpath, partition=None):
    """Register the files under location + subpath, unregister the ones gone.
    Returns [(url, status)]."""
    stage = _stage(engine, obj)
    loc = location_url(stage, obj)
    subpath = subpath.lstrip("/")
    urls = [u for u in _list(engine, stage, loc + subpath) if _pattern_ok(obj, stage, u)]
    old = {r["file"]: r for r in registered(engine, obj, subpath)}
    out = []
    for url in urls:
        etag = _etag(engine, stage, url)
        if etag is None:
            continue
        prev = old.pop(url, None)
        if prev is None:
            out.append((url, "REGISTERED_NEW"))
        elif prev["etag"] != etag:
            out.append((url, "REGISTERED_UPDATE"))
        else:
            if partition is not None and prev["partition"] != json.dumps(partition):
                _register(engine, obj, url, relative(loc, url), etag, partition)
            continue
        _register(engine, obj, url, relative(loc, url), etag, partition)
    for url in old:
        _unregister(engine, obj, url)
        out.append((url, "UNREGISTERED"))
    obj["last_refreshed_on"] = time.time()
    engine.cat.put("EXTERNAL_TABLE", tuple(obj["fqn"]), obj, object_id=obj["object_id"])
    return out


def register_file(engine, obj, stage, url):
    """Register one file (REGISTERED_NEW / REGISTERED_UPDATE, None if unchanged);
    a file that is gone: "UNREGISTERED" if it was registered, else "MISSING"."""
    try:
        etag = _etag(engine, stage, url)
    except SfError:
        etag = None
    prev = engine.cat.db.execute("SELECT etag FROM ext_files WHERE table_id=? AND file=?",
                                 (obj["object_id"], url)).fetchone()
    if etag is None:
        if prev is None:
            return None
        _unregister(engine, obj, url)
        return "UNREGISTERED"
    if prev is not None and prev[0] == etag:
        return None
    _register(engine, obj, url, relative(location_url(stage, obj), url), etag)
    return "REGISTERED_NEW" if prev is None else "REGISTERED_UPDATE"


def refresh_result(changes):
    cols = [row_type(n, TEXT_T) for n in ("file", "status", "description")]
    return Result(cols, [[storage_path(u), s, STATUS_TEXT[s]] for u, s in changes])


# ---------------------------------------------------------------------------
# ALTER EXTERNAL TABLE

def _owned(engine, st, session):
    fqn = engine.resolve(st["name"], session, "ALTER EXTERNAL TABLE")
    obj = engine.cat.get("EXTERNAL_TABLE", fqn)
    if obj is None:
        if st["if_exists"]:
            return fqn, None
        raise not_exist("Table", fqn_text(fqn))
    engine.acct.check_object(session, "EXTERNAL_TABLE", fqn, obj, ("OWNERSHIP",))
    return fqn, obj


def _partition_only(obj, what, want):
    if user_specified(obj) != want:
        if want:
            raise SfError("SQL compilation error:\n%s is only supported for an external table "
                          "with PARTITION_TYPE = USER_SPECIFIED." % what, "001003", "42000")
        raise SfError("SQL compilation error:\n%s is not supported for an external table with "
                      "PARTITION_TYPE = USER_SPECIFIED; use ALTER EXTERNAL TABLE ... ADD / DROP "
                      "PARTITION." % what, "001003", "42000")


def do_alter(engine, st, session, handle):
    fqn, obj = _owned(engine, st, session)
    if obj is None:
        return status_result("Statement executed successfully.")
    op = st["op"]
    stage = _stage(engine, obj)
    if op in ("refresh", "add_files", "remove_files", "add_partition"):
        engine.acct.check_object(session, "STAGE", tuple(obj["location"]["stage"]), stage,
                                 ("USAGE", "READ"))
    engine.cat.begin()
    try:
        res = _alter(engine, st, obj, stage)
        engine.cat.commit()
    except BaseException:
        engine.cat.rollback()
        raise
    return res


def _alter(engine, st, obj, stage):
    op = st["op"]
    if op == "refresh":
        _partition_only(obj, "REFRESH", False)
        if st["path"] and str(_prop(obj, "TABLE_FORMAT") or "").upper() == "DELTA":
            raise SfError("SQL compilation error:\nREFRESH with a relative path is not supported "
                          "for TABLE_FORMAT = DELTA.", "001003", "42000")
        try:
            return refresh_result(sync(engine, obj, st["path"]))
        except NoStorage as e:
            raise SfError("Failure using stage area. Cause: [%s]" % e, "091003", "XX000")
    if op in ("add_files", "remove_files"):
        _partition_only(obj, op.replace("_", " ").upper(), False)
        loc = location_url(stage, obj)
        changes = []
        for path in st["files"]:
            url = loc + path.lstrip("/")
            if op == "remove_files":
                if engine.cat.db.execute("SELECT 1 FROM ext_files WHERE table_id=? AND file=?",
                                         (obj["object_id"], url)).fetchone():
                    _unregister(engine, obj, url)
                    changes.append((url, "UNREGISTERED"))
                continue
            status = register_file(engine, obj, stage, url)
            changes.append((url, status or "REGISTER_FAILED"))
        obj["last_refreshed_on"] = time.time()
        engine.cat.put("EXTERNAL_TABLE", tuple(obj["fqn"]), obj, object_id=obj["object_id"])
        return refresh_result(changes)
    if op == "set":
        props = st["properties"]
        for k in props:
            if k != "AUTO_REFRESH":
                raise SfError("SQL compilation error:\ninvalid property '%s' for 'EXTERNAL "
                              "TABLE'" % k, "001008", "22023")
        if "AUTO_REFRESH" in props:
            _partition_only(obj, "AUTO_REFRESH", False)
            obj["auto_refresh"] = _bool(props["AUTO_REFRESH"], "AUTO_REFRESH")
            obj["notification_channel"] = notification_channel(engine, stage) \
                if obj["auto_refresh"] else None
        engine.cat.put("EXTERNAL_TABLE", tuple(obj["fqn"]), obj, object_id=obj["object_id"])
        return status_result("Statement executed successfully.")
    if op == "add_partition":
        _partition_only(obj, "ADD PARTITION", True)
        for col in st["values"]:
            if col not in obj["partition_by"]:
                raise SfError("SQL compilation error:\n%s is not a partition column of external "
                              "table %s." % (col, obj["fqn"][2]), "001003", "42000")
            if len(col) > 32:
                raise SfError("SQL compilation error:\nThe maximum length of a user-specified "
                              "partition column name is 32 characters.", "001003", "42000")
        path = _dir(st["location"])
        obj["partitions"] = [p for p in obj.get("partitions", []) if p["location"] != path]
        obj["partitions"].append({"location": path, "values": st["values"]})
        engine.cat.put("EXTERNAL_TABLE", tuple(obj["fqn"]), obj, object_id=obj["object_id"])
        try:
            return refresh_result(sync(engine, obj, path, partition=st["values"]))
        except NoStorage as e:
            raise SfError("Failure using stage area. Cause: [%s]" % e, "091003", "XX000")
    # drop_partition
    _partition_only(obj, "DROP PARTITION", True)
    path = _dir(st["location"])
    obj["partitions"] = [p for p in obj.get("partitions", []) if p["location"] != path]
    changes = []
    for r in registered(engine, obj, path):
        _unregister(engine, obj, r["file"])
        changes.append((r["file"], "UNREGISTERED"))
    engine.cat.put("EXTERNAL_TABLE", tuple(obj["fqn"]), obj, object_id=obj["object_id"])
    return refresh_result(changes)


def _dir(path):
    """A partition LOCATION is a directory below the table's location."""
    path = path.strip().lstrip("/")
    return path if not path or path.endswith("/") else path + "/"


# ---------------------------------------------------------------------------
# ALTER TABLE ... ADD / DROP COLUMN on an external table (engine hooks)

def add_columns(engine, fqn, obj, st):
    names = {c["name"] for c in obj["columns"]} | {"VALUE"}
    for c in st["columns"]:
        if c["name"] in names:
            if c.get("if_not_exists"):
                continue
            raise SfError("SQL compilation error:\ncolumn '%s' already exists" % c["name"],
                          "002025", "42S21")
        if not c.get("expr"):
            raise SfError("SQL compilation error:\nA column of an external table needs an "
                          "expression: ADD COLUMN <name> <type> AS (<expr>).", "001003", "42000")
        parse_sql_expr_text(c["expr"])
        obj["columns"].append({"name": c["name"], "type": c["type"], "nullable": c["nullable"],
                               "expr": c["expr"]})
        names.add(c["name"])
    engine.cat.put("EXTERNAL_TABLE", fqn, obj, object_id=obj["object_id"])
    return status_result("Statement executed successfully.")


def drop_columns(engine, fqn, obj, st):
    for name in st["columns"]:
        if name in ("VALUE", "METADATA$FILENAME", "METADATA$FILE_ROW_NUMBER"):
            raise SfError("SQL compilation error:\nThe default VALUE column and the METADATA$ "
                          "pseudocolumns of an external table cannot be dropped.",
                          "001003", "42000")
        if name in obj["partition_by"]:
            raise SfError("SQL compilation error:\nColumn '%s' is a partition column and cannot "
                          "be dropped." % name, "001003", "42000")
        if not any(c["name"] == name for c in obj["columns"]):
            if st["column_if_exists"]:
                continue
            raise SfError("SQL compilation error:\ninvalid identifier '%s'" % name,
                          "000904", "42000")
        obj["columns"] = [c for c in obj["columns"] if c["name"] != name]
    engine.cat.put("EXTERNAL_TABLE", fqn, obj, object_id=obj["object_id"])
    return status_result("Statement executed successfully.")


# ---------------------------------------------------------------------------
# Queries

BASE_COLS = [{"name": "VALUE", "type": VARIANT_T, "nullable": True},
             {"name": "METADATA$FILENAME", "type": TEXT_T, "nullable": False, "hidden": True},
             {"name": "METADATA$FILE_ROW_NUMBER", "type": FIXED0, "nullable": False,
              "hidden": True},
             {"name": "METADATA$EXTERNAL_TABLE_PARTITION", "type": TEXT_T, "nullable": True,
              "hidden": True}]


def source(engine, fqn, obj, session, alias):
    engine.acct.check_object(session, "EXTERNAL_TABLE", fqn, obj, ("SELECT",))
    engine.acct.check_warehouse(session)
    cols = [{"name": c["name"], "type": c["type"], "nullable": True} for c in obj["columns"]]
    exprs = [parse_sql_expr_text(c["expr"]) if c.get("expr") else ("lit", None, None)
             for c in obj["columns"]]
    tcols = BASE_COLS[:1] + cols + BASE_COLS[1:]

    def rows():
        stage = _stage(engine, obj)
        fmt = engine._effective_format(obj.get("file_format"))
        env = SelectEnv(engine, session, BASE_COLS, None)
        ctx = ConvContext(fmt.get("DATE_FORMAT"), fmt.get("TIME_FORMAT"),
                          fmt.get("TIMESTAMP_FORMAT"), fmt.get("BINARY_FORMAT"),
                          session.timezone)
        out = []
        for f in registered(engine, obj):
            try:
                recs, _ = read_records(engine, f["file"], stage.get("credentials"), fmt)
            except storage.NotFound:
                continue
            rel = relative(stage["url"], f["file"])
            for n, rec in enumerate(recs, 1):
                if rec.error:
                    raise record_error(rec, rel)
                if fmt["TYPE"] == "CSV":
                    value = {"c%d" % (i + 1): v for i, (v, _) in enumerate(rec.fields)}
                else:
                    value = rec.fields[0][0]
                base = (variant_text(value), rel, str(n), f["partition"])
                env.row = base
                virt = []
                for c, e in zip(cols, exprs):
                    v = env.eval(e)
                    try:
                        virt.append(None if v.s is None else
                                    convert_any(Typed(v.s, v.t), c["type"], ctx))
                    except ConvError as err:
                        raise SfError(err.message, err.code, err.sql_state)
                out.append(base[:1] + tuple(virt) + base[1:])
        return out
    return Source(tcols, rows, qualifiers(fqn, alias), None)


# ---------------------------------------------------------------------------
# SHOW

def do_show(engine, st, session, handle):
    if st["what"] == "grants":
        otype, parts = st["object_type"], tuple(st["object"])
        if otype in ("TABLE", "EXTERNAL_TABLE", "STAGE", "FILE_FORMAT", "PIPE"):
            parts = engine.resolve(parts, session, "SHOW")
        elif otype == "SCHEMA" and len(parts) == 1:
            parts = engine.resolve(parts + ("x",), session, "SHOW")[:2]
        names, types, rows = engine.acct.show_grants(otype, parts, session)
        if st["limit"] is not None:
            rows = rows[:st["limit"]]
        return Result([row_type(n, t) for n, t in zip(names, types)], rows)
    return show_external_tables(engine, st, session)


def _like(pattern, name):
    rx = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    return re.fullmatch(rx, name, re.I | re.S) is not None


def show_external_tables(engine, st, session):
    scope, target = st["scope"], st["in"]
    if scope is None:
        scope = "database" if session.database else "account"
    if scope == "database":
        db = target[0] if target else session.database
        keep = (lambda f: f[0] == db) if db else (lambda f: True)
    elif scope == "schema":
        if target and len(target) == 2:
            db, sc = target
        elif target:
            db, sc = session.database, target[0]
        else:
            db, sc = session.database, session.schema
        if not db or not sc:
            raise SfError("Cannot perform SHOW. This session does not have a current database. "
                          "Call 'USE DATABASE', or use a qualified name.", "090105", "22000")
        keep = lambda f: f[0] == db and f[1] == sc   # noqa: E731
    else:
        keep = lambda f: True   # noqa: E731
    objs = []
    for o in engine.cat.list_objects("EXTERNAL_TABLE"):
        f = o["fqn"]
        if not keep(f):
            continue
        if st["like"] is not None and not _like(st["like"], f[2]):
            continue
        if st["starts_with"] is not None and not f[2].startswith(st["starts_with"]):
            continue
        if st["from"] is not None and f[2] < st["from"]:
            continue
        if session.roles is not None:
            privs = engine.acct.privileges(session, "EXTERNAL_TABLE", tuple(f),
                                           owner=o.get("owner") or "")
            if privs is not None and not privs:
                continue
        objs.append(o)
    objs.sort(key=lambda o: tuple(o["fqn"]))
    if st["limit"] is not None:
        objs = objs[:st["limit"]]
    if st["terse"]:
        names = ["created_on", "name", "kind", "database_name", "schema_name"]
        types = [LTZ, TEXT_T, TEXT_T, TEXT_T, TEXT_T]
        rows = [[_ts(o.get("created", o["created_on"])), o["fqn"][2], "EXTERNAL_TABLE",
                 o["fqn"][0], o["fqn"][1]] for o in objs]
    else:
        names = ["created_on", "name", "database_name", "schema_name", "invalid",
                 "invalid_reason", "owner", "comment", "stage", "location", "file_format_name",
                 "file_format_type", "cloud", "region", "notification_channel",
                 "last_refreshed_on", "table_format", "last_refresh_details", "owner_role_type"]
        types = [LTZ, TEXT_T, TEXT_T, TEXT_T, BOOL_T, TEXT_T, TEXT_T, TEXT_T, TEXT_T, TEXT_T,
                 TEXT_T, TEXT_T, TEXT_T, TEXT_T, TEXT_T, LTZ, TEXT_T, TEXT_T, TEXT_T]
        rows = [_show_row(engine, o) for o in objs]
    return Result([row_type(n, t) for n, t in zip(names, types)], rows)


_CLOUD = {"s3": "AWS", "gcs": "GCP", "gs": "GCP", "azure": "AZURE"}


def _show_row(engine, o):
    sfqn = tuple(o["location"]["stage"])
    stage = engine.cat.get("STAGE", sfqn)
    ff = o.get("file_format") or {}
    invalid_reason = None
    if stage is None:
        invalid_reason = "Stage %s does not exist." % fqn_text(sfqn)
    elif "format_name" in ff and not engine.cat.get("FILE_FORMAT", tuple(ff["format_name"])):
        invalid_reason = "File format %s does not exist." % fqn_text(ff["format_name"])
    scheme = stage["url"].split(":", 1)[0].lower() if stage else ""
    region = (getattr(engine.storage_cfg, "s3_region", None) or "us-east-1") \
        if scheme == "s3" else None
    location = "@%s/%s" % (".".join(quote_ident(x) for x in sfqn),
                           o["location"].get("path") or "")
    return [_ts(o.get("created", o["created_on"])), o["fqn"][2], o["fqn"][0], o["fqn"][1],
            "true" if invalid_reason else "false", invalid_reason, o.get("owner"),
            _prop(o, "COMMENT"), fqn_text(sfqn), location,
            fqn_text(ff["format_name"]) if "format_name" in ff else None,
            (ff.get("options") or {}).get("TYPE", "CSV") if "format_name" not in ff else None,
            _CLOUD.get(scheme), region, o.get("notification_channel"),
            _ts(o.get("last_refreshed_on")),
            "DELTA" if str(_prop(o, "TABLE_FORMAT") or "").upper() == "DELTA" else "UNSPECIFIED",
            None, "ROLE"]


# ---------------------------------------------------------------------------
# Admin API: GET /_emulator/external_tables[?table=DB.S.T],
#            POST /_emulator/external_tables/notify {"table": "DB.S.T" | "channel": ...}

def admin_list(engine, want=None, matches=None):
    out = []
    for o in engine.cat.list_objects("EXTERNAL_TABLE"):
        if want and matches and not matches(want, o["fqn"]):
            continue
        files = [{"file": f["file"], "relative_path": f["relpath"], "etag": f["etag"],
                  "partition": json.loads(f["partition"]) if f["partition"] else None}
                 for f in registered(engine, o)]
        out.append({"table": ".".join(o["fqn"]), "files": files,
                    "auto_refresh": o.get("auto_refresh"),
                    "partition_type": "USER_SPECIFIED" if user_specified(o) else None,
                    "partitions": o.get("partitions", []),
                    "notification_channel": o.get("notification_channel"),
                    "last_refreshed_on": o.get("last_refreshed_on"),
                    "grants": engine.acct.object_grants("EXTERNAL_TABLE", tuple(o["fqn"]))})
    return {"external_tables": out}


def admin_notify(engine, doc, matches):
    """A storage event notification for the AUTO_REFRESH tables.

    {"channel": <SQS queue ARN or integration name>, "files": [<object URL>, ...]}: what
    an S3 / GCS event says ("ObjectCreate", "ObjectRemoved"): every auto-refresh table on
    that channel whose location holds the file registers it, or unregisters it when it
    is gone ("all external table definitions that match the stage directory path read
    the file details into their metadata", "Refresh external tables automatically for
    Amazon S3").  {"table": <name>, "path": <relative path>}: refresh that table's path.
    Tables with AUTO_REFRESH = FALSE are left alone."""
    done = []
    chan, table = doc.get("channel"), doc.get("table")
    if not chan and not table:
        raise SfError("notify needs a channel (with files) or a table", "390142", "22000")
    for o in engine.cat.list_objects("EXTERNAL_TABLE"):
        if table and not matches(table, o["fqn"]):
            continue
        if chan and chan not in (o.get("notification_channel"), _prop(o, "INTEGRATION")):
            continue
        name = ".".join(o["fqn"])
        if not o.get("auto_refresh"):
            done.append({"table": name, "refreshed": False, "reason": "AUTO_REFRESH = FALSE"})
            continue
        obj = engine.cat.get("EXTERNAL_TABLE", tuple(o["fqn"]))
        engine.cat.begin()
        try:
            if doc.get("files") is not None:
                stage = _stage(engine, obj)
                loc = location_url(stage, obj)
                changes = []
                for url in doc["files"]:
                    if url.startswith(loc) and _pattern_ok(obj, stage, url):
                        status = register_file(engine, obj, stage, url)
                        if status:
                            changes.append((url, status))
                obj["last_refreshed_on"] = time.time()
                engine.cat.put("EXTERNAL_TABLE", tuple(obj["fqn"]), obj,
                               object_id=obj["object_id"])
            else:
                changes = sync(engine, obj, doc.get("path") or "")
            engine.cat.commit()
        except BaseException:
            engine.cat.rollback()
            raise
        done.append({"table": name, "refreshed": True,
                     "files": [{"file": storage_path(u), "status": s} for u, s in changes]})
    return {"notified": done}
