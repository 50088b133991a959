# The worker exports with the host's credentials: rows inserted into a
# foreign table on a superuser's server with no AWS keys are staged in S3
# with the EC2 instance role (test/emulators/aws_imds; s3_front accepts
# only what it issued) and loaded by the Snowflake emulator (which reads the
# stage as a storage integration would, with its own key).  While the
# instance has no role the chain fails: the worker's WARNING lists what it
# tried, and the rows wait in the outbox; once the role is there they
# arrive, exactly once.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfStorageTest;
use SfCreds;
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;

my $acct = $SfCreds::ACCOUNT;
my $dir = SfCreds::tmpdir();
my $imds = SfCreds::start('aws_imds', '--role-arn', "arn:aws:iam::$acct:role/instance",
	'--region', 'eu-west-1', '--issued-file', "$dir/imds.json");
SfCreds::admin($imds, 'POST', '/_imds/settings', { role_available => JSON::PP::false });
my $front_secret = 'front-secret-creds-027';
my $s3 = SfStorageTest::start_s3(keys => { AKIDFRONTCREDS => $front_secret },
	region => 'eu-west-1', buckets => ['credsbucket'], upstream_key => 'AKIDFRONTCREDS',
	issued => [ "$dir/imds.json" ]);
my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'creds');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--s3-endpoint', $s3->{endpoint}, '--s3-access-key', 'AKIDFRONTCREDS',
		'--s3-secret-key', $front_secret, '--s3-region', 'eu-west-1' ]);

my $node = SfTest::new_node('creds_pipe',
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\nsfexport.orphan_sweep_interval = 0\n",
	env => { AWS_EC2_METADATA_DISABLED => 'false', AWS_EC2_METADATA_SERVICE_ENDPOINT => $imds->{url} });
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC', warehouse 'WH',
		location 's3://credsbucket/pipe/', region 'eu-west-1', endpoint '$s3->{endpoint}',
		storage_integration 'SFEXPORT_S3', flush_interval '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE events (id int, kind text) SERVER sf OPTIONS (table 'EVENTS');
});
like($node->safe_psql('postgres', q{SELECT * FROM sfexport.setup('sf')}),
	qr/CREATE STAGE IF NOT EXISTS .* STORAGE_INTEGRATION = "SFEXPORT_S3"/,
	'the stage reads S3 through a storage integration: the host\'s credentials never go to Snowflake');

# no role on the instance: the chain fails, the rows wait
my $log_offset = -s $node->logfile;
$node->safe_psql('postgres', q{
	INSERT INTO events SELECT g, 'k' || g FROM generate_series(1, 3) g;
	SELECT sfexport.flush();
});
ok($node->wait_for_log(qr/no AWS credentials for server "sf".*\n.*DETAIL:  Tried the AWS credential chain: .*instance metadata at \Q$imds->{url}\E: no instance profile/,
	$log_offset), "the worker's WARNING lists the chain it tried");
is($node->safe_psql('postgres', q{SELECT count(*) FROM sfexport.outbox}), '3',
	'the rows wait in the outbox');
is(SfSnowflake::emu_query($emu, 'SELECT COUNT(*) FROM DB.PUBLIC.EVENTS')->{rows}[0][0], 0,
	'nothing reached Snowflake');

# the instance gets its role: the rows arrive, exactly once
SfCreds::admin($imds, 'POST', '/_imds/settings', { role_available => JSON::PP::true });
$node->safe_psql('postgres', 'SELECT sfexport.flush()');
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 3 AND pending_rows = 0 FROM sfexport.status WHERE foreign_table = 'events'::regclass}),
	'with the instance role the rows are staged and loaded')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));
is(SfSnowflake::emu_query($emu, 'SELECT COUNT(*) FROM DB.PUBLIC.EVENTS')->{rows}[0][0], 3,
	'all three rows are in Snowflake, once');
cmp_ok(SfCreds::admin($imds, 'GET', '/_imds/stats')->{credential_requests}, '>=', 1,
	'the worker asked the instance metadata service');

done_testing();
