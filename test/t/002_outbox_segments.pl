# The outbox segments (src/outbox.c, src/flush.c), staging to the S3
# stand-in (no Snowflake: loads fail and files stay staged, which is all
# this test looks at):
#  - a drain stages the old segment and empties it with TRUNCATE (its
#    relfilenode changes); an INSERT and a read of sfexport.status during
#    the drain (held up by a slow upload) do not wait for it; rows inserted
#    during the drain wait for the next flush;
#  - a transaction still open in the old segment: the drain does not wait
#    for it; committed rows are staged row by row, the open one's after it
#    commits;
#  - rows of a table that is not due in the old segment: the due table's
#    rows are staged and deleted row by row, the other table's stay;
#  - counts are exact throughout;
#  - the worker's plan (sf_flush_pending, a heap scan of the segments)
#    reads the same rows, bytes and oldest times per table and shape as the
#    SQL aggregate it replaced, over both segments, two shapes, CSV and
#    binary payloads, NULLs and payloads stored out of line.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfStorageTest;
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my ($akid, $secret) = ('AKIDSEGMENTS', 'segmentsSecretKey0123456789abcdef');
my $s3 = SfStorageTest::start_s3(keys => { $akid => $secret }, region => 'us-east-1',
	buckets => ['segs']);
my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');

my $node = SfTest::new_node('segs', test_surface => 1, conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url 'http://127.0.0.1:9', database 'DB', connect_timeout '100ms',
		location 's3://segs/t/', endpoint '$s3->{endpoint}', region 'us-east-1',
		flush_interval '1h');
	CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'LOADER',
		private_key @{[ SfSnowflake::lit($key->{pem}) ]},
		aws_access_key_id '$akid', aws_secret_access_key '$secret');
	CREATE FOREIGN TABLE ev (id bigint, note text) SERVER sf;
	CREATE FOREIGN TABLE other (id bigint) SERVER sf;
});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sfexport worker'}),
	'worker running');

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub filenodes
{
	return sql(q{SELECT pg_relation_filenode('sfexport.outbox_0') || ',' ||
	                  pg_relation_filenode('sfexport.outbox_1')});
}
sub staged { return sql("SELECT coalesce(sum(rows), 0) FROM sfexport.files WHERE relid = '$_[0]'::regclass"); }
sub pending { return sql("SELECT pending_rows FROM sfexport.status WHERE foreign_table = '$_[0]'::regclass"); }
sub wait_staged
{
	my ($t, $n) = @_;
	return $node->poll_query_until('postgres',
		"SELECT coalesce(sum(rows), 0) = $n FROM sfexport.files WHERE relid = '$t'::regclass");
}

# ---- 1. a drain: TRUNCATE; inserts and status reads do not wait for it
sql(q{INSERT INTO ev SELECT g, 'first' FROM generate_series(1, 2000) g});
my $before = filenodes();
SfStorageTest::front($s3, 'POST', '/_front/faults',
	{ kind => 'delay', delay_ms => 6000, method => 'PUT', count => 1 });
sql('SELECT sfexport.flush()');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity
	   WHERE backend_type = 'sfexport worker' AND query LIKE 'staging%'}),
	'the worker is staging (its upload held up for 6 s)');
my $t0 = time;
sql(q{INSERT INTO ev SELECT g, 'during' FROM generate_series(2001, 2010) g});
my $insert_s = time - $t0;
$t0 = time;
my $pending_during = pending('ev');
my $status_s = time - $t0;
my $still = sql(q{SELECT count(*) FROM pg_stat_activity
                 WHERE backend_type = 'sfexport worker' AND query LIKE 'staging%'});
is($still, '1', 'the drain was still running after the INSERT and the status read');
cmp_ok($insert_s, '<', 3, sprintf('an INSERT during the drain did not wait for it (%.2f s)', $insert_s));
cmp_ok($status_s, '<', 3, sprintf('sfexport.status during the drain did not wait for it (%.2f s)', $status_s));
is($pending_during, '2010', 'sfexport.status counts the rows being staged and the new ones');
ok(wait_staged('ev', 2000), 'the drain staged the 2000 rows committed before the flush');
is(pending('ev'), '10', 'the 10 rows inserted during the drain wait for the next flush');
my $after = filenodes();
my @b = split /,/, $before;
my @a = split /,/, $after;
is(scalar(grep { $b[$_] ne $a[$_] } 0 .. 1), 1, 'one segment was emptied by TRUNCATE (new relfilenode)');
my $drained = $b[0] ne $a[0] ? 0 : 1;
is(sql("SELECT count(*) FROM sfexport.outbox_$drained"), '0', 'the drained segment is empty');
sql('SELECT sfexport.flush()');
ok(wait_staged('ev', 2010), 'the next flush stages the 10 rows');
is(pending('ev'), '0', 'nothing pending');

# ---- 2. a transaction still open in the segment to drain
my $open = $node->background_psql('postgres', on_error_stop => 1);
$open->query_safe('BEGIN');
$open->query_safe(q{INSERT INTO ev VALUES (9999, 'open')});
sql(q{INSERT INTO ev SELECT g, 'beside' FROM generate_series(2011, 2110) g});
$before = filenodes();
sql('SELECT sfexport.flush()');
ok(wait_staged('ev', 2110), 'the rows committed beside an open transaction are staged without waiting for it');
is(filenodes(), $before, 'no segment was truncated (staged and deleted row by row)');
$open->query_safe('COMMIT');
$open->quit;
is(pending('ev'), '1', 'the row of the open transaction is pending once it committed');
sql('SELECT sfexport.flush()');
ok(wait_staged('ev', 2111), 'and staged by the next flush');

