"""SQL side of Snowpipe Streaming: pipes that read TABLE(DATA_SOURCE(TYPE => 'STREAMING')).

"CREATE PIPE" (https://docs.snowflake.com/en/sql-reference/sql/create-pipe):
the copy statement of a pipe has one of two sources, a stage, or "a streaming
source: COPY INTO mytable FROM (SELECT ... FROM TABLE(DATA_SOURCE(TYPE =>
'STREAMING')))". "The PIPE object"
(https://docs.snowflake.com/en/user-guide/snowpipe-streaming/snowpipe-streaming-pipe-object)
adds CLUSTER_AT_INGEST_TIME and the table's default pipe, which "uses
MATCH_BY_COLUMN_NAME in the underlying copy statement"; so this module also
accepts COPY INTO t FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING'))
MATCH_BY_COLUMN_NAME = ... without a SELECT (docs/streaming.md, section 3).
The limitations page
(https://docs.snowflake.com/en/user-guide/snowpipe-streaming/snowpipe-streaming-high-performance-limitations)
says ON_ERROR supports only CONTINUE.

The rows themselves are mapped in sfemu/streaming.py; this module only parses
and checks the statement. It must not import the engine (the statement
parser imports it).
"""

from .errors import SfError

# copy options a streaming pipe may carry besides the general ones
STREAMING_OPTIONS = {"CLUSTER_AT_INGEST_TIME"}
# the only options of a stage COPY that mean something for a streaming source
_ALLOWED = {"MATCH_BY_COLUMN_NAME", "ON_ERROR", "CLUSTER_AT_INGEST_TIME"}
_EXPR_KINDS = {"pos", "lit", "path", "cast", "func", "bin"}


def parse_source(p, in_pipe):
    """After FROM TABLE: ( DATA_SOURCE ( TYPE => 'STREAMING' ) ). Returns the
    COPY source dict {"streaming": True}."""
    p.expect_op("(")
    if not p.at_kw("DATA_SOURCE"):
        raise p.error("DATA_SOURCE")
    p.next()
    p.expect_op("(")
    p.expect_kw("TYPE")
    p.expect_op("=>")
    t = p.next()
    if t.kind != "STRING" or t.value.upper() != "STREAMING":
        raise SfError("SQL compilation error:\ninvalid value [%s] for parameter 'TYPE' of "
                      "DATA_SOURCE" % t.value, "001008", "22023")
    p.expect_op(")")
    p.expect_op(")")
    if not in_pipe:
        # emulator wording: the documents show this source only in CREATE PIPE
        raise SfError("SQL compilation error:\nTABLE(DATA_SOURCE(TYPE => 'STREAMING')) can only "
                      "be used in the COPY statement of a pipe.", "001003", "42000")
    return {"streaming": True}


def check_pipe(copy, tbl):
    """CREATE PIPE ... AS COPY INTO <tbl> ... streaming source: the column list,
    the transformation and the options fit the table (raises SfError)."""
    opts = {k: (v[1] if isinstance(v, tuple) else v) for k, v in copy["options"].items()}
    for k in opts:
        if k not in _ALLOWED:
            raise SfError("SQL compilation error:\ninvalid parameter '%s' for a pipe with a "
                          "streaming source" % k, "001008", "22023")
    on_error = str(opts.get("ON_ERROR", "CONTINUE")).upper()
    if on_error != "CONTINUE":
        raise SfError("SQL compilation error:\nSnowpipe Streaming supports only "
                      "ON_ERROR = CONTINUE.", "001008", "22023")
    match_by = str(opts.get("MATCH_BY_COLUMN_NAME") or "NONE").upper()
    if match_by not in ("NONE", "CASE_SENSITIVE", "CASE_INSENSITIVE"):
        raise SfError("SQL compilation error:\ninvalid value [%s] for parameter "
                      "'MATCH_BY_COLUMN_NAME'" % match_by, "001008", "22023")
    columns = tbl["columns"]
    names = {c["name"] for c in columns}
    if copy["columns"]:
        for n in copy["columns"]:
            if n not in names:
                raise SfError("SQL compilation error:\ninvalid identifier '%s'" % n,
                              "000904", "42000")
        targets = [c for n in copy["columns"] for c in columns if c["name"] == n]
    else:
        targets = list(columns)
    transform = copy["transform"]
    if transform:
        if match_by != "NONE":
            raise SfError("SQL compilation error:\nMATCH_BY_COLUMN_NAME cannot be used with a "
                          "transformation.", "001003", "42000")
        if len(transform["items"]) != len(targets):
            raise SfError("SQL compilation error:\nInsert value list does not match column "
                          "list expecting %d but got %d"
                          % (len(targets), len(transform["items"])), "002020", "21S01")
        for item in transform["items"]:
            _check_expr(item["expr"])
    elif match_by == "NONE" and (len(targets) != 1 or targets[0]["type"]["type"]
                                 not in ("VARIANT", "OBJECT", "ARRAY")):
        # as a JSON COPY without a transformation
        raise SfError("SQL compilation error:\nA streaming source can produce one and only one "
                      "column of type variant, object, or array without a transformation or "
                      "MATCH_BY_COLUMN_NAME.", "002023", "0A000")


def _check_expr(e):
    """Only what a COPY transformation can read: $1, paths, casts, functions."""
    if not isinstance(e, tuple) or e[0] not in _EXPR_KINDS:
        raise SfError("SQL compilation error:\nexpression not supported in a COPY "
                      "transformation by the emulator.", "001003", "42000")
    if e[0] == "bin" and e[1] != "||":
        raise SfError("SQL compilation error:\nexpression not supported in a COPY "
                      "transformation by the emulator.", "001003", "42000")
    if e[0] == "pos" and e[1] != 1:
        raise SfError("SQL compilation error:\na streaming source has one column ($1); "
                      "found $%d." % e[1], "001003", "42000")
    for sub in e[1:]:
        if isinstance(sub, tuple):
            _check_expr(sub)
        elif isinstance(sub, list):
            for x in sub:
                if isinstance(x, tuple):
                    _check_expr(x)
