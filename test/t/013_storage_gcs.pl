# Google Cloud Storage against the repo's emulator
# (test/emulators/gcs), which verifies the RS256 JWT assertion
# against the service account's public key, issues tokens and checks them
# on every request.  Covers the token flow and its cache, media uploads,
# resumable uploads (with and without a short last chunk) read back byte
# for byte, a retried chunk, token expiry, STORAGE_EMULATOR_HOST, an
# unknown key, a missing bucket, test_storage, and no secret in the logs.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfStorageTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $gcs = SfStorageTest::start_gcs(buckets => ['gbucket']);
my $ep = $gcs->{endpoint};

# STORAGE_EMULATOR_HOST in the server's environment replaces the base URL
$ENV{STORAGE_EMULATOR_HOST} = "127.0.0.1:$gcs->{port}";
my $node = SfTest::new_node('gcs', test_surface => 1);
delete $ENV{STORAGE_EMULATOR_HOST};

my $keyjson = slurp_file($gcs->{key_file});
(my $keyq = $keyjson) =~ s/'/''/g;
$node->safe_psql('postgres', qq{
	SET log_statement = 'none';
	CREATE SERVER gcs FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://gbucket/pre/', endpoint '$ep');
	CREATE USER MAPPING FOR CURRENT_USER SERVER gcs OPTIONS (gcs_credentials_file '$gcs->{key_file}');
	CREATE SERVER gcsenv FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://gbucket/env/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER gcsenv OPTIONS (gcs_credentials '$keyq');
	CREATE SERVER gcsunknown FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://gbucket/pre/', endpoint '$ep');
	CREATE USER MAPPING FOR CURRENT_USER SERVER gcsunknown OPTIONS (gcs_credentials_file '$gcs->{unknown_key_file}');
	CREATE SERVER gcsnobucket FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://nobucket/pre/', endpoint '$ep');
	CREATE USER MAPPING FOR CURRENT_USER SERVER gcsnobucket OPTIONS (gcs_credentials_file '$gcs->{key_file}');
});

sub stats { return SfStorageTest::emu($gcs, 'GET', '/_emulator/stats'); }
sub psql_err
{
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$_[0]");
	return $err;
}

# ---- token flow and media upload, all in one session (token cached)
my $res = $node->safe_psql('postgres', q{
	SELECT sfexport_test.storage_put('gcs', 'd/small one.csv', convert_to(E'a,b\n1,2\n', 'UTF8'));
	SELECT sfexport_test.storage_get('gcs', 'd/small one.csv') = convert_to(E'a,b\n1,2\n', 'UTF8');
	SELECT sfexport_test.storage_head('gcs', 'd/small one.csv');
	SELECT sfexport_test.storage_head('gcs', 'd/none') IS NULL;
	SELECT sfexport_test.storage_get('gcs', 'd/none') IS NULL;
	SELECT string_agg(n, ',') FROM sfexport_test.storage_list('gcs') n;
});
is($res, "8\nt\n8\nt\nt\nd/small one.csv", 'media upload, read back, size, missing objects, listing');
my $st = stats();
is($st->{tokens_issued}, 1, 'one token for all requests of a session (cached)');
is($st->{unauthorized}, 0, 'no request was refused');
is($st->{uploads_completed}, 1, 'one upload');

# ---- resumable uploads: 19.2 MB (short last chunk) and exactly 10 MiB
my $big = q{SELECT string_agg(md5(g::text), '' ORDER BY g)::bytea FROM generate_series(1, 600000) g};
my $even = q{SELECT repeat('0123456789abcdef', 655360)::bytea};
SfStorageTest::emu($gcs, 'POST', '/_emulator/reset');
$res = $node->safe_psql('postgres', qq{
	SET sfexport.upload_part_size = '5MB';
	SELECT sfexport_test.storage_put('gcs', 'big.csv', ($big), 77777);
	SELECT md5(sfexport_test.storage_get('gcs', 'big.csv')) = md5(($big));
	SELECT sfexport_test.storage_put('gcs', 'even.csv', ($even), 1048576);
	SELECT md5(sfexport_test.storage_get('gcs', 'even.csv')) = md5(($even));
	SELECT sfexport_test.storage_head('gcs', 'even.csv');
});
is($res, "19200000\nt\n10485760\nt\n10485760", 'resumable uploads read back byte for byte');
$st = stats();
cmp_ok($st->{resumable_chunks}, '>=', 4 + 2, 'the large objects were sent in chunks');
is($st->{uploads_completed}, 2, 'both resumable uploads completed');

# ---- a chunk answered 503 is retried from what the session persisted
SfStorageTest::emu($gcs, 'POST', '/_emulator/reset');
SfStorageTest::emu($gcs, 'POST', '/_emulator/faults', { kind => '503', method => 'PUT', after => 1 });
$res = $node->safe_psql('postgres', qq{
	SET sfexport.upload_part_size = '5MB';
	SELECT sfexport_test.storage_put('gcs', 'retried.csv', ($big), 1000000);
	SELECT md5(sfexport_test.storage_get('gcs', 'retried.csv')) = md5(($big));
});
is($res, "19200000\nt", 'a resumable upload survives a 503 on a chunk');
is(stats()->{faults_injected}, 1, 'the 503 was injected');

