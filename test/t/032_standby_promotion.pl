# Standby safety (README.md, "Delivery guarantees", 8): on a hot standby no sfexport process
# runs; after promotion the new primary exports what is pending without
# duplicating what the old primary already loaded -- including a file whose
# COPY the old primary started but never saw finish (it crashed while
# Snowflake was running it), which the new primary loads "again" and
# Snowflake skips thanks to its load metadata.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Cluster;
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
sub sfids
{
	my %seen;
	$seen{ $_->[0] }++ for @{ sf(q{SELECT "id" FROM DB.PUBLIC.EV})->{rows} };
	return \%seen;
}

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'sfexport'
sfexport.launcher_naptime = 1s
log_statement = none
});
$primary->start;
$primary->safe_psql('postgres', qq{
	CREATE EXTENSION sfexport;
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'file://$stage/', flush_interval '1h', request_timeout '30s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int, phase text) SERVER sf OPTIONS (table 'EV');
});
sf(q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () COMPRESSION = AUTO});
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
sf(q{CREATE TABLE DB.PUBLIC.EV ("id" NUMBER, "phase" VARCHAR)});

$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;

# A: rows loaded by the primary
$primary->safe_psql('postgres', q{INSERT INTO ev SELECT g, 'A' FROM generate_series(1, 100) g; SELECT sfexport.flush()});
ok($primary->poll_query_until('postgres', q{SELECT loaded_rows = 100 FROM sfexport.status}),
	'phase A loaded by the primary');
$primary->wait_for_catchup($standby);
is($standby->safe_psql('postgres',
	q{SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'sfexport%'}),
	'0', 'no sfexport launcher or worker runs on the hot standby');

# B: staged and replicated; Snowflake runs the COPY slowly; the primary
# dies before it hears the result
SfSnowflake::admin($emu, 'POST', 'config', { exec_delay_ms => 5000 });
$primary->safe_psql('postgres', q{INSERT INTO ev SELECT g, 'B' FROM generate_series(101, 150) g; SELECT sfexport.flush()});
ok($primary->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sfexport worker' AND query LIKE 'loading%'}),
	'phase B: the primary is waiting for its COPY');
# C: rows still in the outbox at the failover
$primary->safe_psql('postgres', q{INSERT INTO ev SELECT g, 'C' FROM generate_series(151, 180) g});
$primary->wait_for_catchup($standby);
$primary->stop('immediate');

# the COPY the old primary started completes in Snowflake
my $deadline = time + SfTest::secs(30);
usleep(200_000) while scalar(keys %{ sfids() }) < 150 && time < $deadline;
is(scalar(keys %{ sfids() }), 150, 'Snowflake finished the COPY the old primary never recorded');
SfSnowflake::admin($emu, 'POST', 'config', { exec_delay_ms => 0 });
is($standby->safe_psql('postgres', q{SELECT count(*) FROM sfexport.files WHERE state = 'staged'}),
	'1', 'the standby knows the file only as staged');

$standby->promote;
ok($standby->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sfexport worker'}),
	'after promotion a worker starts');
$standby->safe_psql('postgres', 'SELECT sfexport.flush()');
ok($standby->poll_query_until('postgres',
	q{SELECT pending_rows = 0 AND staged_files = 0 AND loaded_rows = 180 FROM sfexport.status}),
	'the new primary loads what was pending and settles the staged file')
  or diag($standby->safe_psql('postgres', 'SELECT * FROM sfexport.status'));

my $ids = sfids();
my $dups = grep { $_ > 1 } values %$ids;
is(scalar(keys %$ids), 180, 'every row arrived');
is($dups, 0, 'nothing was loaded twice across the failover');
is(sf(q{SELECT COUNT(*) FROM DB.PUBLIC.EV})->{rows}[0][0], 180, 'Snowflake holds 180 rows');

$standby->stop;
done_testing();
