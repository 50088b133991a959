# Files of the size Snowflake wants (src/file_size.c, issue 16): the worker
# flushes a table when its pending rows are estimated to compress to
# file_size, learning the compression ratio from the files it staged.
#  - the defaults: sfexport.file_size 150MB, sfexport.flush_size 0 (off);
#    a malformed file_size is rejected at DDL time;
#  - a sustained stream of small transactions into a table with
#    file_size '256kB' and flush_interval '1h', never calling
#    sfexport.flush(): the worker stages files by itself; the first (the
#    prior ratio, which overestimates) is smaller than file_size, the files
#    after it are close to file_size although the rows compress about 20:1
#    in outbox bytes; what is left below file_size stays pending; a
#    flush() then stages it and every row is in exactly one file;
#  - a restarted worker seeds its ratios from the manifest: its first file
#    is close to file_size too;
#  - flush_interval still bounds how long a row waits when file_size is
#    far away.
# Staging goes to a local directory (files kept), loads to the Snowflake
# emulator, which reads every file back.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $tmp = tempdir('sf_filesize_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $tmp;
my $stage = "$tmp/stage";
mkdir $stage or die;
my $key = SfSnowflake::gen_key($tmp, 'main');
my $node = SfTest::new_node('filesize', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
sub sql { return $node->safe_psql('postgres', $_[0]); }

# ---- defaults and validation
is(sql('SHOW sfexport.file_size'), '150MB', 'sfexport.file_size defaults to 150MB (Snowflake: 100-250 MB)');
is(sql('SHOW sfexport.flush_size'), '0', 'sfexport.flush_size is off by default');
my ($rc, $out, $err) = $node->psql('postgres', q{CREATE SERVER bad FOREIGN DATA WRAPPER sfexport
	OPTIONS (account 'a', database 'D', location 'file:///tmp/x/', file_size 'huge')});
isnt($rc, 0, 'a malformed file_size is rejected');
like($err, qr/invalid value for option "file_size": "huge"/, 'with the option named');

my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
SfSnowflake::emu_query($emu, q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () COMPRESSION = AUTO});
SfSnowflake::emu_query($emu, qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
SfSnowflake::emu_query($emu, q{CREATE TABLE DB.PUBLIC.EV ("id" NUMBER, "note" VARCHAR)});
SfSnowflake::emu_query($emu, q{CREATE TABLE DB.PUBLIC.SLOW ("id" NUMBER)});
my $pem = SfSnowflake::lit($key->{pem});
sql(qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', keep_files 'true',
		location 'file://$stage/', flush_interval '1h', max_file_size '1MB');
	CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'LOADER', private_key $pem);
	CREATE FOREIGN TABLE ev (id bigint, note text) SERVER sf OPTIONS (table 'EV', file_size '256kB');
	CREATE FOREIGN TABLE slow (id bigint) SERVER sf OPTIONS (table 'SLOW', flush_interval '2s');
});
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'sfexport worker'}),
	'worker running');

# ---- a sustained stream, never flushed by hand
my $target = 256 * 1024;
my $batch = 2500;			# rows per transaction, about 0.5 MB of outbox bytes
my $batches = 70;
my $rows = $batch * $batches;
# A stream the worker keeps up with: the next transaction once the worker
# is idle (it wakes at each commit, stages what is due, loads, sleeps).
my $idle = q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'sfexport worker' AND state = 'idle'};
my $t0 = time;
for my $b (0 .. $batches - 1)
{
	my ($lo, $hi) = ($b * $batch + 1, ($b + 1) * $batch);
	sql(qq{INSERT INTO ev SELECT g, 'event ' || (g % 100) || ' ' || repeat(chr(97 + (g % 26)), 180)
	       FROM generate_series($lo, $hi) g});
	$node->poll_query_until('postgres', $idle) or die 'the worker is never idle';
}
note(sprintf('streamed %d rows in %d transactions in %.1f s', $rows, $batches, time - $t0));
ok($node->poll_query_until('postgres', q{
	SELECT staged_files = 0 FROM sfexport.status WHERE foreign_table = 'ev'::regclass}),
	'the files staged by the stream are loaded')
  or diag(sql('SELECT * FROM sfexport.status'));
my @sizes = split /\n/, sql(q{SELECT bytes FROM sfexport.files WHERE relid = 'ev'::regclass ORDER BY name});
my ($staged_rows, $outbox_bytes) = split /\|/, sql(q{SELECT sum(rows), sum(raw_bytes) FROM sfexport.files
	WHERE relid = 'ev'::regclass});
