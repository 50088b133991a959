# Staged files and worker signals:
#  - compression gzip (default), zstd and none produce files Snowflake reads
#    (the emulator detects the codec as COMPRESSION = AUTO does);
#  - max_file_size splits a large flush into several files;
#  - keep_files leaves loaded files in storage;
#  - file names are unique, carry the system identifier and sort by time;
#  - SIGTERM (pg_terminate_backend) stops a worker promptly even while it
#    waits for Snowflake, and the restarted worker finishes the job;
#  - SIGHUP makes the worker use a new sfexport.flush_interval.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }
sub sfcount { return sf("SELECT COUNT(*) FROM DB.PUBLIC.$_[0]")->{rows}[0][0]; }

my $node = SfTest::new_node('files',
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
my $pem = SfSnowflake::lit($key->{pem});
my $common = qq{account 'testacct', url '$emu->{url}', database 'DB', location 'file://$stage/', flush_interval '1h'};
$node->safe_psql('postgres', qq{
	CREATE SERVER s_gzip FOREIGN DATA WRAPPER sfexport OPTIONS ($common, max_file_size '1MB');
	CREATE SERVER s_zstd FOREIGN DATA WRAPPER sfexport OPTIONS ($common, compression 'zstd');
	CREATE SERVER s_none FOREIGN DATA WRAPPER sfexport OPTIONS ($common, compression 'none', keep_files 'true');
	CREATE USER MAPPING FOR PUBLIC SERVER s_gzip OPTIONS (user 'LOADER', private_key $pem);
	CREATE USER MAPPING FOR PUBLIC SERVER s_zstd OPTIONS (user 'LOADER', private_key $pem);
	CREATE USER MAPPING FOR PUBLIC SERVER s_none OPTIONS (user 'LOADER', private_key $pem);
	CREATE FOREIGN TABLE t_gzip (id int, v text) SERVER s_gzip OPTIONS (table 'T_GZIP');
	CREATE FOREIGN TABLE t_zstd (id int, v text) SERVER s_zstd OPTIONS (table 'T_ZSTD');
	CREATE FOREIGN TABLE t_none (id int, v text) SERVER s_none OPTIONS (table 'T_NONE');
});
sf(q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () COMPRESSION = AUTO});
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
sf(qq{CREATE TABLE DB.PUBLIC.$_ ("id" NUMBER, "v" VARCHAR)}) for qw(T_GZIP T_ZSTD T_NONE);

# ~6 MB of barely compressible text into the gzip table (1 MB files)
$node->safe_psql('postgres', q{
	INSERT INTO t_gzip SELECT g, string_agg(md5(g::text || i::text), '') FROM generate_series(1, 3000) g,
	       generate_series(1, 60) i GROUP BY g;
	INSERT INTO t_zstd SELECT g, 'zstd row ' || g FROM generate_series(1, 500) g;
	INSERT INTO t_none SELECT g, 'plain, "quoted" row ' || g FROM generate_series(1, 500) g;
	SELECT sfexport.flush();
});
ok($node->poll_query_until('postgres',
	q{SELECT bool_and(pending_rows = 0 AND staged_files = 0 AND failed_files = 0) FROM sfexport.status}),
	'all three tables are loaded')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));
is(sfcount('T_GZIP'), 3000, 'gzip rows arrived');
is(sfcount('T_ZSTD'), 500, 'zstd rows arrived');
is(sfcount('T_NONE'), 500, 'uncompressed rows arrived');

my $files = $node->safe_psql('postgres', q{
	SELECT relid::regclass, compression, count(*), max(bytes) FROM sfexport.files
	 GROUP BY 1, 2 ORDER BY 1});
note $files;
my %n = map { my @f = split /\|/; ($f[0] => \@f) } split /\n/, $files;
is($n{t_gzip}[1], 'GZIP', 'gzip is the default compression');
cmp_ok($n{t_gzip}[2], '>=', 3, 'max_file_size split the gzip flush into several files');
cmp_ok($n{t_gzip}[3], '<=', 1024 * 1024 + 512 * 1024, 'no file is much larger than max_file_size');
is($n{t_zstd}[1], 'ZSTD', 'zstd chosen by the server option');
is($n{t_none}[1], 'NONE', 'none chosen by the server option');

my $sysid = $node->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
my @names = split /\n/, $node->safe_psql('postgres', 'SELECT name FROM sfexport.files ORDER BY file_id');
is(scalar(grep { /_${sysid}_\d+_[0-9a-f]{8}\.csv(\.gz|\.zst)?$/ } @names), scalar(@names),
	'file names carry the system identifier, the timeline and a random part');
is_deeply([ sort @names ], [ @names ], 'file names sort by staging time (within a table directory)')
  or 1;
my %uniq = map { $_ => 1 } @names;
is(scalar(keys %uniq), scalar(@names), 'file names are unique');

my @kept = glob("$stage/*/*/*.csv");
is(scalar(@kept), $n{t_none}[2], 'keep_files leaves the loaded files in storage');
is(scalar(glob("$stage/*/*/*.gz")) // 0, 0, 'other loaded files were deleted');

# ---- SIGTERM while waiting for Snowflake
SfSnowflake::admin($emu, 'POST', 'config', { exec_delay_ms => 60000 });
$node->safe_psql('postgres', q{INSERT INTO t_zstd SELECT g, 'late' FROM generate_series(501, 600) g; SELECT sfexport.flush()});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sfexport worker' AND query LIKE 'loading%'}),
	'the worker is waiting for a slow COPY');
my $pid = $node->safe_psql('postgres', q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sfexport worker'});
my $t0 = time;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid");
my $took = time - $t0;
cmp_ok($took, '<', SfTest::secs(5), sprintf('SIGTERM stops the worker mid-transfer in %.1f s', $took));
SfSnowflake::admin($emu, 'POST', 'config', { exec_delay_ms => 0 });
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sfexport worker'}),
	'the launcher starts a new worker');
$node->safe_psql('postgres', 'SELECT sfexport.flush()');
ok($node->poll_query_until('postgres',
	q{SELECT staged_files = 0 AND loaded_rows = 600 FROM sfexport.status WHERE foreign_table = 't_zstd'::regclass}),
	'the new worker finishes the interrupted load');
is(sfcount('T_ZSTD'), 600, 'the interrupted file arrived once');

# ---- SIGHUP: a shorter flush interval takes effect without a restart
$node->safe_psql('postgres', q{ALTER SERVER s_zstd OPTIONS (DROP flush_interval)});
$node->append_conf('postgresql.conf', "sfexport.flush_interval = 1s\n");
$node->reload;
$node->safe_psql('postgres', q{INSERT INTO t_zstd SELECT g, 'after reload' FROM generate_series(601, 610) g});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 610 FROM sfexport.status WHERE foreign_table = 't_zstd'::regclass}),
	'after a reload the new sfexport.flush_interval drives flushing (no sfexport.flush() call)');

$node->stop;
done_testing();
