"""Statement parser: turns one statement's tokens into a dict the engine runs.

Supported: CREATE/DROP of TABLE, EXTERNAL TABLE, STAGE, FILE FORMAT, PIPE
(DATABASE / SCHEMA are accepted as no-ops), ALTER TABLE ... ADD / DROP COLUMN,
TRUNCATE TABLE, COPY INTO <table>, SELECT, DESCRIBE TABLE; DML, transactions,
SHOW and ALTER EXTERNAL TABLE are parsed in sfemu/dmlparse.py.
PUT and GET are rejected; explicit transactions, USE, ALTER SESSION and
temporary tables are parsed here but run only inside a multi-statement
request (the engine checks that):
https://docs.snowflake.com/en/developer-guide/sql-api/intro#limitations-of-the-sql-api
"""

from decimal import Decimal

from .errors import SfError
from .fileformat import parse_option_list, parse_option_value
from .sftypes import parse_type
from .sqltok import Parser, parse_qname_text, tokenize
from .streaming_pipe import STREAMING_OPTIONS, parse_source as parse_streaming_source


def unsupported(what):
    return SfError("Unsupported statement type '%s'." % what, "002040", "0A000")


def parse_statement(toks, sql):
    p = Parser(toks, sql)
    t = p.tok
    if t.kind != "IDENT":
        raise p.error()
    kw = t.value.upper()
    if kw in ("PUT", "GET"):
        raise unsupported(kw)
    from . import dmlparse
    handler = dmlparse.statement_parser(p)
    if handler is not None:
        return handler(p)
    if kw == "CREATE":
        return _create(p)
    if kw == "DROP":
        return _drop(p)
    if kw == "ALTER":
        return _alter(p)
    if kw == "COPY":
        return _copy(p)
    if kw in ("GRANT", "REVOKE"):
        return _grant(p, kw == "GRANT")
    if kw == "SELECT":
        st = parse_select(p)
        p.expect_end()
        return st
    if kw == "TRUNCATE":
        p.next()
        p.accept_kw("TABLE")
        if_exists = p.accept_kw("IF", "EXISTS")
        name = p.qname()
        p.expect_end()
        return {"kind": "truncate", "name": name, "if_exists": if_exists}
    if kw in ("DESC", "DESCRIBE"):
        p.next()
        if p.accept_kw("STORAGE", "INTEGRATION") or p.accept_kw("INTEGRATION"):
            name = p.ident()
            p.expect_end()
            return {"kind": "describe", "object": "integration", "name": (name,)}
        if p.accept_kw("USER"):
            name = p.ident()
            p.expect_end()
            return {"kind": "describe", "object": "user", "name": (name,)}
        if p.accept_kw("EXTERNAL"):
            p.expect_kw("TABLE")
            kind = "external_table"
        elif p.accept_kw("TABLE"):
            kind = "table"
        else:
            kind = "table"
        name = p.qname()
        p.expect_end()
        return {"kind": "describe", "object": kind, "name": name}
    raise p.error()


# ---------------------------------------------------------------------------
# CREATE

def _create(p):
    p.expect_kw("CREATE")
    or_replace = p.accept_kw("OR", "REPLACE")
    # CREATE TABLE: "[ { [ { LOCAL | GLOBAL } ] TEMP | TEMPORARY | VOLATILE } | TRANSIENT ]"
    # (https://docs.snowflake.com/en/sql-reference/sql/create-table)
    p.accept_kw("LOCAL") or p.accept_kw("GLOBAL")
    temporary = p.accept_kw("TEMP") or p.accept_kw("TEMPORARY") or p.accept_kw("VOLATILE")
    transient = not temporary and p.accept_kw("TRANSIENT")
    if temporary and not p.at_kw("TABLE"):
        raise SfError("SQL compilation error:\nOnly temporary tables are supported by the "
                      "emulator.", "002040", "0A000")
    if p.accept_kw("TABLE"):
        st = _create_table(p, or_replace)
        st["temporary"], st["transient"] = temporary, transient
        return st
    if p.accept_kw("EXTERNAL", "TABLE"):
        return _create_external_table(p, or_replace)
    if p.accept_kw("FILE", "FORMAT"):
        if_not = p.accept_kw("IF", "NOT", "EXISTS")
        name = p.qname()
        opts = parse_option_list(p, stop_ops=())
        p.expect_end()
        return {"kind": "create_file_format", "name": name, "or_replace": or_replace,
                "if_not_exists": if_not, "options": opts}
    if p.accept_kw("STAGE"):
        if_not = p.accept_kw("IF", "NOT", "EXISTS")
        name = p.qname()
        opts = parse_option_list(p, stop_ops=())
        p.expect_end()
        return {"kind": "create_stage", "name": name, "or_replace": or_replace,
                "if_not_exists": if_not, "options": opts}
    if p.accept_kw("PIPE"):
        if_not = p.accept_kw("IF", "NOT", "EXISTS")
        name = p.qname()
        opts = {}
        while not p.at_kw("AS"):
            if p.at_end():
                raise p.error("AS")
            key = p.ident()
            p.expect_op("=")
            opts[key] = parse_option_value(p)
        p.expect_kw("AS")
        start = p.tok.pos
        copy = _copy(p, in_pipe=True)
        return {"kind": "create_pipe", "name": name, "or_replace": or_replace,
                "if_not_exists": if_not, "options": opts, "copy": copy,
                "copy_text": p.sql[start:].strip()}
    for words, kind in (("ROLE",), "ROLE"), (("WAREHOUSE",), "WAREHOUSE"), (("USER",), "USER"), \
            (("STORAGE", "INTEGRATION"), "INTEGRATION"), (("INTEGRATION",), "INTEGRATION"):
        if p.accept_kw(*words):
            if_not = p.accept_kw("IF", "NOT", "EXISTS")
            name = p.ident()
            if kind == "WAREHOUSE":
                p.accept_kw("WITH")
            opts = parse_option_list(p, stop_ops=())
            p.expect_end()
            return {"kind": "account", "op": "create_" + kind.lower(), "name": name,
                    "or_replace": or_replace, "if_not_exists": if_not, "options": opts}
    for what in ("DATABASE", "SCHEMA"):
        if p.accept_kw(what):
            if_not = p.accept_kw("IF", "NOT", "EXISTS")
            name = p.qname()
            return {"kind": "create_container", "what": what, "name": name,
                    "or_replace": or_replace, "if_not_exists": if_not}
    raise p.error("TABLE, EXTERNAL TABLE, STAGE, FILE FORMAT or PIPE")


