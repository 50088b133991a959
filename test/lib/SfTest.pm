# SfTest.pm: shared helpers for the sfexport TAP tests.
#
#   my $node = SfTest::new_node('main');          # cluster, sfexport preloaded, extension created
#   SfTest::new_node('s3', test_surface => 1);    # and sfexport_test (test-only entry points)
#   SfTest::new_node('main', env => { AWS_ACCESS_KEY_ID => ... })
#                                                 # the postmaster's environment (every start)
#   my $svc  = SfTest::start_service('s3', [cmd...], port_file => $f);
#   $svc->{port}                                  # the port it listens on
#
# A server process of any node that was terminated by a signal (a crash,
# even one at exit after its last query) fails the test file (END below).
#
# Services are started on 127.0.0.1 only and stopped at the end of the test
# file (or with SfTest::stop_service); a stand-in with SfTest::emulator('NAME'),
# the command test/emulators/start NAME.  Every service writes the port it
# listens on to a port file once ready, which is how we wait for it.
#
# Secrets and evidence (issue 9, scripts/secret-scan.py):
#   SfTest::register_secret('label', $value, ...)   # every secret a test uses
#   SfTest::register_host_secret('label', $value)   # a credential of the database
#       server's host (environment): searched everywhere, also inside the
#       CREATE STAGE CREDENTIALS clauses the scan otherwise lets through
#   SfTest::evidence_dir()                          # this test's evidence dir
# run-tests.sh sets SFEXPORT_SECRETS_FILE (the suite-wide registry) and
# SFEXPORT_EVIDENCE_DIR.  This module then records, per test file: every
# stderr text psql gave the test (error messages), and before each clean
# stop of a node and at the end of the file a dump of every sfexport view
# and table but the outbox, the secret user-mapping options (registered as
# secrets), and a copy of the local stage directories and of the stand-ins'
# object stores.  The server logs stay in tmp_check/log.  After the suite,
# run-tests.sh searches all of it for every registered secret.

package SfTest;

use strict;
use warnings;

use File::Basename qw(basename);
use File::Copy qw(copy);
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64 decode_base64);
use IPC::Run;
use JSON::PP ();
use PostgreSQL::Test::BackgroundPsql;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @services;
our @nodes;

# The copy of the source tree the tests run from.
sub src_dir
{
	return $ENV{SFEXPORT_SRC} // die "SFEXPORT_SRC is not set: run tests through scripts/run-tests.sh";
}

