"""Column types, value conversion on load, and the SQL API JSON v2 encodings.

Stored values are kept as the string the SQL API returns for them (jsonv2):
  FIXED          decimal text with exactly `scale` digits after the point
  REAL           Python repr of the float; 'NaN', 'inf', '-inf'
  TEXT           the string
  BOOLEAN        'true' / 'false'
  DATE           days since 1970-01-01
  TIME           seconds since midnight with 9 decimals
  TIMESTAMP_NTZ  seconds since the epoch (wall clock read as UTC), 9 decimals
  TIMESTAMP_LTZ  seconds since the epoch (UTC instant), 9 decimals
  TIMESTAMP_TZ   '<seconds since epoch, 9 decimals> <offset minutes + 1440>'
  BINARY         upper-case hex
  VARIANT/OBJECT/ARRAY  JSON text (2-space indented, as Snowflake prints it)
See https://docs.snowflake.com/en/developer-guide/sql-api/handling-responses#getting-the-data-from-the-results
"""

import base64
import binascii
import datetime
import json
import math
import re
from decimal import Decimal, InvalidOperation, ROUND_HALF_UP

from .errors import ConvError, SfError

try:
    import zoneinfo
except ImportError:  # pragma: no cover
    zoneinfo = None

MAX_TEXT = 16777216
MAX_BINARY = 8388608

_INT_ALIASES = {"INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"}
_FIXED = {"NUMBER", "DECIMAL", "NUMERIC", "DEC"}
_REAL = {"FLOAT", "FLOAT4", "FLOAT8", "DOUBLE", "REAL"}
_TEXT = {"VARCHAR", "STRING", "TEXT", "CHAR", "CHARACTER", "NCHAR", "NVARCHAR",
         "NVARCHAR2", "NCHAR VARYING", "CHAR VARYING"}
_BINARY = {"BINARY", "VARBINARY"}
_TS = {"TIMESTAMP": "TIMESTAMP_NTZ", "DATETIME": "TIMESTAMP_NTZ",
       "TIMESTAMP_NTZ": "TIMESTAMP_NTZ", "TIMESTAMPNTZ": "TIMESTAMP_NTZ",
       "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP_NTZ",
       "TIMESTAMP_LTZ": "TIMESTAMP_LTZ", "TIMESTAMPLTZ": "TIMESTAMP_LTZ",
       "TIMESTAMP WITH LOCAL TIME ZONE": "TIMESTAMP_LTZ",
       "TIMESTAMP_TZ": "TIMESTAMP_TZ", "TIMESTAMPTZ": "TIMESTAMP_TZ",
       "TIMESTAMP WITH TIME ZONE": "TIMESTAMP_TZ"}
_SEMI = {"VARIANT", "OBJECT", "ARRAY"}
_OTHER_TEXT = {"GEOGRAPHY", "GEOMETRY"}


def parse_type(p):
    """Parse a data type from parser p. Returns a type dict."""
    words = [p.ident()]
    # multi-word type names
    while True:
        joined = " ".join(words + [p.tok.value.upper()]) if p.tok.kind == "IDENT" else None
        if joined and any(k.startswith(joined) for k in
                          list(_TS) + ["DOUBLE PRECISION", "CHAR VARYING", "NCHAR VARYING",
                                       "CHARACTER VARYING"]):
            words.append(p.ident())
            continue
        break
    name = " ".join(words)
    args = []
    if p.accept_op("("):
        while True:
            t = p.next()
            if t.kind != "NUMBER":
                raise p.error("number")
            args.append(int(t.value))
            if p.accept_op(")"):
                break
            p.expect_op(",")
    return make_type(name, args, p)


