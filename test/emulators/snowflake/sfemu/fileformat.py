"""File format options and the CSV / JSON record parsers used by COPY INTO.

Option names, defaults and semantics follow CREATE FILE FORMAT:
https://docs.snowflake.com/en/sql-reference/sql/create-file-format
Notable defaults for TYPE = CSV (they bite writers that do not declare them):
  ESCAPE_UNENCLOSED_FIELD = '\\\\' (a backslash in an unenclosed field escapes
  the next character), NULL_IF = ('\\\\N'), EMPTY_FIELD_AS_NULL = TRUE (`,,` is
  NULL but an enclosed `""` is an empty string), ERROR_ON_COLUMN_COUNT_MISMATCH
  = TRUE, FIELD_OPTIONALLY_ENCLOSED_BY = NONE (a doubled enclosing character
  inside an enclosed field is one literal character).
"""

import json
import re

from .errors import SfError

CSV_DEFAULTS = {
    "TYPE": "CSV",
    "COMPRESSION": "AUTO",
    "RECORD_DELIMITER": "\n",
    "FIELD_DELIMITER": ",",
    "FILE_EXTENSION": None,
    "PARSE_HEADER": False,
    "SKIP_HEADER": 0,
    "SKIP_BLANK_LINES": False,
    "DATE_FORMAT": "AUTO",
    "TIME_FORMAT": "AUTO",
    "TIMESTAMP_FORMAT": "AUTO",
    "BINARY_FORMAT": "HEX",
    "ESCAPE": None,
    "ESCAPE_UNENCLOSED_FIELD": "\\",
    "TRIM_SPACE": False,
    "FIELD_OPTIONALLY_ENCLOSED_BY": None,
    "NULL_IF": ["\\N"],
    "ERROR_ON_COLUMN_COUNT_MISMATCH": True,
    "REPLACE_INVALID_CHARACTERS": False,
    "EMPTY_FIELD_AS_NULL": True,
    "SKIP_BYTE_ORDER_MARK": True,
    "ENCODING": "UTF8",
    "MULTI_LINE": True,
    "VALIDATE_UTF8": True,
}

JSON_DEFAULTS = {
    "TYPE": "JSON",
    "COMPRESSION": "AUTO",
    "DATE_FORMAT": "AUTO",
    "TIME_FORMAT": "AUTO",
    "TIMESTAMP_FORMAT": "AUTO",
    "BINARY_FORMAT": "HEX",
    "TRIM_SPACE": False,
    "MULTI_LINE": True,
    "NULL_IF": [],
    "FILE_EXTENSION": None,
    "ENABLE_OCTAL": False,
    "ALLOW_DUPLICATE": False,
    "STRIP_OUTER_ARRAY": False,
    "STRIP_NULL_VALUES": False,
    "REPLACE_INVALID_CHARACTERS": False,
    "IGNORE_UTF8_ERRORS": False,
    "SKIP_BYTE_ORDER_MARK": True,
}

# Types we accept in DDL but cannot load (recorded only, e.g. for external tables).
OTHER_TYPES = {"PARQUET", "AVRO", "ORC", "XML"}

_BOOL_OPTS = {"PARSE_HEADER", "SKIP_BLANK_LINES", "TRIM_SPACE", "ERROR_ON_COLUMN_COUNT_MISMATCH",
              "REPLACE_INVALID_CHARACTERS", "EMPTY_FIELD_AS_NULL", "SKIP_BYTE_ORDER_MARK",
              "MULTI_LINE", "VALIDATE_UTF8", "ENABLE_OCTAL", "ALLOW_DUPLICATE",
              "STRIP_OUTER_ARRAY", "STRIP_NULL_VALUES", "IGNORE_UTF8_ERRORS",
              "BINARY_AS_TEXT", "USE_LOGICAL_TYPE", "USE_VECTORIZED_SCANNER",
              "PRESERVE_SPACE", "STRIP_OUTER_ELEMENT", "DISABLE_AUTO_CONVERT",
              "DISABLE_SNOWFLAKE_DATA"}
_CHAR_OPTS = {"RECORD_DELIMITER", "FIELD_DELIMITER", "ESCAPE", "ESCAPE_UNENCLOSED_FIELD",
              "FIELD_OPTIONALLY_ENCLOSED_BY"}
