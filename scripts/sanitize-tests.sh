#!/bin/bash
# Run the pg_regress and TAP suites with the extension under a checker
# (docs/reliability.md), failing on any report:
#
#   scripts/sanitize-tests.sh [asan|ubsan|valgrind] [regress | tap [files] | quick | selftest]
#
#   asan      (default) "make SANITIZE=asan": AddressSanitizer + UBSan in
#             sfexport.so, ASan runtime preloaded into the stock postgres
#   ubsan     "make SANITIZE=ubsan": UBSan only (fastest)
#   valgrind  normal build, every postgres process under memcheck (slow:
#             a full TAP run takes about an hour)
#
# Without a suite both pg_regress and every TAP file run; "quick" is
# pg_regress plus the TAP files 030_pipeline, 012_storage_s3,
# 021_snowflake_statements, 051_glue_errors and 070_snowpipe (what
# scripts/run-tests.sh runs under ASan + UBSan in its full run; 051 and 070
# are where ASan found use-after-free bugs).  "selftest" (asan, ubsan)
# builds in scripts/sanitizer-canary.c, a deliberate bug, and passes only if
# pg_regress then fails with the matching report.  The build happens in a copy of the
# source tree, so the checkout's own build is not touched.  A run fails when
# a test fails or when any report was written (scripts/run-tests.sh prints
# them); SFEXPORT_TIME_SCALE (default 3 for asan and ubsan, 10 for valgrind)
# stretches the few wall-clock bounds that TAP tests assert
# (SfTest::time_scale).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
MODE=${SANITIZER:-asan}	# SANITIZER=...: older spelling
case "${1:-}" in
	asan|ubsan|valgrind) MODE=$1; shift ;;
esac
case "$MODE" in
	asan) BUILD="SANITIZE=asan"; SCALE=3 ;;
	ubsan) BUILD="SANITIZE=ubsan"; SCALE=3 ;;
	valgrind) BUILD=""; SCALE=10
		command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; } ;;
	*) echo "unknown checker $MODE (asan, ubsan or valgrind)" >&2; exit 2 ;;
esac
export SFEXPORT_TIME_SCALE=${SFEXPORT_TIME_SCALE:-$SCALE}
# PostgreSQL::Test::Utils' waits (poll_query_until and friends), 180 s normally
export PG_TEST_TIMEOUT_DEFAULT=${PG_TEST_TIMEOUT_DEFAULT:-$(awk -v s="$SFEXPORT_TIME_SCALE" 'BEGIN { print int(180 * s) }')}
export SFEXPORT_SANITIZE=$MODE

# build in a private copy of the sources
COPY=$(mktemp -d /tmp/sfexport-sanitize.XXXXXX)
trap 'rm -rf "$COPY"' EXIT
tar -C "$REPO" --exclude=.git --exclude=fuzz/build --exclude='*.o' --exclude='*.bc' \
	--exclude='*.so' -cf - . | tar -C "$COPY" -xf -
if [ "${1:-}" = selftest ]; then
	[ "$MODE" = valgrind ] && { echo "selftest is for asan and ubsan" >&2; exit 2; }
	cp "$REPO/scripts/sanitizer-canary.c" "$COPY/src/"
fi
echo "== $MODE: building ($BUILD) in $COPY"
out=$(make -s -C "$COPY" $BUILD 2>&1) || { echo "$out"; exit 1; }
if echo "$out" | grep -E "warning:|error:"; then exit 1; fi

start=$(date +%s)
rc=0
case "${1:-}" in
	"")
		bash "$COPY/scripts/run-tests.sh" regress || rc=1
		bash "$COPY/scripts/run-tests.sh" tap || rc=1 ;;
	quick)
		bash "$COPY/scripts/run-tests.sh" regress || rc=1
		bash "$COPY/scripts/run-tests.sh" tap test/t/030_pipeline.pl test/t/012_storage_s3.pl \
			test/t/021_snowflake_statements.pl test/t/051_glue_errors.pl test/t/070_snowpipe.pl || rc=1 ;;
	selftest)
		canary=$MODE
		expect="ERROR: AddressSanitizer: heap-buffer-overflow"
		[ "$MODE" = ubsan ] && expect="runtime error: shift exponent 40"
		[ "$MODE" = asan ] && [ "${SFEXPORT_LEAKS:-0}" = 1 ] &&
			{ canary=leak; expect="in sfexport_sanitizer_canary src/sanitizer-canary.c"; }
		out=$(SFEXPORT_SANITIZER_CANARY=$canary bash "$COPY/scripts/run-tests.sh" regress 2>&1) &&
			{ echo "$out"; echo "== selftest: the run passed despite the canary" >&2; rc=1; }
		if [ $rc -eq 0 ] && ! grep -q -- "$expect" <<<"$out"; then
			echo "$out"; echo "== selftest: no \"$expect\" report" >&2; rc=1
		fi
		[ $rc -eq 0 ] && { grep -m1 -A3 -- "$expect" <<<"$out";
			echo "== selftest: the canary failed the run with the expected report"; }
		# the work directory of that (expected) failure
		kept=$(sed -n 's/^== FAILED (work directory kept: \(\/tmp\/sfexport-test\.[A-Za-z0-9]*\))$/\1/p' <<<"$out")
		[ -n "$kept" ] && rm -rf "$kept" ;;
	*)
		bash "$COPY/scripts/run-tests.sh" "$@" || rc=1 ;;
esac
echo "== $MODE: $(( $(date +%s) - start )) s, $([ $rc -eq 0 ] && echo PASSED || echo FAILED)"
exit $rc
