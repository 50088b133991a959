# SfStorageTest.pm: start the storage stand-ins for the sfexport TAP tests.
#
#   my $s3 = SfStorageTest::start_s3(keys => {ID => SECRET}, tokens => {ID => TOKEN},
#                                    region => 'eu-west-1', buckets => ['b']);
#   $s3->{endpoint}            http://127.0.0.1:PORT of the verifying front
#   SfStorageTest::front($s3, 'POST', '/_front/faults', {kind => 'slowdown'});
#
# s3rver (npm) stores the objects; test/emulators/sigv4_front.py, placed in
# front of it, verifies every SigV4 signature with botocore.
package SfStorageTest;

use strict;
use warnings;

use HTTP::Tiny;
use JSON::PP;
use SfTest;
use Test::More;

sub start_s3
{
	my (%o) = @_;
	my $src = SfTest::src_dir();
	my $dir = File::Temp::tempdir('sf_s3rver_XXXX', TMPDIR => 1, CLEANUP => 1);
	my @keys = map { ('--key', "$_=$o{keys}{$_}") } sort keys %{ $o{keys} };
	my $s3rver = SfTest::start_service('s3rver',
		[ 'node', "$src/test/emulators/s3rver/start-s3rver.js", '--directory', $dir,
		  '--port', '0', '--port-file', '{PORT_FILE}', '--silent',
		  (map { ('--configure-bucket', $_) } @{ $o{buckets} }), @keys ]);
	my $front = SfTest::start_service('sigv4_front',
		[ SfTest::python(), "$src/test/emulators/sigv4_front.py", '--port', '0',
		  '--port-file', '{PORT_FILE}', '--upstream', "http://127.0.0.1:$s3rver->{port}",
		  '--region', $o{region}, @keys,
		  (map { ('--session-token', "$_=$o{tokens}{$_}") } sort keys %{ $o{tokens} // {} }) ]);
	return { s3rver => $s3rver, front => $front, dir => $dir,
		endpoint => "http://127.0.0.1:$front->{port}" };
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
