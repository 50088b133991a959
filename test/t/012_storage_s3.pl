# S3 storage against s3rver behind the botocore-verifying front
# (test/emulators/s3_front): every request the extension sends must
# carry a SigV4 signature botocore agrees with, or it is rejected.
# Covers small and multipart uploads with byte-exact read-back, session
# tokens, a wrong secret, S3 XML errors, retries on 503, bounded retries,
# an unreachable endpoint, timeouts, cancel mid-transfer, abort of a failed
# multipart upload, test_storage, and virtual-hosted addressing.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfStorageTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my %secret = (AKIDSFTEST => 'sfTestSecret/Key+0123456789abcdefEXAMPLE',
			  AKIDSFSESS => 'sfSessionSecret/Key+9876543210EXAMPLE');
my $token = 'FwoGZXIvYXdzEXAMPLEsessiontoken/with+chars==';
SfTest::register_secret('wrong AWS secret or token', 'wrongSecretValue12345', 'not-the-token');
my $s3 = SfStorageTest::start_s3(keys => \%secret, tokens => { AKIDSFSESS => $token },
	region => 'eu-west-1', buckets => ['sfbucket']);
my $ep = $s3->{endpoint};

my $node = SfTest::new_node('s3', test_surface => 1);
# The test harness logs every statement (log_statement = all): keep the DDL
# that carries credentials out of the log, as a DBA would.
$node->safe_psql('postgres', qq{
	SET log_statement = 'none';
	CREATE SERVER s3 FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://sfbucket/pre/fix/',
			   region 'eu-west-1', endpoint '$ep', request_timeout '20s');
	CREATE USER MAPPING FOR CURRENT_USER SERVER s3
	  OPTIONS (aws_access_key_id 'AKIDSFTEST', aws_secret_access_key '$secret{AKIDSFTEST}');
	CREATE SERVER s3sess FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://sfbucket/sess/', region 'eu-west-1', endpoint '$ep');
	CREATE USER MAPPING FOR CURRENT_USER SERVER s3sess
	  OPTIONS (aws_access_key_id 'AKIDSFSESS', aws_secret_access_key '$secret{AKIDSFSESS}',
			   aws_session_token '$token');
	CREATE SERVER s3badtoken FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://sfbucket/sess/', region 'eu-west-1', endpoint '$ep');
	CREATE USER MAPPING FOR CURRENT_USER SERVER s3badtoken
	  OPTIONS (aws_access_key_id 'AKIDSFSESS', aws_secret_access_key '$secret{AKIDSFSESS}',
			   aws_session_token 'not-the-token');
	CREATE SERVER s3bad FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://sfbucket/pre/', region 'eu-west-1', endpoint '$ep');
	CREATE USER MAPPING FOR CURRENT_USER SERVER s3bad
	  OPTIONS (aws_access_key_id 'AKIDSFTEST', aws_secret_access_key 'wrongSecretValue12345');
	CREATE SERVER s3nobucket FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://nosuchbucket/x/', region 'eu-west-1', endpoint '$ep');
	CREATE USER MAPPING FOR CURRENT_USER SERVER s3nobucket
	  OPTIONS (aws_access_key_id 'AKIDSFTEST', aws_secret_access_key '$secret{AKIDSFTEST}');
	CREATE SERVER s3down FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://sfbucket/x/', endpoint 'http://127.0.0.1:1',
			   connect_timeout '1s');
	CREATE USER MAPPING FOR CURRENT_USER SERVER s3down
	  OPTIONS (aws_access_key_id 'AKIDSFTEST', aws_secret_access_key '$secret{AKIDSFTEST}');
	CREATE SERVER s3dns FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://sfbucket/x/', endpoint 'http://no-such-host.invalid:9000');
	CREATE USER MAPPING FOR CURRENT_USER SERVER s3dns
	  OPTIONS (aws_access_key_id 'AKIDSFTEST', aws_secret_access_key '$secret{AKIDSFTEST}');
	CREATE SERVER s3aws FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://sfbucket/x/', region 'eu-west-1', connect_timeout '2s', request_timeout '3s');
	CREATE USER MAPPING FOR CURRENT_USER SERVER s3aws
	  OPTIONS (aws_access_key_id 'AKIDSFTEST', aws_secret_access_key '$secret{AKIDSFTEST}');
	CREATE SERVER s3slow FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 's3://sfbucket/slow/', region 'eu-west-1', endpoint '$ep',
			   request_timeout '1s');
	CREATE USER MAPPING FOR CURRENT_USER SERVER s3slow
	  OPTIONS (aws_access_key_id 'AKIDSFTEST', aws_secret_access_key '$secret{AKIDSFTEST}');
});

sub stats { return SfStorageTest::front($s3, 'GET', '/_front/stats'); }
sub fault { SfStorageTest::front($s3, 'POST', '/_front/faults', $_[0]); }
sub psql_err
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql");
	return $err;
}

