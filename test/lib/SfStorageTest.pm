# SfStorageTest.pm: start the storage stand-ins for the sfexport TAP tests.
#
#   my $s3 = SfStorageTest::start_s3(keys => {ID => SECRET}, tokens => {ID => TOKEN},
#                                    region => 'eu-west-1', buckets => ['b'],
#                                    policies => {ID => 'iam-policy.json'},
#                                    issued => ['issued.json'], upstream_key => ID);
#   $s3->{endpoint}            http://127.0.0.1:PORT of the verifying front
#   SfStorageTest::front($s3, 'POST', '/_front/faults', {kind => 'slowdown'});
#
# s3rver (npm, test/emulators/s3rver) stores the objects; the S3 front
# (test/emulators/s3_front), placed before it, verifies every SigV4
# signature with botocore.
package SfStorageTest;

use strict;
use warnings;

use HTTP::Tiny;
use Time::HiRes ();
use JSON::PP;
use SfTest;
use Test::More;

sub start_s3
{
	my (%o) = @_;
	my $src = SfTest::src_dir();
	my $dir = File::Temp::tempdir('sf_s3rver_XXXX', TMPDIR => 1, CLEANUP => 1);
	my @keys = map { ('--key', "$_=$o{keys}{$_}") } sort keys %{ $o{keys} };
	SfTest::register_secret("AWS secret access key of $_", $o{keys}{$_}) for sort keys %{ $o{keys} };
	SfTest::register_secret("AWS session token of $_", $o{tokens}{$_}) for sort keys %{ $o{tokens} // {} };
	my $s3rver = SfTest::start_service('s3rver',
		[ SfTest::emulator('s3rver'), '--directory', $dir,
		  '--port', '0', '--port-file', '{PORT_FILE}', '--silent',
		  (map { ('--configure-bucket', $_) } @{ $o{buckets} }), @keys ], store => $dir);
	my $front = SfTest::start_service('s3_front',
		[ SfTest::emulator('s3_front'), '--port', '0',
		  '--port-file', '{PORT_FILE}', '--upstream', "http://127.0.0.1:$s3rver->{port}",
		  '--region', $o{region}, @keys,
		  (map { ('--policy', "$_=$o{policies}{$_}") } sort keys %{ $o{policies} // {} }),
		  (map { ('--session-token', "$_=$o{tokens}{$_}") } sort keys %{ $o{tokens} // {} }),
		  # credentials handed out by the credential stand-ins (issued_creds.py)
		  (map { ('--issued-credentials', $_) } @{ $o{issued} // [] }),
		  ($o{upstream_key} ? ('--upstream-key', $o{upstream_key}) : ()) ]);
	return { s3rver => $s3rver, front => $front, dir => $dir,
		endpoint => "http://127.0.0.1:$front->{port}" };
}

# The GCS stand-in (test/emulators/gcs) with one bucket and a
# freshly generated service-account key whose token_uri points at it.
# Returns { endpoint, key_file, key => {decoded JSON}, port }.
sub start_gcs
{
	my (%o) = @_;
	my $src = SfTest::src_dir();
	my $dir = File::Temp::tempdir('sf_gcs_XXXX', TMPDIR => 1, CLEANUP => 1);
	chmod 0755, $dir;
	my $key_file = "$dir/sa.json";
	my $gcs = SfTest::start_service('gcs',
		[ SfTest::emulator('gcs'), '--port', '0',
		  '--port-file', '{PORT_FILE}', '--data-dir', "$dir/data",
		  '--service-account', $key_file, (map { ('--bucket', $_) } @{ $o{buckets} }),
		  # tokens handed out by gce_metadata (issued_creds.py)
		  (map { ('--issued-tokens', $_) } @{ $o{issued} // [] }) ],
		store => "$dir/data");
	my $token_uri = "http://127.0.0.1:$gcs->{port}/token";
	system(SfTest::python(), "$src/test/emulators/lib/gcs_keys.py", $key_file, $token_uri) == 0
	  or die "gcs_keys.py failed";
	chmod 0600, $key_file;		# gcs_credentials_file: owner only
	$gcs->{endpoint} = "http://127.0.0.1:$gcs->{port}";
	$gcs->{key_file} = $key_file;
	$gcs->{key} = decode_json(PostgreSQL::Test::Utils::slurp_file($key_file));
	SfTest::register_secret('GCS service-account private key', $gcs->{key}{private_key});
	$gcs->{dir} = $dir;
	# a key the emulator does not know (same token_uri)
	system(SfTest::python(), "$src/test/emulators/lib/gcs_keys.py", "$dir/unknown.json", $token_uri) == 0
	  or die "gcs_keys.py failed";
	chmod 0600, "$dir/unknown.json";
	SfTest::register_secret('GCS private key unknown to the emulator',
		decode_json(PostgreSQL::Test::Utils::slurp_file("$dir/unknown.json"))->{private_key});
	$gcs->{unknown_key_file} = "$dir/unknown.json";
	return $gcs;
}

# Call the GCS emulator's admin API.
sub emu
{
	my ($gcs, $method, $path, $body) = @_;
	my $r = HTTP::Tiny->new(timeout => 10)->request($method, "$gcs->{endpoint}$path",
		$body ? { content => encode_json($body), headers => { 'content-type' => 'application/json' } } : {});
	die "emulator admin $method $path: $r->{status} $r->{content}" unless $r->{success};
	return decode_json($r->{content});
}

# Upload $sql (a bytea query) as $object of $server in 5 MB parts from a
# background session while the store delays a part (the caller's fault),
# wait until the upload waits on the network, cancel it, and check that it
# stopped quickly.  Returns the session, still open, for more queries.
sub cancel_upload
{
	my ($node, $server, $object, $sql) = @_;
	my $bg = $node->background_psql('postgres', on_error_stop => 0);
	my $ours = "query LIKE '%$object%' AND pid <> pg_backend_pid()";

	$bg->query_until(qr/start/, "\\echo start\nSET sfexport.upload_part_size = '5MB';\n"
		. "SELECT sfexport_test.storage_put('$server', '$object', ($sql), 1000000);\n");
	ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM pg_stat_activity WHERE $ours"
			. " AND wait_event IN ('SfexportHttpTransfer', 'Extension')"),
		"$server: the upload waits for a part on the network");
	my $t0 = Time::HiRes::time();
	is($node->safe_psql('postgres', "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE $ours"),
		't', "$server: cancel sent while a part is on the network");
	$node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE $ours AND state = 'active'");
	cmp_ok(Time::HiRes::time() - $t0, '<', SfTest::secs(5),
		"$server: pg_cancel_backend stops the wait for a part quickly");
	return $bg;
}

# Call the front's admin API; returns the decoded JSON answer.
sub front
{
	my ($s3, $method, $path, $body) = @_;
	my $r = HTTP::Tiny->new(timeout => 10)->request($method, "$s3->{endpoint}$path",
		$body ? { content => encode_json($body), headers => { 'content-type' => 'application/json' } } : {});
	die "front admin $method $path: $r->{status} $r->{content}" unless $r->{success};
	return decode_json($r->{content});
}

1;
