# glue_sync keeps the external tables in step with Glue (issue 18):
#  - every Glue request names the catalog of glue_catalog_id (CatalogId);
#  - a day's partition added in Glue: one ALTER EXTERNAL TABLE ... REFRESH
#    of that partition's directory, nothing else; a partition removed: the
#    same for its directory; no change: nothing sent; partitions not
#    recorded (a sync before 0.2.0): one REFRESH of the whole location;
#  - a column added in Glue: ALTER TABLE ... ADD COLUMN in place; a changed
#    type: CREATE OR REPLACE ... COPY GRANTS, and the grant stays;
#  - a table dropped by hand in Snowflake: found by one SHOW EXTERNAL
#    TABLES and created again ('repaired');
#  - a table Glue refuses to show (AccessDenied on its partitions) fails
#    alone; the periodic sync records per table what it did in
#    glue_sync_status, a Glue database it cannot read (missing, or Glue
#    unreachable) as 'failed', and goes on with the next; the view shows a
#    server's rows to its owner only;
#  - glue_auto_refresh gives AUTO_REFRESH = TRUE, names the SQS queue the
#    S3 events must go to, and leaves new partitions to Snowflake.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfGlue;
use SfStorageTest;
use File::Temp qw(tempdir);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $SECRET = 'glue-secret-052-xyz';
my $CATALOG = '210987654321';
my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $s3 = SfStorageTest::start_s3(keys => { AKIDGLUE => $SECRET }, region => 'us-east-1',
	buckets => ['lake']);
# the Snowflake stand-in lists the stage's files in S3 (REFRESH)
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--s3-endpoint', $s3->{endpoint}, '--s3-access-key', 'AKIDGLUE',
		'--s3-secret-key', $SECRET ]);

# the key may read everything of the other account's catalog but the
# partitions of table "secret"
my $pdir = tempdir('sf_policy_XXXX', TMPDIR => 1, CLEANUP => 1);
open my $pf, '>', "$pdir/policy.json" or die;
print $pf encode_json({ Version => '2012-10-17', Statement => [
	{ Effect => 'Allow', Action => [ 'glue:GetTables', 'glue:GetPartitions' ], Resource => ['*'] },
	{ Effect => 'Deny', Action => ['glue:GetPartitions'],
	  Resource => ["arn:aws:glue:us-east-1:$CATALOG:table/lake__raw/secret"] } ] });
close $pf;
my $glue = SfGlue::start_emulator(keys => { AKIDGLUE => $SECRET },
	policies => { AKIDGLUE => "$pdir/policy.json" });
my $pem = SfSnowflake::lit($key->{pem});

my $node = SfTest::new_node('gluesync', conf => "log_statement = none\n", test_surface => 1);
$node->safe_psql('postgres', qq{
	SET log_min_error_statement = panic;
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB',
		location 's3://lake/warehouse/', glue_endpoint '$glue->{url}',
		glue_catalog_id '$CATALOG', connect_timeout '2s', region 'us-east-1',
		endpoint '$s3->{endpoint}');
	CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'LOADER',
		private_key $pem, aws_access_key_id 'AKIDGLUE', aws_secret_access_key '$SECRET');
});
SfSnowflake::emu_query($emu, $_) for (
	q{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 's3://lake/warehouse/'},
	q{CREATE ROLE ANALYST});

my $W = 's3://lake/warehouse';
my %lake = (
	databases => [ { Name => 'lake__raw' } ],
	tables => {
		lake__raw => [
			SfGlue::table('events', 'parquet', "$W/events/", [ id => 'bigint', kind => 'string' ],
				partition_keys => [ dt => 'string' ]),
			SfGlue::table('users', 'json', "$W/users/", [ id => 'bigint', name => 'string' ]),
			SfGlue::table('secret', 'parquet', "$W/secret/", [ id => 'bigint' ],
				partition_keys => [ dt => 'string' ]),
			# directories that do not give the values: USER_SPECIFIED
			SfGlue::table('logs', 'json', "$W/logs/", [ msg => 'string' ],
				partition_keys => [ region => 'string' ]),
		],
	},
	partitions => { lake__raw => {
		events => SfGlue::partitions("$W/events/dt=2024-01-01/", "$W/events/dt=2024-01-02/"),
		logs => [ { Values => ['eu'], StorageDescriptor => { Location => "$W/logs/region=eu/" } },
			{ Values => ['us'], StorageDescriptor => { Location => "$W/logs/us-1/" } } ] } });