# ---- small object, signed requests accepted by botocore
SfStorageTest::front($s3, 'POST', '/_front/reset');
is($node->safe_psql('postgres',
	"SELECT sfexport_test.storage_put('s3', 'd/small file+1.csv', convert_to('a,b\n1,2\n', 'UTF8'))"),
	'8', 'small object uploaded');
is($node->safe_psql('postgres',
	"SELECT sfexport_test.storage_get('s3', 'd/small file+1.csv') = convert_to(E'a,b\\n1,2\\n', 'UTF8')"),
	't', 'small object read back byte for byte (key with space and plus)');
ok(-f "$s3->{dir}/sfbucket/pre/fix/d/small file+1.csv._S3rver_object", 'the object is stored by s3rver under the prefix')
  or note(join("\n", glob("$s3->{dir}/sfbucket/*")));
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_head('s3', 'd/small file+1.csv')"), '8', 'HEAD gives the size');
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_head('s3', 'd/none') IS NULL"), 't', 'HEAD of a missing object');
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_get('s3', 'd/none') IS NULL"), 't', 'GET of a missing object is NULL');
my $st = stats();
is($st->{signatures_rejected}, 0, 'the front rejected no signature');
cmp_ok($st->{forwarded}, '>=', 5, 'the requests went through the verifying front');

# ---- multipart: 19.2 MB in 5 MB parts, written in odd-sized chunks
my $big = q{SELECT string_agg(md5(g::text), '' ORDER BY g)::bytea FROM generate_series(1, 600000) g};
SfStorageTest::front($s3, 'POST', '/_front/reset');
is($node->safe_psql('postgres', qq{
	SET sfexport.upload_part_size = '5MB';
	SELECT sfexport_test.storage_put('s3', 'big.csv', ($big), 77777);
	SELECT md5(sfexport_test.storage_get('s3', 'big.csv')) = md5(($big));
	SELECT sfexport_test.storage_head('s3', 'big.csv');
}), "19200000\nt\n19200000", 'a four-part multipart upload is read back byte for byte');
$st = stats();
is($st->{signatures_rejected}, 0, 'multipart requests are signed correctly');
cmp_ok($st->{forwarded}, '>=', 6, 'initiate, four parts and complete were sent');

# ---- listing (ListObjectsV2) and delete
is($node->safe_psql('postgres', "SELECT string_agg(n, ',') FROM sfexport_test.storage_list('s3') n"),
	'big.csv,d/small file+1.csv', 'listing below the prefix');
$node->safe_psql('postgres', "SELECT sfexport_test.storage_delete('s3', 'big.csv'); SELECT sfexport_test.storage_delete('s3', 'big.csv')");
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_head('s3', 'big.csv') IS NULL"), 't', 'deleted (twice is fine)');

# ---- session credentials: the token is a signed header
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_put('s3sess', 't.csv', '\\x0102'); SELECT sfexport_test.storage_get('s3sess', 't.csv')"),
	"2\n\\x0102", 'session credentials work');
my $err = psql_err("SELECT sfexport_test.storage_put('s3badtoken', 't2.csv', '\\x0102')");
like($err, qr/HTTP 40[03] InvalidToken/, 'a wrong session token is refused');

# ---- wrong secret: clear error, nothing stored
SfStorageTest::front($s3, 'POST', '/_front/reset');
$err = psql_err("SELECT sfexport_test.storage_put('s3bad', 'bad.csv', '\\x01')");
like($err, qr/ERROR:  28000: S3 request PUT http:\/\/127\.0\.0\.1:\d+\/sfbucket\/pre\/bad\.csv failed: HTTP 403 SignatureDoesNotMatch/,
	'a wrong secret fails with SignatureDoesNotMatch and SQLSTATE 28000');
like($err, qr/HINT:  Check aws_access_key_id and aws_secret_access_key/, 'with a hint');
is(stats()->{signatures_rejected}, 1, 'the verifying front rejected the signature');
ok(!-e "$s3->{dir}/sfbucket/pre/bad.csv._S3rver_object", 'nothing was stored');

# ---- 403 with an S3 XML error body: Code and Message surfaced
fault({ kind => 'error', status => 403, code => 'AccessDenied', message => 'Access Denied by bucket policy sf-42', method => 'PUT' });
$err = psql_err("SELECT sfexport_test.storage_put('s3', 'denied.csv', '\\x01')");
like($err, qr/ERROR:  28000: .*HTTP 403 AccessDenied/, '403 AccessDenied surfaced with SQLSTATE 28000');
like($err, qr/DETAIL:  Access Denied by bucket policy sf-42/, 'S3 error message passed on as detail');

