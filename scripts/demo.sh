#!/bin/bash
# The sfexport demo, on local stand-ins (run as root on Debian 12):
# installs what it needs, builds and installs the extension, starts a
# throwaway PostgreSQL cluster with sfexport preloaded, inserts a stream of
# analytics events from concurrent clients and shows them being captured.
# Stops everything it started.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
PG_CONFIG=${PG_CONFIG:-pg_config}
EVENTS=${EVENTS:-100000}

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if [ "${1:-}" != "--inner" ]; then
	say "installing packages (scripts/packages.txt)"
	bash scripts/setup-machine.sh
	say "building and installing sfexport"
	make -s >/dev/null
	[ "$(id -u)" -eq 0 ] && make -s install >/dev/null
	WORK=$(mktemp -d /tmp/sfexport-demo.XXXXXX)
	chmod 755 "$WORK"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres "$WORK"
		exec runuser -u postgres -- env WORK="$WORK" EVENTS="$EVENTS" PG_CONFIG="$PG_CONFIG" \
			bash "$REPO/scripts/demo.sh" --inner
	fi
	WORK="$WORK" exec bash "$REPO/scripts/demo.sh" --inner
fi

export PATH="$($PG_CONFIG --bindir):$PATH"
export PGHOST="$WORK" PGPORT=$((20000 + RANDOM % 20000)) PGDATABASE=postgres
cleanup() {
	say "stopping everything the demo started"
	pg_ctl -D "$WORK/data" stop -m fast >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

say "starting a throwaway PostgreSQL cluster with shared_preload_libraries = 'sfexport'"
initdb -D "$WORK/data" -A trust >/dev/null
cat >> "$WORK/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = $PGPORT
shared_preload_libraries = 'sfexport'
CONF
pg_ctl -D "$WORK/data" -l "$WORK/postgresql.log" -w start >/dev/null

say "creating the extension, a server, and a foreign table for analytics events"
psql -X -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION sfexport;
CREATE SERVER demo FOREIGN DATA WRAPPER sfexport OPTIONS (
    account 'demo-account', database 'DEMO', schema 'PUBLIC',
    location 'file://$WORK/stage/');
CREATE FOREIGN TABLE events (
    id bigint, user_id int, kind text, at timestamptz, properties jsonb
) SERVER demo OPTIONS (table 'EVENTS');
SQL

say "inserting $EVENTS events from 4 concurrent clients"
cat > "$WORK/insert.sql" <<'SQL'
\set uid random(1, 5000)
INSERT INTO events
SELECT g, :uid, (ARRAY['page_view','click','signup','purchase'])[1 + g % 4], now(),
       jsonb_build_object('path', '/p/' || (g % 50), 'session', :client_id, 'n', g)
  FROM generate_series(1, 100) g;
SQL
pgbench -n -c 4 -j 2 -t $((EVENTS / 400)) -f "$WORK/insert.sql" postgres | grep -E "^(number of transactions actually processed|tps)"

say "sfexport.status: rows captured, waiting for export"
psql -X -c "SELECT * FROM sfexport.status"
