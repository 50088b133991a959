# The bad-input catalogue: malformed options, credentials, server replies
# and row values.  Every case must end in a clear error with a specific
# SQLSTATE (never XX000), without a backend crash (the postmaster never
# restarts, no "terminated by signal" in the log), and without losing
# anything (committed rows stay in the outbox or staged files until they
# load, and do load once the cause is gone).
#
# Cases are data: [group, name, SQL, expected SQLSTATE].  The count is
# printed and must be at least 60.  Accepted-but-hostile row values (quotes,
# newlines, backslashes, "\N", large text ...) are checked separately: they
# must arrive in Snowflake unchanged.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfStorageTest qw();
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $lit = \&SfSnowflake::lit;
my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main', passphrase => 'right horse');
my $ec = SfSnowflake::gen_key($kdir, 'ec', type => 'EC');
my $dsa = SfSnowflake::gen_key($kdir, 'dsa', type => 'DSA');
my $ed = SfSnowflake::gen_key($kdir, 'ed', type => 'ED25519');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $s3 = SfStorageTest::start_s3(keys => { AKIDBAD => 'bad-input-secret' },
	region => 'us-east-1', buckets => ['bad']);
my $gcs = SfStorageTest::start_gcs(buckets => ['gbad']);
my $raw = SfTest::start_service('raw_reply',
	[ SfTest::emulator('raw_reply'), '--port', '0', '--port-file', '{PORT_FILE}' ]);
my $raw_url = "http://127.0.0.1:$raw->{port}";
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

my $node = SfTest::new_node('bad', test_surface => 1, conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
my $start_time = $node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()');
my $pem = $lit->($key->{pem});
SfTest::register_secret('token, passphrase or secret of a bad-input case', 'raw-token', 'wrong horse', 'wrong-secret');
my $gcs_json = PostgreSQL::Test::Utils::slurp_file($gcs->{key_file});

$node->safe_psql('postgres', qq{
	SET log_min_error_statement = panic;
	CREATE ROLE alice LOGIN;
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		warehouse 'WH', location 'file://$stage/', flush_interval '1s',
		connect_timeout '2s', request_timeout '10s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key $pem, private_key_passphrase 'right horse');
	GRANT USAGE ON FOREIGN SERVER sf TO alice;
	-- Snowflake answered by the raw reply server
	CREATE SERVER raw FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$raw_url', database 'DB',
		location 'file://$stage/', connect_timeout '2s', request_timeout '10s');
	CREATE USER MAPPING FOR PUBLIC SERVER raw
		OPTIONS (user 'LOADER', token 'raw-token', token_type 'OAUTH');
	-- nothing listens on port 1
	CREATE SERVER down FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url 'http://127.0.0.1:1', database 'DB',
		location 's3://bad/p/', endpoint 'http://127.0.0.1:1', connect_timeout '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER down
		OPTIONS (user 'LOADER', token 't', aws_access_key_id 'AKIDBAD',
		         aws_secret_access_key 'bad-input-secret');
	-- S3 behind the verifying front, and S3 answered by the raw server
	CREATE SERVER s3 FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', database 'DB', location 's3://bad/p/',
		endpoint '$s3->{endpoint}', region 'us-east-1', connect_timeout '2s');
	CREATE USER MAPPING FOR PUBLIC SERVER s3
		OPTIONS (aws_access_key_id 'AKIDBAD', aws_secret_access_key 'bad-input-secret');
	CREATE SERVER s3raw FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', database 'DB', location 's3://bad/p/',
		endpoint '$raw_url', connect_timeout '2s', request_timeout '10s');
	CREATE USER MAPPING FOR PUBLIC SERVER s3raw
		OPTIONS (aws_access_key_id 'AKIDBAD', aws_secret_access_key 'bad-input-secret');
	-- GCS whose token endpoint is the raw server
	CREATE SERVER gcsraw FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', database 'DB', location 'gcs://gbad/p/',
		endpoint '$raw_url', connect_timeout '2s', request_timeout '10s');
});
{
	my $j = decode_json($gcs_json);
	$j->{token_uri} = "$raw_url/token";
	my $t = $lit->(encode_json($j));
	$node->safe_psql('postgres', qq{SET log_min_error_statement = panic;
		CREATE USER MAPPING FOR PUBLIC SERVER gcsraw OPTIONS (gcs_credentials $t)});
}

