"""Tokenizer for the Snowflake SQL subset the emulator understands.

Identifier rules (https://docs.snowflake.com/en/sql-reference/identifiers-syntax):
  * unquoted identifiers start with a letter or underscore and contain letters,
    digits, underscores and dollar signs; they are stored and resolved in
    upper case;
  * double-quoted identifiers are case-sensitive and may contain any
    character; a double quote inside is written as two double quotes.
String literals are single-quoted; '' and backslash escapes are honoured
(https://docs.snowflake.com/en/sql-reference/data-types-text#escape-sequences-in-single-quoted-string-constants);
$$...$$ is a dollar-quoted string.
"""

import re

from .errors import SfError, compile_error


class Tok:
    __slots__ = ("kind", "value", "pos", "quoted", "btype")

    # kind: IDENT, STRING, NUMBER, OP, POS ($1), STAGE (@...), BIND, EOF
    def __init__(self, kind, value, pos, quoted=False, btype=None):
        self.kind = kind
        self.value = value
        self.pos = pos
        self.quoted = quoted
        self.btype = btype  # for literals coming from bind variables

    def is_kw(self, *words):
        return self.kind == "IDENT" and not self.quoted and self.value.upper() in words

    def __repr__(self):
        return "Tok(%s,%r)" % (self.kind, self.value)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "0": "\0",
            "'": "'", '"': '"', "\\": "\\"}

