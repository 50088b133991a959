#!/bin/bash
# Install the current build into a private copy of the PostgreSQL tree:
#   scripts/private-install.sh DIR
# afterwards DIR/$(pg_config --bindir)/postgres runs with this sfexport, as
# PostgreSQL's own "make check" does with its temporary installation, and
# with the test surface (sfexport_test) the tests need.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
INST=$1
for d in "$($PG_CONFIG --bindir)" "$($PG_CONFIG --pkglibdir)" "$($PG_CONFIG --sharedir)"; do
	mkdir -p "$INST$(dirname "$d")"
	cp -a "$d" "$INST$(dirname "$d")/"
done
# with the test-only extension sfexport_test (Makefile, docs/ARCHITECTURE.md)
make -s -C "$REPO" install DESTDIR="$INST" SFEXPORT_TEST_SURFACE=1 >/dev/null
