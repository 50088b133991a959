# README.md's account setup must work as written: the Snowflake SQL, the key
# pair commands, the IAM policies, the GCS steps and the Glue example are
# taken out of README.md and run against the stand-ins.
#
#  1. the openssl commands make the key pair and print its fingerprint;
#  2. the Snowflake SQL runs as ACCOUNTADMIN in the emulator; DESC
#     INTEGRATION gives the values for the trust policy;
#  3. the S3 front enforces the README's permissions policy for both the
#     credentials sfexport writes with and those the emulator reads with;
#  4. the PostgreSQL quick start runs with the user and key made in 1 and 2
#     (no user preconfigured in the emulator) and its row arrives;
#  5. what must fail fails: a write outside the policy's prefix, a stage
#     outside the integration's allowed locations, a role not granted to
#     the user, a role without grants, a JWT signed with another key;
#  6. the GCS paragraph (integration, server, insert) against the GCS
#     stand-in, the row arrives;
#  7. the Glue sync example against the Glue stand-in: the external table
#     appears once the README's grant is given.
#
# Only what README itself calls a placeholder or what points at real clouds
# is replaced: the public key body ('MIIBIjANBgkqh...'), the DESC values in
# the trust policy, the AWS keys ('AKIA...', '...'), /etc/postgresql/sfexport/
# and the postgres owner (the test's directory and user), and url / endpoint
# options that point the servers at the stand-ins.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfStorageTest;
use SfGlue;
use SfReadme;
use File::Temp qw(tempdir);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = SfTest::src_dir();
my $lit = \&SfSnowflake::lit;
my $kdir = tempdir('sf_readme_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $etc = "$kdir/etc/";

sub shell
{
	my ($cmd) = @_;
	my $out = `cd '$kdir' && $cmd 2>&1`;
	is($?, 0, "README command runs: $cmd") or diag($out);
	return $out;
}

# --- 1. key pair ---------------------------------------------------------
my $keys_sh = SfReadme::block(qr/Quick start/, 'sh', qr/openssl genpkey/);
my @key_cmds = SfReadme::commands($keys_sh);
cmp_ok(scalar(@key_cmds), '>=', 3, 'README has the key pair commands');
my $fp_out = '';
$fp_out = shell($_) for @key_cmds;    # the last one prints the fingerprint
ok(-s "$kdir/rsa_key.p8" && -s "$kdir/rsa_key.pub", 'the key pair exists');
like($fp_out, qr{^[A-Za-z0-9+/]{43}=$}, 'the fingerprint command prints a SHA-256 in base64');
my $pub_body = join '', grep { !/^-----/ } split /\n/,
  PostgreSQL::Test::Utils::slurp_file("$kdir/rsa_key.pub");

# --- stand-ins -------------------------------------------------------------
my $policy_json = SfReadme::block(qr/Quick start/, 'json', qr/"s3:PutObject"/);
my $policy_file = "$kdir/permissions-policy.json";
PostgreSQL::Test::Utils::append_to_file($policy_file, $policy_json);
ok(eval { decode_json($policy_json) }, 'the permissions policy is valid JSON');
my $s3 = SfStorageTest::start_s3(buckets => ['my-bucket'], region => 'eu-west-1',
	keys => { AKIAREADME => 'readme-secret', AKIASNOWFLAKE => 'snowflake-role-secret' },
	policies => { AKIAREADME => $policy_file, AKIASNOWFLAKE => $policy_file });
my $gcs = SfStorageTest::start_gcs(buckets => ['my-gcs-bucket']);
# the service account Snowflake reads GCS as (STORAGE_GCP_SERVICE_ACCOUNT)
system(SfTest::python(), "$src/test/emulators/lib/gcs_keys.py", "$kdir/snowflake-sa.json",
	"$gcs->{endpoint}/token", '--email', 'snowflake-reader@sfc-prod.iam.gserviceaccount.com') == 0
  or die 'gcs_keys.py failed';
chmod 0644, "$kdir/snowflake-sa.json";
SfStorageTest::emu($gcs, 'POST', '/_emulator/service-accounts',
	decode_json(PostgreSQL::Test::Utils::slurp_file("$kdir/snowflake-sa.json")));
my $emu = SfSnowflake::start_emulator(account => 'MYORG-MYACCOUNT',
	args => [ '--s3-endpoint', $s3->{endpoint}, '--s3-access-key', 'AKIASNOWFLAKE',
		'--s3-secret-key', 'snowflake-role-secret', '--s3-region', 'eu-west-1',
		'--gcs-endpoint', $gcs->{endpoint}, '--gcs-credentials', "$kdir/snowflake-sa.json" ]);
# the Glue statement of README, enforced for the same credentials
my $glue_policy = SfReadme::block(qr/Functions/, 'json', qr/glue:GetTables/);
PostgreSQL::Test::Utils::append_to_file("$kdir/glue-policy.json", $glue_policy);
my $glue = SfGlue::start_emulator(keys => { AKIAREADME => 'readme-secret' }, region => 'eu-west-1',
	policies => { AKIAREADME => "$kdir/glue-policy.json" });

# Snowflake as ACCOUNTADMIN (the emulator's admin endpoint); returns the answer
sub sf_admin
{
	my ($sql) = @_;
	return SfSnowflake::admin($emu, 'POST', 'query',
		{ statement => $sql, user => 'ADMIN', role => 'ACCOUNTADMIN' });
}

# DESC output as property => value (DESC INTEGRATION: property_value is
# the third column; DESC USER: value is the second)
sub props
{
	my ($r, $col) = @_;
	return { map { $_->[0] => $_->[ $col // 2 ] } @{ $r->{rows} } };
}

# --- 2. Snowflake account SQL --------------------------------------------
my $account_sql = SfReadme::block(qr/Quick start/, 'sql', qr/CREATE ROLE/);
like($account_sql, qr/'MIIBIjANBgkqh\.\.\.'/, 'the public key placeholder is where README says');
$account_sql =~ s/'MIIBIjANBgkqh\.\.\.'/'$pub_body'/;
my %desc;
my $n = 0;
for my $stmt (SfReadme::statements($account_sql))
{
	my $r = sf_admin($stmt);
	ok(!$r->{error}, 'README Snowflake statement runs: ' . (split /\n/, $stmt)[0])
	  or diag(explain $r->{error});
	$desc{$1} = props($r) if $stmt =~ /^DESC INTEGRATION (\w+)/;
	$n++;
}
cmp_ok($n, '>=', 12, "ran $n Snowflake statements");
my $d = $desc{SFEXPORT_S3} // {};
like($d->{STORAGE_AWS_IAM_USER_ARN} // '', qr/^arn:aws:iam::\d{12}:user\/\S+$/,
	'DESC INTEGRATION shows STORAGE_AWS_IAM_USER_ARN');
like($d->{STORAGE_AWS_EXTERNAL_ID} // '', qr/^MYORG-MYACCOUNT_SFCRole=\S+$/,
	'DESC INTEGRATION shows STORAGE_AWS_EXTERNAL_ID');
is($d->{STORAGE_ALLOWED_LOCATIONS}, 's3://my-bucket/sfexport/', 'allowed locations as given');

my $user = props(SfSnowflake::emu_query($emu, 'DESC USER SFEXPORT'), 1);
my $fp = $fp_out =~ s/\s+//gr;
is($user->{RSA_PUBLIC_KEY_FP}, "SHA256:$fp",
	"DESC USER's RSA_PUBLIC_KEY_FP is the README's openssl fingerprint");
is($user->{DEFAULT_ROLE}, 'SFEXPORT_LOADER', 'the user has its default role');

# the trust policy, filled with the DESC INTEGRATION values
my $trust = SfReadme::block(qr/Quick start/, 'json', qr/sts:AssumeRole/);
ok($trust =~ s/<STORAGE_AWS_IAM_USER_ARN>/$d->{STORAGE_AWS_IAM_USER_ARN}/
	  && $trust =~ s/<STORAGE_AWS_EXTERNAL_ID>/$d->{STORAGE_AWS_EXTERNAL_ID}/,
	'the trust policy has both placeholders');
my $tp = eval { decode_json($trust) };
ok($tp, 'the trust policy is valid JSON') or diag($@);
is($tp->{Statement}[0]{Principal}{AWS}, $d->{STORAGE_AWS_IAM_USER_ARN}, 'it trusts Snowflake\'s IAM user');
is($tp->{Statement}[0]{Condition}{StringEquals}{'sts:ExternalId'}, $d->{STORAGE_AWS_EXTERNAL_ID},
	'with the external id');

# --- 3./4. PostgreSQL quick start with the new user and key ------------------
my $install = SfReadme::block(qr/Quick start/, 'sh', qr/install .*rsa_key\.p8/);
my $me = getpwuid($<);
my $grp = getgrgid($();
for my $cmd (SfReadme::commands($install))
{
	$cmd =~ s{/etc/postgresql/sfexport/}{$etc}g;
	$cmd =~ s/-o postgres -g postgres/-o $me -g $grp/;
	shell($cmd);
}
ok(-r "${etc}rsa_key.p8", 'the private key is installed');

my $node = SfTest::new_node('readme_account', no_extension => 1,
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', 'CREATE ROLE app');

sub pg_stmt
{
	my ($stmt) = @_;
	$stmt =~ s{/etc/postgresql/sfexport/}{$etc}g;
	$stmt =~ s/'AKIA\.\.\.'/'AKIAREADME'/;
	$stmt =~ s/aws_secret_access_key '\.\.\.'/aws_secret_access_key 'readme-secret'/;
	$stmt =~ s/(storage_integration 'SFEXPORT_S3')/$1, url '$emu->{url}', endpoint '$s3->{endpoint}'/;
	$stmt =~ s/(storage_integration 'SFEXPORT_GCS')/$1, url '$emu->{url}', endpoint '$gcs->{endpoint}'/;
	return $stmt;
}

my $quick = SfReadme::block(qr/Quick start/, 'sql', qr/CREATE EXTENSION sfexport/);
$n = 0;
for my $stmt (SfReadme::statements($quick))
{
	my ($rc, $out, $err) = $node->psql('postgres', pg_stmt($stmt));
	is($rc, 0, 'README statement runs: ' . (split /\n/, $stmt)[0]) or diag($err);
	if ($stmt =~ /test_storage/)
	{
		unlike($out, qr/\|f\|/, 'test_storage: every step ok') or diag($out);
	}
	$n++;
}
cmp_ok($n, '>=', 10, "ran $n statements of the quick start");
is($node->safe_psql('postgres', q{SELECT role || ' ' || warehouse || ' ' || user_name
	FROM sfexport.test_connection('snowflake')}), 'SFEXPORT_LOADER LOAD_WH SFEXPORT',
	'the session has the granted role and warehouse');
is($node->safe_psql('postgres', q{SELECT sfexport.public_key_fingerprint('snowflake')}),
	"SHA256:$fp", 'public_key_fingerprint matches DESC USER');

$node->safe_psql('postgres', 'SELECT sfexport.flush()');
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 1 AND pending_rows = 0 FROM sfexport.status WHERE foreign_table = 'events'::regclass}),
	'the quick start row arrives in Snowflake')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));
my $objs = SfSnowflake::admin($emu, 'GET', 'objects?kind=TABLE')->{objects};
my ($events) = grep { join('.', @{ $_->{fqn} }) eq 'ANALYTICS.RAW.EVENTS' } @$objs;
is($events && $events->{owner}, 'SFEXPORT_LOADER', 'setup made the table as SFEXPORT_LOADER');
is(SfSnowflake::emu_query($emu, q{SELECT COUNT(*), MAX(KIND) FROM ANALYTICS.RAW.EVENTS},
		database => 'ANALYTICS', schema => 'RAW')->{rows}[0][0],
	1, 'the emulated Snowflake table has the row');
my $front = SfStorageTest::front($s3, 'GET', '/_front/stats');
is($front->{policy_denied}, 0, 'the policy allowed everything the pipeline did')
  or diag(explain $front);

# a table that existed before: README's GRANT for it
my ($grant_existing) = SfReadme::section(qr/Quick start/) =~ /`(GRANT INSERT, SELECT ON TABLE \.\.\. TO ROLE\s+SFEXPORT_LOADER)`/;
ok($grant_existing, 'README has the GRANT for an existing table');
ok(!sf_admin(q{CREATE TABLE ANALYTICS.RAW.LEGACY_EVENTS (ID NUMBER(19,0), KIND VARCHAR)})->{error},
	'an existing table, owned by ACCOUNTADMIN');
$node->safe_psql('postgres', q{CREATE FOREIGN TABLE legacy (id bigint, kind text) SERVER snowflake
	OPTIONS (table 'LEGACY_EVENTS')});
like(SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.setup_table('legacy')}),
	qr/does not exist or not authorized/, 'the loader cannot see it before the grant');