_UNQUOTED = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_NUMBER = re.compile(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_OPS = ["::", "<>", "!=", "<=", ">=", "||", "=>", "(", ")", ",", ";", ".", "=", "<",
        ">", "*", "+", "-", "/", ":", "[", "]", "%", "{", "}"]


def _read_quoted_ident(sql, i):
    """sql[i] == '"'. Returns (text, end_index)."""
    out = []
    j = i + 1
    while True:
        if j >= len(sql):
            raise compile_error("unterminated quoted identifier", pos=i)
        c = sql[j]
        if c == '"':
            if j + 1 < len(sql) and sql[j + 1] == '"':
                out.append('"')
                j += 2
                continue
            return "".join(out), j + 1
        out.append(c)
        j += 1


def tokenize(sql):
    toks = []
    i = 0
    n = len(sql)
    while i < n:
        c = sql[i]
        if c.isspace():
            i += 1
            continue
        if sql.startswith("--", i) or sql.startswith("//", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise compile_error("unterminated comment", pos=i)
            i = j + 2
            continue
        if c == "'":
            out = []
            j = i + 1
            while True:
                if j >= n:
                    raise compile_error("unterminated string literal", pos=i)
                ch = sql[j]
                if ch == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        out.append("'")
                        j += 2
                        continue
                    j += 1
                    break
                if ch == "\\" and j + 1 < n:
                    nxt = sql[j + 1]
                    if nxt in _ESCAPES:
                        out.append(_ESCAPES[nxt])
                        j += 2
                        continue
                    m = re.match(r"[0-7]{3}", sql[j + 1:j + 4])
                    if m:
                        out.append(chr(int(m.group(0), 8)))
                        j += 4
                        continue
                    m = re.match(r"u([0-9A-Fa-f]{4})", sql[j + 1:j + 6])
                    if m:
                        out.append(chr(int(m.group(1), 16)))
                        j += 6
                        continue
                    m = re.match(r"x([0-9A-Fa-f]{2})", sql[j + 1:j + 4])
                    if m:
                        out.append(chr(int(m.group(1), 16)))
                        j += 4
                        continue
                    out.append(nxt)
                    j += 2
                    continue
                out.append(ch)
                j += 1
            toks.append(Tok("STRING", "".join(out), i))
            i = j
            continue
        if sql.startswith("$$", i):
            j = sql.find("$$", i + 2)
            if j < 0:
                raise compile_error("unterminated $$ string", pos=i)
            toks.append(Tok("STRING", sql[i + 2:j], i))
            i = j + 2
            continue
        if c == '"':
            text, j = _read_quoted_ident(sql, i)
            toks.append(Tok("IDENT", text, i, quoted=True))
            i = j
            continue
        if c == "$" and i + 1 < n and sql[i + 1].isdigit():
            m = re.match(r"\$(\d+)", sql[i:])
            toks.append(Tok("POS", int(m.group(1)), i))
            i += len(m.group(0))
            continue
        if c == "@":
            # Stage reference: @[ns.]name[/path...] up to whitespace , ) ;
            j = i + 1
            while j < n:
                ch = sql[j]
                if ch == '"':
                    _, j = _read_quoted_ident(sql, j)
                    continue
                if ch.isspace() or ch in ",);":
                    break
                j += 1
            toks.append(Tok("STAGE", sql[i + 1:j], i))
            i = j
            continue
        if c == "?":
            toks.append(Tok("BIND", None, i))
            i += 1
            continue
        if c == ":" and i + 1 < n and sql[i + 1].isdigit() and not (
                toks and (toks[-1].kind in ("POS", "IDENT") or
                          (toks[-1].kind == "OP" and toks[-1].value in (")", "]")))):
            m = re.match(r":(\d+)", sql[i:])
            toks.append(Tok("BIND", int(m.group(1)), i))
            i += len(m.group(0))
            continue
        m = _NUMBER.match(sql, i)
        if m and (c.isdigit() or c == "."):
            if c != "." or (i + 1 < n and sql[i + 1].isdigit()):
                toks.append(Tok("NUMBER", m.group(0), i))
                i = m.end()
                continue
        m = _UNQUOTED.match(sql, i)
        if m:
            toks.append(Tok("IDENT", m.group(0), i))
            i = m.end()
            continue
        for op in _OPS:
            if sql.startswith(op, i):
                toks.append(Tok("OP", op, i))
                i += len(op)
                break
        else:
            raise compile_error("unexpected '%s'." % c, pos=i)
    toks.append(Tok("EOF", None, n))
    return toks


def split_statements(toks):
    """Split a token list on top-level ';'. Returns lists of tokens (EOF-terminated)."""
    out, cur = [], []
    for t in toks:
        if t.kind == "EOF" or (t.kind == "OP" and t.value == ";"):
            if cur:
                out.append(cur + [Tok("EOF", None, t.pos)])
            cur = []
            continue
        cur.append(t)
    return out


def substitute_binds(toks, bindings):
    """Replace BIND tokens with literal tokens.

    bindings: {"1": {"type": "TEXT", "value": "..."}} as in the SQL API
    (https://docs.snowflake.com/en/developer-guide/sql-api/submitting-requests#using-bind-variables-in-a-statement).
    '?' placeholders are numbered in order of appearance; ':N' names binding N.
    """
    bindings = bindings or {}
    out = []
    seq = 0
    for t in toks:
        if t.kind != "BIND":
            out.append(t)
            continue
        if t.value is None:
            seq += 1
            idx = seq
        else:
            idx = t.value
        b = bindings.get(str(idx))
        if b is None:
            raise SfError("SQL compilation error:\nBind variable %s not set."
                          % ("?" if t.value is None else ":%d" % idx), "002049", "42601")
        btype = str(b.get("type", "TEXT")).upper()
        val = b.get("value")
        if val is None:
            out.append(Tok("IDENT", "NULL", t.pos, btype=btype))
        elif btype in ("FIXED", "REAL"):
            out.append(Tok("NUMBER", str(val), t.pos, btype=btype))
        else:
            out.append(Tok("STRING", str(val), t.pos, btype=btype))
    return out


class Parser:
    """A cursor over tokens with small helpers."""

    def __init__(self, toks, sql=""):
        self.toks = toks
        self.i = 0
        self.sql = sql

    @property
    def tok(self):
        return self.toks[self.i]

    def peek(self, k=1):
        j = min(self.i + k, len(self.toks) - 1)
        return self.toks[j]

    def next(self):
        t = self.toks[self.i]
        if t.kind != "EOF":
            self.i += 1
        return t

    def error(self, what=None):
        t = self.tok
        line = self.sql.count("\n", 0, t.pos) + 1 if self.sql else 1
        col = t.pos - (self.sql.rfind("\n", 0, t.pos) + 1) if self.sql else t.pos
        if t.kind == "EOF":
            detail = "unexpected end of statement."
        else:
            shown = t.value if t.kind != "STAGE" else "@" + t.value
            detail = "unexpected '%s'." % shown
        if what:
            detail += " Expected %s." % what
        return compile_error(detail, line=line, pos=col)

    def at_kw(self, *words):
        return self.tok.is_kw(*words)

    def at_op(self, *ops):
        return self.tok.kind == "OP" and self.tok.value in ops

    def accept_kw(self, *words):
        """Accept a sequence of keywords; returns True if all matched."""
        save = self.i
        for w in words:
            if not self.tok.is_kw(w):
                self.i = save
                return False
            self.next()
        return True

    def expect_kw(self, *words):
        if not self.accept_kw(*words):
            raise self.error(" ".join(words))

    def accept_op(self, op):
        if self.at_op(op):
            self.next()
            return True
        return False

    def expect_op(self, op):
        if not self.accept_op(op):
            raise self.error("'%s'" % op)

    def at_end(self):
        return self.tok.kind == "EOF"

    def expect_end(self):
        if not self.at_end():
            raise self.error()

    def ident(self):
        """One identifier part, normalized (unquoted -> upper case)."""
        t = self.tok
        if t.kind != "IDENT" or (t.btype is not None):
            raise self.error("identifier")
        self.next()
        return t.value if t.quoted else t.value.upper()

    def qname(self):
        """[db.][schema.]name -> tuple of 1..3 normalized parts.

        IDENTIFIER('...') is accepted too (with a string literal or bind)."""
        if self.at_kw("IDENTIFIER") and self.peek().kind == "OP" and self.peek().value == "(":
            self.next()
            self.next()
            t = self.next()
            if t.kind != "STRING":
                raise self.error("string literal")
            self.expect_op(")")
            return parse_qname_text(t.value)
        parts = [self.ident()]
        while self.at_op(".") and len(parts) < 3:
            self.next()
            if self.at_op("."):  # db..name means PUBLIC schema
                parts.append("PUBLIC")
                continue
            parts.append(self.ident())
        return tuple(parts)

    def string(self):
        t = self.tok
        if t.kind != "STRING":
            raise self.error("string literal")
        self.next()
        return t.value


def parse_qname_text(text):
    """Parse 'db.schema."Name"' (identifier text) into normalized parts."""
    toks = tokenize(text)
    p = Parser(toks, text)
    q = p.qname()
    p.expect_end()
    return q


def quote_ident(name):
    """Render a normalized identifier the way Snowflake would print it."""
    if re.fullmatch(r"[A-Z_][A-Z0-9_$]*", name):
        return name
    return '"' + name.replace('"', '""') + '"'
