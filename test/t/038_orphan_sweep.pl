# Orphaned objects (src/sweep.c): files whose upload never committed are
# listed by sfexport.orphans() and deleted by the worker's periodic sweep;
# nothing else in the stage is touched:
#  - files named in the manifest (here: real files whose COPY keeps failing),
#  - files younger than sfexport.orphan_grace,
#  - files of another cluster (other system identifier) or database,
#  - names sfexport does not make,
#  - anything in the stage of a server with keep_files.
# Only the server's owner may list its orphans.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use POSIX qw(strftime);
use PostgreSQL::Test::Utils;
use Test::More;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
my $key = SfSnowflake::gen_key($kdir, 'main');
my $pem = SfSnowflake::lit($key->{pem});
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
my $keep = tempdir('sf_keep_XXXX', TMPDIR => 1, CLEANUP => 1);

# the sweep is off until the end; Snowflake is unreachable, so staged files
# stay in the manifest (state staged, load retried later)
my $node = SfTest::new_node('sweep',
	conf => "sfexport.launcher_naptime = 1s\nsfexport.orphan_sweep_interval = 0\nlog_statement = none\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER s1 FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', url 'http://127.0.0.1:9',
	  database 'DB', location 'file://$stage/', flush_interval '1h', connect_timeout '100ms');
	CREATE SERVER s_keep FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', url 'http://127.0.0.1:9',
	  database 'DB', location 'file://$keep/', keep_files 'true');
	CREATE USER MAPPING FOR PUBLIC SERVER s1 OPTIONS (user 'U', private_key $pem);
	CREATE USER MAPPING FOR PUBLIC SERVER s_keep OPTIONS (user 'U', private_key $pem);
	CREATE FOREIGN TABLE t (id int, v text) SERVER s1;
});
for my $batch (1, 2)
{
	$node->safe_psql('postgres',
		"INSERT INTO t SELECT g, 'row ' || g FROM generate_series(1, 10) g; SELECT sfexport.flush()");
	ok($node->poll_query_until('postgres', "SELECT count(*) = $batch FROM sfexport.files"),
		"file $batch staged (its load fails: Snowflake is unreachable)");
}
my @real = split /\n/, $node->safe_psql('postgres', 'SELECT name FROM sfexport.files ORDER BY file_id');
is(scalar(@real), 2, 'two real files in the manifest');
ok(-f "$stage/$_", "real file $_ is in the stage") for @real;

my $db = $node->safe_psql('postgres', q{SELECT oid FROM pg_database WHERE datname = 'postgres'});
my $rel = $node->safe_psql('postgres', q{SELECT 't'::regclass::oid});
my $sysid = $node->safe_psql('postgres', 'SELECT system_identifier FROM pg_control_system()');
my $other_sysid = $sysid eq '1' ? '2' : '1';

sub plant
{
	my ($dir, $name) = @_;
	my ($d) = $name =~ m{^(.*)/[^/]+$};
	make_path("$dir/$d");
	open my $fh, '>', "$dir/$name" or die "$dir/$name: $!";
	print $fh "1,\"planted\"\n";
	close $fh;
	return $name;
}
my $now = strftime('%Y%m%dT%H%M%S.000000Z', gmtime(time));
my %f = (
	old      => plant($stage, "$db/$rel/20200101T000000.000000Z_${sysid}_1_0badf00d.csv.gz"),
	old_zst  => plant($stage, "$db/$rel/20200101T000001.500000Z_${sysid}_2_0badf00e.csv.zst"),
	recent   => plant($stage, "$db/$rel/${now}_${sysid}_1_0badf00f.csv.gz"),
	cluster  => plant($stage, "$db/$rel/20200101T000000.000000Z_${other_sysid}_1_0badf010.csv.gz"),
	otherdb  => plant($stage, ($db + 1) . "/$rel/20200101T000000.000000Z_${sysid}_1_0badf011.csv.gz"),
	foreign  => plant($stage, "$db/$rel/notes.txt"),
	badtime  => plant($stage, "$db/$rel/20201301T000000.000000Z_${sysid}_1_0badf012.csv.gz"),
	trailing => plant($stage, "$db/$rel/20200101T000000.000000Z_${sysid}_1_0badf013x.csv.gz"),
	kept     => plant($keep, "$db/$rel/20200101T000000.000000Z_${sysid}_1_0badf014.csv.gz"),
);