def _skip_balanced_until(p, stops):
    """Skip tokens up to (not including) a top-level OP in stops."""
    depth = 0
    while not p.at_end():
        t = p.tok
        if t.kind == "OP":
            if t.value == "(":
                depth += 1
            elif t.value == ")":
                if depth == 0 and ")" in stops:
                    return
                depth -= 1
            elif depth == 0 and t.value in stops:
                return
        p.next()


def _column_def(p):
    name = p.ident()
    ctype = parse_type(p)
    col = {"name": name, "type": ctype, "nullable": True}
    # Column constraints / properties, tolerant: NOT NULL, NULL, DEFAULT x,
    # COLLATE 'x', COMMENT 'x', PRIMARY KEY, UNIQUE, AUTOINCREMENT ...
    while not (p.at_op(",") or p.at_op(")") or p.at_end()):
        if p.accept_kw("NOT", "NULL"):
            col["nullable"] = False
        elif p.accept_kw("NULL"):
            col["nullable"] = True
        elif p.accept_kw("DEFAULT"):
            t = p.next()
            col["default"] = t.value if t.kind in ("STRING", "NUMBER") else None
            _skip_balanced_until(p, (",", ")"))
        elif p.accept_kw("COMMENT"):
            p.accept_op("=")
            col["comment"] = p.string()
        elif p.at_kw("AS"):
            return col  # external table column expression, handled by caller
        elif p.accept_kw("PRIMARY", "KEY"):
            # "A PRIMARY KEY constraint implies that the column is both NOT NULL and
            # UNIQUE"; only NOT NULL is enforced on standard tables
            # (https://docs.snowflake.com/en/sql-reference/constraints-overview).
            col["primary_key"] = True
            col["nullable"] = False
        else:
            p.next()
            if p.at_op("("):
                p.next()
                _skip_balanced_until(p, (")",))
                p.expect_op(")")
    return col


def _create_table(p, or_replace):
    if_not = p.accept_kw("IF", "NOT", "EXISTS")
    name = p.qname()
    if p.at_kw("AS") or p.at_kw("LIKE") or p.at_kw("CLONE") or p.at_kw("USING"):
        raise SfError("SQL compilation error:\nCREATE TABLE %s is not supported by the emulator."
                      % p.tok.value.upper(), "001003", "42000")
    p.expect_op("(")
    cols = []
    pkey = []
    while True:
        if p.at_kw("PRIMARY", "UNIQUE", "FOREIGN", "CONSTRAINT"):
            # out-of-line constraint: [ CONSTRAINT <name> ] PRIMARY KEY ( <col> [ , ... ] ) ...
            # (https://docs.snowflake.com/en/sql-reference/sql/create-table-constraint)
            if p.accept_kw("CONSTRAINT"):
                p.ident()
            if p.accept_kw("PRIMARY", "KEY"):
                pkey.extend(paren_list(p, p.ident))
            _skip_balanced_until(p, (",", ")"))
        else:
            cols.append(_column_def(p))
        if p.accept_op(")"):
            break
        p.expect_op(",")
    for name_ in pkey:
        col = next((c for c in cols if c["name"] == name_), None)
        if col is None:
            raise SfError("SQL compilation error:\ninvalid identifier '%s'" % name_,
                          "000904", "42000")
        col["primary_key"] = True
        col["nullable"] = False
    # Trailing table properties (COMMENT, CLUSTER BY, DATA_RETENTION_TIME_IN_DAYS, ...);
    # COPY GRANTS keeps the grants of the table it replaces.
    copy_grants = False
    while not p.at_end():
        if p.accept_kw("COPY", "GRANTS"):
            copy_grants = True
            continue
        p.next()
    _check_dup_columns(cols)
    return {"kind": "create_table", "name": name, "or_replace": or_replace,
            "if_not_exists": if_not, "columns": cols, "copy_grants": copy_grants}


