# Setup functions with the export pipeline, against the emulator:
#  - sfexport.setup() creates everything the worker needs: rows of every
#    type of README's encoding table go through setup, the worker and COPY,
#    and the values read back from Snowflake are the values inserted
#    (numeric of any scale, NaN and infinities, offsets of timestamptz,
#    JSON objects as objects, arrays as arrays, bytes, intervals, ...);
#  - schema evolution: after ALTER FOREIGN TABLE ... ADD COLUMN the worker
#    adds the column in Snowflake (once per shape) before COPY; files staged
#    with the old shape still load; a dropped column just stops being
#    filled;
#  - an incompatible change (int column changed to text) fails that table
#    clearly, with the files kept staged and the reason in last_error,
#    while other tables keep loading; fixing the Snowflake column lets them
#    load.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $lit = \&SfSnowflake::lit;
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

my $node = SfTest::new_node('setpipe', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		warehouse 'WH', location 'file://$stage/', flush_interval '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE TYPE mood AS ENUM ('sad', 'happy');
	CREATE DOMAIN money2 AS numeric(12,2);
	CREATE FOREIGN TABLE alltypes (
		id int, c_int2 int2, c_int8 int8, c_num numeric(10,2), c_num_any numeric,
		c_num_big numeric(50,10), c_num_neg numeric(5,-2), c_float4 float4, c_float8 float8,
		c_bool bool, c_text text, c_varchar varchar(12), c_char char(3), c_date date,
		c_time time, c_timetz timetz, c_ts timestamp, c_tstz timestamptz,
		c_interval interval, c_uuid uuid, c_json json, c_jsonb jsonb,
		c_int_arr int[], c_text_arr text[], c_bytea bytea, c_enum mood, c_dom money2,
		c_inet inet, c_oid oid
	) SERVER sf OPTIONS (table 'ALLTYPES');
	CREATE FOREIGN TABLE evol (id int, a text) SERVER sf OPTIONS (table 'EVOL');
	CREATE FOREIGN TABLE incomp (id int, v int) SERVER sf OPTIONS (table 'INCOMP');
});

sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }
sub sf { my ($sql) = @_; return SfSnowflake::emu_query($emu, $sql); }
sub sfrows { my ($sql) = @_; return sf($sql)->{rows}; }
sub status
{
	my ($t) = @_;
	return sq(qq{SELECT pending_rows, staged_files, loaded_rows, failed_files
		FROM sfexport.status WHERE foreign_table = '$t'::regclass});
}

my $out = sq(q{SELECT * FROM sfexport.setup('sf')});
like($out, qr/CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."ALLTYPES"/, 'setup() creates the tables');
like($out, qr/CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."EVOL"/, 'of every foreign table');

# ---- every type, through the pipeline
sq(q{
	SET timezone = 'Asia/Kolkata';
	INSERT INTO alltypes VALUES
	 (1, -32768, -9223372036854775808, 12345678.91,
	  3.14159265358979323846264338327950288419716939937510582097494459,
	  1234567890123456789012345678901234567890.0123456789, 12345, 0.1, 1e308,
	  true, E'a "quoted", comma\nnewline \\\\ backslash \u00e9', 'hello', 'ab',
	  '2024-02-29', '23:59:59.999999', '10:00:00+05:30', '2024-01-02 03:04:05.678901',
	  '2024-01-02 03:04:05.5+00', '1 year 2 months 3 days 04:05:06.5',
	  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.5, "x"], "b": null}',
	  '{"k": {"n": 1}, "s": "t\"q"}', '{1,NULL,3}', '{"a,b","c\"d"}', '\x00ff10',
	  'happy', 10.5, '192.168.0.1/24', 4294967295),
	 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	 (3, 0, 0, -0.01, 'NaN', 0, -100, '-Infinity', 'NaN', false, '', '', '', '1970-01-01',
	  '00:00:00', '00:00:00-08:00', '1969-12-31 23:59:59', '2000-06-01 12:00:00-07', '-1 day -00:00:01',
	  '00000000-0000-0000-0000-000000000000', '[]', '"just a string"', '{}', '{}', '',
	  'sad', -0.5, '::1', 0),
	 (4, NULL, NULL, NULL, 'Infinity', NULL, NULL, 'Infinity', '-Infinity', NULL, NULL, NULL, NULL,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	 (5, NULL, NULL, NULL, '-0.000000000000000000000000000000000000000000000001', NULL, NULL,
	  NULL, 2.2250738585072014e-308, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 5 AND staged_files = 0 AND failed_files = 0 FROM sfexport.status WHERE foreign_table = 'alltypes'::regclass}),
	'rows of every type are loaded') or diag(sq(q{SELECT * FROM sfexport.files}));

