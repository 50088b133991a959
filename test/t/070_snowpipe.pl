# load_mode 'snowpipe' end to end against the emulator (local stage):
#  - setup_table creates the pipe (dry run shows it), idempotently;
#  - rows go staged -> submitted (insertFiles) -> loaded (insertReport);
#  - a file Snowpipe rejects is 'failed' with its error, and loads after
#    the cause is fixed and sfexport.retry() (through COPY);
#  - a crash (SIGKILL) while files are submitted: exactly once afterwards;
#  - a lost record (files back to 'staged' after Snowpipe loaded them, as a
#    crash between insertFiles and its commit leaves them) with lost
#    reports: re-submitted, found through loadHistoryScan, never twice;
#  - a worker restart (pg_terminate_backend) while files are submitted and
#    reports are delayed: the worker resumes from the report position kept
#    in sfexport.pipe_reports, every file loaded exactly once;
#  - switching a table between copy and snowpipe (also while files are
#    submitted) loses and duplicates nothing;
#  - SIGTERM of the worker while its COPY submit is unanswered: the COPY is
#    cancelled in Snowflake (found through requestId + retry=true), and the
#    next worker loads the file once.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use JSON::PP;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--pipe-delay-ms', '1500' ]);
my $lit = \&SfSnowflake::lit;
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

my $node = SfTest::new_node('snowpipe', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n"
	  . "sfexport.snowpipe_poll_interval = 200ms\nsfexport.snowpipe_report_deadline = 3s\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		warehouse 'WH', location 'file://$stage/', flush_interval '1h',
		upper_case_identifiers 'true', load_mode 'snowpipe');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int, payload text) SERVER sf;
	CREATE FOREIGN TABLE nums (id int, v numeric(10,2)) SERVER sf;
	CREATE FOREIGN TABLE sw (id int) SERVER sf OPTIONS (load_mode 'copy');
});

sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }
sub sf { my ($sql) = @_; return SfSnowflake::emu_query($emu, $sql); }
sub ids
{
	my ($t) = @_;
	my %seen;
	$seen{ $_->[0] }++ for @{ sf(qq{SELECT "ID" FROM DB.PUBLIC.$t})->{rows} };
	return \%seen;
}
sub exactly
{
	my ($t, $n, $what) = @_;
	my $seen = ids($t);
	my @missing = grep { !$seen->{$_} } 1 .. $n;
	my @twice = grep { $seen->{$_} > 1 } keys %$seen;
	my @extra = grep { $_ < 1 || $_ > $n } keys %$seen;
	ok(!@missing && !@twice && !@extra, "$what: $t holds ids 1..$n exactly once")
	  or diag("missing @missing[0..9]; twice @twice[0..9]; extra @extra[0..9]");
}
sub drained
{
	my ($t, $what) = @_;
	ok($node->poll_query_until('postgres', qq{SELECT pending_rows = 0 AND staged_files = 0
		AND submitted_files = 0 AND failed_files = 0 FROM sfexport.status WHERE foreign_table = '$t'::regclass}),
		$what) or diag(sq(q{SELECT name, state, load_via, pipe, last_error, first_error FROM sfexport.files}));
}

# ---- setup
my $dry = sq(q{SELECT * FROM sfexport.setup('sf', dry_run => true)});
like($dry, qr/^CREATE PIPE IF NOT EXISTS "DB"\."PUBLIC"\."EV_SFEXPORT_PIPE_[0-9A-F]{16}" AS COPY INTO "DB"\."PUBLIC"\."EV" \("ID", "PAYLOAD"\) FROM \(SELECT \$1, \$2 FROM \@"DB"\."PUBLIC"\."SFEXPORT_STAGE"\) FILE_FORMAT = \(FORMAT_NAME = '"DB"\."PUBLIC"\."SFEXPORT_CSV"'\) ON_ERROR = SKIP_FILE$/m,
	'dry run shows the pipe of a snowpipe table');