def paren_list(p, item):
    """( <item> [ , ... ] ) -> [item(), ...]"""
    p.expect_op("(")
    out = []
    while True:
        out.append(item())
        if p.accept_op(")"):
            return out
        p.expect_op(",")


def _check_dup_columns(cols):
    seen = set()
    for c in cols:
        if c["name"] in seen:
            raise SfError("SQL compilation error:\nduplicate column name '%s'" % c["name"],
                          "002025", "42S21")
        seen.add(c["name"])


def _balanced_text(p):
    """p at '('; returns the source text inside the balanced parentheses."""
    open_tok = p.next()
    depth = 1
    start = open_tok.pos + 1
    while True:
        t = p.next()
        if t.kind == "EOF":
            raise p.error("')'")
        if t.kind == "OP" and t.value == "(":
            depth += 1
        elif t.kind == "OP" and t.value == ")":
            depth -= 1
            if depth == 0:
                return p.sql[start:t.pos].strip()


def _expr_text(p):
    """The source text of a column expression: `( ... )` or up to a top-level , or )."""
    if p.at_op("("):
        return _balanced_text(p)
    start = p.tok.pos
    _skip_balanced_until(p, (",", ")"))
    return p.sql[start:p.tok.pos].strip()


def _create_external_table(p, or_replace):
    if_not = p.accept_kw("IF", "NOT", "EXISTS")
    name = p.qname()
    cols = []
    if p.at_op("("):
        p.next()
        while True:
            col = _column_def(p)
            if p.accept_kw("AS"):
                col["expr"] = _expr_text(p)
            while not (p.at_op(",") or p.at_op(")") or p.at_end()):
                p.next()
            cols.append(col)
            if p.accept_op(")"):
                break
            p.expect_op(",")
    _check_dup_columns(cols)
    partition_by = []
    props = {}
    location = None
    while not p.at_end():
        if p.accept_kw("PARTITION", "BY"):
            partition_by.extend(paren_list(p, p.ident))
            continue
        if p.accept_kw("WITH"):
            continue
        if p.accept_kw("COPY", "GRANTS"):
            props["COPY_GRANTS"] = True
            continue
        key = p.ident()
        p.expect_op("=")
        if key == "LOCATION":
            t = p.next()
            if t.kind != "STAGE":
                raise p.error("@stage")
            location = parse_stage_ref(t.value)
            continue
        props[key] = parse_option_value(p)
    if location is None:
        raise SfError("SQL compilation error:\nLOCATION is required for an external table.",
                      "001003", "42000")
    for pc in partition_by:
        if pc not in [c["name"] for c in cols]:
            raise SfError("SQL compilation error:\nPartition column %s is not a column of "
                          "the external table." % pc, "001003", "42000")
    return {"kind": "create_external_table", "name": name, "or_replace": or_replace,
            "if_not_exists": if_not, "columns": cols, "partition_by": partition_by,
            "location": location, "properties": props}


def parse_stage_ref(text):
    """'db.s.stage/path/x' -> {"name": (..), "path": "path/x"}"""
    if text.startswith("~") or text.startswith("%"):
        raise SfError("Internal stages (@~, @%%table) are not supported by the emulator.",
                      "002040", "0A000")
    i = 0
    inq = False
    while i < len(text):
        c = text[i]
        if c == '"':
            inq = not inq
        elif c == "/" and not inq:
            break
        i += 1
    name = parse_qname_text(text[:i])
    path = text[i + 1:] if i < len(text) else ""
    return {"name": name, "path": path}


# ---------------------------------------------------------------------------
# DROP / ALTER

_DROP_KINDS = [(("EXTERNAL", "TABLE"), "external_table"), (("TABLE",), "table"),
               (("STAGE",), "stage"), (("FILE", "FORMAT"), "file_format"),
               (("PIPE",), "pipe"), (("DATABASE",), "database"), (("SCHEMA",), "schema")]


