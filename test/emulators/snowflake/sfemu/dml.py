"""INSERT, UPDATE, DELETE and MERGE on tables (parsed in sfemu/dmlparse.py).

Results, as the SQL reference shows them: one row of counts, in columns
  INSERT  "number of rows inserted"
      https://docs.snowflake.com/en/sql-reference/sql/insert
  UPDATE  "number of rows updated", "number of multi-joined rows updated"
      https://docs.snowflake.com/en/sql-reference/sql/update
  DELETE  "number of rows deleted"
      https://docs.snowflake.com/en/sql-reference/sql/delete
  MERGE   "number of rows inserted", "number of rows updated", "number of rows deleted",
          each present when the statement has a clause of that kind (the MERGE examples)
      https://docs.snowflake.com/en/sql-reference/sql/merge
and the SQL API's `stats` object (numRowsInserted, numRowsUpdated, numRowsDeleted,
numDuplicateRowsUpdated; https://docs.snowflake.com/en/developer-guide/sql-api/reference).

MERGE duplicate join behaviour ("Duplicate join behavior"): a target row joined by
several source rows is nondeterministic when one of them selects UPDATE and any
other selects an action too (several DELETEs are deterministic; source rows
whose WHEN MATCHED predicates are all false do not count).  With the session
parameter ERROR_ON_NONDETERMINISTIC_MERGE (default TRUE) that is an error; when
FALSE, the first source row (in source order) is used.  UPDATE ... FROM with a
multi-joined row fails only with ERROR_ON_NONDETERMINISTIC_UPDATE = TRUE (default
FALSE).  The error text, "Duplicate row detected during DML action" with the
target row's values, code 100090, sqlState 42P18, is not in the reference; it is
the wording Snowflake's users report.

Constraints: NOT NULL is enforced (also for PRIMARY KEY columns, which imply NOT
NULL); PRIMARY KEY and UNIQUE are not
(https://docs.snowflake.com/en/sql-reference/constraints-overview).
External tables are read-only
(https://docs.snowflake.com/en/user-guide/tables-external-intro).
"""

import json
from decimal import Decimal

from .engine import (Result, SelectEnv, Typed, Val, FIXED0, TEXT_T, convert_any, fqn_text,
                     human, _true)
from .errors import ConvError, SfError, not_exist
from .relations import JoinEnv, Source, qualifiers, source_for
from .sftypes import ConvContext, row_type, variant_text


def register(handlers):
    handlers.update({"insert": do_insert, "update": do_update, "delete": do_delete,
                     "merge": do_merge})


# ---------------------------------------------------------------------------
# helpers

def session_flag(session, name, default):
    v = session.parameters.get(name)
    if v is None:
        return default
    if isinstance(v, tuple):
        v = v[1]
    if isinstance(v, bool):
        return v
    return str(v).strip().upper() in ("TRUE", "1", "YES", "ON")


def target_table(engine, name, session, op):
    fqn = engine.resolve(name, session, op)
    tbl = engine.cat.get("TABLE", fqn)
    if not tbl:
        if engine.cat.get("EXTERNAL_TABLE", fqn):
            raise SfError("SQL compilation error:\nExternal table '%s' is read-only; DML "
                          "operations are not allowed on it." % fqn[2], "002003", "42000")
        raise not_exist("Table", fqn_text(fqn))
    return fqn, tbl


def check_dml(engine, session, fqn, tbl, privileges):
    for priv in privileges:
        engine.acct.check_object(session, "TABLE", fqn, tbl, (priv,))
    engine.acct.check_warehouse(session)


def target_source(engine, fqn, tbl, alias):
    """The target's rows with their SQLite rowids: (Source, rowids)."""
    cols = tbl["columns"]
    sel = ", ".join(['"%s"' % c["sqlcol"] for c in cols]) or "1"
    cur = engine.cat.db.execute('SELECT rowid, %s FROM "%s" ORDER BY rowid'
                                % (sel, engine.cat.data_table(tbl["object_id"])))
    rowids, rows = [], []
    for r in cur.fetchall():
        rowids.append(r[0])
        rows.append(tuple(r[1:]) if cols else ())
    return Source(cols, rows, qualifiers(fqn, alias), tbl), rowids


