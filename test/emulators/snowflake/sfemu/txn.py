"""Multi-statement requests, explicit transactions, session statements, temporary tables.

SQL API: "The following commands and statements are supported only within a request
that specifies multiple statements: commands that perform explicit transactions ...
commands that change the context of the session ... statements that set session
variables ... statements that create temporary tables and stages"
(https://docs.snowflake.com/en/developer-guide/sql-api/intro#limitations-of-the-sql-api).
A single statement of those kinds is refused (002040 / 0A000) as before.

A multi-statement request (https://docs.snowflake.com/en/developer-guide/sql-api/submitting-multiple-statements):
  * runs its statements in order in one session (the request's); the answer holds
    `statementHandles`, one per statement;
  * stops at the first statement that fails: "The statements before the statement
    with the error are executed successfully ... The statements after the statement
    with the error are not executed."  The request fails with 422, code 100132,
    sqlState P0000, "JavaScript execution error: Uncaught Execution of multiple
    statements failed on statement "<text>" (at line L, position P).\\n<error> in
    SYSTEM$MULTISTMT at ..." (the documented example; the statement text is cut
    after 30 characters with "...", P counts from 0 in the statement's line);
  * runs as the stored procedure SYSTEM$MULTISTMT (named in that message), so the
    rules for transactions in stored procedures apply
    (https://docs.snowflake.com/en/sql-reference/transactions): a transaction open
    when a statement fails is rolled back, and "If a transaction is started inside a
    stored procedure and is still active when the stored procedure finishes, an error
    occurs and the transaction is rolled back" (message as Snowflake reports it for
    procedures: "Scoped transaction started in stored procedure is incomplete and it
    was rolled back."; code and sqlState are the emulator's: 000640 / 25000);
  * "requires that a valid warehouse is available in a session".

Transactions (same page): BEGIN [WORK | TRANSACTION] / START TRANSACTION opens one
("if a transaction is already active, any BEGIN TRANSACTION statements are
ignored"), COMMIT / ROLLBACK end it; "Each DDL statement executes as a separate
transaction. If a DDL statement is executed while a transaction is active, the DDL
statement: 1. Implicitly commits the active transaction. 2. Executes the DDL
statement as a separate transaction."  DML (INSERT, UPDATE, DELETE, MERGE, TRUNCATE,
COPY INTO <table>; https://docs.snowflake.com/en/sql-reference/sql-dml) and ALTER
EXTERNAL TABLE ... REFRESH / ADD FILES / REMOVE FILES ("can be used in explicit
transactions", ALTER EXTERNAL TABLE usage notes) join the transaction; queries
(SELECT, SHOW, DESCRIBE) do not end it.  A failed DML statement inside a transaction
is rolled back alone (a savepoint); the request then stops and rolls the whole
transaction back (above).

Isolation: the emulator runs a multi-statement request holding the engine's lock,
so no other statement interleaves with it (stricter than Snowflake's READ
COMMITTED).

Temporary tables live until the end of the request (its session) and are then
dropped; a temporary table may not take the name of an existing table
(Snowflake lets it shadow the permanent one: a deviation).
"""

import time

from .engine import status_result
from .errors import SfError

DML_KINDS = {"insert", "update", "delete", "merge", "truncate", "copy"}
QUERY_KINDS = {"select", "describe", "show"}
TXN_EXTERNAL_OPS = {"refresh", "add_files", "remove_files"}


def register(handlers):
    handlers.update({"txn": do_txn, "session": do_session})


def unsupported(what):
    return SfError("Unsupported statement type '%s'." % what, "002040", "0A000")


def is_ddl(st):
    kind = st["kind"]
    if kind in DML_KINDS or kind in QUERY_KINDS or kind in ("txn", "session"):
        return False
    if kind == "alter_external_table" and st["op"] in TXN_EXTERNAL_OPS:
        return False
    return True


def before_statement(engine, st, session):
    """Called by Engine.execute for every statement before it runs."""
    multi = getattr(session, "multi", False)
    kind = st["kind"]
    if not multi:
        if kind == "txn":
            raise unsupported("BEGIN_TRANSACTION" if st["op"] == "begin" else st["op"].upper())
        if kind == "session":
            raise unsupported("ALTER_SESSION" if st["op"] in ("set", "unset") else "USE")
        if kind == "create_table" and st.get("temporary"):
            raise SfError("Temporary objects are supported only within a request that "
                          "specifies multiple statements.", "002040", "0A000")
        return
    if getattr(session, "txn", None) and is_ddl(st):
        engine.cat.commit()          # the DDL implicitly commits the active transaction
        session.txn = None


def do_txn(engine, st, session, handle):
    op = st["op"]
    if op == "begin":
        if not session.txn:
            engine.cat.begin()
            session.txn = {"started": time.time(), "handle": handle}
    elif session.txn:
        if op == "commit":
            engine.cat.commit()
        else:
            engine.cat.rollback()
        session.txn = None
    return status_result("Statement executed successfully.")


