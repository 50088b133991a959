# Snowflake key-pair authentication against the emulator, which verifies
# the JWT signature and claims as Snowflake documents them:
#  - a JWT made from a plain or an encrypted PKCS#8 key is accepted, with
#    the account of a locator-style identifier stripped of region and cloud;
#  - the fingerprint matches the one openssl computes;
#  - an unregistered key is rejected with a clear error and SQLSTATE;
#  - garbage PEM, public keys, EC/DSA keys, missing or wrong passphrases are
#    rejected at CREATE/ALTER USER MAPPING (and key files at first use);
#  - OAUTH tokens work, bad ones are rejected;
#  - tokens are reused, renewed before expiry, and refreshed once on 401
#    (two 401s in a row are an error; 401s apart are each cured);
#  - no key material, passphrase, JWT or token reaches the server log.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $passphrase = 'pass-Phrase-9x!';
my $main = SfSnowflake::gen_key($kdir, 'main', passphrase => $passphrase);
my $other = SfSnowflake::gen_key($kdir, 'other');
my $ec = SfSnowflake::gen_key($kdir, 'ec', type => 'EC');
my $dsa = SfSnowflake::gen_key($kdir, 'dsa', type => 'DSA');
my $oauth_token = 'oauth-Token-Secret-77';
SfTest::register_secret('wrong passphrase or token', 'wrong-pass-1', 'oauth-bogus-token-1');

my $emu = SfSnowflake::start_emulator(
	account => 'XY12345',
	users => { LOADER => $main->{pub} },
	tokens => ["LOADER=$oauth_token:OAUTH"]);

# No statement logging: the DDL below carries keys (see docs/snowflake.md).
my $node = SfTest::new_node('auth', conf => "log_statement = none\n");
my $lit = \&SfSnowflake::lit;

# A locator-style account with region and cloud: the JWT must carry XY12345.
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'xy12345.us-east-2.aws', url '$emu->{url}',
		database 'DB', schema 'PUBLIC', warehouse 'LOAD_WH', role 'LOADER_ROLE',
		location 'file:///tmp/sfexport-020/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER sf
		OPTIONS (user 'loader', private_key @{[ $lit->($main->{pem}) ]});
});

is($node->safe_psql('postgres', "SELECT account, user_name, role, warehouse, version IS NOT NULL FROM sfexport.test_connection('sf')"),
	'XY12345|LOADER|LOADER_ROLE|LOAD_WH|t',
	'test_connection: JWT from an unencrypted key accepted; account, user, role, warehouse reported');
is($node->safe_psql('postgres', "SELECT sfexport.public_key_fingerprint('sf')"),
	$main->{fp}, 'public_key_fingerprint equals the fingerprint computed by openssl');
my $registered = SfSnowflake::admin($emu, 'GET', 'users')->{users}{LOADER}[0];
is($registered, $main->{fp}, 'and the fingerprint the emulator registered');

# Encrypted PKCS#8 key with the right passphrase.
$node->safe_psql('postgres', qq{
	ALTER USER MAPPING FOR CURRENT_USER SERVER sf OPTIONS (
		SET private_key @{[ $lit->($main->{enc_pem}) ]},
		ADD private_key_passphrase @{[ $lit->($passphrase) ]});
});
is($node->safe_psql('postgres', "SELECT user_name FROM sfexport.test_connection('sf')"),
	'LOADER', 'encrypted key with the right passphrase is accepted');

# Wrong and missing passphrase: rejected at ALTER USER MAPPING.
my $err = SfSnowflake::psql_error($node,
	"ALTER USER MAPPING FOR CURRENT_USER SERVER sf OPTIONS (SET private_key_passphrase 'wrong-pass-1')");
like($err, qr/ERROR:  HV024: could not decrypt the private key given by option "private_key"/,
	'wrong passphrase rejected at ALTER USER MAPPING with HV024');
like($err, qr/DETAIL:  The passphrase in option "private_key_passphrase" is wrong/, 'with a detail');
unlike($err, qr/wrong-pass-1/, 'the passphrase is not echoed');
$err = SfSnowflake::psql_error($node,
	"ALTER USER MAPPING FOR CURRENT_USER SERVER sf OPTIONS (DROP private_key_passphrase)");
like($err, qr/ERROR:  HV024: the private key given by option "private_key" is encrypted/,
	'encrypted key without passphrase rejected');
like($err, qr/HINT:  Set option "private_key_passphrase"/, 'with a hint');

