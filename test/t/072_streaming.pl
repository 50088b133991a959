# load_mode 'streaming' end to end against the emulator's Snowpipe Streaming
# REST API (docs/streaming.md):
#  - host discovery and the scoped token (the emulator refuses anything
#    else on the ingest endpoints: require_scoped_token), the table's
#    default pipe, rows as NDJSON, every row once, the outbox and
#    sfexport.stream_batches empty afterwards, the channel's committed
#    offset token = the last batch;
#  - the replies of the account host as bare text (the tutorial's reading);
#  - SIGKILL of the postmaster while a batch is appended and not committed
#    (a committed batch before it): the worker reopens, resends only what
#    is not committed: every row once;
#  - SIGKILL after Snowflake committed a batch and before the worker saw it:
#    the reopen's offset token covers it, nothing resent;
#  - a reopen forced by the service (superseded channel): resumed, once;
#  - rejected rows: kept as a 'rejected' batch in sfexport.stream_status
#    (error masked for others), the valid rows of the table loaded, and
#    sfexport.stream_retry() sends it again after the fix;
#  - 429 throttling and a 503 outage: rows wait, then land once.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use Time::HiRes ();

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $pat = 'pat-Secret-Streaming-4242';
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	tokens => ["PATUSER=$pat:PROGRAMMATIC_ACCESS_TOKEN"],
	args => [ '--stream-commit-delay-ms', '200' ]);
SfTest::register_secret('PAT', $pat);
my $lit = \&SfSnowflake::lit;
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

sub sf { my ($sql) = @_; return SfSnowflake::emu_query($emu, $sql); }
sub emu { my ($doc) = @_; return SfSnowflake::admin($emu, 'POST', 'streaming', $doc); }
sub emu_state { return SfSnowflake::admin($emu, 'GET', 'streaming'); }

emu({ require_scoped_token => JSON::PP::true });
sf(q{CREATE TABLE DB.PUBLIC.EV ("ID" NUMBER(10,0), "PAYLOAD" VARCHAR, "TS" TIMESTAMP_TZ, "DOC" VARIANT)});
sf(q{CREATE TABLE DB.PUBLIC.NUMS ("ID" NUMBER(10,0), "V" NUMBER(10,2))});

my $node = SfTest::new_node('streaming', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n"
	  . "sfexport.streaming_poll_interval = 200ms\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'file://$stage/', flush_interval '1s',
		upper_case_identifiers 'true', load_mode 'streaming');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int, payload text, ts timestamptz, doc jsonb) SERVER sf;
	CREATE FOREIGN TABLE nums (id int, v numeric) SERVER sf;
	CREATE ROLE other LOGIN;
});

sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }
sub ids
{
	my ($t) = @_;
	my %seen;
	$seen{ $_->[0] }++ for @{ sf(qq{SELECT "ID" FROM DB.PUBLIC.$t})->{rows} };
	return \%seen;
}
sub exactly
{
	my ($t, $n, $what) = @_;
	my $seen = ids($t);
	my @missing = grep { !$seen->{$_} } 1 .. $n;
	my @twice = grep { $seen->{$_} > 1 } keys %$seen;
	my @extra = grep { $_ < 1 || $_ > $n } keys %$seen;
	ok(!@missing && !@twice && !@extra, "$what: $t holds ids 1..$n exactly once")
	  or diag("missing @missing[0..9]; twice @twice[0..9]; extra @extra[0..9]");
}
sub drained
{
	my ($t, $what) = @_;
	ok($node->poll_query_until('postgres', qq{SELECT
		  NOT EXISTS (SELECT FROM sfexport.outbox WHERE relid = '$t'::regclass)
		  AND NOT EXISTS (SELECT FROM sfexport.stream_batches WHERE relid = '$t'::regclass AND state = 'pending')}),
		$what) or diag(sq(q{SELECT batch_id, state, rows, error FROM sfexport.stream_batches}));
}
sub insert_ev
{
	my ($from, $to) = @_;
	sq(qq{INSERT INTO ev SELECT g, 'row ' || g || ' "q" ,x', '2024-05-06 07:08:09+02', jsonb_build_object('g', g)
		FROM generate_series($from, $to) g; SELECT sfexport.flush()});
}
sub channel
{
	my ($state) = @_;
	my @c = grep { $_->{channel} =~ /^SFEXPORT_\d+_\d+_\d+$/ && $_->{pipe} =~ /EV-STREAMING/ }
	  @{ ($state // emu_state())->{channels} };
	return $c[0];
}

# ---- end to end
insert_ev(1, 500);
drained('ev', 'the rows leave the outbox and their batches once committed');
exactly('EV', 500, 'end to end');
my $row = sf(q{SELECT "PAYLOAD", "DOC":g::NUMBER, TO_VARCHAR("TS") FROM DB.PUBLIC.EV WHERE "ID" = 7})->{rows}[0];
is($row->[0], 'row 7 "q" ,x', 'text with quotes and commas arrives as it was');
is($row->[1], '7', 'jsonb arrives as JSON (a VARIANT object)');
like($row->[2], qr/^2024-05-06 05:08:09(?:\.0+)? \+00:00$/, 'timestamptz arrives as the same instant (2024-05-06 05:08:09 UTC)');
my $ch = channel();
ok($ch, 'a channel SFEXPORT_<sysid>_<db>_<table> on the default pipe EV-STREAMING');
is($ch->{status}{last_committed_offset_token},
	sq(q{SELECT lpad(last_value::text, 20, '0') FROM sfexport.stream_batches_batch_id_seq}),
	'its committed offset token is the last batch number');
is(sq(q{SELECT count(*) FROM sfexport.stream_channels WHERE committed_token IS NOT NULL}), '1',
	'sfexport.stream_channels remembers the channel');

# ---- account host replies as bare text; a new worker discovers again
emu({ hostname_format => 'text', token_format => 'text' });
my $w = sq(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sfexport worker'});
sq(qq{SELECT pg_terminate_backend($w)});
ok($node->poll_query_until('postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'sfexport worker' AND pid <> $w}), 'a new worker');
insert_ev(501, 600);
drained('ev', 'host and token read as bare text');
exactly('EV', 600, 'text replies');

# ---- SIGKILL while a batch is in flight (appended, not committed)
emu({ pause_commits => JSON::PP::true });
insert_ev(601, 800);
my $ok = 0;
for (1 .. 200) { my $c = channel(); if ($c && @{ $c->{in_flight} } == 1) { $ok = 1; last; } Time::HiRes::sleep(0.05); }
ok($ok, 'a first batch is in flight');
emu({ commit_now => JSON::PP::true });
insert_ev(801, 1000);
$ok = 0;
for (1 .. 200) { my $c = channel(); if ($c && @{ $c->{in_flight} } == 1) { $ok = 1; last; } Time::HiRes::sleep(0.05); }
ok($ok, 'a second batch is in flight, the first committed');
SfTest::kill_postmaster($node);
emu({ pause_commits => JSON::PP::false });
$node->start;
drained('ev', 'after SIGKILL the worker resends what was not committed');
exactly('EV', 1000, 'SIGKILL during an append');

# ---- SIGKILL after Snowflake committed, before the worker saw it
$node->append_conf('postgresql.conf', "sfexport.streaming_poll_interval = 60s\n");
$node->reload;
my $appends_before = grep { $_->{path} =~ m{/rows$} } @{ SfSnowflake::admin($emu, 'GET', 'requests')->{requests} };
emu({ pause_commits => JSON::PP::true });
insert_ev(1001, 1100);
$ok = 0;
for (1 .. 200) { my $c = channel(); if ($c && @{ $c->{in_flight} } == 1) { $ok = 1; last; } Time::HiRes::sleep(0.05); }
ok($ok, 'a batch is in flight');
emu({ commit_now => JSON::PP::true });
is(sq(q{SELECT count(*) FROM sfexport.stream_batches WHERE relid = 'ev'::regclass}), '1',
	'committed in Snowflake, still a batch in PostgreSQL');
SfTest::kill_postmaster($node);
emu({ pause_commits => JSON::PP::false });
$node->append_conf('postgresql.conf', "sfexport.streaming_poll_interval = 200ms\n");
$node->start;
drained('ev', 'after SIGKILL the reopen says the batch is committed');
exactly('EV', 1100, 'SIGKILL after the commit');
my $appends = grep { $_->{path} =~ m{/rows$} } @{ SfSnowflake::admin($emu, 'GET', 'requests')->{requests} };
is($appends - $appends_before, 1, 'the committed batch was not sent again');

# ---- the service supersedes the channel (another client reopened it)
SfSnowflake::admin($emu, 'POST', 'faults', { action => 'supersede', path => '/rows', count => 1 });
insert_ev(1101, 1200);
drained('ev', 'after a superseded channel the worker reopens and resends');
exactly('EV', 1200, 'superseded channel');

# ---- the service invalidates the channel at four appends in a row: the
# worker reopens each time, backing off (no tight loop), and the rows land
SfSnowflake::admin($emu, 'DELETE', 'requests');
SfSnowflake::admin($emu, 'POST', 'faults', { action => 'invalidate', path => '/rows', count => 4,
	code => 'ERR_CHANNEL_MUST_BE_REOPENED' });
insert_ev(1201, 1250);
drained('ev', 'after repeated invalidations the rows land');
my $opens = grep { $_->{method} eq 'PUT' } @{ SfSnowflake::admin($emu, 'GET', 'requests')->{requests} };
ok($opens >= 4 && $opens <= 6, "one reopen per invalidation ($opens opens)");
exactly('EV', 1250, 'repeated invalidations');

# ---- throttling and an outage
my $logpos = -s $node->logfile;
SfSnowflake::admin($emu, 'POST', 'faults', { action => '429', path => '/rows', count => 6, retry_after => '1' });
insert_ev(1251, 1300);
drained('ev', 'throttled appends land');
ok($node->log_contains(qr/throttles channel SFEXPORT_/, $logpos), 'the worker slowed down (logged)');
SfSnowflake::admin($emu, 'POST', 'faults', { action => '503', path => '/rows', count => 12 });
insert_ev(1301, 1400);
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM sfexport.stream_batches WHERE relid = 'ev'::regclass}),
	'during the outage the rows wait in their batch');
ok($node->poll_query_until('postgres', q{
	SELECT streaming_rows > 0 AND oldest_pending_age IS NOT NULL
	   AND streaming_rows = (SELECT sum(rows) FROM sfexport.stream_batches
	                          WHERE relid = 'ev'::regclass AND state = 'pending')
	  FROM sfexport.status WHERE foreign_table = 'ev'::regclass}),
	'sfexport.status counts them as streaming_rows, and oldest_pending_age sees them');
drained('ev', 'and land after it');
exactly('EV', 1400, 'throttling and outage');

# ---- rejected rows
sq(q{INSERT INTO nums VALUES (1, 1.5), (2, 2.5); SELECT sfexport.flush()});
drained('nums', 'valid rows');
sq(q{INSERT INTO nums VALUES (3, 'NaN'); SELECT sfexport.flush()});
ok($node->poll_query_until('postgres', q{SELECT rejected_batches = 1 AND rejected_rows = 1
	FROM sfexport.stream_status WHERE foreign_table = 'nums'::regclass}), 'a rejected row: its batch is rejected')
  or diag(sq(q{SELECT * FROM sfexport.stream_batches}));
like(sq(q{SELECT last_error FROM sfexport.stream_status WHERE foreign_table = 'nums'::regclass}), qr/\S/,
	'with Snowflake\'s message');
is($node->safe_psql('postgres', q{SELECT last_error IS NULL FROM sfexport.stream_status WHERE foreign_table = 'nums'::regclass},
	extra_params => [ '-U', 'other' ]), 't', 'masked for a role that may not read the table');
my ($rc, $out, $err) = $node->psql('postgres', q{SELECT sfexport.stream_retry('nums')}, extra_params => [ '-U', 'other' ]);
like($err, qr/must be owner of foreign table (public\.)?nums/, 'stream_retry: only the owner');
sf(q{ALTER TABLE DB.PUBLIC.NUMS DROP COLUMN "V"});
sf(q{ALTER TABLE DB.PUBLIC.NUMS ADD COLUMN "V" VARCHAR});
is(sq(q{SELECT sfexport.stream_retry('nums')}), '1', 'stream_retry after the fix');
sq(q{SELECT sfexport.flush()});
drained('nums', 'the retried batch is committed');
is(sq(q{SELECT count(*) FROM sfexport.stream_batches}), '0', 'no batch left');
exactly('NUMS', 3, 'rejected and retried');

# ---- a row above the 4 MB request limit: its batch is rejected, the
# channel goes on with the next one
sf(q{CREATE TABLE DB.PUBLIC.BIG ("ID" NUMBER(10,0), "T" VARCHAR)});
sq(q{CREATE FOREIGN TABLE big (id int, t text) SERVER sf;
	INSERT INTO big VALUES (1, repeat('x', 4500000)); INSERT INTO big VALUES (2, 'small');
	SELECT sfexport.flush()});
ok($node->poll_query_until('postgres', q{SELECT rejected_batches = 1 AND rejected_rows = 1 AND pending_batches = 0
	FROM sfexport.stream_status WHERE foreign_table = 'big'::regclass}), 'a row too large to stream: its batch is rejected')
  or diag(sq(q{SELECT batch_id, state, rows, bytes, error FROM sfexport.stream_batches WHERE relid = 'big'::regclass}));
like(sq(q{SELECT last_error FROM sfexport.stream_status WHERE foreign_table = 'big'::regclass}),
	qr/above the 4 MB request limit/, 'with the reason');
is(join(',', map { $_->[0] } @{ sf(q{SELECT "ID" FROM DB.PUBLIC.BIG})->{rows} }), '2', 'the next row arrived, the big one not');

# ---- a named streaming pipe that setup_table creates (streaming_pipe)
sq(q{CREATE FOREIGN TABLE np (id int, b bytea) SERVER sf OPTIONS (streaming_pipe 'NP_PIPE')});
like(sq(q{SELECT string_agg(s, E'\n') FROM sfexport.setup_table('np', dry_run => true) s}),
	qr/^CREATE PIPE IF NOT EXISTS "DB"\."PUBLIC"\."NP_PIPE" AS COPY INTO "DB"\."PUBLIC"\."NP" \("ID", "B"\) FROM \(SELECT \$1:"ID", \$1:"B" FROM TABLE\(DATA_SOURCE\(TYPE => 'STREAMING'\)\)\)$/m,
	'setup_table shows the streaming pipe');
sq(q{SELECT count(*) FROM sfexport.setup_table('np')});
sq(q{INSERT INTO np SELECT g, '\xdeadbeef'::bytea FROM generate_series(1, 20) g; SELECT sfexport.flush()});
drained('np', 'rows through the named pipe');
exactly('NP', 20, 'named pipe');
my $np = SfSnowflake::admin($emu, 'GET', 'streaming/rows?table=DB.PUBLIC.NP');
is(join(',', sort keys %{ { map { $_->{pipe} => 1 } @{ $np->{rows} } } }), 'DB.PUBLIC.NP_PIPE',
	'every row came through NP_PIPE');
like(sf(q{SELECT TO_VARCHAR("B") FROM DB.PUBLIC.NP WHERE "ID" = 1})->{rows}[0][0], qr/^deadbeef$/i,
	'bytea arrives as hex through a named pipe (BINARY_INPUT_FORMAT HEX)');

# ---- a programmatic access token: exchanged for a scoped token as well
# (the ingest endpoints take nothing else here: require_scoped_token)
sf(q{CREATE TABLE DB.PUBLIC.PT ("ID" NUMBER(10,0))});
sq(qq{CREATE SERVER sfpat FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'file://$stage/', flush_interval '1s', compression 'zstd',
		upper_case_identifiers 'true', load_mode 'streaming');
	CREATE USER MAPPING FOR PUBLIC SERVER sfpat
		OPTIONS (user 'PATUSER', token @{[ $lit->($pat) ]}, token_type 'PROGRAMMATIC_ACCESS_TOKEN');
	CREATE FOREIGN TABLE pt (id int) SERVER sfpat;
	INSERT INTO pt SELECT g FROM generate_series(1, 50) g; SELECT sfexport.flush()});
drained('pt', 'a PAT user mapping streams (zstd bodies)');
exactly('PT', 50, 'PAT');

done_testing();
