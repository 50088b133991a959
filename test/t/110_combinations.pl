# Features merged together (docs/combinations.md), against the emulator:
#  - track() on a server with load_mode 'streaming' is refused (0A000,
#    detail, hint) and leaves no trigger or changes table behind;
#  - a changes table refuses ALTER FOREIGN TABLE to load_mode 'streaming'
#    or file_format 'json', and its server refuses ALTER SERVER to
#    'streaming' unless the changes table has its own load_mode;
#  - file_format 'json' with load_mode 'streaming' is refused;
#  - a streaming table: sfexport.status shows its pending rows and
#    next_flush_at, and flush(wait => true) returns only once the channel
#    committed every row (the emulator commits 1 s after the append), with
#    nothing pending after it; a rejected row makes it return false with a
#    WARNING, the batch kept; flush_at gives its next_flush_at;
#  - a table tracked on a snowpipe server: its changes load through the
#    pipe and the mirror equals the source (flush(wait => true) waits for
#    the changes table, the MERGE follows).
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--stream-commit-delay-ms', '1000', '--pipe-delay-ms', '300' ]);
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;
my $pem = SfSnowflake::lit($key->{pem});

my $node = SfTest::new_node('combinations', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n"
	  . "sfexport.streaming_poll_interval = 200ms\nsfexport.snowpipe_poll_interval = 200ms\n"
	  . "sfexport.snowpipe_report_deadline = 3s\n");
my $common = qq{account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		warehouse 'WH', location 'file://$stage/', upper_case_identifiers 'true'};
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS ($common, flush_interval '1s');
	CREATE SERVER sfs FOREIGN DATA WRAPPER sfexport OPTIONS ($common, flush_interval '1h', load_mode 'streaming');
	CREATE SERVER sfp FOREIGN DATA WRAPPER sfexport OPTIONS ($common, flush_interval '1s', load_mode 'snowpipe');
	CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'LOADER', private_key $pem);
	CREATE USER MAPPING FOR PUBLIC SERVER sfs OPTIONS (user 'LOADER', private_key $pem);
	CREATE USER MAPPING FOR PUBLIC SERVER sfp OPTIONS (user 'LOADER', private_key $pem);
	CREATE TABLE orders (id int PRIMARY KEY, v text);
});

sub sq { return $node->safe_psql('postgres', $_[0]); }
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }
sub fails
{
	my ($sql, $re, $what) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	like($err, $re, $what);
	return $err;
}

# ---- track() and streaming
my $err = fails(q{SELECT sfexport.track('orders', 'sfs')},
	qr/ERROR:  0A000: changes table public.orders_sfexport_changes of a tracked table cannot use load_mode streaming/,
	'track() on a streaming server is refused');
