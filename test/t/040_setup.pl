# Snowflake-side setup functions, against the emulator:
#  - dry runs return the exact statements (file format with every encoder
#    option and COMPRESSION = AUTO; stage with URL and storage integration
#    or CREDENTIALS incl. the session token; CREATE TABLE with the type
#    mapping of every supported type), with credentials masked, and send
#    nothing to Snowflake;
#  - real runs create the objects (the emulator's catalog shows them with
#    the names and definitions asked for); a second run is idempotent;
#  - GCS without storage_integration is refused with a hint naming
#    CREATE STORAGE INTEGRATION; GCS with one works; S3 without keys or
#    integration is refused;
#  - only the server owner or a superuser may run setup functions;
#  - setup() does the stage and every foreign table of the server;
#  - upper_case_identifiers upper-cases derived names, not explicit ones;
#  - no AWS secret reaches the server log or the returned text.
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
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $lit = \&SfSnowflake::lit;
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

my $secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRET';
my $token = 'FQoGZXIvYXdzEXAMPLESESSIONTOKEN';
SfTest::register_secret('AWS secret and session token for CREATE STAGE', $secret, $token);

my $node = SfTest::new_node('setup', conf => "log_statement = none\n");
$node->safe_psql('postgres', qq{
	SET log_min_error_statement = panic;
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'file://$stage/');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE SERVER s3keys FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'RAW',
		stage 'S3_STAGE', location 's3://my-bucket/exports/pg/');
	CREATE USER MAPPING FOR PUBLIC SERVER s3keys
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]},
			aws_access_key_id 'AKIAEXAMPLEKEYID', aws_secret_access_key '$secret',
			aws_session_token '$token');
	CREATE SERVER s3int FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB',
		location 's3://my-bucket/', storage_integration 'MY_S3_INT');
	CREATE USER MAPPING FOR PUBLIC SERVER s3int
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE SERVER s3none FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', location 's3://my-bucket/');
	CREATE USER MAPPING FOR PUBLIC SERVER s3none
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE SERVER gcs FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', location 'gcs://g-bucket/x/');
	CREATE SERVER gcsint FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', location 'gcs://g-bucket/x/',
		storage_integration 'GCS_INT');
	CREATE USER MAPPING FOR PUBLIC SERVER gcs
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE USER MAPPING FOR PUBLIC SERVER gcsint
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
});

sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }
sub nstatements { return scalar @{ SfSnowflake::statement_log($emu, qr/./) }; }
sub objects
{
	my ($kind) = @_;
	return SfSnowflake::admin($emu, 'GET', "objects?kind=$kind")->{objects};
}
sub object
{
	my ($kind, @fqn) = @_;
	my ($o) = grep { join("\x01", @{ $_->{fqn} }) eq join("\x01", @fqn) } @{ objects($kind) };
	return $o;
}

my $ff_opts = q{TYPE = CSV FIELD_DELIMITER = ',' RECORD_DELIMITER = '\n' SKIP_HEADER = 0 }
  . q{FIELD_OPTIONALLY_ENCLOSED_BY = '"' ESCAPE = NONE ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () }
  . q{EMPTY_FIELD_AS_NULL = TRUE ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE TRIM_SPACE = FALSE }
  . q{BINARY_FORMAT = HEX DATE_FORMAT = 'YYYY-MM-DD' TIME_FORMAT = AUTO TIMESTAMP_FORMAT = AUTO }
  . q{ENCODING = 'UTF8' COMPRESSION = AUTO};

# ---- dry runs: exact text, nothing sent
my $before = nstatements();
is(sq(q{SELECT * FROM sfexport.setup_stage('sf', dry_run => true)}),
	qq{CREATE FILE FORMAT IF NOT EXISTS "DB"."PUBLIC"."SFEXPORT_CSV" $ff_opts\n}
	  . qq{CREATE STAGE IF NOT EXISTS "DB"."PUBLIC"."SFEXPORT_STAGE" URL = 'file://$stage/' }
	  . q{FILE_FORMAT = (FORMAT_NAME = '"DB"."PUBLIC"."SFEXPORT_CSV"')},
	'dry run, local directory: file format and stage');
