# Storage listings have bounds, and uploads in progress end with the
# process (issue 14: medium 6, low 10).
#  - An S3 endpoint that answers IsTruncated=true forever (a new token each
#    time): a listing stops after 100 requests with a WARNING (54000), it
#    does not grow until the process dies.
#  - One that sends the same continuation token again: an error (08P01)
#    after the second request.
#  - The worker's orphan sweep with a server whose endpoint never answers:
#    the sweep of that server gives up by its time budget (30 s, every
#    request included), the other server is swept, and the worker goes on
#    loading.
#  - pg_terminate_backend() (a FATAL error, no PG_CATCH runs) during a GCS
#    resumable upload and an S3 multipart upload (while its last part is
#    held back, and while a part sent in the background is): the exit
#    callback aborts the upload (the GCS session is gone; S3 got its DELETE
#    ?uploadId).
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfStorageTest;
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use POSIX qw(strftime);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $raw = SfTest::start_service('raw_reply',
	[ SfTest::emulator('raw_reply'), '--port', '0', '--port-file', '{PORT_FILE}' ]);
my $raw_url = "http://127.0.0.1:$raw->{port}";
sub raw_replies
{
	my $r = HTTP::Tiny->new(timeout => 10)->post("$raw_url/_raw/replies",
		{ content => encode_json({ replies => \@_ }), headers => { 'Content-Type' => 'application/json' } });
	die "raw_reply: $r->{status}" unless $r->{success};
}
sub raw_requests
{
	my $r = HTTP::Tiny->new(timeout => 10)->get("$raw_url/_raw/requests");
	return decode_json($r->{content});
}
SfTest::register_secret('AWS secret of the raw endpoint', 'raw-secret-082');

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $stage;
my $gcs = SfStorageTest::start_gcs(buckets => ['gbucket']);
my %aws = (AKIDEXIT => 'exit-aws-secret-082');
my $s3 = SfStorageTest::start_s3(keys => \%aws, region => 'us-east-1', buckets => ['xbucket']);

my $node = SfTest::new_node('bounds', test_surface => 1,
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\nlog_error_verbosity = verbose\n"
	  . "sfexport.orphan_grace = 1s\n"
	# no sweep by the worker until the test turns it on below: its first sweep
	# would list the raw-reply server too and double the requests counted
	  . "sfexport.orphan_sweep_interval = 0\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER endless FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'DB',
		location 's3://rawbucket/p/', endpoint '$raw_url', region 'us-east-1', request_timeout '20s');
	CREATE USER MAPPING FOR PUBLIC SERVER endless
		OPTIONS (aws_access_key_id 'AKIDRAW', aws_secret_access_key 'raw-secret-082');
	CREATE SERVER good FOREIGN DATA WRAPPER sfexport OPTIONS (account 'testacct', url '$emu->{url}',
		database 'DB', schema 'PUBLIC', location 'file://$stage/', flush_interval '1s');
	CREATE USER MAPPING FOR PUBLIC SERVER good
		OPTIONS (user 'LOADER', private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int) SERVER good OPTIONS (table 'EV');
	CREATE SERVER g FOREIGN DATA WRAPPER sfexport
		OPTIONS (account 'a', database 'D', location 'gcs://gbucket/up/', endpoint '$gcs->{endpoint}');
	CREATE USER MAPPING FOR PUBLIC SERVER g OPTIONS (gcs_credentials_file '$gcs->{key_file}');
	CREATE SERVER x FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', database 'D',
		location 's3://xbucket/up/', endpoint '$s3->{endpoint}', region 'us-east-1');
	CREATE USER MAPPING FOR PUBLIC SERVER x
		OPTIONS (aws_access_key_id 'AKIDEXIT', aws_secret_access_key '$aws{AKIDEXIT}');
});
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }
sf(q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () COMPRESSION = AUTO});
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});
sf(q{CREATE TABLE DB.PUBLIC.EV ("id" NUMBER)});

