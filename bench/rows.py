#!/usr/bin/python3
"""bench/rows.py N: write the CSV of bench/flush's rows 1..N to stdout.

The same text as `COPY (SELECT * FROM src) TO STDOUT (FORMAT csv)` of the
table bench/flush fills (TimeZone UTC), without a cluster: the input of
bench/compress.  jsonb prints keys shortest first, then bytewise, with ": "
and ", " separators; CSV quotes a field holding '"' or ',' and doubles its
quotes.
"""
import datetime
import hashlib
import sys

n = int(sys.argv[1])
start = datetime.datetime(2024, 1, 1)
md5 = lambda s: hashlib.md5(s.encode()).hexdigest()
out = sys.stdout
buf = []
for g in range(1, n + 1):
    at = (start + datetime.timedelta(seconds=g)).strftime("%Y-%m-%d %H:%M:%S+00")
    props = '{"n": %d, "ref": "%s", "path": "/p/%d", "agent": "Mozilla/5.0 (X11; Linux x86_64) bench/%d", "session": "%s"}' % (
        g, md5(str(g)), g % 997, g % 13, md5(str(g // 10)))
    buf.append('%d,kind_%d,%s,"%s"\n' % (g, g % 7, at, props.replace('"', '""')))
    if len(buf) == 10000:
        out.write("".join(buf))
        buf = []
out.write("".join(buf))
