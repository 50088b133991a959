# sfexport.glue_sync against the Glue emulator and the Snowflake emulator:
#  - a dry run shows what would be done and changes nothing;
#  - CSV tables get positional value:cN columns, JSON/Parquet/ORC/Avro get
#    value:"name"; nested types become ARRAY / OBJECT / VARIANT;
#  - hive-style and plain partition directories give partition columns
#    computed from METADATA$FILENAME, listed in PARTITION BY;
#  - locations are matched to the server's stage or a glue_stage_map stage;
#  - unsupported formats, uncovered locations, malformed types, views and
#    unusable names are skipped with a reason;
#  - the format comes from classification, else SerDe, else InputFormat;
#  - a second run changes nothing; a changed table is re-created; a table
#    gone from Glue is dropped only with drop_missing;
#  - target database and schema from <database>__<schema> or arguments;
#  - GetTables is paged with NextToken; the table pattern filters, and is
#    sent as GetTables' Expression where a regular expression selects at
#    least the same names under every reading of "regular expression
#    pattern" (whole name, anywhere in the name, Hive's "*" and "|");
#  - JSON/Parquet/... columns are read with GET_IGNORE_CASE (Hive matches
#    names case-insensitively, Glue keeps them lower-case), or with the
#    exact key from the OpenX SerDe's mapping.* / case.insensitive=false;
#  - the partition layout is read from every page of GetPartitions;
#  - Hive-escaped partition values (%3A, %2F, %25, ...) are unescaped, and
#    escaped key names are recognised;
#  - hostile names are quoted and cannot inject SQL.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfGlue;
use File::Temp qw(tempdir);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $glue = SfGlue::start_emulator(keys => { AKIDGLUE => 'glue-secret-050' }, region => 'eu-west-1');
my $lit = \&SfSnowflake::lit;

# Hive's escaped characters (FileUtils.escapePathName; Windows adds space < > |)
# and the REPLACE chain that undoes them, "%25" last.
sub unescaped
{
	my ($expr) = @_;
	my @codes = grep { $_ != 0x25 } ((1 .. 0x1F), 0x7F, map { ord } split //, qq("#'*/:=?\\{[]^ <>|));
	my @pairs;
	for my $c (sort { $a <=> $b } @codes)
	{
		my $hex = sprintf('%02X', $c);
		push @pairs, "'%$hex', CHR($c)";
		push @pairs, "'%" . lc($hex) . "', CHR($c)" if $hex =~ /[A-F]/;
	}
	push @pairs, "'%25', CHR(37)";
	return ('REPLACE(' x @pairs) . $expr . join('', map { ", $_)" } @pairs);
}

my $node = SfTest::new_node('glue', conf => "log_statement = none\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 's3://lake/warehouse/', glue_endpoint '$glue->{url}',
		glue_region 'eu-west-1', glue_stage_map 'LOGS.RAW.LOGS_STAGE=s3://logs-bucket/raw/');
	CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'LOADER',
		private_key @{[ $lit->($key->{pem}) ]},
		aws_access_key_id 'AKIDGLUE', aws_secret_access_key 'glue-secret-050');
});
sub sf { my ($sql) = @_; return SfSnowflake::emu_query($emu, $sql); }
sf(q{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 's3://lake/warehouse/'});
sf(q{CREATE STAGE LOGS.RAW.LOGS_STAGE URL = 's3://logs-bucket/raw/'});

