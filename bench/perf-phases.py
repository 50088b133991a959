#!/usr/bin/python3
"""bench/perf-phases.py PID [ROWS]: where a worker's CPU time went.

Reads `perf script -F tid,ip,sym,dso` (call graphs) on stdin and sorts each
sample into a phase by the innermost frame of its stack that names one:

  upload    sf_storage_write / sf_storage_finish and below (the part buffer,
            SigV4 hashing, libcurl, the socket)
  compress  sf_compress_write / sf_compress_finish and below, or any frame in
            libz / libisal / libzstd (zstd's own worker threads included)
  render    sf_outbox_render and below (binary payload -> CSV record)
  outbox    the rest of stage_tuple / sf_flush_*: the outbox scan, heap
            access, detoasting
  other     everything else (SPI, manifest rows, the worker loop, ...)

Prints samples and share per phase, split into the worker's own thread
(tid == PID) and other threads, and with ROWS the CPU time per row if the
total CPU seconds are given as a third argument; then the functions that
take the most samples themselves (leaf frames) in each phase.
"""
import collections
import sys

pid = sys.argv[1]
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 0
cpu_s = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0

MARKERS = [
    ("upload", ("sf_storage_write", "sf_storage_finish")),
    ("compress", ("sf_compress_write", "sf_compress_finish")),
    ("render", ("sf_outbox_render",)),
    ("outbox", ("stage_tuple", "sf_flush_drain", "sf_flush_one_file")),
]
COMPRESS_DSOS = ("libz.so", "libisal.so", "libzstd.so")


def phase(frames):
    """frames: (sym, dso), leaf first."""
    for sym, dso in frames:
        for name, syms in MARKERS:
            if sym.split("+")[0] in syms:
                return name
        if any(d in dso for d in COMPRESS_DSOS):
            return "compress"
    return "other"


counts = collections.Counter()
leaves = collections.Counter()
tid = None
frames = []


def flush():
    if tid is not None:
        p = phase(frames)
        counts[("main" if tid == pid else "threads", p)] += 1
        if frames:
            leaves[(p, frames[0][0].split("+")[0], frames[0][1].rsplit("/", 1)[-1])] += 1


for line in sys.stdin:
    s = line.strip()
    if not s:
        continue
    parts = s.split()
    if len(parts) == 1 and parts[0].isdigit():
        flush()
        tid, frames = parts[0], []
        continue
    # "ip sym+off (dso)" or "ip [unknown] (dso)"
    if len(parts) >= 2:
        dso = parts[-1].strip("()")
        sym = " ".join(parts[1:-1]) if len(parts) > 2 else "[unknown]"
        frames.append((sym, dso))
flush()

total = sum(counts.values())
if total == 0:
    sys.exit("no samples")
print("   %-9s %8s %8s %8s %7s%s" % ("phase", "main", "threads", "all", "share",
                                     "   us/row" if rows and cpu_s else ""))
for name in ["render", "compress", "upload", "outbox", "other"]:
    m, t = counts[("main", name)], counts[("threads", name)]
    extra = ""
    if rows and cpu_s:
        extra = "   %6.2f" % ((m + t) / total * cpu_s / rows * 1e6)
    print("   %-9s %8d %8d %8d %6.1f%%%s" % (name, m, t, m + t, 100.0 * (m + t) / total, extra))
print("   %-9s %8d %8d %8d" % ("total", sum(v for k, v in counts.items() if k[0] == "main"),
                               sum(v for k, v in counts.items() if k[0] == "threads"), total))
print("   top functions (self) by phase:")
for name in ["render", "compress", "upload", "outbox", "other"]:
    top = [(k, v) for k, v in leaves.most_common() if k[0] == name][:4]
    print("   %-9s %s" % (name, ", ".join("%s (%s) %.1f%%" % (k[1], k[2], 100.0 * v / total) for k, v in top)))