def _drop(p):
    p.expect_kw("DROP")
    for words, kind in ((("ROLE",), "ROLE"), (("USER",), "USER"), (("WAREHOUSE",), "WAREHOUSE"),
                        (("STORAGE", "INTEGRATION"), "INTEGRATION"),
                        (("INTEGRATION",), "INTEGRATION")):
        if p.accept_kw(*words):
            if_exists = p.accept_kw("IF", "EXISTS")
            name = p.ident()
            p.expect_end()
            return {"kind": "account", "op": "drop", "object": kind, "name": name,
                    "if_exists": if_exists}
    for words, kind in _DROP_KINDS:
        if p.accept_kw(*words):
            if_exists = p.accept_kw("IF", "EXISTS")
            name = p.qname()
            p.accept_kw("CASCADE") or p.accept_kw("RESTRICT")
            p.expect_end()
            return {"kind": "drop", "object": kind, "name": name, "if_exists": if_exists}
    raise p.error("TABLE, EXTERNAL TABLE, STAGE, FILE FORMAT or PIPE")


def _alter(p):
    p.expect_kw("ALTER")
    if p.accept_kw("USER"):
        if_exists = p.accept_kw("IF", "EXISTS")
        name = p.ident()
        sets, unsets = {}, []
        if p.accept_kw("SET"):
            sets = parse_option_list(p, stop_ops=())
        elif p.accept_kw("UNSET"):
            while True:
                unsets.append(p.ident())
                if not p.accept_op(","):
                    break
        else:
            raise p.error("SET or UNSET")
        p.expect_end()
        return {"kind": "account", "op": "alter_user", "name": name, "if_exists": if_exists,
                "set": sets, "unset": unsets}
    if p.accept_kw("TABLE"):
        if_exists = p.accept_kw("IF", "EXISTS")
        name = p.qname()
        if p.accept_kw("ADD"):
            p.accept_kw("COLUMN")
            adds = []
            while True:
                # External tables: ADD COLUMN ( <col_name> <col_type> AS <expr> ) [, ...]
                # (https://docs.snowflake.com/en/sql-reference/sql/alter-external-table,
                # usage notes); the parentheses are optional here.
                paren = p.accept_op("(")
                if_not = p.accept_kw("IF", "NOT", "EXISTS")
                col = _column_def(p)
                if p.accept_kw("AS"):
                    col["expr"] = _expr_text(p)
                    while not (p.at_op(",") or p.at_op(")") or p.at_end()):
                        p.next()
                col["if_not_exists"] = if_not
                if paren:
                    p.expect_op(")")
                adds.append(col)
                if not p.accept_op(","):
                    break
                p.accept_kw("COLUMN")
            p.expect_end()
            return {"kind": "alter_table_add", "name": name, "if_exists": if_exists,
                    "columns": adds}
        if p.accept_kw("DROP"):
            # ALTER TABLE <name> DROP [ COLUMN ] [ IF EXISTS ] <col_name> [, ...]
            # (https://docs.snowflake.com/en/sql-reference/sql/alter-table)
            p.accept_kw("COLUMN")
            col_if_exists = p.accept_kw("IF", "EXISTS")
            drops = [p.ident()]
            while p.accept_op(","):
                p.accept_kw("COLUMN")
                drops.append(p.ident())
            p.expect_end()
            return {"kind": "alter_table_drop_column", "name": name, "if_exists": if_exists,
                    "column_if_exists": col_if_exists, "columns": drops}
        raise SfError("SQL compilation error:\nOnly ALTER TABLE ... ADD / DROP COLUMN is "
                      "supported by the emulator.", "001003", "42000")
    if p.accept_kw("PIPE") or p.accept_kw("STAGE") or p.accept_kw("FILE", "FORMAT"):
        # Recorded only.
        if_exists = p.accept_kw("IF", "EXISTS")
        name = p.qname()
        while not p.at_end():
            p.next()
        return {"kind": "alter_other", "name": name, "if_exists": if_exists}
    raise p.error("TABLE")


# ---------------------------------------------------------------------------
# COPY INTO <table>

COPY_OPTIONS = {"ON_ERROR", "SIZE_LIMIT", "PURGE", "RETURN_FAILED_ONLY", "MATCH_BY_COLUMN_NAME",
                "ENFORCE_LENGTH", "TRUNCATECOLUMNS", "FORCE", "LOAD_UNCERTAIN_FILES",
                "INCLUDE_METADATA", "LOAD_MODE", "VALIDATION_MODE", "FILES", "PATTERN",
                "FILE_FORMAT", "CREDENTIALS", "STORAGE_INTEGRATION", "ENCRYPTION"}