is(sq(q{SELECT s FROM sfexport.setup_stage('s3keys', true) s OFFSET 1}),
	q{CREATE STAGE IF NOT EXISTS "DB"."RAW"."S3_STAGE" URL = 's3://my-bucket/exports/pg/' }
	  . q{CREDENTIALS = (AWS_KEY_ID = '***' AWS_SECRET_KEY = '***' AWS_TOKEN = '***') }
	  . q{FILE_FORMAT = (FORMAT_NAME = '"DB"."RAW"."SFEXPORT_CSV"')},
	'dry run, S3 with keys: CREDENTIALS with the session token, masked');
is(sq(q{SELECT s FROM sfexport.setup_stage('s3int', true) s OFFSET 1}),
	q{CREATE STAGE IF NOT EXISTS "DB"."PUBLIC"."SFEXPORT_STAGE" URL = 's3://my-bucket/' }
	  . q{STORAGE_INTEGRATION = "MY_S3_INT" }
	  . q{FILE_FORMAT = (FORMAT_NAME = '"DB"."PUBLIC"."SFEXPORT_CSV"')},
	'dry run, S3 with a storage integration');
is(sq(q{SELECT s FROM sfexport.setup_stage('gcsint', true) s OFFSET 1}),
	q{CREATE STAGE IF NOT EXISTS "DB"."PUBLIC"."SFEXPORT_STAGE" URL = 'gcs://g-bucket/x/' }
	  . q{STORAGE_INTEGRATION = "GCS_INT" }
	  . q{FILE_FORMAT = (FORMAT_NAME = '"DB"."PUBLIC"."SFEXPORT_CSV"')},
	'dry run, GCS with a storage integration');
is(nstatements(), $before, 'dry runs send nothing to Snowflake');

my $err = SfSnowflake::psql_error($node, q{SELECT sfexport.setup_stage('gcs')});
like($err, qr/ERROR:  HV00J: a Google Cloud Storage stage needs a Snowflake storage integration/,
	'GCS without storage_integration is refused');
