#!/bin/bash
# The layers of src/ (docs/ARCHITECTURE.md, "Layers"), checked:
#
#   - every file of src/ has a row in the layer table of docs/ARCHITECTURE.md
#     (and every row names files that exist);
#   - no file includes a header of a layer above its own;
#   - no .c file declares something extern itself (declarations come from
#     the headers, so the include check sees every use);
#   - with built objects (src/*.o, after make): no file uses a function or
#     variable of a file in a layer above its own (the edges that
#     scripts/calls-graph.py reads from the objects; it also fails on a loop
#     inside a layer).
#
#   scripts/check-layers.sh          the checks above
#   scripts/check-layers.sh --list   the table as "file layer" lines
#
# Exit status 1 on any violation.  CI runs it after the build (scripts/test.sh).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DOC="$REPO/docs/ARCHITECTURE.md"
SRC="$REPO/src"

# bottom to top; a file may use its own layer and the ones below
LAYERS=(base protocols config clients model pipeline processes surface)
declare -A RANK=()
for i in "${!LAYERS[@]}"; do
	RANK[${LAYERS[$i]}]=$i
done

# rows of the "## Layers" section: | `src/a.c`, `src/a.h` | layer | ... |
declare -A LAYER=()
while IFS=$'\t' read -r files layer; do
	[ -n "${RANK[$layer]+x}" ] || { echo "check-layers: unknown layer \"$layer\" in docs/ARCHITECTURE.md for $files" >&2; exit 1; }
	for f in $files; do
		LAYER[$f]=$layer
	done
done < <(awk -F'|' '
	/^## / { inside = ($0 ~ /^## Layers/) }
	inside && /^\| *`src\// {
		files = $2; layer = $3
		gsub(/[`,]/, " ", files); gsub(/src\//, "", files)
		gsub(/^ +| +$/, "", layer); gsub(/ +/, " ", files); gsub(/^ +| +$/, "", files)
		print files "\t" layer
	}' "$DOC")

if [ "${1:-}" = --list ]; then
	for f in "${!LAYER[@]}"; do
		echo "$f ${LAYER[$f]}"
	done | sort -k2,2 -k1,1
	exit 0
fi

bad=0
fail() {
	echo "check-layers: $*" >&2
	bad=1
}

# every file has a layer, every row a file
for p in "$SRC"/*.c "$SRC"/*.h; do
	f=$(basename "$p")
	[ -n "${LAYER[$f]+x}" ] || fail "src/$f has no row in the layer table of docs/ARCHITECTURE.md"
done
for f in "${!LAYER[@]}"; do
	[ -f "$SRC/$f" ] || fail "docs/ARCHITECTURE.md lists src/$f, which does not exist"
done

# includes go down (or stay in the layer)
for p in "$SRC"/*.c "$SRC"/*.h; do
	f=$(basename "$p")
	[ -n "${LAYER[$f]+x}" ] || continue
	while read -r inc; do
		[ -n "${LAYER[$inc]+x}" ] || continue	# a PostgreSQL or system header
		if [ "${RANK[${LAYER[$inc]}]}" -gt "${RANK[${LAYER[$f]}]}" ]; then
			fail "src/$f (${LAYER[$f]}) includes $inc (${LAYER[$inc]}), a layer above it"
		fi
	done < <(sed -n 's/^#include "\([^"/]*\)".*/\1/p' "$p")
done

# no extern declarations outside headers
while IFS= read -r hit; do
	fail "extern declaration in a .c file (put it in the module's header): $hit"
done < <(grep -Hn '^[[:space:]]*\(extern\|PGDLLEXPORT\)\b' "$SRC"/*.c | sed "s|^$SRC/|src/|" || true)

# calls go down too (from the built objects)
if compgen -G "$SRC/*.o" >/dev/null; then
	graph=$(python3 "$REPO/scripts/calls-graph.py" "$SRC") || {
		echo "$graph" | sed -n '/^loop/,$p' >&2
		fail "calls-graph.py found a loop (above)"
	}
	while read -r from to; do
		[ -n "${LAYER[$from.c]+x}" ] && [ -n "${LAYER[$to.c]+x}" ] || continue
		if [ "${RANK[${LAYER[$to.c]}]}" -gt "${RANK[${LAYER[$from.c]}]}" ]; then
			fail "src/$from.c (${LAYER[$from.c]}) uses src/$to.c (${LAYER[$to.c]}), a layer above it"
		fi
	done < <(echo "$graph" | awk '/ -> / {
		from = $1
		for (i = 3; i <= NF; i++) { to = $i; sub(/\(.*/, "", to); print from, to }
	}')
else
	echo "check-layers: no src/*.o (run make first): calls not checked" >&2
fi

if [ "$bad" = 0 ]; then
	echo "check-layers: ${#LAYER[@]} files in ${#LAYERS[@]} layers, every include and call goes down"
fi
exit "$bad"
