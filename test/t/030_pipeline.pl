# The export pipeline end to end, with a local-directory stage and the
# Snowflake emulator:
#  - sfexport.setup() creates the file format, stage and table;
#  - the launcher starts a worker in the database; it shows in
#    pg_stat_activity, waiting under its own wait event from PostgreSQL 17
#    on; on 18 pg_get_loaded_modules() shows the library's version;
#  - committed rows are staged, loaded with COPY INTO and arrive exactly
#    once with their values; rolled-back rows never do;
#  - staged files are deleted after loading (and kept with keep_files);
#  - a file Snowflake rejects stays visible with its error, does not block
#    later files, and loads after sfexport.retry() once the cause is fixed;
#  - a COPY that fails as a whole (missing table) keeps its files staged
#    and loads them once the table exists;
#  - nothing pending means no Snowflake statement at all;
#  - dropping the extension stops the worker.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use IO::Uncompress::Gunzip qw();
use PostgreSQL::Test::Utils;
use Test::More;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $lit = \&SfSnowflake::lit;
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

# (log_statement = none: the harness logs every statement, and the DDL
# below carries a key, which PostgreSQL itself would log; see README, Security)
my $node = SfTest::new_node('pipe', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		warehouse 'WH', location 'file://$stage/', flush_interval '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE FOREIGN TABLE events (id int, kind text, at timestamptz, props jsonb,
		tags text[], amount numeric(10,2))
		SERVER sf OPTIONS (table 'EVENTS');
});

sub sf { my ($sql) = @_; return SfSnowflake::emu_query($emu, $sql); }
sub sfcount
{
	my ($table) = @_;
	my $r = sf("SELECT COUNT(*) FROM DB.PUBLIC.$table");
	return $r->{rows}[0][0];
}
# Snowflake side: file format, stage and table by the setup function
# (column names quoted: sfexport preserves the PostgreSQL names' case)
like($node->safe_psql('postgres', q{SELECT * FROM sfexport.setup('sf')}),
	qr/CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."EVENTS" \("id" NUMBER\(10,0\), "kind" VARCHAR, "at" TIMESTAMP_TZ\(6\), "props" VARIANT, "tags" ARRAY, "amount" NUMBER\(10,2\)\)/,
	'sfexport.setup() creates the Snowflake objects');

# ---- the worker runs
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sfexport worker'}),
	'the launcher started a worker for the database');

# Between rounds the launcher and the worker wait on their latch: from
# PostgreSQL 17 on under wait events of their own (WaitEventExtensionNew),
# before that under the generic "Extension".
my $pgversion = $node->safe_psql('postgres', 'SHOW server_version_num');
for my $w (['sfexport launcher', 'SfexportLauncherMain'], ['sfexport worker', 'SfexportWorkerMain'])
{
	my $event = $pgversion >= 170000 ? $w->[1] : 'Extension';
	ok($node->poll_query_until('postgres', qq{
		SELECT count(*) = 1 FROM pg_stat_activity
		 WHERE backend_type = '$w->[0]' AND wait_event_type = 'Extension' AND wait_event = '$event'}),
		"the $w->[0] waits as wait event $event");
}
# PostgreSQL 18 lists modules with their name and version (PG_MODULE_MAGIC_EXT)
SKIP:
{
	skip 'pg_get_loaded_modules() is new in PostgreSQL 18', 1 if $pgversion < 180000;
	is($node->safe_psql('postgres',
		q{SELECT module_name || ' ' || version FROM pg_get_loaded_modules() WHERE file_name = 'sfexport.so'}),
		'sfexport 0.2.0', 'the library names itself and its version');
}

# ---- rows arrive exactly once
$node->safe_psql('postgres', q{
	INSERT INTO events SELECT g, 'kind ' || (g % 3), '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 min',
	       jsonb_build_object('n', g, 'quote', 'a "b", c'), ARRAY['x', g::text], g / 4.0
	  FROM generate_series(1, 1000) g;
	BEGIN; INSERT INTO events VALUES (-1, 'rolled back', now(), '{}', '{}', 0); ROLLBACK;
});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 1000 AND pending_rows = 0 AND staged_files = 0 FROM sfexport.status}),
	'1000 committed rows are loaded') or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));
is(sfcount('EVENTS'), 1000, 'Snowflake has each committed row once');
is(sf(q{SELECT COUNT(*) FROM DB.PUBLIC.EVENTS WHERE "id" = -1})->{rows}[0][0], 0,
	'the rolled-back row never left PostgreSQL');
my $r = sf(q{SELECT "id", "kind", "props", "tags", "amount" FROM DB.PUBLIC.EVENTS WHERE "id" = 7});
is($r->{rows}[0][1], 'kind 1', 'text value arrives');
like($r->{rows}[0][2], qr/"quote":\s*"a \\"b\\", c"/, 'jsonb arrives as an object with its quotes');
like($r->{rows}[0][3], qr/"x",\s*"7"/s, 'arrays arrive as arrays');
is($r->{rows}[0][4], '1.75', 'numeric arrives exactly');