sub raw_replies
{
	my (@replies) = @_;
	my $r = HTTP::Tiny->new(timeout => 10)->post("$raw_url/_raw/replies",
		{ content => encode_json({ replies => \@replies }),
		  headers => { 'Content-Type' => 'application/json' } });
	die "raw_reply: $r->{status}" unless $r->{success};
}
sub sf_fault { SfSnowflake::admin($emu, 'POST', 'faults', {@_}); }
sub sf_clear { SfSnowflake::admin($emu, 'DELETE', 'faults'); }
sub s3_fault { SfStorageTest::front($s3, 'POST', '/_front/faults', {@_}); }

# ---------------------------------------------------------------------
# The catalogue.  A case: group, name, SQL (run as superuser unless
# as => role), expected SQLSTATE, optional before => sub (fault set-up).
# ---------------------------------------------------------------------
my @cases;
sub case { push @cases, {@_}; }

my $base = q{account 'a', database 'D', location 'file:///tmp/sf060/'};
my $n = 0;
sub server_opt
{
	my ($name, $opts, $state) = @_;
	$n++;
	case(group => 'options', name => "server: $name",
		sql => "CREATE SERVER bad_$n FOREIGN DATA WRAPPER sfexport OPTIONS ($opts)",
		state => $state);
}
# server options: malformed, out of range, wrong context
server_opt('unknown option', "$base, bogus 'x'", 'HV00D');
server_opt('empty account', q{account '', database 'D', location 'file:///tmp/x/'}, 'HV024');
server_opt('account with blanks', q{account 'my account', database 'D', location 'file:///tmp/x/'}, 'HV024');
server_opt('url not http', "$base, url 'ftp://example.com'", 'HV024');
server_opt('url not a URL', "$base, url 'example com'", 'HV024');
server_opt('endpoint without scheme', "$base, endpoint 'localhost:9000'", 'HV024');
server_opt('statement_timeout zero', "$base, statement_timeout '0'", 'HV024');
server_opt('statement_timeout above 1 day', "$base, statement_timeout '2d'", 'HV024');
server_opt('statement_timeout not a duration', "$base, statement_timeout 'soon'", 'HV024');
server_opt('location http', q{account 'a', database 'D', location 'http://x/y/'}, 'HV024');
server_opt('location s3 without bucket', q{account 'a', database 'D', location 's3:///p/'}, 'HV024');
server_opt('location file relative', q{account 'a', database 'D', location 'file://rel/dir/'}, 'HV024');
server_opt('region with blanks', "$base, region 'us east 1'", 'HV024');
server_opt('compression lz4', "$base, compression 'lz4'", 'HV024');
server_opt('keep_files maybe', "$base, keep_files 'maybe'", 'HV024');
server_opt('ca_file relative', "$base, ca_file 'certs/ca.pem'", 'HV024');
server_opt('connect_timeout 10ms', "$base, connect_timeout '10ms'", 'HV024');
server_opt('request_timeout negative', "$base, request_timeout '-1s'", 'HV024');
server_opt('flush_interval zero', "$base, flush_interval '0'", 'HV024');
server_opt('flush_size zero', "$base, flush_size '0'", 'HV024');
server_opt('flush_size not a size', "$base, flush_size 'big'", 'HV024');
server_opt('max_file_size below 1MB', "$base, max_file_size '10kB'", 'HV024');
server_opt('batch_size zero', "$base, batch_size '0'", 'HV024');
server_opt('batch_size above 10000', "$base, batch_size '100000'", 'HV024');
# (batch_size '1.5' is accepted and rounded to 2, as PostgreSQL's integer GUCs do)
server_opt('batch_size not a number', "$base, batch_size 'ten'", 'HV024');
server_opt('credential on the server', "$base, private_key 'x'", 'HV00D');
server_opt('column option on the server', "$base, column_name 'x'", 'HV00D');
server_opt('option given twice', "$base, database 'E'", '42710');
case(group => 'options', name => 'server: file:// location by a non-superuser',
	sql => "SET ROLE alice; CREATE SERVER bad_alice FOREIGN DATA WRAPPER sfexport OPTIONS ($base)",
	state => '42501', before => sub {
		$node->safe_psql('postgres', 'GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO alice');
	});
