"""Row sources for queries and DML, and window functions.

source_for(engine, from_item, session) turns a FROM item (statements.parse_from_item)
into a Source: typed columns and rows of stored (jsonv2) strings.

  table        a table's rows (SELECT privilege, a warehouse); an external table's
               rows come from sfemu/exttables.py (its registered files only)
  subquery     the rows of the inner SELECT, its output columns typed as computed
  staged files @stage[/path] [( FILE_FORMAT => '<format>', PATTERN => '<regex>' )]
               (https://docs.snowflake.com/en/user-guide/querying-stage): $1..$n
               (CSV fields as text; for JSON $1 is the document as a VARIANT), and
               METADATA$FILENAME / METADATA$FILE_ROW_NUMBER /
               METADATA$FILE_CONTENT_KEY (https://docs.snowflake.com/en/user-guide/querying-metadata),
               which SELECT * does not return.  Without FILE_FORMAT the stage's format
               is used, else CSV with the defaults.

Window functions (https://docs.snowflake.com/en/sql-reference/functions-window-syntax):
ROW_NUMBER, RANK, DENSE_RANK with PARTITION BY / ORDER BY, and COUNT / SUM / MIN /
MAX / AVG over a whole partition (no ORDER BY, no frame).
"""

import re

from . import storage
from .engine import SelectEnv, Val, TEXT_T, FIXED0, VARIANT_T, _OrderKey, fqn_text
from .errors import SfError, not_exist
from .fileformat import ENCODINGS, effective_options, parse_csv, parse_json_records
from .sftypes import sort_key, variant_text


class QueryResult:
    def __init__(self, names, types, rows, rowtype):
        self.names = names        # output column names
        self.types = types        # type dicts
        self.rows = rows          # lists of stored strings
        self.rowtype = rowtype    # SQL API rowType entries


class Source:
    """Columns [{"name", "type", "nullable"[, "hidden"]}] and rows (tuples aligned with
    them, or a function returning them); names: the qualifiers that name the source."""

    def __init__(self, tcols, rows, names=(), tbl=None, count=None):
        self.tcols = tcols
        self._rows = rows
        self.names = set(names)
        self.tbl = tbl
        self.count = count

    def all_rows(self):
        if callable(self._rows):
            self._rows = self._rows()
        return self._rows

    def star_columns(self):
        return [c for c in self.tcols if not c.get("hidden")]


def qualifiers(fqn, alias):
    """A table named fqn is referenced by its alias only, when it has one, else by
    name, schema.name or db.schema.name."""
    if alias:
        return {(alias,)}
    return {tuple(fqn[-n:]) for n in (1, 2, 3)}


def source_for(engine, item, session, op="SELECT"):
    if item is None:
        return Source([], [()])
    kind = item["kind"]
    if kind == "subquery":
        q = engine.query(item["select"], session)
        tcols = [{"name": n, "type": t, "nullable": True} for n, t in zip(q.names, q.types)]
        return Source(tcols, [tuple(r) for r in q.rows],
                      {(item["alias"],)} if item.get("alias") else ())
    if kind == "stage":
        return stage_source(engine, item, session)
    fqn = engine.resolve(item["name"], session, op)
    tbl = engine.cat.get("TABLE", fqn)
    if tbl is None and tuple(x.upper() for x in fqn) == ("SNOWFLAKE", "ACCOUNT_USAGE", "LOAD_HISTORY"):
        return engine.load_history_source(session, item.get("alias"))
    if tbl is None:
        ext = engine.cat.get("EXTERNAL_TABLE", fqn)
        if ext is not None:
            from . import exttables
            return exttables.source(engine, fqn, ext, session, item.get("alias"))
        raise not_exist("Object", fqn_text(fqn))
    engine.acct.check_object(session, "TABLE", fqn, tbl, ("SELECT",))
    engine.acct.check_warehouse(session)
    tcols = tbl["columns"]
    sqlcols = [c["sqlcol"] for c in tcols]
    return Source(tcols, lambda: engine.cat.scan(tbl["object_id"], sqlcols).fetchall(),
                  qualifiers(fqn, item.get("alias")), tbl,
                  count=lambda: engine.cat.count(tbl["object_id"]))


# ---------------------------------------------------------------------------
# Staged files