my @left = glob("$stage/*/*/*");
is(scalar(@left), 0, 'loaded files are deleted from the stage') or diag("@left");
is($node->safe_psql('postgres', q{SELECT count(*) FROM sfexport.files WHERE state = 'loaded' AND deleted_at IS NOT NULL}),
	$node->safe_psql('postgres', q{SELECT count(*) FROM sfexport.files}),
	'every file is recorded as loaded and deleted');

# the worker's timestamps are current, not the time it started
is($node->safe_psql('postgres', q{
	SELECT bool_and(loaded_at >= staged_at AND staged_at > now() - interval '5 min'
	                AND staged_at > (SELECT min(backend_start) FROM pg_stat_activity
	                                  WHERE backend_type = 'sfexport worker'))
	  FROM sfexport.files}), 't', 'staged_at and loaded_at are the times things happened');

# ---- idle: no Snowflake calls
my $before = scalar @{ SfSnowflake::statement_log($emu, qr/./) };
sleep 3;
is(scalar @{ SfSnowflake::statement_log($emu, qr/./) }, $before,
	'nothing pending: no statement sent to Snowflake');

# ---- a file Snowflake rejects stays visible and does not block later files
$node->safe_psql('postgres', q{
	CREATE FOREIGN TABLE strict_t (n text) SERVER sf OPTIONS (table 'STRICT_T');
});
# a hand-made table whose column is too short for one of the values
sf(q{CREATE TABLE DB.PUBLIC.STRICT_T ("n" VARCHAR(3))});
$node->safe_psql('postgres', q{INSERT INTO strict_t VALUES ('1'), ('too long a value')});
ok($node->poll_query_until('postgres',
	q{SELECT failed_files = 1 FROM sfexport.status WHERE foreign_table = 'strict_t'::regclass}),
	'a file with a bad value is recorded as failed');
my $err = $node->safe_psql('postgres', q{SELECT first_error IS NOT NULL AND rows = 2 FROM sfexport.files WHERE state = 'failed'});
is($err, 't', 'the failed file keeps its error and row count');
is(sfcount('STRICT_T'), 0, 'a failed file loads nothing (ON_ERROR = SKIP_FILE)');
$node->safe_psql('postgres', q{INSERT INTO strict_t VALUES ('2')});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_files = 1 FROM sfexport.status WHERE foreign_table = 'strict_t'::regclass}),
	'a later file loads although an earlier one failed');
is(sfcount('STRICT_T'), 1, 'the later row is in Snowflake');
my ($failed_name) = $node->safe_psql('postgres', q{SELECT name FROM sfexport.files WHERE state = 'failed'});
ok(-f "$stage/$failed_name", 'the failed file stays in storage');

# fix the cause, retry
sf(q{CREATE OR REPLACE TABLE DB.PUBLIC.STRICT_T ("n" VARCHAR)});
is($node->safe_psql('postgres', q{SELECT sfexport.retry('strict_t')}), '1', 'retry re-queues the failed file');
$node->safe_psql('postgres', q{SELECT sfexport.flush()});
ok($node->poll_query_until('postgres',
	q{SELECT failed_files = 0 AND staged_files = 0 FROM sfexport.status WHERE foreign_table = 'strict_t'::regclass}),
	'the retried file loads');
is(sfcount('STRICT_T'), 2, 'both rows of the retried file arrived');

# ---- a COPY failing as a whole keeps its files staged until the cause is fixed
$node->safe_psql('postgres', q{
	CREATE FOREIGN TABLE later_t (a int) SERVER sf OPTIONS (table 'LATER_T');
	INSERT INTO later_t SELECT generate_series(1, 10);
});
ok($node->poll_query_until('postgres',
	q{SELECT staged_files = 1 AND last_error IS NOT NULL FROM sfexport.status WHERE foreign_table = 'later_t'::regclass}),
	'missing target table: the file stays staged with the error');
sf(q{CREATE TABLE DB.PUBLIC.LATER_T ("a" NUMBER)});
$node->safe_psql('postgres', q{SELECT sfexport.retry('later_t'); SELECT sfexport.flush()});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 10 FROM sfexport.status WHERE foreign_table = 'later_t'::regclass}),
	'once the table exists the staged file loads');
is(sfcount('LATER_T'), 10, 'all rows of the delayed file arrived once');