def _copy(p, in_pipe=False):
    p.expect_kw("COPY")
    p.expect_kw("INTO")
    if p.tok.kind in ("STAGE", "STRING"):
        raise SfError("COPY INTO <location> (unloading) is not supported by the emulator.",
                      "002040", "0A000")
    table = p.qname()
    cols = None
    if p.at_op("("):
        p.next()
        cols = []
        while True:
            cols.append(p.ident())
            if p.accept_op(")"):
                break
            p.expect_op(",")
    p.expect_kw("FROM")
    transform = None
    if p.accept_kw("TABLE"):    # Snowpipe Streaming (sfemu/streaming_pipe.py)
        source = parse_streaming_source(p, in_pipe)
    elif p.tok.kind == "STAGE":
        source = parse_stage_ref(p.next().value)
    elif p.tok.kind == "STRING":
        source = {"url": p.next().value, "path": ""}
    elif p.at_op("("):
        p.next()
        if not p.at_kw("SELECT"):
            raise p.error("SELECT")
        p.next()
        items = []
        while True:
            e = parse_expr(p)
            alias = None
            if p.accept_kw("AS"):
                alias = p.ident()
            items.append({"expr": e, "alias": alias})
            if not p.accept_op(","):
                break
        p.expect_kw("FROM")
        t = p.next()
        if t.is_kw("TABLE"):
            source = parse_streaming_source(p, in_pipe)
        elif t.kind == "STAGE":
            source = parse_stage_ref(t.value)
        elif t.kind == "STRING":
            source = {"url": t.value, "path": ""}
        else:
            raise p.error("@stage")
        alias = None
        if p.tok.kind == "IDENT" and not p.tok.is_kw("WHERE"):
            p.accept_kw("AS")
            alias = p.ident()
        if p.at_kw("WHERE"):
            raise SfError("SQL compilation error:\nWHERE is not supported in a COPY "
                          "transformation.", "001003", "42000")
        p.expect_op(")")
        transform = {"items": items, "alias": alias}
    else:
        raise p.error("@stage or (SELECT ...)")
    opts = parse_option_list(p, stop_ops=())
    p.expect_end()
    for k in opts:
        if k not in COPY_OPTIONS and not (source.get("streaming") and k in STREAMING_OPTIONS):
            raise SfError("SQL compilation error:\ninvalid parameter '%s'" % k, "001008", "22023")
    files = opts.get("FILES")
    if files is not None:
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, list):
            raise SfError("SQL compilation error:\nFILES must be a list of strings.",
                          "001003", "42000")
        if len(files) > 1000:
            raise SfError("SQL compilation error:\nMaximum number of files allowed in the FILES "
                          "clause is 1000 (%d found)." % len(files), "001003", "42000")
        if "PATTERN" in opts:
            raise SfError("SQL compilation error:\nFILES and PATTERN cannot be used together.",
                          "001003", "42000")
    return {"kind": "copy", "table": table, "columns": cols, "source": source,
            "transform": transform, "files": files, "options": opts}


# ---------------------------------------------------------------------------
# Expressions
#
# Nodes: ("lit", value, btype) value is str | Decimal | bool | None
#        ("col", parts) ("pos", n) ("star",) ("func", NAME, args)
#        ("path", expr, [keys]) ("cast", expr, typedict)
#        ("bin", op, l, r) ("not", e) ("neg", e) ("isnull", e, negated)
#        ("in", e, [items], negated) ("like", e, pattern, negated)
#        ("between", e, lo, hi, negated)
#        ("subquery", select) ("in_query", e, select, negated) ("exists", select)
#        ("window", NAME, args, partition, order) ("case", operand, whens, else)

def parse_expr(p):
    return _or(p)


def _or(p):
    left = _and(p)
    while p.accept_kw("OR"):
        left = ("bin", "OR", left, _and(p))
    return left


def _and(p):
    left = _not(p)
    while p.accept_kw("AND"):
        left = ("bin", "AND", left, _not(p))
    return left


def _not(p):
    if p.accept_kw("NOT"):
        return ("not", _not(p))
    return _cmp(p)


def _cmp(p):
    left = _add(p)
    while True:
        if p.at_op("=", "<>", "!=", "<", "<=", ">", ">="):
            op = p.next().value
            op = "<>" if op == "!=" else op
            left = ("bin", op, left, _add(p))
            continue
        if p.at_kw("IS"):
            p.next()
            neg = p.accept_kw("NOT")
            p.expect_kw("NULL")
            left = ("isnull", left, neg)
            continue
        save = p.i
        neg = p.accept_kw("NOT")
        if p.accept_kw("IN"):
            p.expect_op("(")
            if p.at_kw("SELECT"):
                sub = parse_select(p)
                p.expect_op(")")
                left = ("in_query", left, sub, neg)
                continue
            items = [parse_expr(p)]
            while p.accept_op(","):
                items.append(parse_expr(p))
            p.expect_op(")")
            left = ("in", left, items, neg)
            continue
        if p.accept_kw("LIKE") or p.accept_kw("ILIKE"):
            ci = p.toks[p.i - 1].value.upper() == "ILIKE"
            left = ("like", left, _add(p), neg, ci)
            continue
        if p.accept_kw("BETWEEN"):
            lo = _add(p)
            p.expect_kw("AND")
            hi = _add(p)
            left = ("between", left, lo, hi, neg)
            continue
        p.i = save
        return left