def make_type(name, args=(), p=None):
    name = name.upper()
    decl = name + ("(%s)" % ",".join(str(a) for a in args) if args else "")
    if name in _FIXED:
        prec = args[0] if args else 38
        scale = args[1] if len(args) > 1 else 0
        if not (1 <= prec <= 38) or not (0 <= scale <= prec):
            raise SfError("SQL compilation error:\nInvalid precision/scale for %s" % decl,
                          "001003", "42000")
        return {"type": "FIXED", "precision": prec, "scale": scale, "decl": decl}
    if name in _INT_ALIASES:
        return {"type": "FIXED", "precision": 38, "scale": 0, "decl": decl}
    if name in _REAL or name == "DOUBLE PRECISION":
        return {"type": "REAL", "decl": decl}
    if name in _TEXT or name == "CHARACTER VARYING":
        default = 1 if name in ("CHAR", "CHARACTER", "NCHAR") else MAX_TEXT
        return {"type": "TEXT", "length": args[0] if args else default, "decl": decl}
    if name in _BINARY:
        return {"type": "BINARY", "length": args[0] if args else MAX_BINARY, "decl": decl}
    if name == "BOOLEAN":
        return {"type": "BOOLEAN", "decl": decl}
    if name == "DATE":
        return {"type": "DATE", "decl": decl}
    if name == "TIME":
        return {"type": "TIME", "scale": args[0] if args else 9, "decl": decl}
    if name in _TS:
        return {"type": _TS[name], "scale": args[0] if args else 9, "decl": decl}
    if name in _SEMI:
        return {"type": name, "decl": decl}
    if name in _OTHER_TEXT:
        return {"type": "TEXT", "length": MAX_TEXT, "decl": decl, "geo": name}
    raise SfError("SQL compilation error:\nUnsupported data type '%s'." % name,
                  "002040", "42601")


def row_type(name, t, nullable=True, table="", database="", schema=""):
    """rowType entry for the SQL API result set metadata."""
    kind = t["type"]
    rt = {"name": name, "database": database, "schema": schema, "table": table,
          "nullable": nullable, "collation": None, "scale": None, "precision": None,
          "length": None, "byteLength": None, "type": kind.lower()}
    if kind == "FIXED":
        rt.update(precision=t["precision"], scale=t["scale"])
    elif kind == "TEXT":
        rt.update(length=t["length"], byteLength=min(t["length"] * 4, MAX_TEXT))
    elif kind == "BINARY":
        rt.update(length=t["length"], byteLength=t["length"])
    elif kind in ("TIME", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"):
        rt.update(scale=t.get("scale", 9), precision=0)
    elif kind in ("VARIANT", "OBJECT", "ARRAY"):
        rt.update(length=MAX_TEXT, byteLength=MAX_TEXT)
    return rt


# ---------------------------------------------------------------------------
# Variants

class Variant:
    """A semi-structured value (result of PARSE_JSON or a JSON file record)."""
    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v


def variant_text(v):
    return json.dumps(v, indent=2, ensure_ascii=False, allow_nan=False)


def parse_json_text(s):
    """PARSE_JSON semantics: '' -> SQL NULL, else a Variant."""
    if s is None:
        return None
    if s.strip() == "":
        return None
    try:
        return Variant(json.loads(s, parse_float=_json_float,
                                  parse_constant=_reject_constant))
    except (ValueError, RecursionError) as e:
        raise ConvError("Error parsing JSON: %s" % _short_json_err(e, s), "100069", "22P02")


def _json_float(s):
    d = Decimal(s)
    f = float(d)
    if f == int(f) and "e" not in s.lower() and abs(f) < 1e15:
        return f
    return f


def _reject_constant(s):
    raise ValueError("invalid literal %s" % s)


def _short_json_err(e, s):
    msg = str(e)
    return "%s, %s" % (msg.split(":")[0], _snip(s))


def _snip(s, n=60):
    return s if len(s) <= n else s[:n] + "..."


# ---------------------------------------------------------------------------
# Conversion context

class ConvContext:
    def __init__(self, date_format="AUTO", time_format="AUTO", timestamp_format="AUTO",
                 binary_format="HEX", timezone="America/Los_Angeles"):
        self.date_format = (date_format or "AUTO")
        self.time_format = (time_format or "AUTO")
        self.timestamp_format = (timestamp_format or "AUTO")
        self.binary_format = (binary_format or "HEX").upper()
        self.timezone = timezone or "America/Los_Angeles"
        self._tz = None

    def tz(self):
        if self._tz is None:
            self._tz = datetime.timezone.utc
            if zoneinfo is not None:
                try:
                    self._tz = zoneinfo.ZoneInfo(self.timezone)
                except Exception:
                    try:
                        self._tz = zoneinfo.ZoneInfo(self.timezone.title())
                    except Exception:
                        self._tz = datetime.timezone.utc
        return self._tz


DEFAULT_CTX = ConvContext()


# ---------------------------------------------------------------------------
# Conversion into a column type

def convert(value, t, ctx=DEFAULT_CTX):
    """Convert a loaded value (str, Variant, bool/int/float, or None) to the
    stored/jsonv2 string for column type t. Raises ConvError."""
    if value is None:
        return None
    kind = t["type"]
    if isinstance(value, Variant):
        v = value.v
        if kind in ("VARIANT", "OBJECT", "ARRAY"):
            return _semi(v, kind)
        if v is None:
            return None
        if isinstance(v, bool):
            value = "true" if v else "false"
        elif isinstance(v, (int, float)):
            value = repr(v) if isinstance(v, float) else str(v)
        elif isinstance(v, str):
            value = v
        else:
            if kind == "TEXT":
                value = json.dumps(v, separators=(",", ":"), ensure_ascii=False)
            else:
                raise ConvError("Failed to cast variant value %s to %s"
                                % (_snip(json.dumps(v)), kind), "100071", "22000")
    elif isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float, Decimal)):
        value = str(value)
    s = value
    if kind == "TEXT":
        if len(s) > t["length"]:
            raise ConvError("User character length limit (%d) exceeded by string '%s'"
                            % (t["length"], _snip(s)), "100078", "22000")
        return s
    if kind == "FIXED":
        return _fixed(s, t["precision"], t["scale"])
    if kind == "REAL":
        return _real(s)
    if kind == "BOOLEAN":
        return _boolean(s)
    if kind == "BINARY":
        return _binary(s, t["length"], ctx.binary_format)
    if kind == "DATE":
        return str(parse_date(s, ctx))
    if kind == "TIME":
        return fmt_secs(parse_time(s, ctx))
    if kind in ("TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"):
        return _timestamp(s, kind, ctx)
    if kind in ("VARIANT", "OBJECT", "ARRAY"):
        pv = parse_json_text(s)
        if pv is None:
            return None
        return _semi(pv.v, kind)
    raise ConvError("Unsupported type %s" % kind, "100071", "22000")