def list_stage_files(engine, base_url, path, creds, pattern):
    """Object URLs under stage URL + path, optionally filtered by PATTERN, which is
    matched against the path relative to the stage URL (as COPY does)."""
    prefix = storage.join_url(base_url, path or "")
    try:
        urls = storage.list_files(prefix, creds, engine.storage_cfg)
    except (storage.StorageError, storage.NotFound) as e:   # NotFound: no such bucket
        raise SfError("Failure using stage area. Cause: [%s]" % e, "091003", "XX000")
    if pattern:
        try:
            rx = re.compile(pattern)
        except re.error:
            raise SfError("SQL compilation error:\ninvalid PATTERN", "001003", "42000")
        urls = [u for u in urls if rx.fullmatch(relative(base_url, u))]
    return urls


def relative(base_url, url):
    base = base_url if base_url.endswith("/") else base_url + "/"
    return url[len(base):] if url.startswith(base) else url


def read_records(engine, url, creds, fmt):
    """(records, etag) of one staged file parsed with the effective format fmt; a
    file that is gone raises storage.NotFound."""
    try:
        data, etag = storage.fetch(url, creds, engine.storage_cfg)
        raw = storage.decompress(data, fmt.get("COMPRESSION"), url)
    except storage.NotFound:
        raise
    except storage.StorageError as e:
        raise SfError("Failure using stage area. Cause: [%s]" % e, "091003", "XX000")
    codec = ENCODINGS.get(str(fmt.get("ENCODING", "UTF8")).upper(), "utf-8")
    text = raw.decode(codec, errors="replace")
    if fmt["TYPE"] == "CSV":
        return list(parse_csv(text, fmt)), etag
    if fmt["TYPE"] == "JSON":
        return list(parse_json_records(text, fmt)), etag
    raise SfError("File format type %s cannot be queried in the emulator (CSV and JSON only)."
                  % fmt["TYPE"], "002040", "0A000")


def record_error(rec, rel):
    msg, code, sqlstate, char = rec.error
    return SfError("%s\n  File '%s', line %s, character %s" % (msg, rel, rec.line, char),
                   code, sqlstate)


META_COLS = [{"name": "METADATA$FILENAME", "type": TEXT_T, "nullable": False, "hidden": True},
             {"name": "METADATA$FILE_ROW_NUMBER", "type": FIXED0, "nullable": False,
              "hidden": True},
             {"name": "METADATA$FILE_CONTENT_KEY", "type": TEXT_T, "nullable": True,
              "hidden": True}]


def stage_source(engine, item, session):
    ref = item["stage"]
    sfqn = engine.resolve(ref["name"], session, "SELECT")
    stage = engine.cat.get("STAGE", sfqn)
    if not stage:
        raise not_exist("Stage", fqn_text(sfqn))
    engine.acct.check_object(session, "STAGE", sfqn, stage, ("USAGE", "READ"))
    ff = item["options"].get("FILE_FORMAT")
    if ff is not None:
        ffqn = engine.resolve(ff, session, "SELECT")
        fobj = engine.cat.get("FILE_FORMAT", ffqn)
        if not fobj:
            raise not_exist("File format", fqn_text(ffqn))
        engine.acct.check_object(session, "FILE_FORMAT", ffqn, fobj, ("USAGE",))
        fmt = effective_options(fobj["options"])
    else:
        fmt = engine._effective_format(stage.get("file_format"))
    engine.acct.check_warehouse(session)
    creds = stage.get("credentials")
    base = stage["url"]
    urls = list_stage_files(engine, base, ref.get("path"), creds,
                            item["options"].get("PATTERN"))
    data = []
    width = 1
    for url in urls:
        rel = relative(base, url)
        try:
            recs, etag = read_records(engine, url, creds, fmt)
        except storage.NotFound:
            continue
        for n, rec in enumerate(recs, 1):
            if rec.error:
                raise record_error(rec, rel)
            if fmt["TYPE"] == "JSON":
                fields = [variant_text(rec.fields[0][0])]
            else:
                fields = [v for v, _ in rec.fields]
            width = max(width, len(fields))
            data.append((fields, (rel, str(n), etag)))
    ftype = VARIANT_T if fmt["TYPE"] == "JSON" else TEXT_T
    tcols = [{"name": "$%d" % (i + 1), "type": ftype, "nullable": True} for i in range(width)]
    rows = [tuple(f + [None] * (width - len(f))) + meta for f, meta in data]
    alias = item.get("alias")
    return Source(tcols + META_COLS, rows, {(alias,)} if alias else ())


