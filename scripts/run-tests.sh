#!/bin/bash
# Run the sfexport test suites against the current build (run `make` first).
#
#   scripts/run-tests.sh                 all suites
#   scripts/run-tests.sh regress         pg_regress only
#   scripts/run-tests.sh tap [t/x.pl..]  TAP only (optionally some files)
#   scripts/run-tests.sh emulators       the stand-ins' own unit tests
#   scripts/run-tests.sh fuzz [secs]     libFuzzer harnesses, short run (fuzz/)
#   scripts/run-tests.sh sanitize        short ASan + UBSan pass: pg_regress and
#                                        five TAP files with a sanitizer build
#                                        (scripts/sanitize-tests.sh asan quick)
#
# The build is installed into a private tree under a work directory
# (${TMPDIR:-/tmp}/sfexport-test.*), as PostgreSQL's own "make check" does,
# so test runs of different checkouts never share an installation.  Clusters
# run as an unprivileged user: when started as root, everything below runs
# as "postgres" in that work directory, which it can write.  PG_CONFIG picks
# the PostgreSQL to test against (default: the pg_config on PATH): the
# private installation, pg_regress, the PostgreSQL::Test modules, the fuzz
# build and the sanitizer build all follow it.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
TEST_USER=${SFEXPORT_TEST_USER:-postgres}

if [ "${1:-}" != "--inner" ]; then
	# ---- preparation, as the invoking user (root on CI) ----
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/sfexport-test.XXXXXX")
	chmod 755 "$WORK"
	bash "$REPO/scripts/private-install.sh" "$WORK/install"
	# SFEXPORT_SANITIZE=asan|ubsan|valgrind: run postgres under that checker
	# (scripts/sanitize-wrap.sh; asan and ubsan need the matching
	# "make SANITIZE=..." build, scripts/sanitize-tests.sh does all of it)
	case "${SFEXPORT_SANITIZE:-0}" in
		0) ;;
		1|asan) bash "$REPO/scripts/sanitize-wrap.sh" "$WORK/install$($PG_CONFIG --bindir)" "$WORK/sanitizer" asan ;;
		*) bash "$REPO/scripts/sanitize-wrap.sh" "$WORK/install$($PG_CONFIG --bindir)" "$WORK/sanitizer" "$SFEXPORT_SANITIZE" ;;
	esac
	# a copy of the sources the test user can read
	mkdir -p "$WORK/src"
	tar -C "$REPO" --exclude=.git --exclude=fuzz/build -cf - . | tar -C "$WORK/src" -xf -
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "$TEST_USER" "$WORK"
		exec runuser -u "$TEST_USER" -- env WORK="$WORK" PG_CONFIG="$PG_CONFIG" \
			bash "$WORK/src/scripts/run-tests.sh" --inner "$@"
	fi
	WORK="$WORK" exec bash "$WORK/src/scripts/run-tests.sh" --inner "$@"
fi
shift

# ---- the suites, as the test user ----
# SFEXPORT_CORES=1: let crashing backends write core files (in their data dir)
[ -n "${SFEXPORT_CORES:-}" ] && ulimit -c unlimited
SRC="$WORK/src"
PGXS_DIR=$(dirname "$($PG_CONFIG --pgxs)")/../..
BINDIR="$WORK/install$($PG_CONFIG --bindir)"
SYS_PG_CONFIG=$(command -v "$PG_CONFIG")	# headers and libs (fuzz build)
export PATH="$BINDIR:$PATH"
export PYTHON=/usr/bin/python3
# The tests' clusters never ask this machine's own cloud identity: no EC2 or
# GCE metadata, no ~/.aws of the user running them (the credential tests,
# 023-029, point these at their stand-ins; docs/credentials.md)
export AWS_EC2_METADATA_DISABLED=true NO_GCE_CHECK=True
export AWS_CONFIG_FILE=/nonexistent/aws-config AWS_SHARED_CREDENTIALS_FILE=/nonexistent/aws-credentials
unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ROLE_ARN AWS_WEB_IDENTITY_TOKEN_FILE \
	AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_CREDENTIALS_FULL_URI
cd "$SRC"

