# The first steps of the AWS credential chain and the shared files: user
# mapping keys, then the postmaster's environment, then a profile of
# AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE chosen with the server's
# aws_profile (which skips the environment, as botocore does): static keys,
# role_arn + source_profile (AssumeRole with external_id and
# duration_seconds, checked by test/emulators/aws_sts), role_arn +
# credential_source Environment; profiles that cannot be used fail clearly.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfStorageTest;
use SfCreds;
use PostgreSQL::Test::Utils;
use Test::More;

my $acct = $SfCreds::ACCOUNT;
my $loader = "arn:aws:iam::$acct:role/loader";
my $envrole = "arn:aws:iam::$acct:role/envrole";
my %key = (AKIDBASEPROFILE => 'base-profile-secret/025+x', AKIDENVKEYS0025 => 'env-keys-secret/025+y');
my $dir = SfCreds::tmpdir();

SfCreds::write_file("$dir/sts.json", JSON::PP::encode_json({
	account_id => $acct,
	users => [ { access_key_id => 'AKIDBASEPROFILE', secret_access_key => $key{AKIDBASEPROFILE},
				 arn => "arn:aws:iam::$acct:user/base" },
			   { access_key_id => 'AKIDENVKEYS0025', secret_access_key => $key{AKIDENVKEYS0025},
				 arn => "arn:aws:iam::$acct:user/env" } ],
	roles => [ { arn => $loader, max_session_duration => 3600, trust_policy => {
					Version => '2012-10-17', Statement => [ {
						Effect => 'Allow', Principal => { AWS => "arn:aws:iam::$acct:user/base" },
						Action => 'sts:AssumeRole',
						Condition => { StringEquals => { 'sts:ExternalId' => 'ext-4711' } } } ] } },
			   { arn => $envrole, trust_policy => {
					Version => '2012-10-17', Statement => [ {
						Effect => 'Allow', Principal => { AWS => "arn:aws:iam::$acct:user/env" },
						Action => 'sts:AssumeRole' } ] } } ] }));
my $sts = SfCreds::start('aws_sts', '--config', "$dir/sts.json", '--region', 'eu-west-1',
	'--issued-file', "$dir/sts-issued.json");
my $s3 = SfStorageTest::start_s3(keys => \%key, region => 'eu-west-1', buckets => ['credsbucket'],
	issued => [ "$dir/sts-issued.json" ]);

SfCreds::write_file("$dir/config", <<"EOF");
# written by 025_creds_profiles.pl
[default]
region = eu-west-1

[profile loader]
role_arn = $loader
source_profile = base
external_id = ext-4711
duration_seconds = 900
s3 =
  addressing_style = path

[profile fromenv]
role_arn = $envrole
credential_source = Environment

[profile sso]
sso_session = corp

[profile both]
role_arn = $loader
source_profile = base
credential_source = Environment
EOF
SfCreds::write_file("$dir/credentials", <<"EOF");
; written by 025_creds_profiles.pl
[base]
aws_access_key_id = AKIDBASEPROFILE
aws_secret_access_key = $key{AKIDBASEPROFILE}
EOF

my $node = SfTest::new_node('creds_prof', conf => "sfexport.orphan_sweep_interval = 0\n", env => {
	AWS_ACCESS_KEY_ID => 'AKIDENVKEYS0025', AWS_SECRET_ACCESS_KEY => $key{AKIDENVKEYS0025},
	AWS_CONFIG_FILE => "$dir/config", AWS_SHARED_CREDENTIALS_FILE => "$dir/credentials" });