sub psql_verbose
{
	my ($sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($ret, $out, $err);
}
my $page = '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>rawbucket</Name>'
  . '<IsTruncated>true</IsTruncated><Contents><Key>p/5/{seq}/not-ours-{seq}.csv</Key></Contents>'
  . '<NextContinuationToken>token-{seq}</NextContinuationToken></ListBucketResult>';

# ---- a listing that pages forever
raw_replies({ status => 200, headers => { 'Content-Type' => 'application/xml' }, body => $page, number => JSON::PP::true });
my $t0 = time;
my ($ret, $out, $err) = psql_verbose(q{SELECT count(*) FROM sfexport.orphans('endless')});
is($ret, 0, 'orphans() over an endless listing returns');
like($err, qr/WARNING:  54000: listing of s3:\/\/rawbucket\/p\/\d+\/ stopped after 100 requests/,
	'with a WARNING that the listing stopped at its bound (54000)');
is(scalar @{ raw_requests() }, 100, 'after exactly 100 requests');
cmp_ok(time - $t0, '<', SfTest::secs(60), 'in bounded time');

# ---- the same continuation token again
raw_replies({ status => 200, headers => { 'Content-Type' => 'application/xml' },
	body => $page =~ s/\{seq\}/7/gr });
($ret, $out, $err) = psql_verbose(q{SELECT count(*) FROM sfexport.orphans('endless')});
like($err, qr/ERROR:  08P01: S3 request GET \S+ returned the same continuation token twice/,
	'a continuation token that does not move is an error (08P01)');
is(scalar @{ raw_requests() }, 2, 'noticed at the second request');

# ---- the worker's sweep: an endpoint that never answers holds back nothing
my $db = $node->safe_psql('postgres', q{SELECT oid FROM pg_database WHERE datname = 'postgres'});
my $rel = $node->safe_psql('postgres', q{SELECT 'ev'::regclass::oid});
my $sysid = $node->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
my $orphan = "$db/$rel/20200101T000000.000000Z_${sysid}_1_0badf00d.csv.gz";
make_path("$stage/$db/$rel");
open my $fh, '>', "$stage/$orphan" or die $!;
print $fh "1\n";
close $fh;
raw_replies({ status => 200, delay_ms => 600_000, body => '' });	# never answers in time
$t0 = time;
$node->safe_psql('postgres', q{ALTER SYSTEM SET sfexport.orphan_sweep_interval = '1s'; SELECT pg_reload_conf()});
my $gone = 0;
while (time - $t0 < SfTest::secs(120))
{
	if (!-e "$stage/$orphan") { $gone = 1; last; }
	usleep(250_000);
}
my $took = time - $t0;
ok($gone, 'the good server\'s orphan is swept although the other server\'s endpoint hangs');
cmp_ok($took, '<', SfTest::secs(75), sprintf('within the per-server time budget (%.0f s)', $took));
like(slurp_file($node->logfile), qr/WARNING:  08006: GET http:\/\/127\.0\.0\.1:\d+\/rawbucket\/ failed: .*(?:timed out|Timeout)/,
	'the hanging server\'s listing gave up at its deadline (a WARNING, the worker goes on)');
$node->safe_psql('postgres', 'INSERT INTO ev SELECT generate_series(1, 20)');
ok($node->poll_query_until('postgres', q{SELECT loaded_rows = 20 FROM sfexport.status}),
	'and the worker goes on loading');
$node->safe_psql('postgres', q{ALTER SYSTEM RESET sfexport.orphan_sweep_interval; SELECT pg_reload_conf()});

# ---- uploads in progress when the backend is terminated
sub put_in_background	# starts a 6 MB upload (two parts of 5 MB / the rest) in its own session
{
	my ($server) = @_;
	my ($in, $o, $e) = ('', '', '');
	my $h = IPC::Run::start([ 'psql', '-X', '-d', $node->connstr('postgres'), '-c',
		"SET application_name = 'uploader'; SET sfexport.upload_part_size = '5MB';
		 SELECT sfexport_test.storage_put('$server', 'big/object.bin',
		   convert_to(repeat('x', 6 * 1024 * 1024), 'UTF8'), 65536)" ],
		'<', \$in, '>', \$o, '2>', \$e);
	return ($h, \$e);
}
sub uploader_pid
{
	for (1 .. 200)
	{
		my $pid = $node->safe_psql('postgres',
			q{SELECT pid FROM pg_stat_activity WHERE application_name = 'uploader' AND state = 'active'});
		return $pid if $pid;
		usleep(100_000);
	}
	return undef;
}

# GCS: the last chunk of the resumable upload is held back by the stand-in
SfStorageTest::emu($gcs, 'POST', '/_emulator/faults',
	{ kind => 'delay', delay_ms => 20_000, method => 'PUT', path_regex => 'upload_id=', after => 1 });
my ($h, $e) = put_in_background('g');
my $pid = uploader_pid();
ok($pid, 'a 6 MB upload to GCS is under way');
sub sessions { return scalar(() = glob("$gcs->{dir}/data/uploads/*.json")); }
my $t = time;
usleep(100_000) until sessions() == 1 || time - $t > 30;
is(sessions(), 1, 'its resumable session is open (the first chunk sent)');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
$h->finish;
like($$e, qr/terminating connection due to administrator command/, 'the backend was terminated (FATAL)');
$t = time;
usleep(100_000) until sessions() == 0 || time - $t > 10;
is(sessions(), 0, 'the exit callback cancelled the resumable session');
like(slurp_file($node->logfile), qr/aborted the upload of "gcs:\/\/gbucket\/up\/big\/object\.bin" as the process ends/,
	'and logged it');
is($node->safe_psql('postgres', q{SELECT sfexport_test.storage_head('g', 'big/object.bin') IS NULL}), 't',
	'no object was made');
SfStorageTest::emu($gcs, 'DELETE', '/_emulator/faults');

# S3: the first part (on the network in the background while the last is
# written, storage.c) or the last one is held back by the front
sub s3_terminated_upload
{
	my ($held, $what) = @_;
	SfStorageTest::front($s3, 'DELETE', '/_front/requests');
	SfStorageTest::front($s3, 'POST', '/_front/faults',
		{ kind => 'delay', delay_ms => 20_000, method => 'PUT', path_regex => $held });
	my ($h, $e) = put_in_background('x');
	my $pid = uploader_pid();
	ok($pid, "a 6 MB upload to S3 is under way ($what held back)");
	my $t = time;
	my @reqs;
	while (time - $t < 30)
	{
		@reqs = @{ SfStorageTest::front($s3, 'GET', '/_front/requests')->{requests} };
		last if grep { $_->{method} eq 'PUT' } @reqs;
		usleep(100_000);
	}
	ok((grep { $_->{method} eq 'POST' } @reqs), "its multipart upload was started ($what held back)");
	usleep(500_000);
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
	$h->finish;
	like($$e, qr/terminating connection due to administrator command/, "the backend was terminated ($what held back)");
	$t = time;
	while (time - $t < 10)
	{
		@reqs = @{ SfStorageTest::front($s3, 'GET', '/_front/requests')->{requests} };
		last if grep { $_->{method} eq 'DELETE' } @reqs;
		usleep(100_000);
	}
	ok((grep { $_->{method} eq 'DELETE' && $_->{path} eq '/xbucket/up/big/object.bin' } @reqs),
		"the exit callback sent the multipart abort (DELETE ?uploadId) to S3 ($what held back)");
	SfStorageTest::front($s3, 'DELETE', '/_front/faults');
}
s3_terminated_upload('partNumber=2', 'the last part');
s3_terminated_upload('partNumber=1&', 'a part on the network');
is($node->safe_psql('postgres', q{SELECT sfexport_test.storage_head('x', 'big/object.bin') IS NULL}), 't',
	'no S3 object was made');

$node->stop;
done_testing();