# ---- 3. a segment that also holds rows of a table that is not due
sql(q{ALTER FOREIGN TABLE ev OPTIONS (ADD flush_size '1kB')});
sql(q{INSERT INTO other SELECT g FROM generate_series(1, 50) g});
$before = filenodes();
sql(q{INSERT INTO ev SELECT g, repeat('x', 100) FROM generate_series(3001, 3100) g});
ok(wait_staged('ev', 2211), 'the table due by flush_size is staged');
is(pending('other'), '50', 'the table that is not due keeps its rows');
is(filenodes(), $before, 'no segment was truncated (it holds rows that are not due)');
sql('SELECT sfexport.flush()');
ok(wait_staged('other', 50), 'a flush stages the other table too');
is(sql('SELECT count(*) FROM sfexport.outbox'), '0', 'the outbox is empty');

# ---- 4. a reader holding the outbox when the drain is done delays the
# TRUNCATE (the worker tries again without queueing), does not prevent it
my $reader = $node->background_psql('postgres', on_error_stop => 1);
$reader->query_safe('BEGIN');
$reader->query_safe('SELECT sum(pending_rows) FROM sfexport.status');
$before = filenodes();
sql(q{INSERT INTO ev SELECT g, repeat('y', 100) FROM generate_series(4001, 4500) g});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	   WHERE a.backend_type = 'sfexport worker' AND l.mode = 'ExclusiveLock' AND l.granted
	     AND l.relation IN ('sfexport.outbox_0'::regclass, 'sfexport.outbox_1'::regclass)}),
	'the worker drains a segment (due by flush_size) while a reader holds the outbox');
usleep(1_500_000);
$t0 = time;
is(sql('SELECT pending_rows FROM sfexport.status WHERE foreign_table = \'other\'::regclass'), '0',
	'another reader is not blocked meanwhile');
cmp_ok(time - $t0, '<', SfTest::secs(3), 'and does not wait');
$reader->query_safe('COMMIT');
$reader->quit;
ok(wait_staged('ev', 2711), 'the drain staged the rows');
@b = split /,/, $before;
@a = split /,/, filenodes();
is(scalar(grep { $b[$_] ne $a[$_] } 0 .. 1), 1, 'and emptied the segment with TRUNCATE once the reader was done');
is(sql(q{SELECT count(*) - count(DISTINCT name) FROM sfexport.files}), '0', 'file names are unique');

# ---- 5. an option changed less than a second after the worker last read
# the triggers (woken by a commit just before): the rows that follow are
# still judged by it (worker.c reads the triggers again a second later;
# before, they waited for the next plan, which in CI once came later than
# three minutes: the end of a load backoff here, flush_interval elsewhere).
sql(q{CREATE FOREIGN TABLE late (id bigint, note text) SERVER sf});
sql(q{ALTER FOREIGN TABLE ev OPTIONS (DROP flush_size)});
for my $round (1 .. 3)
{
	usleep(1_500_000);
	sql(q{INSERT INTO other VALUES (1)});	# the worker reads the triggers now
	sql(q{ALTER FOREIGN TABLE late OPTIONS (ADD flush_size '1kB');
	      INSERT INTO late SELECT g, repeat('z', 100) FROM generate_series(1, 100) g});
	ok($node->poll_query_until('postgres',
		qq{SELECT coalesce(sum(rows), 0) = @{[ 100 * $round ]} FROM sfexport.files WHERE relid = 'late'::regclass}),
		"round $round: rows due by a flush_size set right after a commit are staged");
	sql(q{ALTER FOREIGN TABLE late OPTIONS (DROP flush_size)});
}

# ---- 6. the worker's plan reads what the SQL aggregate reads
sql(q{CREATE FOREIGN TABLE planned (id bigint, note text) SERVER sf});
sql(q{INSERT INTO planned SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE repeat('p', g % 50) END
      FROM generate_series(1, 300) g});
# payloads too large to stay in the row (line has STORAGE EXTERNAL)
sql(q{INSERT INTO planned SELECT g, repeat(md5(g::text), 200) FROM generate_series(301, 305) g});
sql(q{SET sfexport.capture_binary = off;
      INSERT INTO planned SELECT g, 'csv ' || g FROM generate_series(306, 320) g});
sql(q{ALTER FOREIGN TABLE planned ADD COLUMN extra int});	# a second shape
sql(q{INSERT INTO planned SELECT g, 'x', g FROM generate_series(321, 340) g});
# rows of both segments, one of them older than the rest
sql(q{INSERT INTO sfexport.outbox_1 SELECT relid, shape, inserted_at - interval '1 day', line
      FROM ONLY sfexport.outbox_0 WHERE relid = 'planned'::regclass AND shape IN
        (SELECT shape FROM ONLY sfexport.outbox_0 WHERE relid = 'planned'::regclass LIMIT 1)});
sql(q{INSERT INTO sfexport.outbox_0 SELECT relid, shape, inserted_at, line
      FROM ONLY sfexport.outbox_1 WHERE relid = 'planned'::regclass});
my $by_sql = sql(q{SELECT relid, shape, count(*), sum(octet_length(line) + 1)::bigint, min(inserted_at)
                   FROM sfexport.outbox GROUP BY relid, shape ORDER BY relid, min(inserted_at), shape});
my $by_scan = sql(q{SELECT relid, shape, rows, bytes, oldest FROM sfexport_test.outbox_pending()});
like($by_sql, qr/\n/, 'the outbox holds rows of several tables and shapes');
is(sql(q{SELECT count(DISTINCT tableoid) FROM sfexport.outbox WHERE relid = 'planned'::regclass}),
	'2', 'in both segments');
is($by_scan, $by_sql, "the plan's scan reads the rows, bytes and oldest times the SQL aggregate reads");

$node->stop;
done_testing();
