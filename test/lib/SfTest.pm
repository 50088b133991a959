# SfTest.pm: shared helpers for the sfexport TAP tests.
#
#   my $node = SfTest::new_node('main');          # cluster, sfexport preloaded, extension created
#   my $svc  = SfTest::start_service('s3', [cmd...], port_file => $f);
#   $svc->{port}                                  # the port it listens on
#
# Services are started on 127.0.0.1 only and stopped at the end of the test
# file (or with SfTest::stop_service).  Every service writes the port it
# listens on to a port file once ready, which is how we wait for it.

package SfTest;

use strict;
use warnings;

use File::Temp qw(tempdir);
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @services;

# The copy of the source tree the tests run from.
sub src_dir
{
	return $ENV{SFEXPORT_SRC} // die "SFEXPORT_SRC is not set: run tests through scripts/run-tests.sh";
}

sub python { return $ENV{PYTHON} // '/usr/bin/python3'; }

# A new cluster with sfexport in shared_preload_libraries (unless
# preload => 0) and the extension created in the "postgres" database.
sub new_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opts{init} // {} });
	my $preload = $opts{preload} // 1;
	$node->append_conf('postgresql.conf',
		($preload ? "shared_preload_libraries = 'sfexport'\n" : '')
		  . "log_min_messages = info\n"
		  . ($opts{conf} // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION sfexport')
	  unless $opts{no_extension};
	return $node;
}

# Start a background service; wait until it wrote its port file.
sub start_service
{
	my ($name, $cmd, %opts) = @_;
	my $dir = $opts{dir} // tempdir("sf_${name}_XXXX", TMPDIR => 1, CLEANUP => 1);
	my $port_file = $opts{port_file} // "$dir/port";
	my $log = "$PostgreSQL::Test::Utils::log_path/service_$name.log";
	unlink $port_file;
	my @cmd = map { $_ eq '{PORT_FILE}' ? $port_file : $_ } @$cmd;
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>>', $log, '2>>', $log);
	my $deadline = time + ($opts{timeout} // 60);
	while (!-s $port_file)
	{
		die "service $name exited early, see $log" unless $h->pumpable;
		die "service $name did not start in time, see $log" if time > $deadline;
		usleep(50_000);
	}
	open my $fh, '<', $port_file or die "cannot read $port_file: $!";
	my $port = <$fh>;
	close $fh;
	chomp $port;
	my $svc = { name => $name, port => $port, handle => $h, dir => $dir, log => $log };
	push @services, $svc;
	note "started $name on 127.0.0.1:$port";
	return $svc;
}

sub stop_service
{
	my ($svc) = @_;
	return unless $svc->{handle};
	$svc->{handle}->signal('TERM') if $svc->{handle}->pumpable;
	eval { $svc->{handle}->finish; 1 } or $svc->{handle}->kill_kill;
	delete $svc->{handle};
}

END
{
	stop_service($_) for @services;
}

# Upper bounds on wall-clock time that tests assert are multiplied by
# SFEXPORT_TIME_SCALE, which scripts/sanitize-tests.sh sets because ASan,
# UBSan and valgrind slow every backend down.  It is 1 in normal runs, so the
# bounds there are exactly the written ones.  Lower bounds are never scaled.
sub time_scale
{
	my $s = $ENV{SFEXPORT_TIME_SCALE} // 1;
	die "SFEXPORT_TIME_SCALE must be a number >= 1" unless $s =~ /^\d+(\.\d+)?$/ && $s >= 1;
	return $s;
}

sub secs { return $_[0] * time_scale(); }

# Every file below $dir with its content (for secret scans).
sub slurp_tree
{
	my ($dir) = @_;
	my %out;
	return \%out unless -d $dir;
	my @todo = ($dir);
	while (my $d = shift @todo)
	{
		opendir my $dh, $d or next;
		for my $e (readdir $dh)
		{
			next if $e eq '.' || $e eq '..';
			my $p = "$d/$e";
			if (-d $p) { push @todo, $p; next; }
			$out{$p} = PostgreSQL::Test::Utils::slurp_file($p);
		}
	}
	return \%out;
}

1;
