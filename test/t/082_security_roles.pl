# Security: what a role that is not a superuser can reach (issue 14,
# critical 3, mediums 4 and 5, lows 12 and 13), with the postmaster started
# with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN in its
# environment (registered as host secrets: the secret scan searches for
# them everywhere, CREATE STAGE CREDENTIALS clauses included).
#  - mallory owns a server (USAGE on the wrapper) whose endpoint, url and
#    glue_endpoint point at stand-ins that know the host's key: test_storage,
#    setup_stage (dry run or not), glue_sync, orphans and the worker's
#    uploads on it are refused with SQLSTATE HV00J and a hint naming the
#    user-mapping options; no request signed with the host's key reaches
#    the S3 or Glue stand-in, no statement with it reaches Snowflake, and
#    the rows wait in the outbox until mallory's mapping has keys of its own;
#  - "checked at use": the same server given to a superuser uses the host's
#    keys at once, given back it does not; a member of a superuser role can
#    neither alter a superuser's server nor give one to a superuser;
#  - a superuser's server uses the host's keys for storage, the pipeline and
#    Glue, but never gives them to Snowflake: setup_stage without a storage
#    integration is refused (dry run too), with one it works;
#  - a foreign table pointing at another Snowflake table is refused at DDL
#    time for a role with USAGE on the server;
#  - sfexport.status shows error text (with the row's value) only to those
#    who may read the table;
#  - key files readable by group or world are refused, at DDL time and at
#    use; CR/LF in header values refused at DDL time and at use.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfStorageTest;
use SfGlue;
use File::Copy qw(copy);
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;

# ---- the host's identity, and the stand-ins that would accept it
my ($env_akid, $env_secret, $env_token) =
  ('AKIAHOSTENVIRONMENT1', 'hostEnvSecret/082+' . join('', map { chr(97 + int(rand(26))) } 1 .. 24),
	'hostEnvSessionToken//082' . join('', map { chr(65 + int(rand(26))) } 1 .. 24));
SfTest::register_host_secret('AWS secret of the postmaster environment', $env_secret);
SfTest::register_host_secret('AWS session token of the postmaster environment', $env_token);
my ($m_akid, $m_secret) = ('AKIAMALLORYOWNKEY001', 'malloryOwnSecretKey0123456789abcdefXYZ');
my ($sf_akid, $sf_secret) = ('AKIASNOWFLAKEREADER1', 'snowflakeReaderSecret0123456789abcdefX');
my $s3 = SfStorageTest::start_s3(
	keys => { $env_akid => $env_secret, $m_akid => $m_secret, $sf_akid => $sf_secret },
	tokens => { $env_akid => $env_token }, region => 'us-east-1', buckets => ['sec']);
my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--s3-endpoint', $s3->{endpoint}, '--s3-access-key', $sf_akid,
		'--s3-secret-key', $sf_secret, '--sync-wait-ms', '2000' ]);
my $glue = SfGlue::start_emulator(keys => { $env_akid => $env_secret },
	tokens => { $env_akid => $env_token }, region => 'us-east-1');
SfGlue::write_catalog($glue, { databases => [ { Name => 'lake' } ],
	tables => { lake => [ SfGlue::table('clicks', 'parquet', 's3://sec/good/lake/clicks/', [ id => 'bigint' ]) ] } });
my $lit = \&SfSnowflake::lit;
my $pem = $lit->($key->{pem});

my $node = SfTest::new_node('sec',
	# no periodic orphan sweep: orphans() runs the same code on demand, and
	# the request log stays the test's
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\nsfexport.orphan_sweep_interval = 0\n",
	env => { AWS_ACCESS_KEY_ID => $env_akid, AWS_SECRET_ACCESS_KEY => $env_secret,
		AWS_SESSION_TOKEN => $env_token });