case(group => 'options', name => 'server: ALTER with a bad value',
	sql => q{ALTER SERVER sf OPTIONS (SET connect_timeout 'forever')}, state => 'HV024');
# user mapping options
case(group => 'options', name => 'mapping: unknown option',
	sql => q{CREATE USER MAPPING FOR alice SERVER sf OPTIONS (password 'x')}, state => 'HV00D');
case(group => 'options', name => 'mapping: server option in a mapping',
	sql => q{CREATE USER MAPPING FOR alice SERVER sf OPTIONS (account 'x')}, state => 'HV00D');
case(group => 'options', name => 'mapping: token_type BASIC',
	sql => q{CREATE USER MAPPING FOR alice SERVER sf OPTIONS (token 'x', token_type 'BASIC')},
	state => 'HV024');
case(group => 'options', name => 'mapping: private_key_file by a non-superuser',
	sql => q{SET ROLE alice; CREATE USER MAPPING FOR alice SERVER sf OPTIONS (private_key_file '/etc/passwd')},
	state => '42501');
# foreign table and column options
my $t = 0;
sub table_opt
{
	my ($name, $opts, $state, $colopts) = @_;
	$t++;
	case(group => 'options', name => "table: $name",
		sql => "CREATE FOREIGN TABLE bad_t$t (a int" . ($colopts ? " OPTIONS ($colopts)" : '')
		  . ") SERVER sf" . ($opts ? " OPTIONS ($opts)" : ''),
		state => $state);
}
table_opt('unknown option', q{bogus 'x'}, 'HV00D');
table_opt('server option on a table', q{account 'x'}, 'HV00D');
table_opt('flush_interval soon', q{flush_interval 'soon'}, 'HV024');
table_opt('flush_interval above 31 days', q{flush_interval '32d'}, 'HV024');
table_opt('flush_at not a schedule', q{flush_at '0 3 * *'}, 'HV024');
table_opt('file_format not csv or json', q{file_format 'xml'}, 'HV024');
table_opt('max_file_size 2TB', q{max_file_size '2TB'}, 'HV024');
table_opt('batch_size -1', q{batch_size '-1'}, 'HV024');
table_opt('unknown column option', '', 'HV00D', q{bogus 'x'});
table_opt('table option on a column', '', 'HV00D', q{table 'x'});
# GUCs
case(group => 'options', name => 'GUC: sfexport.batch_size 0',
	sql => q{SET sfexport.batch_size = 0}, state => '22023');
case(group => 'options', name => 'GUC: sfexport.flush_interval not a duration',
	sql => q{ALTER SYSTEM SET sfexport.flush_interval = 'soon'}, state => '22023');
case(group => 'options', name => 'GUC: sfexport.flush_interval set in a session',
	sql => q{SET sfexport.flush_interval = '1min'}, state => '55P02');

# ---- credentials
sub mapping_key
{
	my ($name, $opts, $state) = @_;
	case(group => 'credentials', name => $name,
		sql => "CREATE USER MAPPING FOR alice SERVER sf OPTIONS (user 'LOADER', $opts)",
		state => $state);
}
mapping_key('garbage PEM', q{private_key 'not a key at all'}, 'HV024');
mapping_key('PEM with damaged base64',
	'private_key ' . $lit->("-----BEGIN PRIVATE KEY-----\nMIIE!!!!invalid!!!!\n-----END PRIVATE KEY-----\n"),
	'HV024');
mapping_key('truncated PEM', 'private_key ' . $lit->(substr($key->{pem}, 0, 400)), 'HV024');
mapping_key('public key instead of private', 'private_key ' . $lit->($key->{pub_pem}), 'HV024');
mapping_key('encrypted key without passphrase', 'private_key ' . $lit->($key->{enc_pem}), 'HV024');
mapping_key('encrypted key, wrong passphrase',
	'private_key ' . $lit->($key->{enc_pem}) . q{, private_key_passphrase 'wrong horse'}, 'HV024');