like($err, qr/HINT:  In Snowflake: CREATE STORAGE INTEGRATION SFEXPORT_GCS TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'GCS'.*STORAGE_ALLOWED_LOCATIONS = \('gcs:\/\/g-bucket\/x\/'\).*ALTER SERVER gcs OPTIONS \(ADD storage_integration/s,
	'the hint says what to create in Snowflake and how to name it');
$err = SfSnowflake::psql_error($node, q{SELECT sfexport.setup_stage('s3none')});
like($err, qr/ERROR:  HV00J: no way for Snowflake to read s3:\/\/my-bucket\/.*HINT:  Create a storage integration/s,
	'S3 without integration or keys is refused with a hint');

# ---- type mapping: every type of the encoding table
sq(q{
	CREATE TYPE mood AS ENUM ('sad', 'happy');
	CREATE DOMAIN money2 AS numeric(12,2);
	CREATE DOMAIN short_text AS varchar(20);
	CREATE FOREIGN TABLE alltypes (
		c_int2 int2, c_int4 int4, c_int8 int8, c_num numeric(10,2), c_num_any numeric,
		c_num_big numeric(50,10), c_num_neg numeric(5,-2), c_float4 float4, c_float8 float8,
		c_bool bool, c_text text, c_varchar varchar(12), c_char char(3), c_date date,
		c_time time, c_time3 time(3), c_timetz timetz, c_ts timestamp, c_tstz timestamptz,
		c_tstz0 timestamptz(0), c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb,
		c_int_arr int[], c_text_arr text[], c_bytea bytea, c_enum mood, c_dom money2,
		c_dom_text short_text, c_inet inet, c_name name, c_oid oid
	) SERVER sf OPTIONS (table 'ALLTYPES');
});
is(sq(q{SELECT * FROM sfexport.setup_table('alltypes', true)}),
	q{CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."ALLTYPES" (}
	  . q{"c_int2" NUMBER(5,0), "c_int4" NUMBER(10,0), "c_int8" NUMBER(19,0), }
	  . q{"c_num" NUMBER(10,2), "c_num_any" VARCHAR, "c_num_big" VARCHAR, "c_num_neg" NUMBER(7,0), }
	  . q{"c_float4" FLOAT, "c_float8" FLOAT, "c_bool" BOOLEAN, "c_text" VARCHAR, }
	  . q{"c_varchar" VARCHAR(12), "c_char" CHAR(3), "c_date" DATE, "c_time" TIME(6), }
	  . q{"c_time3" TIME(3), "c_timetz" VARCHAR, "c_ts" TIMESTAMP_NTZ(6), "c_tstz" TIMESTAMP_TZ(6), }
	  . q{"c_tstz0" TIMESTAMP_TZ(0), "c_interval" VARCHAR, "c_uuid" VARCHAR(36), }
	  . q{"c_json" VARIANT, "c_jsonb" VARIANT, "c_int_arr" ARRAY, "c_text_arr" ARRAY, }
	  . q{"c_bytea" BINARY, "c_enum" VARCHAR, "c_dom" NUMBER(12,2), "c_dom_text" VARCHAR(20), }
	  . q{"c_inet" VARCHAR, "c_name" VARCHAR, "c_oid" NUMBER(10,0))},
	'dry run CREATE TABLE: the documented mapping for every type');

# ---- real runs
my @ran = split /\n/, sq(q{SELECT * FROM sfexport.setup('sf')});
is(scalar(@ran), 3, 'setup(): file format, stage and the one table');
my $ffo = object('FILE_FORMAT', 'DB', 'PUBLIC', 'SFEXPORT_CSV');
ok($ffo, 'the file format exists');
is($ffo->{options}{COMPRESSION}, 'AUTO', 'file format: COMPRESSION = AUTO')
  or diag explain $ffo;
ok(exists $ffo->{options}{ESCAPE_UNENCLOSED_FIELD}
	  && ($ffo->{options}{ESCAPE_UNENCLOSED_FIELD} // 'NONE') eq 'NONE',
	'file format: ESCAPE_UNENCLOSED_FIELD = NONE (not the backslash default)')
  or diag explain $ffo;
my $st = object('STAGE', 'DB', 'PUBLIC', 'SFEXPORT_STAGE');
is($st->{url}, "file://$stage/", 'the stage points at the location');
my $tab = object('TABLE', 'DB', 'PUBLIC', 'ALLTYPES');
is(scalar @{ $tab->{columns} }, 33, 'the table has every column');
my %types = map { $_->{name} => $_->{type}{decl} } @{ $tab->{columns} };
is($types{c_tstz}, 'TIMESTAMP_TZ(6)', 'column types as mapped');

$before = nstatements();
my @again = split /\n/, sq(q{SELECT * FROM sfexport.setup('sf')});
is_deeply(\@again, \@ran, 'a second run returns the same statements');
my @log = @{ SfSnowflake::statement_log($emu, qr/./) };
splice @log, 0, $before;
ok(!(grep { $_->{status} ne 'succeeded' && $_->{status} ne 'success' && defined $_->{code} && $_->{http_status} != 200 } @log),
	'and every statement of the second run succeeds') or diag explain \@log;
ok(!(grep { $_->{statement} =~ /OR REPLACE/ } @{ SfSnowflake::statement_log($emu, qr/./) }),
	'nothing is ever replaced');
is(scalar @{ objects('TABLE') }, 1, 'still one table');

# real S3 stage with keys: the statement sent has them, the answer not
my @s3 = split /\n/, sq(q{SELECT * FROM sfexport.setup_stage('s3keys')});
unlike(join("\n", @s3), qr/\Q$secret\E|\Q$token\E|AKIAEXAMPLEKEYID/, 'returned text has no credentials');
my ($sent) = @{ SfSnowflake::statement_log($emu, qr/CREATE STAGE IF NOT EXISTS "DB"."RAW"/) };
like($sent->{statement}, qr/AWS_SECRET_KEY = '\Q$secret\E' AWS_TOKEN = '\Q$token\E'/,
	'Snowflake receives the credentials of the owner\'s mapping');
ok(object('STAGE', 'DB', 'RAW', 'S3_STAGE')->{credentials}, 'S3 stage created with credentials');
sq(q{SELECT * FROM sfexport.setup_stage('gcsint')});
ok(object('STAGE', 'DB', 'PUBLIC', 'SFEXPORT_STAGE'), 'GCS stage with integration ran (already existed: IF NOT EXISTS)');

# ---- privileges
sq(q{
	CREATE ROLE alice LOGIN; CREATE ROLE bob LOGIN;
	GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO alice;
	GRANT USAGE ON FOREIGN SERVER sf TO bob;
	CREATE SERVER alices FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '} . $emu->{url} . qq{', database 'DB', schema 'ALICE',
		location 'file://$stage/');
	ALTER SERVER alices OWNER TO alice;
	CREATE USER MAPPING FOR alice SERVER alices
		OPTIONS (user 'LOADER', private_key } . $lit->($key->{pem}) . q{);
	CREATE FOREIGN TABLE bobs (a int) SERVER sf;
	ALTER FOREIGN TABLE bobs OWNER TO bob;
});
$err = SfSnowflake::psql_error($node, q{SET ROLE bob; SELECT sfexport.setup_stage('sf', true)});
like($err, qr/ERROR:  42501: permission denied to set up Snowflake objects for server "sf".*HINT:  Run it as the owner of server "sf" or as a superuser/s,
	'a user of the server who does not own it is refused');
$err = SfSnowflake::psql_error($node, q{SET ROLE bob; SELECT sfexport.setup_table('bobs', true)});
like($err, qr/ERROR:  42501: permission denied/, 'owning the foreign table is not enough');
$err = SfSnowflake::psql_error($node, q{SET ROLE bob; SELECT sfexport.setup('sf', true)});
like($err, qr/ERROR:  42501: permission denied/, 'setup() is refused as well');
like(sq(q{SET ROLE alice; SELECT * FROM sfexport.setup_stage('alices')}),
	qr/CREATE STAGE IF NOT EXISTS "DB"."ALICE"."SFEXPORT_STAGE"/, 'the owner of a server may run setup');
ok(object('STAGE', 'DB', 'ALICE', 'SFEXPORT_STAGE'), 'and the stage exists');
$err = SfSnowflake::psql_error($node, q{SELECT sfexport.setup_table('pg_class', true)});
like($err, qr/ERROR:  42809: "pg_class" is not a foreign table/, 'setup_table wants a foreign table');

# ---- upper_case_identifiers
sq(q{
	CREATE SERVER up FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '} . $emu->{url} . qq{', database 'DB',
		location 'file://$stage/', upper_case_identifiers 'true');
	CREATE FOREIGN TABLE "Orders_2024" (id int, "customerName" text,
		"Keep Me" text OPTIONS (column_name 'Keep me'))
		SERVER up;
	CREATE FOREIGN TABLE explicit_t (a int) SERVER up OPTIONS (table 'Explicit_Name');
});
is(sq(q{SELECT * FROM sfexport.setup_table('"Orders_2024"', true)}),
	q{CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."ORDERS_2024" ("ID" NUMBER(10,0), "CUSTOMERNAME" VARCHAR, "Keep me" VARCHAR)},
	'upper_case_identifiers: derived table and column names upper-cased, column_name kept');
is(sq(q{SELECT * FROM sfexport.setup_table('explicit_t', true)}),
	q{CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."Explicit_Name" ("A" NUMBER(10,0))},
	'an explicit table option is used exactly as given');
$err = SfSnowflake::psql_error($node,
	q{ALTER SERVER up OPTIONS (SET upper_case_identifiers 'maybe')});
like($err, qr/invalid value for option "upper_case_identifiers"/, 'the option is validated');

# ---- no secret in the server log
my $logtext = slurp_file($node->logfile);
unlike($logtext, qr/\Q$secret\E|\Q$token\E/, 'no AWS secret or token in the server log');

$node->stop;
done_testing();