unlike($dry, qr/CREATE PIPE[^\n]*"SW_SFEXPORT_PIPE/, 'no pipe for a table in copy mode');
is(scalar @{ SfSnowflake::admin($emu, 'GET', 'objects?kind=PIPE')->{objects} }, 0, 'a dry run creates nothing');
sq(q{SELECT * FROM sfexport.setup('sf')});
is(sq(q{SELECT count(*) FROM sfexport.setup('sf')}), sq(q{SELECT count(*) FROM sfexport.setup('sf', true)}),
	'setup again: the same statements');
my $pipes = SfSnowflake::admin($emu, 'GET', 'objects?kind=PIPE')->{objects};
is(scalar @$pipes, 2, 'setup created the pipes of ev and nums');

# ---- end to end
sq(q{INSERT INTO ev SELECT g, 'row ' || g FROM generate_series(1, 500) g; SELECT sfexport.flush()});
ok($node->poll_query_until('postgres', q{SELECT submitted_files > 0 FROM sfexport.status WHERE foreign_table = 'ev'::regclass}),
	'files are submitted to the pipe');
drained('ev', 'then Snowpipe reports them loaded');
exactly('EV', 500, 'end to end');
is(sq(q{SELECT count(*) FROM sfexport.files WHERE relid = 'ev'::regclass
	AND (load_via <> 'snowpipe' OR pipe !~ '^DB\.PUBLIC\.EV_SFEXPORT_PIPE_' OR rows_loaded <> rows)}), '0',
	'manifest: load_via, pipe and rows_loaded as in COPY mode');

# ---- a file Snowpipe rejects: NaN into NUMBER(10,2)
sq(q{INSERT INTO nums VALUES (1, 1.5), (2, 'NaN'); SELECT sfexport.flush()});
ok($node->poll_query_until('postgres', q{SELECT failed_files = 1 FROM sfexport.status WHERE foreign_table = 'nums'::regclass}),
	'a rejected file is failed');
like(sq(q{SELECT state || ' ' || first_error FROM sfexport.files WHERE relid = 'nums'::regclass}),
	qr/^failed \S/, 'with the first error from the report');
like(sq(q{SELECT last_error FROM sfexport.status WHERE foreign_table = 'nums'::regclass}), qr/\S/,
	'visible in sfexport.status');
is(sf(q{SELECT COUNT(*) FROM DB.PUBLIC.NUMS})->{rows}[0][0], '0', 'nothing of it loaded');
sf(q{CREATE OR REPLACE TABLE DB.PUBLIC.NUMS ("ID" NUMBER(10,0), "V" VARCHAR)});
is(sq(q{SELECT sfexport.retry('nums')}), '1', 'retry after the fix');
drained('nums', 'the retried file loads');
is(sq(q{SELECT load_via FROM sfexport.files WHERE relid = 'nums'::regclass}), 'copy',
	'a file Snowpipe failed is retried with COPY');
exactly('NUMS', 2, 'retry');

# ---- SIGKILL while files are submitted
SfSnowflake::admin($emu, 'POST', 'snowpipe', { pipe_delay_ms => 3000 });
sq(q{INSERT INTO ev SELECT g, 'row ' || g FROM generate_series(501, 1000) g; SELECT sfexport.flush()});
ok($node->poll_query_until('postgres', q{SELECT submitted_files > 0 FROM sfexport.status WHERE foreign_table = 'ev'::regclass}),
	'files submitted before the kill');
SfTest::kill_postmaster($node);
$node->start;
drained('ev', 'after SIGKILL the submitted files are reported loaded');
exactly('EV', 1000, 'crash while submitted');

# ---- a lost record and lost reports: loadHistoryScan, re-submission
SfSnowflake::admin($emu, 'POST', 'snowpipe', { pipe_delay_ms => 300, suppress_reports => JSON::PP::true });
sq(q{INSERT INTO ev SELECT g, 'row ' || g FROM generate_series(1001, 1200) g; SELECT sfexport.flush()});
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM sfexport.files
	WHERE relid = 'ev'::regclass AND state = 'loaded' AND rows_loaded > 0 AND name IN
	  (SELECT name FROM sfexport.files ORDER BY file_id DESC LIMIT 1)}),
	'without reports, the deadline and loadHistoryScan find the load');
# as if the worker died after insertFiles, before its commit: 'staged' again
sq(q{UPDATE sfexport.files SET state = 'staged', pipe = NULL, submitted_at = NULL
	WHERE file_id = (SELECT max(file_id) FROM sfexport.files WHERE relid = 'ev'::regclass)});
sq(q{SELECT sfexport.flush()});
drained('ev', 'the re-submitted file is found in the load history');
exactly('EV', 1200, 're-submission after a lost record');
SfSnowflake::admin($emu, 'POST', 'snowpipe', { suppress_reports => JSON::PP::false, pipe_delay_ms => 1500 });

# ---- the worker restarts while files are submitted and reports are delayed:
# it resumes from the report position kept in sfexport.pipe_reports
SfSnowflake::admin($emu, 'POST', 'snowpipe', { pipe_delay_ms => 4000 });
my $evpipe = sq(q{SELECT DISTINCT pipe FROM sfexport.files WHERE relid = 'ev'::regclass AND load_via = 'snowpipe'});
my $kept = sq(qq{SELECT begin_mark FROM sfexport.pipe_reports WHERE pipe = '$evpipe'});
like($kept, qr/^\d+$/, 'the report position of the pipe is kept in sfexport.pipe_reports');
sq(q{INSERT INTO ev SELECT g, 'row ' || g FROM generate_series(1201, 1700) g; SELECT sfexport.flush()});
ok($node->poll_query_until('postgres', q{SELECT submitted_files > 0 FROM sfexport.status WHERE foreign_table = 'ev'::regclass}),
	'files submitted before the worker restart');