def coerce(val, col, session):
    """A value for column col (NOT NULL is checked)."""
    if val.s is None:
        if not col["nullable"]:
            raise SfError("NULL result in a non-nullable column", "100072", "22000")
        return None
    t = col["type"]
    try:
        if t["type"] in ("VARIANT", "OBJECT", "ARRAY") and val.t["type"] == "TEXT":
            # an implicit cast of text to VARIANT makes a string value (TO_VARIANT)
            if t["type"] != "VARIANT":
                raise ConvError("Failed to cast variant value \"%s\" to %s"
                                % (val.s[:40], t["type"]), "100071", "22000")
            return variant_text(val.s)
        return convert_any(Typed(val.s, val.t), t, ConvContext(timezone=session.timezone))
    except ConvError as e:
        raise SfError(e.message, e.code, e.sql_state)


def row_values_text(tcols, row):
    """'[0, "x", NULL]': the target row named in the duplicate-row error."""
    out = []
    for c, s in zip(tcols, row):
        if s is None:
            out.append("NULL")
        elif c["type"]["type"] in ("FIXED", "REAL", "BOOLEAN"):
            out.append(s)
        else:
            out.append(json.dumps(human(s, c["type"]), ensure_ascii=False))
    return "[%s]" % ", ".join(out)


def duplicate_row_error(tcols, row):
    return SfError("Duplicate row detected during DML action\nRow Values: %s"
                   % row_values_text(tcols, row), "100090", "42P18")


def counts_result(counts, stats):
    cols = [row_type(name, FIXED0, nullable=False) for name, _ in counts]
    full = {"numRowsInserted": 0, "numRowsUpdated": 0, "numRowsDeleted": 0,
            "numDuplicateRowsUpdated": 0}
    full.update(stats)
    return Result(cols, [[str(n) for _, n in counts]], stats=full)


def column_of(tbl, name):
    for c in tbl["columns"]:
        if c["name"] == name:
            return c
    raise SfError("SQL compilation error: error line 1 at position 7\ninvalid identifier '%s'"
                  % name, "000904", "42000")


def full_row(tbl, assigned, session, base=None):
    """Stored values for every column: base (an existing row) or NULL, overridden by
    assigned {column name: Val}; NOT NULL checked on every column."""
    out = []
    for i, c in enumerate(tbl["columns"]):
        if c["name"] in assigned:
            out.append(coerce(assigned[c["name"]], c, session))
        else:
            v = base[i] if base is not None else None
            if v is None and not c["nullable"]:
                raise SfError("NULL result in a non-nullable column", "100072", "22000")
            out.append(v)
    return out


def apply_changes(engine, tbl, updates, deletes, inserts, handle, truncate=False):
    """updates {rowid: values}, deletes {rowid}, inserts [values]: one transaction."""
    cat = engine.cat
    data = cat.data_table(tbl["object_id"])
    sqlcols = [c["sqlcol"] for c in tbl["columns"]]
    cat.begin()
    try:
        if truncate:
            cat.db.execute('DELETE FROM "%s"' % data)
        if updates and sqlcols:
            sets = ", ".join('"%s" = ?' % c for c in sqlcols)
            cat.db.executemany('UPDATE "%s" SET %s WHERE rowid = ?' % (data, sets),
                               [tuple(v) + (rid,) for rid, v in updates.items()])
        if deletes:
            cat.db.executemany('DELETE FROM "%s" WHERE rowid = ?' % data,
                               [(rid,) for rid in deletes])
        if inserts:
            cat.insert_rows(tbl["object_id"], sqlcols, ((v, None, None, handle) for v in inserts))
        cat.commit()
    except BaseException:
        cat.rollback()
        raise


