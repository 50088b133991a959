# Files Snowflake may skip (issue 14, "a file Snowflake never loaded can be
# recorded as loaded and deleted"; docs/reliability.md, "Files Snowflake
# may skip").  The Snowflake stand-in keeps load metadata for 64 days and,
# as documented for COPY INTO <table> (LOAD_UNCERTAIN_FILES), silently
# skips a file whose LAST_MODIFIED and whose table's first load are older
# than that, and which it has not loaded in 64 days.  Its clock is moved on
# by the test (POST /_emulator/clock).  Cases:
#  - a file left staged (its COPYs rejected) for 70 days, then loaded;
#  - a file Snowflake rejected (failed), fixed 70 days later and retried;
#    both are really loaded (Snowflake has their rows), not recorded as
#    loaded unseen and deleted;
#  - SIGKILL between a COPY that loaded the file and the recording of its
#    outcome: the restarted worker records it as loaded, rows once;
#  - the same, with 70 days between the kill and the restart: the load
#    metadata is gone, the load history (SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY)
#    says it was loaded: recorded as loaded without another COPY;
#  - a COPY that never ran (dropped connections), 70 days before: the load
#    history has nothing, so the file is loaded (once);
#  - a doubt older than the load history: refused with 55000, file kept.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }
sub admin { return SfSnowflake::admin($emu, @_); }

my $node = SfTest::new_node('uncertain',
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\nrestart_after_crash = on\n"
	  . "log_error_verbosity = verbose\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'file://$stage/', flush_interval '1h', request_timeout '20s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int, v text) SERVER sf OPTIONS (table 'EV');
});
my $good_format = q{CREATE OR REPLACE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV
	FIELD_OPTIONALLY_ENCLOSED_BY = '"' ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () COMPRESSION = AUTO};
sf($good_format);
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
sf(q{CREATE TABLE DB.PUBLIC.EV ("id" NUMBER, "v" VARCHAR)});

