"""Scalar functions for query evaluation, beyond the ones in engine.SelectEnv.

call(name, vals) returns a Val, or None when the function is not one of these.
Every function returns NULL when a required argument is NULL (as documented
for each).  Semantics from Snowflake's function reference:

  SPLIT_PART(<string>, <delimiter>, <partNumber>)
      https://docs.snowflake.com/en/sql-reference/functions/split_part
      "If the partNumber is out of range, the returned value is an empty
      string"; 0 is treated as 1; negative numbers count from the end.
  REPLACE(<subject>, <pattern> [, <replacement>])   (replacement default '')
      https://docs.snowflake.com/en/sql-reference/functions/replace
  CHR(<input>) / CHAR(<input>)   the character of a Unicode code point
      https://docs.snowflake.com/en/sql-reference/functions/chr
  GET(<object_or_array>, <key_or_index>), GET_IGNORE_CASE(<object>, <field_name>)
      https://docs.snowflake.com/en/sql-reference/functions/get_ignore_case
      (an exact match wins; otherwise a case-insensitive match)
  IFF(<condition>, <expr1>, <expr2>)
      https://docs.snowflake.com/en/sql-reference/functions/iff
  NULLIF(<expr1>, <expr2>), CONCAT(<expr> [, ...]), SUBSTR / SUBSTRING(<s>, <start> [, <len>])
"""

import json
from decimal import Decimal

from .errors import SfError
from .sftypes import variant_text


def _engine():
    from . import engine
    return engine


def _text(v):
    if v.s is None:
        return None
    return _engine().human(v.s, v.t)


def _int(v, what):
    if v.s is None:
        return None
    try:
        return int(Decimal(_text(v)))
    except Exception:
        raise SfError("Numeric value '%s' is not recognized" % _text(v), "100038", "22018")


def _semi(v):
    """The JSON value of a VARIANT / OBJECT / ARRAY argument, or None."""
    if v.s is None:
        return None
    if v.t["type"] in ("VARIANT", "OBJECT", "ARRAY"):
        return json.loads(v.s)
    raise SfError("SQL compilation error:\nargument 1 to function GET needs to be a semi-"
                  "structured value (VARIANT, OBJECT or ARRAY).", "002140", "42601")


def call(name, vals):
    e = _engine()
    Val, TEXT_T, VARIANT_T = e.Val, e.TEXT_T, e.VARIANT_T
    if name == "SPLIT_PART":
        _arity(name, vals, 3)
        if any(v.s is None for v in vals):
            return Val(None, TEXT_T)
        s, delim, n = _text(vals[0]), _text(vals[1]), _int(vals[2], "partNumber")
        parts = s.split(delim) if delim else [s]
        if n == 0:
            n = 1
        idx = n - 1 if n > 0 else len(parts) + n
        return Val(parts[idx] if 0 <= idx < len(parts) else "", TEXT_T)
    if name == "REPLACE":
        if len(vals) not in (2, 3):
            _arity(name, vals, 3)
        if any(v.s is None for v in vals):
            return Val(None, TEXT_T)
        s, pat = _text(vals[0]), _text(vals[1])
        rep = _text(vals[2]) if len(vals) == 3 else ""
        return Val(s.replace(pat, rep) if pat else s, TEXT_T)
    if name in ("CHR", "CHAR"):
        _arity(name, vals, 1)
        n = _int(vals[0], "input")
        return Val(None if n is None else chr(n), TEXT_T)
    if name in ("GET", "GET_IGNORE_CASE"):
        _arity(name, vals, 2)
        base, key = _semi(vals[0]), vals[1]
        if base is None or key.s is None:
            return Val(None, VARIANT_T)
        if isinstance(base, list):
            i = _int(key, "index")
            r = base[i] if 0 <= i < len(base) else None
        elif isinstance(base, dict):
            k = _text(key)
            if k in base or name == "GET":
                r = base.get(k)
            else:
                r = next((v for kk, v in base.items() if kk.lower() == k.lower()), None)
        else:
            r = None
        return Val(None if r is None else variant_text(r), VARIANT_T)
    if name == "IFF":
        _arity(name, vals, 3)
        return vals[1] if vals[0].s == "true" else vals[2]
    if name == "NULLIF":
        _arity(name, vals, 2)
        a, b = vals
        if a.s is not None and b.s is not None and _text(a) == _text(b):
            return Val(None, a.t)
        return a
    if name == "CONCAT":
        parts = [_text(v) for v in vals]
        return Val(None if any(x is None for x in parts) else "".join(parts), TEXT_T)
    if name in ("SUBSTR", "SUBSTRING"):
        if len(vals) not in (2, 3):
            _arity(name, vals, 3)
        if any(v.s is None for v in vals):
            return Val(None, TEXT_T)
        s, start = _text(vals[0]), _int(vals[1], "start")
        length = _int(vals[2], "length") if len(vals) == 3 else None
        begin = start - 1 if start > 0 else (len(s) + start if start < 0 else 0)
        begin = max(begin, 0)
        out = s[begin:] if length is None else s[begin:begin + max(length, 0)]
        return Val(out, TEXT_T)
    return None


def _arity(name, vals, n):
    if len(vals) != n:
        raise SfError("SQL compilation error:\nerror line 1 at position 7\nNot enough arguments "
                      "for function [%s], expected %d, got %d" % (name, n, len(vals)),
                      "000938", "42601")