# ---------------------------------------------------------------------------
# INSERT

def do_insert(engine, st, session, handle):
    fqn, tbl = target_table(engine, st["target"], session, "INSERT")
    check_dml(engine, session, fqn, tbl, ("INSERT",) + (("DELETE",) if st["overwrite"] else ()))
    names = st["columns"] or [c["name"] for c in tbl["columns"]]
    for n in names:
        column_of(tbl, n)
    if len(set(names)) != len(names):
        raise SfError("SQL compilation error:\nduplicate column name in the insert list",
                      "002025", "42S21")
    if st["rows"] is not None:
        env = SelectEnv(engine, session, [], None)
        env.row = ()
        value_rows = [[_value_of(env, e) for e in row] for row in st["rows"]]
        width = len(st["rows"][0])
    else:
        q = engine.query(st["query"], session)
        width = len(q.names)
        value_rows = [[Val(s, t) for s, t in zip(r, q.types)] for r in q.rows]
    if width != len(names):
        raise SfError("SQL compilation error:\nInsert value list does not match column list "
                      "expecting %d but got %d" % (len(names), width), "002020", "21S01")
    inserts = [full_row(tbl, dict(zip(names, vals)), session) for vals in value_rows]
    apply_changes(engine, tbl, {}, set(), inserts, handle, truncate=st["overwrite"])
    return counts_result([("number of rows inserted", len(inserts))],
                         {"numRowsInserted": len(inserts)})


# ---------------------------------------------------------------------------
# UPDATE / DELETE

def _joined(env, src, where):
    """Source rows (indexes) that join the current target row under where; a source
    of None means one pseudo row."""
    if src is None:
        return [None] if where is None or _true(env.eval(where)) else []
    hits = []
    for j, r in enumerate(src.all_rows()):
        env.rows[1] = r
        if where is None or _true(env.eval(where)):
            hits.append(j)
    env.rows[1] = None
    return hits


def _with_source(engine, st, session, op):
    """(table, target source, env, source, [(rowid, target row, joined source rows)]) for
    UPDATE ... [FROM] and DELETE ... [USING]: the target rows that the WHERE selects."""
    fqn, tbl = target_table(engine, st["target"], session, op)
    check_dml(engine, session, fqn, tbl, (op,))
    tgt, rowids = target_source(engine, fqn, tbl, st["target_alias"])
    src = source_for(engine, st["source"], session, op) if st["source"] else None
    env = JoinEnv(engine, session, [tgt] + ([src] if src else []))
    selected = []
    for rid, trow in zip(rowids, tgt.all_rows()):
        env.rows[0] = trow
        hits = _joined(env, src, st["where"])
        if hits:
            selected.append((rid, trow, hits))
    return tbl, tgt, env, src, selected


def _value_of(env, e):
    return Val(None, TEXT_T) if e == ("default",) else env.eval(e)


def _assigned(env, sets):
    return {s["column"]: _value_of(env, s["expr"]) for s in sets}


def do_update(engine, st, session, handle):
    tbl, tgt, env, src, selected = _with_source(engine, st, session, "UPDATE")
    for s in st["sets"]:
        column_of(tbl, s["column"])
    error_dup = session_flag(session, "ERROR_ON_NONDETERMINISTIC_UPDATE", False)
    updates, multi = {}, 0
    for rid, trow, hits in selected:
        if len(hits) > 1:
            if error_dup:
                raise duplicate_row_error(tgt.tcols, trow)
            multi += 1
        env.rows[0] = trow
        if src is not None:
            env.rows[1] = src.all_rows()[hits[0]]
        updates[rid] = full_row(tbl, _assigned(env, st["sets"]), session, base=trow)
    apply_changes(engine, tbl, updates, set(), [], handle)
    return counts_result([("number of rows updated", len(updates)),
                          ("number of multi-joined rows updated", multi)],
                         {"numRowsUpdated": len(updates), "numDuplicateRowsUpdated": multi})