$grant_existing =~ s/\s+/ /g;
$grant_existing =~ s/\.\.\./ANALYTICS.RAW.LEGACY_EVENTS/;
ok(!sf_admin($grant_existing)->{error}, "README grant runs: $grant_existing");
$node->safe_psql('postgres', q{SELECT * FROM sfexport.setup_table('legacy');
	INSERT INTO legacy VALUES (7, 'import'); SELECT sfexport.flush()});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 1 FROM sfexport.status WHERE foreign_table = 'legacy'::regclass}),
	'rows load into the existing table after the grant')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));

# --- 5. what must fail -----------------------------------------------------
my ($server_opts) = $quick =~ /CREATE SERVER snowflake FOREIGN DATA WRAPPER sfexport OPTIONS \((.*?)\);/s;
my $opts_outside = pg_stmt($server_opts) =~ s{s3://my-bucket/sfexport/}{s3://my-bucket/elsewhere/}r;
$node->safe_psql('postgres', qq{
	CREATE SERVER outside FOREIGN DATA WRAPPER sfexport OPTIONS ($opts_outside, stage 'OUTSIDE_STAGE');
	CREATE USER MAPPING FOR CURRENT_USER SERVER outside OPTIONS (user 'SFEXPORT',
		private_key_file '${etc}rsa_key.p8', aws_access_key_id 'AKIAREADME',
		aws_secret_access_key 'readme-secret');
	CREATE FOREIGN TABLE outside_t (id int) SERVER outside OPTIONS (table 'EVENTS');
});
my $probe = $node->safe_psql('postgres',
	q{SELECT step || ':' || ok || ':' || coalesce(detail, '') FROM sfexport.test_storage('outside')});
like($probe, qr/:false:.*AccessDenied/s, 'a write outside the policy prefix is denied by IAM');
like($probe, qr{not authorized to perform: s3:PutObject on resource: "arn:aws:s3:::my-bucket/elsewhere/},
	'... with the action and resource')
  or diag($probe);
cmp_ok(SfStorageTest::front($s3, 'GET', '/_front/stats')->{policy_denied}, '>', 0,
	'the front counted the denial');
like(SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.setup_stage('outside')}),
	qr/not allowed by integration 'SFEXPORT_S3'/,
	'a stage outside STORAGE_ALLOWED_LOCATIONS is refused');