my @cols = qw(id c_int2 c_int8 c_num c_num_any c_num_big c_num_neg c_float4 c_float8 c_bool
  c_text c_varchar c_char c_date c_time c_timetz c_ts c_tstz c_interval c_uuid c_json c_jsonb
  c_int_arr c_text_arr c_bytea c_enum c_dom c_inet c_oid);
my $rows = sfrows('SELECT ' . join(', ', map { qq{"$_"} } @cols) . ' FROM DB.PUBLIC.ALLTYPES ORDER BY "id"');
my %got;
for my $r (@$rows)
{
	my %h;
	@h{@cols} = @$r;
	$got{ $h{id} } = \%h;
}

# timestamptz keeps the instant and the inserting session's offset
# (Asia/Kolkata, +05:30 = 330 minutes).
# Values as the SQL API returns them (JSON v2): NUMBER as decimal text with
# the column's scale, FLOAT as text, DATE as days since the epoch, TIME and
# TIMESTAMP_NTZ as seconds with 9 decimals, TIMESTAMP_TZ as "<UTC seconds>
# <offset minutes + 1440>", BINARY as upper-case hex, VARIANT/ARRAY as JSON.
my %exp1 = (
	c_int2 => '-32768', c_int8 => '-9223372036854775808', c_num => '12345678.91',
	c_num_any => '3.14159265358979323846264338327950288419716939937510582097494459',
	c_num_big => '1234567890123456789012345678901234567890.0123456789',
	c_num_neg => '12300', c_bool => 'true',
	c_text => qq{a "quoted", comma\nnewline \\ backslash \x{e9}}, c_varchar => 'hello',
	c_char => 'ab ', c_date => '19782', c_time => '86399.999999000',
	c_timetz => '10:00:00+05:30', c_ts => '1704164645.678901000',
	c_tstz => '1704164645.500000000 1770', c_interval => 'P1Y2M3DT4H5M6.5S',
	c_uuid => 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', c_bytea => '00FF10', c_enum => 'happy',
	c_dom => '10.50', c_inet => '192.168.0.1/24', c_oid => '4294967295');
for my $c (sort keys %exp1)
{
	is($got{1}{$c}, $exp1{$c}, "row 1: $c arrives exactly");
}
is($got{1}{c_float4} + 0, 0.1, 'row 1: float4 0.1 arrives as the shortest decimal 0.1');
is($got{1}{c_float8} + 0, 1e308, 'row 1: float8 1e308 arrives');
is_deeply(decode_json($got{1}{c_json}), { a => [ 1, 2.5, 'x' ], b => undef }, 'json arrives as an object');
is_deeply(decode_json($got{1}{c_jsonb}), { k => { n => 1 }, s => 't"q' }, 'jsonb arrives as an object');
is_deeply(decode_json($got{1}{c_int_arr}), [ 1, undef, 3 ], 'int[] arrives as an array with its NULL');
is_deeply(decode_json($got{1}{c_text_arr}), [ 'a,b', 'c"d' ], 'text[] arrives as an array');

is_deeply([ grep { defined $got{2}{$_} } @cols ], ['id'], 'row 2: every NULL arrives as NULL');

