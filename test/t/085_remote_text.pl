# Text from Snowflake arrives in the database encoding (issue 14, low 9).
# Snowflake sends UTF-8 (JSON); a LATIN1 database stores and reports it
# converted: a character LATIN1 has becomes that character, one it lacks
# becomes \uXXXX; in a UTF8 database nothing changes.  Checked for result
# values (snowflake_query), a remote error message (errdetail) and the
# first_error of a file Snowflake rejected (stored by the worker).
use strict;
use warnings;
use utf8;
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
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }

my $node = SfTest::new_node('text',
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', q{CREATE DATABASE lat ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'
	TEMPLATE template0});
my $ddl = qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'file://$stage/', flush_interval '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int, v text) SERVER sf OPTIONS (table 'EVNUM');
};
$node->safe_psql('postgres', $ddl);
$node->safe_psql('lat', "CREATE EXTENSION sfexport; $ddl");

sf(q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () COMPRESSION = AUTO});
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
sf(q{CREATE TABLE DB.PUBLIC.WORDS ("v" VARCHAR)});
sf(q{CREATE TABLE DB.PUBLIC.EVNUM ("id" NUMBER, "v" VARCHAR(3))});	# "v" takes 3 characters
open my $fh, '>:encoding(UTF-8)', "$stage/words.csv" or die $!;
print $fh "café 漢字\n";
close $fh;
sf(q{COPY INTO DB.PUBLIC.WORDS FROM @DB.PUBLIC.SFEXPORT_STAGE FILES = ('words.csv')
	FILE_FORMAT = (FORMAT_NAME = 'DB.PUBLIC.SFEXPORT_CSV')});

# psql with the client in UTF-8; its output decoded as UTF-8
sub q_utf8
{
	my ($db, $sql) = @_;
	my ($ret, $out, $err) = $node->psql($db, "SET client_encoding = 'UTF8';\n$sql",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	utf8::decode($out);
	utf8::decode($err);
	return wantarray ? ($out, $err) : $out;
}

my $words = q{SELECT w[1] FROM sfexport.snowflake_query('sf', 'SELECT "v" FROM DB.PUBLIC.WORDS') w};
is(q_utf8('postgres', $words), 'café 漢字', 'UTF8 database: the value as Snowflake sent it');
is(q_utf8('lat', $words), 'café \\u6F22\\u5B57',
	'LATIN1 database: é converted, characters LATIN1 lacks as \\uXXXX (no mojibake)');

SfSnowflake::admin($emu, 'POST', 'faults', { action => '422', statement => 'SELECT 42', count => 2,
	code => '100038', sql_state => '22018', message => 'Échec: 漢字 ne va pas' });
my $fail = q{SELECT * FROM sfexport.snowflake_query('sf', 'SELECT 42')};
my (undef, $err) = q_utf8('postgres', $fail);
like($err, qr/DETAIL:  Snowflake error 100038 \(SQL state 22018\): Échec: 漢字 ne va pas/,
	'UTF8 database: the remote message in the detail as sent');
(undef, $err) = q_utf8('lat', $fail);
like($err, qr/ERROR:  22018: .*\nDETAIL:  Snowflake error 100038 \(SQL state 22018\): Échec: \\u6F22\\u5B57 ne va pas/,
	'LATIN1 database: converted, with Snowflake\'s SQLSTATE');

# the worker stores first_error of a file Snowflake rejected
$node->safe_psql('lat', q{SET client_encoding = 'UTF8'; INSERT INTO ev VALUES (1, 'éééé')});
ok($node->poll_query_until('lat', q{SELECT count(*) = 1 FROM sfexport.files WHERE state = 'failed'}),
	'LATIN1 database: the file with a value too long fails');
like(q_utf8('lat', q{SELECT first_error FROM sfexport.files}),
	qr/User character length limit \(3\) exceeded by string 'éééé'/,
	'its first_error (quoting the value) is stored in LATIN1 and reads back as sent');

$node->stop;
done_testing();
