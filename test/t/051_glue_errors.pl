# glue_sync when things go wrong, and the periodic sync by the worker:
#  - a wrong AWS secret fails with SQLSTATE 28000 and Glue's error type
#    (the emulator verifies SigV4 with botocore); session tokens are signed
#    and checked;
#  - a missing Glue database is 42704;
#  - ThrottlingException (HTTP 400), 500 and a dropped connection are
#    retried; a persistent one fails with 08006 after bounded attempts;
#  - a statement Snowflake refuses skips that table only, with the reason;
#  - a fault on a later page of GetPartitions is retried, or fails the
#    call: the layout is never taken from the first page alone;
#  - the background worker syncs servers with glue_sync_interval and
#    glue_databases on its own;
#  - no secret, session token or signature reaches any log.
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

my $SECRET = 'glue-secret-051-xyz';
my $TSECRET = 'temp-secret-051-abc';
my $TOKEN = 'session-token-051-SESSIONVALUE';
SfTest::register_secret('wrong AWS secret or token', 'wrong-secret-051-q', 'wrong-token-051-q');
my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $glue = SfGlue::start_emulator(keys => { AKIDGLUE => $SECRET, ASIATEMP => $TSECRET },
	tokens => { ASIATEMP => $TOKEN });
my $lit = \&SfSnowflake::lit;
my $pem = $lit->($key->{pem});

my $node = SfTest::new_node('glueerr', conf => "log_statement = none\n");
sub server
{
	my ($name, $opts, $creds) = @_;
	$node->safe_psql('postgres', qq{
		SET log_min_error_statement = panic;
		CREATE SERVER $name FOREIGN DATA WRAPPER sfexport OPTIONS (
			account 'testacct', url '$emu->{url}', database 'DB',
			location 's3://lake/warehouse/', glue_endpoint '$glue->{url}',
			connect_timeout '2s' $opts);
		CREATE USER MAPPING FOR PUBLIC SERVER $name OPTIONS (user 'LOADER',
			private_key $pem, $creds);
	});
}
server('sf', ", glue_stage_map 'NOSUCH_STAGE=s3://elsewhere/x/'",
	"aws_access_key_id 'AKIDGLUE', aws_secret_access_key '$SECRET'");
server('sf_bad', '', "aws_access_key_id 'AKIDGLUE', aws_secret_access_key 'wrong-secret-051-q'");
server('sf_tok', '', "aws_access_key_id 'ASIATEMP', aws_secret_access_key '$TSECRET', aws_session_token '$TOKEN'");
server('sf_badtok', '', "aws_access_key_id 'ASIATEMP', aws_secret_access_key '$TSECRET', aws_session_token 'wrong-token-051-q'");
SfSnowflake::emu_query($emu, q{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 's3://lake/warehouse/'});

my $W = 's3://lake/warehouse';
my %catalog = (
	databases => [ { Name => 'db1' }, { Name => 'periodic__db' } ],
	tables => {
		db1 => [ SfGlue::table('t1', 'parquet', "$W/t1/", [ id => 'bigint' ]),
			SfGlue::table('t2', 'parquet', 's3://elsewhere/x/t2/', [ id => 'bigint' ]) ],
		periodic__db => [ SfGlue::table('p1', 'json', "$W/p1/", [ id => 'bigint' ]) ],
	});
SfGlue::write_catalog($glue, \%catalog);

sub sync
{
	my ($server, $args) = @_;
	my $json = $node->safe_psql('postgres',
		"SELECT coalesce(json_agg(r), '[]') FROM sfexport.glue_sync('$server', $args) r");
	my %out;
	$out{ $_->{glue_table} } = $_ for @{ decode_json($json) };
	return \%out;
}
sub fault { SfGlue::admin($glue, 'POST', 'faults', {@_}); }
sub gets { return scalar @{ SfGlue::requests($glue, 'GetTables') }; }

# ---- credentials
my $err = SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.glue_sync('sf_bad', 'db1')});
like($err, qr/ERROR:  28000: AWS Glue rejected the credentials of the user mapping for server "sf_bad"/,
	'wrong secret: 28000 with a clear message');
like($err, qr/DETAIL:  AWS Glue error InvalidSignatureException \(HTTP 400\): The request signature we calculated/,
	'... Glue\'s error type and message in the detail');
like($err, qr/HINT:  Check aws_access_key_id, aws_secret_access_key/, '... and a hint');
like($err, qr/CONTEXT:  AWS Glue request POST http:\/\/127.0.0.1:\d+\/ \(AWSGlue.GetTables\)/,
	'... and the request in the context');

my $r = sync('sf_tok', q{'db1', dry_run => true});
is($r->{t1}{action}, 'created', 'session credentials: the token is sent and signed');
$err = SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.glue_sync('sf_badtok', 'db1')});
like($err, qr/ERROR:  28000: .*DETAIL:  AWS Glue error UnrecognizedClientException/s,
	'a wrong session token: 28000');

# ---- missing database
$err = SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.glue_sync('sf', 'nope')});
like($err, qr/ERROR:  42704: AWS Glue database "nope" does not exist/, 'missing Glue database: 42704');

# ---- retries
SfGlue::admin($glue, 'DELETE', 'requests');
fault(kind => 'throttling', count => 2, path_regex => 'GetTables');
$r = sync('sf', q{'db1', dry_run => true});
is($r->{t1}{action}, 'created', 'ThrottlingException twice: retried, then success');
is(gets(), 3, '... in three GetTables requests');