def _add(p):
    left = _mul(p)
    while p.at_op("+", "-", "||"):
        op = p.next().value
        left = ("bin", op, left, _mul(p))
    return left


def _mul(p):
    left = _unary(p)
    while p.at_op("*", "/", "%"):
        op = p.next().value
        left = ("bin", op, left, _unary(p))
    return left


def _unary(p):
    if p.accept_op("-"):
        return ("neg", _unary(p))
    if p.accept_op("+"):
        return _unary(p)
    return _postfix(p)


def _postfix(p):
    e = _primary(p)
    while True:
        if p.at_op(":") and e[0] in ("pos", "col", "func", "path"):
            p.next()
            keys = [_path_key(p)]
            while True:
                if p.accept_op("."):
                    keys.append(_path_key(p))
                elif p.at_op("["):
                    p.next()
                    t = p.next()
                    keys.append(int(t.value) if t.kind == "NUMBER" else t.value)
                    p.expect_op("]")
                else:
                    break
            e = ("path", e, keys)
            continue
        if p.at_op("["):
            p.next()
            t = p.next()
            p.expect_op("]")
            e = ("path", e, [int(t.value) if t.kind == "NUMBER" else t.value])
            continue
        if p.accept_op("::"):
            e = ("cast", e, parse_type(p))
            continue
        return e


def _call(p):
    """name ( [DISTINCT] args )"""
    t = p.next()
    name = t.value.upper() if not t.quoted else t.value
    p.next()
    args = []
    if p.accept_op(")"):
        return ("func", name, args)
    if p.accept_kw("DISTINCT"):
        name += " DISTINCT"
    while True:
        args.append(parse_expr(p))
        if p.accept_op(")"):
            break
        p.expect_op(",")
    return ("func", name, args)


def _window(p, func):
    """<function> OVER ( [ PARTITION BY <expr> [, ...] ] [ ORDER BY ... ] )
    (https://docs.snowflake.com/en/sql-reference/functions-window-syntax).
    Node: ("window", NAME, args, [partition exprs], [order items])."""
    p.expect_kw("OVER")
    p.expect_op("(")
    partition = []
    if p.accept_kw("PARTITION", "BY"):
        partition.append(parse_expr(p))
        while p.accept_op(","):
            partition.append(parse_expr(p))
    order = parse_order_by(p) if p.accept_kw("ORDER", "BY") else []
    if p.at_kw("ROWS", "RANGE"):
        raise SfError("SQL compilation error:\nwindow frames are not supported by the emulator.",
                      "001003", "42000")
    p.expect_op(")")
    return ("window", func[1], func[2], partition, order)


def _case(p):
    """CASE [ <expr> ] WHEN ... THEN ... [ ... ] [ ELSE ... ] END
    (https://docs.snowflake.com/en/sql-reference/functions/case).
    Node: ("case", operand or None, [(when, then)], else or None)."""
    p.next()
    operand = None if p.at_kw("WHEN") else parse_expr(p)
    whens = []
    while p.accept_kw("WHEN"):
        w = parse_expr(p)
        p.expect_kw("THEN")
        whens.append((w, parse_expr(p)))
    if not whens:
        raise p.error("WHEN")
    other = parse_expr(p) if p.accept_kw("ELSE") else None
    p.expect_kw("END")
    return ("case", operand, whens, other)


def _path_key(p):
    t = p.next()
    if t.kind == "IDENT":
        return t.value  # path keys are case-sensitive; unquoted keep their spelling
    if t.kind == "STRING":
        return t.value
    raise p.error("path element")


