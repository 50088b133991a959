#!/bin/bash
# Run the sfexport tests on a fresh Debian 12 machine, as root: install
# packages, then for each PostgreSQL version build (any compiler warning
# fails it) and run the suites (clusters owned by the unprivileged
# "postgres" user).  This is the command README.md gives and .ci/run calls.
#
#   scripts/test.sh               PostgreSQL 15: everything scripts/run-tests.sh
#                                 runs; PostgreSQL 18: pg_regress and the TAP
#                                 files in SUBSET_TAP below
#   scripts/test.sh SUITE [ARGS]  scripts/run-tests.sh SUITE [ARGS] on each version
#
#   SFEXPORT_TEST_PG="15 18"      the versions, in order (default); the first
#                                 gets the whole suite, the others the subset
#   SFEXPORT_PG_CONFIG_<major>    that version's pg_config; by default Debian's
#                                 /usr/lib/postgresql/<major>/bin/pg_config, or
#                                 else a build from source (scripts/build-postgres.sh,
#                                 cached outside the checkout)
#
# The first version is built in the checkout and, if it is Debian's,
# installed into that PostgreSQL (as root); the others are built in a copy
# of the sources, so the checkout's build stays the first version's.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"

# The TAP files run on every version after the first (README.md, "Supported
# PostgreSQL versions", says why these and what they take): capture and the
# outbox (001, 002), the SQL scripts and the version check (003, 004), the
# Snowflake client's key-pair auth (020), the worker pipeline (030), crash
# recovery and failover (031, 032), setup (040, 041), Glue (050, 051), the
# worker's SQL as other roles see it and flush() by the database owner
# (080), the privilege model with ordinary roles (082; role management
# changed in PostgreSQL 16), flush(wait => true) with its own wait event
# (090) and tracked tables' C triggers and snapshot (100).
# The whole TAP suite a second time does not fit CI's 30 minutes.
SUBSET_TAP=(
	test/t/001_capture_durability.pl
	test/t/002_outbox_segments.pl
	test/t/003_upgrade.pl
	test/t/004_pg_versions.pl
	test/t/020_snowflake_auth.pl
	test/t/030_pipeline.pl
	test/t/031_crash_exactly_once.pl
	test/t/032_standby_promotion.pl
	test/t/040_setup.pl
	test/t/041_setup_pipeline.pl
	test/t/050_glue_sync.pl
	test/t/051_glue_errors.pl
	test/t/080_security_sql.pl
	test/t/082_security_roles.pl
	test/t/090_flush_wait.pl
	test/t/100_track.pl
)

bash scripts/setup-machine.sh

pg_config_for() {	# major -> its pg_config (built from source if need be)
	local var=SFEXPORT_PG_CONFIG_$1
	if [ -n "${!var:-}" ]; then
		echo "${!var}"
	elif [ -x "/usr/lib/postgresql/$1/bin/pg_config" ]; then
		echo "/usr/lib/postgresql/$1/bin/pg_config"
	else
		bash "$REPO/scripts/build-postgres.sh" "$1"
	fi
}

build() {	# dir pg_config: a clean build; any warning fails it
	local out
	make -s -C "$1" PG_CONFIG="$2" clean >/dev/null
	out=$(make -s -C "$1" PG_CONFIG="$2" 2>&1) || { echo "$out"; return 1; }
	if grep -E "warning:|error:" <<<"$out"; then return 1; fi
}

layers() {	# dir: src/ calls only downward (docs/ARCHITECTURE.md, "Layers"):
	# no loop between files, no include or call of a layer above
	local graph
	graph=$(python3 "$1/scripts/calls-graph.py" "$1/src") || { echo "$graph"; return 1; }
	echo "$graph" | tail -1
	bash "$1/scripts/check-layers.sh"
}

failed=()
first=1
# each version's output, so that what failed is repeated at the very end
outs=$(mktemp -d "${TMPDIR:-/tmp}/sfexport-outs.XXXXXX")
trap 'rm -rf "$outs"' EXIT
for major in ${SFEXPORT_TEST_PG:-15 18}; do
	start=$(date +%s)
	rc=0
	pgc=$(pg_config_for "$major") || { failed+=("$major (no PostgreSQL)"); first=0; continue; }
	echo "== PostgreSQL $major: $($pgc --version), $pgc"
	if [ $first -eq 1 ]; then
		dir=$REPO
	else
		dir=$(mktemp -d "${TMPDIR:-/tmp}/sfexport-pg$major.XXXXXX")
		tar -C "$REPO" --exclude=.git --exclude=fuzz/build --exclude='*.o' --exclude='*.bc' \
			--exclude='*.so' -cf - . | tar -C "$dir" -xf -
	fi
	echo "== build (PostgreSQL $major)"
	if ! build "$dir" "$pgc"; then
		rc=1
	elif echo "== layers (PostgreSQL $major)" && ! layers "$dir"; then
		rc=1
	else
		# (into a system PostgreSQL only: a cached source build stays as built)
		if [ $first -eq 1 ] && [ "$(id -u)" -eq 0 ] && [[ $pgc == /usr/lib/postgresql/* ]]; then
			echo "== make install"
			make -s -C "$dir" PG_CONFIG="$pgc" install >/dev/null
		fi
		if [ $# -gt 0 ] || [ $first -eq 1 ]; then
			PG_CONFIG=$pgc bash "$dir/scripts/run-tests.sh" "$@" 2>&1 | tee -a "$outs/$major" || rc=1
		else
			PG_CONFIG=$pgc bash "$dir/scripts/run-tests.sh" regress 2>&1 | tee -a "$outs/$major" || rc=1
			PG_CONFIG=$pgc bash "$dir/scripts/run-tests.sh" tap "${SUBSET_TAP[@]}" 2>&1 |
				tee -a "$outs/$major" || rc=1
		fi
	fi
	[ "$dir" = "$REPO" ] || rm -rf "$dir"
	echo "== PostgreSQL $major: $([ $rc -eq 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - start )) s"
	[ $rc -eq 0 ] || failed+=("$major")
	first=0
done

if [ ${#failed[@]} -gt 0 ]; then
	for major in "${failed[@]}"; do
		[ -f "$outs/$major" ] || continue
		echo "== what failed on PostgreSQL $major"
		# run-tests.sh's closing report (the failed TAP files), else the
		# lines that name a failure
		sed -n '/^---- test\/t\/.* failed;/,/^== FAILED/p' "$outs/$major" | grep . ||
			grep -E '^not ok|FAILED|failed' "$outs/$major" | tail -n 20 || true
	done
	echo "== FAILED on PostgreSQL ${failed[*]}"
	exit 1
fi
echo "== passed on PostgreSQL ${SFEXPORT_TEST_PG:-15 18}"