# a user the role was never granted to
for my $s (q{CREATE USER SFEXPORT_OTHER TYPE = SERVICE DEFAULT_ROLE = SFEXPORT_LOADER}
	. " RSA_PUBLIC_KEY = '$pub_body'", q{CREATE ROLE BARE_ROLE},
	q{GRANT ROLE BARE_ROLE TO USER SFEXPORT_OTHER})
{
	my $r = sf_admin($s);
	ok(!$r->{error}, "admin: $s") or diag(explain $r->{error});
}
my $opts_main = pg_stmt($server_opts);
$node->safe_psql('postgres', qq{
	CREATE SERVER nogrant FOREIGN DATA WRAPPER sfexport OPTIONS ($opts_main, stage 'NOGRANT_STAGE');
	CREATE USER MAPPING FOR CURRENT_USER SERVER nogrant OPTIONS (user 'SFEXPORT_OTHER',
		private_key_file '${etc}rsa_key.p8', aws_access_key_id 'AKIAREADME',
		aws_secret_access_key 'readme-secret');
	CREATE FOREIGN TABLE nogrant_t (id int) SERVER nogrant OPTIONS (table 'EVENTS');
});
like(SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.test_connection('nogrant')}),
	qr/Role 'SFEXPORT_LOADER' specified in the connect string is not granted to this user/,
	'a user without GRANT ROLE cannot use the role');
