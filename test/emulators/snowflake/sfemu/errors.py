"""Snowflake-shaped errors.

The 422 body is a QueryFailureStatus: {code, sqlState, message, statementHandle,
statementStatusUrl, createdOn}.
https://docs.snowflake.com/en/developer-guide/sql-api/reference#queryfailurestatus
"""


class SfError(Exception):
    """An error Snowflake would report for a statement (HTTP 422 by default)."""

    def __init__(self, message, code="001003", sql_state="42000", http_status=422):
        super().__init__(message)
        self.message = message
        self.code = code
        self.sql_state = sql_state
        self.http_status = http_status


def compile_error(detail, line=1, pos=0):
    """SQL compilation error (code 001003, sqlState 42000)."""
    return SfError("SQL compilation error:\nsyntax error line %d at position %d %s"
                   % (line, pos, detail), "001003", "42000")


def not_exist(kind, fqn):
    return SfError("SQL compilation error:\n%s '%s' does not exist or not authorized."
                   % (kind, fqn), "002003", "02000")


def already_exists(name):
    return SfError("SQL compilation error:\nObject '%s' already exists." % name,
                   "002002", "42710")


class ConvError(Exception):
    """A per-value load error (becomes first_error of a COPY result row)."""

    def __init__(self, message, code="100038", sql_state="22018"):
        super().__init__(message)
        self.message = message
        self.code = code
        self.sql_state = sql_state