_COMPRESSIONS = {"AUTO", "GZIP", "BZ2", "BROTLI", "ZSTD", "DEFLATE", "RAW_DEFLATE", "NONE",
                 "SNAPPY", "LZO"}

ENCODINGS = {"UTF8": "utf-8", "UTF-8": "utf-8", "ISO88591": "latin-1", "ISO-8859-1": "latin-1",
             "ISO88592": "iso8859-2", "ISO88595": "iso8859-5", "ISO88596": "iso8859-6",
             "ISO88597": "iso8859-7", "ISO88598": "iso8859-8", "ISO88599": "iso8859-9",
             "ISO885915": "iso8859-15", "WINDOWS1250": "cp1250", "WINDOWS1251": "cp1251",
             "WINDOWS1252": "cp1252", "WINDOWS1253": "cp1253", "WINDOWS1254": "cp1254",
             "WINDOWS1255": "cp1255", "WINDOWS1256": "cp1256", "WINDOWS874": "cp874",
             "WINDOWS949": "cp949", "UTF16": "utf-16", "UTF16BE": "utf-16-be",
             "UTF16LE": "utf-16-le", "UTF32": "utf-32", "UTF32BE": "utf-32-be",
             "UTF32LE": "utf-32-le", "BIG5": "big5", "EUCJP": "euc_jp", "EUCKR": "euc_kr",
             "GB18030": "gb18030", "KOI8R": "koi8_r", "SHIFTJIS": "shift_jis",
             "IBM420": "cp420", "IBM424": "cp424", "IBM949": "cp949",
             "ISO2022CN": "iso2022_jp_2", "ISO2022JP": "iso2022_jp", "ISO2022KR": "iso2022_kr"}


def _opt_error(msg):
    return SfError("SQL compilation error:\n" + msg, "001008", "22023")


def decode_char_option(v):
    """Delimiter / escape option values accept escape sequences, octal (\\ooo)
    and hex (0xHH, \\xHH) forms."""
    if v is None:
        return None
    m = re.fullmatch(r"0[xX]([0-9A-Fa-f]{2})", v)
    if m:
        return chr(int(m.group(1), 16))
    out = []
    i = 0
    while i < len(v):
        if v[i] == "\\" and i + 1 < len(v):
            m = re.match(r"\\([0-7]{3})", v[i:])
            if m:
                out.append(chr(int(m.group(1), 8)))
                i += 4
                continue
            m = re.match(r"\\[xX]([0-9A-Fa-f]{2})", v[i:])
            if m:
                out.append(chr(int(m.group(1), 16)))
                i += 4
                continue
            nxt = v[i + 1]
            mapped = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\"}.get(nxt)
            if mapped is not None:
                out.append(mapped)
                i += 2
                continue
        out.append(v[i])
        i += 1
    return "".join(out)


def parse_option_list(p, stop_ops=(")",)):
    """Parse `NAME = value` pairs (separated by blanks, commas or new lines) until
    one of stop_ops or end of statement. Returns an ordered dict of raw values:
    str (string literal), ('KW', word), bool, int, list of str, or None (NONE)."""
    opts = {}
    while not p.at_end() and not (p.tok.kind == "OP" and p.tok.value in stop_ops):
        if p.accept_op(","):
            continue
        name = p.ident().upper()
        p.expect_op("=")
        opts[name] = parse_option_value(p)
    return opts