# Keys that cannot be used, at CREATE USER MAPPING.
$node->safe_psql('postgres', 'CREATE ROLE other_user');
my %bad = (
	'EC key' => [ $ec->{pem}, qr/ERROR:  HV024: the private key given by option "private_key" is not an RSA key\n.*DETAIL:  It is a key of type EC;/s ],
	'DSA key' => [ $dsa->{pem}, qr/ERROR:  HV024: the private key given by option "private_key" is not an RSA key\n.*DETAIL:  It is a key of type DSA/s ],
	'garbage PEM' => [ "-----BEGIN PRIVATE KEY-----\nTm90IGEga2V5IGF0IGFsbCwganVzdCB0ZXh0Lg==\n-----END PRIVATE KEY-----\n",
		qr/ERROR:  HV024: could not parse the private key given by option "private_key"\n.*DETAIL:  The value is not a PEM-encoded private key/s ],
	'public key' => [ $main->{pub_pem}, qr/ERROR:  HV024: option "private_key" gives a public key, not a private key/ ],
	'truncated key' => [ substr($main->{pem}, 0, 400) . "\n-----END PRIVATE KEY-----\n",
		qr/ERROR:  HV024: could not parse the private key given by option "private_key"/ ],
);
for my $case (sort keys %bad)
{
	my ($pem, $re) = @{ $bad{$case} };
	$err = SfSnowflake::psql_error($node,
		"CREATE USER MAPPING FOR other_user SERVER sf OPTIONS (user 'U', private_key @{[ $lit->($pem) ]})");
	like($err, $re, "$case rejected at CREATE USER MAPPING");
	my ($line) = SfSnowflake::pem_body_lines($pem);
	unlike($err, qr/\Q$line\E/, "$case: the key is not echoed") if $line;
}
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_user_mappings WHERE usename = 'other_user'"),
	'0', 'no user mapping was created for bad keys');

# Key files: checked at DDL time when readable, else at first use.
$err = SfSnowflake::psql_error($node,
	"CREATE USER MAPPING FOR other_user SERVER sf OPTIONS (user 'U', private_key_file '$ec->{priv}')");
like($err, qr/ERROR:  HV024: the private key given by option "private_key_file" is not an RSA key/,
	'EC key file rejected at CREATE USER MAPPING');
my ($ret, $out);
($ret, $out, $err) = $node->psql('postgres',
	"CREATE USER MAPPING FOR other_user SERVER sf OPTIONS (user 'U', private_key_file '$kdir/absent.pem')");
like($err, qr/WARNING:  could not open file ".*absent.pem" named by option "private_key_file"/,
	'a key file that cannot be read yet gives a warning');
$node->safe_psql('postgres', "DROP USER MAPPING FOR other_user SERVER sf");

# A key file that works.
$node->safe_psql('postgres', qq{
	CREATE SERVER sf_file FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'xy12345.us-east-2.aws', url '$emu->{url}', database 'DB',
		location 'file:///tmp/sfexport-020/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER sf_file
		OPTIONS (user 'LOADER', private_key_file '$main->{enc}',
		         private_key_passphrase @{[ $lit->($passphrase) ]});
});
is($node->safe_psql('postgres', "SELECT user_name FROM sfexport.test_connection('sf_file')"),
	'LOADER', 'encrypted key read from private_key_file is accepted');

# A valid RSA key that Snowflake does not know for the user.
$node->safe_psql('postgres', qq{
	CREATE SERVER sf_wrong FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'xy12345', url '$emu->{url}', database 'DB', location 'file:///tmp/sfexport-020/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER sf_wrong
		OPTIONS (user 'LOADER', private_key @{[ $lit->($other->{pem}) ]});
});
$err = SfSnowflake::psql_error($node, "SELECT * FROM sfexport.test_connection('sf_wrong')");
like($err, qr/ERROR:  28000: Snowflake rejected the credentials of the user mapping for server "sf_wrong"/,
	'wrong key: rejected with SQLSTATE 28000');
like($err, qr/DETAIL:  Snowflake error 390144: JWT token is invalid/, 'detail carries Snowflake\'s code and message');
like($err, qr/HINT:  .*public key with fingerprint \Q$other->{fp}\E/, 'hint names the fingerprint to register');

# Wrong account in the claims (the emulator expects XY12345).
$node->safe_psql('postgres', qq{
	CREATE SERVER sf_acct FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'myorg-otheraccount', url '$emu->{url}', database 'DB', location 'file:///tmp/sfexport-020/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER sf_acct
		OPTIONS (user 'LOADER', private_key @{[ $lit->($main->{pem}) ]});
});
like(SfSnowflake::psql_error($node, "SELECT * FROM sfexport.test_connection('sf_acct')"),
	qr/ERROR:  28000: Snowflake rejected the credentials/, 'a JWT for another account is rejected');

# OAUTH token mappings.
$node->safe_psql('postgres', qq{
	CREATE SERVER sf_tok FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'xy12345', url '$emu->{url}', database 'DB', location 'file:///tmp/sfexport-020/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER sf_tok
		OPTIONS (token @{[ $lit->($oauth_token) ]}, token_type 'OAUTH');
});
is($node->safe_psql('postgres', "SELECT user_name FROM sfexport.test_connection('sf_tok')"),
	'LOADER', 'OAUTH token accepted');