# ---- a chunk on the network while the next one is written (storage.c) can
# be cancelled; the session uploads again afterwards
SfStorageTest::emu($gcs, 'POST', '/_emulator/reset');
SfStorageTest::emu($gcs, 'POST', '/_emulator/faults', { kind => 'delay', delay_ms => 30000, method => 'PUT', count => 1 });
my $bgmp = SfStorageTest::cancel_upload($node, 'gcs', 'cancelled.csv', $big);
SfStorageTest::emu($gcs, 'DELETE', '/_emulator/faults');
is($bgmp->query("SELECT sfexport_test.storage_put('gcs', 'after-cancel.csv', ($big), 1000000)"), '19200000',
	'the same session uploads in chunks again after the cancel');
like($bgmp->{stderr}, qr/ERROR:  canceling statement due to user request/, 'the upload was cancelled');
$bgmp->quit;
is($node->safe_psql('postgres', q{SELECT sfexport_test.storage_head('gcs', 'cancelled.csv') IS NULL,
	md5(sfexport_test.storage_get('gcs', 'after-cancel.csv')) = md5((} . $big . q{))}), "t|t",
	'no object for the cancelled upload; the next one is complete');

# ---- media upload retried after 503
SfStorageTest::emu($gcs, 'POST', '/_emulator/faults', { kind => '503', method => 'POST', count => 2 });
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_put('gcs', 'm.csv', '\\x0102'); SELECT sfexport_test.storage_get('gcs', 'm.csv')"),
	"2\n\\x0102", 'a media upload succeeds after two 503 answers');

# ---- expired token: 401, new token, success
SfStorageTest::emu($gcs, 'POST', '/_emulator/reset');
my $bg = $node->background_psql('postgres');
$bg->query_safe("SELECT sfexport_test.storage_head('gcs', 'm.csv')");
SfStorageTest::emu($gcs, 'POST', '/_emulator/expire-tokens');
is($bg->query_safe("SELECT sfexport_test.storage_head('gcs', 'm.csv')"), '2', 'works after the token was revoked');
$bg->quit;
$st = stats();
is($st->{unauthorized}, 1, 'the stale token was refused once');
is($st->{tokens_issued}, 2, 'and a new token was obtained');

# ---- STORAGE_EMULATOR_HOST
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_put('gcsenv', 'e.csv', '\\x01'); SELECT string_agg(n, ',') FROM sfexport_test.storage_list('gcsenv') n"),
	"1\ne.csv", 'STORAGE_EMULATOR_HOST replaces the GCS base URL');

# ---- errors
my $err = psql_err("SELECT sfexport_test.storage_put('gcsunknown', 'x.csv', '\\x01')");
like($err, qr/ERROR:  28000: GCS token request POST .*\/token failed: HTTP 401/, 'a key the service does not know: authorization error');
$err = psql_err("SELECT sfexport_test.storage_put('gcsnobucket', 'x.csv', '\\x01')");
like($err, qr/ERROR:  42704: GCS request POST .* failed: HTTP 404 notFound/, 'missing bucket');
like($err, qr/DETAIL:  The specified bucket does not exist/, 'with the service message');

# ---- test_storage
is($node->safe_psql('postgres', "SELECT string_agg(step || ':' || ok, ',') FROM sfexport.test_storage('gcs')"),
	'configuration:true,write:true,stat:true,read back:true,delete:true,verify deleted:true', 'test_storage succeeds');
like($node->safe_psql('postgres', "SELECT step || ':' || detail FROM sfexport.test_storage('gcsunknown') WHERE NOT ok"),
	qr/^write:GCS token request .* HTTP 401/, 'test_storage: unknown key');
like($node->safe_psql('postgres', "SELECT step || ':' || detail FROM sfexport.test_storage('gcsnobucket') WHERE NOT ok"),
	qr/^write:.*404 notFound \(SQLSTATE 42704\) The specified bucket does not exist/, 'test_storage: missing bucket');

# ---- no secret in any log
$node->stop;
my $logs = SfTest::slurp_tree($node->logfile =~ s{/[^/]+$}{}r);
$logs->{ $gcs->{log} } = slurp_file($gcs->{log});
my @pem = grep { length($_) > 40 } split /\\n/, $gcs->{key}{private_key};
my @leaks;
for my $f (sort keys %$logs)
{
	push @leaks, "$f contains the private key" if grep { index($logs->{$f}, $_) >= 0 } @pem;
	push @leaks, "$f contains a bearer token" if $logs->{$f} =~ /Bearer\s+[A-Za-z0-9._\-]{10,}/;
	push @leaks, "$f contains a JWT assertion" if $logs->{$f} =~ /eyJ[A-Za-z0-9_\-]{10,}\.eyJ/;
}
is_deeply(\@leaks, [], 'no private key, token or assertion in the server or emulator logs');

done_testing();
