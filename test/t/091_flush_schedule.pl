# Long cadences and flush_at: flush_interval up to 31 days (options and the
# GUC), flush_at schedules in cron syntax (UTC) validated at CREATE/ALTER
# time, the time each schedule gives (sfexport.next_flush_at, also the
# status view's next_flush_at), a flush_at table that the default interval
# does not flush, one that the worker flushes at the scheduled minute, and
# the status view's oldest_pending_age (docs/flush.md).
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;
# the worker only stages here (no Snowflake behind the URL): staging is
# what the schedule decides
my $node = SfTest::new_node('schedule',
	conf => "sfexport.launcher_naptime = 1s\nsfexport.flush_interval = 1s\n");
my $sql = sub { return $node->safe_psql('postgres', "SET timezone = 'UTC';\n" . $_[0]); };
$sql->(qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (account 'testacct', url 'http://127.0.0.1:9',
	  database 'DB', location 'file://$stage/');
	CREATE SERVER sf_daily FOREIGN DATA WRAPPER sfexport OPTIONS (account 'testacct', url 'http://127.0.0.1:9',
	  database 'DB', location 'file://$stage/', flush_at '0 3 * * *');
	CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'LOADER');
	CREATE USER MAPPING FOR PUBLIC SERVER sf_daily OPTIONS (user 'LOADER');
	CREATE FOREIGN TABLE every_minute (n int) SERVER sf OPTIONS (flush_at '* * * * *');
	CREATE FOREIGN TABLE plain (n int) SERVER sf;
	CREATE FOREIGN TABLE yearly (n int) SERVER sf OPTIONS (flush_at '\@yearly');
});
# first, so that the minute boundary comes while the rest runs
$sql->(q{INSERT INTO every_minute VALUES (1), (2)});
my $inserted = time;
$sql->(q{INSERT INTO yearly VALUES (1); INSERT INTO plain VALUES (1)});

sub staged
{
	return $sql->("SELECT coalesce(sum(rows), 0) FROM sfexport.files WHERE relid = '$_[0]'::regclass");
}

# ---- validation at DDL time
my @bad = (
	[ '0 3 * *', qr/DETAIL:  a schedule has five fields \(minute hour day-of-month month day-of-week\), this one 4\./ ],
	[ '61 * * * *', qr/DETAIL:  the minute field "61" has a value outside 0-59\./ ],
	[ '0 3 30 2 *', qr/DETAIL:  The schedule matches no minute in the next 9 years\./ ],
	[ '5/10 * * * *', qr/DETAIL:  the minute field "5\/10" has a step after a single value/ ],
	[ '0 3 * * funday', qr/DETAIL:  the day of week field "funday" has an item/ ],
	[ '0 25 * * *', qr/DETAIL:  the hour field "25" has a value outside 0-23\./ ],
	[ '0 3 5-1 * *', qr/DETAIL:  the day of month field "5-1" has a range whose end is before its start\./ ],
	[ '@reboot', qr/DETAIL:  "\@reboot" is not a schedule shorthand/ ],
);
for my $b (@bad)
{
	my ($ret, $out, $err) = $node->psql('postgres',
		"CREATE FOREIGN TABLE bad_t (n int) SERVER sf OPTIONS (flush_at '$b->[0]')");
	like($err, qr/ERROR:  invalid value for option "flush_at": "\Q$b->[0]\E"/, "flush_at '$b->[0]' is refused");
	like($err, $b->[1], "with a detail saying why ($b->[0])");
	like($err, qr/HINT:  Give minute hour day-of-month month day-of-week in UTC|HINT:  Check the day of month/,
		"and a hint ($b->[0])");
}
my ($ret, $out, $err) = $node->psql('postgres', q{ALTER SERVER sf OPTIONS (ADD flush_at '0 3 * *')});
like($err, qr/invalid value for option "flush_at"/, 'ALTER SERVER checks flush_at too');
($ret, $out, $err) = $node->psql('postgres', q{ALTER FOREIGN TABLE plain OPTIONS (ADD flush_interval '32d')});
like($err, qr/invalid value for option "flush_interval": "32d"\nDETAIL:  The value must be between 1 and 2678400 seconds\./,
	'flush_interval above 31 days is refused');
for my $ok ('*/15 9-17 * * mon-fri', '0 0 1,15 * *', '0-30/10 */2 * JAN-jun,dec 0-7', '@monthly', '  0 3 * * *  ')
{
	($ret, $out, $err) = $node->psql('postgres',
		"CREATE FOREIGN TABLE ok_t (n int) SERVER sf OPTIONS (flush_at '$ok'); DROP FOREIGN TABLE ok_t");
	is($ret, 0, "flush_at '$ok' is accepted") or diag($err);
}
$sql->(q{CREATE FOREIGN TABLE monthly (n int) SERVER sf OPTIONS (flush_interval '31d');
	ALTER SERVER sf OPTIONS (ADD flush_interval '31d'); ALTER SERVER sf OPTIONS (DROP flush_interval)});
pass('flush_interval 31 days is accepted on tables and servers');
ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM sfexport.files WHERE relid = 'plain'::regclass}),
	'a table without flush_at is staged after sfexport.flush_interval (1 s)');
$node->append_conf('postgresql.conf', "sfexport.flush_interval = '31d'\n");
$node->reload;
ok($node->poll_query_until('postgres', q{SELECT current_setting('sfexport.flush_interval') = '31d'}),
	'and as the GUC sfexport.flush_interval');