my %exp3 = (c_int2 => '0', c_num => '-0.01', c_num_any => 'NaN', c_num_neg => '-100',
	c_bool => 'false', c_text => '', c_varchar => '', c_char => '   ', c_date => '0',
	c_time => '0.000000000', c_timetz => '00:00:00-08:00', c_ts => '-1.000000000',
	c_tstz => '959886000.000000000 1770', c_interval => 'P-1DT-1S', c_bytea => '',
	c_enum => 'sad', c_dom => '-0.50', c_inet => '::1', c_oid => '0');
for my $c (sort keys %exp3)
{
	is($got{3}{$c}, $exp3{$c}, "row 3: $c arrives exactly");
}
is($got{3}{c_float4}, '-inf', 'row 3: float4 -Infinity arrives');
is($got{3}{c_float8}, 'NaN', 'row 3: float8 NaN arrives');
is_deeply(decode_json($got{3}{c_json}), [], 'empty JSON array');
is(decode_json('[' . $got{3}{c_jsonb} . ']')->[0], 'just a string', 'JSON string scalar');
is_deeply(decode_json($got{3}{c_int_arr}), [], 'empty array');
is($got{4}{c_num_any}, 'Infinity', 'row 4: numeric Infinity arrives');
is($got{4}{c_float4}, 'inf', 'row 4: float4 Infinity');
is($got{4}{c_float8}, '-inf', 'row 4: float8 -Infinity');
is($got{5}{c_num_any}, '-0.000000000000000000000000000000000000000000000001',
	'row 5: numeric with 48 decimals arrives exactly');
is($got{5}{c_float8} + 0, 2.2250738585072014e-308, 'row 5: smallest normal double arrives');

# ---- schema evolution: ADD COLUMN, old staged files still load
sq(q{INSERT INTO evol VALUES (1, 'before')});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 1 FROM sfexport.status WHERE foreign_table = 'evol'::regclass}),
	'evol: first row loaded');
# hold COPYs into EVOL back so that a file of the old shape stays staged
SfSnowflake::admin($emu, 'POST', 'faults',
	{ action => '422', count => 1000, statement => 'COPY INTO "DB"."PUBLIC"."EVOL"',
	  code => '000603', message => 'held back by the test', sql_state => 'XX000' });
sq(q{INSERT INTO evol VALUES (2, 'old shape, staged')});
ok($node->poll_query_until('postgres',
	q{SELECT staged_files = 1 AND last_error IS NOT NULL FROM sfexport.status WHERE foreign_table = 'evol'::regclass}),
	'evol: an old-shape file is staged, not loaded');
sq(q{ALTER FOREIGN TABLE evol ADD COLUMN b numeric(8,3), ADD COLUMN "Tags" text[]});
sq(q{INSERT INTO evol VALUES (3, 'new shape', 1.5, '{x,y}')});
ok($node->poll_query_until('postgres',
	q{SELECT staged_files = 2 AND pending_rows = 0 FROM sfexport.status WHERE foreign_table = 'evol'::regclass}),
	'evol: the new-shape file is staged too');
SfSnowflake::admin($emu, 'DELETE', 'faults');
sq(q{SELECT sfexport.retry('evol'); SELECT sfexport.flush()});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 3 AND staged_files = 0 AND failed_files = 0 FROM sfexport.status WHERE foreign_table = 'evol'::regclass}),
	'evol: files of both shapes load') or diag(sq(q{SELECT name, state, last_error FROM sfexport.files WHERE relid = 'evol'::regclass}));
my $ev = sfrows(q{SELECT "id", "a", "b", "Tags" FROM DB.PUBLIC.EVOL ORDER BY "id"});
is_deeply([ map { [ @$_[0..2] ] } @$ev ],
	[ [ 1, 'before', undef ], [ 2, 'old shape, staged', undef ], [ 3, 'new shape', '1.500' ] ],
	'evol: the new column is filled by new rows only');