sub python { return $ENV{PYTHON} // '/usr/bin/python3'; }

# The command that starts the stand-in NAME (a folder of test/emulators):
#   SfTest::start_service('gcs', [ SfTest::emulator('gcs'), '--port', '0', ... ])
sub emulator
{
	my ($name) = @_;
	return (src_dir() . '/test/emulators/start', $name);
}

# A new cluster with sfexport in shared_preload_libraries (unless
# preload => 0) and the extension created in the "postgres" database; with
# test_surface => 1 also sfexport_test, the test-only entry points
# (sfexport_test.storage_put, sigv4_sign, ...: docs/ARCHITECTURE.md).
sub new_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init(%{ $opts{init} // {} });
	my $preload = $opts{preload} // 1;
	$node->{_sf_env} = $opts{env} if $opts{env};
	$node->append_conf('postgresql.conf',
		($preload ? "shared_preload_libraries = 'sfexport'\n" : '')
		  . "log_min_messages = info\n"
		  . ($opts{conf} // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION sfexport')
	  unless $opts{no_extension};
	$node->safe_psql('postgres', 'CREATE EXTENSION sfexport_test')
	  if $opts{test_surface};
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
	my $svc = { name => $name, port => $port, handle => $h, dir => $dir, log => $log,
		store => $opts{store} };
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
	local $?;	# keep the test's exit status
	for my $node (@nodes)
	{
		eval { collect_node_evidence($node, 'end') if $node->{_pid}; 1 }
		  or diag("evidence of node " . $node->name . ": $@");
	}
	collect_store_evidence();
	stop_service($_) for @services;
}

# A server process that died of a signal (SIGSEGV, an assertion's SIGABRT)
# fails the test file even when no later step noticed, as when a backend
# crashes in its exit handlers after its last query.  The postmaster logs it
# as "... (PID n) was terminated by signal n: ..." (LogChildExit in
# postmaster.c).  kill_postmaster() kills the postmaster first, which then
# logs nothing.  This END block runs before PostgreSQL::Test::Cluster's, so
# the exit status set here also keeps the data directories (and any core).
# Processes a test killed with SIGKILL on purpose (kill_server_process):
# their "terminated by signal 9" lines are not crashes.
my %killed_on_purpose;

sub kill_server_process
{
	my ($pid) = @_;
	$killed_on_purpose{$pid} = 1;
	return kill 'KILL', $pid;
}

sub server_crashes
{
	my @crashes;
	for my $node (@nodes)
	{
		next unless -f $node->logfile;
		push @crashes, grep {
			/was terminated by (?:signal|exception)/
			  && !(/\(PID (\d+)\) was terminated by signal 9:/ && $killed_on_purpose{$1})
		} split /\n/, PostgreSQL::Test::Utils::slurp_file($node->logfile);
	}
	return @crashes;
}

END
{
	my @crashes = server_crashes();
	if (@crashes)
	{
		diag("a server process crashed (see the server log):\n" . join("\n", @crashes));
		$? = 1 unless $?;
	}
}

# ---- secrets registry and evidence (see the head of this file)

my $test_name = basename($0, '.pl');

# Register secrets into the suite-wide registry: one line per value,
# "test: label<TAB>base64".  Undefined and empty values are ignored.
sub register_secret
{
	my ($label, @values) = @_;
	write_secrets($label, '', @values);
}

# A credential of the database server's host: "host" in the third field.
sub register_host_secret
{
	my ($label, @values) = @_;
	write_secrets($label, "\thost", @values);
}

sub write_secrets
{
	my ($label, $flag, @values) = @_;
	my $file = $ENV{SFEXPORT_SECRETS_FILE} or return;
	my $lines = '';
	for my $v (@values)
	{
		next unless defined $v && length $v;
		my $bytes = $v;
		utf8::encode($bytes) if utf8::is_utf8($bytes);
		$lines .= "$test_name: $label\t" . encode_base64($bytes, '') . "$flag\n";
	}
	return unless length $lines;
	open my $fh, '>>', $file or die "cannot append to $file: $!";
	print $fh $lines;
	close $fh or die "cannot write $file: $!";
}

# This test file's evidence directory (created), or undef outside run-tests.sh.
sub evidence_dir
{
	my $base = $ENV{SFEXPORT_EVIDENCE_DIR} or return undef;
	my $dir = "$base/$test_name";
	make_path($dir) unless -d $dir;
	return $dir;
}

sub append_evidence
{
	my ($name, $text) = @_;
	my $dir = evidence_dir() // return;
	return unless defined $text && length $text;
	open my $fh, '>>', "$dir/$name" or die "cannot append to $dir/$name: $!";
	print $fh $text, ($text =~ /\n\z/ ? '' : "\n");
	close $fh;
}

# Copy a directory tree (regular files only) below this test's evidence dir.
sub copy_tree_evidence
{
	my ($src, $name) = @_;
	my $dir = evidence_dir() // return;
	return unless -d $src;
	my $files = 0;
	my @todo = ('');
	while (defined(my $rel = shift @todo))
	{
		opendir my $dh, "$src$rel" or next;
		for my $e (sort readdir $dh)
		{
			next if $e eq '.' || $e eq '..';
			my $p = "$src$rel/$e";
			next if -l $p;
			if (-d $p) { push @todo, "$rel/$e"; next; }
			next unless -f $p;
			make_path("$dir/$name$rel");
			copy($p, "$dir/$name$rel/$e") and $files++;
		}
	}
	return $files;
}

my %dump_count;
my %secret_options = map { $_ => 1 }
  qw(private_key private_key_passphrase token aws_secret_access_key aws_session_token gcs_credentials);

# Dump what a running node shows: every sfexport view and table but the
# outbox (row data), in every database with the extension; register the
# secret user-mapping options; copy the file:// stage directories.
sub collect_node_evidence
{
	my ($node, $why) = @_;
	return unless evidence_dir();
	my $name = $node->name;
	my $n = ++$dump_count{$name};
	my $q = sub {
		my ($db, $sql) = @_;
		my ($out, $err) = ('', '');
		local $node->{_sf_no_record} = 1;
		$node->psql($db, $sql, stdout => \$out, stderr => \$err, on_error_die => 0);
		return $out;
	};
	my @dbs = split /\n/, $q->('postgres', 'SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1');
	my %locations;
	for my $db (@dbs)
	{
		my @rels = split /\n/, $q->($db,
			q{SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			  WHERE n.nspname = 'sfexport' AND c.relkind IN ('r', 'v', 'm') AND c.relname <> 'outbox'
			  ORDER BY 1});
		next unless @rels;
		my $text = "-- node $name, database $db, dump $n ($why)\n";
		for my $rel (@rels)
		{
			$text .= "-- sfexport.$rel\n"
			  . $q->($db, qq{\\pset tuples_only off\nSELECT * FROM sfexport."$rel"}) . "\n";
		}
		append_evidence("views_${name}.txt", $text);
		for my $row (split /\n/, $q->($db,
			q{SELECT o.option_name, translate(encode(convert_to(o.option_value, 'UTF8'), 'base64'), E'\n', '')
			  FROM pg_user_mapping um, pg_options_to_table(um.umoptions) o}))
		{
			my ($opt, $b64) = split /\|/, $row, 2;
			next unless $secret_options{$opt} && defined $b64;
			my $value = decode_base64($b64);
			register_secret("user-mapping option $opt", $value);
			if ($opt eq 'gcs_credentials')
			{
				my $j = eval { JSON::PP::decode_json($value) };
				register_secret("user-mapping option gcs_credentials private_key", $j->{private_key})
				  if ref $j eq 'HASH';
			}
		}
		$locations{$_} = 1 for split /\n/, $q->($db,
			q{SELECT DISTINCT substr(o.option_value, 8) FROM pg_foreign_server s,
			  pg_options_to_table(s.srvoptions) o
			  WHERE o.option_name = 'location' AND o.option_value LIKE 'file://%'});
	}
	my $i = 0;
	for my $loc (sort keys %locations)
	{
		$i++;
		copy_tree_evidence($loc, "staged/local_${name}_${n}_$i");
	}
}

# The object stores of the stand-ins this file started (s3rver, GCS).
sub collect_store_evidence
{
	for my $svc (@services)
	{
		copy_tree_evidence($svc->{store}, "staged/$svc->{name}_" . basename($svc->{store}))
		  if $svc->{store};
	}
}

# Node tracking: every cluster made in this file, with a dump before each
# clean stop; psql's stderr is kept as "error messages the test saw".
{
	no warnings 'redefine';
	my $orig_new = \&PostgreSQL::Test::Cluster::new;
	*PostgreSQL::Test::Cluster::new = sub {
		my $node = $orig_new->(@_);
		push @nodes, $node;
		return $node;
	};
	# the environment given to new_node, for every start of the postmaster
	for my $m (qw(start restart))
	{
		my $orig = \&{"PostgreSQL::Test::Cluster::$m"};
		no strict 'refs';
		*{"PostgreSQL::Test::Cluster::$m"} = sub {
			my ($node) = @_;
			local %ENV = %ENV;
			@ENV{ keys %{ $node->{_sf_env} } } = values %{ $node->{_sf_env} }
			  if $node->{_sf_env};
			return $orig->(@_);
		};
	}
	my $orig_stop = \&PostgreSQL::Test::Cluster::stop;
	*PostgreSQL::Test::Cluster::stop = sub {
		my ($node, $mode) = @_;
		if ($node->{_pid} && ($mode // 'fast') ne 'immediate')
		{
			eval { collect_node_evidence($node, 'stop'); 1 }
			  or diag("evidence of node " . $node->name . ": $@");
		}
		return $orig_stop->(@_);
	};
	my $orig_psql = \&PostgreSQL::Test::Cluster::psql;
	*PostgreSQL::Test::Cluster::psql = sub {
		my ($node, $db, $sql, %p) = @_;
		if ($node->{_sf_no_record})
		{
			return $orig_psql->(@_);
		}
		# stderr into a variable of ours (which the caller gets as before)
		my $err = '';
		my $ref = $p{stderr};
		my $want = wantarray;
		$p{stderr} = \$err;
		my @r;
		my $ok = eval {
			@r = $want ? $orig_psql->($node, $db, $sql, %p)
			  : (scalar $orig_psql->($node, $db, $sql, %p));
			1;
		};
		my $died = $@;
		append_evidence('psql_stderr.log', $err) if length $err;
		if (ref $ref) { $$ref = $err; }
		elsif (!$want) { print STDERR $err; }
		die $died unless $ok;
		return wantarray ? @r : $r[0];
	};
	my $orig_query = \&PostgreSQL::Test::BackgroundPsql::query;
	*PostgreSQL::Test::BackgroundPsql::query = sub {
		my ($self) = @_;
		my @r = wantarray ? $orig_query->(@_) : scalar $orig_query->(@_);
		append_evidence('psql_stderr.log', $self->{stderr}) if length($self->{stderr} // '');
		return wantarray ? @r : $r[0];
	};
}

# SIGKILL the postmaster of a node and all its children, as a power loss
# would, and wait until they are gone; $node->start brings it back.
sub kill_postmaster
{
	my ($node) = @_;
	open my $fh, '<', $node->data_dir . '/postmaster.pid' or die "no pid file: $!";
	my $pid = <$fh>;
	close $fh;
	chomp $pid;
	my @children = grep { /^\d+$/ && _ppid($_) == $pid } map { s{.*/}{}r } glob('/proc/[0-9]*');
	kill 'KILL', $pid, @children;
	for (1 .. 100)
	{
		last unless grep { kill 0, $_ } ($pid, @children);
		usleep(50_000);
	}
	$node->{_pid} = undef;
}

sub _ppid
{
	my ($p) = @_;
	open my $fh, '<', "/proc/$p/stat" or return -1;
	my $stat = <$fh>;
	close $fh;
	return -1 unless defined $stat && $stat =~ /\)\s+\S+\s+(\d+)/;
	return $1;
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

# A throwaway PKI for TLS tests: CAs (each "$dir/NAME.pem" and .key) and
# server certificates signed by the first CA, with the subjectAltName
# given ("$dir/NAME.pem", .key).  Returns the directory.
#   my $pki = SfTest::test_pki(cas => ['ca'], certs => { server => 'IP:127.0.0.1,DNS:localhost' });
sub test_pki
{
	my (%o) = @_;
	my $pki = tempdir('sf_pki_XXXX', TMPDIR => 1, CLEANUP => 1);
	chmod 0755, $pki;
	my $ossl = sub {
		my @cmd = ('openssl', @_);
		system(join(' ', map { "'$_'" } @cmd) . " >/dev/null 2>&1") == 0
		  or die "openssl failed: @cmd";
	};
	my @cas = @{ $o{cas} // ['ca'] };
	for my $ca (@cas)
	{
		$ossl->('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
			'-keyout', "$pki/$ca.key", '-out', "$pki/$ca.pem", '-subj', "/CN=sfexport test $ca",
			'-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
	}
	for my $name (sort keys %{ $o{certs} // {} })
	{
		$ossl->('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', "$pki/$name.key",
			'-out', "$pki/$name.csr", '-subj', "/CN=$name");
		open my $fh, '>', "$pki/$name.ext" or die "cannot write $pki/$name.ext: $!";
		print $fh "subjectAltName=$o{certs}{$name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n";
		close $fh;
		$ossl->('x509', '-req', '-in', "$pki/$name.csr", '-CA', "$pki/$cas[0].pem",
			'-CAkey', "$pki/$cas[0].key", '-CAcreateserial', '-days', '2',
			'-out', "$pki/$name.pem", '-extfile', "$pki/$name.ext");
	}
	chmod 0644, glob("$pki/*");
	return $pki;
}

# A TLS terminator (test/emulators/tls_proxy) in front of $upstream with
# the certificate $cert of a test_pki directory.  $svc->{events}->() are
# the connections it logged (connect, handshake_failed, sni, ...).
sub tls_proxy
{
	my ($name, $upstream, $pki, $cert) = @_;
	my $log = "$pki/$name.log";
	my $svc = start_service($name,
		[ emulator('tls_proxy'), '--port', '0',
		  '--port-file', '{PORT_FILE}', '--cert', "$pki/$cert.pem", '--key', "$pki/$cert.key",
		  '--upstream', $upstream, '--log', $log ]);
	$svc->{events} = sub {
		return [] unless -e $log;
		return [ map { JSON::PP::decode_json($_) } split /\n/, PostgreSQL::Test::Utils::slurp_file($log) ];
	};
	return $svc;
}

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