note('file sizes (bytes, in order): ' . join(' ', @sizes));
cmp_ok($staged_rows, '<', $rows, 'rows below file_size are left pending (flush_interval is 1 h)');
cmp_ok($sizes[0], '<', $target, "the first file, from the prior ratio, is below file_size ($sizes[0] bytes)");
my @later = sort { $a <=> $b } @sizes[1 .. $#sizes];
my $median = $later[int(@later / 2)];
cmp_ok($median, '>=', 0.6 * $target, "the median later file is near file_size ($median bytes, learned ratio)");
cmp_ok($median, '<=', 1.6 * $target, "and not far above it ($median bytes)");
cmp_ok($later[-1], '<=', 1024 * 1024 + 64 * 1024, "no file is above max_file_size (largest $later[-1] bytes)");
cmp_ok(scalar(@sizes), '<', $batches / 4, scalar(@sizes) . ' files: not one per transaction');

# ---- what is left: flush() stages it; every row is in exactly one file
sql('SELECT sfexport.flush()');
ok($node->poll_query_until('postgres',
	"SELECT coalesce(sum(rows), 0) = $rows FROM sfexport.files WHERE relid = 'ev'::regclass"),
	'after flush() every streamed row is staged');
is(sql(q{SELECT pending_rows FROM sfexport.status WHERE foreign_table = 'ev'::regclass}), '0',
	'and none is pending');
ok($node->poll_query_until('postgres', q{
	SELECT staged_files = 0 AND failed_files = 0 FROM sfexport.status WHERE foreign_table = 'ev'::regclass}),
	'and every file is loaded');
is(SfSnowflake::emu_query($emu, 'SELECT COUNT(*) FROM DB.PUBLIC.EV')->{rows}[0][0], $rows,
	'every row arrived in Snowflake');
# the staged files, read back: each id once
my @files = glob("$stage/*/*/*.csv.gz");
my %seen;
my $dups = 0;
for my $f (@files)
{
	open my $fh, '-|', 'gzip', '-dc', $f or die;
	while (<$fh>)
	{
		my ($id) = /^(\d+),/ or next;
		$dups++ if $seen{$id}++;
	}
	close $fh;
}
is(scalar(keys %seen), $rows, 'the staged files hold every row');
is($dups, 0, 'and none twice');

# ---- a restarted worker: the ratio comes from the manifest's newest files
my $old_pid = sql(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sfexport worker'});
sql("SELECT pg_terminate_backend($old_pid)");
ok($node->poll_query_until('postgres', qq{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE backend_type = 'sfexport worker' AND pid <> $old_pid}), 'the launcher starts a new worker');
my $before = sql(q{SELECT count(*) FROM sfexport.files WHERE relid = 'ev'::regclass});
my $more = 24;
for my $b ($batches .. $batches + $more - 1)
{
	my ($lo, $hi) = ($b * $batch + 1, ($b + 1) * $batch);
	sql(qq{INSERT INTO ev SELECT g, 'event ' || (g % 100) || ' ' || repeat(chr(97 + (g % 26)), 180)
	       FROM generate_series($lo, $hi) g});
	$node->poll_query_until('postgres', $idle) or die 'the worker is never idle';
}
my @after = split /\n/, sql(qq{SELECT bytes FROM sfexport.files WHERE relid = 'ev'::regclass
	ORDER BY name OFFSET $before});
note('file sizes after the restart: ' . join(' ', @after));
ok(@after >= 1, 'the new worker stages the stream by itself');
cmp_ok($after[0] // 0, '>=', 0.6 * $target, "its first file is near file_size (" . ($after[0] // 0) . ' bytes)');
cmp_ok($after[0] // 0, '<=', 1.6 * $target, 'and not far above it');
$rows += $batch * $more;
sql('SELECT sfexport.flush()');
ok($node->poll_query_until('postgres', qq{SELECT coalesce(sum(rows), 0) = $rows FROM sfexport.files
	WHERE relid = 'ev'::regclass}), 'every row is staged');

# ---- flush_interval still bounds a row's wait
$t0 = time;
sql('INSERT INTO slow VALUES (1)');
ok($node->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM sfexport.files WHERE relid = 'slow'::regclass}),
	'a single row far below file_size is staged by flush_interval');
my $waited = time - $t0;
cmp_ok($waited, '<', SfTest::secs(15), sprintf('within %.1f s (flush_interval 2s)', $waited));

$node->stop;
done_testing();
