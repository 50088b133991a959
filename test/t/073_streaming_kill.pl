# load_mode 'streaming' under SIGKILL of the worker while it appends:
# every committed row lands exactly once, rolled-back rows never.
#  - appends are slowed down (the emulator's delay fault) so that the
#    worker is inside an append request when it is killed (its activity
#    says "appending batch"); the postmaster's crash restart starts a new
#    worker, which reopens the channel and resends only what the committed
#    offset token does not cover;
#  - an append that Snowflake applied but whose reply was lost (drop_after):
#    the retry is refused (stale row sequencer), the worker reopens;
#  - rows of rolled-back transactions (ids above 100000) never arrive.
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
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--stream-commit-delay-ms', '300' ]);
my $lit = \&SfSnowflake::lit;
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

SfSnowflake::emu_query($emu, q{CREATE TABLE DB.PUBLIC.EV ("ID" NUMBER(10,0), "PAYLOAD" VARCHAR)});
my $node = SfTest::new_node('streamkill', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n"
	  . "sfexport.streaming_poll_interval = 100ms\nrestart_after_crash = on\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'file://$stage/', flush_interval '1s',
		upper_case_identifiers 'true', load_mode 'streaming');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int, payload text) SERVER sf;
});

sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }
sub wait_up
{
	for (1 .. 300)
	{
		my ($rc) = $node->psql('postgres', 'SELECT 1');
		return 1 if $rc == 0;
		Time::HiRes::sleep(0.1);
	}
	return 0;
}

my $n = 0;
my $kills = 0;
my $rounds = 5;
for my $round (1 .. $rounds)
{
	SfSnowflake::admin($emu, 'POST', 'faults', { action => 'delay', delay_ms => 400, path => '/rows$', count => 50 });
	# three committed transactions and one rolled back
	for (1 .. 3)
	{
		sq(qq{INSERT INTO ev SELECT g, 'round $round row ' || g FROM generate_series(@{[ $n + 1 ]}, @{[ $n + 100 ]}) g});
		$n += 100;
	}
	sq(qq{BEGIN; INSERT INTO ev SELECT 100000 + g, 'rolled back' FROM generate_series(1, 50) g; ROLLBACK});
	sq(q{SELECT sfexport.flush()});
	my $pid;
	for (1 .. 300)
	{
		$pid = sq(q{SELECT pid FROM pg_stat_activity
			WHERE backend_type = 'sfexport worker' AND query LIKE 'appending batch%'});
		last if $pid;
		Time::HiRes::sleep(0.02);
	}
	if ($pid)
	{
		SfTest::kill_server_process($pid);
		$kills++;
		ok(wait_up(), "round $round: the server is back after the worker's SIGKILL");
	}
	else
	{
		fail("round $round: the worker was not seen appending");
	}
	SfSnowflake::admin($emu, 'DELETE', 'faults');
}
is($kills, $rounds, 'the worker was killed inside an append in every round');

# an append Snowflake applied whose reply was lost
SfSnowflake::admin($emu, 'POST', 'faults', { action => 'drop_after', path => '/rows$', count => 1 });
sq(qq{INSERT INTO ev SELECT g, 'lost reply ' || g FROM generate_series(@{[ $n + 1 ]}, @{[ $n + 100 ]}) g; SELECT sfexport.flush()});
$n += 100;

ok($node->poll_query_until('postgres', q{SELECT
	  NOT EXISTS (SELECT FROM sfexport.outbox)
	  AND NOT EXISTS (SELECT FROM sfexport.stream_batches)}),
	'everything committed: outbox and batches empty')
  or diag(sq(q{SELECT batch_id, state, rows FROM sfexport.stream_batches}));

my %seen;
$seen{ $_->[0] }++ for @{ SfSnowflake::emu_query($emu, q{SELECT "ID" FROM DB.PUBLIC.EV})->{rows} };
my @missing = grep { !$seen{$_} } 1 .. $n;
my @twice = grep { $seen{$_} > 1 } keys %seen;
my @extra = grep { $_ < 1 || $_ > $n } keys %seen;
ok(!@missing, "every committed row arrived (1..$n)") or diag("missing @missing[0..9]");
ok(!@twice, 'none twice') or diag("twice @twice[0..9]");
ok(!@extra, 'no rolled-back row') or diag("extra @extra[0..9]");
my $st = SfSnowflake::admin($emu, 'GET', 'streaming');
my ($ch) = grep { $_->{channel} =~ /^SFEXPORT_/ } @{ $st->{channels} };
cmp_ok($ch->{client_seq}, '>', $rounds, 'the channel was reopened after each kill');

done_testing();
