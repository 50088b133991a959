# The ISA-L helper thread of gzip compression (src/compress.c, issue 16):
# it compresses one block while the backend collects the next.  Through the
# test surface (sfexport_test.compress):
#  - a backend compressing gzip at ISA-L's levels runs one more thread, and
#    that thread has every signal a backend handles blocked;
#  - a cancel during the compression stops it at once, leaves no thread
#    behind, and the backend compresses again: one gzip member that
#    decompresses to the input, for writes smaller and larger than the
#    block, at levels 1-3.
# (That the helper writes the same bytes as ISA-L on the backend's own
# thread was checked by hand against the previous build: docs/performance.md.)
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use Digest::MD5 ();
use IO::Uncompress::Gunzip qw(gunzip $GunzipError);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = SfTest::new_node('gziphelper', test_surface => 1, conf => "log_statement = none\n");

# ---- a long compression: 1 MB x 20,000 of one letter (seconds, tiny output)
my $bg = $node->background_psql('postgres', on_error_stop => 0);
$bg->query_until(qr/start/, "\\echo start\nSELECT length(sfexport_test.compress('gzip', 1, convert_to(repeat('a', 1048576), 'UTF8'), 65536, 20000));\n");
my $busy = "FROM pg_stat_activity WHERE query LIKE '%compress(''gzip'', 1,%' AND state = 'active' AND pid <> pg_backend_pid()";
$node->poll_query_until('postgres', "SELECT count(*) = 1 $busy") or die 'the compression did not start';
my $pid = $node->safe_psql('postgres', "SELECT pid $busy");
my %threads;
my $deadline = time + SfTest::secs(30);
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
is(scalar(keys %threads), 1, 'gzip compression runs one helper thread in the backend')
  or diag "threads: " . join(' ', keys %threads);
# bits 1 << (signal - 1): SIGHUP 1, SIGINT 2, SIGQUIT 3, SIGUSR1 10, SIGUSR2 12,
# SIGALRM 14, SIGTERM 15, SIGCHLD 17
my @sigs = (1, 2, 3, 10, 12, 14, 15, 17);
for my $tid (sort keys %threads)
{
	my $mask = hex($threads{$tid});
	is(join(',', grep { !($mask & (1 << ($_ - 1))) } @sigs), '',
		"helper $tid blocks SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM and SIGCHLD (SigBlk $threads{$tid})");
}
my $t0 = time;
is($node->safe_psql('postgres', "SELECT pg_cancel_backend($pid)"), 't', 'cancel sent');
$node->poll_query_until('postgres', "SELECT state = 'idle' FROM pg_stat_activity WHERE pid = $pid");
my $took = time - $t0;
cmp_ok($took, '<', SfTest::secs(3), sprintf('a cancel stops the compression in %.2f s', $took));
$bg->query('SELECT 1');
like($bg->{stderr}, qr/canceling statement due to user request/, 'the compression was cancelled');
$bg->{stderr} = '';
my $left = () = glob("/proc/$pid/task/*");
is($left, 1, 'the cancelled compression left no thread behind');

# ---- the same backend compresses again, correctly
my $input = q{(SELECT string_agg(g::text || ',' || md5(g::text), E'\n')::bytea FROM generate_series(1, 30000) g)};
my $want = $bg->query_safe("SELECT md5($input)");
for my $level (1, 2, 3)
{
	for my $chunk (1000, 65536, 300000)
	{
		my $hex = $bg->query_safe("SELECT encode(sfexport_test.compress('gzip', $level, $input, $chunk), 'hex')");
		$hex =~ s/\s+//g;
		my $gz = pack('H*', $hex);
		my $out;
		my $ok = gunzip(\$gz => \$out, MultiStream => 0, Transparent => 0);
		ok($ok, "level $level, writes of $chunk bytes: a gzip stream") or diag $GunzipError;
		is(Digest::MD5::md5_hex($out // ''), $want, "level $level, writes of $chunk bytes: decompresses to the input");
		# one member: nothing follows the first member's trailer
		my $all;
		gunzip(\$gz => \$all, MultiStream => 1);
		is(length($all // ''), length($out // ''), "level $level, writes of $chunk bytes: one gzip member");
	}
}
$bg->quit;

$node->stop;
done_testing();
