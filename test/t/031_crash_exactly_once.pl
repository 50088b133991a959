# Exactly once across crashes (README.md, "Delivery guarantees", 2).
#
# Cycle after cycle: insert a batch of rows (committed and acknowledged),
# ask the worker to flush, wait a random moment, and SIGKILL the postmaster
# and every one of its processes, wherever the worker is (scanning the
# outbox, uploading, committing the manifest, waiting for COPY, recording
# results, deleting files).  Snowflake (the emulator) is slowed down so that
# kills also land while COPY statements run.  After the last cycle the
# backlog drains, and every committed row must be in Snowflake exactly once.
#
# SFEXPORT_CRASH_CYCLES sets the number of cycles (default 20; the long run
# in docs uses 200).
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Find qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

my $cycles = $ENV{SFEXPORT_CRASH_CYCLES} // 20;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

my $node = SfTest::new_node('crash',
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\nrestart_after_crash = on\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'file://$stage/', flush_interval '1s', max_file_size '1MB',
		request_timeout '20s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id bigint, cycle int, payload text)
		SERVER sf OPTIONS (table 'EV');
});
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }
sf(q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () EMPTY_FIELD_AS_NULL = TRUE COMPRESSION = AUTO});
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
sf(q{CREATE TABLE DB.PUBLIC.EV ("id" NUMBER, "cycle" NUMBER, "payload" VARCHAR)});
# every statement takes a while: kills land during COPY too
SfSnowflake::admin($emu, 'POST', 'config', { exec_delay_ms => 150 });

my $next_id = 1;
my $committed = 0;
my $staged_at_kill = 0;
for my $cycle (1 .. $cycles)
{
	my $n = 300 + int(rand(2000));
	my $last = $next_id + $n - 1;
	# md5 payloads compress poorly: several files of max_file_size per flush
	$node->safe_psql('postgres', qq{
		INSERT INTO ev SELECT g, $cycle, repeat(md5(g::text), 1 + (g % 20))
		  FROM generate_series($next_id, $last) g});
	$committed += $n;
	$next_id = $last + 1;
	$node->safe_psql('postgres', 'SELECT sfexport.flush()');
	usleep(int(rand(1_500_000)));
	$staged_at_kill += $node->safe_psql('postgres',
		q{SELECT count(*) FROM sfexport.files WHERE state = 'staged'});
	SfTest::kill_postmaster($node);
	$node->start;
}
note "cycles: $cycles, files caught staged at a kill: $staged_at_kill";

SfSnowflake::admin($emu, 'POST', 'config', { exec_delay_ms => 0 });
$node->safe_psql('postgres', 'SELECT sfexport.flush()');
ok($node->poll_query_until('postgres',
	q{SELECT pending_rows = 0 AND staged_files = 0 AND failed_files = 0 FROM sfexport.status}, 't'),
	'the backlog drains after the last crash')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));

my $r = sf(q{SELECT "id" FROM DB.PUBLIC.EV});
my %seen;
$seen{ $_->[0] }++ for @{ $r->{rows} };
my $loaded = scalar @{ $r->{rows} };
my $lost = grep { !$seen{$_} } 1 .. $next_id - 1;
my $duplicated = grep { $_ > 1 } values %seen;
my $foreign = grep { $_ < 1 || $_ >= $next_id } keys %seen;
diag("crash test: cycles $cycles, rows committed $committed, rows loaded $loaded, "
	  . "rows lost $lost, rows duplicated $duplicated");
is($lost, 0, 'no committed row is lost');
is($duplicated, 0, 'no row is loaded twice');
is($foreign, 0, 'no row arrived that was not committed');
is($loaded, $committed, 'Snowflake holds exactly the committed rows');
is($node->safe_psql('postgres', q{SELECT sum(rows) FROM sfexport.files WHERE state = 'loaded'}),
	$committed, 'the manifest accounts for every committed row');

# Kills between an upload and its commit left orphans; the sweep deletes
# them and nothing else: once everything is loaded (and so deleted), the
# stage is empty.  (Temporary files of the local stage, from kills in the
# middle of a write, are not objects and are not swept.)
sub stage_files
{
	my @f;
	File::Find::find(sub { push @f, $File::Find::name if -f $_ && !/\.sfexport-tmp-/ }, $stage);
	return @f;
}
my $orphans = () = stage_files();
$node->safe_psql('postgres', q{ALTER SYSTEM SET sfexport.orphan_grace = '1s';
	ALTER SYSTEM SET sfexport.orphan_sweep_interval = '1s'; SELECT pg_reload_conf()});
my $deadline = time + 60;
sleep 1 while stage_files() && time < $deadline;
diag("crash test: orphaned files swept: $orphans");
is(scalar(stage_files()), 0, 'the sweep deleted every orphaned file')
  or diag(join("\n", stage_files()));
is(scalar @{ sf(q{SELECT "id" FROM DB.PUBLIC.EV})->{rows} }, $committed,
	'sweeping changed nothing in Snowflake');

$node->stop;
done_testing();