is_deeply(decode_json($ev->[2][3]), [ 'x', 'y' ], 'evol: the added array column is an ARRAY');
my ($tab) = grep { $_->{fqn}[2] eq 'EVOL' } @{ SfSnowflake::admin($emu, 'GET', 'objects?kind=TABLE')->{objects} };
is(join(',', map { "$_->{name} $_->{type}{decl}" } @{ $tab->{columns} }),
	'id NUMBER(10,0),a VARCHAR,b NUMBER(8,3),Tags ARRAY', 'evol: columns added with the mapped types');
my $alters = SfSnowflake::statement_log($emu, qr/^ALTER TABLE "DB"."PUBLIC"."EVOL" ADD COLUMN IF NOT EXISTS/);
is(scalar @$alters, 2, 'evol: one ALTER TABLE per new column');
sq(q{INSERT INTO evol VALUES (4, 'again', 2, '{}')});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 4 FROM sfexport.status WHERE foreign_table = 'evol'::regclass}), 'evol: more rows');
my $describes = scalar @{ SfSnowflake::statement_log($emu, qr/^DESCRIBE TABLE "DB"."PUBLIC"."EVOL"/) };
sq(q{INSERT INTO evol VALUES (5, 'and again', 3, '{}')});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 5 FROM sfexport.status WHERE foreign_table = 'evol'::regclass}), 'evol: more rows load');
is(scalar @{ SfSnowflake::statement_log($emu, qr/^DESCRIBE TABLE "DB"."PUBLIC"."EVOL"/) }, $describes,
	'evol: a known shape is not checked again');

# a dropped column is no longer filled; loading goes on
sq(q{ALTER FOREIGN TABLE evol DROP COLUMN a; INSERT INTO evol VALUES (6, 4, '{z}')});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 6 FROM sfexport.status WHERE foreign_table = 'evol'::regclass}),
	'evol: rows load after DROP COLUMN');
is_deeply(sfrows(q{SELECT "a", "b" FROM DB.PUBLIC.EVOL WHERE "id" = 6}), [ [ undef, '4.000' ] ],
	'evol: the dropped column is NULL in new rows');

# ---- incompatible change: fails that table only, clearly
sq(q{INSERT INTO incomp VALUES (1, 10)});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 1 FROM sfexport.status WHERE foreign_table = 'incomp'::regclass}),
	'incomp: first row loaded');
sq(q{ALTER FOREIGN TABLE incomp ALTER COLUMN v TYPE text; INSERT INTO incomp VALUES (2, 'abc')});
ok($node->poll_query_until('postgres',
	q{SELECT staged_files = 1 AND last_error IS NOT NULL FROM sfexport.status WHERE foreign_table = 'incomp'::regclass}),
	'incomp: the file stays staged with an error');
like(sq(q{SELECT last_error FROM sfexport.status WHERE foreign_table = 'incomp'::regclass}),
	qr/^Snowflake table "DB"."PUBLIC"."INCOMP" does not match the foreign table: column "v" is NUMBER\(10,0\), which cannot hold text values \(loaded as VARCHAR\) without loss$/,
	'incomp: last_error names the table, column and types');
is(scalar @{ sfrows(q{SELECT "id" FROM DB.PUBLIC.INCOMP}) }, 1, 'incomp: nothing of the new shape was loaded');
sq(q{INSERT INTO evol VALUES (7, 5, '{}')});
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 7 FROM sfexport.status WHERE foreign_table = 'evol'::regclass}),
	'other tables keep loading meanwhile');
# fix the cause in Snowflake
sf(q{CREATE OR REPLACE TABLE DB.PUBLIC.INCOMP ("id" NUMBER(10,0), "v" VARCHAR)});
sq(q{SELECT sfexport.retry('incomp'); SELECT sfexport.flush()});
ok($node->poll_query_until('postgres',
	q{SELECT staged_files = 0 AND loaded_files >= 2 FROM sfexport.status WHERE foreign_table = 'incomp'::regclass}),
	'incomp: after the column is fixed the file loads');
is_deeply(sfrows(q{SELECT "id", "v" FROM DB.PUBLIC.INCOMP}), [ [ 2, 'abc' ] ], 'incomp: the row arrived');

$node->stop;
done_testing();