my $old_worker = sq(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sfexport worker'});
# the position just before the worker goes
$kept = sq(qq{SELECT begin_mark FROM sfexport.pipe_reports WHERE pipe = '$evpipe'});
my $asked_before = scalar @{ SfSnowflake::admin($emu, 'GET', 'snowpipe')->{report_requests} };
sq(qq{SELECT pg_terminate_backend($old_worker)});
ok($node->poll_query_until('postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'sfexport worker' AND pid <> $old_worker}), 'the launcher starts a new worker');
drained('ev', 'after the worker restart the submitted files are reported loaded');
exactly('EV', 1700, 'worker restart while reports are delayed');
is(sq(q{SELECT count(*) FROM sfexport.files WHERE relid = 'ev'::regclass AND state = 'loaded'
	AND rows_loaded IS DISTINCT FROM rows}), '0', 'every file recorded with its rows, once');
my @asked = @{ SfSnowflake::admin($emu, 'GET', 'snowpipe')->{report_requests} };
my @after = grep { $_->{pipe} eq $evpipe } @asked[ $asked_before .. $#asked ];
ok(@after && !grep({ !defined $_->{begin_mark} || $_->{begin_mark} < $kept } @after),
	'the restarted worker asked for the reports after the kept position, not from the start')
  or diag(explain({ kept => $kept, after => \@after }));
is(sq(qq{SELECT begin_mark FROM sfexport.pipe_reports WHERE pipe = '$evpipe'}), $after[-1]{next_begin_mark},
	'and kept the position of its last report');
SfSnowflake::admin($emu, 'POST', 'snowpipe', { pipe_delay_ms => 1500 });

# ---- switching modes
sq(q{INSERT INTO sw SELECT g FROM generate_series(1, 100) g; SELECT sfexport.flush()});
drained('sw', 'copy mode loads');
sq(q{ALTER FOREIGN TABLE sw OPTIONS (SET load_mode 'snowpipe');
	INSERT INTO sw SELECT g FROM generate_series(101, 200) g; SELECT sfexport.flush()});
ok($node->poll_query_until('postgres', q{SELECT submitted_files > 0 FROM sfexport.status WHERE foreign_table = 'sw'::regclass}),
	'after switching to snowpipe, files are submitted');
# switch back while they are submitted: they stay with the pipe
sq(q{ALTER FOREIGN TABLE sw OPTIONS (SET load_mode 'copy');
	INSERT INTO sw SELECT g FROM generate_series(201, 300) g; SELECT sfexport.flush()});
drained('sw', 'and back to copy');
exactly('SW', 300, 'mode switches');
is(sq(q{SELECT string_agg(load_via, ',' ORDER BY file_id) FROM sfexport.files WHERE relid = 'sw'::regclass}),
	'copy,snowpipe,copy', 'each file stayed with the path of its first attempt');

# ---- the worker's SIGTERM while its COPY submit is still unanswered: the
# statement is found through its requestId (retry=true) and cancelled as
# the worker ends; the next worker loads the file, once
SfSnowflake::admin($emu, 'POST', 'faults',
	{ action => 'hold', delay_ms => 60000, statement => q{^\s*COPY INTO "DB"\."PUBLIC"\."SW"} });
my $logpos = -s $node->logfile;
sq(q{INSERT INTO sw SELECT g FROM generate_series(301, 400) g; SELECT sfexport.flush()});
my $held;
for (1 .. 300)
{
	($held) = grep { $_->{executed} && $_->{status} eq 'running' }
	  @{ SfSnowflake::statement_log($emu, qr/^\s*COPY INTO "DB"\."PUBLIC"\."SW"/) };
	last if $held;
	Time::HiRes::sleep(0.1);
}
ok($held, 'the worker submitted a COPY whose answer is held back');
my $worker = sq(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sfexport worker'});
sq(qq{SELECT pg_terminate_backend($worker)});
my $st = '';
for (1 .. 150)
{
	my ($e) = grep { $_->{handle} eq $held->{handle} && $_->{executed} }
	  @{ SfSnowflake::statement_log($emu, qr/^\s*COPY INTO "DB"\."PUBLIC"\."SW"/) };
	$st = $e->{status};
	last if $st eq 'cancelled';
	Time::HiRes::sleep(0.1);
}
is($st, 'cancelled', 'SIGTERM of the worker during the submit: the COPY is cancelled in Snowflake');
ok(grep({ !$_->{executed} && ($_->{deduplicated_from} // '') eq $held->{handle} }
		@{ SfSnowflake::statement_log($emu, qr/^\s*COPY INTO "DB"\."PUBLIC"\."SW"/) }),
	'found through a retry=true resubmit, not run again');
drained('sw', 'the next worker loads the file');
exactly('SW', 400, 'worker SIGTERM during a COPY submit');
like(slurp_file($node->logfile, $logpos), qr/cancelled a running Snowflake statement as the process ends/,
	'the worker logged the cancel');

$node->stop;
done_testing();
