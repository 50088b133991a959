# The compressor of staged files (src/compress.c), through the test surface
# (sfexport_test.compress) and through the worker:
#  - every level of gzip (ISA-L at 1-3, zlib at 4-9) and zstd (1-19) writes
#    exactly one gzip member / one zstd frame (with its checksum) that
#    decompresses to the input: empty input, 1 byte, one byte per write, a
#    write larger than the input buffer, a stream of several zstd jobs;
#  - level 0 is the default (level 1); higher levels make smaller files;
#  - libzstd's worker threads have PostgreSQL's signals blocked, a cancel
#    during a threaded compression stops it and leaves the backend usable;
#  - staged zstd files respect max_file_size although the workers lag
#    behind, and every row arrives once.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use JSON::PP ();
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = SfTest::new_node('compress', test_surface => 1,
	conf => "log_statement = none\nsfexport.launcher_naptime = 1s\n");
my $tmp = tempdir('sf_compress_XXXX', TMPDIR => 1, CLEANUP => 1);

# What a reader sees in a compressed file: the number of gzip members or
# zstd frames, whether the last one is complete, trailing bytes, the
# decompressed size and md5, for zstd whether frames carry a checksum.
my $checker = "$tmp/check.py";
open my $fh, '>', $checker or die;
print $fh <<'PY';
import hashlib, json, sys, zlib
kind, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
out, units, complete, checksum = b"", 0, True, None
rest = data
while rest:
    if kind == "gzip":
        d = zlib.decompressobj(31)
    else:
        import zstandard
        checksum = zstandard.get_frame_parameters(rest).has_checksum if checksum in (None, True) else False
        d = zstandard.ZstdDecompressor().decompressobj()
    out += d.decompress(rest)
    units += 1
    complete = d.eof
    if not d.eof:
        break
    rest = d.unused_data
print(json.dumps({"units": units, "complete": complete, "size": len(out),
                  "md5": hashlib.md5(out).hexdigest(), "checksum": checksum}))
PY
close $fh;

sub check_file
{
	my ($kind, $path) = @_;
	my $json = `'${\ SfTest::python()}' '$checker' $kind '$path'`;
	die "checker failed on $path" if $? != 0;
	return JSON::PP::decode_json($json);
}

# compress the bytea that $data_sql yields; returns (compressed bytes, md5 of the input)
my $n = 0;
sub compress
{
	my ($kind, $level, $data_sql, $chunk) = @_;
	$chunk //= 65536;
	my $res = $node->safe_psql('postgres', qq{
		SELECT encode(sfexport_test.compress('$kind', $level, d, $chunk), 'hex'), md5(d), length(d)
		  FROM ($data_sql) s(d)});
	my ($hex, $md5, $len) = split /\|/, $res;
	my $path = "$tmp/out" . $n++;
	open my $out, '>:raw', $path or die;
	print $out pack('H*', $hex);
	close $out;
	return ($path, $md5, $len);
}