def _semi(v, kind):
    if kind == "OBJECT" and not isinstance(v, dict):
        raise ConvError("Failed to cast variant value %s to OBJECT" % _snip(json.dumps(v)),
                        "100071", "22000")
    if kind == "ARRAY" and not isinstance(v, list):
        raise ConvError("Failed to cast variant value %s to ARRAY" % _snip(json.dumps(v)),
                        "100071", "22000")
    try:
        return variant_text(v)
    except ValueError:
        raise ConvError("Error parsing JSON: NaN/Infinity not allowed", "100069", "22P02")


_NUM_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _fixed(s, prec, scale):
    txt = s.strip()
    if not _NUM_RE.fullmatch(txt):
        raise ConvError("Numeric value '%s' is not recognized" % _snip(s), "100038", "22018")
    d = Decimal(txt)
    q = d.quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP) if scale else \
        d.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    int_digits = len(str(abs(q).to_integral_value(rounding="ROUND_DOWN")).lstrip("0"))
    if int_digits > prec - scale:
        raise ConvError("Numeric value '%s' is out of range" % _snip(s), "100039", "22003")
    out = format(q, "f")
    if out.startswith("-") and Decimal(out) == 0:
        out = out[1:]
    return out


_SPECIAL_FLOATS = {"nan": "NaN", "inf": "inf", "+inf": "inf", "-inf": "-inf",
                   "infinity": "inf", "+infinity": "inf", "-infinity": "-inf"}


def _real(s):
    txt = s.strip()
    sp = _SPECIAL_FLOATS.get(txt.lower())
    if sp:
        return sp
    if not _NUM_RE.fullmatch(txt):
        raise ConvError("Numeric value '%s' is not recognized" % _snip(s), "100038", "22018")
    f = float(txt)
    if math.isinf(f):
        raise ConvError("Numeric value '%s' is out of range" % _snip(s), "100039", "22003")
    return repr(f)


_BOOL = {"true": True, "t": True, "yes": True, "y": True, "on": True, "1": True,
         "false": False, "f": False, "no": False, "n": False, "off": False, "0": False}