mapping_key('EC key', 'private_key ' . $lit->($ec->{pem}), 'HV024');
mapping_key('DSA key', 'private_key ' . $lit->($dsa->{pem}), 'HV024');
mapping_key('Ed25519 key', 'private_key ' . $lit->($ed->{pem}), 'HV024');
case(group => 'credentials', name => 'service-account JSON truncated',
	sql => 'CREATE USER MAPPING FOR alice SERVER sf OPTIONS (gcs_credentials '
	  . $lit->(substr($gcs_json, 0, length($gcs_json) / 2)) . ')',
	state => 'HV024');
{
	my $j = decode_json($gcs_json);
	delete $j->{private_key};
	case(group => 'credentials', name => 'service-account JSON without private_key',
		sql => 'CREATE USER MAPPING FOR alice SERVER sf OPTIONS (gcs_credentials '
		  . $lit->(encode_json($j)) . ')',
		state => 'HV024');
	$j = decode_json($gcs_json);
	$j->{private_key} = "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n";
	# not checked at DDL time (only JSON shape is): refused at first use
	case(group => 'credentials', name => 'service-account JSON with a garbage private_key',
		sql => q{CREATE SERVER gcsk FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D',
		           location 'gcs://gbad/p/', endpoint '} . $gcs->{endpoint} . q{');
		         CREATE USER MAPPING FOR CURRENT_USER SERVER gcsk OPTIONS (gcs_credentials }
		  . $lit->(encode_json($j)) . q{);
		         SELECT sfexport_test.storage_put('gcsk', 'k', '\x00')},
		state => '28000');
}
case(group => 'credentials', name => 'service-account JSON is an array',
	sql => q{CREATE USER MAPPING FOR alice SERVER sf OPTIONS (gcs_credentials '[1, 2]')},
	state => 'HV024');
case(group => 'credentials', name => 'AWS key the store does not know',
	sql => q{CREATE SERVER s3x FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D',
	           location 's3://bad/p/', endpoint '} . $s3->{endpoint} . q{', region 'us-east-1');
	         CREATE USER MAPPING FOR CURRENT_USER SERVER s3x
	           OPTIONS (aws_access_key_id 'AKIDUNKNOWN', aws_secret_access_key 'nope');
	         SELECT sfexport_test.storage_put('s3x', 'k', '\x00')},
	state => '28000');
case(group => 'credentials', name => 'AWS secret that does not match (SignatureDoesNotMatch)',
	sql => q{CREATE SERVER s3y FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D',
	           location 's3://bad/p/', endpoint '} . $s3->{endpoint} . q{', region 'us-east-1');
	         CREATE USER MAPPING FOR CURRENT_USER SERVER s3y
	           OPTIONS (aws_access_key_id 'AKIDBAD', aws_secret_access_key 'wrong-secret');
	         SELECT sfexport_test.storage_put('s3y', 'k', '\x00')},
	state => '28000');
case(group => 'credentials', name => 'GCS key the token endpoint does not know',
	sql => q{CREATE SERVER gcsx FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D',
	           location 'gcs://gbad/p/', endpoint '} . $gcs->{endpoint} . q{');
	         CREATE USER MAPPING FOR CURRENT_USER SERVER gcsx OPTIONS (gcs_credentials }
	  . $lit->(PostgreSQL::Test::Utils::slurp_file($gcs->{unknown_key_file})) . q{);
	         SELECT sfexport_test.storage_put('gcsx', 'k', '\x00')},
	state => '28000');

# ---- server replies: Snowflake (emulator faults, then the raw reply server)
my $q = q{SELECT * FROM sfexport.snowflake_query('sf', 'SELECT 1')};
my $rq = q{SELECT * FROM sfexport.snowflake_query('raw', 'SELECT 1')};
case(group => 'replies', name => 'Snowflake 422 with its own SQLSTATE', sql => $q, state => '22012',
	before => sub { sf_fault(action => '422', code => '100051', sql_state => '22012', message => 'Division by zero') });