# the tables are in the other account's catalog only
sub publish { SfGlue::write_catalog($glue, { databases => [], catalogs => { $CATALOG => \%lake } }); }
publish();

# a data file in S3, below s3://lake/warehouse/
sub put { $node->safe_psql('postgres', "SELECT sfexport_test.storage_put('sf', '$_[0]', '\\x0102')"); }
sub registered
{
	my $t = ext_table($_[0]);
	return join(',', sort map { $_->{relative_path} } @{ $t ? $t->{files} : [] });
}
put($_) for qw(events/dt=2024-01-01/part-0.parquet events/dt=2024-01-02/part-0.parquet
  logs/region=eu/a.json logs/us-1/b.json logs/asia/c.json);

sub sync
{
	my ($args) = @_;
	my $json = $node->safe_psql('postgres',
		"SELECT coalesce(json_agg(r), '[]') FROM sfexport.glue_sync('sf', 'lake__raw' $args) r");
	my %out;
	$out{ $_->{glue_table} } = $_ for @{ decode_json($json) };
	return \%out;
}
my $seq = 0;
# statements Snowflake received since the last call
sub sent
{
	my $log = SfSnowflake::admin($emu, 'GET', "statements?since=$seq")->{statements};
	$seq = $log->[-1]{seq} if @$log;
	return [ map { $_->{statement} } grep { $_->{status} ne 'failed' } @$log ];
}
sub ext_table
{
	my ($name) = @_;
	my ($t) = grep { $_->{table} eq "LAKE.RAW.$name" }
	  @{ SfSnowflake::admin($emu, 'GET', 'external_tables')->{external_tables} };
	return $t;
}

# ---- first sync, in the other account's catalog
SfGlue::admin($glue, 'DELETE', 'requests');
my $r = sync('');
is($r->{events}{action}, 'created', 'events created');
is($r->{users}{action}, 'created', 'users created');
is($r->{secret}{action}, 'failed', 'the table whose partitions Glue refuses: failed');
like($r->{secret}{reason}, qr/AccessDeniedException|not authorized to perform: glue:GetPartitions/,
	'... with Glue\'s error');