like($err, qr/DETAIL:  Its load_mode comes from server sfs\./, 'the detail names where the mode comes from');
like($err, qr/HINT:  Track the table on a server with load_mode copy or snowpipe/, 'the hint says what to do');
is(sq(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders'::regclass}), '0', 'no trigger is left');
is(sq(q{SELECT to_regclass('orders_sfexport_changes') IS NULL}), 't', 'no changes table is left');

# ---- a changes table refuses streaming and json afterwards
is(sq(q{SELECT sfexport.track('orders', 'sf', snapshot => false)}), 'orders_sfexport_changes',
	'track() on a copy server works');
my $opts = sq(q{SELECT ftoptions::text FROM pg_foreign_table WHERE ftrelid = 'orders_sfexport_changes'::regclass});
fails(q{ALTER FOREIGN TABLE orders_sfexport_changes OPTIONS (ADD load_mode 'streaming')},
	qr/ERROR:  0A000: changes table public.orders_sfexport_changes of a tracked table cannot use load_mode streaming/,
	'ALTER FOREIGN TABLE of a changes table to streaming is refused');
fails(q{ALTER FOREIGN TABLE orders_sfexport_changes OPTIONS (ADD file_format 'json')},
	qr/ERROR:  0A000: changes table public.orders_sfexport_changes of a tracked table cannot use file_format json.*\nDETAIL:  .*CSV records/s,
	'and to file_format json');
fails(q{ALTER SERVER sf OPTIONS (ADD load_mode 'streaming')},
	qr/ERROR:  0A000: changes table public.orders_sfexport_changes of a tracked table cannot use load_mode streaming.*HINT:  .*ADD load_mode 'copy'/s,
	'ALTER SERVER of its server to streaming is refused');
is(sq(q{SELECT ftoptions::text FROM pg_foreign_table WHERE ftrelid = 'orders_sfexport_changes'::regclass}), $opts,
	'the changes table keeps its options');
is(sq(q{SELECT srvoptions::text LIKE '%load_mode%' FROM pg_foreign_server WHERE srvname = 'sf'}), 'f',
	'the server keeps its options');
sq(q{ALTER FOREIGN TABLE orders_sfexport_changes OPTIONS (ADD load_mode 'snowpipe')});
sq(q{ALTER FOREIGN TABLE orders_sfexport_changes OPTIONS (SET load_mode 'copy');
	ALTER SERVER sf OPTIONS (ADD load_mode 'streaming');
	ALTER SERVER sf OPTIONS (DROP load_mode)});
pass('with its own load_mode copy or snowpipe the changes table lets the server change');
sq(q{SELECT sfexport.untrack('orders'); DROP FOREIGN TABLE orders_sfexport_changes});

# ---- json and streaming
fails(q{CREATE FOREIGN TABLE sj (doc jsonb) SERVER sfs OPTIONS (file_format 'json')},
	qr/ERROR:  0A000: foreign table public.sj cannot use file_format json with load_mode streaming.*HINT:  Drop the option/s,
	'file_format json with load_mode streaming is refused');
sq(q{CREATE FOREIGN TABLE sj (doc jsonb) SERVER sf OPTIONS (file_format 'json')});
fails(q{ALTER FOREIGN TABLE sj OPTIONS (ADD load_mode 'streaming')},
	qr/ERROR:  0A000: foreign table public.sj cannot use file_format json with load_mode streaming/,
	'also when the mode comes later');
sq(q{DROP FOREIGN TABLE sj});

# ---- a streaming table: status, flush(wait => true)
sf(q{CREATE TABLE DB.PUBLIC.ST ("ID" NUMBER(10,0))});
sq(q{CREATE FOREIGN TABLE st (id int) SERVER sfs; INSERT INTO st SELECT generate_series(1, 200)});
is(sq(q{SELECT pending_rows, oldest_pending_age IS NOT NULL, next_flush_at > now() + interval '50 minutes'
	FROM sfexport.status WHERE foreign_table = 'st'::regclass}), '200|t|t',
	'status: a streaming table\'s rows pending, and when they go (flush_interval 1h)');
is(sq(q{SELECT sfexport.flush('st', wait => true, timeout => '60s')}), 't', 'flush(wait => true) of a streaming table');
is(join('/', @{ sf(q{SELECT COUNT(*), COUNT(DISTINCT "ID") FROM DB.PUBLIC.ST})->{rows}[0] }), '200/200',
	'when it returns the channel committed every row, once');
is(sq(q{SELECT pending_rows, oldest_pending_age IS NULL, next_flush_at IS NULL, count(b.*)
	FROM sfexport.status s LEFT JOIN sfexport.stream_batches b ON b.relid = s.foreign_table
	WHERE foreign_table = 'st'::regclass GROUP BY 1, 2, 3}), '0|t|t|0',
	'and nothing is pending or in a batch');

# a row Snowflake rejects: flush(wait => true) says so, the batch stays
sf(q{CREATE TABLE DB.PUBLIC.NUMS ("ID" NUMBER(10,0), "V" NUMBER(10,2))});
sq(q{CREATE FOREIGN TABLE nums (id int, v numeric) SERVER sfs; INSERT INTO nums VALUES (1, 1.5), (2, 'NaN')});
my ($rc, $out, $werr) = $node->psql('postgres', q{SELECT sfexport.flush('nums', wait => true, timeout => '60s')});
is($out, 'f', 'flush(wait => true) of a streaming table with a rejected row returns false');
like($werr, qr/WARNING:  Snowflake rejected 1 rows of 1 streaming batches committed before sfexport.flush\(\)/,
	'with a WARNING counting them');
is(join('/', @{ sf(q{SELECT COUNT(*), MAX("ID") FROM DB.PUBLIC.NUMS})->{rows}[0] }), '1/1',
	'the valid row landed');
is(sq(q{SELECT rejected_batches || '/' || rejected_rows FROM sfexport.stream_status WHERE foreign_table = 'nums'::regclass}),
	'1/1', 'and the rejected batch stays for stream_retry()');

# flush_at applies to streaming tables as to the others (the worker's plan
# is the same): the next matching minute, before the server's 1h interval
sq(q{ALTER FOREIGN TABLE st OPTIONS (ADD flush_at '*/5 * * * *')});
is(sq(q{SELECT sfexport.next_flush_at('st', '2026-01-01 00:11:30+00') AT TIME ZONE 'UTC'}),
	'2026-01-01 00:15:00', 'flush_at on a streaming table: the next scheduled minute');

# ---- a table tracked on a snowpipe server
sq(q{SELECT sfexport.setup_stage('sfp')});
is(sq(q{SELECT sfexport.track('orders', 'sfp', snapshot => false)}), 'orders_sfexport_changes',
	'track() on a snowpipe server works');
sq(q{SELECT count(*) FROM sfexport.setup_table('orders')});
sq(q{INSERT INTO orders SELECT g, 'v' || g FROM generate_series(1, 20) g});
sq(q{UPDATE orders SET v = 'u' WHERE id <= 5; DELETE FROM orders WHERE id > 15});
is(sq(q{SELECT sfexport.flush('orders_sfexport_changes', wait => true, timeout => '60s')}), 't',
	'flush(wait => true) of its changes table');
is(sq(q{SELECT count(*) FROM sfexport.files WHERE relid = 'orders_sfexport_changes'::regclass AND state <> 'loaded'}),
	'0', 'the changes are loaded through the pipe when it returns');
my $want = sq(q{SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM orders});
my $got = '';
my $until = time + SfTest::secs(30);
while (time < $until)
{
	my $r = eval { sf(q{SELECT "ID", "V" FROM DB.PUBLIC.ORDERS ORDER BY "ID"}) };
	$got = $r ? join(',', map { "$_->[0]:$_->[1]" } @{ $r->{rows} }) : "($@)";
	last if $got eq $want;
	select(undef, undef, undef, 0.2);
}
is($got, $want, 'the mirror equals the source after the MERGE');

done_testing();