case(group => 'replies', name => 'Snowflake 422 with a malformed sqlState', sql => $q, state => 'HV000',
	before => sub { sf_fault(action => '422', code => '999999', sql_state => 'bogus!', message => 'odd') });
case(group => 'replies', name => 'Snowflake 422 in class 02 (object does not exist)', sql => $q, state => '42704',
	before => sub { sf_fault(action => '422', code => '002003', sql_state => '02000', message => 'does not exist or not authorized') });
case(group => 'replies', name => 'Snowflake 401 twice', sql => $q, state => '28000',
	before => sub { sf_fault(action => '401', count => 2) });
case(group => 'replies', name => 'Snowflake 503 storm', sql => $q, state => '08006',
	before => sub { sf_fault(action => '503', count => 6) });
case(group => 'replies', name => 'Snowflake 429 storm', sql => $q, state => '08006',
	before => sub { sf_fault(action => '429', count => 6) });
case(group => 'replies', name => 'Snowflake drops every connection', sql => $q, state => '08006',
	before => sub { sf_fault(action => 'drop', count => 6) });
case(group => 'replies', name => 'Snowflake unreachable',
	sql => q{SELECT * FROM sfexport.snowflake_query('down', 'SELECT 1')}, state => '08006');
case(group => 'replies', name => '200 with invalid JSON', sql => $rq, state => '08P01',
	before => sub { raw_replies({ status => 200, body => '{"data": [["1"' }) });
case(group => 'replies', name => '200 with an HTML page', sql => $rq, state => '08P01',
	before => sub { raw_replies({ status => 200, headers => { 'Content-Type' => 'text/html' },
		body => '<html><body><h1>Welcome to nginx!</h1></body></html>' }) });
case(group => 'replies', name => '200 with a JSON array', sql => $rq, state => '08P01',
	before => sub { raw_replies({ status => 200, body => '[1, 2, 3]' }) });
case(group => 'replies', name => '200 with data not an array', sql => $rq, state => '08P01',
	before => sub { raw_replies({ status => 200, body => '{"resultSetMetaData": {"rowType": [{"name": "A"}]}, "data": {"x": 1}}' }) });
case(group => 'replies', name => '200 with rows of the wrong width', sql => $rq, state => '08P01',
	before => sub { raw_replies({ status => 200, body => '{"resultSetMetaData": {"rowType": [{"name": "A"}, {"name": "B"}]}, "data": [["1"], ["1", "2", "3"]]}' }) });
case(group => 'replies', name => '202 without a statement handle', sql => $rq, state => '08P01',
	before => sub { raw_replies({ status => 202, body => '{"code": "333334", "message": "in progress"}' }) });
case(group => 'replies', name => '202 then an empty 200 body', sql => $rq, state => '08P01',
	before => sub { raw_replies({ status => 202, body => '{"code": "333334", "statementHandle": "h1"}' },
		{ status => 200, body => '' }) });
case(group => 'replies', name => 'several partitions but no handle', sql => $rq, state => '08P01',
	before => sub { raw_replies({ status => 200, body => '{"resultSetMetaData": {"rowType": [{"name": "A"}], "partitionInfo": [{}, {}]}, "data": [["1"]]}' }) });
case(group => 'replies', name => 'partition 1 is HTML', sql => $rq, state => '08P01',
	before => sub { raw_replies({ status => 200, body => '{"statementHandle": "h2", "resultSetMetaData": {"rowType": [{"name": "A"}], "partitionInfo": [{}, {}]}, "data": [["1"]]}' },
		{ status => 200, body => '<html>partition</html>' }) });
case(group => 'replies', name => 'test_connection gets zero rows',
	sql => q{SELECT * FROM sfexport.test_connection('raw')}, state => '08P01',
	before => sub { raw_replies({ status => 200, body => '{"resultSetMetaData": {"rowType": [{"name": "A"}]}, "data": []}' }) });
case(group => 'replies', name => 'huge body (80 MB, over the 64 MB reply limit)', sql => $rq, state => '08006',
	before => sub { raw_replies({ status => 200, body => 'x' x (1024 * 1024), repeat => 80 }) });
