#!/usr/bin/env python3
"""Which source file calls which, from the built objects (nm), and the loops among them.

Usage: calls-graph.py [OBJ_DIR=src]   (run after `make`; reads OBJ_DIR/*.o)
Prints, for every file, the files whose functions or variables it uses, then every strongly
connected group of two or more files (a loop: A uses B and B, directly or not, uses A).
Exit status 1 when there is a loop. A layered design has none: each file uses only files
below it.

A copy of the project's shared tool (shared/tools/calls-graph.py), kept here so that CI's
clone has it; scripts/check-layers.sh and scripts/test.sh run it after the build.
"""
import collections, glob, os, subprocess, sys

d = sys.argv[1] if len(sys.argv) > 1 else "src"
objs = sorted(glob.glob(os.path.join(d, "*.o")))
if not objs:
    sys.exit("no %s/*.o: run make first" % d)
defs, uses = {}, collections.defaultdict(set)
for o in objs:
    name = os.path.basename(o)[:-2]
    out = subprocess.run(["nm", o], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDBRC":
            defs[parts[2]] = name
        elif len(parts) == 2 and parts[0] == "U":
            uses[name].add(parts[1])
edges = collections.defaultdict(lambda: collections.defaultdict(list))
for f, syms in uses.items():
    for s in syms:
        g = defs.get(s)
        if g and g != f:
            edges[f][g].append(s)
names = sorted({os.path.basename(o)[:-2] for o in objs})
for f in names:
    if edges[f]:
        print("%s -> %s" % (f, ", ".join("%s(%d)" % (g, len(v)) for g, v in sorted(edges[f].items()))))
# Tarjan's strongly connected components
index, low, stack, on, comps, i = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = i[0]; i[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v:
                break
        if len(c) > 1:
            comps.append(sorted(c))
sys.setrecursionlimit(10000)
for v in names:
    if v not in index:
        visit(v)
for c in comps:
    print("\nloop of %d files: %s" % (len(c), ", ".join(c)))
    for f in c:
        for g in c:
            if g in edges[f]:
                print("  %s -> %s: %s" % (f, g, ", ".join(sorted(edges[f][g])[:6])))
print("\n%d files, %d loops" % (len(names), len(comps)))
sys.exit(1 if comps else 0)