$node->safe_psql('postgres',
	"ALTER USER MAPPING FOR CURRENT_USER SERVER sf_tok OPTIONS (SET token 'oauth-bogus-token-1')");
$err = SfSnowflake::psql_error($node, "SELECT * FROM sfexport.test_connection('sf_tok')");
like($err, qr/ERROR:  28000: Snowflake rejected the credentials.*\n.*DETAIL:  Snowflake error 390303/,
	'bad OAUTH token rejected with 28000 and Snowflake\'s code');
like($err, qr/HINT:  The OAUTH token may have expired/, 'with a hint about the token');

# Token reuse and renewal: with a 10 s lifetime, the token is reused at
# once and renewed before it expires.
$node->safe_psql('postgres', qq{
	ALTER USER MAPPING FOR CURRENT_USER SERVER sf OPTIONS (
		SET private_key @{[ $lit->($main->{pem}) ]}, DROP private_key_passphrase);
});
($ret, $out, $err) = $node->psql('postgres', q{
	SET client_min_messages = debug1;
	SET sfexport.jwt_lifetime = 10;
	SELECT user_name FROM sfexport.test_connection('sf');
	SELECT user_name FROM sfexport.test_connection('sf');
	SELECT pg_sleep(9);
	SELECT user_name FROM sfexport.test_connection('sf');
});
is($ret, 0, 'three connections in one session succeed');
my $made = () = $err =~ /new key-pair token for user "loader" of server "sf", valid for 10 s/g;
is($made, 2, 'the token is reused within its lifetime and renewed before it expires');

# 401 (e.g. a token Snowflake no longer honours): refreshed once.
SfSnowflake::admin($emu, 'POST', 'faults', { action => '401', count => 1, method => 'POST' });
($ret, $out, $err) = $node->psql('postgres', q{
	SET client_min_messages = debug1;
	SELECT user_name FROM sfexport.test_connection('sf');
});
is($out, 'LOADER', 'a 401 is cured by a fresh token');
$made = () = $err =~ /new key-pair token/g;
is($made, 2, 'exactly one token was made after the 401');
SfSnowflake::admin($emu, 'POST', 'faults', { action => '401', count => 2, method => 'POST' });
$err = SfSnowflake::psql_error($node, "SELECT * FROM sfexport.test_connection('sf')");
like($err, qr/ERROR:  28000: Snowflake rejected the credentials/, 'a second 401 in a row is an error');
SfSnowflake::admin($emu, 'DELETE', 'faults');

# 401s that are not in a row are each cured: one on the submit, one on a
# poll of the same statement (a good answer in between resets the renewal),
# and polling goes on backing off after the renewal (it used to poll without
# any pause from then on).
SfSnowflake::admin($emu, 'POST', 'faults', [
	{ action => '401', count => 1, method => 'POST' },
	{ action => '202', delay_ms => 2500, count => 1, statement => 'CURRENT_ACCOUNT' },
	{ action => '401', count => 1, method => 'GET' },
	{ action => 'delay', delay_ms => 0, count => 1000, method => 'GET' } ]);
($ret, $out, $err) = $node->psql('postgres', q{
	SET client_min_messages = debug1;
	SELECT user_name FROM sfexport.test_connection('sf');
});
is($out, 'LOADER', 'a 401 on the submit and another on a poll of the same statement are both cured');
$made = () = $err =~ /new key-pair token/g;
is($made, 3, 'the first token, then one new token after each 401');
my ($counter) = grep { $_->{action} eq 'delay' } @{ SfSnowflake::admin($emu, 'GET', 'faults')->{faults} };
my $polls = 1 + 1000 - $counter->{count};   # the 401 answered one poll
cmp_ok($polls, '<', 30, "polling backs off after a renewal ($polls polls in 2.5 s)");
SfSnowflake::admin($emu, 'DELETE', 'faults');

# Nothing secret in the server log or the emulator's log.
$node->stop;
my $logs = PostgreSQL::Test::Utils::slurp_file($node->logfile)
  . PostgreSQL::Test::Utils::slurp_file($emu->{log});
my @secrets = ($passphrase, $oauth_token,
	map { SfSnowflake::pem_body_lines($_) } $main->{pem}, $main->{enc_pem}, $other->{pem});
my @found = grep { index($logs, $_) >= 0 } @secrets;
is(scalar(@found), 0, 'no key material, passphrase or token in the logs');
unlike($logs, qr/eyJ[A-Za-z0-9_-]{10,}\.eyJ/, 'no JWT in the logs');

done_testing();