case(group => 'replies', name => 'truncated body', sql => $rq, state => '08006',
	before => sub { raw_replies({ status => 200, body => '{"data": [["' . ('y' x 5000) . '"]]}', truncate => JSON::PP::true }) });
case(group => 'replies', name => 'unexpected status 418', sql => $rq, state => 'HV000',
	before => sub { raw_replies({ status => 418, body => "I'm a teapot" }) });
case(group => 'replies', name => 'redirect (not followed)', sql => $rq, state => 'HV000',
	before => sub { raw_replies({ status => 302, headers => { Location => 'http://127.0.0.1:1/' }, body => '' }) });
case(group => 'replies', name => '401 for a token (no renewal)', sql => $rq, state => '28000',
	before => sub { raw_replies({ status => 401, body => '{"code": "390303", "message": "Invalid OAuth access token."}' }) });
# storage replies
my $put = sub { "SELECT sfexport_test.storage_put('$_[0]', 'bad/k.txt', '\\x616263')" };
case(group => 'replies', name => 'S3 AccessDenied', sql => $put->('s3'), state => '28000',
	before => sub { s3_fault(kind => 'error', status => 403, code => 'AccessDenied', message => 'Access Denied') });
case(group => 'replies', name => 'S3 NoSuchBucket', sql => $put->('s3'), state => '42704',
	before => sub { s3_fault(kind => 'error', status => 404, code => 'NoSuchBucket', message => 'The specified bucket does not exist') });
case(group => 'replies', name => 'S3 SlowDown storm', sql => $put->('s3'), state => '08006',
	before => sub { s3_fault(kind => 'slowdown', count => 6) });
case(group => 'replies', name => 'S3 unreachable', sql => $put->('down'), state => '08006');
case(group => 'replies', name => 'S3 400 with a non-XML body', sql => $put->('s3raw'), state => 'HV000',
	before => sub { raw_replies({ status => 400, body => 'plain text, no XML' }) });
case(group => 'replies', name => 'S3 502 HTML from a proxy', sql => $put->('s3raw'), state => '08006',
	before => sub { raw_replies({ status => 502, headers => { 'Content-Type' => 'text/html' }, body => '<html><body>Bad Gateway</body></html>' }) });
case(group => 'replies', name => 'S3 multipart start without UploadId',
	sql => q{SET sfexport.upload_part_size = '5MB'; SELECT sfexport_test.storage_put('s3raw', 'big', convert_to(repeat('x', 6 * 1024 * 1024), 'UTF8'))},
	state => 'HV000',
	before => sub { raw_replies({ status => 200, body => '<InitiateMultipartUploadResult><Bucket>bad</Bucket></InitiateMultipartUploadResult>' }) });
case(group => 'replies', name => 'GCS token endpoint answers HTML', sql => $put->('gcsraw'), state => 'HV000',
	before => sub { raw_replies({ status => 200, body => '<html>login</html>' }) });
case(group => 'replies', name => 'GCS token without access_token', sql => $put->('gcsraw'), state => 'HV000',
	before => sub { raw_replies({ status => 200, body => '{"token_type": "Bearer", "expires_in": 3599}' }) });
case(group => 'replies', name => 'GCS token invalid_grant', sql => $put->('gcsraw'), state => '28000',
	before => sub { raw_replies({ status => 400, body => '{"error": "invalid_grant", "error_description": "Invalid JWT Signature."}' }) });
case(group => 'replies', name => 'GCS upload 403 JSON error', sql => $put->('gcsraw'), state => '28000',
	before => sub { raw_replies({ status => 200, body => '{"access_token": "ya29.x", "expires_in": 3599}' },
		{ status => 403, body => '{"error": {"code": 403, "message": "no storage.objects.create", "errors": [{"reason": "forbidden"}]}}' }) });

# ---- row values
case(group => 'values', name => 'invalid UTF-8 in a SQL_ASCII database',
	db => 'ascii', sql => q{INSERT INTO t VALUES (1, convert_from(decode('c328', 'hex'), 'SQL_ASCII'))}, state => '22021');
