# sfexport.flush(foreign_table, wait => true, timeout => ...): returns once
# every row committed before the call is loaded (true), or in a file
# Snowflake rejected (false, a WARNING names it); an error with SQLSTATE
# 57014 after the timeout, rows kept; cancel works; rows of a transaction
# still open at the call are not waited for; the asynchronous form keeps
# working (docs/flush.md).
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }
sub sfcount { return sf("SELECT COUNT(*) FROM DB.PUBLIC.$_[0]")->{rows}[0][0]; }

my $node = SfTest::new_node('flushwait', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
my $sql = sub { return $node->safe_psql('postgres', $_[0]); };
$sql->(qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (account 'testacct', url '$emu->{url}',
	  database 'DB', location 'file://$stage/', flush_interval '1h');
	CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'LOADER',
	  private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int, v text) SERVER sf OPTIONS (table 'EV');
	CREATE FOREIGN TABLE ev2 (id int) SERVER sf OPTIONS (table 'EV2');
	CREATE FOREIGN TABLE strict_t (n text) SERVER sf OPTIONS (table 'STRICT_T');
	CREATE FOREIGN TABLE nowhere (n int) SERVER sf OPTIONS (table 'NOWHERE');
});
sf(q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () COMPRESSION = AUTO});
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
sf(q{CREATE TABLE DB.PUBLIC.EV ("id" NUMBER, "v" VARCHAR)});
sf(q{CREATE TABLE DB.PUBLIC.EV2 ("id" NUMBER)});
sf(q{CREATE TABLE DB.PUBLIC.STRICT_T ("n" VARCHAR(3))});
$node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sfexport worker'})
  or die 'no worker';

my ($ret, $out, $err);

# ---- the asynchronous forms still answer at once (flush_interval is 1 h)
is($sql->('SELECT sfexport.flush()'), 't', 'flush() asks the worker');
is($sql->(q{SELECT sfexport.flush('ev')}), 't', q{flush('ev') asks the worker});

# ---- per table: when flush(wait) returns, the rows are in Snowflake
$sql->(q{INSERT INTO ev SELECT g, 'a' FROM generate_series(1, 500) g});
my $t0 = time;
is($sql->(q{SELECT sfexport.flush('ev', wait => true, timeout => '60 s')}), 't',
	'flush(ev, wait) returns true');
cmp_ok(time - $t0, '<', SfTest::secs(30), 'without waiting for flush_interval (1 h)');
is(sfcount('EV'), 500, 'every row committed before the call is in Snowflake when it returns');
is($sql->(q{SELECT count(*) FROM sfexport.files WHERE relid = 'ev'::regclass AND state <> 'loaded'}),
	'0', 'and its file is recorded loaded');

# ---- every table, named arguments only; a row of a transaction still open
# at the call is not waited for
my $open = $node->background_psql('postgres', on_error_stop => 1);
$open->query_safe('BEGIN');
$open->query_safe(q{INSERT INTO ev2 VALUES (-1)});
$sql->(q{INSERT INTO ev SELECT g, 'b' FROM generate_series(501, 600) g;
	INSERT INTO ev2 SELECT g FROM generate_series(1, 50) g});
is($sql->(q{SELECT sfexport.flush(wait => true, timeout => '60 s')}), 't',
	'flush(wait => true) returns true with a transaction still open');
is(sfcount('EV') . '/' . sfcount('EV2'), '600/50', 'the rows of both tables are loaded');
$open->query_safe('COMMIT');
$open->quit;
is($sql->(q{SELECT pending_rows FROM sfexport.status WHERE foreign_table = 'ev2'::regclass}), '1',
	'the row committed after the call was not waited for, and is pending');
is($sql->(q{SELECT sfexport.flush('ev2', true)}), 't', 'positional arguments work');
is(sfcount('EV2'), 51, 'and load it');

# ---- called in a transaction that inserted rows itself: those are not
# committed before the call and are not waited for; the others are
$sql->(q{INSERT INTO ev VALUES (-2, 'before')});
is($sql->(q{BEGIN; INSERT INTO ev VALUES (-3, 'mine');
	SELECT sfexport.flush('ev', wait => true, timeout => '60 s'); COMMIT}), 't',
	'flush(wait) in a transaction that wrote rows itself');
is(sfcount('EV'), 601, 'the row committed before it is loaded, not the caller\'s own');
is($sql->(q{SELECT sfexport.flush('ev', wait => true, timeout => '60 s')}), 't', 'and the next call');
is(sfcount('EV'), 602, 'loads the caller\'s row once it committed');

