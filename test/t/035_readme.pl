# README.md must not rot: run its SQL against the stand-ins.
#
# The PostgreSQL block of "Quick start / Against Snowflake and S3" runs
# statement by statement, with only what points at real clouds replaced
# (the server gets url and endpoint options for the emulators, the key file
# and AWS keys are the test's), and every statement must succeed; the row
# it inserts must arrive.  Then every query of the "Monitoring" section must
# run without error.  (037 runs the account setup: key pair, Snowflake SQL,
# IAM policies, GCS and Glue.)
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfStorageTest;
use SfReadme;
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;

sub sql_blocks { return SfReadme::blocks($_[0], 'sql'); }
sub statements { return SfReadme::statements($_[0]); }

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'readme');
my $s3 = SfStorageTest::start_s3(buckets => ['my-bucket'], region => 'eu-west-1',
	keys => { AKIAREADME => 'readme-secret' });
my $emu = SfSnowflake::start_emulator(account => 'MYORG-MYACCOUNT',
	users => { SFEXPORT => $key->{pub} },
	args => [ '--s3-endpoint', $s3->{endpoint}, '--s3-access-key', 'AKIAREADME',
		'--s3-secret-key', 'readme-secret', '--s3-region', 'eu-west-1' ]);

my $node = SfTest::new_node('readme', no_extension => 1,
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', 'CREATE ROLE app');

my ($quick) = grep { /CREATE EXTENSION sfexport/ } sql_blocks(qr/Quick start/);
ok($quick, 'README has the quick-start SQL');
my $n = 0;
for my $stmt (statements($quick))
{
	my $run = $stmt;
	$run =~ s/(storage_integration 'SFEXPORT_S3')/$1, url '$emu->{url}', endpoint '$s3->{endpoint}'/;
	$run =~ s{'/etc/postgresql/sfexport/rsa_key.p8'}{'$key->{priv}'};
	$run =~ s/'AKIA\.\.\.'/'AKIAREADME'/;
	$run =~ s/aws_secret_access_key '\.\.\.'/aws_secret_access_key 'readme-secret'/;
	my ($rc, $out, $err) = $node->psql('postgres', $run);
	is($rc, 0, "README statement runs: " . (split /\n/, $stmt)[0]) or diag($err);
	$n++;
}
cmp_ok($n, '>=', 10, "ran $n statements of the quick start");

$node->safe_psql('postgres', 'SELECT sfexport.flush()');
ok($node->poll_query_until('postgres',
	q{SELECT loaded_rows = 1 AND pending_rows = 0 FROM sfexport.status WHERE foreign_table = 'events'::regclass}),
	'the quick start row arrives in Snowflake')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.status'));
is(SfSnowflake::emu_query($emu, q{SELECT COUNT(*) FROM ANALYTICS.RAW.EVENTS},
		database => 'ANALYTICS', schema => 'RAW')->{rows}[0][0],
	1, 'the emulated Snowflake table has it');

my @monitoring = map { statements($_) } sql_blocks(qr/Monitoring/);
cmp_ok(scalar(@monitoring), '>=', 4, 'README has monitoring queries');
for my $q (@monitoring)
{
	my ($rc, $out, $err) = $node->psql('postgres', $q);
	is($rc, 0, 'monitoring query runs: ' . substr($q =~ s/\s+/ /gr, 0, 60)) or diag($err);
}

$node->stop;
done_testing();