case(group => 'values', name => 'lone continuation byte in a SQL_ASCII database',
	db => 'ascii', sql => q{INSERT INTO t VALUES (2, E'abc\x80def')}, state => '22021');
case(group => 'values', name => 'overlong encoding in a SQL_ASCII database',
	db => 'ascii', sql => q{COPY t FROM PROGRAM 'printf "3\tx\300\257y\n"'}, state => '22021');

# ---------------------------------------------------------------------
# Run the catalogue
# ---------------------------------------------------------------------
# A SQL_ASCII database with one committed row that must survive.
$node->safe_psql('postgres', q{CREATE DATABASE ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0});
$node->safe_psql('ascii', qq{
	CREATE EXTENSION sfexport;
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D',
		location 'file://$stage/ascii/', flush_interval '7d');
	CREATE FOREIGN TABLE t (id int, v text) SERVER sf;
	INSERT INTO t VALUES (0, 'plain ascii');
});

my %by_group;
for my $c (@cases)
{
	sf_clear();
	SfStorageTest::front($s3, 'DELETE', '/_front/faults');
	$c->{before}->() if $c->{before};
	my ($ret, $out, $err) = $node->psql($c->{db} // 'postgres',
		"SET log_min_error_statement = panic;\n\\set VERBOSITY verbose\n$c->{sql}",
		timeout => 300);
	my ($state) = $err =~ /ERROR:  ([0-9A-Z]{5}):/;
	$state //= 'none';
	my $ok = is($state, $c->{state}, "[$c->{group}] $c->{name}: SQLSTATE $c->{state}");
	diag($err) unless $ok;
	isnt($state, 'XX000', "[$c->{group}] $c->{name}: not an internal error") if $state eq 'XX000';
	$by_group{ $c->{group} }++;
}
sf_clear();
raw_replies();

my $total = scalar @cases;
note sprintf('bad-input cases: %d (%s)', $total,
	join(', ', map { "$_ $by_group{$_}" } sort keys %by_group));
cmp_ok($total, '>=', 60, "at least 60 bad-input cases ($total)");

# ---- nothing lost: the committed row of the SQL_ASCII database is still there
is($node->safe_psql('ascii', 'SELECT pending_rows FROM sfexport.status'), '1',
	'SQL_ASCII: the committed row is still pending after the rejected ones');

# ---------------------------------------------------------------------
# Hostile but valid values arrive unchanged; a pipeline that meets bad
# replies keeps its rows and loads them once the cause is gone.
# ---------------------------------------------------------------------
sub sf { SfSnowflake::emu_query($emu, $_[0]) }
my $ff = 'TYPE = CSV FIELD_DELIMITER = \',\' RECORD_DELIMITER = \'\n\' SKIP_HEADER = 0 FIELD_OPTIONALLY_ENCLOSED_BY = \'"\' ESCAPE = NONE ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () EMPTY_FIELD_AS_NULL = TRUE ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE BINARY_FORMAT = HEX COMPRESSION = AUTO';
sf(qq{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV $ff});
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
sf(q{CREATE TABLE DB.PUBLIC.VALS ("id" NUMBER, "v" VARCHAR)});

