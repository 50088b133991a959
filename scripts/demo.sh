#!/bin/bash
# The sfexport demo, end to end on local stand-ins (run as root on Debian 12).
#
#   bash scripts/demo.sh          run the whole demo, then stop everything
#   bash scripts/demo.sh up       start the stand-ins and a cluster, leave them running
#   bash scripts/demo.sh down     stop what "up" started
#
# It installs what it needs, builds and installs the extension, starts on
# 127.0.0.1 an S3 stand-in (s3rver, behind a front that verifies every SigV4
# signature with botocore), the Snowflake emulator and a throwaway
# PostgreSQL cluster with shared_preload_libraries = 'sfexport', creates the
# Snowflake objects with sfexport.setup(), inserts a stream of analytics
# events from concurrent clients, and shows them arriving in Snowflake.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-pg_config}
EVENTS=${EVENTS:-100000}
STATE=/tmp/sfexport-demo.state

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

mode=${1:-run}
case "$mode" in run|up|down|--inner-run|--inner-up) ;; *) echo "usage: $0 [run|up|down]" >&2; exit 2 ;; esac

if [ "$mode" = down ]; then
	[ -f "$STATE" ] || { echo "nothing to stop ($STATE not found)"; exit 0; }
	WORK=$(cat "$STATE")
	say "stopping the demo in $WORK"
	runuser -u postgres -- "$($PG_CONFIG --bindir)/pg_ctl" -D "$WORK/data" stop -m fast >/dev/null 2>&1 ||
		"$($PG_CONFIG --bindir)/pg_ctl" -D "$WORK/data" stop -m fast >/dev/null 2>&1 || true
	for p in "$WORK"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
	rm -rf "$WORK" "$STATE"
	exit 0
fi

if [ "${mode#--inner-}" = "$mode" ]; then
	say "installing packages (scripts/packages.txt) and the stand-ins' npm packages"
	bash "$REPO/scripts/setup-machine.sh"
	say "building and installing sfexport"
	make -s -C "$REPO" >/dev/null
	[ "$(id -u)" -eq 0 ] && make -s -C "$REPO" install >/dev/null
	WORK=$(mktemp -d /tmp/sfexport-demo.XXXXXX)
	chmod 755 "$WORK"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres "$WORK"
		exec runuser -u postgres -- env WORK="$WORK" EVENTS="$EVENTS" PG_CONFIG="$PG_CONFIG" \
			bash "$REPO/scripts/demo.sh" "--inner-$mode"
	fi
	WORK="$WORK" exec bash "$REPO/scripts/demo.sh" "--inner-$mode"
fi