my $next = 1;
sub insert_batch	# rows $next .. $next+$n-1; returns the new file's file_id once staged
{
	my ($n) = @_;
	my $last = $next + $n - 1;
	my $before = $node->safe_psql('postgres', 'SELECT coalesce(max(file_id), 0) FROM sfexport.files');
	$node->safe_psql('postgres',
		"INSERT INTO ev SELECT g, 'v' || g FROM generate_series($next, $last) g; SELECT sfexport.flush()");
	$next = $last + 1;
	$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM sfexport.files WHERE file_id > $before")
	  or die 'no file staged';
	return $node->safe_psql('postgres', "SELECT file_id FROM sfexport.files WHERE file_id > $before");
}
sub file_row
{
	my ($id, $cols) = @_;
	return $node->safe_psql('postgres', "SELECT $cols FROM sfexport.files WHERE file_id = $id");
}
sub ids_once	# every id 1..$next-1 in Snowflake exactly once
{
	my %seen;
	$seen{ $_->[0] }++ for @{ sf(q{SELECT "id" FROM DB.PUBLIC.EV})->{rows} };
	my @bad = grep { ($seen{$_} // 0) != 1 } 1 .. $next - 1;
	return scalar(@bad) == 0 && scalar(keys %seen) == $next - 1;
}
sub days { admin('POST', 'clock', { advance_days => $_[0] }); }
sub copies_of
{
	my ($name) = @_;
	return scalar grep { ($_->{statement} // '') =~ /^COPY INTO/ && index($_->{statement}, $name) >= 0 }
	  @{ SfSnowflake::statement_log($emu) };
}
sub wait_loaded
{
	my ($id, $what) = @_;
	ok($node->poll_query_until('postgres', "SELECT state = 'loaded' FROM sfexport.files WHERE file_id = $id"),
		$what) or diag($node->safe_psql('postgres', "SELECT * FROM sfexport.files WHERE file_id = $id"));
}

# the table's initial set of data
my $f0 = insert_batch(10);
wait_loaded($f0, 'the first file loads (the table\'s initial load)');
like(SfSnowflake::statement_log($emu, qr/^COPY INTO/)->[0]{statement}, qr/ LOAD_UNCERTAIN_FILES = TRUE$/,
	'COPY carries LOAD_UNCERTAIN_FILES = TRUE');
is(file_row($f0, 'in_doubt_since IS NULL'), 't', 'its outcome is recorded: no doubt left');

# ---- a file left staged for 70 days (every COPY rejected meanwhile)
admin('POST', 'faults', { action => '422', statement => '^COPY INTO', count => 1000,
	code => '003001', sql_state => '42501', message => 'Insufficient privileges to operate on table' });
my $f1 = insert_batch(10);
my $name1 = file_row($f1, 'name');
ok($node->poll_query_until('postgres', "SELECT attempts >= 1 FROM sfexport.files WHERE file_id = $f1"),
	'its COPY is rejected; the file stays staged');
is(file_row($f1, "state || ' ' || (in_doubt_since IS NULL)"), 'staged true',
	'a rejected COPY changed nothing: no doubt');
days(70);
admin('DELETE', 'faults');
# what Snowflake does with such a file without the option: skip it silently
my $probe = sf(qq{COPY INTO DB.PUBLIC.EV ("id", "v") FROM \@DB.PUBLIC.SFEXPORT_STAGE
	FILES = ('$name1') FILE_FORMAT = (FORMAT_NAME = 'DB.PUBLIC.SFEXPORT_CSV') ON_ERROR = SKIP_FILE});
is($probe->{rows}[0][0], 'Copy executed with 0 files processed.',
	'70 days on, a plain COPY skips the file (load status uncertain)');
$node->safe_psql('postgres', 'SELECT sfexport.flush()');
wait_loaded($f1, 'after the outage the file is loaded');
ok(ids_once(), 'Snowflake has its rows, each once (loaded, not skipped and recorded unseen)');

# ---- a file Snowflake rejected, fixed and retried 70 days later
sf(q{CREATE OR REPLACE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_DELIMITER = '|'});
my $f2 = insert_batch(10);
ok($node->poll_query_until('postgres', "SELECT state = 'failed' FROM sfexport.files WHERE file_id = $f2"),
	'a file Snowflake cannot parse is recorded as failed');
days(70);
sf($good_format);
is($node->safe_psql('postgres', q{SELECT sfexport.retry('ev')}), '1', 'retry() after the fix');
wait_loaded($f2, 'the retried file is loaded');
ok(ids_once(), 'Snowflake has its rows, each once');

# ---- SIGKILL between a COPY that loaded the file and recording it
sub copy_running	# the held COPY has started in the stand-in
{
	my ($name) = @_;
	for (1 .. 200)
	{
		return 1 if grep { ($_->{statement} // '') =~ /^COPY INTO/ && index($_->{statement}, $name) >= 0 }
		  @{ SfSnowflake::statement_log($emu) };
		usleep(100_000);
	}
	return 0;
}
sub rows_in_snowflake { return sf(q{SELECT COUNT(*) FROM DB.PUBLIC.EV})->{rows}[0][0]; }

# (a) restarted at once
admin('POST', 'faults', { action => 'hold', statement => '^COPY INTO', delay_ms => 2000, count => 1 });
my $want = $next + 9;
my $f3 = insert_batch(10);
my $name3 = file_row($f3, 'name');
ok(copy_running($name3), 'the COPY was sent (its answer is held back)');
is(file_row($f3, 'in_doubt_since IS NOT NULL'), 't', 'the doubt was committed before the COPY went out');
SfTest::kill_postmaster($node);
my $t = time;
usleep(100_000) until rows_in_snowflake() == $want || time > $t + 30;
is(rows_in_snowflake(), $want, 'the COPY completes in Snowflake');
$node->start;
wait_loaded($f3, 'the restarted worker records the file as loaded');
ok(ids_once(), 'its rows are there once');
is(copies_of($name3), 2, 'by running the same COPY again (the load metadata skips the file)');

# (b) 70 days between the kill and the restart
admin('POST', 'faults', { action => 'hold', statement => '^COPY INTO', delay_ms => 2000, count => 1 });
$want = $next + 9;
my $f4 = insert_batch(10);
my $name4 = file_row($f4, 'name');
ok(copy_running($name4), 'the COPY was sent');
# (the worker is asleep until then: its next attempt an hour away)
$node->safe_psql('postgres', "UPDATE sfexport.files SET next_attempt_at = now() + interval '1 hour'
	WHERE file_id = $f4");
SfTest::kill_postmaster($node);
$t = time;
usleep(100_000) until rows_in_snowflake() == $want || time > $t + 30;
is(rows_in_snowflake(), $want, 'the COPY completes in Snowflake');
$node->start;
days(70);
$node->safe_psql('postgres', "UPDATE sfexport.files SET in_doubt_since = in_doubt_since - interval '70 days',
	next_attempt_at = NULL WHERE file_id = $f4");
$node->safe_psql('postgres', 'SELECT sfexport.flush()');
wait_loaded($f4, '70 days on, the file is recorded as loaded');
ok(ids_once(), 'its rows are there once');
is(copies_of($name4), 1, 'without another COPY');
ok(scalar @{ SfSnowflake::statement_log($emu, qr/ACCOUNT_USAGE\.LOAD_HISTORY/) } >= 1,
	'the load history was asked');
like(slurp_file($node->logfile), qr/staged file "\Q$name4\E" was loaded into .* by an earlier COPY, as Snowflake's load history shows/,
	'the log says why');

# (c) a COPY that never ran, 70 days before
admin('POST', 'faults', { action => 'drop', statement => '^COPY INTO', count => 1000 });
my $f5 = insert_batch(10);
my $name5 = file_row($f5, 'name');
ok($node->poll_query_until('postgres', "SELECT attempts >= 1 FROM sfexport.files WHERE file_id = $f5"),
	'its COPY got no answer (dropped connections)');
is(file_row($f5, 'in_doubt_since IS NOT NULL'), 't', 'so it may have run: the doubt stays');
admin('DELETE', 'faults');
days(70);
$node->safe_psql('postgres', "UPDATE sfexport.files SET in_doubt_since = in_doubt_since - interval '70 days'
	WHERE file_id = $f5; SELECT sfexport.flush()");
wait_loaded($f5, 'the load history has nothing: the file is loaded');
ok(ids_once(), 'its rows are there once (loaded, not skipped as uncertain)');
like(slurp_file($node->logfile), qr/staged file "\Q$name5\E" is not in Snowflake's load history/,
	'the log says why');

# (d) a doubt older than the load history
admin('POST', 'faults', { action => 'drop', statement => '^COPY INTO', count => 1000 });
my $f6 = insert_batch(3);
ok($node->poll_query_until('postgres', "SELECT attempts >= 1 FROM sfexport.files WHERE file_id = $f6"),
	'another COPY without an answer');
admin('DELETE', 'faults');
$node->safe_psql('postgres', "UPDATE sfexport.files SET in_doubt_since = now() - interval '400 days'
	WHERE file_id = $f6; SELECT sfexport.flush()");
ok($node->poll_query_until('postgres', "SELECT last_error LIKE 'cannot tell whether Snowflake loaded staged file%'
	FROM sfexport.files WHERE file_id = $f6"), 'a doubt older than the load history is not guessed')
  or diag(file_row($f6, 'last_error'));
like(slurp_file($node->logfile), qr/55000: cannot tell whether Snowflake loaded staged file/,
	'... with SQLSTATE 55000 in the log');
is(file_row($f6, "state || ' ' || (deleted_at IS NULL)"), 'staged true', 'the file is kept, staged');
ok(-e "$stage/" . file_row($f6, 'name'), 'and still in the stage');

$node->stop;
done_testing();