# ---- 503 twice, then success: retried
SfStorageTest::front($s3, 'POST', '/_front/reset');
fault({ kind => 'slowdown', count => 2, method => 'PUT' });
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_put('s3', 'retry.csv', '\\x0a0b0c')"), '3',
	'upload succeeds after two 503 SlowDown answers');
is(stats()->{faults_injected}, 2, 'both 503 answers were seen');
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_get('s3', 'retry.csv')"), '\x0a0b0c', 'the retried object is complete');

# ---- 503 forever: bounded retries, clear error
SfStorageTest::front($s3, 'POST', '/_front/reset');
fault({ kind => 'unavailable', count => 50, method => 'PUT' });
my $t0 = time;
$err = psql_err("SELECT sfexport_test.storage_put('s3', 'never.csv', '\\x01')");
like($err, qr/ERROR:  08006: S3 request PUT .*never\.csv failed: HTTP 503 ServiceUnavailable/,
	'persistent 503 ends in a connection-failure error');
is(stats()->{faults_injected}, 5, 'after exactly five attempts');
cmp_ok(time - $t0, '<', SfTest::secs(20), 'within bounded time');
SfStorageTest::front($s3, 'DELETE', '/_front/faults');

# ---- multipart failing mid-way: upload aborted (DELETE ?uploadId seen)
fault({ kind => 'error', status => 400, code => 'InvalidPart', message => 'injected part failure', method => 'PUT', path_regex => 'partNumber=2' });
fault({ kind => 'delay', delay_ms => 1, method => 'DELETE', path_regex => 'uploadId=' });
$err = psql_err(qq{SET sfexport.upload_part_size = '5MB';
	SELECT sfexport_test.storage_put('s3', 'failed-mp.csv', ($big), 1000000)});
like($err, qr/HTTP 400 InvalidPart/, 'a failing part fails the upload');
is(scalar @{ SfStorageTest::front($s3, 'GET', '/_front/faults')->{faults} }, 0,
	'the multipart upload was aborted with DELETE ?uploadId');
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_head('s3', 'failed-mp.csv') IS NULL"), 't',
	'no object appears for a failed upload');

# ---- a part is on the network while the next one is written (storage.c):
# its failures are retried like any request's, and it can be cancelled
SfStorageTest::front($s3, 'POST', '/_front/reset');
SfStorageTest::front($s3, 'DELETE', '/_front/faults');
fault({ kind => 'slowdown', count => 1, method => 'PUT', path_regex => 'partNumber=2&' });
is($node->safe_psql('postgres', qq{SET sfexport.upload_part_size = '5MB';
	SELECT sfexport_test.storage_put('s3', 'retried-mp.csv', ($big), 77777);
	SELECT md5(sfexport_test.storage_get('s3', 'retried-mp.csv')) = md5(($big))}), "19200000\nt",
	'a part answered 503 while the next one was written is sent again: read back byte for byte');
is(stats()->{faults_injected}, 1, 'the 503 of the part was seen');
is(stats()->{signatures_rejected}, 0, 'parts sent in the background are signed correctly');

fault({ kind => 'delay', delay_ms => 30000, method => 'PUT', path_regex => 'partNumber=1&' });
my $bgmp = SfStorageTest::cancel_upload($node, 's3', 'cancelled-mp.csv', $big);
SfStorageTest::front($s3, 'DELETE', '/_front/faults');
is($bgmp->query("SELECT sfexport_test.storage_put('s3', 'after-cancel.csv', ($big), 1000000)"), '19200000',
	'the same session uploads in parts again after the cancel');
like($bgmp->{stderr}, qr/ERROR:  canceling statement due to user request/, 'the upload was cancelled');
like(slurp_file($s3->{front}{log}), qr{DELETE /sfbucket/pre/fix/cancelled-mp\.csv\?uploadId=\w+ 204},
	'the cancelled multipart upload was aborted');
$bgmp->quit;
is($node->safe_psql('postgres', q{SELECT sfexport_test.storage_head('s3', 'cancelled-mp.csv') IS NULL,
	md5(sfexport_test.storage_get('s3', 'after-cancel.csv')) = md5((} . $big . q{))}), "t|t",
	'no object for the cancelled upload; the next one is complete');

# ---- unreachable endpoint and DNS failure
$t0 = time;
$err = psql_err("SELECT sfexport_test.storage_put('s3down', 'x.csv', '\\x01')");
like($err, qr/ERROR:  08006: PUT http:\/\/127\.0\.0\.1:1\/sfbucket\/x\/x\.csv failed: Couldn't connect to server/,
	'unreachable endpoint: connection failure naming the request');
like($err, qr/DETAIL:  The request was attempted 5 times\./, 'after bounded retries');
cmp_ok(time - $t0, '<', SfTest::secs(30), 'in bounded time');
$err = psql_err("SELECT sfexport_test.storage_put('s3dns', 'x.csv', '\\x01')");
like($err, qr/08006: .*resolve host/i, 'DNS failure reported as such');