sub orphans
{
	my ($server) = @_;
	return $node->safe_psql('postgres',
		"SELECT string_agg(object, ' ' ORDER BY object) FROM sfexport.orphans('$server')");
}

is(orphans('s1'), join(' ', sort($f{old}, $f{old_zst})),
	'orphans(): only old files of this database and cluster that no manifest row names');
is($node->safe_psql('postgres',
		"SELECT uploaded_at = '2020-01-01 00:00:01.5+00' FROM sfexport.orphans('s1') WHERE object LIKE '%.zst'"),
	't', 'the upload time comes from the name');

my ($ret, $out, $err) = $node->psql('postgres', q{SELECT * FROM sfexport.orphans('s_keep')});
is($out, '', 'keep_files: nothing is an orphan');
like($err, qr/keeps its files/, 'keep_files: a notice says why');

$node->safe_psql('postgres', q{CREATE ROLE somebody LOGIN; GRANT USAGE ON FOREIGN SERVER s1 TO somebody});
($ret, $out, $err) = $node->psql('postgres',
	q{SET ROLE somebody; SELECT * FROM sfexport.orphans('s1')}, extra_params => ['-v', 'VERBOSITY=verbose']);
like($err, qr/42501: must be owner of server "s1"/, 'a non-owner may not list orphans (42501)');

# the owner of a server need not be a superuser, nor be able to read the
# manifest (sfexport.files): orphans() reads it as the extension's owner
$node->safe_psql('postgres', q{
	CREATE ROLE keeper LOGIN;
	CREATE SERVER s_owned FOREIGN DATA WRAPPER sfexport OPTIONS (account 'a', url 'http://127.0.0.1:9',
	  database 'DB', location 'file://} . $stage . q{/');
	CREATE USER MAPPING FOR keeper SERVER s_owned OPTIONS (user 'U', private_key } . $pem . q{);
	ALTER SERVER s_owned OWNER TO keeper;
});
is($node->safe_psql('postgres', q{SELECT has_table_privilege('keeper', 'sfexport.files', 'SELECT')}), 'f',
	'the non-superuser owner may not read the manifest');
($ret, $out, $err) = $node->psql('postgres',
	q{SET ROLE keeper; SELECT string_agg(object, ' ' ORDER BY object) FROM sfexport.orphans('s_owned')});
is($out, join(' ', sort($f{old}, $f{old_zst})),
	'a non-superuser server owner lists its orphans; files in the manifest are not orphans') or diag($err);
$node->safe_psql('postgres', q{DROP USER MAPPING FOR keeper SERVER s_owned; DROP SERVER s_owned});

# a short grace: the recent plant is an orphan now, the real files are not
$node->safe_psql('postgres', q{ALTER SYSTEM SET sfexport.orphan_grace = '1s'; SELECT pg_reload_conf()});
sleep 2;
is(orphans('s1'), join(' ', sort($f{old}, $f{old_zst}, $f{recent})),
	'past the grace period a recent orphan is listed; files in the manifest never are');

# a real file whose manifest row is gone is what a lost commit leaves
$node->safe_psql('postgres', "DELETE FROM sfexport.files WHERE name = '$real[0]'");
is(orphans('s1'), join(' ', sort($f{old}, $f{old_zst}, $f{recent}, $real[0])),
	'a real file no manifest row names is an orphan (the parser reads real names)');

# the worker's sweep
$node->safe_psql('postgres',
	q{ALTER SYSTEM SET sfexport.orphan_sweep_interval = '1s'; SELECT pg_reload_conf()});
my $deadline = time + 60;
sleep 1 while time < $deadline && grep { -e "$stage/$_" } ($f{old}, $f{old_zst}, $f{recent}, $real[0]);
ok(!-e "$stage/$_", "swept: $_") for ($f{old}, $f{old_zst}, $f{recent}, $real[0]);
ok(-e "$stage/$f{$_}", "not swept: $_") for qw(cluster otherdb foreign badtime trailing);
ok(-e "$keep/$f{kept}", 'not swept: a file of a keep_files server');
ok(-e "$stage/$real[1]", 'not swept: the real file the manifest names');
is(orphans('s1'), '', 'no orphans left');
like(slurp_file($node->logfile), qr/deleted \d orphaned file\(s\) from the stage of server "s1"/,
	'the sweep is logged');
is($node->safe_psql('postgres', 'SELECT count(*), sum(rows) FROM sfexport.files'), '1|10',
	'the manifest still names the remaining real file and its rows');

done_testing();
