# The AWS credential chain on an EC2 instance (test/emulators/aws_imds,
# IMDSv2) and aws_role_arn assumed on top of it (test/emulators/aws_sts,
# AssumeRole signed with the instance role's credentials), against S3
# (s3_front, which accepts only the credentials those stand-ins issued):
# the source shows in test_storage; the credentials are cached per backend
# (one IMDS round per session), renewed before they expire, fetched again
# when S3 says they expired; a wrong ExternalId fails with STS's answer; a
# chain with no source fails naming every source tried; a server owned by a
# non-superuser never asks the host (IMDS sees no request).
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfStorageTest;
use SfCreds;
use PostgreSQL::Test::Utils;
use Test::More;

my $acct = $SfCreds::ACCOUNT;
my $instance_role = "arn:aws:iam::$acct:role/instance";
my $loader = "arn:aws:iam::$acct:role/loader";
my $dir = SfCreds::tmpdir();

my $imds = SfCreds::start('aws_imds', '--role-arn', $instance_role, '--region', 'eu-west-1',
	'--lifetime', '12', '--rotate-before', '8', '--issued-file', "$dir/imds.json");
SfCreds::write_file("$dir/sts.json", JSON::PP::encode_json({
	account_id => $acct, users => [],
	roles => [ { arn => $loader, max_session_duration => 3600, trust_policy => {
		Version => '2012-10-17', Statement => [ {
			Effect => 'Allow', Principal => { AWS => $instance_role },
			Action => 'sts:AssumeRole',
			Condition => { StringEquals => { 'sts:ExternalId' => 'ext-4711' } } } ] } } ] }));
my $sts = SfCreds::start('aws_sts', '--config', "$dir/sts.json", '--region', 'eu-west-1',
	'--issued-credentials', "$dir/imds.json", '--issued-file', "$dir/sts.json.issued");
my $s3 = SfStorageTest::start_s3(keys => { AKIDFRONTCREDS => 'front-secret-creds-023' },
	region => 'eu-west-1', buckets => ['credsbucket'], upstream_key => 'AKIDFRONTCREDS',
	issued => [ "$dir/imds.json", "$dir/sts.json.issued" ]);
my $ep = $s3->{endpoint};

my $node = SfTest::new_node('creds_imds',
	# the worker's orphan sweep would ask for credentials too: the counts are the tests'
	conf => "sfexport.orphan_sweep_interval = 0\n", env => {
	AWS_EC2_METADATA_DISABLED => 'false',
	AWS_EC2_METADATA_SERVICE_ENDPOINT => $imds->{url},
	AWS_ENDPOINT_URL_STS => $sts->{url} });