def parse_option_value(p):
    t = p.tok
    if t.kind == "STRING":
        p.next()
        return t.value
    if t.kind == "NUMBER":
        p.next()
        return int(float(t.value)) if re.fullmatch(r"\d+", t.value) else t.value
    if t.kind == "OP" and t.value == "(":
        p.next()
        vals = []
        if p.tok.kind in ("STRING", "NUMBER"):
            while True:
                v = p.next()
                if v.kind not in ("STRING", "NUMBER"):
                    raise p.error("string literal")
                vals.append(v.value)
                if not p.accept_op(","):
                    break
            p.expect_op(")")
            return vals
        if p.accept_op(")"):
            return vals
        # nested option list, e.g. FILE_FORMAT = (TYPE = CSV ...)
        inner = parse_option_list(p)
        p.expect_op(")")
        return ("LIST", inner)
    if t.kind == "IDENT":
        p.next()
        w = t.value.upper() if not t.quoted else t.value
        if not t.quoted and w in ("TRUE", "FALSE"):
            return w == "TRUE"
        if not t.quoted and w == "NONE":
            return None
        # Qualified names (FORMAT_NAME = db.sch."ff") are kept as identifier text,
        # quoted parts re-quoted so that they stay case-sensitive.
        def part(tok):
            return '"%s"' % tok.value.replace('"', '""') if tok.quoted else tok.value.upper()
        parts = [part(t)]
        while p.at_op("."):
            p.next()
            nt = p.next()
            if nt.kind != "IDENT":
                raise p.error("identifier")
            parts.append(part(nt))
        return ("KW", ".".join(parts))
    raise p.error("option value")


def normalize_format_options(raw, base_type=None):
    """Validate raw options from parse_option_list for a file format.

    Returns a dict: {"TYPE": ..., option: value} holding only explicitly set
    options (defaults are applied by effective_options)."""
    out = {}
    ftype = raw.get("TYPE", base_type or "CSV")
    if isinstance(ftype, tuple):
        ftype = ftype[1]
    ftype = str(ftype).upper()
    if ftype not in ("CSV", "JSON") and ftype not in OTHER_TYPES:
        raise _opt_error("invalid value '%s' for property 'TYPE'" % ftype)
    out["TYPE"] = ftype
    defaults = CSV_DEFAULTS if ftype == "CSV" else JSON_DEFAULTS if ftype == "JSON" else None
    for name, v in raw.items():
        if name in ("TYPE", "COMMENT"):
            continue
        if defaults is not None and name not in defaults:
            raise _opt_error("invalid property '%s' for 'FILE_FORMAT' of type %s" % (name, ftype))
        if isinstance(v, tuple) and v[0] == "KW":
            v = v[1]
        if name in _BOOL_OPTS:
            if not isinstance(v, bool):
                if isinstance(v, str) and v.upper() in ("TRUE", "FALSE"):
                    v = v.upper() == "TRUE"
                else:
                    raise _opt_error("invalid value '%s' for property '%s'" % (v, name))
        elif name == "SKIP_HEADER":
            try:
                v = int(v)
            except (TypeError, ValueError):
                raise _opt_error("invalid value '%s' for property 'SKIP_HEADER'" % v)
        elif name == "NULL_IF":
            if v is None:
                v = []
            elif isinstance(v, str):
                v = [v]
            v = [str(x) for x in v]
        elif name in _CHAR_OPTS:
            if v is not None:
                v = decode_char_option(str(v))
                if name in ("ESCAPE", "ESCAPE_UNENCLOSED_FIELD", "FIELD_OPTIONALLY_ENCLOSED_BY") \
                        and len(v) != 1:
                    raise _opt_error("invalid value '%s' for property '%s'" % (v, name))
                if name == "FIELD_OPTIONALLY_ENCLOSED_BY" and v not in ("'", '"'):
                    raise _opt_error("invalid value '%s' for property '%s'" % (v, name))
        elif name == "COMPRESSION":
            v = str(v).upper() if v is not None else "NONE"
            if v not in _COMPRESSIONS:
                raise _opt_error("invalid value '%s' for property 'COMPRESSION'" % v)
        elif name == "BINARY_FORMAT":
            v = str(v).upper()
            if v not in ("HEX", "BASE64", "UTF8", "UTF-8"):
                raise _opt_error("invalid value '%s' for property 'BINARY_FORMAT'" % v)
            v = "UTF8" if v == "UTF-8" else v
        elif name == "ENCODING":
            v = str(v).upper()
            if v not in ENCODINGS:
                raise _opt_error("invalid value '%s' for property 'ENCODING'" % v)
        elif name in ("DATE_FORMAT", "TIME_FORMAT", "TIMESTAMP_FORMAT"):
            v = "AUTO" if v is None else str(v)
        out[name] = v
    return out