# ---- a role that is not a superuser (it cannot read sfexport.files or the
# outbox itself) may wait for its rows
$sql->(q{CREATE ROLE app LOGIN; GRANT INSERT ON ev TO app});
is($node->safe_psql('postgres', q{INSERT INTO ev VALUES (-5, 'app');
	SELECT sfexport.flush('ev', wait => true, timeout => '60 s')}, extra_params => ['-U', 'app']),
	't', 'a plain role waits for its rows');
is(sfcount('EV'), 603, 'and they are loaded');
($ret, $out, $err) = $node->psql('postgres', q{SELECT count(*) FROM sfexport.files}, extra_params => ['-U', 'app']);
like($err, qr/permission denied/, 'the manifest itself stays closed to it');

# ---- a file Snowflake rejects: false, a WARNING names it, nothing lost
($ret, $out, $err) = $node->psql('postgres',
	q{INSERT INTO strict_t VALUES ('1'), ('too long a value');
	  SELECT sfexport.flush('strict_t', wait => true, timeout => '60 s')});
is($out, 'f', 'flush(wait) returns false when a file failed to load');
like($err, qr/WARNING:  1 files holding 2 rows committed before sfexport.flush\(\) failed to load/,
	'a WARNING says how many files and rows');
my $fname = $sql->(q{SELECT name FROM sfexport.files WHERE relid = 'strict_t'::regclass});
like($err, qr/DETAIL:  Failed files: \Q$fname\E \(public.strict_t\)\./, 'and names the file and its table');
like($err, qr/HINT:  .*sfexport.retry\(\)/, 'the hint says how to retry');
is($sql->(q{SELECT state || ' ' || rows FROM sfexport.files WHERE relid = 'strict_t'::regclass}),
	'failed 2', 'the rows stay in the failed file');
is($sql->(q{SELECT sfexport.flush('strict_t', wait => true, timeout => '60 s')}), 't',
	'a later call does not report a failure from before it');

# ---- timeout: the target does not exist, the load keeps failing
$sql->(q{INSERT INTO nowhere SELECT g FROM generate_series(1, 7) g});
$t0 = time;
($ret, $out, $err) = $node->psql('postgres',
	q{\set VERBOSITY verbose
	  SELECT sfexport.flush('nowhere', wait => true, timeout => '3 s')});
isnt($ret, 0, 'flush(wait) fails after the timeout');
cmp_ok(time - $t0, '<', SfTest::secs(20), 'soon after the timeout');
like($err, qr/ERROR:  57014: sfexport.flush\(\) timed out before the rows committed before it were loaded/,
	'with SQLSTATE 57014 and a clear message');
like($err, qr/DETAIL:  (1 staged files are not loaded yet, 1 of them after failed load attempts|Some of the rows are not staged yet)\./,
	'the detail says what is left');
like($err, qr/HINT:  Look at sfexport.status/, 'the hint says where to look');
is($sql->(q{SELECT sum(rows) FROM sfexport.files WHERE relid = 'nowhere'::regclass AND state = 'staged'}),
	'7', 'no row is lost: the staged file keeps them');

# ---- cancel ends the wait
my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/start/,
	"\\echo start\nSELECT sfexport.flush('nowhere', wait => true, timeout => NULL);\n");
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		   WHERE query LIKE '%flush(''nowhere''%' AND state = 'active' AND wait_event_type = 'Extension'}),
	'the waiting call sleeps on its latch (wait event type Extension)');
$t0 = time;
is($sql->(q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity
	WHERE query LIKE '%flush(''nowhere''%' AND pid <> pg_backend_pid()}), 't', 'cancel sent');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM pg_stat_activity
		   WHERE query LIKE '%flush(''nowhere''%' AND state = 'active' AND pid <> pg_backend_pid()}),
	'the call ends');
cmp_ok(time - $t0, '<', SfTest::secs(5), 'at once');
$bg->quit;

# ---- misuse: clear errors
($ret, $out, $err) = $node->psql('postgres',
	q{BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT sfexport.flush(wait => true); ROLLBACK});
like($err, qr/cannot wait in a REPEATABLE READ transaction.*\n.*DETAIL: .*\n.*HINT:  Call it in a READ COMMITTED transaction/s,
	'a transaction snapshot is refused with detail and hint');
($ret, $out, $err) = $node->psql('postgres', q{SELECT sfexport.flush(wait => true, timeout => '0 s')});
like($err, qr/timeout of sfexport.flush\(\) must be positive/, 'a zero timeout is refused');
($ret, $out, $err) = $node->psql('postgres', q{SELECT sfexport.flush('pg_class', wait => true)});
like($err, qr/"pg_class" is not a foreign table/, 'a table that is not a foreign table is refused');

$node->stop;
done_testing();