my $W = 's3://lake/warehouse';
my %catalog = (
	databases => [ { Name => 'analytics__raw' }, { Name => 'bulk' } ],
	tables => {
		analytics__raw => [
			SfGlue::table('orders', 'csv', "$W/orders", [ id => 'bigint', amount => 'decimal(10,2)',
					note => 'string', items => 'array<string>' ],
				partition_keys => [ dt => 'date' ],
				parameters => { 'skip.header.line.count' => '1' },
				serde => 'org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe',
				serde_parameters => { 'field.delim' => '|' }),
			SfGlue::table('events', 'json', "$W/events/", [ id => 'bigint',
					'user name' => 'varchar(100)',
					payload => 'struct<a:int,b:array<map<string,decimal(5,2)>>>',
					tags => 'array<string>', attrs => 'map<string,string>',
					u => 'uniontype<int,string>', at => 'timestamp', ok => 'boolean',
					raw => 'binary', f => 'float', d => 'double', c => 'char(2)', day => 'date',
					s => 'smallint', t => 'tinyint', i => 'int' ],
				partition_keys => [ year => 'string', month => 'int' ]),
			SfGlue::table('clicks', 'parquet', 's3://logs-bucket/raw/clicks/', [ id => 'bigint' ]),
			SfGlue::table('by_serde', undef, "$W/by_serde/", [ id => 'bigint' ],
				serde => 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe'),
			SfGlue::table('by_input', undef, "$W/by_input/", [ id => 'bigint' ],
				input_format => 'org.apache.hadoop.hive.ql.io.orc.OrcInputFormat'),
			SfGlue::table('avro_t', 'avro', "$W/deep/er/avro_t/", [ id => 'bigint' ],
				partition_keys => [ region => 'string' ]),
			SfGlue::table('legacy', 'xml', "$W/legacy/", [ id => 'bigint' ]),
			SfGlue::table('elsewhere', 'parquet', 's3://other-bucket/x/', [ id => 'bigint' ]),
			SfGlue::table('broken', 'parquet', "$W/broken/", [ id => 'bigint', x => 'strukt<a:int>' ]),
			SfGlue::table('a_view', undef, undef, [ id => 'bigint' ], table_type => 'VIRTUAL_VIEW'),
			SfGlue::table('odd path', 'parquet', "$W/odd path/", [ id => 'bigint' ]),
			SfGlue::table(qq{evil"; DROP TABLE x; --}, 'parquet', "$W/evil/",
				[ qq{a"b.c;d} => 'int', q{x'); DROP TABLE y; --} => 'string' ]),
			SfGlue::table("new\nline", 'parquet', "$W/nl/", [ id => 'bigint' ]),
		],
		bulk => [ map { SfGlue::table(sprintf('f%03d', $_), 'parquet', "$W/bulk/f$_/", [ id => 'int' ]) }
			  (1 .. 205) ],
	},
	partitions => {
		analytics__raw => {
			orders => SfGlue::partitions("$W/orders/dt=2024-01-01/", "$W/orders/dt=2024-01-02/"),
			events => SfGlue::partitions("$W/events/2024/01/", "$W/events/2024/02/"),
		},
	},
);
SfGlue::write_catalog($glue, \%catalog);

# glue_sync as rows keyed by Glue table name
sub sync
{
	my ($args) = @_;
	my $json = $node->safe_psql('postgres',
		"SELECT coalesce(json_agg(r), '[]') FROM sfexport.glue_sync('sf', $args) r");
	my %out;
	$out{ $_->{glue_table} } = $_ for @{ decode_json($json) };
	return \%out;
}
sub objects { return SfSnowflake::admin($emu, 'GET', 'objects?kind=EXTERNAL_TABLE')->{objects}; }
sub object
{
	my ($name) = @_;
	my ($o) = grep { $_->{fqn}[2] eq $name } @{ objects() };
	return $o;
}
# statements that change Snowflake (not the SHOW of the drift check)
sub ddl_count { return scalar @{ SfSnowflake::statement_log($emu, qr/^(?:CREATE|DROP|ALTER) /) }; }

# ---- dry run: everything planned, nothing done
my $r = sync(q{'analytics__raw', dry_run => true});
is($r->{orders}{action}, 'created', 'dry run: orders would be created');
is(scalar @{ objects() }, 0, 'dry run: no external table in Snowflake');
is(ddl_count(), 0, 'dry run: no statement sent to Snowflake');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sfexport.glue_sync_state'), '0',
	'dry run: no sync state');

# ---- the real run
$r = sync(q{'analytics__raw'});
my %want = (orders => 'created', events => 'created', clicks => 'created', by_serde => 'created',
	by_input => 'created', avro_t => 'created', legacy => 'skipped', elsewhere => 'skipped',
	broken => 'skipped', a_view => 'skipped', 'odd path' => 'skipped',
	qq{evil"; DROP TABLE x; --} => 'created', "new\nline" => 'skipped');
is_deeply({ map { $_ => $r->{$_}{action} } keys %$r }, \%want, 'one row per Glue table with its action');

is($r->{orders}{statement}, q{CREATE OR REPLACE EXTERNAL TABLE "ANALYTICS"."RAW"."ORDERS" (
  "ID" NUMBER(19,0) AS (value:c1::NUMBER(19,0)),
  "AMOUNT" NUMBER(10,2) AS (value:c2::NUMBER(10,2)),
  "NOTE" VARCHAR AS (value:c3::VARCHAR),
  "ITEMS" VARCHAR AS (value:c4::VARCHAR),
  "DT" DATE AS (SPLIT_PART(SPLIT_PART(METADATA$FILENAME, '/', 2), '=', 2)::DATE)
)
PARTITION BY ("DT")
LOCATION = @"DB"."PUBLIC"."SFEXPORT_STAGE"/orders/
AUTO_REFRESH = FALSE
FILE_FORMAT = (TYPE = CSV FIELD_DELIMITER = '|' SKIP_HEADER = 1)},
	'CSV: positional columns, hive-style partition from METADATA$FILENAME, delimiter and header from Glue');

is($r->{events}{statement}, q{CREATE OR REPLACE EXTERNAL TABLE "ANALYTICS"."RAW"."EVENTS" (
  "ID" NUMBER(19,0) AS (GET_IGNORE_CASE(value, 'id')::NUMBER(19,0)),
  "USER NAME" VARCHAR(100) AS (GET_IGNORE_CASE(value, 'user name')::VARCHAR(100)),
  "PAYLOAD" OBJECT AS (GET_IGNORE_CASE(value, 'payload')::OBJECT),
  "TAGS" ARRAY AS (GET_IGNORE_CASE(value, 'tags')::ARRAY),
  "ATTRS" OBJECT AS (GET_IGNORE_CASE(value, 'attrs')::OBJECT),
  "U" VARIANT AS (GET_IGNORE_CASE(value, 'u')::VARIANT),
  "AT" TIMESTAMP_NTZ AS (GET_IGNORE_CASE(value, 'at')::TIMESTAMP_NTZ),
  "OK" BOOLEAN AS (GET_IGNORE_CASE(value, 'ok')::BOOLEAN),
  "RAW" BINARY AS (GET_IGNORE_CASE(value, 'raw')::BINARY),
  "F" FLOAT AS (GET_IGNORE_CASE(value, 'f')::FLOAT),
  "D" DOUBLE AS (GET_IGNORE_CASE(value, 'd')::DOUBLE),
  "C" CHAR(2) AS (GET_IGNORE_CASE(value, 'c')::CHAR(2)),
  "DAY" DATE AS (GET_IGNORE_CASE(value, 'day')::DATE),
  "S" NUMBER(5,0) AS (GET_IGNORE_CASE(value, 's')::NUMBER(5,0)),
  "T" NUMBER(3,0) AS (GET_IGNORE_CASE(value, 't')::NUMBER(3,0)),
  "I" NUMBER(10,0) AS (GET_IGNORE_CASE(value, 'i')::NUMBER(10,0)),
  "YEAR" VARCHAR AS (SPLIT_PART(METADATA$FILENAME, '/', 2)::VARCHAR),
  "MONTH" NUMBER(10,0) AS (SPLIT_PART(METADATA$FILENAME, '/', 3)::NUMBER(10,0))
)
PARTITION BY ("YEAR", "MONTH")
LOCATION = @"DB"."PUBLIC"."SFEXPORT_STAGE"/events/
AUTO_REFRESH = FALSE
FILE_FORMAT = (TYPE = JSON)},
	'JSON: case-insensitive GET_IGNORE_CASE paths, nested types, plain partition directories (taken as they are)');

like($r->{clicks}{statement}, qr{\QLOCATION = @"LOGS"."RAW"."LOGS_STAGE"/clicks/\E.*\QTYPE = PARQUET\E}s,
	'a location under a glue_stage_map stage uses that stage');
like($r->{by_serde}{statement}, qr/TYPE = PARQUET/, 'format from the SerDe when classification is missing');
like($r->{by_input}{statement}, qr/TYPE = ORC/, 'format from the InputFormat when SerDe is missing too');
ok(index($r->{avro_t}{statement},
		q{"REGION" VARCHAR AS (} . unescaped(q{SPLIT_PART(SPLIT_PART(METADATA$FILENAME, '/', 4), '=', 2)}) . q{::VARCHAR)}) >= 0
	  && $r->{avro_t}{statement} =~ m{/deep/er/avro_t/\nAUTO_REFRESH = FALSE\nFILE_FORMAT = \(TYPE = AVRO\)$},
	'partition segment counted from the stage location; no partitions yet: hive style');
like($r->{legacy}{reason}, qr/unsupported format "xml"/, 'unsupported format: skipped with reason');
like($r->{elsewhere}{reason}, qr{no stage covers location "s3://other-bucket/x/"},
	'uncovered location: skipped with reason');
like($r->{broken}{reason}, qr/column "x" has a malformed type "strukt<a:int>": unknown type "strukt"/,
	'malformed type: skipped with reason');
like($r->{a_view}{reason}, qr/VIRTUAL_VIEW is not supported/, 'views: skipped');
like($r->{'odd path'}{reason}, qr/cannot follow a stage name/, 'a location unusable in a stage path: skipped');
like($r->{"new\nline"}{reason}, qr/control characters/, 'a name with a newline: skipped');
ok(!defined $r->{legacy}{statement}, 'skipped tables have no statement');

# hostile names: quoted, and Snowflake saw exactly one statement per table
like($r->{qq{evil"; DROP TABLE x; --}}{statement},
	qr{\QEXTERNAL TABLE "ANALYTICS"."RAW"."EVIL""; DROP TABLE X; --" (\E\n\Q  "A""B.C;D" NUMBER(10,0) AS (GET_IGNORE_CASE(value, 'a"b.c;d')::NUMBER(10,0)),\E\n\Q  "X'); DROP TABLE Y; --" VARCHAR AS (GET_IGNORE_CASE(value, 'x''); DROP TABLE y; --')::VARCHAR)\E},
	'hostile table and column names are quoted identifiers and string constants');
my $evil = object(q{EVIL"; DROP TABLE X; --});
ok($evil, 'Snowflake has the external table under the hostile name, verbatim');
is_deeply([ map { $_->{name} } @{ $evil->{columns} } ], [ q{A"B.C;D}, q{X'); DROP TABLE Y; --} ],
	'... with the hostile column names, verbatim');
is(scalar @{ SfSnowflake::statement_log($emu, qr/^\s*DROP/i) }, 0, 'no DROP statement ever reached Snowflake');

# what Snowflake recorded
my $orders = object('ORDERS');
is_deeply($orders->{fqn}, [qw(ANALYTICS RAW ORDERS)], 'target database and schema from analytics__raw');
is_deeply($orders->{partition_by}, ['DT'], 'PARTITION BY recorded');
is_deeply($orders->{location}, { stage => [qw(DB PUBLIC SFEXPORT_STAGE)], path => 'orders/' },
	'LOCATION: the server stage and the path below it');
is(scalar @{ objects() }, 7, 'seven external tables created');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sfexport.glue_sync_state'), '7',
	'one sync-state row per table created');

# ---- second run: nothing to do
my $before = ddl_count();
$r = sync(q{'analytics__raw'});
is_deeply([ sort map { $_->{action} } grep { $want{ $_->{glue_table} } eq 'created' } values %$r ],
	[ ('unchanged') x 7 ], 'second run: every created table is unchanged');
is(ddl_count(), $before, 'second run: no statement sent to Snowflake');

# ---- a changed table is re-created, the others are left alone
push @{ $catalog{tables}{analytics__raw}[0]{StorageDescriptor}{Columns} }, { Name => 'extra', Type => 'int' };
$catalog{partitions}{analytics__raw}{avro_t} = SfGlue::partitions("$W/deep/er/avro_t/eu/");
SfGlue::write_catalog($glue, \%catalog);
$r = sync(q{'analytics__raw'});
is($r->{orders}{action}, 'altered', 'a new column: added in place');
is($r->{orders}{statement},
	'ALTER TABLE "ANALYTICS"."RAW"."ORDERS" ADD COLUMN IF NOT EXISTS "EXTRA" NUMBER(10,0) AS (value:c5::NUMBER(10,0))',
	'... with ALTER TABLE ... ADD COLUMN');
is($r->{avro_t}{action}, 'replaced', 'partitions found in plain layout: replaced');
ok(index($r->{avro_t}{statement},
		q{"REGION" VARCHAR AS (SPLIT_PART(METADATA$FILENAME, '/', 4)::VARCHAR)}) >= 0,
	'... with a plain-segment partition column');
is($r->{events}{action}, 'unchanged', 'other tables unchanged');
is(ddl_count(), $before + 2, 'exactly two statements sent');
is(scalar(grep { $_->{fqn}[2] eq 'ORDERS' } @{ objects() }), 1, 'still one ORDERS table');
ok((grep { $_->{name} eq 'EXTRA' } @{ object('ORDERS')->{columns} }), 'Snowflake has the new column');

# ---- a table deleted from Glue
@{ $catalog{tables}{analytics__raw} } = grep { $_->{Name} ne 'clicks' } @{ $catalog{tables}{analytics__raw} };
SfGlue::write_catalog($glue, \%catalog);
$r = sync(q{'analytics__raw'});
is($r->{clicks}{action}, 'skipped', 'gone from Glue, no drop_missing: skipped');
like($r->{clicks}{reason}, qr/no longer in AWS Glue; pass drop_missing/, '... with a reason');
ok(object('CLICKS'), '... and the external table is kept');
$r = sync(q{'analytics__raw', drop_missing => true, dry_run => true});
is($r->{clicks}{action}, 'dropped', 'dry run with drop_missing: would drop');
ok(object('CLICKS'), '... but does not');
$r = sync(q{'analytics__raw', drop_missing => true});
is($r->{clicks}{action}, 'dropped', 'drop_missing: dropped');
is($r->{clicks}{statement}, 'DROP EXTERNAL TABLE IF EXISTS "ANALYTICS"."RAW"."CLICKS"', '... with DROP EXTERNAL TABLE');
ok(!object('CLICKS'), '... and Snowflake no longer has it');
is($node->safe_psql('postgres', q{SELECT count(*) FROM sfexport.glue_sync_state WHERE glue_table = 'clicks'}),
	'0', '... nor the sync state');

# ---- table pattern and explicit target
SfGlue::admin($glue, 'DELETE', 'requests');
$r = sync(q{'analytics__raw', 'ord%', dry_run => true, target_database => 'OtherDB', target_schema => 'S1'});
is_deeply([ keys %$r ], ['orders'], 'the pattern selects tables (LIKE)');
is(SfGlue::requests($glue, 'GetTables')->[0]{body}{Expression}, '^ord([\s\S]+)?$',
	'the LIKE pattern is sent to Glue as the GetTables Expression');
like($r->{orders}{statement}, qr/^CREATE OR REPLACE EXTERNAL TABLE "OtherDB"."S1"."ORDERS"/,
	'explicit target database and schema are used as given');
is($r->{orders}{action}, 'created', 'a new target is a new table');

# ---- paging over GetTables; a Glue database without __ goes to the server's database
SfGlue::admin($glue, 'DELETE', 'requests');
$r = sync(q{'bulk', dry_run => true});
is(scalar keys %$r, 205, 'all 205 tables over several pages');
my $gets = SfGlue::requests($glue, 'GetTables');
is(scalar @$gets, 3, 'three GetTables pages of at most 100');
is($gets->[0]{body}{MaxResults}, 100, 'MaxResults 100');
ok(!defined $gets->[0]{body}{NextToken} && defined $gets->[1]{body}{NextToken}
	  && defined $gets->[2]{body}{NextToken}, 'NextToken passed on');
like($r->{f001}{statement}, qr/^CREATE OR REPLACE EXTERNAL TABLE "DB"."PUBLIC"."F001"/,
	'no <database>__<schema> name: the server\'s database and schema');
is((grep { $_->{status} == 200 } @{ SfGlue::requests($glue) }), scalar @{ SfGlue::requests($glue) },
	'every Glue request passed SigV4 verification');

# ---- the pattern through GetTables' Expression, under each reading of it
{
	my @names = map { $_->{Name} } @{ $catalog{tables}{analytics__raw} };
	my %expect_expr = ('ord%' => '^ord([\s\S]+)?$', '%e%' => '^([\s\S]+)?e([\s\S]+)?$', '_vents' => '^[\s\S]vents$',
		'a\_view' => '^a_view$', 'EV%' => '^EV([\s\S]+)?$', 'odd %' => undef, 'evil"%' => undef,
		'%' => undef, 'a%%_' => '^a([\s\S]+)?[\s\S]$');
	for my $mode (qw(regex search hive))
	{
		SfGlue::admin($glue, 'POST', 'settings', { expression_mode => $mode });
		for my $pat (sort keys %expect_expr)
		{
			SfGlue::admin($glue, 'DELETE', 'requests');
			my $got = sync("'analytics__raw', " . $lit->($pat) . ", dry_run => true");
			my $want = $node->safe_psql('postgres', 'SELECT string_agg(n, chr(10) ORDER BY n COLLATE "C") FROM unnest('
				  . 'ARRAY[' . join(',', map { $lit->($_) } @names) . ']) n WHERE n LIKE ' . $lit->($pat));
			is(join("\n", sort keys %$got), $want, "Expression mode $mode: pattern '$pat' selects what LIKE selects");
			is(SfGlue::requests($glue, 'GetTables')->[0]{body}{Expression}, $expect_expr{$pat},
				"... Expression " . ($expect_expr{$pat} // 'not sent')) if $mode eq 'regex';
		}
	}
	SfGlue::admin($glue, 'POST', 'settings', { expression_mode => 'regex' });
}

# ---- column paths by case; escaped partitions; GetPartitions over pages
my $M = 's3://lake/warehouse/more';
my @esc_parts = ("$M/esc/dt=2024-01-01 10%3A00/path=a%2Fb%253A%5c/", "$M/esc/dt=2024-01-02 00%3a00/path=c%3Dd/");
my %more = (
	databases => [ { Name => 'lake__more' } ],
	tables => {
		lake__more => [
			SfGlue::table('mapped', 'json', "$M/mapped/", [ userid => 'string', eventtime => 'timestamp' ],
				serde => 'org.openx.data.jsonserde.JsonSerDe',
				serde_parameters => { 'mapping.userid' => 'userId', 'case.insensitive' => 'true' }),
			SfGlue::table('strict', 'json', "$M/strict/", [ userid => 'string' ],
				serde => 'org.openx.data.jsonserde.JsonSerDe',
				serde_parameters => { 'case.insensitive' => 'false' }),
			SfGlue::table('esc', 'parquet', "$M/esc/", [ id => 'bigint' ],
				partition_keys => [ dt => 'timestamp', path => 'string' ]),
			SfGlue::table('esc_key', 'parquet', "$M/esc_key/", [ id => 'bigint' ],
				partition_keys => [ 'a:b' => 'string' ]),
			SfGlue::table('many_ok', 'parquet', "$M/many_ok/", [ id => 'bigint' ],
				partition_keys => [ n => 'int' ]),
			SfGlue::table('many_mixed', 'parquet', "$M/many_mixed/", [ id => 'bigint' ],
				partition_keys => [ n => 'int' ]),
		],
	},
	partitions => {
		lake__more => {
			esc => SfGlue::partitions(@esc_parts),
			esc_key => SfGlue::partitions("$M/esc_key/a%3Ab=x/"),
			many_ok => SfGlue::partitions(map { "$M/many_ok/n=$_/" } 1 .. 250),
			many_mixed => SfGlue::partitions((map { "$M/many_mixed/n=$_/" } 1 .. 249), "$M/many_mixed/250/"),
		},
	},
);
SfGlue::write_catalog($glue, \%more);
SfGlue::admin($glue, 'DELETE', 'requests');
$r = sync(q{'lake__more', dry_run => true});
like($r->{mapped}{statement}, qr/\Q"USERID" VARCHAR AS (value:"userId"::VARCHAR),\E\n\Q  "EVENTTIME" TIMESTAMP_NTZ AS (GET_IGNORE_CASE(value, 'eventtime')::TIMESTAMP_NTZ)\E/,
	'OpenX mapping.<column>: the mixed-case key exactly; other columns case-insensitive');
like($r->{strict}{statement}, qr/\Q"USERID" VARCHAR AS (value:"userid"::VARCHAR)\E/,
	'case.insensitive = false: the Glue name as the exact key');

is($r->{many_ok}{action}, 'created', 'hive partitions over three pages: mirrored');
ok(index($r->{many_ok}{statement}, q{SPLIT_PART(SPLIT_PART(METADATA$FILENAME, '/', 3), '=', 2)::NUMBER(10,0)}) >= 0,
	'... as hive style');
is($r->{many_mixed}{action}, 'created', 'a plain directory on the third page of partitions is seen:');
like($r->{many_mixed}{reason}, qr/^partitions: 250 added, 0 removed \(USER_SPECIFIED, values from AWS Glue: partitions mix hive-style/,
	'... the mix takes the values from Glue');
like($r->{many_mixed}{statement}, qr/\nPARTITION_TYPE = USER_SPECIFIED\nFILE_FORMAT/,
	'... PARTITION_TYPE = USER_SPECIFIED');
is(scalar(() = $r->{many_mixed}{statement} =~ /;\nALTER EXTERNAL TABLE "LAKE"."MORE"."MANY_MIXED" ADD PARTITION \("N" = 'v'\) LOCATION '(?:n=\d+|250)\/'/g),
	250, '... and every partition added by its location');
my @pages = grep { $_->{body}{TableName} eq 'many_ok' } @{ SfGlue::requests($glue, 'GetPartitions') };
is(scalar @pages, 3, 'GetPartitions followed NextToken: three pages of at most 100');
ok(!defined $pages[0]{body}{NextToken} && defined $pages[2]{body}{NextToken}, '... passing NextToken on');

ok(index($r->{esc_key}{statement}, q{"A:B" VARCHAR AS (} . unescaped(q{SPLIT_PART(SPLIT_PART(METADATA$FILENAME, '/', 3), '=', 2)})) >= 0,
	'a key name Hive escapes (a%3Ab=) is recognised as hive style');
is($r->{esc}{action}, 'created', 'escaped partition values: mirrored');
my %expr;
for my $col (qw(DT PATH))
{
	($expr{$col}) = $r->{esc}{statement} =~ /^  "$col" \w+ AS \((.*)::\w+\),?$/m;
	ok(defined $expr{$col}, "partition column $col has an expression");
}
is($expr{PATH}, unescaped(q{SPLIT_PART(SPLIT_PART(METADATA$FILENAME, '/', 4), '=', 2)}),
	'string partition values are unescaped as Hive does');
# the expressions use only REPLACE, CHR and SPLIT_PART, which PostgreSQL has
# with the same meaning: evaluate them on the paths relative to the stage
for my $case ([ $esc_parts[0], '2024-01-01 10:00', 'a/b%3A\\' ], [ $esc_parts[1], '2024-01-02 00:00', 'c=d' ])
{
	(my $rel = $case->[0]) =~ s{^s3://lake/warehouse/}{};
	$rel .= 'part-0.parquet';
	my %got;
	for my $col (qw(DT PATH))
	{
		(my $sql = $expr{$col}) =~ s/METADATA\$FILENAME/$lit->($rel)/ge;
		$got{$col} = $node->safe_psql('postgres', "SELECT $sql");
	}
	is_deeply(\%got, { DT => $case->[1], PATH => $case->[2] }, "unescaped values of $rel");
}

done_testing();