def _primary(p):
    t = p.tok
    if t.kind == "NUMBER":
        p.next()
        if t.btype == "REAL":
            return ("lit", float(t.value), t.btype)
        return ("lit", Decimal(t.value), t.btype)
    if t.kind == "STRING":
        p.next()
        return ("lit", t.value, t.btype)
    if t.kind == "POS":
        p.next()
        return ("pos", t.value)
    if t.kind == "OP" and t.value == "*":
        p.next()
        return ("star",)
    if t.kind == "OP" and t.value == "(":
        p.next()
        if p.at_kw("SELECT"):
            # a scalar subquery (uncorrelated in the emulator)
            sub = parse_select(p)
            p.expect_op(")")
            return ("subquery", sub)
        e = parse_expr(p)
        p.expect_op(")")
        return e
    if t.kind == "IDENT" and t.is_kw("EXISTS") and p.peek().kind == "OP" and \
            p.peek().value == "(" and p.peek(2).is_kw("SELECT"):
        p.next()
        p.next()
        sub = parse_select(p)
        p.expect_op(")")
        return ("exists", sub)
    if t.kind == "IDENT":
        if t.btype is not None:  # NULL from a bind
            p.next()
            return ("lit", None, t.btype)
        if not t.quoted:
            up = t.value.upper()
            if up == "NULL":
                p.next()
                return ("lit", None, None)
            if up in ("TRUE", "FALSE"):
                p.next()
                return ("lit", up == "TRUE", None)
            if up in ("CURRENT_DATE", "CURRENT_TIMESTAMP", "CURRENT_TIME") and not \
                    (p.peek().kind == "OP" and p.peek().value == "("):
                p.next()
                return ("func", up, [])
            if up.startswith("METADATA$"):
                p.next()
                return ("func", up, [])
        if not t.quoted and t.value.upper() == "CASE":
            return _case(p)
        if p.peek().kind == "OP" and p.peek().value == "(":
            f = _call(p)
            if p.at_kw("OVER"):
                return _window(p, f)
            return f
        parts = [p.ident()]
        while p.at_op("."):
            nt = p.peek()
            if nt.kind == "POS":
                p.next()
                p.next()
                return ("pos", nt.value)
            if nt.kind == "OP" and nt.value == "*":
                p.next()
                p.next()
                return ("star",)
            p.next()
            parts.append(p.ident())
        return ("col", tuple(parts))
    raise p.error("expression")


# ---------------------------------------------------------------------------
# SELECT

def parse_select(p):
    p.expect_kw("SELECT")
    distinct = p.accept_kw("DISTINCT")
    items = []
    while True:
        start = p.tok.pos
        e = parse_expr(p)
        end = p.tok.pos
        alias = None
        if p.accept_kw("AS"):
            alias = p.ident()
        elif p.tok.kind == "IDENT" and not p.at_kw("FROM", "WHERE", "ORDER", "LIMIT", "GROUP",
                                                       "UNION", "HAVING", "OFFSET", "FETCH",
                                                       "QUALIFY"):
            alias = p.ident()
        items.append({"expr": e, "alias": alias, "text": p.sql[start:end].strip()})
        if not p.accept_op(","):
            break
    table = None
    talias = None
    source = None
    if p.accept_kw("FROM"):
        source = parse_from_item(p)
        if source["kind"] == "table":
            table, talias = source["name"], source["alias"]
    where = None
    if p.accept_kw("WHERE"):
        where = parse_expr(p)
    group = None
    if p.accept_kw("GROUP", "BY"):
        group = [parse_expr(p)]
        while p.accept_op(","):
            group.append(parse_expr(p))
    # QUALIFY filters on window functions, after they are computed
    # (https://docs.snowflake.com/en/sql-reference/constructs/qualify)
    qualify = None
    if p.accept_kw("QUALIFY"):
        qualify = parse_expr(p)
    order = parse_order_by(p) if p.accept_kw("ORDER", "BY") else []
    limit = None
    offset = 0
    if p.accept_kw("LIMIT"):
        limit = _int_lit(p)
        if p.accept_kw("OFFSET"):
            offset = _int_lit(p)
    elif p.accept_kw("OFFSET"):
        offset = _int_lit(p)
        p.accept_kw("ROWS") or p.accept_kw("ROW")
    if p.accept_kw("FETCH"):
        p.accept_kw("FIRST") or p.accept_kw("NEXT")
        limit = _int_lit(p)
        p.accept_kw("ROWS") or p.accept_kw("ROW")
        p.accept_kw("ONLY")
    return {"kind": "select", "distinct": distinct, "items": items, "table": table,
            "table_alias": talias, "source": source, "where": where, "group": group,
            "qualify": qualify, "order": order, "limit": limit, "offset": offset}


def parse_order_by(p):
    """ORDER BY items (after the ORDER BY keywords)."""
    order = []
    while True:
        e = parse_expr(p)
        desc = False
        if p.accept_kw("DESC"):
            desc = True
        else:
            p.accept_kw("ASC")
        nulls_first = None
        if p.accept_kw("NULLS", "FIRST"):
            nulls_first = True
        elif p.accept_kw("NULLS", "LAST"):
            nulls_first = False
        order.append({"expr": e, "desc": desc, "nulls_first": nulls_first})
        if not p.accept_op(","):
            return order


_CLAUSE_WORDS = ("WHERE", "ORDER", "LIMIT", "GROUP", "OFFSET", "QUALIFY", "HAVING", "UNION",
                 "FETCH", "ON", "USING", "WHEN", "SET", "JOIN", "INNER", "LEFT", "RIGHT",
                 "FULL", "CROSS", "NATURAL", "MINUS", "EXCEPT", "INTERSECT")


def parse_alias(p):
    """[ AS ] alias, if one follows (not a clause keyword)."""
    if p.accept_kw("AS"):
        return p.ident()
    if p.tok.kind == "IDENT" and p.tok.btype is None and not p.at_kw(*_CLAUSE_WORDS):
        return p.ident()
    return None