# STS through the server option here (023 and 024 use AWS_ENDPOINT_URL_STS)
my $srv = "account 'a', database 'D', region 'eu-west-1', endpoint '$s3->{endpoint}', location 's3://credsbucket/p/', sts_endpoint '$sts->{url}'";
my $ddl = "SET log_statement = 'none';\n";
for my $s ([ 'mapped', '' ], [ 'envsrv', '' ], [ 'loader', ", aws_profile 'loader'" ],
		   [ 'static', ", aws_profile 'base'" ], [ 'fromenv', ", aws_profile 'fromenv'" ],
		   [ 'sso', ", aws_profile 'sso'" ], [ 'twosrc', ", aws_profile 'both'" ],
		   [ 'nosuch', ", aws_profile 'nosuch'" ])
{
	$ddl .= "CREATE SERVER $s->[0] FOREIGN DATA WRAPPER sfexport OPTIONS ($srv$s->[1]);\n";
	$ddl .= "CREATE USER MAPPING FOR CURRENT_USER SERVER $s->[0]"
	  . ($s->[0] eq 'mapped'
		 ? " OPTIONS (aws_access_key_id 'AKIDBASEPROFILE', aws_secret_access_key '$key{AKIDBASEPROFILE}')" : '')
	  . ";\n";
}
$ddl .= "CREATE SERVER rolemapped FOREIGN DATA WRAPPER sfexport OPTIONS ($srv);\n"
  . "CREATE USER MAPPING FOR CURRENT_USER SERVER rolemapped OPTIONS (aws_access_key_id 'AKIDBASEPROFILE', "
  . "aws_secret_access_key '$key{AKIDBASEPROFILE}', aws_role_arn '$loader', aws_external_id 'ext-4711');\n";
$node->safe_psql('postgres', $ddl);

sub storage
{
	my ($server) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql($server));
	return $out;
}
sub passes { return scalar(grep { /\|true\|/ } split /\n/, $_[0]); }

my %expect = (
	rolemapped => "user mapping, then role $loader",
	mapped => 'user mapping',
	envsrv => 'environment',
	static => 'profile "base"',
	loader => "profile \"loader\" (role $loader)",
	fromenv => "profile \"fromenv\" (role $envrole)");
for my $server (sort keys %expect)
{
	my $out = storage($server);
	is(passes($out), 6, "test_storage passes on server $server") or diag $out;
	like($out, qr/^configuration\|true\|.*, credentials from \Q$expect{$server}\E$/m,
		"server $server: credentials from $expect{$server}");
}

my $r = SfCreds::admin($sts, 'GET', '/_sts/requests');
my @ar = grep { $_->{action} eq 'AssumeRole' } @{ ref $r eq 'HASH' ? $r->{requests} : $r };
my ($l) = grep { $_->{role_arn} eq $loader } @ar;
my ($e) = grep { $_->{role_arn} eq $envrole } @ar;
is($l->{status}, 200, 'role_arn + source_profile: AssumeRole signed with the source profile, ExternalId accepted');
is($l->{duration}, 900, 'duration_seconds of the profile is sent');
is($e->{status}, 200, 'credential_source Environment: AssumeRole signed with the environment\'s keys');

like(storage('sso'), qr/^configuration\|false\|AWS profile "sso" cannot be used: SSO profiles are not supported/m,
	'an SSO profile is refused clearly');
like(storage('twosrc'), qr/^configuration\|false\|AWS profile "both" cannot be used: it has both source_profile and credential_source/m,
	'source_profile with credential_source is refused');
like(storage('nosuch'), qr/^configuration\|false\|AWS profile "nosuch" cannot be used: no such profile in the shared files.*Hint: Check the profile/m,
	'a profile named by aws_profile must exist');

# the stage cannot be given an assumed role's temporary credentials
my ($ret, $out, $err) = $node->psql('postgres', "SELECT sfexport.setup_stage('rolemapped', true)");
like($err, qr/no way for Snowflake to read s3:\/\/credsbucket\/p\/ with an assumed role.*\n.*DETAIL:  .*aws_role_arn.*\n.*HINT:  Create a storage integration/,
	'setup_stage refuses to give Snowflake the keys a role is assumed with');
unlike($err, qr/\Q$key{AKIDBASEPROFILE}\E/, 'and shows no key');

done_testing();
