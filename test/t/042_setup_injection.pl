# Hostile names through setup and the pipeline, against the emulator:
# schema, stage, file format, foreign table and column names with double
# and single quotes, dots, spaces, semicolons, comment markers and mixed
# case round-trip as identifiers: the emulator's catalog holds objects with
# exactly those names, no other object is created or dropped, rows load
# into the right columns, and credentials stay masked in the returned text
# whatever the names contain.
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

my $schema = q{my schema."x"; DROP TABLE VICTIM; --};
my $stg = q{St'age; DROP STAGE S --};
my $ff = q{f'f."dot" /* c */};
my $table = q{Tab"le; DROP TABLE "DB"."PUBLIC"."VICTIM" --};
my $secret = 'SECRETSECRETSECRETSECRET';
SfTest::register_secret('AWS secret for CREATE STAGE', $secret);

sub ident { my ($s) = @_; $s =~ s/"/""/g; return qq{"$s"}; }

SfSnowflake::emu_query($emu, q{CREATE TABLE DB.PUBLIC.VICTIM (a NUMBER)});

my $node = SfTest::new_node('inject', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', qq{
	SET log_min_error_statement = panic;
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema @{[ $lit->($schema) ]},
		stage @{[ $lit->($stg) ]}, file_format @{[ $lit->($ff) ]},
		location 'file://$stage/', flush_interval '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE FOREIGN TABLE @{[ ident($table) ]} (
		"Mixed Case" int,
		"a.b" text,
		"semi;colon" text,
		"quote""s" text,
		"it's" text OPTIONS (column_name 'x''); DROP TABLE VICTIM; --')
	) SERVER sf;
	CREATE SERVER s3 FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', stage 'a''b "AWS_SECRET_KEY = ',
		location 's3://bucket-x/p/');
	CREATE USER MAPPING FOR PUBLIC SERVER s3
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]},
			aws_access_key_id 'AKIDINJECT', aws_secret_access_key '$secret');
});

sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }
sub objects { return SfSnowflake::admin($emu, 'GET', 'objects')->{objects}; }

my $ran = sq(q{SELECT * FROM sfexport.setup('sf')});
like($ran, qr/^CREATE STAGE IF NOT EXISTS "DB"\."my schema\.""x""; DROP TABLE VICTIM; --"\."St'age; DROP STAGE S --" URL/m,
	'identifiers are quoted with their double quotes doubled');

my %have = map { join('|', $_->{kind}, @{ $_->{fqn} }) => $_ } @{ objects() };
my @want = ("FILE_FORMAT|DB|$schema|$ff", "STAGE|DB|$schema|$stg", "TABLE|DB|$schema|$table",
	"TABLE|DB|PUBLIC|VICTIM");
is_deeply([ sort keys %have ], [ sort @want ],
	'the emulator holds exactly the objects asked for, under their exact names');
is_deeply([ map { $_->{name} } @{ $have{"TABLE|DB|$schema|$table"}{columns} } ],
	[ 'Mixed Case', 'a.b', 'semi;colon', 'quote"s', q{x'); DROP TABLE VICTIM; --} ],
	'column names round-trip exactly');
is($have{"STAGE|DB|$schema|$stg"}{file_format}{format_name}[2] // '', $ff,
	'the stage names the file format exactly') or diag explain $have{"STAGE|DB|$schema|$stg"};

# rows load through COPY with these names
sq(qq{INSERT INTO @{[ ident($table) ]} VALUES (1, 'a', 'b', 'c', 'd'), (2, NULL, ';', '"', '''')});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 2 AND staged_files = 0 FROM sfexport.status}),
	'rows load into the hostile-named table')
  or diag($node->safe_psql('postgres', q{SELECT name, state, last_error FROM sfexport.files}));
my $rows = SfSnowflake::emu_query($emu,
	'SELECT "Mixed Case", "a.b", "semi;colon", "quote""s", "x\'); DROP TABLE VICTIM; --" FROM "DB".'
	  . ident($schema) . '.' . ident($table) . ' ORDER BY "Mixed Case"')->{rows};
is_deeply($rows, [ [ 1, 'a', 'b', 'c', 'd' ], [ 2, undef, ';', '"', q{'} ] ],
	'values arrive in the right columns');
%have = map { join('|', $_->{kind}, @{ $_->{fqn} }) => $_ } @{ objects() };
ok($have{'TABLE|DB|PUBLIC|VICTIM'}, 'the victim table was never dropped');
is(scalar(keys %have), 4, 'no object appeared or disappeared');

# credentials stay masked although the stage name holds a quote and a keyword
my $dry = sq(q{SELECT s FROM sfexport.setup_stage('s3', true) s OFFSET 1});
unlike($dry, qr/\Q$secret\E/, 'a quote in a name cannot unmask the secret');
like($dry, qr/CREDENTIALS = \(AWS_KEY_ID = '\*\*\*' AWS_SECRET_KEY = '\*\*\*'\)/, 'both values are masked');

$node->stop;
unlike(slurp_file($node->logfile), qr/\Q$secret\E/, 'no secret in the server log');
done_testing();
