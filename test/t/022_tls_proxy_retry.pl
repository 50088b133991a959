# The HTTP layer's options, for real, on 127.0.0.1 only:
#
#  - TLS: Snowflake and S3 behind test/emulators/tls_proxy, with a CA and
#    server certificates made by the openssl command for this run.  With the
#    CA in the server's ca_file rows land over https; without it, with
#    another CA, or with a certificate for another host name, requests fail
#    with SQLSTATE 08006, a message naming the TLS problem and a hint, no
#    secret, and nothing is lost: rows stay pending, files stay staged, and
#    go once the configuration is fixed;
#  - proxies: the PostgreSQL server's proxy environment (https_proxy,
#    http_proxy, no_proxy, which libcurl honours) routes Snowflake and
#    storage traffic through test/emulators/forward_proxy (CONNECT
#    tunnels for https, absolute-URI requests for http), with proxy
#    credentials that never reach a log; no_proxy sends a host direct;
#  - Retry-After: 429 and 503 answers with Retry-After (delay-seconds and
#    HTTP-date) are honoured, measured between the arrival times the
#    stand-ins recorded, even while commits keep waking the worker; a value
#    above the cap (120 s) is capped, and the wait is interruptible.
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
use Time::HiRes qw(time usleep);

# ---- a test PKI: CA, another CA, a server certificate for 127.0.0.1 and
# localhost, one for another host name (all signed by the CA)
my $pki = SfTest::test_pki(cas => [qw(ca other_ca)],
	certs => { server => 'IP:127.0.0.1,DNS:localhost', elsewhere => 'DNS:elsewhere.example' });

# ---- stand-ins: S3 (front + s3rver) and Snowflake, each behind TLS
my ($akid, $secret) = ('AKIDTLSPROXYTEST', 'tlsProxySecretKey0123456789abcdefXYZ');
my $s3 = SfStorageTest::start_s3(keys => { $akid => $secret }, region => 'us-east-1',
	buckets => ['tls']);
my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--s3-endpoint', $s3->{endpoint}, '--s3-access-key', $akid,
		'--s3-secret-key', $secret, '--sync-wait-ms', '2000' ]);

sub tls_proxy { return SfTest::tls_proxy($_[0], $_[1], $pki, $_[2]); }
my $tls_s3 = tls_proxy('tls_s3', $s3->{endpoint}, 'server');
my $tls_sf = tls_proxy('tls_sf', $emu->{url}, 'server');
my $tls_sf_other = tls_proxy('tls_sf_elsewhere', $emu->{url}, 'elsewhere');
my $sf_https = "https://127.0.0.1:$tls_sf->{port}";
my $s3_https = "https://127.0.0.1:$tls_s3->{port}";

my $node = SfTest::new_node('tls', test_surface => 1,
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$sf_https', database 'DB', schema 'PUBLIC', warehouse 'WH',
		location 's3://tls/x/', endpoint '$s3_https', region 'us-east-1',
		ca_file '$pki/ca.pem', flush_interval '1s', connect_timeout '2s', request_timeout '10s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'LOADER',
		private_key @{[ SfSnowflake::lit($key->{pem}) ]},
		aws_access_key_id '$akid', aws_secret_access_key '$secret');
	CREATE FOREIGN TABLE ev (id int, v text) SERVER sf OPTIONS (table 'EV');
});
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }
sf(q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_DELIMITER = ',' RECORD_DELIMITER = '\n'
	SKIP_HEADER = 0 FIELD_OPTIONALLY_ENCLOSED_BY = '"' ESCAPE = NONE ESCAPE_UNENCLOSED_FIELD = NONE
	NULL_IF = () EMPTY_FIELD_AS_NULL = TRUE ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE
	BINARY_FORMAT = HEX COMPRESSION = AUTO});
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 's3://tls/x/'
	CREDENTIALS = (AWS_KEY_ID = '$akid' AWS_SECRET_KEY = '$secret')});
