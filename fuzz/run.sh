#!/bin/bash
# Run every fuzz harness for N seconds each (default 20) and summarize.
#
#   fuzz/run.sh [seconds] [target ...]
#
# Builds first (fuzz/build.sh, its output in fuzz/build/build.log) unless
# FUZZ_NO_BUILD=1.  Each target starts from its committed seed corpus
# (fuzz/corpus/<target>/), copied into a work corpus under fuzz/build/work/
# that grows across runs (delete it for a fresh start).  Prints one line per target with executions, new corpus
# entries and crashes, then "N passed, N failed".  A crash leaves its input
# as fuzz/build/artifacts/<target>-crash-* (or leak-, timeout-, oom-);
# reproduce with: fuzz/build/fuzz_<target> <that file>.
set -uo pipefail

FUZZ=$(cd "$(dirname "$0")" && pwd)
OUT=${FUZZ_BUILD_DIR:-$FUZZ/build}
SECS=${1:-20}
[ $# -gt 0 ] && shift
TARGETS=${*:-snowflake s3 gcs encode sigv4}

if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
	mkdir -p "$OUT"
	"$FUZZ/build.sh" $TARGETS > "$OUT/build.log" 2>&1 || {
		cat "$OUT/build.log"; echo "fuzz build failed"; exit 1; }
	grep '^built' "$OUT/build.log"
fi

mkdir -p "$OUT/work" "$OUT/artifacts"
passed=0
failed=0
for t in $TARGETS; do
	work="$OUT/work/$t"
	mkdir -p "$work"
	cp -n "$FUZZ/corpus/$t/"* "$work/" 2>/dev/null || true
	before=$(ls "$work" | wc -l)
	rm -f "$OUT/artifacts/$t-"*
	log="$OUT/fuzz_$t.log"
	"$OUT/fuzz_$t" -max_total_time="$SECS" -print_final_stats=1 -max_len=65536 \
		-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$OUT/artifacts/$t-" \
		"$work" > "$log" 2>&1
	rc=$?
	execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
	[ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
	crashes=$(ls "$OUT/artifacts/$t-"* 2>/dev/null | wc -l)
	after=$(ls "$work" | wc -l)
	if [ $rc -eq 0 ] && [ "$crashes" -eq 0 ]; then
		status=ok
		passed=$((passed + 1))
	else
		status=FAILED
		failed=$((failed + 1))
	fi
	printf 'fuzz %-10s %s: %s executions in %ss, corpus %d -> %d, %d crashes\n' \
		"$t" "$status" "${execs:-0}" "$SECS" "$before" "$after" "$crashes"
	if [ "$status" = FAILED ]; then
		grep -E 'ERROR: |SUMMARY|fuzz invariant|server function .* reached' "$log" | head -5 | sed 's/^/    /'
		for a in "$OUT/artifacts/$t-"*; do [ -f "$a" ] && echo "    input: $a"; done
	fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
