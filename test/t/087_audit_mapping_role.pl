# Audit of the AWS credential chain (issue 14 rule "host credentials only
# for servers a superuser owns", applied to #17): on a superuser's server a
# role with USAGE on it makes its own user mapping, without keys, naming
# aws_role_arn (and aws_external_id) of its choosing.  The base
# credentials are then the host's (here the EC2 instance role), and
# AssumeRole would hand that role the host's trust: any role the instance
# may assume, not the one the superuser configured.  Refused before STS is
# asked (STS sees no request); the superuser's own mapping
# with the same role ARN works (the control).
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
	'--issued-file', "$dir/imds.json");
SfCreds::write_file("$dir/sts.json", JSON::PP::encode_json({
	account_id => $acct, users => [],
	roles => [ { arn => $loader, max_session_duration => 3600, trust_policy => {
		Version => '2012-10-17', Statement => [ {
			Effect => 'Allow', Principal => { AWS => $instance_role },
			Action => 'sts:AssumeRole',
			Condition => { StringEquals => { 'sts:ExternalId' => 'ext-087' } } } ] } } ] }));
my $sts = SfCreds::start('aws_sts', '--config', "$dir/sts.json", '--region', 'eu-west-1',
	'--issued-credentials', "$dir/imds.json", '--issued-file', "$dir/sts.json.issued");
my $s3 = SfStorageTest::start_s3(keys => { AKIDFRONTCREDS => 'front-secret-creds-087' },
	region => 'eu-west-1', buckets => ['credsbucket'], upstream_key => 'AKIDFRONTCREDS',
	issued => [ "$dir/imds.json", "$dir/sts.json.issued" ]);

my $node = SfTest::new_node('audit_role',
	conf => "sfexport.orphan_sweep_interval = 0\nlog_statement = none\n", env => {
	AWS_EC2_METADATA_DISABLED => 'false',
	AWS_EC2_METADATA_SERVICE_ENDPOINT => $imds->{url},
	AWS_ENDPOINT_URL_STS => $sts->{url} });
my $srv = "account 'a', database 'D', region 'eu-west-1', endpoint '$s3->{endpoint}'";
$node->safe_psql('postgres', qq{
	CREATE SERVER shared FOREIGN DATA WRAPPER sfexport
	  OPTIONS ($srv, location 's3://credsbucket/shared/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER shared
	  OPTIONS (aws_role_arn '$loader', aws_external_id 'ext-087');
	CREATE ROLE mallory LOGIN;
	GRANT USAGE ON FOREIGN SERVER shared TO mallory;
});

sub assume_roles
{
	my $req = SfCreds::admin($sts, 'GET', '/_sts/requests');
	return scalar grep { $_->{action} eq 'AssumeRole' } @{ ref $req eq 'HASH' ? $req->{requests} : $req };
}

# mallory's own mapping, no keys, her choice of role
$node->safe_psql('postgres', qq{
	SET ROLE mallory;
	CREATE USER MAPPING FOR mallory SERVER shared
	  OPTIONS (aws_role_arn '$loader', aws_external_id 'ext-087');
});
my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n" . SfCreds::test_storage_sql('shared'),
	extra_params => [ '-U', 'mallory' ]);
like("$out\n$err", qr/the user mapping for mallory on server "shared" may not name aws_role_arn or aws_external_id without keys of its own/,
	'mallory\'s mapping naming a role, without keys, is refused') or diag "$out\n$err";
unlike($out, qr/\|true\|.*then role/, 'no storage check passed with an assumed role for mallory')
  or diag $out;
is(assume_roles(), 0, 'STS saw no AssumeRole signed with the host\'s credentials for mallory');

# the control: the superuser's mapping with the same role works
my $rows = $node->safe_psql('postgres', SfCreds::test_storage_sql('shared'));
like($rows, qr/credentials from instance metadata \(role instance\), then role \Q$loader\E/,
	'the superuser\'s mapping assumes the role with the instance credentials');
is(assume_roles(), 1, 'one AssumeRole, the superuser\'s');

done_testing();