def do_delete(engine, st, session, handle):
    tbl, _, _, _, selected = _with_source(engine, st, session, "DELETE")
    deletes = {rid for rid, _, _ in selected}
    apply_changes(engine, tbl, {}, deletes, [], handle)
    return counts_result([("number of rows deleted", len(deletes))],
                         {"numRowsDeleted": len(deletes)})


# ---------------------------------------------------------------------------
# MERGE

def _conjuncts(e):
    if e[0] == "bin" and e[1] == "AND":
        return _conjuncts(e[2]) + _conjuncts(e[3])
    return [e]


_CLASS = {"FIXED": "n", "REAL": "n", "TEXT": "s", "BOOLEAN": "b", "DATE": "d", "TIME": "t",
          "TIMESTAMP_NTZ": "ts", "TIMESTAMP_LTZ": "tl", "TIMESTAMP_TZ": "tz", "BINARY": "x"}


def _hash_key(val):
    if val.s is None:
        return None
    cls = _CLASS.get(val.t["type"])
    if cls == "n":
        try:
            return Decimal(val.s).normalize()
        except Exception:
            return val.s
    if cls == "tz":
        return val.s.split(" ")[0]
    return val.s


def _equi_pairs(env, on):
    """[(target expr, source expr)] for the `t.a = s.b` conjuncts of ON whose two
    sides are of the same type class, so a hash join finds the candidates (the
    whole ON is still evaluated on each candidate)."""
    pairs = []
    for c in _conjuncts(on):
        if not (c[0] == "bin" and c[1] == "=" and c[2][0] == "col" and c[3][0] == "col"):
            continue
        try:
            a, ia = env._find(c[2][1])
            b, ib = env._find(c[3][1])
        except SfError:
            continue
        if {a, b} != {0, 1}:
            continue
        ta = env.sources[a].tcols[ia]["type"]["type"]
        tb = env.sources[b].tcols[ib]["type"]["type"]
        if _CLASS.get(ta) is None or _CLASS.get(ta) != _CLASS.get(tb):
            continue
        pairs.append((c[2], c[3]) if a == 0 else (c[3], c[2]))
    return pairs


def _matches(env, tgt, src, on):
    """{target index: [source indexes joined by ON]}, source indexes joined by none."""
    srows, trows = src.all_rows(), tgt.all_rows()
    pairs = _equi_pairs(env, on)
    index = None
    if pairs:
        index = {}
        for j, r in enumerate(srows):
            env.rows = [None, r]
            key = tuple(_hash_key(env.eval(se)) for _, se in pairs)
            if None not in key:
                index.setdefault(key, []).append(j)
    matched = {}
    joined = set()
    for i, t in enumerate(trows):
        env.rows = [t, None]
        if index is not None:
            key = tuple(_hash_key(env.eval(te)) for te, _ in pairs)
            cands = index.get(key, []) if None not in key else []
        else:
            cands = range(len(srows))
        for j in cands:
            env.rows = [t, srows[j]]
            if _true(env.eval(on)):
                matched.setdefault(i, []).append(j)
                joined.add(j)
    env.rows = [None, None]
    return matched, [j for j in range(len(srows)) if j not in joined]


def _by_name(tbl, src, row, what):
    """{column: Val} from the source column of the same name (ALL BY NAME: "The target
    table and source must have the same number of columns and the same names for all
    of the columns")."""
    idx = {c["name"]: k for k, c in enumerate(src.tcols) if not c.get("hidden")}
    if len(idx) != len(tbl["columns"]) or any(c["name"] not in idx for c in tbl["columns"]):
        raise SfError("SQL compilation error:\n%s ALL BY NAME needs a source with the same "
                      "column names as the target." % what, "002020", "21S01")
    return {c["name"]: Val(row[idx[c["name"]]], src.tcols[idx[c["name"]]]["type"])
            for c in tbl["columns"]}