def effective_options(opts):
    ftype = opts.get("TYPE", "CSV")
    base = dict(CSV_DEFAULTS if ftype == "CSV" else JSON_DEFAULTS if ftype == "JSON" else
                {"TYPE": ftype, "COMPRESSION": "AUTO"})
    base.update(opts)
    return base


# ---------------------------------------------------------------------------
# CSV parsing

class Record:
    __slots__ = ("line", "fields", "error")

    def __init__(self, line, fields, error=None):
        self.line = line          # physical line (1-based) where the record starts
        self.fields = fields      # list of (value or None, start character 1-based)
        self.error = error        # None or (message, code, sqlstate, character)


_UNESC = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def _unescape(c):
    return _UNESC.get(c, c)


def parse_csv(text, o):
    """Yield Records from decoded text with effective CSV options o."""
    fd = o["FIELD_DELIMITER"]
    rd = o["RECORD_DELIMITER"]
    logical_nl = rd == "\n"      # "\r\n" is understood as a new line too
    encl = o["FIELD_OPTIONALLY_ENCLOSED_BY"]
    esc = o["ESCAPE"]
    esc_u = o["ESCAPE_UNENCLOSED_FIELD"]
    trim = o["TRIM_SPACE"]
    null_if = set(o["NULL_IF"] or [])
    efan = o["EMPTY_FIELD_AS_NULL"]
    multi_line = o["MULTI_LINE"]
    n = len(text)
    pos = 0
    line = 1
    if o["SKIP_BYTE_ORDER_MARK"] and text.startswith("\ufeff"):
        pos = 1
    # SKIP_HEADER skips new-line delimited lines, whatever RECORD_DELIMITER is.
    for _ in range(int(o["SKIP_HEADER"] or 0)):
        j = text.find("\n", pos)
        if j < 0:
            pos = n
            break
        pos = j + 1
        line += 1

    def rd_len(p):
        if p >= n:
            return 0
        if logical_nl:
            if text[p] == "\n":
                return 1
            if text[p] == "\r" and p + 1 < n and text[p + 1] == "\n":
                return 2
            return 0
        if rd and text.startswith(rd, p):
            return len(rd)
        return 0

    def fd_at(p):
        return bool(fd) and text.startswith(fd, p)

    # Characters at which the scanners must stop and look closer.
    stops = set()
    if fd:
        stops.add(fd[0])
    if logical_nl:
        stops.update("\r\n")
    elif rd:
        stops.add(rd[0])
    if esc_u:
        stops.add(esc_u)
    unenc_re = re.compile("[%s]" % "".join(re.escape(c) for c in sorted(stops)) if stops
                          else "(?!)")
    encl_re = re.compile("[%s]" % "".join(re.escape(c) for c in sorted({encl, esc} - {None}))) \
        if encl else None

    def skip_record(p):
        nonlocal line
        while p < n:
            k = rd_len(p)
            if k:
                line += text.count("\n", p, p + k)
                return p + k
            if text[p] == "\n":
                line += 1
            p += 1
        return n

    while pos < n:
        rec_start = pos
        rec_line = line
        k = rd_len(pos)
        if k:
            pos += k
            line += text.count("\n", rec_start, pos)
            if o["SKIP_BLANK_LINES"]:
                continue
            yield Record(rec_line, [(None if efan else "", 1)])
            continue
        fields = []
        err = None
        while True:
            fstart = pos
            p = pos
            if trim:
                while p < n and text[p] in " \t":
                    p += 1
            if encl and p < n and text[p] == encl:
                p += 1
                buf = []
                closed = False
                while p < n:
                    m = encl_re.search(text, p)
                    j = m.start() if m else n
                    if j > p:
                        buf.append(text[p:j])
                        line += text.count("\n", p, j)
                        p = j
                    if p >= n:
                        break
                    c = text[p]
                    if c == encl:
                        if p + 1 < n and text[p + 1] == encl:
                            buf.append(encl)
                            p += 2
                            continue
                        p += 1
                        closed = True
                        break
                    # escape character (ESCAPE option)
                    if p + 1 < n:
                        buf.append(_unescape(text[p + 1]))
                        if text[p + 1] == "\n":
                            line += 1
                        p += 2
                    else:
                        buf.append(c)
                        p += 1
                val = "".join(buf)
                if not closed:
                    err = ("Found end-of-file while expecting the closing enclosing "
                           "character %s" % encl, "100073", "22000", fstart - rec_start + 1)
                    pos = n
                    break
                if not multi_line and ("\n" in val or (rd and rd in val)):
                    err = ("Found a record delimiter inside an enclosed field while "
                           "MULTI_LINE = FALSE", "100074", "22000", fstart - rec_start + 1)
                if trim:
                    while p < n and text[p] in " \t":
                        p += 1
                fields.append((None if val in null_if else val, fstart - rec_start + 1))
                if p >= n:
                    pos = n
                    break
                if fd_at(p):
                    pos = p + len(fd)
                    continue
                k = rd_len(p)
                if k:
                    pos = p + k
                    line += text.count("\n", p, pos)
                    break
                err = err or ("Found character '%s' instead of field delimiter '%s'"
                              % (text[p], fd or ""), "100066", "22000", p - rec_start + 1)
                pos = skip_record(p)
                break
            # unenclosed field
            p = fstart
            buf = []
            raw = []
            while p < n:
                m = unenc_re.search(text, p)
                j = m.start() if m else n
                if j > p:
                    raw.append(text[p:j])
                    buf.append(text[p:j])
                    p = j
                if p >= n or fd_at(p) or rd_len(p):
                    break
                c = text[p]
                if esc_u and c == esc_u and p + 1 < n:
                    nxt = text[p + 1]
                    raw.append(c)
                    raw.append(nxt)
                    if nxt == "\r" and p + 2 < n and text[p + 2] == "\n" and logical_nl:
                        buf.append("\r\n")
                        raw.append("\n")
                        line += 1
                        p += 3
                        continue
                    if nxt == "\n":
                        line += 1
                    buf.append(_unescape(nxt))
                    p += 2
                    continue
                raw.append(c)
                buf.append(c)
                p += 1
            rawtxt = "".join(raw)
            val = "".join(buf)
            if trim:
                rawtxt = rawtxt.strip(" \t")
                val = val.strip(" \t")
            if rawtxt in null_if:
                value = None
            elif rawtxt == "" and efan:
                value = None
            else:
                value = val
            fields.append((value, fstart - rec_start + 1))
            if p >= n:
                pos = n
                break
            if fd_at(p):
                pos = p + len(fd)
                continue
            k = rd_len(p)
            pos = p + k
            line += text.count("\n", p, pos)
            break
        yield Record(rec_line, fields, err)