# ---- from here on, as the unprivileged user, in $WORK
mode=${mode#--inner-}
export PATH="$($PG_CONFIG --bindir):$PATH"
export PGHOST="$WORK" PGPORT=$((20000 + RANDOM % 20000)) PGDATABASE=postgres
EMU="$REPO/test/emulators"

stop_all() {
	pg_ctl -D "$WORK/data" stop -m fast >/dev/null 2>&1 || true
	for p in "$WORK"/*.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null || true; done
}
if [ "$mode" = run ]; then
	trap 'say "stopping everything the demo started"; stop_all; rm -rf "$WORK"' EXIT
fi

# start a service in the background and wait for its port file
start() {
	local name=$1; shift
	"$@" > "$WORK/$name.log" 2>&1 &
	echo $! > "$WORK/$name.pid"
	for _ in $(seq 1 200); do [ -s "$WORK/$name.port" ] && break; sleep 0.1; done
	[ -s "$WORK/$name.port" ] || { echo "$name did not start, see $WORK/$name.log"; exit 1; }
	cat "$WORK/$name.port"
}

say "starting the stand-ins on 127.0.0.1"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/snowflake_key.p8" 2>/dev/null
openssl pkey -in "$WORK/snowflake_key.p8" -pubout -out "$WORK/snowflake_key.pub"
mkdir -p "$WORK/s3" "$WORK/snowflake"
S3RVER=$(start s3rver "$EMU/start" s3rver --directory "$WORK/s3" --port 0 \
	--port-file "$WORK/s3rver.port" --configure-bucket demo-bucket --key DEMOKEY=DEMOSECRET --silent)
S3=$(start s3_front "$EMU/start" s3_front --port 0 --port-file "$WORK/s3_front.port" \
	--upstream "http://127.0.0.1:$S3RVER" --region us-east-1 --key DEMOKEY=DEMOSECRET)
SF=$(start snowflake "$EMU/start" snowflake --port 0 --port-file "$WORK/snowflake.port" \
	--data-dir "$WORK/snowflake" --account DEMO --user SFEXPORT="$WORK/snowflake_key.pub" \
	--s3-endpoint "http://127.0.0.1:$S3" --s3-access-key DEMOKEY --s3-secret-key DEMOSECRET)
echo "   S3 (s3rver behind a SigV4-verifying front)  http://127.0.0.1:$S3   bucket demo-bucket"
echo "   Snowflake SQL API emulator                   http://127.0.0.1:$SF"

say "starting a throwaway PostgreSQL cluster with shared_preload_libraries = 'sfexport'"
initdb -D "$WORK/data" -A trust >/dev/null
cat >> "$WORK/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = $PGPORT
shared_preload_libraries = 'sfexport'
sfexport.launcher_naptime = 1s
log_statement = none
CONF
pg_ctl -D "$WORK/data" -l "$WORK/postgresql.log" -w start >/dev/null

say "CREATE EXTENSION, a server, a user mapping and a foreign table for analytics events"
psql -X -v ON_ERROR_STOP=1 <<SQL
CREATE EXTENSION sfexport;
CREATE SERVER demo FOREIGN DATA WRAPPER sfexport OPTIONS (
    account 'demo', url 'http://127.0.0.1:$SF', database 'ANALYTICS', schema 'RAW',
    warehouse 'LOAD_WH', location 's3://demo-bucket/events/',
    endpoint 'http://127.0.0.1:$S3', region 'us-east-1',
    flush_interval '5s', upper_case_identifiers 'true');
CREATE USER MAPPING FOR CURRENT_USER SERVER demo OPTIONS (
    user 'SFEXPORT', private_key_file '$WORK/snowflake_key.p8',
    aws_access_key_id 'DEMOKEY', aws_secret_access_key 'DEMOSECRET');
CREATE FOREIGN TABLE events (
    id bigint, user_id int, kind text, at timestamptz, properties jsonb
) SERVER demo;
CREATE SEQUENCE event_ids;
SQL

say "checking storage and Snowflake, then creating the Snowflake objects with sfexport.setup()"
psql -X -c "SELECT step, ok FROM sfexport.test_storage('demo')"
psql -X -c "SELECT account, user_name, version FROM sfexport.test_connection('demo')"
psql -X -v ON_ERROR_STOP=1 -c "SELECT * FROM sfexport.setup('demo')"

if [ "$mode" = up ]; then
	echo "$WORK" > "$STATE"
	say "the demo is up"
	echo "   psql -h $WORK -p $PGPORT postgres"
	echo "   try: INSERT INTO events VALUES (1, 1, 'click', now(), '{\"a\": 1}'); SELECT * FROM sfexport.status;"
	echo "   stop with: bash scripts/demo.sh down"
	trap - EXIT
	exit 0
fi

say "inserting $EVENTS events (jsonb properties) from 4 concurrent clients"
cat > "$WORK/insert.sql" <<'SQL'
\set uid random(1, 5000)
INSERT INTO events
SELECT nextval('event_ids'), :uid,
       (ARRAY['page_view','click','signup','purchase'])[1 + g % 4], now(),
       jsonb_build_object('path', '/p/' || (g % 50), 'session', :client_id, 'n', g)
  FROM generate_series(1, 100) g;
SQL
pgbench -n -c 4 -j 2 -t $((EVENTS / 400)) -f "$WORK/insert.sql" postgres 2>/dev/null |
	grep -E "^(number of transactions actually processed|tps)"

say "watching the rows arrive (sfexport.status, every 2 s)"
count_sf() { psql -XAt -c "SELECT (sfexport.snowflake_query('demo', 'SELECT COUNT(*) FROM ANALYTICS.RAW.EVENTS'))[1]"; }
for _ in $(seq 1 90); do
	psql -XAt -F ' ' -c "SELECT 'pending ' || pending_rows || ', staged files ' || staged_files ||
	                           ', loaded files ' || loaded_files || ', rows loaded ' || loaded_rows
	                      FROM sfexport.status"
	# done when Snowflake holds every row and the manifest has recorded it
	[ "$(count_sf)" -ge "$EVENTS" ] &&
		[ "$(psql -XAt -c "SELECT pending_rows = 0 AND staged_files = 0 FROM sfexport.status")" = t ] && break
	sleep 2
done

say "sfexport.status"
psql -X -c "SELECT foreign_table, pending_rows, staged_files, failed_files, loaded_files, loaded_rows, last_loaded_at FROM sfexport.status"
say "sfexport.files (last 5)"
psql -X -c "SELECT name, rows, bytes, state, loaded_at FROM sfexport.files ORDER BY file_id DESC LIMIT 5"
say "in Snowflake: SELECT COUNT(*), COUNT(DISTINCT id) FROM ANALYTICS.RAW.EVENTS"
psql -XAt -c "SELECT (sfexport.snowflake_query('demo', 'SELECT COUNT(*), COUNT(DISTINCT ID) FROM ANALYTICS.RAW.EVENTS'))"
psql -XAt -c "SELECT 'kinds: ' || string_agg(r[1] || '=' || r[2], ', ') FROM sfexport.snowflake_query('demo',
	'SELECT KIND, COUNT(*) FROM ANALYTICS.RAW.EVENTS GROUP BY KIND ORDER BY KIND') r"
n=$(count_sf)
distinct=$(psql -XAt -c "SELECT (sfexport.snowflake_query('demo', 'SELECT COUNT(DISTINCT ID) FROM ANALYTICS.RAW.EVENTS'))[1]")
if [ "$n" -eq "$EVENTS" ] && [ "$distinct" -eq "$EVENTS" ]; then
	say "done: all $EVENTS events arrived in Snowflake exactly once"
else
	say "only $n of $EVENTS events arrived; see $WORK/postgresql.log"
	exit 1
fi