my %inputs = (
	'empty' => [ q{SELECT ''::bytea} ],
	'1 byte' => [ q{SELECT 'x'::bytea} ],
	'1 byte per write' => [ q{SELECT string_agg(g::text, ',')::bytea FROM generate_series(1, 20000) g}, 1 ],
	'a write larger than the input buffer' =>
	  [ q{SELECT string_agg(md5(g::text), '')::bytea FROM generate_series(1, 20000) g}, 300000 ],
	# rows of bench/flush's shape, as JSON
	'several zstd jobs (3.5 MB, odd writes)' => [ q{
		SELECT string_agg(row_to_json(r)::text, E'\n')::bytea
		  FROM (SELECT g AS id, 'kind_' || (g % 7) AS kind, '2024-01-01'::timestamptz + g * interval '1 s' AS at,
		               jsonb_build_object('path', '/p/' || (g % 997), 'ref', md5(g::text), 'session', md5((g / 10)::text),
		                                  'agent', 'Mozilla/5.0 (X11; Linux x86_64) bench/' || (g % 13), 'n', g) AS props
		          FROM generate_series(1, 14000) g) r}, 99991 ],
);
my %sizes;
for my $case ([ 'gzip', 0 ], [ 'gzip', 1 ], [ 'gzip', 2 ], [ 'gzip', 3 ], [ 'gzip', 4 ], [ 'gzip', 9 ],
	[ 'zstd', 0 ], [ 'zstd', 1 ], [ 'zstd', 3 ], [ 'zstd', 19 ])
{
	my ($kind, $level) = @$case;
	for my $name (sort keys %inputs)
	{
		my ($path, $md5, $len) = compress($kind, $level, @{ $inputs{$name} });
		my $r = check_file($kind, $path);
		my $what = "$kind level $level, $name";
		ok($r->{units} == 1 && $r->{complete}, "$what: one complete " . ($kind eq 'gzip' ? 'gzip member' : 'zstd frame'))
		  or diag explain $r;
		is($r->{md5}, $md5, "$what: decompresses to the input ($len bytes)");
		ok($r->{checksum}, "$what: the frame has a checksum") if $kind eq 'zstd';
		$sizes{$kind}{$level}{$name} = -s $path;
	}
}
my $big = 'several zstd jobs (3.5 MB, odd writes)';
is($sizes{gzip}{0}{$big}, $sizes{gzip}{1}{$big}, 'gzip level 0 is the default, level 1');
is($sizes{zstd}{0}{$big}, $sizes{zstd}{1}{$big}, 'zstd level 0 is the default, level 1');
cmp_ok($sizes{gzip}{3}{$big}, '<=', $sizes{gzip}{1}{$big}, 'gzip level 3 (ISA-L) is no larger than level 1');
cmp_ok($sizes{gzip}{4}{$big}, '<', $sizes{gzip}{3}{$big}, 'gzip level 4 (zlib) is smaller than level 3 (ISA-L)');
cmp_ok($sizes{gzip}{9}{$big}, '<', $sizes{gzip}{4}{$big}, 'gzip level 9 is smaller than level 4');
cmp_ok($sizes{zstd}{19}{$big}, '<', $sizes{zstd}{1}{$big}, 'zstd level 19 is smaller than level 1');
my ($p, $md5) = compress('none', 0, $inputs{'1 byte'}[0]);
is(slurp_file($p), 'x', 'compression none passes bytes through');

# level bounds are the option's: 1-9 for gzip, 1-19 for zstd (test/sql/options.sql)
my ($ret, $out, $err) = $node->psql('postgres', "SELECT sfexport_test.compress('brotli', 1, 'x')");
like($err, qr/unknown compression "brotli"/, 'an unknown compression is refused');

