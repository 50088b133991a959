# GCS with an external account (workload identity federation): a
# gcs_credentials JSON of "type": "external_account" whose subject token (an
# OIDC token in a file) is exchanged at Google STS and, with
# service_account_impersonation_url, for the service account's token
# (test/emulators/google_sts; the gcs stand-in accepts only the tokens it
# issued).  The source shows in test_storage; tokens are cached per
# backend; a principal the service account does not trust fails with IAM's
# answer; such a JSON in a non-superuser's own mapping is refused before
# any file is read.  Also, in this cluster: no metadata server answering, and
# (AWS) a container credentials URL that only looks like loopback.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfStorageTest;
use SfCreds;
use PostgreSQL::Test::Utils;
use Test::More;

my $dir = SfCreds::tmpdir();
my $key = SfCreds::oidc_key($dir);
my $pool = 'projects/123456789012/locations/global/workloadIdentityPools/pool';
my $audience = "//iam.googleapis.com/$pool/providers/prov";
my $issuer = 'https://issuer.example';
my $sa = 'loader@sfexport-test.iam.gserviceaccount.com';

SfCreds::write_file("$dir/wif.json", JSON::PP::encode_json({
	providers => [ { audience => $audience, issuer => $issuer, jwks => { keys => [ $key->{jwk} ] } } ],
	service_accounts => [ { email => $sa,
		members => [ "principal://iam.googleapis.com/$pool/subject/etl-job" ] } ] }));
my $gsts = SfCreds::start('google_sts', '--config', "$dir/wif.json", '--issued-file', "$dir/gsts.json");
my $gcs = SfStorageTest::start_gcs(buckets => ['credsbucket'], issued => [ "$dir/gsts.json" ]);

sub subject
{
	my ($sub, $file) = @_;
	my $t = $key->{sign}->({ iss => $issuer, sub => $sub, aud => "https:$audience",
							 iat => time, exp => time + 3600 });
	SfTest::register_secret('OIDC subject token', $t);
	SfCreds::write_file($file, $t, 0644);
}
subject('etl-job', "$dir/subject");
subject('someone-else', "$dir/other-subject");

sub config
{
	my ($file, $impersonate) = @_;
	my $c = { type => 'external_account', audience => $audience,
		subject_token_type => 'urn:ietf:params:oauth:token-type:jwt',
		token_url => "$gsts->{url}/v1/token",
		credential_source => { file => $file, format => { type => 'text' } } };
	$c->{service_account_impersonation_url} =
	  "$gsts->{url}/v1/projects/-/serviceAccounts/$sa:generateAccessToken" if $impersonate;
	(my $j = JSON::PP::encode_json($c)) =~ s/'/''/g;
	return $j;
}

# (no GCE metadata server answers at the address this cluster is given)
my $node = SfTest::new_node('creds_wif', conf => "sfexport.orphan_sweep_interval = 0\n",
	env => { NO_GCE_CHECK => '', GCE_METADATA_HOST => '127.0.0.1:1',
			 # and a container credentials URL that only looks like loopback
			 AWS_CONTAINER_CREDENTIALS_FULL_URI => 'http://127.0.0.1.nip.example/creds' });