what=${1:-all}
[ $# -gt 0 ] && shift
failed=0

run_regress() {
	# "make installcheck" itself (the Makefile's REGRESS list and
	# REGRESS_OPTS), pointed at a temporary instance of the private install
	echo "== pg_regress: make installcheck in a temporary instance"
	make -s -C "$SRC" --no-print-directory installcheck PG_CONFIG="$SYS_PG_CONFIG" \
		DESTDIR="$WORK/install" \
		EXTRA_REGRESS_OPTS="--temp-instance=$WORK/regress-instance --bindir=$BINDIR --outputdir=$WORK/regress --port=$((20000 + RANDOM % 20000))" ||
		{ failed=1; [ -f "$WORK/regress/regression.diffs" ] && cat "$WORK/regress/regression.diffs"; }
}

tap_ran=0
tap_all=0
run_tap() {
	local files=("$@")
	[ ${#files[@]} -eq 0 ] && { files=(test/t/*.pl); tap_all=1; }
	# SFEXPORT_TAP_JOBS files at a time (prove -j; default 3): the files
	# mostly wait on timers and services, each cluster and stand-in takes a
	# free port of its own and PostgreSQL::Test::Cluster locks the ports it
	# picks, so they run side by side (docs/testing.md, "Isolation")
	local jobs=${SFEXPORT_TAP_JOBS:-3}
	echo "== TAP: ${#files[@]} files, $jobs at a time"
	mkdir -p "$WORK/tap" "$WORK/evidence"
	# the suite-wide secrets registry and the evidence the tests leave for
	# the secret scan (test/lib/SfTest.pm, scripts/secret-scan.py)
	install -m 600 /dev/null "$WORK/secrets.registry"
	tap_ran=1
	# clusters and logs under $WORK/tap/tmp_check: PostgreSQL 15's
	# PostgreSQL::Test::Utils derives them from TESTDIR, later ones (18) take
	# TESTDATADIR and TESTLOGDIR (else ./tmp_check and ./log)
	SFEXPORT_SECRETS_FILE="$WORK/secrets.registry" SFEXPORT_EVIDENCE_DIR="$WORK/evidence" \
	TESTDIR="$WORK/tap" TESTDATADIR="$WORK/tap/tmp_check" TESTLOGDIR="$WORK/tap/tmp_check/log" \
	PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
	SFEXPORT_SRC="$SRC" \
		prove --timer -j "$jobs" -I "$PGXS_DIR/src/test/perl" -I "$SRC/test/lib" "${files[@]}" \
		2>&1 | tee "$WORK/tap/prove.out" || {
			failed=1
			for f in "$WORK"/tap/tmp_check/log/*; do
				[ -f "$f" ] || continue
				echo "---- tail of $f"; tail -n 40 "$f"
			done
		}
}

# What failed, printed last (CI keeps the end of the output): the TAP files
# prove reported, each with the end of its own log, where its failed
# assertions and their diagnostics are
report_tap_failures() {
	[ -f "$WORK/tap/prove.out" ] || return 0
	local bad
	bad=$(sed -n '/^Test Summary Report/,$p' "$WORK/tap/prove.out" |
		grep -oE '^test/t/[0-9A-Za-z_]+\.pl' | sort -u) || true
	[ -n "$bad" ] || return 0
	for t in $bad; do
		local log="$WORK/tap/tmp_check/log/regress_log_$(basename "$t" .pl)"
		echo "---- $t failed; its failed assertions and the end of $log:"
		[ -f "$log" ] && { grep -n -A 6 '^not ok' "$log" | head -n 60; tail -n 30 "$log"; }
	done
	echo "---- prove's summary"
	sed -n '/^Test Summary Report/,$p' "$WORK/tap/prove.out"
}

# After TAP: search the server logs, view dumps, error messages, staged
# files and the SQL the Snowflake and Glue stand-ins received for every
# secret the tests registered.  The scanner first proves it can find a
# planted secret (plain, gzip, zstd).
scan_secrets() {
	echo "== secret scan"
	/usr/bin/python3 scripts/secret-scan.py --self-test || { failed=1; return; }
	if [ ! -s "$WORK/secrets.registry" ] && [ $tap_all -eq 0 ]; then
		echo "secret scan: these test files registered no secrets; nothing to search for"
		return
	fi
	/usr/bin/python3 scripts/secret-scan.py --registry "$WORK/secrets.registry" \
		"$WORK/evidence" "$WORK/tap/tmp_check/log" || failed=1
}

run_emulators() {
	local found=0
	# each stand-in's folder (and lib/) holds its unit tests: test_*.py
	for t in $(ls test/emulators/*/test_*.py | sort); do
		found=1
		echo "== emulator tests: $t"
		# (the stand-ins' own tests drive botocore's IMDS fetcher at the
		# stand-in, which AWS_EC2_METADATA_DISABLED above would switch off)
		(cd "$(dirname "$t")" && env -u AWS_EC2_METADATA_DISABLED -u NO_GCE_CHECK \
			/usr/bin/python3 -m unittest -q "$(basename "$t" .py)") || failed=1
	done
	[ $found -eq 1 ] || echo "== emulator tests: none yet"
	echo "== secret scanner self-test"
	/usr/bin/python3 scripts/secret-scan.py --self-test || failed=1
}

run_fuzz() {
	# clang with libFuzzer and the sanitizer runtimes (scripts/packages.txt)
	if ! command -v clang >/dev/null 2>&1; then
		echo "== fuzz: SKIPPED, clang is not installed (apt-get install clang libclang-rt-14-dev)"
		return
	fi
	echo "== fuzz: ${1:-${SFEXPORT_FUZZ_SECONDS:-20}} s per target"
	PG_CONFIG="$SYS_PG_CONFIG" FUZZ_BUILD_DIR="$WORK/fuzz" bash fuzz/run.sh "${1:-${SFEXPORT_FUZZ_SECONDS:-20}}" || failed=1
}

run_sanitize() {
	# its own UBSan build in a copy of the sources, its own private install
	echo "== sanitize: ASan + UBSan build, pg_regress + TAP 030, 012, 021, 051, 070"
	env -u SFEXPORT_SANITIZE PG_CONFIG="$SYS_PG_CONFIG" bash "$SRC/scripts/sanitize-tests.sh" asan quick || failed=1
}

case "$what" in
	all) run_regress; run_emulators; run_fuzz; run_tap; run_sanitize ;;
	sanitize) run_sanitize ;;
	fuzz) run_fuzz "$@" ;;
	regress) run_regress ;;
	tap) run_tap "$@" ;;
	emulators) run_emulators ;;
	*) echo "unknown suite: $what" >&2; exit 2 ;;