def _param_value(v):
    if isinstance(v, tuple) and v and v[0] == "KW":
        return v[1]
    return v


def do_session(engine, st, session, handle):
    op = st["op"]
    if op == "set":
        for k, v in st["parameters"].items():
            session.parameters[k.upper()] = _param_value(v)
    elif op == "unset":
        for k in st["names"]:
            session.parameters.pop(k.upper(), None)
    else:
        what, name = st["what"], st["name"]
        if what == "DATABASE":
            if len(name) != 1:
                raise SfError("SQL compilation error:\ninvalid database name", "001003", "42000")
            session.database, session.schema = name[0], "PUBLIC"
        elif what == "SCHEMA":
            if len(name) == 2:
                session.database, session.schema = name
            elif len(name) == 1:
                session.schema = name[0]
            else:
                raise SfError("SQL compilation error:\ninvalid schema name", "001003", "42000")
        elif what == "WAREHOUSE":
            session.warehouse = name[-1]
            if session.roles is not None and not engine.acct.has(
                    session, "WAREHOUSE", (name[-1],), ("USAGE", "OPERATE")):
                raise SfError("SQL compilation error:\nObject does not exist, or operation "
                              "cannot be performed.", "002043", "02000")
        else:
            session.role, session.prepared = name[-1], False
            engine.acct.prepare(session)
    return status_result("Statement executed successfully.")


# ---------------------------------------------------------------------------
# The request

def _snippet(text):
    return text if len(text) <= 30 else text[:30] + "..."


def multi_failure(sql, pos, text, err):
    line = sql.count("\n", 0, pos) + 1
    col = pos - (sql.rfind("\n", 0, pos) + 1)
    return SfError("JavaScript execution error: Uncaught Execution of multiple statements "
                   "failed on statement \"%s\" (at line %d, position %d).\n%s in "
                   "SYSTEM$MULTISTMT at '    throw `Execution of multiple statements failed "
                   "on statement {0} (at line {1}, position {2}).`.replace('{1}', LINES[i])' "
                   "position 4\nstackstrace: \nSYSTEM$MULTISTMT line: 10"
                   % (_snippet(text), line, col, err.message), "100132", "P0000")


def run_multi(executor, s, session, parts):
    """Run the statements of a multi-statement request (see the module docstring).
    The children's outcomes are recorded once the request's transaction is over
    (the statement log is another SQLite connection, which would wait for it)."""
    from .executor import Stmt, new_handle, _result_outcome
    from .sqltok import substitute_binds
    engine = executor.engine
    session.multi = True
    session.txn = None
    session.temp_tables = []
    finished = []     # (child, status, outcome)
    handles = []
    try:
        with engine.lock:
            try:
                engine.acct.prepare(session)
                engine.acct.check_warehouse(session)
                for ptoks in parts:
                    text = s.sql[ptoks[0].pos:ptoks[-1].pos].strip()
                    child = Stmt(new_handle(), s.request_id, s.user, text,
                                 int(time.time() * 1000))
                    with executor.lock:
                        executor.stmts[child.handle] = child
                    handles.append(child.handle)
                    try:
                        res = engine.execute(substitute_binds(ptoks, None), s.sql, session,
                                             child.handle)
                    except SfError as e:
                        finished.append((child, "failed", {"http_status": 422, "code": e.code,
                                                           "sqlState": e.sql_state,
                                                           "message": e.message}))
                        raise multi_failure(s.sql, ptoks[0].pos, text, e)
                    finished.append((child, "success", _result_outcome(res)))
                if session.txn:
                    raise SfError("Stored procedure execution error: Scoped transaction started "
                                  "in stored procedure is incomplete and it was rolled back.",
                                  "000640", "25000")
            finally:
                if session.txn:
                    engine.cat.rollback()
                    session.txn = None
                drop_temporary(engine, session)
    finally:
        for child, status, outcome in finished:
            executor._finish(child, status, outcome)
    return {"kind": "multi", "handles": handles}


def drop_temporary(engine, session):
    for fqn in getattr(session, "temp_tables", []):
        obj = engine.cat.get("TABLE", fqn)
        if obj and obj.get("temporary"):
            engine.cat.begin()
            try:
                engine._drop_object("TABLE", fqn, obj)
                engine.cat.commit()
            except BaseException:
                engine.cat.rollback()
                raise
    session.temp_tables = []


def drop_leftover_temporary(engine):
    """Temporary tables of requests that were running when the emulator stopped."""
    for obj in engine.cat.list_objects("TABLE"):
        if obj.get("temporary"):
            full = engine.cat.get("TABLE", tuple(obj["fqn"]))
            engine.cat.begin()
            try:
                engine._drop_object("TABLE", tuple(obj["fqn"]), full)
                engine.cat.commit()
            except BaseException:
                engine.cat.rollback()
                raise
