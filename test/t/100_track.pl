# Tracked tables (sfexport.track, docs/tracking.md), against the emulator:
#  - track() refuses a table without a primary key or replica identity
#    index (SQLSTATE 55000, with the hint), and a relation that is not a
#    table; a replica identity index is accepted;
#  - setup_table() on a tracked table creates the changes table and the
#    mirror with its primary key;
#  - rows that existed before tracking arrive through the chunked snapshot
#    (sfexport.snapshot, one block per chunk) while four pgbench clients
#    run random INSERT / upsert / UPDATE / key-changing UPDATE / DELETE /
#    TRUNCATE: the mirror equals the source row for row;
#  - a SIGKILL of the whole server (worker included) while the MERGE
#    request runs in Snowflake: after the restart the worker sends it
#    again, it finds the changes consumed, and the mirror still equals
#    the source;
#  - ALTER TABLE ADD COLUMN reaches the changes table (event trigger) and
#    the mirror (the worker's schema evolution); a changed column type
#    fails the capture with SQLSTATE 42804 and the statement with it;
#  - history mode appends every change (op, number, time, row) in the
#    merging transaction; history only (mirror => false) too;
#  - a change whose COPY failed holds back the merge of a later change of
#    the same key that loaded first; both loaded, the later one wins;
#  - README's example runs as written and mirrors its table;
#  - untrack() stops the capture and keeps what was captured;
#  - a trigger of another role's table naming these changes is refused.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfReadme;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use IPC::Run;
use Time::HiRes qw(usleep);
use PostgreSQL::Test::Utils;
use Test::More;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

my $node = SfTest::new_node('track', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		warehouse 'WH', location 'file://$stage/', flush_interval '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ SfSnowflake::lit($key->{pem}) ]});
});

sub sq { return $node->safe_psql('postgres', $_[0]); }
sub sfrows { return SfSnowflake::emu_query($emu, $_[0])->{rows}; }

# ---- refusals
sq(q{CREATE TABLE nokey (a int, b text)});
my ($rc, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
SELECT sfexport.track('nokey', 'sf')});
like($err, qr/ERROR:  55000: table public.nokey has no primary key or replica identity index/,
	'a table without a key is refused');
like($err, qr/HINT:  Add a primary key/, 'with a hint');
is(sq(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'nokey'::regclass}), '0',
	'and nothing is left behind');
sq(q{CREATE VIEW v AS SELECT 1 AS a});
($rc, $out, $err) = $node->psql('postgres', q{SELECT sfexport.track('v', 'sf')});
like($err, qr/"public.v" is not an ordinary table/, 'a view is refused');
sq(q{CREATE TABLE ri (a int NOT NULL, b text); CREATE UNIQUE INDEX ri_a ON ri (a);
	ALTER TABLE ri REPLICA IDENTITY USING INDEX ri_a});
sq(q{SELECT sfexport.setup_stage('sf')});
is(sq(q{SELECT sfexport.track('ri', 'sf')}), 'ri_sfexport_changes',
	'a replica identity index is a key');
is(sq(q{SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'ri'::regclass}),
	'sfexport_track:A,sfexport_track_truncate:A', 'its triggers fire always, under session_replication_role = replica too');
like(sq(q{SELECT ftoptions::text FROM pg_foreign_table WHERE ftrelid = 'ri_sfexport_changes'::regclass}),
	qr/merge_into=ri,merge_keys=a/, 'the changes table names the mirror and its key');
($rc, $out, $err) = $node->psql('postgres', q{SELECT sfexport.track('ri', 'sf')});
like($err, qr/table public.ri is tracked already/, 'tracking twice is refused');

# ---- the source: rows before tracking, spread over many blocks
sq(q{SELECT sfexport.setup_table('ri')});
sq(q{CREATE TABLE src (id int PRIMARY KEY, v text NOT NULL, n int, pad text);
	INSERT INTO src SELECT g, md5(g::text), g, repeat('p', 200) FROM generate_series(1, 1500) g});
is(sq(q{SELECT sfexport.track('src', 'sf', snapshot => false)}), 'src_sfexport_changes',
	'track() returns the changes foreign table');
