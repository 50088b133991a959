# SfSnowflake.pm: helpers for the Snowflake client tests (020-029).
#
#   my $key = SfSnowflake::gen_key($dir, 'main');            # RSA key pair
#   my $emu = SfSnowflake::start_emulator(users => { LOADER => $key->{pub} });
#   SfSnowflake::admin($emu, 'POST', 'faults', { action => '503', count => 2 });
#   my $log = SfSnowflake::statement_log($emu);
#   my $err = SfSnowflake::psql_error($node, $sql);           # stderr, VERBOSITY verbose
#
# Keys are throwaway keys made with the openssl command for each test run.

package SfSnowflake;

use strict;
use warnings;

use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use PostgreSQL::Test::Utils;
use SfTest;

# An RSA key pair (or another type with type => 'EC' / 'DSA'), optionally
# also encrypted as PKCS#8 with a passphrase.  Returns paths, PEM texts and
# the fingerprint computed by the openssl command.
sub gen_key
{
	my ($dir, $name, %o) = @_;
	my $type = $o{type} // 'RSA';
	my $priv = "$dir/$name.pem";
	my @gen =
	    $type eq 'RSA' ? ('-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048')
	  : $type eq 'EC' ? ('-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256')
	  : $type eq 'ED25519' ? ('-algorithm', 'ED25519')
	  : ();
	if ($type eq 'DSA')
	{
		run_ok("$dir/$name.params", 'openssl', 'genpkey', '-genparam', '-algorithm', 'DSA',
			'-pkeyopt', 'dsa_paramgen_bits:2048', '-out', "$dir/$name.params");
		@gen = ('-paramfile', "$dir/$name.params");
	}
	run_ok($priv, 'openssl', 'genpkey', @gen, '-out', $priv);
	my %k = (priv => $priv, pem => PostgreSQL::Test::Utils::slurp_file($priv));
	if ($type eq 'RSA')
	{
		$k{pub} = "$dir/$name.pub.pem";
		run_ok($k{pub}, 'openssl', 'pkey', '-in', $priv, '-pubout', '-out', $k{pub});
		$k{pub_pem} = PostgreSQL::Test::Utils::slurp_file($k{pub});
		my $fp = `openssl pkey -in '$priv' -pubout -outform DER | openssl dgst -sha256 -binary | openssl base64 -A`;
		$k{fp} = "SHA256:$fp";
	}
	if (defined $o{passphrase})
	{
		$k{enc} = "$dir/$name.enc.pem";
		run_ok($k{enc}, 'openssl', 'pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', $priv,
			'-passout', "pass:$o{passphrase}", '-out', $k{enc});
		$k{enc_pem} = PostgreSQL::Test::Utils::slurp_file($k{enc});
	}
	# the server reads the private keys (private_key_file): owner only, as
	# it insists; the public key is for anyone (the emulator)
	chmod 0600, grep { defined && -f } @k{qw(priv enc)};
	chmod 0644, $k{pub} if $k{pub};
	SfTest::register_secret("private key $name ($type)", $k{pem});
	SfTest::register_secret("encrypted private key $name", $k{enc_pem});
	SfTest::register_secret("passphrase of key $name", $o{passphrase});
	return \%k;
}

sub run_ok
{
	my ($what, @cmd) = @_;
	system(@cmd) == 0 or die "could not make $what: @cmd";
}

# The base64 lines of a PEM text: the key material, for secret scans.
sub pem_body_lines
{
	my ($pem) = @_;
	return grep { length($_) >= 40 } map { s/\s+$//r } grep { !/^-----/ } split /\n/, $pem;
}

# Start the Snowflake emulator.  users => { NAME => public key file },
# tokens => [ 'NAME=TOKEN:TYPE' ], account => 'XY12345', args => [...].
sub start_emulator
{
	my (%o) = @_;
	my $dir = tempdir('sf_emu_XXXX', TMPDIR => 1, CLEANUP => 1);
	my @cmd = (SfTest::emulator('snowflake'),
		'--port', '0', '--port-file', '{PORT_FILE}', '--data-dir', "$dir/data");
	push @cmd, '--account', $o{account} if $o{account};
	push @cmd, '--user', "$_=$o{users}{$_}" for sort keys %{ $o{users} // {} };
	push @cmd, '--token', $_ for @{ $o{tokens} // [] };
	push @cmd, @{ $o{args} // [] };
	# secrets given to the emulator; the SQL it receives goes to the evidence
	for my $t (@{ $o{tokens} // [] })
	{
		my ($tok) = $t =~ /^[^=]*=(.*?)(?::(?:OAUTH|PROGRAMMATIC_ACCESS_TOKEN))?$/s;
		SfTest::register_secret('Snowflake token', $tok);
	}
	my @a = @{ $o{args} // [] };
	for my $i (0 .. $#a - 1)
	{
		SfTest::register_secret('S3 secret key of the Snowflake emulator', $a[ $i + 1 ])
		  if $a[$i] eq '--s3-secret-key';
	}
	if (my $ev = SfTest::evidence_dir())
	{
		my $n = 1;
		$n++ while -e "$ev/snowflake_sql_" . ($o{name} // 'snowflake') . "_$n.log";
		push @cmd, '--sql-log', "$ev/snowflake_sql_" . ($o{name} // 'snowflake') . "_$n.log";
		# staged files are deleted once loaded: the emulator keeps what it read
		push @cmd, '--stage-copy-dir', "$ev/staged/read_by_" . ($o{name} // 'snowflake') . "_$n";
	}
	mkdir "$dir/data";
	my $svc = SfTest::start_service($o{name} // 'snowflake', \@cmd, dir => $dir);
	$svc->{url} = "http://127.0.0.1:$svc->{port}";
	return $svc;
}

# Call the emulator's admin API: admin($emu, 'POST', 'faults', {...}).
sub admin
{
	my ($emu, $method, $path, $body) = @_;
	my $res = HTTP::Tiny->new(timeout => 30)->request(
		$method,
		"$emu->{url}/_emulator/$path",
		{
			headers => { 'Content-Type' => 'application/json' },
			defined $body ? (content => encode_json($body)) : (),
		});
	die "emulator admin $method $path: $res->{status} $res->{content}"
	  unless $res->{success};
	return decode_json($res->{content});
}

# Run a statement directly in the emulator (not through sfexport).
sub emu_query
{
	my ($emu, $sql, %o) = @_;
	my $r = admin($emu, 'POST', 'query',
		{ statement => $sql, database => $o{database} // 'DB', schema => $o{schema} // 'PUBLIC' });
	die "emulator query failed: $r->{error}{message}" if $r->{error};
	return $r;
}

# The emulator's statement log entries whose text matches a regex.
sub statement_log
{
	my ($emu, $re) = @_;
	my $log = admin($emu, 'GET', 'statements')->{statements};
	return [ grep { !defined $re || ($_->{statement} // '') =~ $re } @$log ];
}

# Run SQL expected to fail; returns psql's stderr with VERBOSITY verbose
# (so "ERROR:  <SQLSTATE>: message").  Failing statements are kept out of
# the server log, since they may carry keys.
sub psql_error
{
	my ($node, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"SET log_min_error_statement = panic;\n\\set VERBOSITY verbose\n$sql");
	return $err;
}

# SQL string literal.
sub lit
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

1;
