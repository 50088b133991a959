# load_mode 'snowpipe' with S3 and GCS stages (s3rver behind the SigV4
# front, the GCS emulator): setup creates stage, table and pipe; rows go
# through insertFiles and the pipe's COPY, which reads the staged objects
# back from the storage stand-in; exactly once, and the loaded objects are
# deleted from storage afterwards.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfStorageTest;
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $s3 = SfStorageTest::start_s3(buckets => ['pipes'], region => 'eu-west-1',
	keys => { AKIAPIPE => 'pipe-secret' });
my $gcs = SfStorageTest::start_gcs(buckets => ['gpipes']);
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--s3-endpoint', $s3->{endpoint}, '--s3-access-key', 'AKIAPIPE',
		'--s3-secret-key', 'pipe-secret', '--s3-region', 'eu-west-1',
		'--gcs-endpoint', $gcs->{endpoint}, '--gcs-credentials', $gcs->{key_file},
		'--pipe-delay-ms', '500' ]);
my $lit = \&SfSnowflake::lit;

my $node = SfTest::new_node('snowpipe_clouds', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n"
	  . "sfexport.snowpipe_poll_interval = 200ms\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER s3 FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 's3://pipes/pg/', region 'eu-west-1', endpoint '$s3->{endpoint}',
		stage 'S3_STAGE', flush_interval '1h', upper_case_identifiers 'true', load_mode 'snowpipe');
	CREATE USER MAPPING FOR PUBLIC SERVER s3 OPTIONS (user 'LOADER',
		private_key @{[ $lit->($key->{pem}) ]},
		aws_access_key_id 'AKIAPIPE', aws_secret_access_key 'pipe-secret');
	CREATE SERVER gcs FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC',
		location 'gcs://gpipes/pg/', endpoint '$gcs->{endpoint}', storage_integration 'GCS_INT',
		stage 'GCS_STAGE', flush_interval '1h', upper_case_identifiers 'true', load_mode 'snowpipe');
	CREATE USER MAPPING FOR PUBLIC SERVER gcs OPTIONS (user 'LOADER',
		private_key @{[ $lit->($key->{pem}) ]}, gcs_credentials_file '$gcs->{key_file}');
	CREATE FOREIGN TABLE ev_s3 (id int, payload jsonb) SERVER s3;
	CREATE FOREIGN TABLE ev_gcs (id int, payload jsonb) SERVER gcs;
});

sub sq { my ($sql) = @_; return $node->safe_psql('postgres', $sql); }

for my $srv (qw(s3 gcs))
{
	my $t = "ev_$srv";
	my $out = sq(qq{SELECT * FROM sfexport.setup('$srv')});
	like($out, qr/CREATE PIPE IF NOT EXISTS "DB"\."PUBLIC"\."EV_\U$srv\E_SFEXPORT_PIPE_[0-9A-F]{16}"/,
		"$srv: setup creates the pipe");
	sq(qq{INSERT INTO $t SELECT g, jsonb_build_object('g', g, 's', 'x' || g)
		FROM generate_series(1, 300) g; SELECT sfexport.flush()});
	ok($node->poll_query_until('postgres', qq{SELECT pending_rows = 0 AND staged_files = 0
		AND submitted_files = 0 AND failed_files = 0 AND loaded_rows = 300
		FROM sfexport.status WHERE foreign_table = '$t'::regclass}),
		"$srv: rows are loaded through the pipe")
	  or diag(sq(q{SELECT name, state, load_via, last_error, first_error FROM sfexport.files}));
	my $r = SfSnowflake::emu_query($emu, qq{SELECT "ID", "PAYLOAD":s FROM DB.PUBLIC.\U$t\E ORDER BY "ID"});
	my %seen;
	$seen{ $_->[0] }++ for @{ $r->{rows} };
	is(scalar(keys %seen), 300, "$srv: every id arrived");
	is(scalar(grep { $_ > 1 } values %seen), 0, "$srv: none twice");
	is($r->{rows}[6][1], '"x7"', "$srv: JSON through PARSE_JSON in the pipe");
	ok($node->poll_query_until('postgres', qq{SELECT count(*) = 0 FROM sfexport.files
		WHERE relid = '$t'::regclass AND deleted_at IS NULL}),
		"$srv: loaded objects are deleted from storage");
}

$node->stop;
done_testing();