my @values = (
	'a "quoted" word', 'comma, inside', "new\nline", "carriage\r\nreturn",
	'back\\slash', '\\N', 'NULL', '', '"', '""', ',', "\t tab and spaces  ",
	"caf\x{e9} \x{65e5}\x{672c} \x{1F600}", "'single'", '=cmd|x', 'trailing\\',
	('z' x (8 * 1024 * 1024)) . '"end"',
);
# Snowflake VARCHAR holds at most 16 MB (16777216 characters): the largest
# value that can arrive is just below that.  A larger one is a bad input in
# its own right: its file is rejected, stays visible with Snowflake's error
# and stays in storage (nothing lost silently).
my $big_chars = 16 * 1024 * 1024 - 64;
my $nrows = scalar(@values) + 2;
$node->safe_psql('postgres', q{
	CREATE FOREIGN TABLE vals (id int, v text) SERVER sf OPTIONS (table 'VALS');
	CREATE FOREIGN TABLE oversize (id int, v text) SERVER sf OPTIONS (table 'VALS');
});
# Snowflake fails every COPY for a while: files must stay staged.
sf_fault(action => '503', count => 12, statement => 'COPY');
{
	my $sql = "INSERT INTO vals VALUES "
	  . join(', ', map { "($_, " . $lit->($values[$_]) . ')' } 0 .. $#values)
	  . ", (1000, NULL)";
	utf8::encode($sql);
	$node->safe_psql('postgres', "BEGIN; $sql; INSERT INTO vals SELECT 2000, "
		. "repeat('0123456789abcde\"', $big_chars / 16); COMMIT;");
}
ok($node->poll_query_until('postgres',
	q{SELECT staged_files >= 1 AND last_error IS NOT NULL FROM sfexport.status WHERE foreign_table = 'vals'::regclass}),
	'during a Snowflake outage the staged file stays, with the error');
is($node->safe_psql('postgres', q{SELECT pending_rows + staged_rows + loaded_rows FROM sfexport.status WHERE foreign_table = 'vals'::regclass}),
	$nrows, 'no row is lost while Snowflake fails')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));
sf_clear();
$node->safe_psql('postgres', q{SELECT sfexport.retry('vals'); SELECT sfexport.flush()});
ok($node->poll_query_until('postgres',
	qq{SELECT loaded_rows = $nrows AND staged_files = 0 FROM sfexport.status WHERE foreign_table = 'vals'::regclass}),
	'once Snowflake answers, every row loads')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status; SELECT * FROM sfexport.files'));

my $got = sf(q{SELECT "id", "v" FROM DB.PUBLIC.VALS WHERE "id" < 2000 ORDER BY "id"})->{rows};
my %got = map { $_->[0] => $_->[1] } @$got;
for my $i (0 .. $#values)
{
	my $want = $values[$i];
	my $v = $got{$i};
	my $label = length($want) > 40 ? substr($want, 0, 20) . '... (' . length($want) . ' chars)' : $want;
	$label =~ s/([^\x20-\x7e])/sprintf('\\x{%x}', ord($1))/ge;
	# EMPTY_FIELD_AS_NULL applies to unenclosed fields only: "" stays ''
	ok(defined $v && $v eq $want, "value arrives unchanged: $label");
}
ok(exists $got{1000} && !defined $got{1000}, 'NULL arrives as NULL');
my $big = sf(q{SELECT "v" FROM DB.PUBLIC.VALS WHERE "id" = 2000})->{rows}[0][0] // '';
is(length($big), $big_chars, "a value of $big_chars characters (Snowflake's limit is 16 MB) arrives whole");
ok($big eq '0123456789abcde"' x ($big_chars / 16), 'the large value arrives unchanged');

# 100 MB: more than Snowflake takes
$node->safe_psql('postgres', q{INSERT INTO oversize SELECT 3000, repeat('0123456789abcde"', 100 * 65536)});
ok($node->poll_query_until('postgres',
	q{SELECT failed_files = 1 FROM sfexport.status WHERE foreign_table = 'oversize'::regclass}),
	'a 100 MB value: its file is rejected by Snowflake');
my ($fname, $ferr, $frows) = split /\|/, $node->safe_psql('postgres',
	q{SELECT name, first_error, rows FROM sfexport.files WHERE relid = 'oversize'::regclass AND state = 'failed'});
like($ferr, qr/length limit|exceeded/i, 'the failed file shows Snowflake\'s error');
is($frows, '1', 'the failed file counts its row');
ok(-f "$stage/$fname", 'the rejected file stays in storage for a retry');

# ---------------------------------------------------------------------
# No crash anywhere
# ---------------------------------------------------------------------
is($node->safe_psql('postgres', 'SELECT pg_postmaster_start_time()'), $start_time,
	'the postmaster never restarted');
my $log = PostgreSQL::Test::Utils::slurp_file($node->logfile);
unlike($log, qr/terminated by signal|server process .* was terminated|PANIC/,
	'no backend crashed');

$node->stop;
done_testing();