# ---------------------------------------------------------------------------
# JSON parsing: one JSON value per document (NDJSON or concatenated values).

def _strip_nulls(v):
    if isinstance(v, dict):
        return {k: _strip_nulls(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        return [_strip_nulls(x) for x in v if x is not None]
    return v


def parse_json_records(text, o):
    """Yield Records whose single field is a python JSON value (wrapped later)."""
    def pairs_hook(pairs):
        d = {}
        for k, v in pairs:
            if k in d and not o.get("ALLOW_DUPLICATE"):
                raise ValueError("Duplicate field key '%s'" % k)
            d[k] = v
        return d

    dec = json.JSONDecoder(object_pairs_hook=pairs_hook)
    n = len(text)
    pos = 0
    if o.get("SKIP_BYTE_ORDER_MARK", True) and text.startswith("\ufeff"):
        pos = 1
    ws = re.compile(r"[ \t\r\n]*")
    while True:
        pos = ws.match(text, pos).end()
        if pos >= n:
            return
        line = text.count("\n", 0, pos) + 1
        try:
            value, end = dec.raw_decode(text, pos)
        except ValueError as e:
            msg = str(e)
            if "Duplicate field key" in msg:
                msg = msg.split(":")[0] if msg.startswith("Duplicate") else msg
            yield Record(line, [], ("Error parsing JSON: %s" % msg.split(": line")[0],
                                    "100069", "22P02", 1))
            return
        pos = end
        if o.get("STRIP_NULL_VALUES"):
            value = _strip_nulls(value)
        if o.get("STRIP_OUTER_ARRAY") and isinstance(value, list):
            for el in value:
                yield Record(line, [(el, 1)])
        else:
            yield Record(line, [(value, 1)])