def parse_from_item(p):
    """One FROM item: a table, a subquery, or staged files.

    Staged files (https://docs.snowflake.com/en/user-guide/querying-stage):
      @[namespace.]stage[/path] [ ( FILE_FORMAT => '<namespace>.<format>',
                                    PATTERN => '<regex>' ) ] [ alias ]
    """
    if p.tok.kind == "STAGE":
        ref = parse_stage_ref(p.next().value)
        opts = {}
        if p.at_op("(") and p.peek().kind == "IDENT" and p.peek(2).kind == "OP" and \
                p.peek(2).value == "=>":
            p.next()
            while True:
                key = p.ident()
                p.expect_op("=>")
                t = p.next()
                if key == "FILE_FORMAT" and t.kind == "IDENT":
                    # an unquoted identifier names a format in the current namespace
                    parts = [t.value if t.quoted else t.value.upper()]
                    while p.accept_op("."):
                        parts.append(p.ident())
                    opts[key] = tuple(parts)
                elif t.kind == "STRING":
                    opts[key] = parse_qname_text(t.value) if key == "FILE_FORMAT" else t.value
                else:
                    raise p.error("string literal")
                if key not in ("FILE_FORMAT", "PATTERN"):
                    raise SfError("SQL compilation error:\ninvalid parameter '%s'" % key,
                                  "001008", "22023")
                if p.accept_op(")"):
                    break
                p.expect_op(",")
        return {"kind": "stage", "stage": ref, "options": opts, "alias": parse_alias(p)}
    if p.at_op("("):
        p.next()
        if not p.at_kw("SELECT"):
            raise p.error("SELECT")
        sub = parse_select(p)
        p.expect_op(")")
        return {"kind": "subquery", "select": sub, "alias": parse_alias(p)}
    name = p.qname()
    return {"kind": "table", "name": name, "alias": parse_alias(p)}


def _int_lit(p):
    t = p.next()
    if t.kind != "NUMBER":
        raise p.error("integer")
    return int(Decimal(t.value))


def parse_sql_expr_text(text):
    """Parse an expression from text (used for stored external table columns)."""
    toks = tokenize(text)
    p = Parser(toks, text)
    e = parse_expr(p)
    p.expect_end()
    return e


# ---------------------------------------------------------------------------
# GRANT / REVOKE (sfemu/account.py)

_GRANT_OBJECTS = [(("ACCOUNT",), "ACCOUNT"), (("WAREHOUSE",), "WAREHOUSE"),
                  (("DATABASE",), "DATABASE"), (("SCHEMA",), "SCHEMA"),
                  (("STORAGE", "INTEGRATION"), "INTEGRATION"), (("INTEGRATION",), "INTEGRATION"),
                  (("EXTERNAL", "TABLE"), "EXTERNAL_TABLE"), (("TABLE",), "TABLE"),
                  (("STAGE",), "STAGE"), (("FILE", "FORMAT"), "FILE_FORMAT"), (("PIPE",), "PIPE")]


def _grant(p, grant):
    p.next()
    to = "TO" if grant else "FROM"
    if p.at_kw("ROLE") and p.peek().kind == "IDENT" and not p.peek().is_kw("ON"):
        p.next()
        role = p.ident()
        p.expect_kw(to)
        if p.accept_kw("USER"):
            gt = "USER"
        else:
            p.expect_kw("ROLE")
            gt = "ROLE"
        grantee = p.ident()
        p.expect_end()
        return {"kind": "account", "op": "grant" if grant else "revoke", "role_grant": True,
                "role": role, "grantee_type": gt, "grantee": grantee}
    privs = []
    while True:
        words = []
        while not p.at_end() and not p.at_op(",") and not p.at_kw("ON"):
            words.append(p.ident())
        if not words:
            raise p.error("privilege")
        priv = " ".join(words)
        privs.append("ALL" if priv in ("ALL", "ALL PRIVILEGES") else priv)
        if not p.accept_op(","):
            break
    p.expect_kw("ON")
    for words, otype in _GRANT_OBJECTS:
        if p.accept_kw(*words):
            break
    else:
        raise p.error("ACCOUNT, WAREHOUSE, DATABASE, SCHEMA, INTEGRATION, TABLE, STAGE, "
                      "FILE FORMAT or PIPE")
    obj = () if otype == "ACCOUNT" else p.qname()
    p.expect_kw(to)
    p.expect_kw("ROLE")
    grantee = p.ident()
    if grant:
        p.accept_kw("WITH", "GRANT", "OPTION")
    else:
        p.accept_kw("CASCADE") or p.accept_kw("RESTRICT")
    p.expect_end()
    return {"kind": "account", "op": "grant" if grant else "revoke", "role_grant": False,
            "privileges": privs, "object_type": otype, "object": obj, "grantee": grantee}