# ---- dropping the extension stops the worker
# ---- a domain over jsonb loads like jsonb: an object, not a string
$node->safe_psql('postgres', q{
	CREATE DOMAIN props_t AS jsonb CHECK (jsonb_typeof(VALUE) = 'object');
	CREATE FOREIGN TABLE dom_t (id int, p props_t) SERVER sf OPTIONS (table 'DOM_T');
	SELECT sfexport.setup_table('dom_t');
	INSERT INTO dom_t VALUES (1, '{"k": [1, 2]}');
	SELECT sfexport.flush();
});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 1 FROM sfexport.status WHERE foreign_table = 'dom_t'::regclass}),
	'the domain-typed row loads');
like(sf(q{SELECT "p" FROM DB.PUBLIC.DOM_T})->{rows}[0][0], qr/^\{\s*"k"/,
	'a domain over jsonb arrives as a JSON object');

# ---- the worker writes exactly the records sfexport.outbox_record shows:
# binary rows rendered by the worker (in the inserting session's time zone,
# not the worker's), and rows of a table with an enum encoded at INSERT.
# The targets do not exist, so the files stay staged for reading.
$node->safe_psql('postgres', q{
	CREATE TYPE mood AS ENUM ('ok', 'so "so"');
	CREATE FOREIGN TABLE bytes_b (id int, t text, ts timestamptz, f float8, b bytea,
		iv interval, j jsonb, a int[], d date, n numeric) SERVER sf OPTIONS (table 'NO_SUCH_B');
	CREATE FOREIGN TABLE bytes_c (id int, m mood, t text) SERVER sf OPTIONS (table 'NO_SUCH_C');
});
# rendered inside the inserting transaction, before the worker can see the rows
my $want = $node->safe_psql('postgres', q{
	SET timezone = 'Asia/Kolkata';
	SET datestyle = 'SQL, DMY';
	SET extra_float_digits = -2;
	BEGIN;
	INSERT INTO bytes_b SELECT g, 'v "' || g || '", x', '2024-03-01 12:00:00+00'::timestamptz + g * interval '7 hours',
	       g / 3.0, decode(md5(g::text), 'hex'), g * interval '1 day 01:02:03.5',
	       jsonb_build_object('g', g, 's', 'a,b'), ARRAY[g, NULL, -g], date '2024-02-28' + g, g / 7.0
	  FROM generate_series(1, 200) g;
	INSERT INTO bytes_c SELECT g, CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'so "so"' END::mood, 'c' || g
	  FROM generate_series(1, 20) g;
	SELECT relid::regclass || ' ' || (get_byte(line, 0) = 1) || ' ' || sfexport.outbox_record(relid, shape, line)
	  FROM sfexport.outbox WHERE relid IN ('bytes_b'::regclass, 'bytes_c'::regclass);
	COMMIT;
});
my (%want, %binary);
for (split /\n/, $want)
{
	my ($tbl, $bin, $rec) = split / /, $_, 3;
	push @{ $want{$tbl} }, $rec;
	$binary{$tbl}{$bin}++;
}
is_deeply(\%binary, { bytes_b => { true => 200 }, bytes_c => { false => 20 } },
	'rows are stored in binary form, except those of the table with an enum');
ok($node->poll_query_until('postgres', q{
	SELECT count(DISTINCT relid) = 2
	   AND NOT EXISTS (SELECT FROM sfexport.outbox WHERE relid IN ('bytes_b'::regclass, 'bytes_c'::regclass))
	  FROM sfexport.files WHERE relid IN ('bytes_b'::regclass, 'bytes_c'::regclass)}),
	'the rows are staged') or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));
for my $tbl (qw(bytes_b bytes_c))
{
	my $relid = $node->safe_psql('postgres', "SELECT '$tbl'::regclass::oid");
	my @got;
	for my $f (glob("$stage/*/$relid/*"))
	{
		my $data;
		IO::Uncompress::Gunzip::gunzip($f => \$data)
		  or die "gunzip $f: $IO::Uncompress::Gunzip::GunzipError";
		push @got, split /\n/, $data;
	}
	is_deeply([ sort @got ], [ sort @{ $want{$tbl} } ],
		"$tbl: the staged files hold exactly the records outbox_record showed at INSERT");
}
like((grep { /^1,/ } @{ $want{bytes_b} })[0],
	qr/^1,"v ""1"", x",2024-03-02 00:30:00\+05:30,0\.3333333333333333,[0-9a-f]{32},P1DT1H2M3\.5S,"\{""g"": 1, ""s"": ""a,b""\}","\[1,null,-1\]",2024-02-29,0\.14285714285714285714$/,
	'a binary row renders independently of the session settings, in the session time zone');

$node->safe_psql('postgres', q{DROP EXTENSION sfexport CASCADE});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'sfexport worker'}),
	'the worker exits when the extension is dropped');
$node->safe_psql('postgres', q{CREATE EXTENSION sfexport});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sfexport worker'}),
	'CREATE EXTENSION starts a worker again without a restart');

$node->stop;
done_testing();