sf(q{CREATE TABLE DB.PUBLIC.EV ("id" NUMBER(10,0), "v" VARCHAR)});
sub sfcount { return sf('SELECT COUNT(*) FROM DB.PUBLIC.EV')->{rows}[0][0]; }

my $next_id = 1;
sub insert_rows
{
	my ($n) = @_;
	my $from = $next_id;
	$next_id += $n;
	$node->safe_psql('postgres',
		"INSERT INTO ev SELECT g, 'row ' || g FROM generate_series($from, @{[ $from + $n - 1 ]}) g");
}
sub status
{
	return $node->safe_psql('postgres',
		'SELECT pending_rows, staged_rows, loaded_rows FROM sfexport.status');
}
sub wait_loaded
{
	my ($n, $what) = @_;
	$node->safe_psql('postgres', 'SELECT sfexport.flush()');
	ok($node->poll_query_until('postgres',
		"SELECT pending_rows = 0 AND staged_rows = 0 AND loaded_rows = $n FROM sfexport.status"),
		$what) or diag(status());
	is(sfcount(), $n, "Snowflake has the $n rows once each");
}
# no secret of this test in an error text
sub no_secret
{
	my ($text, $what) = @_;
	my @leaks = grep { index($text, $_) >= 0 }
	  ($secret, SfSnowflake::pem_body_lines($key->{pem}));
	ok(!@leaks, "$what: no secret in the message");
}
my $log_pos = -s $node->logfile;
sub log_since
{
	my $text = slurp_file($node->logfile);
	return substr($text, $log_pos);
}

# ---- 1. TLS with the test CA: everything over https
like($node->safe_psql('postgres', q{SELECT * FROM sfexport.test_connection('sf')}),
	qr/LOADER/, 'test_connection over https with ca_file');
$node->safe_psql('postgres', q{SELECT * FROM sfexport.test_storage('sf')});
pass('test_storage over https with ca_file');
insert_rows(100);
wait_loaded(100, 'rows land over https (S3 and Snowflake through TLS)');
ok((grep { $_->{event} eq 'connect' } @{ $tls_s3->{events}->() }),
	'the S3 traffic went through the TLS terminator');
ok((grep { $_->{event} eq 'connect' } @{ $tls_sf->{events}->() }),
	'the Snowflake traffic went through the TLS terminator');

# ---- 2. without the CA, with another CA: clear errors, nothing lost
for my $case ([ 'no ca_file', 'DROP ca_file', qr/unable to get local issuer certificate/ ],
	[ 'another CA', "ADD ca_file '$pki/other_ca.pem'", qr/certificate/ ])
{
	my ($label, $alter, $why) = @$case;
	$node->safe_psql('postgres', "ALTER SERVER sf OPTIONS ($alter)");
	like($node->safe_psql('postgres',
			q{SELECT step || ': ' || detail FROM sfexport.test_storage('sf') WHERE NOT ok}),
		qr/SSL certificate problem/, "$label: test_storage reports the TLS problem");
	my $err = SfSnowflake::psql_error($node, q{SELECT sfexport_test.storage_put('sf', 'probe.txt', 'x')});
	like($err, qr/ERROR:  08006: \w+ https:\/\/127\.0\.0\.1:\d+\/tls\/\S* failed: SSL peer certificate or SSH remote key was not OK: SSL certificate problem: /,
		"$label: storage fails with 08006 naming the TLS problem");
	like($err, $why, "$label: the message says why");
	like($err, qr/HINT:  .*ca_file/, "$label: the hint names ca_file");
	no_secret($err, "$label, storage");
	$err = SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.test_connection('sf')});
	like($err, qr/ERROR:  08006: POST https:\/\/127\.0\.0\.1:\d+\/api\/v2\/statements failed: SSL peer certificate/,
		"$label: Snowflake fails with 08006 naming the TLS problem");
	unlike($err, qr/requestId=|Bearer/, "$label: no query string or token in the message");
	no_secret($err, "$label, Snowflake");
	my $failed_before = grep { $_->{event} eq 'handshake_failed' } @{ $tls_s3->{events}->() };
	insert_rows(50);
	$node->safe_psql('postgres', 'SELECT sfexport.flush()');
	my $deadline = time + 60;
	usleep(200_000)
	  while time < $deadline
	  && (grep { $_->{event} eq 'handshake_failed' } @{ $tls_s3->{events}->() }) <= $failed_before;
	ok((grep { $_->{event} eq 'handshake_failed' } @{ $tls_s3->{events}->() }) > $failed_before,
		"$label: the worker's upload was refused at the TLS handshake");
	sleep 2;
	my ($pending, undef, $loaded) = split /\|/, status();
	ok($pending >= 50, "$label: the rows stay pending ($pending)");
	is($loaded, 100, "$label: nothing more was loaded");
}
like(log_since(), qr/WARNING:  .*failed: SSL peer certificate or SSH remote key was not OK/,
	'the worker logged the TLS failure');