# ---- default addressing is virtual-hosted
$err = psql_err("SELECT sfexport_test.storage_put('s3aws', 'x.csv', '\\x01')");
like($err, qr{https://sfbucket\.s3\.eu-west-1\.amazonaws\.com/x/x\.csv}, 'without endpoint: virtual-hosted URL');

# ---- slow server: timeout, and cancel mid-transfer
SfStorageTest::front($s3, 'POST', '/_front/reset');
fault({ kind => 'delay', delay_ms => 2500, count => 5, method => 'GET' });
$t0 = time;
$err = psql_err("SELECT sfexport_test.storage_get('s3slow', 'whatever.csv')");
like($err, qr/08006: GET .* failed: Timeout was reached/, 'a slow server times out (request_timeout 1s)');
cmp_ok(time - $t0, '<', SfTest::secs(15), 'timeouts are bounded');
SfStorageTest::front($s3, 'DELETE', '/_front/faults');

fault({ kind => 'delay', delay_ms => 30000, method => 'GET' });
my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/start/, "\\echo start\nSELECT sfexport_test.storage_get('s3', 'd/small file+1.csv');\n");
sleep 1;
$t0 = time;
is($node->safe_psql('postgres',
	"SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%storage_get(''s3''%' AND pid <> pg_backend_pid()"),
	't', 'cancel sent');
$node->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM pg_stat_activity WHERE query LIKE '%storage_get(''s3''%' AND state = 'active' AND pid <> pg_backend_pid()");
cmp_ok(time - $t0, '<', SfTest::secs(5), 'pg_cancel_backend stops a transfer in progress quickly');
$bg->quit;
SfStorageTest::front($s3, 'DELETE', '/_front/faults');
like(slurp_file($node->logfile), qr/canceling statement due to user request/, 'the transfer was cancelled');

# ---- test_storage
my $ts = $node->safe_psql('postgres', "SELECT step || ':' || ok FROM sfexport.test_storage('s3')");
is($ts, "configuration:true\nwrite:true\nstat:true\nread back:true\ndelete:true\nverify deleted:true",
	'test_storage succeeds');
$ts = $node->safe_psql('postgres', "SELECT step || ':' || ok || ':' || detail FROM sfexport.test_storage('s3bad') WHERE NOT ok");
like($ts, qr/^write:false:S3 request PUT .* failed: HTTP 403 SignatureDoesNotMatch \(SQLSTATE 28000\) The request signature we calculated does not match/,
	'test_storage: bad secret');
$ts = $node->safe_psql('postgres', "SELECT step || ':' || ok || ':' || detail FROM sfexport.test_storage('s3nobucket') WHERE NOT ok");
like($ts, qr/^write:false:.*HTTP 404 NoSuchBucket \(SQLSTATE 42704\) The bucket "nosuchbucket" does not exist/,
	'test_storage: missing bucket');
$ts = $node->safe_psql('postgres', "SELECT step || ':' || ok || ':' || detail FROM sfexport.test_storage('s3down') WHERE NOT ok");
like($ts, qr/^write:false:PUT .* failed: Couldn't connect to server.*\(SQLSTATE 08006\)/, 'test_storage: unreachable');
$ts = $node->safe_psql('postgres', "SELECT step || ':' || ok || ':' || detail FROM sfexport.test_storage('s3dns') WHERE NOT ok");
like($ts, qr/^write:false:.*resolve host/i, 'test_storage: DNS failure');
$node->safe_psql('postgres', 'CREATE SERVER s3nomap FOREIGN DATA WRAPPER sfexport OPTIONS (account \'a\', database \'D\', location \'s3://sfbucket/x/\', endpoint \'' . $ep . '\')');
$ts = $node->safe_psql('postgres', "SELECT step || ':' || ok || ':' || detail FROM sfexport.test_storage('s3nomap') WHERE NOT ok");
like($ts, qr/^configuration:false:user mapping not found/, 'test_storage: no user mapping');

# ---- no secret in any log
$node->stop;
my $logs = SfTest::slurp_tree($node->logfile =~ s{/[^/]+$}{}r);
$logs->{$_->{log}} = slurp_file($_->{log}) for ($s3->{s3rver}, $s3->{front});
my @secrets = (values %secret, $token, 'wrongSecretValue12345', 'not-the-token');
my @leaks;
for my $f (sort keys %$logs)
{
	for my $s (@secrets)
	{
		push @leaks, "$f contains a secret" if index($logs->{$f}, $s) >= 0;
	}
	push @leaks, "$f contains a signature" if $logs->{$f} =~ /Signature=[0-9a-f]{64}/;
}
is_deeply(\@leaks, [], 'no secret, token or signature in the server or stand-in logs');

done_testing();