my $setup = sq(q{SELECT string_agg(s, E'\n') FROM sfexport.setup_table('src') s});
like($setup, qr/CREATE TRANSIENT TABLE IF NOT EXISTS "DB"."PUBLIC"."src_sfexport_changes" \("_sf_op" VARCHAR, "_sf_seq" NUMBER\(19,0\), "_sf_at" TIMESTAMP_TZ[^,]*, "id"/,
	'setup_table() on a tracked table creates its changes table, transient');
like($setup, qr/CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."src" \("id" NUMBER\(10,0\), "v" VARCHAR, "n" NUMBER\(10,0\), "pad" VARCHAR, PRIMARY KEY \("id"\)\)/,
	'setup_table() on a tracked table creates its mirror with the primary key');
like($setup, qr/CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."src_sfexport_changes_applied" \("batch" NUMBER\(19,0\), "request" VARCHAR\)/,
	'and the table of its batch number');

# ---- random changes from four clients while the snapshot runs in chunks
my $script = "$kdir/workload.sql";
open my $fh, '>', $script or die;
print $fh <<'EOS';
\set k random(1, 400)
\set r random(1, 1000)
\if :r <= :trunc
TRUNCATE src;
\elif :r <= 350
INSERT INTO src VALUES (:k, md5(:r::text), :r, 'i') ON CONFLICT (id) DO UPDATE SET v = excluded.v, n = src.n + 1;
\elif :r <= 650
UPDATE src SET n = n + 1, v = v || 'u' WHERE id = :k;
\elif :r <= 750
UPDATE src SET id = id + 1000000 WHERE id = :k AND NOT EXISTS (SELECT 1 FROM src WHERE id = :k + 1000000);
\elif :r <= 800
BEGIN;
UPDATE src SET n = -1 WHERE id = :k;
DELETE FROM src WHERE id = :k;
INSERT INTO src VALUES (:k, 'again', 0, NULL) ON CONFLICT DO NOTHING;
COMMIT;
\else
DELETE FROM src WHERE id = :k OR id = :k + 1000000;
\endif
EOS
close $fh;
sub pgbench
{
	my ($trunc, $out, $err) = @_;
	return IPC::Run::start(
		[ 'pgbench', '-n', '-f', $script, '-c', '4', '-j', '2', '-t', '1000', '--max-tries=20',
		  '-D', "trunc=$trunc", '-h', $node->host, '-p', $node->port, 'postgres' ],
		'>', $out, '2>', $err);
}
# first without TRUNCATE, so that the snapshot's rows matter in the end
my ($pgb_out, $pgb_err) = ('', '');
my $pgb = pgbench(0, \$pgb_out, \$pgb_err);
sq(q{CALL sfexport.snapshot('src', 1)});
ok($pgb->finish, 'the clients ran') or diag($pgb_err);
note $pgb_out =~ /(number of transactions actually processed: \S+|number of failed transactions: .*)/g;
cmp_ok(sq(q{SELECT (SELECT count(*) FROM sfexport.outbox WHERE relid = 'src_sfexport_changes'::regclass)
	  + (SELECT coalesce(sum(rows), 0) FROM sfexport.files WHERE relid = 'src_sfexport_changes'::regclass)}),
	'>', 1500, 'snapshot rows and changes were captured');
cmp_ok(sq(q{SELECT count(*) FROM src WHERE id > 400 AND id <= 1500}), '>', 1000,
	'rows only the snapshot exports are there');

my @columns = qw(id v n pad);
sub source_rows
{
	my $cols = join(', ', @columns);
	return sq(qq{SELECT coalesce(string_agg(concat_ws('|', $cols), E'\n' ORDER BY id), '') FROM src});
}
sub mirror_rows
{
	my $cols = join(', ', map { qq{"$_"} } @columns);
	# (a column the worker has not added yet: not equal yet)
	my $rows = eval { sfrows(qq{SELECT $cols FROM DB.PUBLIC."src" ORDER BY "id"}) } // [];
	return join("\n", map { join('|', grep { defined } @$_) } @$rows);
}
# poll until the mirror equals the source (or the deadline)
sub mirror_equals
{
	my ($deadline) = @_;
	my $want = source_rows();
	my $got = '';
	my $t0 = time;
	while (time - $t0 < $deadline)
	{
		$got = mirror_rows();
		return 1 if $got eq $want;
		sq(q{SELECT sfexport.flush()});
		usleep(300_000);
	}
	my @w = split /\n/, $want;
	my @g = split /\n/, $got;
	diag("source " . scalar(@w) . " rows, mirror " . scalar(@g) . " rows");
	for my $i (0 .. $#w) { if (($g[$i] // '') ne $w[$i]) { diag("first difference: source '$w[$i]' mirror '" . ($g[$i] // '') . "'"); last; } }
	diag(sq(q{SELECT state, last_error FROM sfexport.files WHERE state <> 'loaded'}));
	return 0;
}
sq(q{SELECT sfexport.flush()});
ok(mirror_equals(SfTest::secs(40)), 'the mirror equals the source row for row');

# then with TRUNCATE now and then (1 in 1000 transactions)
$pgb = pgbench(1, \$pgb_out, \$pgb_err);
ok($pgb->finish, 'the clients ran again, with TRUNCATE') or diag($pgb_err);
sq(q{SELECT sfexport.flush()});
ok(mirror_equals(SfTest::secs(40)), 'the mirror equals the source after TRUNCATEs too');
cmp_ok(sq(q{SELECT count(*) FROM src}), '>', 0, 'with rows left to compare');
is(sfrows(q{SELECT COUNT(*) FROM DB.PUBLIC."src_sfexport_changes"})->[0][0], '0',
	'the merged changes are gone from the changes table');

# ---- SIGKILL while the MERGE runs in Snowflake
my $merges_before = scalar @{ SfSnowflake::statement_log($emu, qr/MERGE INTO/) };
SfSnowflake::admin($emu, 'POST', 'faults',
	{ action => 'slow', delay_ms => 2500, statement => 'MERGE INTO', count => 1 });
sq(q{UPDATE src SET n = n + 100 WHERE id % 3 = 0; DELETE FROM src WHERE id % 7 = 0;
	INSERT INTO src VALUES (5000000, 'after', 1, NULL)});
sq(q{SELECT sfexport.flush()});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'merging the changes of%'}),
	'the worker is merging');