def _boolean(s):
    b = _BOOL.get(s.strip().lower())
    if b is None:
        raise ConvError("Boolean value '%s' is not recognized" % _snip(s), "100037", "22018")
    return "true" if b else "false"


def _binary(s, length, fmt):
    try:
        if fmt == "HEX":
            if not re.fullmatch(r"[0-9A-Fa-f]*", s) or len(s) % 2:
                raise ValueError
            raw = binascii.unhexlify(s)
        elif fmt == "BASE64":
            raw = base64.b64decode(s, validate=True)
        else:  # UTF8
            raw = s.encode("utf-8")
    except (ValueError, binascii.Error):
        raise ConvError("The following string is not a legal %s-encoded value: '%s'"
                        % (fmt.lower(), _snip(s)), "100115", "22000")
    if len(raw) > length:
        raise ConvError("Binary value of length %d exceeds the maximum length %d"
                        % (len(raw), length), "100078", "22000")
    return binascii.hexlify(raw).decode("ascii").upper()


# ---------------------------------------------------------------------------
# Dates and times. Internally: days (int), nanoseconds (int), offset minutes.

NS = 10 ** 9
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def days_from_civil(y, m, d):
    return (datetime.date(y, m, d) - datetime.date(1970, 1, 1)).days


def fmt_secs(ns):
    """Nanoseconds -> 'S.FFFFFFFFF' (sign-aware)."""
    sign = "-" if ns < 0 else ""
    a = abs(ns)
    return "%s%d.%09d" % (sign, a // NS, a % NS)


def parse_secs(text):
    """'S.FFFFFFFFF' -> nanoseconds."""
    return int((Decimal(text) * NS).to_integral_value())


# AUTO formats (https://docs.snowflake.com/en/sql-reference/date-time-input-output#supported-formats-for-auto-detection)
_ISO_TS = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:(?:T| +)(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{0,9}))?)?)?"
    r" *(Z|[+-]\d{1,2}(?::?\d{2})?)?")
_DMY_MON = re.compile(r"(\d{1,2})-([A-Za-z]{3})-(\d{4})")
_MDY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_ISO_TIME = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{0,9}))?)?"
                       r"(?: *([AaPp][Mm]))?")
_INT = re.compile(r"[+-]?\d+")


def _tz_minutes(tz):
    if tz is None:
        return None
    if tz == "Z":
        return 0
    sign = -1 if tz[0] == "-" else 1
    body = tz[1:].replace(":", "")
    if len(body) <= 2:
        h, m = int(body), 0
    else:
        h, m = int(body[:-2]), int(body[-2:])
    return sign * (h * 60 + m)


def _frac_ns(frac):
    if not frac:
        return 0
    return int((frac + "000000000")[:9])


def _mk(y, mo, d, h=0, mi=0, sec=0, ns=0):
    try:
        days = days_from_civil(y, mo, d)
    except ValueError:
        return None
    if not (0 <= h <= 23 and 0 <= mi <= 59 and 0 <= sec <= 59):
        return None
    return days * 86400 * NS + ((h * 60 + mi) * 60 + sec) * NS + ns


def _epoch_ns_from_int(txt):
    v = int(txt)
    a = abs(v)
    if a < 31536000000:
        return v * NS
    if a < 31536000000000:
        return v * 10 ** 6
    if a < 31536000000000000:
        return v * 10 ** 3
    return v


def parse_timestamp_parts(s, fmt):
    """Returns (wall_ns, offset_minutes_or_None) or raises ConvError-free None."""
    txt = s.strip()
    if fmt and fmt.upper() != "AUTO":
        return _parse_with_format(txt, fmt, want="ts")
    m = _ISO_TS.fullmatch(txt)
    if m:
        y, mo, d, h, mi, sec, frac, tz = m.groups()
        ns = _mk(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(sec or 0),
                 _frac_ns(frac))
        if ns is None:
            return None
        return ns, _tz_minutes(tz)
    if _INT.fullmatch(txt):
        return _epoch_ns_from_int(txt), 0
    m = _DMY_MON.fullmatch(txt)
    if m and m.group(2).upper() in _MONTHS:
        ns = _mk(int(m.group(3)), _MONTHS.index(m.group(2).upper()) + 1, int(m.group(1)))
        return (ns, None) if ns is not None else None
    m = _MDY.fullmatch(txt)
    if m:
        ns = _mk(int(m.group(3)), int(m.group(1)), int(m.group(2)))
        return (ns, None) if ns is not None else None
    return None


