# Web identity, as EKS IRSA sets it up: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE
# in the postmaster's environment, exchanged with STS AssumeRoleWithWebIdentity
# (test/emulators/aws_sts: the JWT checked against the OIDC provider's JWKS,
# the trust policy's aud and sub).  The source shows in test_storage; the
# temporary credentials (16 s here) are renewed past half their life with the
# token file read again; a failed renewal keeps the still-valid credentials
# with a WARNING, and once they are in their last quarter nothing is sent
# with them: the error is STS's refusal.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfStorageTest;
use SfCreds;
use PostgreSQL::Test::Utils;
use Test::More;

my $acct = $SfCreds::ACCOUNT;
my $irsa = "arn:aws:iam::$acct:role/irsa";
my $issuer = 'https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE';
(my $cond = $issuer) =~ s{^https://}{};
my $dir = SfCreds::tmpdir();
my $key = SfCreds::oidc_key($dir);

SfCreds::write_file("$dir/sts.json", JSON::PP::encode_json({
	account_id => $acct, users => [],
	roles => [ { arn => $irsa, trust_policy => {
		Version => '2012-10-17', Statement => [ {
			Effect => 'Allow', Principal => { Federated => "arn:aws:iam::$acct:oidc-provider/$cond" },
			Action => 'sts:AssumeRoleWithWebIdentity',
			Condition => { StringEquals => { "$cond:aud" => 'sts.amazonaws.com',
											 "$cond:sub" => 'system:serviceaccount:etl:sfexport' } } } ] } } ],
	oidc_providers => [ { arn => "arn:aws:iam::$acct:oidc-provider/$cond", url => $issuer,
						  client_ids => ['sts.amazonaws.com'], jwks => { keys => [ $key->{jwk} ] } } ] }));
my $sts = SfCreds::start('aws_sts', '--config', "$dir/sts.json", '--region', 'eu-west-1',
	'--lifetime', '16', '--issued-file', "$dir/sts-issued.json");
my $s3 = SfStorageTest::start_s3(keys => { AKIDFRONTCREDS => 'front-secret-creds-024' },
	region => 'eu-west-1', buckets => ['credsbucket'], upstream_key => 'AKIDFRONTCREDS',
	issued => [ "$dir/sts-issued.json" ]);

sub token
{
	my ($sub) = @_;
	my $t = $key->{sign}->({ iss => $issuer, aud => 'sts.amazonaws.com', sub => $sub,
							 iat => time, exp => time + 3600 });
	SfTest::register_secret('web identity token', $t);
	return $t;
}
SfCreds::write_file("$dir/token", token('system:serviceaccount:etl:sfexport'), 0644);

my $node = SfTest::new_node('creds_web',
	# the worker's orphan sweep would ask for credentials too: the counts are the tests'
	conf => "sfexport.orphan_sweep_interval = 0\n", env => {
	AWS_ROLE_ARN => $irsa, AWS_WEB_IDENTITY_TOKEN_FILE => "$dir/token",
	AWS_ENDPOINT_URL_STS => $sts->{url} });
$node->safe_psql('postgres', qq{
	CREATE SERVER web FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', region 'eu-west-1', endpoint '$s3->{endpoint}',
			   location 's3://credsbucket/web/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER web;
});

sub web_calls
{
	my $r = SfCreds::admin($sts, 'GET', '/_sts/requests');
	return grep { $_->{action} eq 'AssumeRoleWithWebIdentity' } @{ ref $r eq 'HASH' ? $r->{requests} : $r };
}
sub passes { return scalar(grep { /\|true\|/ } split /\n/, $_[0]); }

# 1. the token is exchanged, the source is named, and renewed past half-life
my $rows = $node->safe_psql('postgres',
	SfCreds::test_storage_sql('web')
	  # wait for the clock, not for an event: the subject is the lifetime
	  . "SELECT pg_sleep(8.5);\n"
	  . SfCreds::test_storage_sql('web'));
is(passes($rows), 12, 'test_storage passes with web identity credentials, before and after renewal')
  or diag $rows;
like($rows, qr/^configuration\|true\|S3 storage at s3:\/\/credsbucket\/web\/, credentials from web identity \(role \Q$irsa\E\)$/m,
	'test_storage names the source: web identity and its role');
my @calls = web_calls();
is(scalar(@calls), 2, 'one exchange, then one renewal before expiry');
is(scalar(grep { $_->{status} == 200 } @calls), 2, 'STS accepted the token and the trust policy both times');
like($calls[0]{session} // '', qr/^sfexport-\d+-\d+$/, 'the role session is named after sfexport');

# 2. a failed renewal keeps the current credentials while they are usable,
# never after: the token file is read again at every exchange
SfCreds::admin($sts, 'DELETE', '/_sts/requests');
my ($ret, $out, $err) = $node->psql('postgres',
	SfCreds::test_storage_sql('web')
	  . "COPY (SELECT 'not-a-jwt') TO '$dir/token';\n"
	  # renewal due after 8 s, the credentials unusable after 12 s
	  . "SELECT pg_sleep(8.5);\n"
	  . SfCreds::test_storage_sql('web')
	  . "SELECT pg_sleep(4);\n"
	  . SfCreds::test_storage_sql('web'));
my @out = grep { length } split /\n/, $out;
is(passes(join "\n", @out[0 .. 11]), 12, 'test_storage passes while a renewal fails but the credentials are valid')
  or diag $out;
like($err, qr/WARNING:  could not renew the AWS credentials from web identity \(role \Q$irsa\E\) for server "web"; the current ones are used for \d+ more seconds/,
	'the failed renewal is a WARNING naming the source');
like($err, qr/DETAIL:  AWS STS AssumeRoleWithWebIdentity of role "\Q$irsa\E" failed/, 'with STS\'s refusal as detail');
like($out[12] // '', qr/^configuration\|false\|AWS STS AssumeRoleWithWebIdentity of role "\Q$irsa\E" failed for server "web".*InvalidIdentityToken/,
	'in their last seconds the credentials are not used: the error is the refusal');
unlike($out, qr/not-a-jwt|eyJ/, 'the token is never shown');

# 3. a token the trust policy does not allow (another service account)
SfCreds::write_file("$dir/token", token('system:serviceaccount:etl:other'), 0644);
($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql('web'));
like($out, qr/^configuration\|false\|.*AccessDenied.*Hint: Check the role's trust policy/m,
	'a service account the trust policy does not name is refused by STS, with a hint');

done_testing();