no_secret(log_since(), 'the server log');
$node->safe_psql('postgres', "ALTER SERVER sf OPTIONS (SET ca_file '$pki/ca.pem')");
wait_loaded(200, 'with the CA back, the pending rows go');

# a CA file that does not exist: the same SQLSTATE, a message that says so
$node->safe_psql('postgres', "ALTER SERVER sf OPTIONS (SET ca_file '$pki/missing.pem')");
my $err = SfSnowflake::psql_error($node, q{SELECT sfexport_test.storage_put('sf', 'probe.txt', 'x')});
like($err, qr/ERROR:  08006: .*(CA cert|certificate file|CA file)/i,
	'a missing ca_file: 08006 naming the CA file problem');
like($err, qr/HINT:  .*missing\.pem/, 'the hint names the file');
$node->safe_psql('postgres', "ALTER SERVER sf OPTIONS (SET ca_file '$pki/ca.pem')");

# ---- 3. a certificate for another host name: files stay staged
$node->safe_psql('postgres',
	"ALTER SERVER sf OPTIONS (SET url 'https://127.0.0.1:$tls_sf_other->{port}')");
$err = SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.test_connection('sf')});
like($err, qr/ERROR:  08006: POST https:\/\/127\.0\.0\.1:\d+\/api\/v2\/statements failed: .*(subject name|host name|hostname).*127\.0\.0\.1/,
	'a certificate for another host: 08006 naming the host name mismatch');
like($err, qr/HINT:  .*name the host of the URL/, 'the hint says the certificate must name the host');
no_secret($err, 'host name mismatch');
insert_rows(30);
$node->safe_psql('postgres', 'SELECT sfexport.flush()');
ok($node->poll_query_until('postgres',
	'SELECT pending_rows = 0 AND staged_rows = 30 FROM sfexport.status'),
	'the rows are staged (storage is fine)') or diag(status());
sleep 3;
is(status(), '0|30|200', 'the staged file stays staged while Snowflake is unreachable');
is(sfcount(), 200, 'nothing more reached Snowflake');
$node->safe_psql('postgres', "ALTER SERVER sf OPTIONS (SET url '$sf_https')");
wait_loaded(230, 'with the right URL, the staged file loads');

# ---- 4. proxies: the server's environment, as libcurl honours it
my ($puser, $ppass) = ('sfproxy', 'Pr0xyPassw0rd-NotForLogs');
SfTest::register_secret('forward proxy password', $ppass);
my $fp = SfTest::start_service('forward_proxy',
	[ SfTest::emulator('forward_proxy'), '--port', '0',
	  '--port-file', '{PORT_FILE}', '--auth', "$puser:$ppass" ]);