def parse_date(s, ctx):
    fmt = ctx.date_format
    if fmt.upper() != "AUTO":
        r = _parse_with_format(s.strip(), fmt, want="date")
    else:
        r = parse_timestamp_parts(s, "AUTO")
    if r is None:
        raise ConvError("Date '%s' is not recognized" % _snip(s), "100040", "22007")
    ns, off = r
    return ns // (86400 * NS)


def parse_time(s, ctx):
    txt = s.strip()
    fmt = ctx.time_format
    if fmt.upper() != "AUTO":
        r = _parse_with_format(txt, fmt, want="time")
        if r is None:
            raise ConvError("Time '%s' is not recognized" % _snip(s), "100108", "22007")
        return r[0] % (86400 * NS)
    m = _ISO_TIME.fullmatch(txt)
    if m:
        h, mi, sec, frac, ampm = m.groups()
        h = int(h)
        if ampm:
            if not 1 <= h <= 12:
                m = None
            else:
                h = h % 12 + (12 if ampm.upper() == "PM" else 0)
        if m and h <= 23 and int(mi) <= 59 and int(sec or 0) <= 59:
            return ((h * 60 + int(mi)) * 60 + int(sec or 0)) * NS + _frac_ns(frac)
    if _INT.fullmatch(txt):
        return _epoch_ns_from_int(txt) % (86400 * NS)
    raise ConvError("Time '%s' is not recognized" % _snip(s), "100108", "22007")