# ---------------------------------------------------------------------------
# Window functions

_RANKING = ("ROW_NUMBER", "RANK", "DENSE_RANK")
_WINDOW_AGGS = ("COUNT", "SUM", "MIN", "MAX", "AVG")


def window_nodes(exprs):
    out = []

    def walk(e):
        if isinstance(e, tuple) and e:
            if e[0] == "window":
                out.append(e)
            for sub in e[1:]:
                walk(sub)
        elif isinstance(e, list):
            for sub in e:
                walk(sub)
    for e in exprs:
        walk(e)
    return out


def compute_windows(env, rows, nodes):
    """Fill env.windows: id(node) -> one Val per row (rows in their filtered order)."""
    for node in nodes:
        _, name, args, partition, order = node
        if name not in _RANKING + _WINDOW_AGGS:
            raise SfError("SQL compilation error:\nwindow function %s is not supported by the "
                          "emulator." % name, "001003", "42000")
        if name in _RANKING and args:
            raise SfError("SQL compilation error:\n%s takes no arguments." % name,
                          "000938", "42601")
        if name in _RANKING and not order:
            raise SfError("SQL compilation error:\nWindow function type [%s] requires ORDER "
                          "BY in window specification." % name, "002303", "42601")
        if name in _WINDOW_AGGS and order:
            raise SfError("SQL compilation error:\ncumulative window frames (an aggregate "
                          "with ORDER BY) are not supported by the emulator.", "001003", "42000")
        parts = {}
        for i, r in enumerate(rows):
            env.row = r
            key = tuple(env.eval(e).s for e in partition)
            parts.setdefault(key, []).append(i)
        vals = [None] * len(rows)
        for idxs in parts.values():
            if name in _WINDOW_AGGS:
                env.group = [rows[i] for i in idxs]
                env.row = env.group[0]
                v = env.eval(("func", name, args))
                env.group = None
                for i in idxs:
                    vals[i] = v
                continue
            keyed = []
            for i in idxs:
                env.row = rows[i]
                ks = []
                for o in order:
                    v = env.eval(o["expr"])
                    nulls_first = o["nulls_first"] if o["nulls_first"] is not None else o["desc"]
                    ks.append(_OrderKey(sort_key(v.s, v.t), o["desc"], nulls_first))
                keyed.append((ks, i))
            keyed.sort(key=lambda x: x[0])
            rank = dense = 0
            prev = None
            for pos, (ks, i) in enumerate(keyed, 1):
                raw = [k.k for k in ks]
                if raw != prev:
                    rank, dense = pos, dense + 1
                    prev = raw
                n = {"ROW_NUMBER": pos, "RANK": rank, "DENSE_RANK": dense}[name]
                vals[i] = Val(str(n), FIXED0)
        env.windows[id(node)] = vals
    env.row = None


# ---------------------------------------------------------------------------
# Several sources at once (MERGE, UPDATE ... FROM, DELETE ... USING)

class JoinEnv(SelectEnv):
    """Evaluates expressions over one row of each of several sources; a column
    reference is qualified by a source's name or alias, or unqualified and then
    must name a column of exactly one source (else "ambiguous column name")."""

    def __init__(self, engine, session, sources):
        super().__init__(engine, session, [], None)
        self.sources = sources          # list of Source
        self.rows = [None] * len(sources)
        self.indexes = [{c["name"]: i for i, c in enumerate(s.tcols)} for s in sources]

    def _find(self, parts):
        name, qual = parts[-1], tuple(parts[:-1])
        hits = []
        for n, src in enumerate(self.sources):
            if qual and qual not in src.names:
                continue
            if name in self.indexes[n]:
                hits.append(n)
        if not hits:
            raise SfError("SQL compilation error: error line 1 at position 7\ninvalid "
                          "identifier '%s'" % ".".join(parts), "000904", "42000")
        if len(hits) > 1:
            raise SfError("SQL compilation error:\nambiguous column name '%s'" % name,
                          "002028", "42601")
        return hits[0], self.indexes[hits[0]][name]

    def column(self, parts):
        try:
            n, i = self._find(parts)
        except SfError:
            return None
        return self.sources[n].tcols[i]

    def lookup(self, parts):
        n, i = self._find(parts)
        c = self.sources[n].tcols[i]
        row = self.rows[n]
        return Val(None if row is None else row[i], c["type"])