SfGlue::admin($glue, 'DELETE', 'requests');
fault(kind => '500', count => 2, path_regex => 'GetTables');
$r = sync('sf', q{'db1', dry_run => true});
is($r->{t1}{action}, 'created', 'HTTP 500 twice: retried, then success');
is(gets(), 3, '... in three GetTables requests');

fault(kind => 'drop', count => 1, path_regex => 'GetTables');
$r = sync('sf', q{'db1', dry_run => true});
is($r->{t1}{action}, 'created', 'a dropped connection: retried');

SfGlue::admin($glue, 'DELETE', 'requests');
fault(kind => 'throttling', count => 100, path_regex => 'GetTables');
$err = SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.glue_sync('sf', 'db1')});
like($err, qr/ERROR:  08006: AWS Glue request GetTables failed: HTTP 400 ThrottlingException.*\(after 6 attempts\)/s,
	'persistent throttling: 08006 after 6 attempts');
is(gets(), 6, '... exactly 6 requests');
SfGlue::admin($glue, 'DELETE', 'faults');

fault(kind => '503', count => 100, path_regex => 'GetTables');
$err = SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.glue_sync('sf', 'db1')});
like($err, qr/ERROR:  08006: AWS Glue request GetTables failed: HTTP 503/, 'persistent 503: 08006');
SfGlue::admin($glue, 'DELETE', 'faults');

# ---- partitions are read over every page: a failure on a later page is
# retried, or fails the call, never leaves the layout to the first page
$catalog{tables}{parts} = [ SfGlue::table('tp', 'parquet', "$W/tp/", [ id => 'bigint' ],
		partition_keys => [ n => 'int' ]) ];
$catalog{partitions}{parts}{tp} = SfGlue::partitions(map { "$W/tp/n=$_/" } 1 .. 150);
push @{ $catalog{databases} }, { Name => 'parts' };
SfGlue::write_catalog($glue, \%catalog);
SfGlue::admin($glue, 'DELETE', 'requests');
fault(kind => 'throttling', count => 2, after => 1, path_regex => 'GetPartitions');
$r = sync('sf', q{'parts', dry_run => true});
is($r->{tp}{action}, 'created', 'ThrottlingException on the second page of GetPartitions: retried');
is(scalar @{ SfGlue::requests($glue, 'GetPartitions') }, 4, '... two pages, the second tried three times');
SfGlue::admin($glue, 'DELETE', 'faults');
fault(kind => 'throttling', count => 100, after => 1, path_regex => 'GetPartitions');
$err = SfSnowflake::psql_error($node, q{SELECT * FROM sfexport.glue_sync('sf', 'parts', dry_run => true)});
like($err, qr/ERROR:  08006: AWS Glue request GetPartitions failed: HTTP 400 ThrottlingException/,
	'persistent throttling on the second page: 08006, no table planned from the first page alone');
SfGlue::admin($glue, 'DELETE', 'faults');

# ---- a statement Snowflake refuses skips only that table
$r = sync('sf', q{'db1'});
is($r->{t1}{action}, 'created', 'other tables are created');
is($r->{t2}{action}, 'skipped', 'the table whose stage Snowflake does not know is skipped');
like($r->{t2}{reason}, qr/Snowflake refused the statement \(SQLSTATE 42704\): .*NOSUCH_STAGE/s,
	'... with Snowflake\'s error as the reason');
like($r->{t2}{statement}, qr/LOCATION = \@"DB"."PUBLIC"."NOSUCH_STAGE"\/t2\//, '... and the statement tried');
is($node->safe_psql('postgres', q{SELECT string_agg(glue_table, ',') FROM sfexport.glue_sync_state}),
	't1', 'only the applied table has sync state');
SfSnowflake::emu_query($emu, q{CREATE STAGE DB.PUBLIC.NOSUCH_STAGE URL = 's3://elsewhere/x/'});
$r = sync('sf', q{'db1'});
is_deeply([ $r->{t1}{action}, $r->{t2}{action} ], [qw(unchanged created)], 'after the fix: created on the next run');

# ---- periodic sync by the worker
$node->safe_psql('postgres',
	q{ALTER SERVER sf OPTIONS (ADD glue_sync_interval '1min', ADD glue_databases 'periodic__db')});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM sfexport.glue_sync_state WHERE glue_database = 'periodic__db'}),
	'the worker synced the server\'s glue_databases on its own');
my ($p1) = grep { $_->{fqn}[2] eq 'P1' }
  @{ SfSnowflake::admin($emu, 'GET', 'objects?kind=EXTERNAL_TABLE')->{objects} };
is_deeply($p1 && $p1->{fqn}, [qw(PERIODIC DB P1)], '... into PERIODIC.DB');
ok($node->wait_for_log(qr/sfexport glue sync of server "sf", AWS Glue database "periodic__db": 1 created/),
	'... and logged a summary');

# ---- no secrets anywhere
my $logs = SfTest::slurp_tree($PostgreSQL::Test::Utils::log_path);
my @leaks;
for my $f (sort keys %$logs)
{
	# the log directory is shared by the test files of a run: the strings
	# are unique to this file; signatures are looked for in its own logs
	my @look = ($SECRET, $TSECRET, $TOKEN, 'wrong-secret-051-q', 'wrong-token-051-q');
	push @look, 'Signature=' if $f =~ /051_glue_errors|service_glue/;
	for my $s (@look)
	{
		push @leaks, "$s in $f" if index($logs->{$f}, $s) >= 0;
	}
}
is_deeply(\@leaks, [], 'no secret, session token or signature in any log');

done_testing();