def _local_offset(wall_ns, ctx):
    """Offset (minutes) of the session time zone at a wall-clock time."""
    tz = ctx.tz()
    secs = wall_ns // NS
    try:
        dt = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=secs)
        off = dt.replace(tzinfo=tz).utcoffset()
    except (OverflowError, ValueError):
        return 0
    return int(off.total_seconds() // 60) if off is not None else 0


def _timestamp(s, kind, ctx):
    r = parse_timestamp_parts(s, ctx.timestamp_format)
    if r is None:
        raise ConvError("Timestamp '%s' is not recognized" % _snip(s), "100035", "22007")
    wall, off = r
    if kind == "TIMESTAMP_NTZ":
        # An offset in the input is ignored for NTZ (the wall clock is kept).
        return fmt_secs(wall)
    if off is None:
        off = _local_offset(wall, ctx)
    utc = wall - off * 60 * NS
    if kind == "TIMESTAMP_LTZ":
        return fmt_secs(utc)
    return "%s %d" % (fmt_secs(utc), off + 1440)


# Custom DATE_FORMAT / TIME_FORMAT / TIMESTAMP_FORMAT strings
# (https://docs.snowflake.com/en/sql-reference/functions-conversion#date-and-time-formats-in-conversion-functions)
_FMT_TOKENS = [
    ("YYYY", r"(?P<Y>\d{4})"), ("YY", r"(?P<y>\d{2})"), ("MMMM", r"(?P<Mon_full>[A-Za-z]+)"),
    ("MON", r"(?P<Mon>[A-Za-z]{3})"), ("MM", r"(?P<M>\d{1,2})"), ("DD", r"(?P<D>\d{1,2})"),
    ("DY", r"(?:[A-Za-z]{3})"), ("HH24", r"(?P<H>\d{1,2})"), ("HH12", r"(?P<h>\d{1,2})"),
    ("HH", r"(?P<H>\d{1,2})"), ("AM", r"(?P<ampm>[AaPp][Mm])"), ("PM", r"(?P<ampm>[AaPp][Mm])"),
    ("MI", r"(?P<MI>\d{2})"), ("SS", r"(?P<S>\d{1,2})"),
    ("TZH:TZM", r"(?P<tz>Z|[+-]\d{1,2}:\d{2})"), ("TZHTZM", r"(?P<tz>Z|[+-]\d{4})"),
    ("TZH", r"(?P<tz>Z|[+-]\d{1,2})"),
]


def _compile_format(fmt):
    out = []
    i = 0
    seen = set()
    while i < len(fmt):
        if fmt[i] == '"':
            j = fmt.find('"', i + 1)
            j = len(fmt) if j < 0 else j
            out.append(re.escape(fmt[i + 1:j]))
            i = j + 1
            continue
        up = fmt[i:].upper()
        if up.startswith("FF"):
            k = 2
            if i + 2 < len(fmt) and fmt[i + 2].isdigit():
                k = 3
            out.append(r"(?P<F>\d{0,9})" if "F" not in seen else r"\d{0,9}")
            seen.add("F")
            i += k
            continue
        for tok, rx in _FMT_TOKENS:
            if up.startswith(tok):
                name = re.search(r"\?P<(\w+)>", rx)
                if name and name.group(1) in seen:
                    rx = re.sub(r"\?P<\w+>", "?:", rx)
                elif name:
                    seen.add(name.group(1))
                out.append(rx)
                i += len(tok)
                break
        else:
            out.append(re.escape(fmt[i]))
            i += 1
    return re.compile("".join(out))


def _parse_with_format(txt, fmt, want):
    m = _compile_format(fmt).fullmatch(txt)
    if not m:
        return None
    g = m.groupdict()
    y = int(g["Y"]) if g.get("Y") else (2000 + int(g["y"]) if g.get("y") else 1970)
    if g.get("Mon"):
        if g["Mon"].upper() not in _MONTHS:
            return None
        mo = _MONTHS.index(g["Mon"].upper()) + 1
    elif g.get("Mon_full"):
        names = [datetime.date(2000, k, 1).strftime("%B").upper() for k in range(1, 13)]
        if g["Mon_full"].upper() not in names:
            return None
        mo = names.index(g["Mon_full"].upper()) + 1
    else:
        mo = int(g["M"]) if g.get("M") else 1
    d = int(g["D"]) if g.get("D") else 1
    if g.get("h"):
        h = int(g["h"]) % 12 + (12 if (g.get("ampm") or "").upper() == "PM" else 0)
    else:
        h = int(g["H"]) if g.get("H") else 0
    mi = int(g["MI"]) if g.get("MI") else 0
    sec = int(g["S"]) if g.get("S") else 0
    ns = _mk(y, mo, d, h, mi, sec, _frac_ns(g.get("F")))
    if ns is None:
        return None
    return ns, _tz_minutes(g.get("tz"))


# ---------------------------------------------------------------------------
# Decoding stored values for comparisons / ordering in queries

def sort_key(stored, t):
    """A Python value comparable within one type (None sorts separately)."""
    if stored is None:
        return None
    kind = t["type"]
    try:
        if kind == "FIXED":
            return Decimal(stored)
        if kind == "REAL":
            return float(stored)
        if kind == "BOOLEAN":
            return stored == "true"
        if kind == "DATE":
            return int(stored)
        if kind in ("TIME", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ"):
            return Decimal(stored)
        if kind == "TIMESTAMP_TZ":
            return Decimal(stored.split(" ")[0])
    except (InvalidOperation, ValueError):
        return stored
    return stored


def infer_literal_type(value, btype=None):
    """Type of a literal in a SELECT list."""
    if btype:
        b = btype.upper()
        if b in ("FIXED",):
            return {"type": "FIXED", "precision": 38, "scale": _scale_of(value)}
        if b == "REAL":
            return {"type": "REAL"}
        if b == "BOOLEAN":
            return {"type": "BOOLEAN"}
        if b in ("DATE", "TIME", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ", "BINARY"):
            return make_type(b)
        return {"type": "TEXT", "length": max(1, len(value or ""))}
    if isinstance(value, bool):
        return {"type": "BOOLEAN"}
    if isinstance(value, Decimal):
        return {"type": "FIXED", "precision": max(1, len(value.as_tuple().digits)),
                "scale": max(0, -value.as_tuple().exponent)}
    if isinstance(value, float):
        return {"type": "REAL"}
    return {"type": "TEXT", "length": max(1, len(value)) if isinstance(value, str) else MAX_TEXT}


def _scale_of(v):
    try:
        return max(0, -Decimal(v).as_tuple().exponent)
    except Exception:
        return 0
