# file_format 'json': a foreign table whose single column is jsonb (or
# json) is staged as NDJSON, one document per line, and loaded with
# FILE_FORMAT = (TYPE = JSON) into a VARIANT column that setup() creates;
# any other table is staged as one object per row and loaded by column
# name.  Staged files are valid NDJSON (json's own line breaks removed);
# snowpipe mode's pipe reads them with the same COPY;
# rows pending when file_format changes still load in their own format;
# a bad value is refused at DDL time (docs/json.md).
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;
sub sf { return SfSnowflake::emu_query($emu, $_[0])->{rows}; }
# values from the emulator are text already (characters, not UTF-8 bytes)
my $jtext = JSON::PP->new->allow_nonref;
sub dj { return $jtext->decode($_[0]); }

my $node = SfTest::new_node('jsonfmt', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n"
	  . "sfexport.snowpipe_poll_interval = 200ms\n");
my $sql = sub { return $node->safe_psql('postgres', $_[0]); };
$sql->(qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (account 'testacct', url '$emu->{url}',
	  database 'DB', location 'file://$stage/', flush_interval '1h', keep_files 'true');
	CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'LOADER',
	  private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE events (event jsonb) SERVER sf OPTIONS (table 'EVENTS', file_format 'json');
	CREATE FOREIGN TABLE raw_events (doc json) SERVER sf OPTIONS (table 'RAW_EVENTS', file_format 'json');
	CREATE FOREIGN TABLE piped (event jsonb) SERVER sf OPTIONS (table 'PIPED', file_format 'json',
	  load_mode 'snowpipe');
	CREATE FOREIGN TABLE wide (id int, name text, tags jsonb, ok boolean, score float8,
	  big numeric, at timestamptz, nothing text) SERVER sf OPTIONS (table 'WIDE', file_format 'json');
});

# ---- validation
my ($ret, $out, $err) = $node->psql('postgres',
	q{CREATE FOREIGN TABLE bad (e jsonb) SERVER sf OPTIONS (file_format 'xml')});
like($err, qr/ERROR:  invalid value for option "file_format": "xml"\nDETAIL:  .*\nHINT:  Valid values are csv and json/,
	q{file_format 'xml' is refused with a detail and hint});

# ---- setup creates the VARIANT column
my $setup = $sql->(q{SELECT * FROM sfexport.setup('sf')});
like($setup, qr/CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."EVENTS" \("event" VARIANT\)/,
	'setup() creates the events table with one VARIANT column');

# ---- rows
$sql->(q{INSERT INTO events SELECT jsonb_build_object('n', g, 'kind', 'click', 'tags', jsonb_build_array('a', g))
	FROM generate_series(1, 300) g;
	INSERT INTO events VALUES ('{"n": 301, "text": "line\nbreak \"quoted\" é"}'), (NULL);
	INSERT INTO raw_events VALUES (E'{\n  "n": 1,\n  "s": "two\\\\nlines"\n}'), (E'[1, 2,\r\n 3]');
	INSERT INTO wide VALUES (1, 'a "b"', '{"x": [1, 2]}', true, 1.5, 12345678901234567890.5,
	  '2026-01-02 03:04:05.678+00', NULL), (2, NULL, NULL, false, 'NaN', 0, NULL, 'x')});
is($sql->(q{SELECT sfexport.flush(wait => true, timeout => '60 s')}), 't', 'flush(wait) loads everything');

# ---- what Snowflake holds
is(sf(q{SELECT COUNT(*) FROM DB.PUBLIC.EVENTS})->[0][0], 302, 'all events arrived once');
my %ev = map { my $d = dj($_->[0]); ($d->{n} => $d) }
  grep { defined $_->[0] && $_->[0] ne 'null' } @{ sf(q{SELECT "event" FROM DB.PUBLIC.EVENTS}) };
is_deeply($ev{7}, { n => 7, kind => 'click', tags => [ 'a', 7 ] }, 'a document arrives as it was');
is($ev{301}{text}, "line\nbreak \"quoted\" \x{e9}", 'escapes and non-ASCII survive');
my @raw = map { dj($_->[0]) } @{ sf(q{SELECT "doc" FROM DB.PUBLIC.RAW_EVENTS}) };
is_deeply([ sort { ref $a cmp ref $b } @raw ], [ [ 1, 2, 3 ], { n => 1, s => "two\nlines" } ],
	'json values with line breaks between tokens arrive whole');
