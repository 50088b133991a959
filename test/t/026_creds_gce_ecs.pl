# Credentials of the host without stored keys, the last sources of each
# chain: GCS through the GCE metadata server (test/emulators/gce_metadata:
# Metadata-Flavor: Google required; the gcs stand-in accepts only the tokens
# it handed out, with their scopes), and S3 through ECS container credentials
# (test/emulators/aws_ecs: AWS_CONTAINER_CREDENTIALS_FULL_URI with an
# Authorization token read from AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE).
# The source shows in test_storage; the token is cached per backend,
# renewed before it expires and fetched again after a 401; no service
# account and a wrong container token fail clearly; a non-superuser's GCS
# server never asks the metadata server.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfStorageTest;
use SfCreds;
use PostgreSQL::Test::Utils;
use Test::More;

my $acct = $SfCreds::ACCOUNT;
my $task_role = "arn:aws:iam::$acct:role/task";
my $email = 'exporter@sfexport-test.iam.gserviceaccount.com';
my $dir = SfCreds::tmpdir();

my $gce = SfCreds::start('gce_metadata', '--email', $email, '--lifetime', '10',
	'--refresh-before', '6', '--issued-file', "$dir/gce.json");
my $gcs = SfStorageTest::start_gcs(buckets => ['credsbucket'], issued => [ "$dir/gce.json" ]);
my $ecs_token = 'ecs-authorization-token-026-' . int(rand(1e9));
SfTest::register_secret('ECS authorization token', $ecs_token);
SfCreds::write_file("$dir/ecs-token", $ecs_token);		# what the postmaster reads
SfCreds::write_file("$dir/ecs-expected", $ecs_token);	# what the endpoint wants
my $ecs = SfCreds::start('aws_ecs', '--role-arn', $task_role, '--full-path', '/v1/credentials',
	'--auth-token-file', "$dir/ecs-expected", '--issued-file', "$dir/ecs.json");
my $s3 = SfStorageTest::start_s3(keys => { AKIDFRONTCREDS => 'front-secret-creds-026' },
	region => 'eu-west-1', buckets => ['credsbucket'], upstream_key => 'AKIDFRONTCREDS',
	issued => [ "$dir/ecs.json" ]);

my $node = SfTest::new_node('creds_gce', conf => "sfexport.orphan_sweep_interval = 0\n", env => {
	NO_GCE_CHECK => '', GCE_METADATA_HOST => "127.0.0.1:$gce->{port}",
	AWS_CONTAINER_CREDENTIALS_FULL_URI => "$ecs->{url}/v1/credentials",
	AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE => "$dir/ecs-token" });
$node->safe_psql('postgres', qq{
	CREATE SERVER gce FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://credsbucket/gce/', endpoint '$gcs->{endpoint}');
	CREATE USER MAPPING FOR CURRENT_USER SERVER gce;
	CREATE SERVER ecs FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://credsbucket/ecs/', region 'eu-west-1',
			   endpoint '$s3->{endpoint}');
	CREATE USER MAPPING FOR CURRENT_USER SERVER ecs;
	CREATE ROLE alice LOGIN;
	GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO alice;
	SET ROLE alice;
	CREATE SERVER mine FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://credsbucket/alice/', endpoint '$gcs->{endpoint}');
	CREATE USER MAPPING FOR alice SERVER mine;
});

sub passes { return scalar(grep { /\|true\|/ } split /\n/, $_[0]); }
sub gce_stats { return SfCreds::admin($gce, 'GET', '/_gce/stats'); }

# 1. GCE metadata: the source is named, one token for the session, renewed
# past half its life (10 s here; the server hands out a new one 6 s before)
my $rows = $node->safe_psql('postgres',
	SfCreds::test_storage_sql('gce') . SfCreds::test_storage_sql('gce'));
is(passes($rows), 12, 'test_storage passes twice with the metadata server\'s token') or diag $rows;
like($rows, qr/^configuration\|true\|GCS storage at gcs:\/\/credsbucket\/gce\/, credentials from the GCE metadata server \(service account \Q$email\E\)$/m,
	'test_storage names the source: the metadata server and the service account');
is(gce_stats()->{token_requests}, 1, 'one token request for the whole session (cached)');

SfCreds::admin($gce, 'POST', '/_gce/reset');
$rows = $node->safe_psql('postgres',
	SfCreds::test_storage_sql('gce')
	  # wait for the clock, not for an event: the subject is the lifetime
	  . "SELECT pg_sleep(5.5);\n"
	  . SfCreds::test_storage_sql('gce'));
is(passes($rows), 12, 'test_storage passes before and after the renewal') or diag $rows;
my $st = gce_stats();
is($st->{token_requests}, 2, 'the token was renewed once, before it expired');
cmp_ok($st->{tokens_issued}, '>=', 1, 'and the renewal got a new token');

# 2. GCS answers 401 for a token it no longer accepts: a new one is fetched
SfCreds::admin($gce, 'POST', '/_gce/reset');
$rows = $node->safe_psql('postgres',
	SfCreds::test_storage_sql('gce')
	  . SfCreds::sql_admin_post($gce, '/_gce/expire')
	  . SfCreds::test_storage_sql('gce'));
is(passes($rows), 12, 'after a 401 from GCS the next request has a new token') or diag $rows;
is(gce_stats()->{token_requests}, 2, 'one more token request');

# 3. a non-superuser's server never asks the metadata server
my $before = gce_stats()->{requests};
my ($ret, $out, $err) = $node->psql('postgres', "SET ROLE alice;\n" . SfCreds::test_storage_sql('mine'));
like($out, qr/^configuration\|false\|no GCS credentials for server "mine".*only servers owned by a superuser/m,
	"a non-superuser's GCS server is refused the host's service account");
is(gce_stats()->{requests}, $before, 'and the metadata server saw no request for it');

# 4. an instance without a service account
SfCreds::admin($gce, 'POST', '/_gce/settings', { service_account_available => JSON::PP::false });
($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql('gce'));
like($out, qr/^configuration\|false\|no GCS credentials for server "gce": the GCE metadata server refused the request.*HTTP 404: this instance has no service account.*Hint: Attach a service account/m,
	'no service account: the error says so, with a hint');

# 5. ECS container credentials (the chain's step 5: no keys, no web
# identity, no profile in this cluster)
($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql('ecs'));
is(passes($out), 6, 'test_storage passes with the task role from the container endpoint') or diag $out;
like($out, qr/^configuration\|true\|S3 storage at s3:\/\/credsbucket\/ecs\/, credentials from container credentials \(full URI\)$/m,
	'test_storage names the source: container credentials');
my $r = SfCreds::admin($ecs, 'GET', '/_ecs/requests');
my @reqs = @{ ref $r eq 'HASH' ? $r->{requests} : $r };
is($reqs[0]{authorization}, 'valid', 'the Authorization token of the token file was sent');

SfCreds::write_file("$dir/ecs-token", 'not-the-token');
($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql('ecs'));
like($out, qr/^configuration\|false\|the container credentials endpoint refused the request for server "ecs".*HTTP 403/m,
	'a wrong container token fails naming the endpoint and its answer');
SfCreds::write_file("$dir/ecs-token", "$ecs_token\n");
($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql('ecs'));
like($out, qr/^configuration\|false\|the container authorization token contains control characters/m,
	'a token with a line break is refused before it is sent');
unlike($out . $err, qr/\Q$ecs_token\E/, 'the token is never shown');

done_testing();