# ---- libzstd's worker threads: signals blocked, cancel works
# 16 MB of hex digits at level 12 (the highest with a worker thread): seconds
my $slow = q{SELECT string_agg(md5(g::text), '')::bytea FROM generate_series(1, 524288) g};
my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/start/, "\\echo start\nSELECT length(sfexport_test.compress('zstd', 12, ($slow)));\n");
my $busy = "FROM pg_stat_activity WHERE query LIKE '%compress(''zstd'', 12%' AND state = 'active' AND pid <> pg_backend_pid()";
$node->poll_query_until('postgres', "SELECT count(*) = 1 $busy");
my $pid = $node->safe_psql('postgres', "SELECT pid $busy");
my %threads;
my $deadline = time + SfTest::secs(60);
while (!%threads && time < $deadline)
{
	for my $task (glob("/proc/$pid/task/*"))
	{
		my ($tid) = $task =~ m{/(\d+)$};
		next if $tid == $pid;
		my $status = eval { slurp_file("$task/status") } // next;
		($threads{$tid}) = $status =~ /^SigBlk:\s*([0-9a-f]+)/m;
	}
	usleep(20_000) unless %threads;
}
ok(%threads, 'libzstd runs a worker thread in the backend') or diag "no thread in /proc/$pid/task";
# bits 1 << (signal - 1): SIGHUP 1, SIGINT 2, SIGQUIT 3, SIGUSR1 10, SIGUSR2 12, SIGALRM 14,
# SIGTERM 15, SIGCHLD 17: every signal a backend handles
my @sigs = (1, 2, 3, 10, 12, 14, 15, 17);
for my $tid (sort keys %threads)
{
	my $mask = hex($threads{$tid});
	is(join(',', grep { !($mask & (1 << ($_ - 1))) } @sigs), '',
		"thread $tid blocks SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM and SIGCHLD (SigBlk $threads{$tid})");
}
my $t0 = time;
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't', 'cancel sent');
$node->poll_query_until('postgres', "SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $pid");
my $took = time - $t0;
cmp_ok($took, '<', SfTest::secs(3), sprintf('a cancel stops a threaded compression in %.2f s', $took));
$bg->query('SELECT 1');
like($bg->{stderr}, qr/canceling statement due to user request/, 'the compression was cancelled');
$bg->{stderr} = '';
my $r = $bg->query_safe(q{SELECT md5(sfexport_test.compress('zstd', 1, 'again'))});
ok(length($r) == 32, 'the backend compresses again after the cancel');
my $left = () = glob("/proc/$pid/task/*");
is($left, 1, 'the cancelled compression left no thread behind');
$bg->quit;

# ---- staged zstd files: max_file_size with workers that lag behind
my $key = SfSnowflake::gen_key($tmp, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;
my $pem = SfSnowflake::lit($key->{pem});
$node->safe_psql('postgres', qq{
	CREATE SERVER s_zstd FOREIGN DATA WRAPPER sfexport OPTIONS (account 'testacct', url '$emu->{url}',
	  database 'DB', location 'file://$stage/', flush_interval '1h', compression 'zstd',
	  max_file_size '1MB', keep_files 'true');
	CREATE USER MAPPING FOR PUBLIC SERVER s_zstd OPTIONS (user 'LOADER', private_key $pem);
	CREATE FOREIGN TABLE t_zstd (id int, v text) SERVER s_zstd OPTIONS (table 'T_ZSTD');
});
SfSnowflake::emu_query($emu, q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () COMPRESSION = AUTO});
SfSnowflake::emu_query($emu, qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
SfSnowflake::emu_query($emu, q{CREATE TABLE DB.PUBLIC.T_ZSTD ("id" NUMBER, "v" VARCHAR)});
# ~6 MB of barely compressible text
$node->safe_psql('postgres', q{
	INSERT INTO t_zstd SELECT g, string_agg(md5(g::text || i::text), '') FROM generate_series(1, 3000) g,
	       generate_series(1, 60) i GROUP BY g;
	SELECT sfexport.flush();
});
ok($node->poll_query_until('postgres',
	q{SELECT pending_rows = 0 AND staged_files = 0 AND failed_files = 0 FROM sfexport.status}),
	'the zstd table is loaded')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));
is(SfSnowflake::emu_query($emu, 'SELECT COUNT(*) FROM DB.PUBLIC.T_ZSTD')->{rows}[0][0], 3000, 'every row arrived');
my ($files, $max) = split /\|/, $node->safe_psql('postgres', 'SELECT count(*), max(bytes) FROM sfexport.files');
cmp_ok($files, '>=', 3, "max_file_size split the zstd flush ($files files)");
cmp_ok($max, '<=', 1024 * 1024 + 512 * 1024, "no zstd file is much larger than max_file_size (largest $max bytes)");
my @kept = glob("$stage/*/*/*.csv.zst");
is(scalar(@kept), $files, 'the staged files are kept');
my $bad = 0;
for my $f (@kept)
{
	my $c = check_file('zstd', $f);
	$bad++ unless $c->{units} == 1 && $c->{complete} && $c->{checksum};
}
is($bad, 0, 'every staged zstd file is one complete frame with a checksum');

$node->stop;
done_testing();
