"""Parsers for DML, transactions, session statements, SHOW and ALTER EXTERNAL TABLE.

statement_parser(p) returns the parser for the statement at p (or None when
sfemu/statements.py handles it).  Each parser returns the dict the engine
runs; "kind" selects the handler registered in engine.HANDLERS.

Syntax, from Snowflake's SQL reference:
  MERGE INTO <target> [ [ AS ] <alias> ] USING <source> [ [ AS ] <alias> ] ON <join_expr>
    { WHEN MATCHED [ AND <pred> ] THEN { UPDATE { SET <col> = <expr> [ , ... ] | ALL BY NAME }
                                        | DELETE }
    | WHEN NOT MATCHED [ AND <pred> ] THEN INSERT { [ ( <col> [ , ... ] ) ] VALUES ( <expr> [ , ... ] )
                                                  | ALL BY NAME } } [ ... ]
      https://docs.snowflake.com/en/sql-reference/sql/merge
  INSERT [ OVERWRITE ] INTO <target> [ ( <col> [ , ... ] ) ] { VALUES ( ... ) [ , ... ] | <query> }
      https://docs.snowflake.com/en/sql-reference/sql/insert
  UPDATE <target> [ [ AS ] <alias> ] SET <col> = <value> [ , ... ] [ FROM <source> ] [ WHERE <cond> ]
      https://docs.snowflake.com/en/sql-reference/sql/update
  DELETE FROM <target> [ [ AS ] <alias> ] [ USING <source> [ , ... ] ] [ WHERE <cond> ]
      https://docs.snowflake.com/en/sql-reference/sql/delete
  BEGIN [ { WORK | TRANSACTION } ] [ NAME <name> ] | START TRANSACTION [ NAME <name> ]
  COMMIT [ WORK ] | ROLLBACK [ WORK ]
      https://docs.snowflake.com/en/sql-reference/sql/begin
  USE [ DATABASE | SCHEMA | WAREHOUSE ] <name>; ALTER SESSION SET <param> = <value> [ ... ]
  | ALTER SESSION UNSET <param> [ , ... ]
      https://docs.snowflake.com/en/sql-reference/sql/alter-session
  SHOW [ TERSE ] EXTERNAL TABLES [ LIKE '<pattern>' ] [ IN { ACCOUNT | DATABASE [ <db> ]
       | SCHEMA [ <schema> ] | <schema> } ] [ STARTS WITH '<s>' ] [ LIMIT <n> [ FROM '<s>' ] ]
      https://docs.snowflake.com/en/sql-reference/sql/show-external-tables
  SHOW GRANTS ON { ACCOUNT | <object_type> <object_name> } [ LIMIT <n> ]
      https://docs.snowflake.com/en/sql-reference/sql/show-grants
  ALTER EXTERNAL TABLE [ IF EXISTS ] <name> { REFRESH [ '<relative_path>' ]
       | ADD FILES ( '<path>' [ , ... ] ) | REMOVE FILES ( '<path>' [ , ... ] )
       | SET AUTO_REFRESH = { TRUE | FALSE }
       | [ IF EXISTS ] ADD PARTITION ( <col> = '<string>' [ , ... ] ) LOCATION '<path>'
       | [ IF EXISTS ] DROP PARTITION LOCATION '<path>' }
      https://docs.snowflake.com/en/sql-reference/sql/alter-external-table
"""

from .errors import SfError
from .fileformat import parse_option_list
from .statements import (paren_list, parse_alias, parse_expr, parse_from_item, parse_select,
                         _GRANT_OBJECTS, _int_lit)


def statement_parser(p):
    t = p.tok
    kw = t.value.upper()
    nxt = p.peek()
    if kw == "MERGE":
        return parse_merge
    if kw == "INSERT":
        return parse_insert
    if kw == "UPDATE":
        return parse_update
    if kw == "DELETE":
        return parse_delete
    if kw in ("BEGIN", "COMMIT", "ROLLBACK") or (kw == "START" and nxt.is_kw("TRANSACTION")):
        return parse_transaction
    if kw == "USE":
        return parse_use
    if kw == "ALTER" and nxt.is_kw("SESSION"):
        return parse_alter_session
    if kw == "ALTER" and nxt.is_kw("EXTERNAL"):
        return parse_alter_external_table
    if kw == "SHOW":
        return parse_show
    return None


# ---------------------------------------------------------------------------
# DML

def _set_list(p):
    """<col> = <expr> [ , ... ]; a column may be qualified (MERGE examples set
    target.col); the last part names the column."""
    sets = []
    while True:
        parts = [p.ident()]
        while p.accept_op("."):
            parts.append(p.ident())
        p.expect_op("=")
        sets.append({"column": parts[-1], "qualifier": tuple(parts[:-1]), "expr": _value(p)})
        if not p.accept_op(","):
            return sets


def _value(p):
    """An expression, or DEFAULT (the column default; NULL here)."""
    if p.at_kw("DEFAULT"):
        p.next()
        return ("default",)
    return parse_expr(p)


def _column_list(p):
    return paren_list(p, p.ident)


def _values(p):
    return paren_list(p, lambda: _value(p))