$node->safe_psql('postgres', q{ALTER SERVER nogrant OPTIONS (SET role 'BARE_ROLE')});
is($node->safe_psql('postgres',
		q{SELECT role || ':' || coalesce(warehouse, 'none') FROM sfexport.test_connection('nogrant')}),
	'BARE_ROLE:none', 'a role without USAGE on the warehouse has no warehouse');
like(SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.setup('nogrant')}),
	qr/Database 'ANALYTICS' does not exist or not authorized/,
	'a role without the README grants cannot set up');
like(SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.snowflake_query('nogrant',
		'SELECT COUNT(*) FROM ANALYTICS.RAW.EVENTS')}),
	qr/does not exist or not authorized|No active warehouse/,
	'nor read the table');

# a JWT signed with a key Snowflake does not have for the user
my $other = SfSnowflake::gen_key($kdir, 'other');
$node->safe_psql('postgres', qq{
	CREATE SERVER wrongkey FOREIGN DATA WRAPPER sfexport OPTIONS ($opts_main);
	CREATE USER MAPPING FOR CURRENT_USER SERVER wrongkey OPTIONS (user 'SFEXPORT',
		private_key_file '$other->{priv}');
});
like(SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.test_connection('wrongkey')}),
	qr/28000.*JWT token is invalid/s, 'a JWT signed with another key is rejected');