esac
if [ $tap_ran -eq 1 ]; then scan_secrets; fi

if [ -d "$WORK/sanitizer" ]; then
	# valgrind logs every process; keep those with an error in sfexport.so
	for f in "$WORK"/sanitizer/vg.*; do
		[ -f "$f" ] && ! grep -q 'sfexport\.so' "$f" && rm -f "$f"
	done
	# LeakSanitizer (SFEXPORT_LEAKS=1) reports every process's exit-time
	# leaks, PostgreSQL's own included; keep those allocated by sfexport code
	# (a postmaster's check runs after pg_ctl saw it gone: give it time)
	[ "${SFEXPORT_LEAKS:-0}" = 1 ] && sleep 5
	for f in "$WORK"/sanitizer/asan.*; do
		[ -f "$f" ] || continue
		grep -q 'ERROR: AddressSanitizer' "$f" && continue
		grep -q 'ERROR: LeakSanitizer' "$f" || continue
		grep -q -E ' src/[a-z_0-9-]+\.c:[0-9]+|sfexport\.so' "$f" || rm -f "$f"
	done
	# a report that missed its file (options not seen) still reaches the
	# server log through stderr
	grep -E -l ': runtime error: |^==[0-9]+==ERROR: [A-Za-z]+Sanitizer|^SUMMARY: [A-Za-z]+Sanitizer' \
		"$WORK"/regress/log/*.log "$WORK"/tap/tmp_check/log/*.log 2>/dev/null |
		while read -r f; do cp "$f" "$WORK/sanitizer/in-server-log.$(basename "$f")"; done || true
	reports=$(ls "$WORK/sanitizer" | wc -l)
	echo "== sanitizers: $reports report(s) in $WORK/sanitizer"
	if [ "$reports" -gt 0 ]; then
		failed=1
		for f in "$WORK"/sanitizer/*; do echo "---- $f"; head -n 40 "$f"; done
	fi
fi

if [ $failed -ne 0 ]; then
	report_tap_failures
	echo "== FAILED (work directory kept: $WORK)"
	exit 1
fi
echo "== all tests passed"
# (the secret scan's evidence holds copies of every staged object: tens of MB)
rm -rf "$WORK/install" "$WORK/regress-instance" "$WORK/evidence" "$WORK/secrets.registry"