my @reqs = @{ SfGlue::requests($glue) };
ok(@reqs >= 3, 'GetTables and GetPartitions sent');
is_deeply([ grep { ($_->{body}{CatalogId} // '') ne $CATALOG } @reqs ], [],
	"every Glue request names CatalogId $CATALOG");
ok(ext_table('EVENTS') && ext_table('USERS'), 'both external tables exist');
is(registered('EVENTS'), 'dt=2024-01-01/part-0.parquet,dt=2024-01-02/part-0.parquet',
	'... with the files of both partitions');
is($r->{logs}{action}, 'created', 'a table whose directories mix layouts: created');
like($r->{logs}{statement}, qr/"REGION" VARCHAR AS \(PARSE_JSON\(METADATA\$EXTERNAL_TABLE_PARTITION\):"REGION"::VARCHAR\).*\nPARTITION_TYPE = USER_SPECIFIED\n/s,
	'... with PARTITION_TYPE = USER_SPECIFIED, values from METADATA$EXTERNAL_TABLE_PARTITION');
like($r->{logs}{statement}, qr/;\nALTER EXTERNAL TABLE "LAKE"."RAW"."LOGS" ADD PARTITION \("REGION" = 'eu'\) LOCATION 'region=eu\/';\nALTER EXTERNAL TABLE "LAKE"."RAW"."LOGS" ADD PARTITION \("REGION" = 'us'\) LOCATION 'us-1\/'\z/,
	'... and each partition added with Glue\'s values');
is_deeply([ map { "$_->{location}=$_->{values}{REGION}" } @{ ext_table('LOGS')->{partitions} } ],
	[ 'region=eu/=eu', 'us-1/=us' ], 'Snowflake has both partitions');
is(registered('LOGS'), 'region=eu/a.json,us-1/b.json', '... and their files, not the unannounced one');
sent();

# ---- a grant on the table, kept below
SfSnowflake::emu_query($emu, 'GRANT SELECT ON EXTERNAL TABLE LAKE.RAW.EVENTS TO ROLE ANALYST');

# ---- nothing changed: nothing sent but the drift check
$r = sync('');
is($r->{events}{action}, 'unchanged', 'second sync: unchanged');
is_deeply(sent(), ['SHOW TERSE EXTERNAL TABLES IN SCHEMA "LAKE"."RAW" LIMIT 10000'],
	'... one SHOW EXTERNAL TABLES for the schema, nothing else');

# ---- a day's partition added
push @{ $lake{partitions}{lake__raw}{events} }, @{ SfGlue::partitions("$W/events/dt=2024-01-03/") };
put('events/dt=2024-01-03/part-0.parquet');
# a file in an old partition (not announced by Glue) is not looked for
put('events/dt=2024-01-02/part-1.parquet');
publish();
$r = sync('');
is($r->{events}{action}, 'refreshed', 'a new partition: refreshed');
is($r->{events}{reason}, 'partitions: 1 added, 0 removed', '... the reason says what changed');
is($r->{users}{action}, 'unchanged', 'the other table is unchanged');
is_deeply([ grep { !/^SHOW/ } @{ sent() } ],
	[q{ALTER EXTERNAL TABLE "LAKE"."RAW"."EVENTS" REFRESH 'dt=2024-01-03/'}],
	'... only the new partition\'s directory is refreshed');
is(registered('EVENTS'),
	'dt=2024-01-01/part-0.parquet,dt=2024-01-02/part-0.parquet,dt=2024-01-03/part-0.parquet',
	'... Snowflake sees the new day\'s file');

# ---- a partition removed
shift @{ $lake{partitions}{lake__raw}{events} };
$node->safe_psql('postgres', q{SELECT sfexport_test.storage_delete('sf', 'events/dt=2024-01-01/part-0.parquet')});
publish();
$r = sync('');
is($r->{events}{reason}, 'partitions: 0 added, 1 removed', 'a removed partition: refreshed');
is_deeply([ grep { !/^SHOW/ } @{ sent() } ],
	[q{ALTER EXTERNAL TABLE "LAKE"."RAW"."EVENTS" REFRESH 'dt=2024-01-01/'}],
	'... its directory is refreshed');
is(registered('EVENTS'), 'dt=2024-01-02/part-0.parquet,dt=2024-01-03/part-0.parquet',
	'... and its file left the metadata');
is($node->safe_psql('postgres', q{SELECT array_to_string(partitions, ',') FROM sfexport.glue_sync_state WHERE glue_table = 'events'}),
	'dt=2024-01-02/,dt=2024-01-03/', 'the partitions synced are recorded');

# ---- USER_SPECIFIED: a partition added, one removed
push @{ $lake{partitions}{lake__raw}{logs} }, { Values => ['asia'], StorageDescriptor => { Location => "$W/logs/asia/" } };
splice @{ $lake{partitions}{lake__raw}{logs} }, 1, 1;
publish();
$r = sync('');
is($r->{logs}{action}, 'refreshed', 'USER_SPECIFIED partitions changed: refreshed');
is_deeply([ grep { !/^SHOW/ } @{ sent() } ],
	[ q{ALTER EXTERNAL TABLE "LAKE"."RAW"."LOGS" DROP PARTITION LOCATION 'us-1/'},
	  q{ALTER EXTERNAL TABLE "LAKE"."RAW"."LOGS" ADD PARTITION ("REGION" = 'asia') LOCATION 'asia/'} ],
	'... DROP PARTITION for the removed one, ADD PARTITION for the new one, nothing else');
is(registered('LOGS'), 'asia/c.json,region=eu/a.json', '... and Snowflake\'s files follow');

# ---- statements Snowflake refuses: the table is skipped with the error,
# nothing is lost, the next sync does what is left
sub refuse
{
	SfSnowflake::admin($emu, 'POST', 'faults', { action => '422', count => 1, statement => $_[0],
		code => '091003', sql_state => 'XX000', message => 'Failure using stage area (injected).' });
}
push @{ $lake{partitions}{lake__raw}{logs} },
  { Values => ['apac'], StorageDescriptor => { Location => "$W/logs/apac/" } },
  { Values => ['emea'], StorageDescriptor => { Location => "$W/logs/emea/" } };
push @{ $lake{partitions}{lake__raw}{events} }, @{ SfGlue::partitions("$W/events/dt=2024-01-04/") };
put($_) for qw(logs/apac/d.json logs/emea/e.json events/dt=2024-01-04/part-0.parquet);
publish();
refuse(q{ADD PARTITION \("REGION" = 'emea'\)});
refuse(q{REFRESH 'dt=2024-01-04/'});
$r = sync('');
is($r->{logs}{action}, 'skipped', 'an ADD PARTITION refused: skipped');
like($r->{logs}{reason}, qr/Snowflake refused the statement \(SQLSTATE XX000\): .*Failure using stage area/,
	'... with Snowflake\'s error');
is($r->{events}{action}, 'skipped', 'a REFRESH refused: skipped');
sent();
$r = sync('');
is_deeply([ $r->{logs}{action}, $r->{events}{action} ], [qw(refreshed refreshed)], 'next sync: both refreshed');
is_deeply([ grep { !/^SHOW/ } @{ sent() } ],
	[ q{ALTER EXTERNAL TABLE "LAKE"."RAW"."EVENTS" REFRESH 'dt=2024-01-04/'},
	  q{ALTER EXTERNAL TABLE "LAKE"."RAW"."LOGS" ADD PARTITION ("REGION" = 'emea') LOCATION 'emea/'} ],
	'... the refused REFRESH again, and only the partition not added before');
is(registered('LOGS'), 'apac/d.json,asia/c.json,emea/e.json,region=eu/a.json', '... every file is there');
like(registered('EVENTS'), qr/dt=2024-01-04\/part-0.parquet/, '... and the new day\'s file');

# ---- partitions not recorded (synced before 0.2.0): one full refresh
$node->safe_psql('postgres', q{UPDATE sfexport.glue_sync_state SET partitions = NULL WHERE glue_table = 'events'});
$r = sync('');
is($r->{events}{action}, 'refreshed', 'no partitions recorded: refreshed');
is_deeply([ grep { !/^SHOW/ } @{ sent() } ], [q{ALTER EXTERNAL TABLE "LAKE"."RAW"."EVENTS" REFRESH}],
	'... the whole location, once');
is(registered('EVENTS'),
	'dt=2024-01-02/part-0.parquet,dt=2024-01-02/part-1.parquet,dt=2024-01-03/part-0.parquet,dt=2024-01-04/part-0.parquet',
	'... which registers every file');

# ---- a column added in Glue: in place
push @{ $lake{tables}{lake__raw}[1]{StorageDescriptor}{Columns} }, { Name => 'email', Type => 'string' };
publish();
$r = sync('');
is($r->{users}{action}, 'altered', 'a new column: altered in place');
is_deeply([ grep { !/^SHOW/ } @{ sent() } ],
	[q{ALTER TABLE "LAKE"."RAW"."USERS" ADD COLUMN IF NOT EXISTS "EMAIL" VARCHAR AS (GET_IGNORE_CASE(value, 'email')::VARCHAR)}],
	'... with ALTER TABLE ADD COLUMN only');
ok((grep { $_->{name} eq 'EMAIL' } map { @{ $_->{columns} } }
	grep { $_->{fqn}[2] eq 'USERS' } @{ SfSnowflake::admin($emu, 'GET', 'objects?kind=EXTERNAL_TABLE')->{objects} }),
	'Snowflake has the new column');

# ---- a column dropped in Glue: in place too
splice @{ $lake{tables}{lake__raw}[1]{StorageDescriptor}{Columns} }, 1, 1;    # name
publish();
$r = sync('');
is($r->{users}{action}, 'altered', 'a dropped column: altered in place');
is_deeply([ grep { !/^SHOW/ } @{ sent() } ], [q{ALTER TABLE "LAKE"."RAW"."USERS" DROP COLUMN IF EXISTS "NAME"}],
	'... with ALTER TABLE DROP COLUMN only');

# ---- a type changed: replaced, the grant kept
$lake{tables}{lake__raw}[0]{StorageDescriptor}{Columns}[0]{Type} = 'string';
publish();
$r = sync('');
is($r->{events}{action}, 'replaced', 'a changed type: replaced');
like($r->{events}{statement}, qr/\ACREATE OR REPLACE EXTERNAL TABLE "LAKE"."RAW"."EVENTS" .*\nCOPY GRANTS\z/s,
	'... with COPY GRANTS');
my $grants = SfSnowflake::emu_query($emu, 'SHOW GRANTS ON EXTERNAL TABLE LAKE.RAW.EVENTS');
my @analyst = grep { grep { defined $_ && $_ eq 'ANALYST' } @$_ } @{ $grants->{rows} };
ok((grep { grep { defined $_ && $_ eq 'SELECT' } @$_ } @analyst), 'SELECT to ANALYST is still granted');
sent();

# ---- a table dropped by hand in Snowflake: repaired
SfSnowflake::emu_query($emu, 'DROP EXTERNAL TABLE LAKE.RAW.USERS');
$r = sync('');
is($r->{users}{action}, 'repaired', 'a table dropped in Snowflake: repaired');
like($r->{users}{reason}, qr/missing in Snowflake/, '... the reason says so');
is($r->{events}{action}, 'unchanged', 'the other table is unchanged');
my $s = sent();
is(scalar(grep { /^SHOW/ } @$s), 1, 'one SHOW EXTERNAL TABLES for the whole sync');
ok(ext_table('USERS'), 'USERS exists again');
$r = sync('');
is($r->{users}{action}, 'unchanged', 'next sync: unchanged');

# ---- the view: per table, for the server's owner only
my $st = $node->safe_psql('postgres',
	q{SELECT string_agg(glue_table || ':' || action, ',' ORDER BY glue_table) FROM sfexport.glue_sync_status});
is($st, 'events:unchanged,logs:unchanged,secret:failed,users:unchanged', 'glue_sync_status: what the last sync did per table');
$node->safe_psql('postgres', q{CREATE ROLE nobody_052});
is($node->safe_psql('postgres', q{SET ROLE nobody_052; SELECT count(*) FROM sfexport.glue_sync_status}),
	'0', 'another role sees none of the server\'s rows');
like(SfSnowflake::psql_error($node, q{SET ROLE nobody_052; SELECT * FROM sfexport.glue_sync_log}),
	qr/42501/, '... and cannot read the table behind the view');

# ---- a table gone from Glue that was never created leaves the log
my @all_tables = @{ $lake{tables}{lake__raw} };
@{ $lake{tables}{lake__raw} } = grep { $_->{Name} ne 'secret' } @all_tables;
publish();
sync('');
is($node->safe_psql('postgres', q{SELECT string_agg(glue_table, ',' ORDER BY glue_table) FROM sfexport.glue_sync_status}),
	'events,logs,users', 'a table no longer in Glue and never created leaves glue_sync_status');
@{ $lake{tables}{lake__raw} } = @all_tables;
publish();

# ---- periodic sync: a Glue database it cannot read fails alone, and so
# does a server whose Glue endpoint is down
$node->safe_psql('postgres', qq{
	SET log_min_error_statement = panic;
	CREATE SERVER sf_down FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB',
		location 's3://lake/warehouse/', glue_endpoint 'http://127.0.0.1:1',
		connect_timeout '1s', glue_sync_interval '1min', glue_databases 'lake__raw',
		region 'us-east-1', endpoint '$s3->{endpoint}');
	CREATE USER MAPPING FOR PUBLIC SERVER sf_down OPTIONS (user 'LOADER',
		private_key $pem, aws_access_key_id 'AKIDGLUE', aws_secret_access_key '$SECRET');
	ALTER SERVER sf OPTIONS (ADD glue_sync_interval '1min', ADD glue_databases 'missing__db, lake__raw');
});
# the worker syncs on its housekeeping pass; flush() asks for one now
$node->safe_psql('postgres', q{SELECT sfexport.flush()});
ok($node->poll_query_until('postgres', q{
	SELECT count(*) = 6 FROM sfexport.glue_sync_status WHERE periodic}),
	'the worker synced lake__raw after missing__db failed, and tried sf_down');
like($node->safe_psql('postgres',
		q{SELECT action || ': ' || reason FROM sfexport.glue_sync_status WHERE server = 'sf_down'}),
	qr/^failed: .*(GetTables|connect)/i, 'the server whose Glue is down: failed, with the error');
is($node->safe_psql('postgres',
		q{SELECT action || ': ' || reason FROM sfexport.glue_sync_status WHERE server = 'sf' AND glue_database = 'missing__db'}),
	'failed: AWS Glue database "missing__db" does not exist', '... which is recorded as failed');

# ---- options
$r = sync(q{, dry_run => true});
like($r->{events}{statement} // '', qr/^$/, 'dry run of an unchanged table: no statement');
$node->safe_psql('postgres', q{ALTER SERVER sf OPTIONS (ADD glue_auto_refresh 'true')});
sent();
$r = sync('');
is($r->{events}{action}, 'replaced', 'glue_auto_refresh: replaced');
like($r->{events}{statement}, qr/\nAUTO_REFRESH = TRUE\n/, '... with AUTO_REFRESH = TRUE');
like($r->{events}{reason}, qr/send the S3 event notifications of the table's location to arn:aws:sqs:/,
	'... and the reason names the SQS queue of its notification channel');
is($r->{logs}{action}, 'unchanged', 'a USER_SPECIFIED table has no AUTO_REFRESH: unchanged');
ok(ext_table('EVENTS')->{auto_refresh}, 'Snowflake refreshes EVENTS from the notifications');
ok((grep { $_->{privilege} eq 'SELECT' && $_->{grantee} eq 'ANALYST' } @{ ext_table('EVENTS')->{grants} }),
	'... and SELECT to ANALYST is still granted');
push @{ $lake{partitions}{lake__raw}{events} }, @{ SfGlue::partitions("$W/events/dt=2024-01-05/") };
publish();
sent();
$r = sync('');
is($r->{events}{action}, 'unchanged', 'a new partition with AUTO_REFRESH: unchanged');
like($r->{events}{reason}, qr/^partitions: 1 added, 0 removed \(AUTO_REFRESH = TRUE: left to Snowflake\)$/,
	'... the reason counts it');
is_deeply([ grep { !/^SHOW/ } @{ sent() } ], [], '... and no REFRESH is sent');
like(SfSnowflake::psql_error($node, q{ALTER SERVER sf OPTIONS (SET glue_catalog_id '} . ('1' x 256) . q{')}),
	qr/22023|HV00D|invalid value for option "glue_catalog_id"/, 'a catalog id over 255 characters is refused');

done_testing();