def do_merge(engine, st, session, handle):
    fqn, tbl = target_table(engine, st["target"], session, "MERGE")
    ops = {c["op"] for c in st["clauses"]}
    check_dml(engine, session, fqn, tbl, tuple(p for o, p in (("insert", "INSERT"),
                                                             ("update", "UPDATE"),
                                                             ("delete", "DELETE")) if o in ops))
    tgt, rowids = target_source(engine, fqn, tbl, st["target_alias"])
    src = source_for(engine, st["source"], session, "MERGE")
    env = JoinEnv(engine, session, [tgt, src])
    for c in st["clauses"]:
        if c["op"] == "update" and not c["by_name"]:
            for s in c["sets"]:
                column_of(tbl, s["column"])
                if s["qualifier"] and s["qualifier"] not in tgt.names:
                    raise SfError("SQL compilation error: error line 1 at position 7\ninvalid "
                                  "identifier '%s'" % ".".join(s["qualifier"] + (s["column"],)),
                                  "000904", "42000")
        if c["op"] == "insert" and not c["by_name"] and c["columns"]:
            for n in c["columns"]:
                column_of(tbl, n)
    error_dup = session_flag(session, "ERROR_ON_NONDETERMINISTIC_MERGE", True)
    matched_clauses = [c for c in st["clauses"] if c["matched"]]
    insert_clauses = [c for c in st["clauses"] if not c["matched"]]
    matched, unjoined = _matches(env, tgt, src, st["on"])
    srows, trows = src.all_rows(), tgt.all_rows()

    def first_clause(clauses):
        for c in clauses:
            if c["cond"] is None or _true(env.eval(c["cond"])):
                return c
        return None

    updates, deletes, inserts, dup_updates = {}, set(), [], 0
    for i, js in sorted(matched.items()):
        actions = []
        for j in js:
            env.rows = [trows[i], srows[j]]
            c = first_clause(matched_clauses)
            if c is not None:
                actions.append((c, j))
        if not actions:
            continue
        if len(actions) > 1 and any(c["op"] == "update" for c, _ in actions):
            if error_dup:
                raise duplicate_row_error(tgt.tcols, trows[i])
            dup_updates += 1
        c, j = actions[0]
        env.rows = [trows[i], srows[j]]
        if c["op"] == "delete":
            deletes.add(rowids[i])
            continue
        if c["by_name"]:
            assigned = _by_name(tbl, src, srows[j], "UPDATE")
        else:
            assigned = _assigned(env, c["sets"])
        updates[rowids[i]] = full_row(tbl, assigned, session, base=trows[i])
    for j in unjoined:
        env.rows = [None, srows[j]]
        c = first_clause(insert_clauses)
        if c is None:
            continue
        if c["by_name"]:
            assigned = _by_name(tbl, src, srows[j], "INSERT")
        else:
            names = c["columns"] or [col["name"] for col in tbl["columns"]]
            if len(names) != len(c["values"]):
                raise SfError("SQL compilation error:\nInsert value list does not match column "
                              "list expecting %d but got %d" % (len(names), len(c["values"])),
                              "002020", "21S01")
            assigned = dict(zip(names, [_value_of(env, e) for e in c["values"]]))
        inserts.append(full_row(tbl, assigned, session))
    env.rows = [None, None]
    apply_changes(engine, tbl, updates, deletes, inserts, handle)
    counts = []
    if "insert" in ops:
        counts.append(("number of rows inserted", len(inserts)))
    if "update" in ops:
        counts.append(("number of rows updated", len(updates)))
    if "delete" in ops:
        counts.append(("number of rows deleted", len(deletes)))
    return counts_result(counts, {"numRowsInserted": len(inserts),
                                  "numRowsUpdated": len(updates),
                                  "numRowsDeleted": len(deletes),
                                  "numDuplicateRowsUpdated": dup_updates})
