#!/usr/bin/python3
"""Search test evidence for every secret the test suite registered.

    secret-scan.py --registry FILE PATH...     scan; exit 1 if any secret is found
    secret-scan.py --self-test                 plant secrets and check they are found

The registry (written by test/lib/SfTest.pm and the emulators while the TAP
suite runs) has one secret per line: "label<TAB>base64(value)", or
"label<TAB>base64(value)<TAB>host" for a credential of the database
server's host (its environment).  Every
regular file below each PATH is read; gzip and zstd files (recognized by
their magic bytes, whatever their name) are searched both as stored and
decompressed.  For each secret the scanner looks for the value itself and
its derived forms: every base64 line of a PEM body (>= 40 characters, so a
key cannot hide by being split into lines), and the value as JSON, URL and
SQL literal encoding would spell it.  Secrets shorter than --min-length
bytes are not searched (they would match by chance) and are counted.

One place may legitimately hold AWS credentials: a CREATE STAGE statement
sent to Snowflake with CREDENTIALS = (...), which is how sfexport.setup_stage
gives Snowflake a key of a user mapping when the server has no storage
integration.  In the Snowflake statement logs (--sql-log-glob) the inside of
CREDENTIALS = (...) is blanked before the search; everything else in those
logs is searched.  Host credentials get no such exemption: sfexport never
writes them into a statement, so they are searched in the logs as sent.

Found secrets are printed masked (first 4 characters and length), with the
file, the label and which form matched.
"""

import argparse
import base64
import fnmatch
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from urllib.parse import quote

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CREDENTIALS_RE = re.compile(rb"(CREDENTIALS\s*=\s*\()((?:[^()']|'(?:[^']|'')*')*)(\))", re.I)


def mask(value):
    v = value.decode("utf-8", "replace")
    return "%s...(%d chars)" % (v[:4], len(v))


def read_registry(path):
    """[(label, value bytes, host)], deduplicated by value (host if any
    registration of the value says so)."""
    seen = {}
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip(b"\n")
            if not line:
                continue
            fields = line.split(b"\t")
            if len(fields) not in (2, 3) or (len(fields) == 3 and fields[2] != b"host"):
                raise SystemExit("%s:%d: malformed registry line" % (path, n))
            value = base64.b64decode(fields[1], validate=True)
            host = len(fields) == 3
            if value and value not in seen:
                seen[value] = (fields[0].decode("utf-8", "replace"), host)
            elif value and host:
                seen[value] = (seen[value][0], True)
    return [(lab, val, host) for val, (lab, host) in seen.items()]


def derived_forms(value):
    """[(form name, needle bytes)] for one secret."""
    forms = [("value", value)]
    text = value.decode("utf-8", "surrogateescape")
    if b"-----BEGIN" in value:
        # a PEM text: each long base64 line is key material on its own
        for line in text.splitlines():
            line = line.strip()
            if len(line) >= 40 and not line.startswith("-----"):
                forms.append(("PEM line", line.encode("utf-8", "surrogateescape")))
    js = json.dumps(text)[1:-1]
    forms.append(("JSON-escaped", js.encode("utf-8", "surrogateescape")))
    forms.append(("JSON-escaped /", js.replace("/", "\\/").encode("utf-8", "surrogateescape")))
    forms.append(("URL-encoded", quote(text, safe="").encode("ascii")))
    forms.append(("SQL literal", text.replace("'", "''").encode("utf-8", "surrogateescape")))
    out, seen = [], set()
    for name, needle in forms:
        if needle not in seen:
            seen.add(needle)
            out.append((name, needle))
    return out