my $srv = "account 'a', database 'D', region 'eu-west-1', endpoint '$ep'";
$node->safe_psql('postgres', qq{
	CREATE SERVER imds FOREIGN DATA WRAPPER sfexport
	  OPTIONS ($srv, location 's3://credsbucket/imds/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER imds;
	CREATE SERVER role FOREIGN DATA WRAPPER sfexport
	  OPTIONS ($srv, location 's3://credsbucket/role/', aws_role_arn '$loader',
			   aws_external_id 'ext-4711');
	CREATE USER MAPPING FOR CURRENT_USER SERVER role;
	CREATE SERVER badext FOREIGN DATA WRAPPER sfexport
	  OPTIONS ($srv, location 's3://credsbucket/role/', aws_role_arn '$loader');
	CREATE USER MAPPING FOR CURRENT_USER SERVER badext OPTIONS (aws_external_id 'not-the-id');
	CREATE ROLE alice LOGIN;
	GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO alice;
});
$node->safe_psql('postgres', qq{
	SET ROLE alice;
	CREATE SERVER mine FOREIGN DATA WRAPPER sfexport
	  OPTIONS ($srv, location 's3://credsbucket/alice/');
	CREATE USER MAPPING FOR alice SERVER mine;
});

# options are checked at DDL time
my ($ret, $out, $err) = $node->psql('postgres',
	"ALTER SERVER imds OPTIONS (ADD aws_role_arn 'loader')");
like($err, qr/invalid value for option "aws_role_arn".*\n.*arn:aws:iam::ACCOUNT:role\/NAME/,
	'a role ARN that is not one is refused at DDL time');
($ret, $out, $err) = $node->psql('postgres',
	"ALTER SERVER imds OPTIONS (ADD aws_external_id 'has space')");
like($err, qr/invalid value for option "aws_external_id"/, 'a malformed external ID is refused');

sub imds_stats { return SfCreds::admin($imds, 'GET', '/_imds/stats'); }

# 1. instance metadata: the source is named, one IMDS round for a session
my $rows = $node->safe_psql('postgres',
	SfCreds::test_storage_sql('imds') . SfCreds::test_storage_sql('imds'));
my @rows = split /\n/, $rows;
is(scalar(grep { /\|true\|/ } @rows), 12, 'test_storage passes twice with the instance role')
  or diag $rows;
like($rows[0], qr/^configuration\|true\|S3 storage at s3:\/\/credsbucket\/imds\/, credentials from instance metadata \(role instance\)$/,
	'test_storage names the source: instance metadata and its role');
my $st = imds_stats();
is($st->{token_requests}, 1, 'one IMDSv2 session token for the whole session (cached credentials)');
is($st->{credential_requests}, 1, 'the role credentials asked once');

# 2. renewal: the credentials live 12 s; past half their life the next
# request renews them (IMDS serves new ones 8 s before expiry), and the
# requests after that succeed with the new ones
SfCreds::admin($imds, 'POST', '/_imds/reset');
$rows = $node->safe_psql('postgres',
	SfCreds::test_storage_sql('imds')
	  # wait for the clock, not for an event: the subject is the lifetime
	  . "SELECT pg_sleep(6.5);\n"
	  . SfCreds::test_storage_sql('imds'));
is(scalar(grep { /\|true\|/ } split /\n/, $rows), 12, 'test_storage passes before and after the renewal')
  or diag $rows;
$st = imds_stats();
is($st->{token_requests}, 2, 'renewed once, before expiry');
cmp_ok($st->{rotations}, '>=', 1, 'the renewal got new credentials');

# 3. S3 says the (cached, not yet expired) credentials expired: fetched anew
SfCreds::admin($imds, 'POST', '/_imds/reset');
$rows = $node->safe_psql('postgres',
	SfCreds::test_storage_sql('imds')
	  . SfCreds::sql_admin_post($imds, '/_imds/expire')
	  . SfCreds::test_storage_sql('imds'));
is(scalar(grep { /\|true\|/ } split /\n/, $rows), 12,
	'after ExpiredToken from S3 the next request uses new credentials') or diag $rows;
is(imds_stats()->{token_requests}, 2, 'the expired credentials were fetched again once');

# 4. aws_role_arn: AssumeRole signed with the instance role, ExternalId sent
$rows = $node->safe_psql('postgres', SfCreds::test_storage_sql('role'));
is(scalar(grep { /\|true\|/ } split /\n/, $rows), 6, 'test_storage passes with the assumed role')
  or diag $rows;
like($rows, qr/credentials from instance metadata \(role instance\), then role \Q$loader\E/,
	'the source names the base and the assumed role');
my $req = SfCreds::admin($sts, 'GET', '/_sts/requests');
my @ar = grep { $_->{action} eq 'AssumeRole' } @{ ref $req eq 'HASH' ? $req->{requests} : $req };
is(scalar(@ar), 1, 'one AssumeRole for the whole session');
is($ar[0]{status}, 200, 'STS accepted the signature, the instance role and the ExternalId');

# 5. a wrong ExternalId: STS refuses, the error says so
($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql('badext'));
like($out, qr/^configuration\|false\|AWS STS AssumeRole of role "\Q$loader\E" failed for server "badext".*AccessDenied.*Hint: Check the role's trust policy/m,
	'a refused AssumeRole names STS, the role, its code and a hint');

# 6. a non-superuser's server never uses the host's credentials
my $before = imds_stats()->{requests};
($ret, $out, $err) = $node->psql('postgres', "SET ROLE alice;\n" . SfCreds::test_storage_sql('mine'));
like($out, qr/^configuration\|false\|no AWS credentials for server "mine".*only servers owned by a superuser/m,
	"a non-superuser's server is refused the host's credentials");
is(imds_stats()->{requests}, $before, 'and IMDS saw no request for it');

# 7. no source at all: the error lists the chain that was tried
SfCreds::admin($imds, 'POST', '/_imds/settings', { role_available => JSON::PP::false });
($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql('imds'));
like($out, qr/^configuration\|false\|no AWS credentials for server "imds" \(SQLSTATE HV00J\) Tried the AWS credential chain: user mapping: no aws_access_key_id; environment: [^;]+; web identity: [^;]+; profile "default": [^;]+; container: [^;]+; instance metadata at \Q$imds->{url}\E: no instance profile/m,
	'a failing chain names every source tried and why') or diag $out;
unlike($out, qr/write/, 'and stops before writing anything');

done_testing();
