#!/bin/bash
# Run the pg_regress and TAP suites with memory checking (docs/reliability.md),
# then leave a normal build behind.
#
#   scripts/sanitize-tests.sh [suite [files]]                 valgrind (default)
#   SANITIZER=asan scripts/sanitize-tests.sh [suite [files]]  ASan + UBSan build
#
# valgrind: the normal build; every postgres process runs under memcheck
# and each report with a frame in sfexport.so fails the run.
# asan: "make SANITIZE=1" and the ASan runtime preloaded into postgres
# (scripts/sanitize-wrap.sh).  NOTE: on Debian 12 (glibc 2.36, gcc 12 and
# clang 14 runtimes) a preloaded ASan runtime deadlocks the postgres
# executable in bindtextdomain() at startup; see docs/reliability.md.
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
MODE=${SANITIZER:-valgrind}
make -s clean >/dev/null
if [ "$MODE" = asan ]; then
	make -s SANITIZE=1 2>&1 | { grep -E "warning:|error:" && exit 1 || true; } || exit 1
	export SFEXPORT_SANITIZE=1
else
	command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
	make -s 2>&1 | { grep -E "warning:|error:" && exit 1 || true; } || exit 1
	export SFEXPORT_SANITIZE=valgrind
fi
rc=0
if [ $# -gt 0 ]; then
	bash scripts/run-tests.sh "$@" || rc=1
else
	bash scripts/run-tests.sh regress || rc=1
	bash scripts/run-tests.sh tap || rc=1
fi
if [ "$MODE" = asan ]; then
	make -s clean >/dev/null
	make -s
fi
exit $rc