SfTest::kill_postmaster($node);
$node->start;
# the killed worker's request still runs in Snowflake (nothing cancelled
# it); let it end first, so that the comparisons below see its effect too
my $running = 1;
for (1 .. 150)
{
	$running = grep { ($_->{status} // '') eq 'running' } @{ SfSnowflake::statement_log($emu, qr/MERGE INTO/) };
	last unless $running;
	usleep(100_000);
}
is($running, 0, "the killed worker's request has ended in Snowflake");
# (when the restarted worker's request ran first, the killed one's found the
# batch number advanced and failed at the fence; which runs first is timing)
note 'requests refused by the batch number fence: '
  . scalar(grep { ($_->{status} // '') eq 'failed' && ($_->{message} // '') =~ /SELECT 1 \/ / }
	  @{ SfSnowflake::statement_log($emu, qr/MERGE INTO/) });
ok(mirror_equals(SfTest::secs(40)), 'after the kill the mirror still equals the source');
cmp_ok(scalar @{ SfSnowflake::statement_log($emu, qr/MERGE INTO/) }, '>=', $merges_before + 2,
	'the merge was sent again after the restart');
cmp_ok(sfrows(q{SELECT "batch" FROM DB.PUBLIC."src_sfexport_changes_applied"})->[0][0], '>', 1,
	'each applied request advanced the batch number');

# ---- schema evolution: a column added to the tracked table reaches the mirror
sq(q{ALTER TABLE src ADD COLUMN extra text});
like(sq(q{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	WHERE attrelid = 'src_sfexport_changes'::regclass AND attnum > 0}),
	qr/,extra$/, 'ALTER TABLE ADD COLUMN adds the column to the changes table');
sq(q{UPDATE src SET extra = 'x' || id WHERE id % 5 = 0; INSERT INTO src VALUES (7000000, 'new', 1, NULL, 'e')});
push @columns, 'extra';
sq(q{SELECT sfexport.flush()});
ok(mirror_equals(SfTest::secs(30)), 'the mirror gains the column and its values');

# a column whose type changed: the capture refuses, the statement writes nothing
sq(q{ALTER TABLE ri ALTER COLUMN b TYPE varchar(5)});
($rc, $out, $err) = $node->psql('postgres', q{\set VERBOSITY verbose
INSERT INTO ri VALUES (1, 'abc')});
like($err, qr/ERROR:  42804: column "b" of a tracked table has type character varying\(5\), its changes table "ri_sfexport_changes" has text/,
	'a changed column type fails the capture clearly');
is(sq(q{SELECT count(*) FROM ri}), '0', 'and the row was not written either');

# ---- history mode: every change appended too, in order, with its time
sq(q{CREATE TABLE h (k int PRIMARY KEY, v text)});
sq(q{SELECT sfexport.track('h', 'sf', history => true)});
like(sq(q{SELECT string_agg(s, E'\n') FROM sfexport.setup_table('h') s}),
	qr/CREATE TABLE IF NOT EXISTS "DB"."PUBLIC"."h_history" \("_sf_op" VARCHAR, "_sf_seq" NUMBER\(19,0\), "_sf_at" TIMESTAMP_TZ[^,]*, "k" NUMBER\(10,0\), "v" VARCHAR\)/,
	'setup_table() creates the history table');
sq($_) for (q{INSERT INTO h VALUES (1, 'a'), (2, 'b')}, q{UPDATE h SET v = 'c' WHERE k = 1},
	q{DELETE FROM h WHERE k = 2}, q{UPDATE h SET k = 3 WHERE k = 1});
sq(q{SELECT sfexport.flush()});
my $hist = '';
for (1 .. 100)
{
	my $rows = eval { sfrows(
		q{SELECT "_sf_op", "k", "v" FROM DB.PUBLIC."h_history" WHERE "_sf_at" IS NOT NULL ORDER BY "_sf_seq"}) } // [];
	$hist = join(' ', map { join(':', grep { defined } @$_) } @$rows);
	last if $hist =~ /U:3/;
	usleep(200_000);
}
is($hist, 'I:1:a I:2:b U:1:c D:2:b D:1:c U:3:c', 'the history has every change in order, a key change as D and U');
is(join(' ', map { join(':', @$_) } @{ sfrows(q{SELECT "k", "v" FROM DB.PUBLIC."h" ORDER BY "k"}) }), '3:c',
	'and the mirror the last state');

# history only (mirror => false): a changelog, no mirror
($rc, $out, $err) = $node->psql('postgres', q{SELECT sfexport.track('h', 'sf', mirror => false)});
like($err, qr/a tracked table needs a mirror or a history/, 'mirror => false needs history => true');
sq(q{CREATE TABLE ho (k int PRIMARY KEY, v text)});
sq(q{SELECT sfexport.track('ho', 'sf', history => true, mirror => false)});
my $ho_setup = sq(q{SELECT string_agg(s, E'\n') FROM sfexport.setup_table('ho') s});
like($ho_setup, qr/"ho_history"/, 'history only: setup_table() creates the history table');
unlike($ho_setup, qr/"ho" \(/, 'and no mirror');
sq($_) for (q{INSERT INTO ho VALUES (1, 'a')}, q{DELETE FROM ho});
sq(q{SELECT sfexport.flush()});
$hist = '';
for (1 .. 100)
{
	my $rows = eval { sfrows(q{SELECT "_sf_op", "k", "v" FROM DB.PUBLIC."ho_history" ORDER BY "_sf_seq"}) } // [];
	$hist = join(' ', map { join(':', grep { defined } @$_) } @$rows);
	last if $hist =~ /D/;
	usleep(200_000);
}
is($hist, 'I:1:a D:1:a', 'the history-only table gets every change');

# ---- an earlier change whose COPY failed holds back a later one of the same key
SfSnowflake::admin($emu, 'POST', 'faults',
	{ action => '422', statement => 'COPY INTO "DB"."PUBLIC"."h_sfexport_changes"', count => 1,
	  code => '000603', sql_state => 'XX000', message => 'SQL execution internal error' });
sq(q{UPDATE h SET v = 'old' WHERE k = 3});
sq(q{SELECT sfexport.flush()});
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM sfexport.files
	WHERE relid = 'h_sfexport_changes'::regclass AND state = 'staged' AND last_error IS NOT NULL}),
	'the COPY of the earlier change failed; its file waits');
my $failed_file = sq(q{SELECT file_id FROM sfexport.files WHERE relid = 'h_sfexport_changes'::regclass AND state = 'staged'});
sq(q{UPDATE h SET v = 'new' WHERE k = 3});
ok($node->poll_query_until('postgres', qq{SELECT count(*) = 1 FROM sfexport.files
	WHERE relid = 'h_sfexport_changes'::regclass AND state = 'loaded' AND file_id > $failed_file}),
	'the later change is loaded first');
my $held = 1;
for (1 .. 8)
{
	my $m = join(' ', map { join(':', @$_) } @{ sfrows(q{SELECT "k", "v" FROM DB.PUBLIC."h" ORDER BY "k"}) });
	$held = 0 if $m ne '3:c';
	usleep(200_000);
}
ok($held, 'and not merged while the earlier one is not loaded');
sq(q{SELECT sfexport.flush()});		# a superuser's flush() ends the backoff
my $mirror = '';
for (1 .. 150)
{
	$mirror = join(' ', map { join(':', @$_) } @{ sfrows(q{SELECT "k", "v" FROM DB.PUBLIC."h" ORDER BY "k"}) });
	last if $mirror ne '3:c';
	usleep(200_000);
}
is($mirror, '3:new', 'once both are loaded the later one wins');

# ---- README's example, as written
my ($readme) = grep { /sfexport\.track\(/ } SfReadme::blocks(qr/Tracked tables/, 'sql');
ok($readme, 'README has the tracking example');
sq(q{CREATE TABLE public.orders (id bigint PRIMARY KEY, customer text, total numeric(12,2));
	INSERT INTO orders VALUES (1, 'a', 1.50), (2, 'b', 2.25)});
for my $stmt (SfReadme::statements($readme))
{
	my ($rc1, $out1, $err1) = $node->psql('postgres', $stmt);
	is($rc1, 0, "README: $stmt") or diag($err1);
}
sq(q{UPDATE orders SET total = 9.99 WHERE id = 2});
my $orders = '';
for (1 .. 150)
{
	my $rows = eval { sfrows(q{SELECT "id", "total" FROM DB.PUBLIC."orders" ORDER BY "id"}) } // [];
	$orders = join(' ', map { join(':', @$_) } @$rows);
	last if $orders eq '1:1.50 2:9.99';
	sq(q{SELECT sfexport.flush()});
	usleep(200_000);
}
is($orders, '1:1.50 2:9.99', 'the README example mirrors the table');

# ---- track() with its default snapshot: the rows a table has, in the same transaction
sq(q{CREATE TABLE s2 (id int PRIMARY KEY, v text); INSERT INTO s2 VALUES (1, 'x'), (2, 'y'), (3, NULL)});
sq(q{SELECT sfexport.track('s2', 'sf')});
sq(q{SELECT sfexport.setup_table('s2')});
my $s2 = '';
for (1 .. 150)
{
	my $rows = eval { sfrows(q{SELECT "id", "v" FROM DB.PUBLIC."s2" ORDER BY "id"}) } // [];
	$s2 = join(' ', map { join(':', grep { defined } @$_) } @$rows);
	last if $s2 eq '1:x 2:y 3';
	sq(q{SELECT sfexport.flush()});
	usleep(200_000);
}
is($s2, '1:x 2:y 3', 'track() exports the rows the table had');

# ---- untrack: no more capture, what was captured stays
is(sq(q{SELECT sfexport.untrack('src')}), 'src_sfexport_changes', 'untrack() returns the changes table');
sq(q{INSERT INTO src VALUES (6000000, 'untracked', 1, NULL)});
($rc, $out, $err) = $node->psql('postgres', q{SELECT sfexport.track('src', 'sf')});
like($err, qr/relation public.src_sfexport_changes exists already.*HINT:  Once sfexport.status shows nothing pending/s,
	'tracking again while the old changes table exists is refused with a hint');
is(sq(q{SELECT count(*) FROM sfexport.outbox WHERE relid = 'src_sfexport_changes'::regclass}), '0',
	'changes after untrack() are not captured');

# ---- a trigger of another role's table cannot write into these changes
sq(q{CREATE ROLE mallory LOGIN; GRANT CREATE ON SCHEMA public TO mallory});
($rc, $out, $err) = $node->psql('postgres', q{
	SET ROLE mallory;
	CREATE TABLE m (id int PRIMARY KEY, v text NOT NULL, n int, pad text);
	CREATE TRIGGER sfexport_track AFTER INSERT ON m FOR EACH ROW
	  EXECUTE FUNCTION sfexport.track_row_trigger('public', 'src_sfexport_changes');
	INSERT INTO m VALUES (1, 'forged', 1, NULL)});
like($err, qr/permission denied to capture changes into "src_sfexport_changes"/,
	'a forged trigger is refused');
is(sq(q{SELECT count(*) FROM sfexport.outbox WHERE relid = 'src_sfexport_changes'::regclass}), '0',
	'and wrote nothing');

done_testing();
