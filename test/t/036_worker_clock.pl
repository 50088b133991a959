# The worker's clock moves: now() in its transactions is the time of that
# transaction, not the time the worker started.
#
# A background worker has no client statements, so nothing sets the
# statement start timestamp that now() (transaction start) is taken from
# unless the worker does it.  With a frozen now(), a COPY that failed as a
# whole put its files in a backoff (next_attempt_at = now() + 10 s) that
# never expired for the life of the worker: after a short Snowflake outage
# the staged files waited until the worker restarted.  loaded_at,
# deleted_at and last_attempt_at were all the worker's start time too, and
# manifest_retention never removed anything.  Found by 034_fault_matrix.
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
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

# (log_statement = none: the harness logs every statement, and the DDL
# below carries a key, which PostgreSQL itself would log; see README, Security)
my $node = SfTest::new_node('clock', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'file://$stage/', flush_interval '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE t (id int) SERVER sf OPTIONS (table 'T');
});
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }
sf(q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () EMPTY_FIELD_AS_NULL = TRUE COMPRESSION = AUTO});
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
sf(q{CREATE TABLE DB.PUBLIC.T ("id" NUMBER)});

ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sfexport worker'}),
	'the worker runs');
sleep 2;    # the worker is a while old now

# ---- timestamps of the manifest are those of the work
my $before = $node->safe_psql('postgres', 'SELECT clock_timestamp()');
$node->safe_psql('postgres', 'INSERT INTO t SELECT generate_series(1, 10)');
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 10 AND staged_files = 0 FROM sfexport.status}), 'rows load');
is($node->safe_psql('postgres', qq{
	SELECT bool_and(staged_at >= '$before' AND loaded_at >= staged_at
	                AND last_attempt_at >= '$before') FROM sfexport.files}),
	't', 'staged_at, loaded_at and last_attempt_at are the time of the work, not the worker start')
  or diag($node->safe_psql('postgres',
	"SELECT '$before', staged_at, loaded_at, last_attempt_at FROM sfexport.files"));

# ---- a COPY that fails as a whole is tried again after its backoff
SfSnowflake::admin($emu, 'POST', 'faults',
	{ action => '422', statement => '^\s*COPY', count => 1,
	  message => 'Injected outage', code => '000625', sql_state => '57014' });
$node->safe_psql('postgres', 'INSERT INTO t SELECT generate_series(11, 20)');
ok($node->poll_query_until('postgres',
	q{SELECT staged_files = 1 AND last_error IS NOT NULL FROM sfexport.status}),
	'a failed COPY leaves its file staged with the error');
my $wait = $node->safe_psql('postgres', q{
	SELECT round(extract(epoch FROM next_attempt_at - clock_timestamp()))
	  FROM sfexport.files WHERE state = 'staged'});
cmp_ok($wait, '>', 0, 'the file waits for its backoff');
cmp_ok($wait, '<=', 10, 'the first backoff is 10 s from now');
# the backoff (10 s) plus at most one housekeeping period (10 s)
my $loaded = 0;
for (1 .. 40)
{
	$loaded = 1, last
	  if $node->safe_psql('postgres', q{SELECT loaded_rows = 20 AND staged_files = 0 FROM sfexport.status})
	  eq 't';
	sleep 1;
}
ok($loaded, 'once the backoff expires the worker loads the file, without a restart')
  or diag($node->safe_psql('postgres',
	'SELECT now(), clock_timestamp(), name, state, attempts, last_attempt_at, next_attempt_at FROM sfexport.files'));
is(sf(q{SELECT COUNT(*) FROM DB.PUBLIC.T})->{rows}[0][0], 20, 'Snowflake has every row once');

$node->stop;
done_testing();