def decompress(data, path):
    """The decompressed bytes of a gzip or zstd file, or None."""
    if data.startswith(GZIP_MAGIC):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            # truncated (e.g. a partial upload): what can be inflated
            d = zlib.decompressobj(zlib.MAX_WBITS | 16)
            try:
                return d.decompress(data)
            except zlib.error:
                return None
    if data.startswith(ZSTD_MAGIC):
        zstd = shutil.which("zstd")
        if not zstd:
            raise SystemExit("secret scan: %s is zstd-compressed and the zstd command is "
                             "missing; cannot scan it" % path)
        r = subprocess.run([zstd, "-dcq"], input=data, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
        return r.stdout  # what was decoded, even from a truncated frame
    return None


CHUNK = 1 << 20


def chunks(blob, overlap):
    """The blob in overlapping 1 MiB pieces, each distinct piece once: a
    needle of up to overlap+1 bytes lies whole in some piece, and large
    repetitive objects (test data) are searched once, not once per copy."""
    if len(blob) <= 2 * CHUNK:
        yield blob
        return
    seen = set()
    for start in range(0, len(blob), CHUNK):
        piece = blob[start:start + CHUNK + overlap]
        digest = hashlib.blake2b(piece, digest_size=16).digest()
        if digest not in seen:
            seen.add(digest)
            yield piece


def search_blob(blob, searched, max_needle):
    """[(label, value, form)] of the secrets found in blob, each once."""
    found = []
    left = list(searched)
    for piece in chunks(blob, max_needle):
        rest = []
        for label, value, forms in left:
            for form, needle in forms:
                if needle in piece:
                    found.append((label, value, form))
                    break
            else:
                rest.append((label, value, forms))
        left = rest
        if not left:
            break
    return found


def walk(paths, exclude):
    for p in paths:
        if os.path.isfile(p):
            yield p
            continue
        for root, dirs, files in os.walk(p):
            dirs.sort()
            for f in sorted(files):
                full = os.path.join(root, f)
                if any(fnmatch.fnmatch(f, g) for g in exclude):
                    continue
                if os.path.isfile(full) and not os.path.islink(full):
                    yield full


def scan(registry, paths, min_length=8, exclude=(), sql_log_glob="snowflake_sql*.log",
         out=sys.stdout):
    """Returns (number of secrets searched, files, findings, exempted clauses)."""
    secrets = read_registry(registry) if isinstance(registry, str) else registry
    secrets = [s if len(s) == 3 else (s[0], s[1], False) for s in secrets]
    long_enough = [(lab, val, derived_forms(val), host) for lab, val, host in secrets
                   if len(val) >= min_length]
    searched = [(lab, val, forms) for lab, val, forms, _ in long_enough]
    host_searched = [(lab, val, forms) for lab, val, forms, host in long_enough if host]
    short = len(secrets) - len(searched)
    max_needle = max((len(n) for _, _, forms in searched for _, n in forms), default=0)
    findings = []
    nfiles = 0
    exempted = 0
    for path in walk(paths, exclude):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise SystemExit("secret scan: cannot read %s: %s" % (path, e))
        nfiles += 1
        views = [("", data)]
        plain = decompress(data, path)
        if plain is not None:
            views.append((" (decompressed)", plain))
        views = [(how, blob, searched) for how, blob in views]
        if fnmatch.fnmatch(os.path.basename(path), sql_log_glob):
            blanked, n = CREDENTIALS_RE.subn(lambda m: m.group(1) + b"<credentials>" + m.group(3),
                                             data)
            exempted += n
            # host credentials: also inside CREDENTIALS = (...)
            views = [("", blanked, searched), (" (CREDENTIALS clauses)", data, host_searched)]
        for how, blob, which in views:
            for label, value, form in search_blob(blob, which, max_needle):
                findings.append((path + how, label, value, form))
    for path, label, value, form in findings:
        print("secret scan: FOUND %s in %s (%s, %s)" % (label, path, mask(value), form), file=out)
    return len(searched), short, nfiles, findings, exempted


def self_test():
    """Plant secrets in every kind of file the scan reads; fail if one is missed
    or if a clean tree gives a finding."""
    failures = []
    tmp = tempfile.mkdtemp(prefix="secret-scan-selftest.")
    try:
        pem = ("-----BEGIN PRIVATE KEY-----\n"
               + "\n".join(base64.b64encode(os.urandom(48)).decode() for _ in range(4))
               + "\n-----END PRIVATE KEY-----\n")
        secrets = {
            "aws": b"selfTestAws/Secret+" + base64.b16encode(os.urandom(8)),
            "pem": pem.encode(),
            "token": b"ya29.selftest-" + base64.b16encode(os.urandom(8)),
            "short": b"abc",
            "host": b"selfTestHostEnv/Secret+" + base64.b16encode(os.urandom(8)),
        }
        reg = os.path.join(tmp, "registry")
        with open(reg, "wb") as f:
            for k, v in secrets.items():
                f.write(k.encode() + b"\t" + base64.b64encode(v)
                        + (b"\thost" if k == "host" else b"") + b"\n")
        ev = os.path.join(tmp, "evidence")
        os.makedirs(os.path.join(ev, "clean"))
        with open(os.path.join(ev, "clean", "log"), "wb") as f:
            f.write(b"nothing to see here abc\n")
        _, short, nfiles, found, _ = scan(reg, [ev], out=open(os.devnull, "w"))
        if found or nfiles != 1 or short != 1:
            failures.append("clean tree: %d findings in %d files, %d short" % (len(found), nfiles, short))

        line2 = pem.splitlines()[2]
        plants = {
            "plain.log": b"ERROR: x " + secrets["aws"] + b" y\n",
            "object.gz": gzip.compress(b"id,v\n1," + secrets["token"] + b"\n"),
            "pemline.json": json.dumps({"private_key": "xx\n" + line2 + "\nyy"}).encode(),
            "url.txt": b"GET /?k=" + quote(secrets["aws"].decode(), safe="").encode(),
            "snowflake_sql.log": b"CREATE STAGE s URL='s3://b/' CREDENTIALS = (AWS_KEY_ID = 'A' "
                                 b"AWS_SECRET_KEY = '" + secrets["aws"] + b"')\n",
            "snowflake_sql2.log": b"COPY INTO t FROM @s -- " + secrets["token"] + b"\n",
            "snowflake_sql3.log": b"CREATE STAGE h URL='s3://b/' CREDENTIALS = (AWS_KEY_ID = 'A' "
                                  b"AWS_SECRET_KEY = '" + secrets["host"] + b"')\n",
        }
        if shutil.which("zstd"):
            plants["object.zst"] = subprocess.run(
                ["zstd", "-q", "-c"], input=b"row," + secrets["aws"] + b"\n",
                stdout=subprocess.PIPE, check=True).stdout
        expect = {
            "plain.log": "aws", "object.gz (decompressed)": "token", "pemline.json": "pem",
            "url.txt": "aws", "snowflake_sql2.log": "token", "object.zst (decompressed)": "aws",
            "snowflake_sql3.log (CREDENTIALS clauses)": "host",
        }
        if "object.zst" not in plants:
            del expect["object.zst (decompressed)"]
        for name, data in plants.items():
            with open(os.path.join(ev, name), "wb") as f:
                f.write(data)
        _, _, nfiles, found, exempted = scan(reg, [ev], out=open(os.devnull, "w"))
        # (a compressed file may also hold a short secret verbatim: not required)
        got = {os.path.relpath(p, ev): lab for p, lab, _, _ in found
               if os.path.relpath(p, ev) not in ("object.gz", "object.zst")}
        if got != expect:
            failures.append("planted secrets: expected %s, got %s" % (expect, got))
        if exempted != 2:
            failures.append("CREDENTIALS clauses exempted: %d, expected 2" % exempted)
        if nfiles != len(plants) + 1:
            failures.append("files read: %d, expected %d" % (nfiles, len(plants) + 1))
    finally:
        shutil.rmtree(tmp)
    for f in failures:
        print("secret scan self-test FAILED: %s" % f)
    if not failures:
        print("secret scan self-test: planted secrets found (plain, gzip, %sPEM line, URL, "
              "SQL log, host credential in CREDENTIALS), clean tree clean"
              % ("zstd, " if shutil.which("zstd") else ""))
    return 1 if failures else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registry")
    ap.add_argument("--self-test", action="store_true")
    ap.add_argument("--min-length", type=int, default=8)
    ap.add_argument("--exclude", action="append", default=[],
                    help="file name glob not to read (repeatable)")
    ap.add_argument("--sql-log-glob", default="snowflake_sql*.log")
    ap.add_argument("paths", nargs="*")
    a = ap.parse_args(argv)
    if a.self_test:
        return self_test()
    if not a.registry or not a.paths:
        ap.error("--registry and at least one PATH are needed")
    if not os.path.exists(a.registry):
        print("secret scan: no registry %s (no test registered a secret)" % a.registry)
        return 1
    n, short, nfiles, found, exempted = scan(a.registry, a.paths, a.min_length, a.exclude,
                                             a.sql_log_glob)
    print("secret scan: %d secrets x %d files, %d found (%d secrets under %d bytes not "
          "searched; %d CREATE STAGE CREDENTIALS clauses sent to Snowflake exempted)"
          % (n, nfiles, len(found), short, a.min_length, exempted))
    if n == 0 or nfiles == 0:
        print("secret scan: nothing to scan: a scan of nothing proves nothing")
        return 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
