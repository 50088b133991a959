# bench/streaming_latency.pl: commit -> queryable latency of load_mode
# 'streaming' against the emulator, at 10 and 1,000 rows/s, with load_mode
# 'copy' (same flush_interval, same emulator) as the baseline of the same
# run.  Prints p50/p99 per mode and rate and the ratio streaming / copy;
# asserts nothing.
#
#   bash scripts/run-tests.sh tap bench/streaming_latency.pl
#   SECONDS_PER_RUN=10 bash scripts/run-tests.sh tap bench/streaming_latency.pl
#
# Rows come from pgbench -R (one client), each with clock_timestamp() at
# INSERT (its commit follows within a millisecond).  A poller asks the
# emulator every 50 ms for the largest id visible; ids are inserted in
# order and both modes load them in order here, so a row's latency is the
# first poll that sees an id at least its own minus its timestamp.  The
# emulator commits streamed rows --stream-commit-delay-ms (1000, a stand-in
# for Snowflake's documented 5-10 s) after the append, and COPY in
# milliseconds: the absolute numbers are the client's share (flush
# schedule, batching, polling), not Snowflake's.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run ();
use Time::HiRes ();

my $secs = $ENV{SECONDS_PER_RUN} // 20;
my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--stream-commit-delay-ms', '1000' ]);
my $lit = \&SfSnowflake::lit;
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;

my $node = SfTest::new_node('streambench', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n"
	  . "sfexport.streaming_poll_interval = 100ms\nsynchronous_commit = off\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		warehouse 'WH', location 'file://$stage/', flush_interval '1s',
		upper_case_identifiers 'true');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	SELECT count(*) FROM sfexport.setup_stage('sf');
});

sub pct
{
	my ($p, @v) = @_;
	@v = sort { $a <=> $b } @v;
	return $v[ int($p / 100 * $#v + 0.5) ];
}

my %result;
my $run = 0;
for my $rate (10, 1000)
{
	for my $mode ('copy', 'streaming')
	{
		$run++;
		my $t = "EV$run";
		$node->safe_psql('postgres', qq{
			CREATE SEQUENCE s$run;
			CREATE FOREIGN TABLE ev$run (id bigint, at timestamptz) SERVER sf OPTIONS (load_mode '$mode');
			SELECT count(*) FROM sfexport.setup_table('ev$run');
		});
		my $script = "$kdir/ins$run.sql";
		open my $fh, '>', $script or die;
		print $fh "INSERT INTO ev$run VALUES (nextval('s$run'), clock_timestamp());\n";
		close $fh;
		my $h = IPC::Run::start([ 'pgbench', '-n', '-c', '1', '-R', $rate, '-T', $secs, '-f', $script,
				'-h', $node->host, '-p', $node->port, 'postgres' ], '>', \my $out, '2>', \my $err);
		my %seen_at;			# max visible id -> first time seen
		my $max = 0;
		my $start = time;
		my $deadline = $start + $secs + 60;
		while (time < $deadline)
		{
			my $now = Time::HiRes::time();
			my $r = SfSnowflake::emu_query($emu, qq{SELECT COALESCE(MAX("ID"), 0) FROM DB.PUBLIC.$t})->{rows}[0][0];
			if ($r > $max) { $seen_at{$r} = $now; $max = $r; }
			last if time > $start + $secs + 1 && $max > 0 &&
			  $max >= $node->safe_psql('postgres', "SELECT last_value FROM s$run");
			Time::HiRes::sleep(0.05);
		}
		$h->finish;
		my @marks = sort { $a <=> $b } keys %seen_at;
		my @lat;
		for my $row (@{ SfSnowflake::emu_query($emu, qq{SELECT "ID", "AT" FROM DB.PUBLIC.$t})->{rows} })
		{
			my ($id, $at) = @$row;
			my ($epoch) = $at =~ /^(\d+(?:\.\d+)?)/;	# TIMESTAMP_TZ: "<epoch> <offset>"
			my ($mark) = grep { $_ >= $id } @marks;
			push @lat, $seen_at{$mark} - $epoch if defined $mark && defined $epoch;
		}
		$result{$rate}{$mode} = { n => scalar @lat, p50 => pct(50, @lat), p99 => pct(99, @lat) };
		diag(sprintf('%-9s %5d rows/s: %6d rows, p50 %6.2f s, p99 %6.2f s', $mode, $rate, scalar @lat,
			$result{$rate}{$mode}{p50} // -1, $result{$rate}{$mode}{p99} // -1));
		$node->safe_psql('postgres', "DROP FOREIGN TABLE ev$run");
	}
	my ($c, $s) = ($result{$rate}{copy}, $result{$rate}{streaming});
	diag(sprintf('ratio streaming / copy at %d rows/s: p50 %.2f, p99 %.2f', $rate,
		$s->{p50} / $c->{p50}, $s->{p99} / $c->{p99})) if $c->{p50} && $s->{p50};
}
ok(1, 'benchmark ran');
done_testing();