my $fp_url = "http://127.0.0.1:$fp->{port}";
sub proxy_log
{
	my $r = HTTP::Tiny->new(timeout => 10)->request($_[0] // 'GET', "$fp_url/_proxy/log");
	die "proxy log: $r->{status}" unless $r->{success};
	return decode_json($r->{content})->{requests};
}
# the proxy environment is the postmaster's (pg_ctl start), nobody else's;
# the proxy's record starts afresh with the restart (the worker keeps its
# tunnels open, so a later connection may reuse one)
sub restart_with_env
{
	my (%env) = @_;
	$node->stop;
	proxy_log('DELETE');
	local @ENV{ keys %env } = values %env;
	$node->start;
}
my $proxy_with_auth = "http://$puser:$ppass\@127.0.0.1:$fp->{port}";
restart_with_env(https_proxy => $proxy_with_auth, http_proxy => $proxy_with_auth, no_proxy => '');
$log_pos = -s $node->logfile;
insert_rows(20);
wait_loaded(250, 'https through the proxy: rows land');
my $log = proxy_log();
ok((grep { $_->{method} eq 'CONNECT' && $_->{target} eq "127.0.0.1:$tls_s3->{port}" && $_->{auth} eq 'ok' } @$log),
	'storage traffic went through a CONNECT tunnel with the proxy credentials');
ok((grep { $_->{method} eq 'CONNECT' && $_->{target} eq "127.0.0.1:$tls_sf->{port}" && $_->{auth} eq 'ok' } @$log),
	'Snowflake traffic went through a CONNECT tunnel with the proxy credentials');

# plain http storage through the same proxy: absolute-URI requests
$node->safe_psql('postgres', "ALTER SERVER sf OPTIONS (SET endpoint '$s3->{endpoint}')");
proxy_log('DELETE');
insert_rows(20);
wait_loaded(270, 'http storage through the proxy: rows land');
ok((grep { $_->{method} eq 'PUT' && !$_->{tunnel} && $_->{target} =~ m{^127\.0\.0\.1:\Q$s3->{front}{port}\E/tls/x/} && $_->{auth} eq 'ok' } @{ proxy_log() }),
	'the http PUT of the staged file went through the proxy');

# no_proxy: Snowflake at localhost goes direct, storage at 127.0.0.1 does not
restart_with_env(https_proxy => $proxy_with_auth, http_proxy => $proxy_with_auth,
	no_proxy => 'localhost');
$node->safe_psql('postgres',
	"ALTER SERVER sf OPTIONS (SET url 'https://localhost:$tls_sf->{port}')");
insert_rows(20);
wait_loaded(290, 'with no_proxy: rows land');
$log = proxy_log();
ok(!(grep { $_->{target} =~ /^localhost:/ } @$log), 'no_proxy: Snowflake (localhost) went direct');
ok((grep { $_->{method} eq 'PUT' && $_->{target} =~ /^127\.0\.0\.1:/ } @$log),
	'no_proxy: storage (127.0.0.1) still went through the proxy');
ok((grep { ($_->{sni} // '') eq 'localhost' } @{ $tls_sf->{events}->() }),
	'the direct TLS connection named localhost (SNI)');

# wrong proxy credentials: refused, and the password never logged
my $proxy_wrong = "http://$puser:WrongProxyPass-NotForLogs\@127.0.0.1:$fp->{port}";
SfTest::register_secret('wrong forward proxy password', 'WrongProxyPass-NotForLogs');
restart_with_env(https_proxy => $proxy_wrong, http_proxy => $proxy_wrong, no_proxy => '');
$node->safe_psql('postgres', "ALTER SERVER sf OPTIONS (SET url '$sf_https')");
$err = SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.test_connection('sf')});
like($err, qr/ERROR:  08006: POST https:\/\/127\.0\.0\.1:\d+\/api\/v2\/statements failed: .*407/,
	'wrong proxy credentials: 08006 with the proxy\'s 407');
like($err, qr/HINT:  The proxy refused the connection \(HTTP 407\).*https_proxy/,
	'the hint points at the proxy environment');
like($err, qr/attempted 1 time\./, 'a 407 is not retried');
ok((grep { $_->{auth} eq 'wrong' && $_->{status} == 407 } @{ proxy_log() }),
	'the proxy saw the wrong credentials and refused');
my $all_logs = slurp_file($node->logfile) . slurp_file($fp->{log}) . $err;
ok(index($all_logs, $ppass) < 0 && index($all_logs, 'WrongProxyPass') < 0,
	'no proxy password in the server log, the proxy\'s log or the error');

# ---- 5. Retry-After
restart_with_env();
$node->safe_psql('postgres', "ALTER SERVER sf OPTIONS (SET endpoint '$s3_https')");
$log_pos = -s $node->logfile;
sub gaps
{
	# arrival of each faulted request and of the next request after it
	my ($reqs, $fault, $re) = @_;
	my @g;
	for my $i (0 .. $#$reqs - 1)
	{
		next unless ($reqs->[$i]{fault} // '') eq $fault && $reqs->[$i]{path} =~ $re;
		my ($next) = grep { $_->{path} =~ $re } @$reqs[ $i + 1 .. $#$reqs ];
		push @g, $next->{t} - $reqs->[$i]{t} if $next;
	}
	return @g;
}

# Snowflake: 429 with Retry-After: 3 on the COPY, while commits keep
# setting the worker's latch
SfSnowflake::admin($emu, 'DELETE', 'requests');
SfSnowflake::admin($emu, 'POST', 'faults',
	{ action => '429', count => 1, statement => '^\s*COPY INTO', retry_after => '3' });
insert_rows(10);
$node->safe_psql('postgres', 'SELECT sfexport.flush()');
my $deadline = time + 30;
usleep(100_000) until time > $deadline
  || grep { ($_->{fault} // '') eq '429' } @{ SfSnowflake::admin($emu, 'GET', 'requests')->{requests} };
for (1 .. 12)
{
	$node->safe_psql('postgres', "INSERT INTO ev VALUES ($next_id, 'latch')");
	$next_id++;
	usleep(250_000);
}
wait_loaded($next_id - 1, 'after a 429 with Retry-After the rows land');
my @g = gaps(SfSnowflake::admin($emu, 'GET', 'requests')->{requests}, '429', qr{^/api/v2/statements/?$});
is(scalar @g, 1, 'one 429 was answered');
ok(@g && $g[0] >= 2.95, sprintf('Snowflake: the retry came %.2f s after the 429 with Retry-After: 3', $g[0] // -1));
ok(@g && $g[0] < 15, 'and not much later');

# S3: 503 SlowDown with an HTTP-date four seconds ahead
SfStorageTest::front($s3, 'DELETE', '/_front/requests');
SfStorageTest::front($s3, 'POST', '/_front/faults',
	{ kind => 'slowdown', count => 1, method => 'PUT', retry_after => '+4' });
insert_rows(10);
wait_loaded($next_id - 1, 'after a 503 with an HTTP-date Retry-After the rows land');
@g = gaps(SfStorageTest::front($s3, 'GET', '/_front/requests')->{requests}, 'slowdown', qr{^/tls/x/});
is(scalar @g, 1, 'one 503 SlowDown was answered');
# an HTTP-date has whole seconds: 4 s ahead means at least 3 s later
ok(@g && $g[0] >= 2.95, sprintf('S3: the retry came %.2f s after the 503 with an HTTP-date 4 s ahead', $g[0] // -1));
ok(@g && $g[0] < 15, 'and not much later');

# Above the cap: Retry-After: 100000 waits 120 s, and the wait is interruptible
SfSnowflake::admin($emu, 'POST', 'faults',
	{ action => '503', count => 1, statement => 'CURRENT_USER', retry_after => '100000' });
my $t0 = time;
my ($ret, $out, $stderr) = $node->psql('postgres',
	"SET client_min_messages = debug1; SET statement_timeout = '3s';\n"
	  . "\\set VERBOSITY verbose\nSELECT * FROM sfexport.test_connection('sf')");
my $took = time - $t0;
like($stderr, qr/retrying POST https:\/\/127\.0\.0\.1:\d+\/api\/v2\/statements in 120000 ms/,
	'a Retry-After of 100000 s is capped at 120 s');
like($stderr, qr/ERROR:  57014: canceling statement due to statement timeout/,
	'the capped wait ends with the statement timeout');
ok($took < 10, sprintf('the wait was interrupted within about a second (%.1f s)', $took));
SfSnowflake::admin($emu, 'DELETE', 'faults');

no_secret(log_since(), 'the server log after the retries');

done_testing();