# ---- what each schedule gives (UTC)
$sql->(q{CREATE FOREIGN TABLE s_daily (n int) SERVER sf OPTIONS (flush_at '0 3 * * *');
	CREATE FOREIGN TABLE s_daily_1h (n int) SERVER sf OPTIONS (flush_at '0 3 * * *', flush_interval '1h');
	CREATE FOREIGN TABLE s_or (n int) SERVER sf OPTIONS (flush_at '0 0 13 * 5');
	CREATE FOREIGN TABLE s_and (n int) SERVER sf OPTIONS (flush_at '0 0 13 * */1');
	CREATE FOREIGN TABLE s_work (n int) SERVER sf OPTIONS (flush_at '*/15 9-17 * * mon-fri');
	CREATE FOREIGN TABLE s_leap (n int) SERVER sf OPTIONS (flush_at '0 0 29 feb *');
	CREATE FOREIGN TABLE s_sun (n int) SERVER sf OPTIONS (flush_at '0 12 * * 7');
	CREATE FOREIGN TABLE s_inherit (n int) SERVER sf_daily;
	CREATE FOREIGN TABLE s_override (n int) SERVER sf_daily OPTIONS (flush_at '@monthly')});
my @cases = (
	[ 's_daily', '2026-01-10 02:30', '2026-01-10 03:00:00+00', 'the next 03:00' ],
	[ 's_daily', '2026-01-10 03:00', '2026-01-11 03:00:00+00', 'strictly after the row' ],
	[ 's_daily_1h', '2026-01-10 00:10', '2026-01-10 01:10:00+00', 'flush_interval when sooner' ],
	[ 's_daily_1h', '2026-01-10 02:30', '2026-01-10 03:00:00+00', 'flush_at when sooner' ],
	[ 's_or', '2026-12-04 12:00', '2026-12-11 00:00:00+00', 'both day fields restricted: either matches (a Friday)' ],
	[ 's_and', '2026-12-04 12:00', '2026-12-13 00:00:00+00', 'day of week starting with *: both must match (the 13th)' ],
	[ 's_work', '2026-12-05 10:00', '2026-12-07 09:00:00+00', 'ranges, steps and day names (Saturday to Monday 09:00)' ],
	[ 's_work', '2026-12-07 17:45', '2026-12-08 09:00:00+00', 'after the last slot of a day' ],
	[ 's_leap', '2028-02-01 00:00', '2028-02-29 00:00:00+00', 'February 29 of a leap year' ],
	[ 's_leap', '2026-03-01 00:00', '2026-04-01 00:00:00+00', 'without flush_interval, at most 31 days' ],
	[ 's_sun', '2026-12-04 13:00', '2026-12-06 12:00:00+00', '7 is Sunday' ],
	[ 's_inherit', '2026-01-10 02:30', '2026-01-10 03:00:00+00', 'a server flush_at applies to its tables' ],
	[ 's_override', '2026-01-31 10:00', '2026-02-01 00:00:00+00', 'a table flush_at overrides the server one' ],
	[ 'monthly', '2026-01-31 10:00', '2026-03-03 10:00:00+00', 'flush_interval 31 days' ],
);
for my $c (@cases)
{
	is($sql->("SELECT sfexport.next_flush_at('$c->[0]', '$c->[1]+00')"), $c->[2], "$c->[0]: $c->[3]");
}
($ret, $out, $err) = $node->psql('postgres', q{SELECT sfexport.next_flush_at('pg_class', now())});
like($err, qr/is not an sfexport foreign table/, 'next_flush_at refuses other relations');

# ---- the worker: a flush_at table waits for its schedule, not the 1 s default
is(staged('yearly'), 0, 'the @yearly table is not');
my $st = $sql->(q{SELECT pending_rows, oldest_pending_age >= interval '0' AND oldest_pending_age < interval '10 min',
	next_flush_at = least(date_trunc('year', oldest_pending) + interval '1 year', oldest_pending + interval '31 days'),
	next_flush_at = sfexport.next_flush_at(foreign_table, oldest_pending)
	FROM sfexport.status WHERE foreign_table = 'yearly'::regclass});
is($st, '1|t|t|t', 'status: its oldest_pending_age, and next_flush_at at New Year (or in 31 days)');
is($sql->(q{SELECT count(*) FROM sfexport.status WHERE pending_rows = 0 AND next_flush_at IS NULL
	AND oldest_pending_age IS NULL AND foreign_table = 'plain'::regclass}), '1',
	'a table with nothing pending has neither');
like($sql->(q{SELECT reloptions::text FROM pg_class WHERE oid = 'sfexport.status'::regclass}),
	qr/security_barrier=true/, 'the view is still security_barrier');
$sql->(q{CREATE ROLE watcher LOGIN});
is($node->safe_psql('postgres', q{SELECT count(*) FROM sfexport.status WHERE next_flush_at IS NOT NULL}, extra_params => ['-U', 'watcher']),
	$sql->(q{SELECT count(*) FROM sfexport.status WHERE next_flush_at IS NOT NULL}),
	'anyone may read the new columns');

ok($node->poll_query_until('postgres', q{SELECT count(*) > 0 FROM sfexport.files WHERE relid = 'every_minute'::regclass}),
	q{flush_at '* * * * *': the worker stages the rows at the next minute});
my $at = $sql->(q{SELECT extract(second FROM min(staged_at)) FROM sfexport.files WHERE relid = 'every_minute'::regclass});
cmp_ok($at, '<', 15, "staged right after the minute began (second $at)");
cmp_ok(time - $inserted, '<', 75, 'within a minute of the insert');
is(staged('yearly'), 0, 'the @yearly table still waits');

$node->stop;
done_testing();