my $srv = "account 'a', database 'D', endpoint '$gcs->{endpoint}'";
# (log_statement = none: the harness logs every statement; gcs_credentials
# is a user-mapping secret to the secret scan)
$node->safe_psql('postgres', qq{
	SET log_statement = 'none';
	CREATE SERVER wif FOREIGN DATA WRAPPER sfexport OPTIONS ($srv, location 'gcs://credsbucket/wif/');
	CREATE USER MAPPING FOR PUBLIC SERVER wif OPTIONS (gcs_credentials '@{[ config("$dir/subject", 1) ]}');
	CREATE SERVER direct FOREIGN DATA WRAPPER sfexport OPTIONS ($srv, location 'gcs://credsbucket/direct/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER direct OPTIONS (gcs_credentials '@{[ config("$dir/subject", 0) ]}');
	CREATE SERVER other FOREIGN DATA WRAPPER sfexport OPTIONS ($srv, location 'gcs://credsbucket/other/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER other OPTIONS (gcs_credentials '@{[ config("$dir/other-subject", 1) ]}');
	CREATE SERVER s3ecs FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://credsbucket/x/', endpoint 'http://127.0.0.1:1');
	CREATE USER MAPPING FOR CURRENT_USER SERVER s3ecs;
	CREATE SERVER nokey FOREIGN DATA WRAPPER sfexport OPTIONS ($srv, location 'gcs://credsbucket/nokey/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER nokey;
	CREATE ROLE alice LOGIN;
	GRANT USAGE ON FOREIGN SERVER wif TO alice;
	CREATE USER MAPPING FOR alice SERVER wif OPTIONS (gcs_credentials '@{[ config('/etc/passwd', 0) ]}');
});

sub passes { return scalar(grep { /\|true\|/ } split /\n/, $_[0]); }

# 1. exchange + impersonation, cached for the session
my $rows = $node->safe_psql('postgres',
	SfCreds::test_storage_sql('wif') . SfCreds::test_storage_sql('wif'));
is(passes($rows), 12, 'test_storage passes twice with the impersonated service account') or diag $rows;
like($rows, qr/^configuration\|true\|GCS storage at gcs:\/\/credsbucket\/wif\/, credentials from the user mapping's external account, workload identity federation \(service account \Q$sa\E\)$/m,
	'test_storage names the source: the external account and its service account');
my $st = SfCreds::admin($gsts, 'GET', '/_gsts/stats');
is($st->{exchanges}, 1, 'one token exchange for the session');
is($st->{impersonations}, 1, 'one generateAccessToken for the session');

# 2. the federated token itself, without impersonation
$rows = $node->safe_psql('postgres', SfCreds::test_storage_sql('direct'));
is(passes($rows), 6, 'test_storage passes with the federated token') or diag $rows;
like($rows, qr/credentials from the user mapping's external account, workload identity federation \(\Q$audience\E\)$/m,
	'the source names the pool provider');

# 3. a principal the service account does not trust
my ($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql('other'));
like($out, qr/^configuration\|false\|impersonating the service account failed for server "other".*HTTP 403 PERMISSION_DENIED.*Hint: Grant the federated principal roles\/iam.workloadIdentityUser/m,
	'an untrusted principal fails with IAM\'s answer and a hint');

# 4. a non-superuser's own mapping may not read host files through the JSON
my $before = SfCreds::admin($gsts, 'GET', '/_gsts/stats')->{requests};
($ret, $out, $err) = $node->psql('postgres', "SET ROLE alice;\n" . SfCreds::test_storage_sql('wif'));
like($out, qr/^configuration\|false\|external account credentials cannot be used for server "wif"/m,
	"external account JSON in a non-superuser's own mapping is refused");
is(SfCreds::admin($gsts, 'GET', '/_gsts/stats')->{requests}, $before, 'and nothing was sent');
unlike($out . $err, qr/root:/, 'nothing of the named file is shown');

# 5. no key and no metadata server
($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql('nokey'));
like($out, qr/^configuration\|false\|no GCS credentials for server "nokey": the GCE metadata server at http:\/\/127.0.0.1:1 did not answer.*Hint: Outside GCE give gcs_credentials/m,
	'no key and no metadata server: the error says where it asked, with a hint');

# 6. (AWS) a plain-http container URL to a name, not a loopback address
($ret, $out, $err) = $node->psql('postgres', SfCreds::test_storage_sql('s3ecs'));
like($out, qr/^configuration\|false\|AWS_CONTAINER_CREDENTIALS_FULL_URI is not an allowed container credentials URL/m,
	'a container credentials URL over http to a host name is refused before any request');

done_testing();
