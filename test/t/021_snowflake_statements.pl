# Statements through the Snowflake SQL API client, against the emulator:
#  - request shape: requestId (UUID v4), database/schema/warehouse/role,
#    bind variables (incl. NULL);
#  - 202 answers are polled until done;
#  - 503, 429 and a dropped connection are retried with the same requestId
#    and retry=true, and the statement runs exactly once (statement log,
#    and DDL that would fail if run twice);
#  - retries give up with a connection error;
#  - 422 becomes a PostgreSQL error with Snowflake's code and message in the
#    detail, its SQLSTATE, and the statement (credentials masked) as context;
#  - Snowflake's statement timeout becomes 57014 with a hint;
#  - a query cancel (pg_cancel_backend, statement_timeout) cancels the
#    remote statement, which the emulator records, also while the submit
#    POST is still unanswered (the handle is found by resubmitting with the
#    same requestId and retry=true, which does not run it again);
#  - results with several (gzip-encoded) partitions come back whole and in
#    order; COPY INTO results are readable;
#  - no secret reaches the server log.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'MYORG-ACCT1', users => { LOADER => $key->{pub} });
my $lit = \&SfSnowflake::lit;

my $node = SfTest::new_node('stmt', conf => "log_statement = none\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'myorg-acct1', url '$emu->{url}/',
		database 'DB', schema 'PUBLIC', warehouse 'LOAD_WH', role 'LOADER_ROLE',
		location 'file:///tmp/sfexport-021/');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE SERVER sf_short FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'myorg-acct1', url '$emu->{url}', database 'DB',
		location 'file:///tmp/sfexport-021/', statement_timeout '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf_short
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE SERVER sf_down FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'myorg-acct1', url 'http://127.0.0.1:1', database 'DB',
		location 'file:///tmp/sfexport-021/', connect_timeout '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf_down
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
});

sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }
sub sfq
{
	my ($stmt, $binds) = @_;
	return "SELECT * FROM sfexport.snowflake_query('sf', " . $lit->($stmt)
	  . ($binds ? ", $binds" : '') . ')';
}
sub fault { SfSnowflake::admin($emu, 'POST', 'faults', {@_}); }

