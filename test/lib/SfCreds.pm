# SfCreds.pm: the credential stand-ins (test/emulators/aws_imds, aws_sts,
# aws_ecs, gce_metadata) for the credential-chain TAP tests (023-029).
#
#   my $imds = SfCreds::start('aws_imds', '--role-arn', $arn, '--issued-file', $f);
#   $imds->{url}                           http://127.0.0.1:PORT
#   SfCreds::admin($imds, 'GET', '/_imds/stats')
#   SfCreds::rows($node, $sql)             psql output split into rows of fields
package SfCreds;

use strict;
use warnings;

use File::Temp;
use HTTP::Tiny;
use JSON::PP;
use SfTest;
use Test::More;

our $ACCOUNT = '123456789012';

# A temp dir for the stand-ins' files (issued credentials, configs, tokens).
sub tmpdir
{
	my $d = File::Temp::tempdir('sf_creds_XXXX', TMPDIR => 1, CLEANUP => 1);
	chmod 0700, $d;
	return $d;
}

sub start
{
	my ($name, @args) = @_;
	my $svc = SfTest::start_service($name,
		[ SfTest::emulator($name), '--port', '0', '--port-file', '{PORT_FILE}', @args ]);
	$svc->{url} = "http://127.0.0.1:$svc->{port}";
	return $svc;
}

sub admin
{
	my ($svc, $method, $path, $body) = @_;
	my $r = HTTP::Tiny->new(timeout => 10)->request($method, "$svc->{url}$path",
		$body ? { content => encode_json($body), headers => { 'content-type' => 'application/json' } } : {});
	die "admin $method $path: $r->{status} $r->{content}" unless $r->{success};
	return $r->{content} =~ /^\s*[\[{]/ ? decode_json($r->{content}) : $r->{content};
}

sub write_file
{
	my ($path, $text, $mode) = @_;
	open my $fh, '>', $path or die "$path: $!";
	print $fh $text;
	close $fh;
	chmod($mode // 0600, $path);
}

# SQL that calls a stand-in's admin route from inside a session (the cache
# under test is per backend): COPY FROM PROGRAM curl, as a superuser.
sub sql_admin_post
{
	my ($svc, $path) = @_;
	return "CREATE TEMP TABLE IF NOT EXISTS _admin(t text);\n"
	  . "COPY _admin FROM PROGRAM 'curl -s -X POST -d {} $svc->{url}$path';\n";
}

# The rows of test_storage(server) as "step|ok|detail" strings.
sub test_storage_sql
{
	my ($server) = @_;
	return "SELECT step || '|' || ok || '|' || coalesce(detail, '') FROM sfexport.test_storage('$server');\n";
}

# An RSA key, its JWKS and a signer of OIDC tokens (python3-jwt), for
# AssumeRoleWithWebIdentity.  Returns { jwk => {...}, sign => sub(claims) }.
sub oidc_key
{
	my ($dir) = @_;
	my $py = <<'EOF';
import json, sys, jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization
k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
open(sys.argv[1], "wb").write(k.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.public_key()))
jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
print(json.dumps(jwk))
EOF
	my $jwk = `@{[SfTest::python()]} -c '$py' $dir/oidc.pem`;
	die "oidc key: $?" if $?;
	my $sign = sub {
		my ($claims) = @_;
		my $c = encode_json($claims);
		my $tok = `@{[SfTest::python()]} -c 'import jwt,sys,json; print(jwt.encode(json.loads(sys.argv[2]), open(sys.argv[1]).read(), algorithm="RS256", headers={"kid": "k1"}), end="")' $dir/oidc.pem '$c'`;
		die "sign: $?" if $?;
		return $tok;
	};
	return { jwk => decode_json($jwk), sign => $sign };
}

1;