my $w = sf(q{SELECT "id", "name", "tags", "ok", "score", "big", "at", "nothing" FROM DB.PUBLIC.WIDE ORDER BY "id"});
is($w->[0][0], '1', 'a table of any columns: numbers by name');
is($w->[0][1], 'a "b"', 'text');
is_deeply(dj($w->[0][2]), { x => [ 1, 2 ] }, 'jsonb into a VARIANT column');
like($w->[0][3], qr/^(true|1)$/i, 'booleans');
is($w->[0][5], '12345678901234567890.5', 'numeric, exactly (staged as a string)');
ok(defined $w->[0][6], 'timestamptz');
ok(!defined $w->[0][7] && !defined $w->[1][1], 'NULL stays NULL');

# ---- the staged files are NDJSON
my @files = split /\n/, $sql->(q{SELECT name || ' ' || rows FROM sfexport.files ORDER BY file_id});
is(scalar(@files), 3, 'three files, one per table');
for my $f (@files)
{
	my ($name, $rows) = split / /, $f;
	like($name, qr/\.json\.gz$/, "$name is named .json.gz");
	my $text;
	gunzip("$stage/$name" => \$text) or die "gunzip $name: $GunzipError";
	my @lines = split /\n/, $text, -1;
	is(pop(@lines), '', "$name ends with a newline");
	is(scalar(@lines), $rows, "$name has one line per row");
	my $bad = grep { !eval { JSON::PP->new->utf8->allow_nonref->decode($_); 1 } } @lines;
	is($bad, 0, "every line of $name is one JSON text");
}
like(join("\n", map { $_->{statement} } @{ SfSnowflake::statement_log($emu, qr/COPY INTO "DB"."PUBLIC"."EVENTS"/) }),
	qr/COPY INTO "DB"."PUBLIC"."EVENTS" \("event"\) FROM \(SELECT \$1 FROM \@"DB"."PUBLIC"."SFEXPORT_STAGE"\) FILES = \('[^']+\.json\.gz'\) FILE_FORMAT = \(TYPE = JSON COMPRESSION = AUTO\) ON_ERROR = SKIP_FILE/,
	'the COPY of a document table reads $1 with TYPE = JSON');
like(join("\n", map { $_->{statement} } @{ SfSnowflake::statement_log($emu, qr/COPY INTO "DB"."PUBLIC"."WIDE"/) }),
	qr/COPY INTO "DB"."PUBLIC"."WIDE" FROM \@"DB"."PUBLIC"."SFEXPORT_STAGE" FILES = \('[^']+'\) FILE_FORMAT = \(TYPE = JSON COMPRESSION = AUTO\) MATCH_BY_COLUMN_NAME = CASE_SENSITIVE/,
	'the COPY of another table matches columns by name');

# ---- snowpipe mode: the pipe's COPY is the same JSON statement
$sql->(q{INSERT INTO piped SELECT jsonb_build_object('p', g) FROM generate_series(1, 20) g});
is($sql->(q{SELECT sfexport.flush('piped', wait => true, timeout => '60 s')}), 't',
	'snowpipe: flush(wait) returns once the pipe loaded the file');
is(sf(q{SELECT COUNT(*) FROM DB.PUBLIC.PIPED})->[0][0], 20, 'snowpipe: the documents arrived');
like(join("\n", map { $_->{statement} } @{ SfSnowflake::statement_log($emu, qr/CREATE PIPE/) }),
	qr/CREATE PIPE IF NOT EXISTS .* AS COPY INTO "DB"."PUBLIC"."PIPED" \("event"\) FROM \(SELECT \$1 FROM [^)]+\) FILE_FORMAT = \(TYPE = JSON COMPRESSION = AUTO\) ON_ERROR = SKIP_FILE/,
	'snowpipe: the pipe reads NDJSON');

# ---- file_format changed with rows pending: each row loads in its own format
$sql->(q{INSERT INTO events VALUES ('{"n": 1001}');
	ALTER FOREIGN TABLE events OPTIONS (SET file_format 'csv');
	INSERT INTO events VALUES ('{"n": 1002}')});
is($sql->(q{SELECT sfexport.flush('events', wait => true, timeout => '60 s')}), 't',
	'rows of both formats load');
is(sf(q{SELECT COUNT(*) FROM DB.PUBLIC.EVENTS})->[0][0], 304, 'both arrived');
is($sql->(q{SELECT string_agg(substring(name from '\.[a-z]+\.gz$'), ' ' ORDER BY file_id)
	FROM sfexport.files WHERE relid = 'events'::regclass}), '.json.gz .json.gz .csv.gz',
	'the row written as JSON went to a .json file, the later one to a .csv file');
is($sql->(q{SELECT count(*) FROM sfexport.files WHERE state <> 'loaded'}), '0', 'every file is loaded');

$node->stop;
done_testing();
