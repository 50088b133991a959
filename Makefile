# sfexport: PGXS build.
#
#   make                 build
#   make install         install into the PostgreSQL found by pg_config (root)
#   make install SFEXPORT_TEST_SURFACE=1
#                        also install the test-only extension sfexport_test
#                        (test/sfexport_test/), which the tests need
#   make installcheck    the pg_regress suite (test/sql, test/expected) against
#                        the running server, installed with the test surface
#   make test            run every test against this build (scripts/run-tests.sh)
#   make demo            the end-to-end demo on local stand-ins (demo-up / demo-down)
#   make bench-insert    capture cost vs a heap table;  make bench-flush: worker memory and speed
#   make SANITIZE=asan   build with AddressSanitizer and UBSan (also SANITIZE=1);
#   make SANITIZE=ubsan  UBSan only (docs/reliability.md; scripts/sanitize-tests.sh
#                        builds this way and runs the suites)
#
# The full CI entry point, which also installs system packages, is
# scripts/test.sh (README.md names it).

EXTENSION = sfexport
MODULE_big = sfexport
OBJS = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA = $(sort $(wildcard sql/sfexport--*.sql))
# The test surface (docs/ARCHITECTURE.md, "Test surface"): SQL entry points
# to internals that only the tests call, as a separate extension.  A
# production install leaves it out; scripts/private-install.sh sets the flag.
ifeq ($(SFEXPORT_TEST_SURFACE),1)
DATA += test/sfexport_test/sfexport_test.control test/sfexport_test/sfexport_test--1.0.sql
endif
PGFILEDESC = "sfexport - exactly-once export to Snowflake"

# The pg_regress suite: inputs in test/sql, expected outputs in test/expected.
# "make installcheck" runs it against the installed server (which needs
# max_prepared_transactions >= 2 and no shared_preload_libraries, as
# test/regress.conf sets for a temporary instance, and the test surface:
# make install SFEXPORT_TEST_SURFACE=1); scripts/run-tests.sh regress runs
# this same target in a temporary instance.
REGRESS = capture glue options privileges snowflake types
REGRESS_OPTS = --inputdir=test --temp-config=$(srcdir)/test/regress.conf

PG_CPPFLAGS = -I$(srcdir)/src
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK = -lcurl -ljansson -lssl -lcrypto -lz -lzstd -lisal

ifneq ($(filter 1 asan,$(SANITIZE)),)
PG_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SHLIB_LINK += -fsanitize=address,undefined
endif
ifeq ($(SANITIZE),ubsan)
PG_CFLAGS += -fsanitize=undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SHLIB_LINK += -fsanitize=undefined
endif

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# Header dependencies.  PGXS generates them only in a PostgreSQL configured
# with --enable-depend, and Debian's is not (Makefile.global: "autodepend ="),
# so without this rule "make" keeps an object whose .c did not change after
# a header did: it then disagrees with the rest about struct layouts.  (A
# stale src/glue.o, built before SfStatement gained "rejected", left that
# field to uninitialized stack and src/snowflake.c wrote through it: heap
# corruption that crashed backends at exit.)  Every object and bitcode file
# depends on every header of ours: cheap, and nothing to keep in sync when
# code moves between files.  test/t/004_build_deps.pl checks it.
$(OBJS) $(OBJS:.o=.bc): $(wildcard src/*.h)

.PHONY: test bench-insert bench-flush demo demo-up demo-down test-surface-installed
# the suite creates sfexport_test: say how to install it instead of failing
# test by test
installcheck: test-surface-installed
test-surface-installed:
	@test -f '$(DESTDIR)$(datadir)/$(datamoduledir)/sfexport_test.control' || { \
		echo "make installcheck: the test surface is not installed; run: make install SFEXPORT_TEST_SURFACE=1" >&2; \
		exit 1; }

test: all
	bash scripts/run-tests.sh

bench-insert: all
	bash bench/insert

bench-flush: all
	bash bench/flush

# the demo on local stand-ins (scripts/demo.sh); demo-up leaves it running
demo:
	bash scripts/demo.sh
demo-up:
	bash scripts/demo.sh up
demo-down:
	bash scripts/demo.sh down
