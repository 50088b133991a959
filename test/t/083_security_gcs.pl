# Security of the GCS client (issue 14, critical 3 and lows 11, 13):
#  - STORAGE_EMULATOR_HOST in the postmaster's environment is a host-level
#    setting: a superuser's server without an endpoint uses it, a
#    non-superuser's server does not (its requests go to
#    https://storage.googleapis.com, here stopped at a recording proxy that
#    only reaches loopback);
#  - the resumable session URI of a Location header receives the bearer
#    token only on the origin the upload started on: http:// under an
#    https:// endpoint (the stand-in behind TLS answers so), another port
#    or another host name are refused with 08P01 before any chunk is sent,
#    and nothing reaches the other origin; the same origin works, over TLS
#    and plain http;
#  - a token endpoint answering a token with CR/LF in it: the request that
#    would carry it is refused (HV024), nothing is sent.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfStorageTest;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = SfTest::src_dir();
my $gcs = SfStorageTest::start_gcs(buckets => ['gsec']);
my $pki = SfTest::test_pki(certs => { server => 'IP:127.0.0.1,DNS:localhost' });
my $tls = SfTest::tls_proxy('tls_gcs', $gcs->{endpoint}, $pki, 'server');
my $gcs_https = "https://127.0.0.1:$tls->{port}";
my $raw = SfTest::start_service('raw_reply',
	[ SfTest::emulator('raw_reply'), '--port', '0', '--port-file', '{PORT_FILE}' ]);
my $raw_url = "http://127.0.0.1:$raw->{port}";
my $fp = SfTest::start_service('forward_proxy',
	[ SfTest::emulator('forward_proxy'), '--port', '0',
	  '--port-file', '{PORT_FILE}' ]);

sub http_json
{
	my ($method, $url, $body) = @_;
	my $r = HTTP::Tiny->new(timeout => 10)->request($method, $url,
		$body ? { content => encode_json($body), headers => { 'content-type' => 'application/json' } } : {});
	die "$method $url: $r->{status} $r->{content}" unless $r->{success};
	return decode_json($r->{content});
}
sub proxy_log { return http_json('GET', "http://127.0.0.1:$fp->{port}/_proxy/log")->{requests}; }
sub raw_requests { return http_json('GET', "$raw_url/_raw/requests"); }
sub session_base { SfStorageTest::emu($gcs, 'POST', '/_emulator/session-location', { base => $_[0] }); }
sub stats { return SfStorageTest::emu($gcs, 'GET', '/_emulator/stats'); }

my $node = SfTest::new_node('gcssec', test_surface => 1, conf => "log_statement = none\n",
	env => { STORAGE_EMULATOR_HOST => "127.0.0.1:$gcs->{port}",
		https_proxy => "http://127.0.0.1:$fp->{port}", no_proxy => '127.0.0.1' });
my $keyq = slurp_file($gcs->{key_file}) =~ s/'/''/gr;
$node->safe_psql('postgres', qq{
	SET log_statement = 'none';
	CREATE ROLE mallory LOGIN;
	ALTER ROLE mallory SET log_min_error_statement = panic;
	GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO mallory;
	CREATE SERVER su_env FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://gsec/env/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER su_env OPTIONS (gcs_credentials_file '$gcs->{key_file}');
	CREATE SERVER tls FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://gsec/tls/', endpoint '$gcs_https',
	           ca_file '$pki/ca.pem');
	CREATE USER MAPPING FOR CURRENT_USER SERVER tls OPTIONS (gcs_credentials_file '$gcs->{key_file}');
	CREATE SERVER plain FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://gsec/plain/', endpoint '$gcs->{endpoint}');
	CREATE USER MAPPING FOR CURRENT_USER SERVER plain OPTIONS (gcs_credentials_file '$gcs->{key_file}');
});

sub psql_err
{
	my ($sql, $role) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		$role ? (extra_params => [ '-U', $role ]) : ());
	return $err;
}

# ---- STORAGE_EMULATOR_HOST: the host's setting, for a superuser's server only
is($node->safe_psql('postgres', "SELECT string_agg(step || ':' || ok, ',') FROM sfexport.test_storage('su_env')"),
	'configuration:true,write:true,stat:true,read back:true,delete:true,verify deleted:true',
	'a superuser\'s server without endpoint goes where STORAGE_EMULATOR_HOST says');
my ($rc, $out, $err) = $node->psql('postgres', qq{
	CREATE SERVER m_env FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://gsec/mallory/', connect_timeout '2s');
	CREATE USER MAPPING FOR mallory SERVER m_env OPTIONS (gcs_credentials '$keyq');
}, extra_params => [ '-U', 'mallory' ]);
is($rc, 0, 'mallory makes a GCS server without endpoint') or diag($err);
my $uploads = stats()->{uploads_completed};
$err = psql_err(q{SELECT sfexport_test.storage_put('m_env', 'x.csv', '\x01')}, 'mallory');
like($err, qr/permission denied for (schema sfexport_test|function storage_put)/, '(the raw helpers are not hers)');
($rc, $out, $err) = $node->psql('postgres',
	q{SELECT step || ':' || ok || ':' || coalesce(detail, '') FROM sfexport.test_storage('m_env') WHERE NOT ok},
	extra_params => [ '-U', 'mallory' ]);