# Run SQL as a role; returns (exit code, stdout, stderr with VERBOSITY
# verbose).  Failing statements stay out of the server log (ALTER ROLE
# below), since they may carry keys.
sub as_role
{
	my ($role, $sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', $role ]);
	return ($rc, $out, $err);
}
sub err_of { my (undef, undef, $err) = as_role(@_); return $err; }
sub sq { return $node->safe_psql('postgres', $_[0]); }
sub front_keys
{
	return [ map { $_->{access_key_id} // '-' } @{ SfStorageTest::front($s3, 'GET', '/_front/requests')->{requests} } ];
}
sub env_requests { return scalar grep { $_ eq $env_akid } @{ front_keys() }; }
sub sql_log_text { return join "\n", map { $_->{statement} // '' } @{ SfSnowflake::statement_log($emu) }; }
sub no_host_secret
{
	my ($text, $what) = @_;
	my @found = grep { index($text, $_) >= 0 } ($env_secret, $env_token, $env_akid);
	is(scalar(@found), 0, "no host credential in $what");
}

sq(qq{
	SET log_statement = 'none';
	CREATE ROLE mallory LOGIN;
	ALTER ROLE mallory SET log_min_error_statement = panic;
	CREATE ROLE admins SUPERUSER NOLOGIN;
	GRANT admins TO mallory;
	GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO mallory;
	GRANT CREATE ON SCHEMA public TO mallory;
	-- a superuser's servers: the host's keys (environment) are theirs to use
	CREATE SERVER good FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 's3://sec/good/', endpoint '$s3->{endpoint}', region 'us-east-1',
		storage_integration 'SEC_S3_INT', glue_endpoint '$glue->{url}', glue_region 'us-east-1',
		flush_interval '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER good OPTIONS (user 'LOADER', private_key $pem);
	CREATE SERVER good_nointeg FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		stage 'NOINTEG_STAGE', location 's3://sec/nointeg/', endpoint '$s3->{endpoint}',
		region 'us-east-1');
	CREATE USER MAPPING FOR PUBLIC SERVER good_nointeg OPTIONS (user 'LOADER', private_key $pem);
	CREATE SERVER admins_srv FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', location 's3://sec/admins/',
		endpoint '$s3->{endpoint}', region 'us-east-1');
	ALTER SERVER admins_srv OWNER TO admins;
	GRANT USAGE ON FOREIGN SERVER good TO mallory;
	CREATE FOREIGN TABLE good_t (id int, v text) SERVER good OPTIONS (table 'GOOD');
	CREATE FOREIGN TABLE bad_t (id int, ssn text) SERVER good OPTIONS (table 'BADT');
});
# mallory's own server, pointed at the stand-ins that know the host's key
my ($rc, $out, $err) = as_role('mallory', qq{
	CREATE SERVER evil FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		stage 'EVIL_STAGE', location 's3://sec/evil/', endpoint '$s3->{endpoint}',
		region 'us-east-1', glue_endpoint '$glue->{url}', glue_region 'us-east-1',
		flush_interval '1s');
	CREATE USER MAPPING FOR mallory SERVER evil OPTIONS (user 'LOADER', private_key $pem);
	CREATE FOREIGN TABLE evil_t (id int, v text) SERVER evil OPTIONS (table 'EVIL');
	-- the same, without tables (for the ownership changes below)
	CREATE SERVER evil_probe FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', location 's3://sec/evil/',
		endpoint '$s3->{endpoint}', region 'us-east-1');
	CREATE USER MAPPING FOR mallory SERVER evil_probe OPTIONS (user 'LOADER', private_key $pem);
});
is($rc, 0, 'a role with USAGE on the wrapper makes a server, a mapping without AWS keys, a table')
  or diag($err);

# ---- critical 3: the host's keys are not mallory's
SfStorageTest::front($s3, 'DELETE', '/_front/requests');
my $sql_before = scalar @{ SfSnowflake::statement_log($emu) };

($rc, $out, $err) = as_role('mallory',
	q{SELECT step || ':' || ok || ':' || coalesce(detail, '') FROM sfexport.test_storage('evil')});
like($out, qr/^configuration:false:no AWS credentials for server "evil".*SQLSTATE HV00J/s,
	'test_storage on mallory\'s server: no AWS credentials (HV00J)') or diag("$out\n$err");
like($out, qr/only servers owned by a superuser may use the database server's own AWS credentials/,
	'... because only servers owned by a superuser may use the host\'s');
like($out, qr/aws_access_key_id and aws_secret_access_key in the user mapping for mallory on server evil/,
	'... and the hint names the user mapping options');

for my $dry ('true', 'false')
{
	$err = err_of('mallory', "SELECT * FROM sfexport.setup_stage('evil', dry_run => $dry)");
	like($err, qr/ERROR:  HV00J: no way for Snowflake to read s3:\/\/sec\/evil\//,
		"setup_stage (dry run $dry) on mallory's server: refused with HV00J");
	like($err, qr/HINT:  .*storage_integration.*aws_access_key_id and aws_secret_access_key/s,
		'... naming a storage integration or the mapping\'s keys');
	no_host_secret($err, "the setup_stage error (dry run $dry)");
}

$err = err_of('mallory', q{SELECT * FROM sfexport.glue_sync('evil', 'lake', dry_run => true)});
like($err, qr/ERROR:  HV00J: no AWS credentials for server "evil"/, 'glue_sync on mallory\'s server: HV00J');
is(scalar @{ SfGlue::requests($glue) }, 0, 'the Glue stand-in received no request');

$err = err_of('mallory', q{SELECT * FROM sfexport.orphans('evil')});
like($err, qr/ERROR:  HV00J: no AWS credentials for server "evil"/, 'orphans() on mallory\'s server: HV00J');

# the worker: uploads for mallory's table are refused, the rows wait
my $log_pos = -s $node->logfile;
($rc, undef, $err) = as_role('mallory',
	q{INSERT INTO evil_t SELECT g, 'row ' || g FROM generate_series(1, 25) g});
is($rc, 0, 'mallory inserts into her table') or diag($err);
sq('SELECT sfexport.flush()');
ok($node->wait_for_log(qr/no AWS credentials for server "evil"/, $log_pos),
	'the worker does not upload mallory\'s rows with the host\'s keys');
is(sq(q{SELECT pending_rows || ':' || staged_files FROM sfexport.status WHERE foreign_table = 'evil_t'::regclass}),
	'25:0', 'the rows wait in the outbox, none staged');
is(env_requests(), 0, 'the S3 stand-in received no request signed with the host\'s key');
is(scalar @{ front_keys() }, 0, 'nor any request at all from mallory\'s server');
my $new_sql = join "\n", map { $_->{statement} // '' }
  @{ SfSnowflake::statement_log($emu) }[ $sql_before .. $#{ SfSnowflake::statement_log($emu) } ];
unlike($new_sql, qr/EVIL_STAGE/, 'no CREATE STAGE of mallory\'s server reached Snowflake');

# checked at use: given to a superuser, a server uses the host's keys
sub probe { return (as_role('mallory', $_[0]))[1]; }
like(probe(q{SELECT detail FROM sfexport.test_storage('evil_probe') WHERE NOT ok}),
	qr/no AWS credentials for server "evil_probe"/, 'mallory\'s other server may not use them either');
sq(q{ALTER SERVER evil_probe OWNER TO admins});
like(probe(q{SELECT string_agg(step || ':' || ok, ',') FROM sfexport.test_storage('evil_probe')}),
	qr/^configuration:true,write:true/, 'owned by a superuser, the same server may use the host\'s keys');
cmp_ok(env_requests(), '>', 0, '... and its requests are signed with them');
sq(q{ALTER SERVER evil_probe OWNER TO mallory});
SfStorageTest::front($s3, 'DELETE', '/_front/requests');
like(probe(q{SELECT detail FROM sfexport.test_storage('evil_probe') WHERE NOT ok}),
	qr/no AWS credentials for server "evil_probe"/, 'given back to mallory, it may not (checked at every use)');
is(env_requests(), 0, '... and sends nothing');

# a member of a superuser role can neither retarget a superuser's server
# nor make a server of hers a superuser's
$err = err_of('mallory', qq{ALTER SERVER admins_srv OPTIONS (SET endpoint 'http://127.0.0.1:9/')});
like($err, qr/ERROR:  42501: permission denied to alter server admins_srv/,
	'a member of a superuser role cannot alter the endpoint of its server');
like($err, qr/DETAIL:  A server owned by a superuser may use the database server's own credentials/,
	'... which may use the host\'s credentials');
$err = err_of('mallory', q{ALTER SERVER evil OWNER TO admins});
like($err, qr/ERROR:  42501: permission denied to alter server evil/,
	'nor give her server to the superuser role');
is(sq(q{SELECT srvowner::regrole FROM pg_foreign_server WHERE srvname = 'evil'}), 'mallory',
	'the server is still hers');
is(sq(q{SELECT o.option_value FROM pg_foreign_server s, pg_options_to_table(s.srvoptions) o
	WHERE s.srvname = 'admins_srv' AND o.option_name = 'endpoint'}), $s3->{endpoint},
	'the superuser\'s endpoint is unchanged');

# with keys of her own, mallory's rows leave (signed with her key)
SfStorageTest::front($s3, 'DELETE', '/_front/requests');
($rc, undef, $err) = as_role('mallory', qq{
	ALTER USER MAPPING FOR mallory SERVER evil OPTIONS (ADD aws_access_key_id '$m_akid',
		ADD aws_secret_access_key '$m_secret');
});
is($rc, 0, 'mallory gives her mapping keys of her own') or diag($err);
sq('SELECT sfexport.flush()');
ok($node->poll_query_until('postgres',
	q{SELECT pending_rows = 0 AND staged_rows = 25 FROM sfexport.status WHERE foreign_table = 'evil_t'::regclass}),
	'then the 25 rows are staged: nothing was lost');
my @keys = @{ front_keys() };
ok(@keys && !(grep { $_ ne $m_akid } @keys), 'every request was signed with her key')
  or diag(explain \@keys);

# ---- a superuser's server: the host's keys for storage, never for Snowflake
SfStorageTest::front($s3, 'DELETE', '/_front/requests');
is(sq(q{SELECT string_agg(step || ':' || ok, ',') FROM sfexport.test_storage('good')}),
	'configuration:true,write:true,stat:true,read back:true,delete:true,verify deleted:true',
	'test_storage on a superuser\'s server works with the host\'s keys');
cmp_ok(env_requests(), '>', 0, '... signed with them');

for my $dry ('true', 'false')
{
	$err = SfSnowflake::psql_error($node, "SELECT * FROM sfexport.setup_stage('good_nointeg', dry_run => $dry)");
	like($err, qr/ERROR:  HV00J: the database server's own AWS credentials cannot be given to Snowflake/,
		"setup_stage (dry run $dry) without a storage integration: the host's keys are refused");
	like($err, qr/HINT:  Create a storage integration in Snowflake .*ALTER SERVER good_nointeg OPTIONS \(ADD storage_integration/s,
		'... with a hint naming the storage integration and the mapping\'s keys');
	no_host_secret($err, "the refusal (dry run $dry)");
}
unlike(sql_log_text(), qr/NOINTEG_STAGE/, 'no CREATE STAGE for it reached Snowflake');

SfSnowflake::emu_query($emu, q{CREATE TABLE DB.PUBLIC.BADT ("id" NUMBER(10,0), "ssn" VARCHAR(5))});
my $dry = sq(q{SELECT string_agg(s, E'\n') FROM sfexport.setup('good', dry_run => true) s});
like($dry, qr/STORAGE_INTEGRATION = "SEC_S3_INT"/, 'with a storage integration the stage names it');
no_host_secret($dry, 'the dry run');
SfTest::append_evidence('dry_run_output.txt', $dry);
my $setup = sq(q{SELECT string_agg(s, E'\n') FROM sfexport.setup('good') s});
like($setup, qr/CREATE STAGE IF NOT EXISTS "DB"."PUBLIC"."SFEXPORT_STAGE" URL = 's3:\/\/sec\/good\/' STORAGE_INTEGRATION/,
	'setup() of the superuser\'s server creates the stage');
SfTest::append_evidence('dry_run_output.txt', $setup);

sq(q{INSERT INTO good_t SELECT g, 'good ' || g FROM generate_series(1, 30) g;
	INSERT INTO bad_t VALUES (1, '123-45-6789');
	SELECT sfexport.flush()});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 30 FROM sfexport.status WHERE foreign_table = 'good_t'::regclass}),
	'the superuser\'s rows are staged with the host\'s keys and loaded')
  or diag(sq('SELECT * FROM sfexport.files'));
is(SfSnowflake::emu_query($emu, 'SELECT COUNT(*) FROM DB.PUBLIC.GOOD')->{rows}[0][0], 30,
	'Snowflake has them');

my $g = sq(q{SELECT count(*) FROM sfexport.glue_sync('good', 'lake', dry_run => true)});
is($g, 1, 'glue_sync on the superuser\'s server reads Glue with the host\'s keys');
ok((grep { ($_->{access_key} // '') eq $env_akid } @{ SfGlue::requests($glue) }),
	'... signed with them');

# ---- medium 4: USAGE on a server does not choose the Snowflake table
$err = err_of('mallory', q{CREATE FOREIGN TABLE steal (ssn text) SERVER good OPTIONS (table 'BADT')});
like($err, qr/ERROR:  42501: permission denied to create or alter foreign table public.steal of server good/,
	'a role with USAGE on a server cannot point a foreign table at a Snowflake table');
like($err, qr/HINT:  Only the owner of server good or a superuser may create or alter foreign tables on it/,
	'... the hint says who may');
$err = err_of('mallory', q{CREATE FOREIGN TABLE badt (ssn text) SERVER good});
like($err, qr/ERROR:  42501: permission denied/, 'nor through the table\'s name');
is(sq(q{SELECT count(*) FROM pg_class WHERE relname IN ('steal', 'badt')}), 0,
	'neither table exists');

# ---- medium 5: error text only for those who may read the table
ok($node->poll_query_until('postgres',
	q{SELECT failed_files = 1 FROM sfexport.status WHERE foreign_table = 'bad_t'::regclass}),
	'the row too long for its column fails its file');
like(sq(q{SELECT last_error FROM sfexport.status WHERE foreign_table = 'bad_t'::regclass}),
	qr/123-45-6789/, 'the table\'s owner sees the error, with the row\'s value');
($rc, $out, $err) = as_role('mallory',
	q{SELECT failed_files || ':' || coalesce(last_error, '<hidden>') FROM sfexport.status
	  WHERE foreign_table = 'bad_t'::regclass});
is($out, '1:<hidden>', 'a role that cannot read the table sees the count, not the text');
unlike($out . $err, qr/123-45-6789/, '... nor the value anywhere');
$err = err_of('mallory', q{SELECT first_error FROM sfexport.files});
like($err, qr/ERROR:  42501: permission denied for table files/, 'nor in sfexport.files');

# ---- low 12: key files readable by others
my $loose = "$kdir/loose.pem";
copy($key->{priv}, $loose) or die "copy: $!";
chmod 0644, $loose;
$err = SfSnowflake::psql_error($node,
	qq{CREATE USER MAPPING FOR mallory SERVER good OPTIONS (user 'LOADER', private_key_file '$loose')});
like($err, qr/ERROR:  F0000: file ".*loose.pem" named by option "private_key_file" has group or world access/,
	'a world-readable private_key_file is refused at DDL time');
like($err, qr/HINT:  Restrict it to its owner: chmod 0600 /, '... with the chmod hint');
chmod 0600, $loose;
sq(qq{CREATE USER MAPPING FOR mallory SERVER good OPTIONS (user 'LOADER', private_key_file '$loose')});
chmod 0640, $loose;
$err = err_of('mallory', q{SELECT * FROM sfexport.test_connection('good')});
like($err, qr/ERROR:  F0000: file ".*loose.pem" named by option "private_key_file" has group or world access/,
	'a key file made group-readable later is refused at use');
chmod 0600, $loose;
is((split /\|/, (as_role('mallory', q{SELECT user_name FROM sfexport.test_connection('good')}))[1])[0],
	'LOADER', 'at 0600 it is used');
my $gcs_key = "$kdir/gcs.json";
PostgreSQL::Test::Utils::append_to_file($gcs_key, '{"client_email": "a@b", "private_key": "k"}');
chmod 0604, $gcs_key;
$err = SfSnowflake::psql_error($node,
	qq{ALTER USER MAPPING FOR mallory SERVER good OPTIONS (ADD gcs_credentials_file '$gcs_key')});
like($err, qr/ERROR:  F0000: file ".*gcs.json" named by option "gcs_credentials_file" has group or world access/,
	'so is a world-readable gcs_credentials_file');

# ---- low 13: CR/LF in values that go into HTTP headers
$err = SfSnowflake::psql_error($node,
	q{CREATE USER MAPPING FOR admins SERVER good OPTIONS (token E'tok\r\nX-Injected: 1', token_type 'OAUTH')});
like($err, qr/ERROR:  HV024: invalid value for option "token"\n.*DETAIL:  The value must not contain control characters/,
	'a token with CR/LF is refused at DDL time');
$err = err_of('mallory', qq{ALTER USER MAPPING FOR mallory SERVER evil OPTIONS (ADD aws_session_token E'x\\ny')});
like($err, qr/ERROR:  HV024: invalid value for option "aws_session_token"/,
	'so is an aws_session_token with a line feed');
# a value stored before the validator checked (0.1.0) is refused at use
sq(q{DROP USER MAPPING FOR mallory SERVER good;
	CREATE USER MAPPING FOR mallory SERVER good OPTIONS (token 'good-token-082', token_type 'OAUTH');
	UPDATE pg_user_mapping SET umoptions = ARRAY['token=tok' || E'\r\n' || 'X-Injected: 1', 'token_type=OAUTH']
	 WHERE umserver = (SELECT oid FROM pg_foreign_server WHERE srvname = 'good')
	   AND umuser = 'mallory'::regrole});
$err = err_of('mallory', q{SELECT * FROM sfexport.test_connection('good')});
like($err, qr/ERROR:  HV024: invalid value for option "token" in a user mapping for server "good"/,
	'a stored token with CR/LF is refused at use');
unlike($err, qr/X-Injected/, '... and not shown');
unlike(sql_log_text(), qr/X-Injected/, 'nothing reached Snowflake');

# ---- the host's credentials appear nowhere: SQL sent, logs, views
no_host_secret(sql_log_text(), 'the SQL Snowflake received');
$node->stop;
no_host_secret(slurp_file($node->logfile), 'the server log');

done_testing();