# ... and the key of another user does not open this one
like(SfSnowflake::admin($emu, 'GET', 'users')->{users}{SFEXPORT}[0], qr/^\Q$user->{RSA_PUBLIC_KEY_FP}\E$/,
	'the emulator authenticates SFEXPORT with the key from CREATE USER');

# --- 6. Google Cloud Storage ------------------------------------------------
my ($gcs_sql, $gcs_pg) = map { SfReadme::block(qr/Quick start/, 'sql', $_) }
  (qr/STORAGE_PROVIDER = 'GCS'/, qr/CREATE SERVER snowflake_gcs/);
my %gdesc;
for my $stmt (SfReadme::statements($gcs_sql))
{
	my $r = sf_admin($stmt);
	ok(!$r->{error}, 'README GCS Snowflake statement runs: ' . (split /\n/, $stmt)[0])
	  or diag(explain $r->{error});
	%gdesc = %{ props($r) } if $stmt =~ /^DESC INTEGRATION/;
}
is($gdesc{STORAGE_GCP_SERVICE_ACCOUNT}, 'snowflake-reader@sfc-prod.iam.gserviceaccount.com',
	'DESC INTEGRATION names the service account Snowflake reads GCS as');
# sfexport's own service-account key where the README puts it
PostgreSQL::Test::Utils::append_to_file("${etc}gcs-key.json",
	PostgreSQL::Test::Utils::slurp_file($gcs->{key_file}));