# ---- request shape and bindings
is(sq(sfq('SELECT ?, ?, ?', q{ARRAY['it''s', NULL, '3']})), q{{it's,NULL,3}},
	'bind variables, including NULL, round-trip');
my ($entry) = @{ SfSnowflake::statement_log($emu, qr/^SELECT \?, \?, \?$/) };
is_deeply([ @$entry{qw(database schema warehouse role)} ], [qw(DB PUBLIC LOAD_WH LOADER_ROLE)],
	'database, schema, warehouse and role come from the server options');
like($entry->{request_id}, qr/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
	'requestId is a version 4 UUID');
is_deeply($entry->{bindings}, { 1 => { type => 'TEXT', value => "it's" },
		2 => { type => 'TEXT', value => undef }, 3 => { type => 'TEXT', value => '3' } },
	'bindings are sent as typed strings, NULL as null');
is($entry->{retry}, 0, 'a first submit does not carry retry=true');

# ---- 202 and polling
fault(action => '202', delay_ms => 1500, statement => 'polling-marker');
my $t0 = time;
is(sq(sfq(q{SELECT 'polling-marker'})), '{polling-marker}', '202: the result is polled until done');
cmp_ok(time - $t0, '>=', 1.4, 'the client waited for the statement');
my ($polled) = @{ SfSnowflake::statement_log($emu, qr/polling-marker/) };
my $emulog = PostgreSQL::Test::Utils::slurp_file($emu->{log});
my $polls = () = $emulog =~ m{"GET /api/v2/statements/\Q$polled->{handle}\E HTTP}g;
cmp_ok($polls, '>=', 2, "the statement was polled ($polls GETs)");

# ---- retries without double execution
for my $status (qw(503 429))
{
	fault(action => $status, count => 2, method => 'POST');
	is(sq(sfq("CREATE TABLE RETRY_$status (X NUMBER)")), qq{{"Table RETRY_$status successfully created."}},
		"$status twice, then success: the DDL ran");
	my @log = @{ SfSnowflake::statement_log($emu, qr/RETRY_$status/) };
	is(scalar(grep { $_->{executed} } @log), 1, "$status: executed exactly once");
	is($log[0]{retry}, 1, "$status: the resubmit carried retry=true");
}
fault(action => 'drop_after', count => 1, method => 'POST', statement => 'RETRY_DROP');
is(sq(sfq('CREATE TABLE RETRY_DROP (X NUMBER)')), q{{"Table RETRY_DROP successfully created."}},
	'connection dropped after the statement started: the retry succeeds');
my @log = @{ SfSnowflake::statement_log($emu, qr/RETRY_DROP/) };
is(scalar(grep { $_->{executed} } @log), 1, 'dropped connection: executed exactly once');
is(scalar(@log), 2, 'the resubmit reached Snowflake');
is($log[1]{status}, 'deduplicated', 'the resubmit was recognized by its requestId');
is($log[1]{request_id}, $log[0]{request_id}, 'with the same requestId');
is($log[1]{retry}, 1, 'and retry=true');

fault(action => '503', count => 20, method => 'POST');
my $err = SfSnowflake::psql_error($node, sfq(q{SELECT 'never'}));
like($err, qr/ERROR:  08006: the Snowflake SQL API is not available\n.*DETAIL:  POST .*\/api\/v2\/statements answered HTTP status 503 after 6 attempts/s,
	'503 storm: a connection error after 6 attempts');
SfSnowflake::admin($emu, 'DELETE', 'faults');
$err = SfSnowflake::psql_error($node, "SELECT * FROM sfexport.test_connection('sf_down')");
like($err, qr/ERROR:  08006: POST http:\/\/127.0.0.1:1\/api\/v2\/statements failed: /,
	'unreachable endpoint: connection error naming the request without its query');

# ---- errors: 422, SQLSTATE, context
$err = SfSnowflake::psql_error($node, sfq('SELEC 1'));
like($err, qr/ERROR:  42000: Snowflake could not execute the statement/, 'syntax error: SQLSTATE 42000');
like($err, qr/DETAIL:  Snowflake error 001003 \(SQL state 42000\): SQL compilation error:/,
	'the detail carries Snowflake\'s code, SQL state and message');
like($err, qr/CONTEXT:  Snowflake statement [0-9a-f-]+: SELEC 1/, 'the context names the statement');
like(SfSnowflake::psql_error($node, sfq('SELECT * FROM NO_SUCH_TABLE')),
	qr/ERROR:  42704: Snowflake could not execute the statement\n.*DETAIL:  Snowflake error 002003 \(SQL state 02000\)/s,
	'missing object (Snowflake class 02): undefined_object');
fault(action => '422', statement => 'inject-422', code => '100051', sql_state => '22012',
	message => 'Division by zero');
$err = SfSnowflake::psql_error($node, sfq(q{SELECT 'inject-422'}));
like($err, qr/ERROR:  22012: Snowflake could not execute the statement\n.*DETAIL:  Snowflake error 100051 \(SQL state 22012\): Division by zero/s,
	'injected 422: Snowflake\'s SQLSTATE is passed on');
fault(action => '422', statement => 'inject-warning', code => '100999', sql_state => '01000',
	message => 'odd');
like(SfSnowflake::psql_error($node, sfq(q{SELECT 'inject-warning'})),
	qr/ERROR:  HV000: Snowflake could not execute the statement/,
	'a non-error SQLSTATE falls back to fdw_error');
my $aws_secret = 'aws-Secret-Redact-1';
SfTest::register_secret('AWS secret in a user statement', $aws_secret);
fault(action => '422', statement => 'CREDENTIALS', code => '001003', sql_state => '42000',
	message => 'injected');
$err = SfSnowflake::psql_error($node,
	sfq("CREATE STAGE S2 URL = 's3://bkt/p/' CREDENTIALS = (AWS_KEY_ID = 'AKIAREDACT' AWS_SECRET_KEY = '$aws_secret')"));
like($err, qr/CONTEXT:  Snowflake statement [0-9a-f-]+: CREATE STAGE S2 URL = 's3:\/\/bkt\/p\/' CREDENTIALS = \(AWS_KEY_ID = '\*\*\*' AWS_SECRET_KEY = '\*\*\*'\)/,
	'credentials in the statement are masked in the context');
unlike($err, qr/\Q$aws_secret\E/, 'the secret is not shown');

# ---- Snowflake's statement timeout
fault(action => '202', delay_ms => 5000, statement => 'timeout-marker');
$t0 = time;
$err = SfSnowflake::psql_error($node,
	q{SELECT * FROM sfexport.snowflake_query('sf_short', 'SELECT ''timeout-marker''')});
like($err, qr/ERROR:  57014: Snowflake cancelled the statement because it ran too long\n.*DETAIL:  Snowflake error 000630/s,
	'statement timeout in Snowflake: 57014 with Snowflake\'s code');
like($err, qr/HINT:  Raise the statement_timeout option of server "sf_short" \(now 1 s\)/, 'with a hint');
cmp_ok(time - $t0, '<', SfTest::secs(4.5), 'reported when Snowflake gave up');

# ---- cancel
sub cancel_case
{
	my ($marker, $how, $action) = @_;
	$action //= '202';
	# 202: the POST answers at once, the cancel comes while polling;
	# hold: the POST's answer is held back while the statement runs
	fault(action => $action, delay_ms => 30000, statement => $marker);
	my ($out, $stderr) = ('', '');
	my $sql = ($how eq 'timeout' ? sprintf("SET statement_timeout = '%dms';\n", SfTest::secs(1500)) : '')
	  . "SELECT * FROM sfexport.snowflake_query('sf', 'SELECT ''$marker''');";
	my $start = time;
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'VERBOSITY=verbose', '-d', $node->connstr('postgres'), '-c', $sql ],
		'>', \$out, '2>', \$stderr);
	if ($how eq 'cancel')
	{
		$node->poll_query_until('postgres',
			"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%$marker%' AND state = 'active' AND pid <> pg_backend_pid()")
		  or die 'the statement did not start';
		sleep 1;
		sq("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%$marker%' AND pid <> pg_backend_pid()");
	}
	$h->finish;
	my $elapsed = time - $start;
	my $label = ($how eq 'cancel' ? 'pg_cancel_backend' : 'statement_timeout')
	  . ($action eq 'hold' ? ' during the submit' : '');
	like($stderr, $how eq 'cancel'
		? qr/ERROR:  57014: canceling statement due to user request/
		: qr/ERROR:  57014: canceling statement due to statement timeout/,
		"$label: the query is cancelled");
	like($stderr, $action eq 'hold'
		? qr/DETAIL:  Snowflake statement [0-9a-f-]+ was cancelled as well \(found through request [0-9a-f-]{36}\)/
		: qr/DETAIL:  Snowflake statement [0-9a-f-]+ was cancelled as well/,
		"$label: the message says the remote statement was cancelled");
	cmp_ok($elapsed, '<', SfTest::secs(15), "$label: at once, not after the statement's 30 s");
	my @log = @{ SfSnowflake::statement_log($emu, qr/$marker/) };
	my @ran = grep { $_->{executed} } @log;
	is(scalar @ran, 1, "$label: the statement ran once");
	is($ran[0]{status}, 'cancelled', "$label: the emulator cancelled the statement");
	if ($action eq 'hold')
	{
		my @again = grep { !$_->{executed} } @log;
		ok(@again == 1 && $again[0]{retry} && ($again[0]{deduplicated_from} // '') eq $ran[0]{handle}
			  && $again[0]{request_id} eq $ran[0]{request_id},
			"$label: found through a retry=true resubmit of the same requestId")
		  or diag(explain(\@log));
	}
}
cancel_case('cancel-marker', 'cancel');
cancel_case('stmt-timeout-marker', 'timeout');
cancel_case('held-cancel-marker', 'cancel', 'hold');
cancel_case('held-timeout-marker', 'timeout', 'hold');

# ---- the session ends (pg_terminate_backend: FATAL, no error unwinding)
# while the submit is unanswered: the statement is cancelled on the way out
{
	my $marker = 'held-terminate-marker';
	fault(action => 'hold', delay_ms => 30000, statement => $marker);
	my ($out, $stderr) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-XAtq', '-d', $node->connstr('postgres'), '-c',
		  "SELECT * FROM sfexport.snowflake_query('sf', 'SELECT ''$marker''')" ],
		'>', \$out, '2>', \$stderr);
	$node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE query LIKE '%$marker%' AND state = 'active' AND pid <> pg_backend_pid()")
	  or die 'the statement did not start';
	sleep 1;
	my $logpos = -s $node->logfile;
	sq("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%$marker%' AND pid <> pg_backend_pid()");
	$h->finish;
	like($stderr, qr/terminating connection due to administrator command/,
		'pg_terminate_backend during the submit: the session ends');
	my $st = '';
	for (1 .. 100)
	{
		my @ran = grep { $_->{executed} } @{ SfSnowflake::statement_log($emu, qr/$marker/) };
		$st = $ran[0]{status} // '';
		last if $st eq 'cancelled';
		Time::HiRes::sleep(0.1);
	}
	is($st, 'cancelled', 'pg_terminate_backend during the submit: the emulator cancelled the statement');
	my $re = qr/LOG:  cancelled a running Snowflake statement as the process ends\n[^\n]*DETAIL:  Snowflake statement \S+ was cancelled as well \(found through request/;
	my $log = '';
	for (1 .. 100)
	{
		$log = slurp_file($node->logfile, $logpos);
		last if $log =~ $re;
		Time::HiRes::sleep(0.1);
	}
	like($log, $re, 'and the server log says so');
}

# ---- partitions and COPY INTO results
my $sdir = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $sdir;
open my $fh, '>', "$sdir/rows.csv" or die;
print $fh "$_,name $_\n" for 1 .. 2500;
close $fh;
chmod 0644, "$sdir/rows.csv";
SfSnowflake::emu_query($emu, 'CREATE TABLE T (ID NUMBER, NAME TEXT)');
SfSnowflake::emu_query($emu, "CREATE STAGE ST URL = 'file://$sdir/' FILE_FORMAT = (TYPE = CSV)");
is(sq(q{SELECT r[1] || '|' || r[2] FROM sfexport.snowflake_query('sf',
	'COPY INTO T FROM @ST FILES = (''rows.csv'')') AS r}), "file://$sdir/rows.csv|LOADED",
	'COPY INTO through the client: per-file result');
SfSnowflake::admin($emu, 'POST', 'config', { partition_rows => 1000 });
is(sq(q{SELECT count(*), count(DISTINCT r[1]), bool_and(r[1]::int = n AND r[2] = 'name ' || n)
	FROM sfexport.snowflake_query('sf', 'SELECT ID, NAME FROM T ORDER BY ID')
	WITH ORDINALITY AS q(r, n)}), '2500|2500|t',
	'a result of 3 partitions comes back whole and in order');
$emulog = PostgreSQL::Test::Utils::slurp_file($emu->{log});
like($emulog, qr/GET \/api\/v2\/statements\/[0-9a-f-]+\?partition=2 /, 'partitions were fetched');
SfSnowflake::admin($emu, 'POST', 'config', { partition_rows => 10000 });

# ---- nothing secret in the logs
$node->stop;
my $logs = PostgreSQL::Test::Utils::slurp_file($node->logfile)
  . PostgreSQL::Test::Utils::slurp_file($emu->{log});
my @found = grep { index($logs, $_) >= 0 } ($aws_secret, SfSnowflake::pem_body_lines($key->{pem}));
is(scalar(@found), 0, 'no key material or credential in the logs');
unlike($logs, qr/eyJ[A-Za-z0-9_-]{10,}\.eyJ/, 'no JWT in the logs');

done_testing();
