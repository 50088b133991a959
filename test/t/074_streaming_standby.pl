# load_mode 'streaming' across a standby promotion (README, "Delivery
# guarantees", 8): the promoted standby has the primary's system
# identifier, so its worker opens the same channel, learns from the
# committed offset token what the old primary's appends got in, and sends
# only the rest:
#  A  rows the primary streamed and saw committed;
#  B  rows the primary appended, Snowflake committed after the primary died
#     (its batch still in sfexport.stream_batches on the standby);
#  C  rows the primary appended that Snowflake had not committed (discarded
#     by the new primary's reopen, then resent);
#  D  rows still in the outbox at the failover.
# Every row exactly once; nothing sfexport runs on the hot standby.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;
use Time::HiRes ();

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--stream-commit-delay-ms', '200' ]);
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }
sub emu { return SfSnowflake::admin($emu, 'POST', 'streaming', $_[0]); }
sub in_flight
{
	my ($n) = @_;
	for (1 .. 300)
	{
		my ($c) = grep { $_->{channel} =~ /^SFEXPORT_/ } @{ SfSnowflake::admin($emu, 'GET', 'streaming')->{channels} };
		return 1 if $c && @{ $c->{in_flight} } == $n;
		Time::HiRes::sleep(0.05);
	}
	return 0;
}

sf(q{CREATE TABLE DB.PUBLIC.EV ("ID" NUMBER(10,0), "PHASE" VARCHAR)});
my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sfexport'
sfexport.launcher_naptime = 1s
sfexport.streaming_poll_interval = 100ms
log_statement = none
});
$primary->start;
$primary->safe_psql('postgres', qq{
	CREATE EXTENSION sfexport;
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'file://$stage/', flush_interval '1h', upper_case_identifiers 'true',
		load_mode 'streaming');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int, phase text) SERVER sf;
});
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;

# A
$primary->safe_psql('postgres', q{INSERT INTO ev SELECT g, 'A' FROM generate_series(1, 100) g; SELECT sfexport.flush()});
ok($primary->poll_query_until('postgres', q{SELECT NOT EXISTS (SELECT FROM sfexport.stream_batches)
	AND NOT EXISTS (SELECT FROM sfexport.outbox)}), 'A: streamed and committed by the primary');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'sfexport%'}),
	'0', 'no sfexport process on the hot standby');

# B: appended and committed in Snowflake, the primary not told (it polls
# once a minute now); C: appended, not committed when the primary dies
$primary->append_conf('postgresql.conf', "sfexport.streaming_poll_interval = 60s\n");
$primary->reload;
emu({ pause_commits => JSON::PP::true });
$primary->safe_psql('postgres', q{INSERT INTO ev SELECT g, 'B' FROM generate_series(101, 150) g; SELECT sfexport.flush()});
ok(in_flight(1), 'B: appended, in flight');
emu({ commit_now => JSON::PP::true });
ok(in_flight(0), 'B: committed in Snowflake');
$primary->safe_psql('postgres', q{INSERT INTO ev SELECT g, 'C' FROM generate_series(151, 200) g; SELECT sfexport.flush()});
ok(in_flight(1), 'C: appended, in flight');
# D
$primary->safe_psql('postgres', q{INSERT INTO ev SELECT g, 'D' FROM generate_series(201, 230) g});
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres', q{SELECT count(*) FROM sfexport.stream_batches}), '2',
	'the standby holds the batches of B and C');
$primary->stop('immediate');
emu({ pause_commits => JSON::PP::false });

$standby->promote;
$standby->safe_psql('postgres', q{SELECT sfexport.flush()});
ok($standby->poll_query_until('postgres', q{SELECT NOT EXISTS (SELECT FROM sfexport.outbox)
	AND NOT EXISTS (SELECT FROM sfexport.stream_batches)}),
	'the promoted standby drains: B found committed, C resent, D streamed');

my %seen;
$seen{ $_->[0] }++ for @{ sf(q{SELECT "ID" FROM DB.PUBLIC.EV})->{rows} };
my @missing = grep { !$seen{$_} } 1 .. 230;
my @twice = grep { $seen{$_} > 1 } keys %seen;
ok(!@missing && !@twice && keys %seen == 230, 'A, B, C, D: ids 1..230 exactly once')
  or diag("missing @missing[0..9]; twice @twice[0..9]");

done_testing();