def parse_merge(p):
    p.expect_kw("MERGE")
    p.expect_kw("INTO")
    target = p.qname()
    talias = parse_alias(p)
    p.expect_kw("USING")
    source = parse_from_item(p)
    if source["kind"] == "stage":
        raise SfError("SQL compilation error:\nMERGE ... USING takes a table or a subquery; query "
                      "staged files in a subquery.", "001003", "42000")
    p.expect_kw("ON")
    on = parse_expr(p)
    clauses = []
    while p.accept_kw("WHEN"):
        matched = not p.accept_kw("NOT")
        p.expect_kw("MATCHED")
        cond = parse_expr(p) if p.accept_kw("AND") else None
        p.expect_kw("THEN")
        c = {"matched": matched, "cond": cond}
        if matched:
            if p.accept_kw("DELETE"):
                c["op"] = "delete"
            else:
                p.expect_kw("UPDATE")
                if p.accept_kw("ALL", "BY", "NAME"):
                    c["op"], c["by_name"] = "update", True
                else:
                    p.expect_kw("SET")
                    c["op"], c["by_name"], c["sets"] = "update", False, _set_list(p)
        else:
            p.expect_kw("INSERT")
            c["op"] = "insert"
            if p.accept_kw("ALL", "BY", "NAME"):
                c["by_name"] = True
            else:
                c["by_name"] = False
                c["columns"] = _column_list(p) if p.at_op("(") else None
                p.expect_kw("VALUES")
                c["values"] = _values(p)
                if c["columns"] is not None and len(c["columns"]) != len(c["values"]):
                    raise SfError("SQL compilation error:\nInsert value list does not match "
                                  "column list expecting %d but got %d"
                                  % (len(c["columns"]), len(c["values"])), "002020", "21S01")
        clauses.append(c)
    if not clauses:
        raise p.error("WHEN")
    p.expect_end()
    # "Any matching or not-matching clause that omits the AND subclause (default behavior)
    # must be the last of its clause type in the statement ... Doing so results in an
    # unreachable case, which returns an error." (MERGE, Usage notes)
    for kind in (True, False):
        same = [c for c in clauses if c["matched"] == kind]
        for c in same[:-1]:
            if c["cond"] is None:
                raise SfError("SQL compilation error:\nUnreachable WHEN %sMATCHED clause: a "
                              "clause without AND must be the last of its type."
                              % ("" if kind else "NOT "), "001003", "42000")
    return {"kind": "merge", "target": target, "target_alias": talias, "source": source,
            "on": on, "clauses": clauses}


def parse_insert(p):
    p.expect_kw("INSERT")
    overwrite = p.accept_kw("OVERWRITE")
    if p.at_kw("ALL", "FIRST"):
        raise SfError("SQL compilation error:\nMulti-table INSERT is not supported by the "
                      "emulator.", "001003", "42000")
    p.expect_kw("INTO")
    target = p.qname()
    cols = _column_list(p) if p.at_op("(") and not p.peek().is_kw("SELECT") else None
    rows = None
    query = None
    if p.accept_kw("VALUES"):
        rows = [_values(p)]
        while p.accept_op(","):
            rows.append(_values(p))
    elif p.at_kw("SELECT"):
        query = parse_select(p)
    elif p.at_op("(") and p.peek().is_kw("SELECT"):
        p.next()
        query = parse_select(p)
        p.expect_op(")")
    else:
        raise p.error("VALUES or SELECT")
    p.expect_end()
    if rows is not None:
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise SfError("SQL compilation error:\nInsert value list does not match column "
                          "list: all VALUES rows must have the same number of values.",
                          "002020", "21S01")
    return {"kind": "insert", "target": target, "columns": cols, "rows": rows, "query": query,
            "overwrite": overwrite}


def parse_update(p):
    p.expect_kw("UPDATE")
    target = p.qname()
    talias = parse_alias(p)
    p.expect_kw("SET")
    sets = _set_list(p)
    for s in sets:
        if s["qualifier"]:
            # "Do not include the table name. For example, UPDATE t1 SET t1.col = 1 is
            # invalid." (UPDATE, Required parameters)
            raise SfError("SQL compilation error:\ninvalid identifier '%s'"
                          % ".".join(s["qualifier"] + (s["column"],)), "000904", "42000")
    st = {"kind": "update", "target": target, "target_alias": talias, "sets": sets}
    st.update(_source_and_where(p, "FROM"))
    return st


def _source_and_where(p, word):
    """[ FROM | USING <one source> ] [ WHERE <condition> ] <end>"""
    source = parse_from_item(p) if p.accept_kw(word) else None
    if p.at_op(","):
        raise SfError("SQL compilation error:\n... %s supports one source in the emulator."
                      % word, "001003", "42000")
    where = parse_expr(p) if p.accept_kw("WHERE") else None
    p.expect_end()
    return {"source": source, "where": where}


def parse_delete(p):
    p.expect_kw("DELETE")
    p.expect_kw("FROM")
    st = {"kind": "delete", "target": p.qname()}
    st["target_alias"] = parse_alias(p)
    st.update(_source_and_where(p, "USING"))
    return st