chmod 0600, "${etc}gcs-key.json";	# README: install ... -m 600, like the private key
for my $stmt (SfReadme::statements($gcs_pg))
{
	my ($rc, $out, $err) = $node->psql('postgres', pg_stmt($stmt));
	is($rc, 0, 'README GCS statement runs: ' . (split /\n/, $stmt)[0]) or diag($err);
	if ($stmt =~ /test_storage/)
	{
		unlike($out, qr/\|f\|/, 'test_storage on GCS: every step ok') or diag($out);
	}
}
$node->safe_psql('postgres', 'SELECT sfexport.flush()');
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 1 AND pending_rows = 0 FROM sfexport.status WHERE foreign_table = 'page_views'::regclass}),
	'the GCS row arrives in Snowflake')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));
is(SfSnowflake::emu_query($emu, q{SELECT URL FROM ANALYTICS.RAW.PAGE_VIEWS},
		database => 'ANALYTICS', schema => 'RAW')->{rows}[0][0],
	'/pricing', 'the emulated Snowflake table has it');

# --- 7. Glue sync -------------------------------------------------------------
SfGlue::write_catalog($glue, {
	databases => [ { Name => 'analytics__raw' }, { Name => 'finance__raw' } ],
	tables => { analytics__raw => [ SfGlue::table('clicks', 'parquet',
		's3://my-bucket/sfexport/lake/clicks/', [ id => 'bigint', url => 'string' ],
		partition_keys => [ dt => 'date' ]) ],
		finance__raw => [ SfGlue::table('ledger', 'parquet',
		's3://my-bucket/sfexport/lake/ledger/', [ id => 'bigint' ]) ] },
	partitions => {} });
$node->safe_psql('postgres', qq{ALTER SERVER snowflake OPTIONS (ADD glue_endpoint '$glue->{url}')});
my @glue_runs = SfReadme::statements(SfReadme::block(qr/Functions/, 'sql', qr/glue_sync/));
is(scalar(@glue_runs), 2, 'README has the dry run and the real run');
like($node->safe_psql('postgres', "SELECT glue_table || ':' || action || ':' || reason FROM ($glue_runs[1]) s"),
	qr/^clicks:skipped:.*Insufficient privileges to operate on schema 'RAW'/s,
	'without CREATE EXTERNAL TABLE Snowflake refuses the table');
for my $stmt (SfReadme::statements(SfReadme::block(qr/Functions/, 'sql', qr/GRANT CREATE EXTERNAL TABLE/)))
{
	my $r = sf_admin($stmt);
	ok(!$r->{error}, "README Glue grant runs: $stmt") or diag(explain $r->{error});
}
is($node->safe_psql('postgres', "SELECT string_agg(glue_table || ':' || action, ',') FROM ($glue_runs[0]) s"),
	'clicks:created', 'the dry run plans the table');
ok(!grep({ $_->{fqn}[2] eq 'CLICKS' } @{ SfSnowflake::admin($emu, 'GET', 'objects?kind=EXTERNAL_TABLE')->{objects} }),
	'and changes nothing');
is($node->safe_psql('postgres', "SELECT string_agg(glue_table || ':' || action, ',') FROM ($glue_runs[1]) s"),
	'clicks:created', 'the sync creates the table');
my ($ext) = grep { join('.', @{ $_->{fqn} }) eq 'ANALYTICS.RAW.CLICKS' }
  @{ SfSnowflake::admin($emu, 'GET', 'objects?kind=EXTERNAL_TABLE')->{objects} };
ok($ext, 'the external table appears in Snowflake');
is($ext && $ext->{owner}, 'SFEXPORT_LOADER', 'owned by the loader role');
is($node->safe_psql('postgres', "SELECT string_agg(glue_table || ':' || action, ',') FROM ($glue_runs[1]) s"),
	'clicks:unchanged', 'a second run changes nothing');
like(SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.glue_sync('snowflake', 'finance__raw')}),
	qr/AccessDeniedException.*glue:GetTables on resource: arn:aws:glue:eu-west-1:123456789012:database\/finance__raw/s,
	'a Glue database outside the README policy is denied');

$node->stop;
done_testing();
