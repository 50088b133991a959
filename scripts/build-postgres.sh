#!/bin/bash
# Build a PostgreSQL release from its source tarball into a cache outside
# the checkout, once per machine, and print its pg_config:
#
#   PG_CONFIG=$(bash scripts/build-postgres.sh 18)
#   make PG_CONFIG="$PG_CONFIG" && PG_CONFIG="$PG_CONFIG" bash scripts/run-tests.sh ...
#
# VERSION is a major version this script knows the release and checksum of
# (below) or a full release number.  Environment:
#
#   SFEXPORT_PG_CACHE    where builds are kept (default /var/cache/sfexport;
#                        when not writable, ${XDG_CACHE_HOME:-~/.cache}/sfexport)
#   SFEXPORT_PG_TARBALL  the source tarball (default
#                        ../shared/postgresql-<release>.tar.xz next to the
#                        repository, where CI keeps it; from a git worktree,
#                        next to its main checkout)
#   SFEXPORT_PG_CONFIGURE_EXTRA  more configure options (e.g. --enable-cassert);
#                        they are part of the cache key
#
# The build is configured with what the test suite needs and nothing more:
# --enable-tap-tests (the TAP suite uses PostgreSQL::Test::Cluster), no ICU,
# no readline (psql runs non-interactively), no OpenSSL (no test connects to
# the server over TLS; sfexport links libssl itself).  zlib stays (the
# configure default).  It lands in CACHE/pg-<release>-<key>, where <key> is
# a hash of the release, the tarball's checksum and the configure options:
# a later run with the same inputs reuses it, other inputs get their own
# directory.  A lock serialises concurrent runs; a build that fails leaves
# nothing that a later run would take for finished.
#
# "make install" puts the server, its headers and PGXS, pg_regress into the
# PGXS tree and (with --enable-tap-tests) the PostgreSQL::Test perl modules
# beside it, where scripts/run-tests.sh finds them through pg_config --pgxs;
# the script checks that they are there before it calls the build finished.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "build-postgres.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: build-postgres.sh VERSION (e.g. 18)"
# releases and their published SHA-256 (the .sha256 file next to the tarball
# is checked too when present; this pinned value does not depend on it)
declare -A RELEASE=([18]=18.3)
declare -A SHA256=([18.3]=ed8ce5d51e95cfc3b6b13a7d8cb1771274e6101ba79be9f4d37478f847425389)
release=${RELEASE[$1]:-$1}
expected=${SHA256[$release]:-}
[ -n "$expected" ] || die "no known release or checksum for PostgreSQL $1 (known: ${!SHA256[*]})"

tarball=${SFEXPORT_PG_TARBALL:-$REPO/../shared/postgresql-$release.tar.xz}
if [ -z "${SFEXPORT_PG_TARBALL:-}" ] && [ ! -f "$tarball" ]; then
	# a git worktree elsewhere: next to the main checkout instead
	common=$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)
	[ -n "$common" ] && [ -f "$common/../../shared/postgresql-$release.tar.xz" ] &&
		tarball=$common/../../shared/postgresql-$release.tar.xz
fi
[ -f "$tarball" ] || die "PostgreSQL $release source not found at $tarball (set SFEXPORT_PG_TARBALL to the postgresql-$release.tar.xz file)"
tarball=$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")

options=(--enable-tap-tests --without-icu --without-readline ${SFEXPORT_PG_CONFIGURE_EXTRA:-})

cache=${SFEXPORT_PG_CACHE:-/var/cache/sfexport}
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
	[ -z "${SFEXPORT_PG_CACHE:-}" ] || die "cache directory $cache is not writable"
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/sfexport
	mkdir -p "$cache"
fi
key=$(printf '%s\n' "$release" "$expected" "${options[@]}" | sha256sum | cut -c1-12)
prefix=$cache/pg-$release-$key
pg_config=$prefix/bin/pg_config

finished() { [ -f "$prefix/.sfexport-build-complete" ] && [ -x "$pg_config" ]; }

exec 9>"$cache/.lock-pg-$release-$key"
if ! finished && ! flock -n 9; then
	echo "== PostgreSQL $release: another run is building it, waiting ($cache)" >&2
	flock 9
fi
if finished; then
	echo "== PostgreSQL $release: reusing $prefix" >&2
	echo "$pg_config"
	exit 0
fi

actual=$(sha256sum "$tarball" | cut -d' ' -f1)
[ "$actual" = "$expected" ] || die "$tarball: sha256 $actual, expected $expected"
if [ -f "$tarball.sha256" ]; then
	listed=$(cut -d' ' -f1 "$tarball.sha256")
	[ "$listed" = "$expected" ] || die "$tarball.sha256 lists $listed, expected $expected"
fi
for tool in bison flex perl make gcc; do
	command -v "$tool" >/dev/null || die "$tool is not installed (scripts/packages.txt; bash scripts/setup-machine.sh)"
done

start=$(date +%s)
rm -rf "$prefix"
build=$(mktemp -d "$cache/build-$release.XXXXXX")
trap 'rm -rf "$build"' EXIT
log=$cache/pg-$release-$key.build.log
echo "== PostgreSQL $release: building into $prefix (${options[*]}; log $log)" >&2
jobs=$(nproc 2>/dev/null || echo 2)
# (a chain of &&: set -e does not apply inside a command list followed by ||)
{
	tar -xJf "$tarball" -C "$build" &&
	cd "$build/postgresql-$release" &&
	./configure --prefix="$prefix" "${options[@]}" &&
	make -j"$jobs" &&
	make install
} >"$log" 2>&1 || { tail -n 40 "$log" >&2; rm -rf "$prefix"; die "the build failed, see $log"; }

pgxs=$(dirname "$("$pg_config" --pgxs)")/../..
for f in "$pgxs/src/test/regress/pg_regress" "$pgxs/src/test/perl/PostgreSQL/Test/Cluster.pm"; do
	[ -e "$f" ] || { rm -rf "$prefix"; die "the build did not install $f"; }
done
chmod -R a+rX "$prefix"
echo "$release ${options[*]} $(date -u +%FT%TZ)" >"$prefix/.sfexport-build-complete"
echo "== PostgreSQL $release: built in $(( $(date +%s) - start )) s" >&2
echo "$pg_config"