like($out, qr{^write:false:.*https://storage\.googleapis\.com/}m,
	'mallory\'s server ignores STORAGE_EMULATOR_HOST: its upload is for storage.googleapis.com')
  or diag("$out\n$err");
ok((grep { $_->{method} eq 'CONNECT' && $_->{target} eq 'storage.googleapis.com:443' && $_->{status} == 403 }
		@{ proxy_log() }),
	'... which the recording proxy saw and did not connect (loopback only)');
is(stats()->{uploads_completed}, $uploads, 'the stand-in got no upload from her server');

# ---- low 11: the resumable session lives on the origin of the upload
my $big = q{SELECT repeat('0123456789abcdef', 393216)::bytea};    # 6 MiB: resumable
sub put_big
{
	my ($server, $name) = @_;
	return psql_err("SET sfexport.upload_part_size = '5MB';\n"
		  . "SELECT sfexport_test.storage_put('$server', '$name', ($big), 1048576)");
}
sub chunks { return stats()->{resumable_chunks}; }

# behind TLS the stand-in announces http://<its Host header>: a downgrade
my $before = chunks();
$err = put_big('tls', 'down.csv');
like($err, qr/ERROR:  08P01: GCS request POST https:\/\/127\.0\.0\.1:\d+\/storage\/v1\/b\/gsec\/o\/tls%2Fdown\.csv returned a resumable session on another origin/,
	'https endpoint, http:// session URI: refused (08P01)');
like($err, qr/DETAIL:  The session URI in the Location header does not have the scheme, host and port of https:\/\/127\.0\.0\.1:\d+; the upload was not sent there/,
	'... the detail names the expected origin');
unlike($err, qr/upload_id/, '... never the session URI (a capability)');
is(chunks(), $before, 'no chunk was sent over http');

session_base($gcs_https);
is(psql_err("SET sfexport.upload_part_size = '5MB';\n"
	  . "SELECT sfexport_test.storage_put('tls', 'ok.csv', ($big), 1048576) = 6291456\n"
	  . "  AND md5(sfexport_test.storage_get('tls', 'ok.csv')) = md5(($big))"), '',
	'a session on the https origin itself works');
cmp_ok(chunks(), '>', $before, '... in chunks');

session_base("http://127.0.0.1:$gcs->{port}");
$before = chunks();
like(put_big('tls', 'plainport.csv'), qr/ERROR:  08P01: .* returned a resumable session on another origin/,
	'an http:// session on another port under https: refused');
is(chunks(), $before, 'nothing was sent to it');

session_base($raw_url);
like(put_big('plain', 'elsewhere.csv'), qr/ERROR:  08P01: .* returned a resumable session on another origin/,
	'plain http endpoint, session on another port: refused');
is(scalar @{ raw_requests() }, 0, 'the other origin received nothing (no token)');

session_base("http://localhost:$gcs->{port}");
$before = chunks();
like(put_big('plain', 'otherhost.csv'), qr/ERROR:  08P01: .* returned a resumable session on another origin/,
	'same port, another host name: refused');
is(chunks(), $before, 'nothing was sent');

session_base(undef);
is(psql_err("SET sfexport.upload_part_size = '5MB';\n"
	  . "SELECT sfexport_test.storage_put('plain', 'same.csv', ($big), 1048576)"), '',
	'plain http endpoint, session on the same origin: works');

# ---- low 13 at use: a token with a line break never goes into a header
my $hostile_key = "$pki/hostile-sa.json";
system(SfTest::python(), "$src/test/emulators/lib/gcs_keys.py", $hostile_key, "$raw_url/token") == 0
  or die 'gcs_keys.py failed';
chmod 0600, $hostile_key;
SfTest::register_secret('GCS private key of the hostile token endpoint test',
	decode_json(slurp_file($hostile_key))->{private_key});
http_json('POST', "$raw_url/_raw/replies", { replies => [ { status => 200,
	headers => { 'Content-Type' => 'application/json' },
	body => qq({"access_token": "ya29.hostile\\r\\nX-Injected: 1", "expires_in": 3600, "token_type": "Bearer"}) } ] });
$node->safe_psql('postgres', qq{
	CREATE SERVER crlf FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'gcs://gsec/crlf/', endpoint '$gcs->{endpoint}');
	CREATE USER MAPPING FOR CURRENT_USER SERVER crlf OPTIONS (gcs_credentials_file '$hostile_key');
});
my $requests = stats()->{requests};
$err = psql_err(q{SELECT sfexport_test.storage_put('crlf', 'x.csv', '\x01')});
like($err, qr/ERROR:  HV024: refusing to send request POST http:\/\/127\.0\.0\.1:\d+\/storage\/v1\/b\/gsec\/o\/crlf%2Fx\.csv: header "Authorization" contains control characters/,
	'a token with CR/LF from the token endpoint: the request is refused (HV024)');
unlike($err, qr/X-Injected|hostile/, '... without showing the token');
is(stats()->{requests}, $requests, 'nothing reached the storage stand-in');
is(scalar(grep { $_->{path} eq '/token' } @{ raw_requests() }), 1, '(the token endpoint was asked once)');

done_testing();