# ---------------------------------------------------------------------------
# Transactions and session statements (run only in multi-statement requests)

def parse_transaction(p):
    kw = p.next().value.upper()
    if kw == "START":
        p.expect_kw("TRANSACTION")
        op = "begin"
    elif kw == "BEGIN":
        p.accept_kw("WORK") or p.accept_kw("TRANSACTION")
        op = "begin"
    else:
        p.accept_kw("WORK")
        op = kw.lower()
    if op == "begin" and p.accept_kw("NAME"):
        p.ident()
    p.expect_end()
    return {"kind": "txn", "op": op}


def parse_use(p):
    p.expect_kw("USE")
    what = "SCHEMA"
    for w in ("DATABASE", "SCHEMA", "WAREHOUSE", "ROLE"):
        if p.accept_kw(w):
            what = w
            break
    name = p.qname()
    p.expect_end()
    return {"kind": "session", "op": "use", "what": what, "name": name}


def parse_alter_session(p):
    p.expect_kw("ALTER")
    p.expect_kw("SESSION")
    if p.accept_kw("SET"):
        opts = parse_option_list(p, stop_ops=())
        p.expect_end()
        return {"kind": "session", "op": "set", "parameters": opts}
    p.expect_kw("UNSET")
    names = [p.ident()]
    while p.accept_op(","):
        names.append(p.ident())
    p.expect_end()
    return {"kind": "session", "op": "unset", "names": names}


# ---------------------------------------------------------------------------
# SHOW

def parse_show(p):
    p.expect_kw("SHOW")
    terse = p.accept_kw("TERSE")
    if p.accept_kw("EXTERNAL", "TABLES"):
        st = {"kind": "show", "what": "external_tables", "terse": terse, "like": None,
              "scope": None, "in": None, "starts_with": None, "limit": None, "from": None}
        if p.accept_kw("LIKE"):
            st["like"] = p.string()
        if p.accept_kw("IN"):
            if p.accept_kw("ACCOUNT"):
                st["scope"] = "account"
            elif p.accept_kw("DATABASE"):
                st["scope"] = "database"
                if p.tok.kind == "IDENT" and not p.at_kw("STARTS", "LIMIT"):
                    st["in"] = p.qname()
            else:
                p.accept_kw("SCHEMA")
                st["scope"] = "schema"
                if p.tok.kind == "IDENT" and not p.at_kw("STARTS", "LIMIT"):
                    st["in"] = p.qname()
        if p.accept_kw("STARTS", "WITH"):
            st["starts_with"] = p.string()
        if p.accept_kw("LIMIT"):
            st["limit"] = _int_lit(p)
            if p.accept_kw("FROM"):
                st["from"] = p.string()
        p.expect_end()
        return st
    if not terse and p.accept_kw("GRANTS"):
        p.expect_kw("ON")
        for words, otype in _GRANT_OBJECTS:
            if p.accept_kw(*words):
                break
        else:
            raise p.error("ACCOUNT or an object type")
        obj = () if otype == "ACCOUNT" else p.qname()
        limit = _int_lit(p) if p.accept_kw("LIMIT") else None
        p.expect_end()
        return {"kind": "show", "what": "grants", "object_type": otype, "object": obj,
                "limit": limit}
    raise SfError("SQL compilation error:\nOnly SHOW EXTERNAL TABLES and SHOW GRANTS ON are "
                  "supported by the emulator.", "001003", "42000")


# ---------------------------------------------------------------------------
# ALTER EXTERNAL TABLE

def parse_alter_external_table(p):
    p.expect_kw("ALTER")
    p.expect_kw("EXTERNAL")
    p.expect_kw("TABLE")
    if_exists = p.accept_kw("IF", "EXISTS")
    name = p.qname()
    # the partition forms put IF EXISTS after the name
    if_exists = p.accept_kw("IF", "EXISTS") or if_exists
    st = {"kind": "alter_external_table", "name": name, "if_exists": if_exists}
    if p.accept_kw("REFRESH"):
        st["op"] = "refresh"
        st["path"] = p.string() if p.tok.kind == "STRING" else ""
    elif p.accept_kw("ADD", "FILES"):
        st["op"], st["files"] = "add_files", paren_list(p, p.string)
    elif p.accept_kw("REMOVE", "FILES"):
        st["op"], st["files"] = "remove_files", paren_list(p, p.string)
    elif p.accept_kw("ADD", "PARTITION"):
        def pair():
            col = p.ident()
            p.expect_op("=")
            return col, p.string()
        values = dict(paren_list(p, pair))
        p.expect_kw("LOCATION")
        st["op"], st["values"], st["location"] = "add_partition", values, p.string()
    elif p.accept_kw("DROP", "PARTITION"):
        p.expect_kw("LOCATION")
        st["op"], st["location"] = "drop_partition", p.string()
    elif p.accept_kw("SET"):
        st["op"], st["properties"] = "set", parse_option_list(p, stop_ops=())
    else:
        raise p.error("REFRESH, ADD FILES, REMOVE FILES, ADD PARTITION, DROP PARTITION or SET")
    p.expect_end()
    return st
