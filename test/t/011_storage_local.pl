# Local-directory storage (file:///dir/): small and multipart-sized objects
# are read back byte for byte, writes are atomic (temporary file renamed
# into place, nothing left behind on abort), listings, deletes, and
# sfexport.test_storage() for success and failure.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use PostgreSQL::Test::Utils;
use Test::More;
use File::Temp qw(tempdir);

my $node = SfTest::new_node('local', test_surface => 1);
my $dir = tempdir('sf_local_XXXX', TMPDIR => 1, CLEANUP => 1);
$node->safe_psql('postgres', qq{
	CREATE SERVER loc FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'file://$dir/exports/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER loc;
	CREATE SERVER nodir FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'a', database 'D', location 'file://$dir/missing/');
	CREATE USER MAPPING FOR CURRENT_USER SERVER nodir;
});
mkdir "$dir/exports" or die;

# small object
is($node->safe_psql('postgres',
	"SELECT sfexport_test.storage_put('loc', 'a/small.csv', convert_to('x,y\n1,2\n', 'UTF8'))"),
	'8', 'small object written');
is(slurp_file("$dir/exports/a/small.csv"), "x,y\n1,2\n", 'small object is on disk with its content');
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_get('loc', 'a/small.csv') = convert_to(E'x,y\\n1,2\\n', 'UTF8')"),
	't', 'small object read back');
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_head('loc', 'a/small.csv')"), '8', 'head gives its size');
is($node->safe_psql('postgres', "SELECT sfexport_test.storage_head('loc', 'a/none.csv') IS NULL"), 't',
	'head of a missing object is NULL');

# object larger than several parts, written in odd-sized chunks
my $big = q{SELECT string_agg(md5(g::text), '' ORDER BY g)::bytea FROM generate_series(1, 600000) g};  # 19.2 MB
my $res = $node->safe_psql('postgres', qq{
	SET sfexport.upload_part_size = '5MB';
	SELECT sfexport_test.storage_put('loc', 'big.csv', ($big), 99991);
	SELECT md5(sfexport_test.storage_get('loc', 'big.csv')) = md5(($big));
});
is($res, "19200000\nt", 'an object of four parts is read back byte for byte');
is(-s "$dir/exports/big.csv", 19200000, 'file size on disk');

# abort leaves nothing, not even a temporary file
$node->safe_psql('postgres', qq{
	SET sfexport.upload_part_size = '5MB';
	SELECT sfexport_test.storage_put('loc', 'aborted.csv', ($big), 1000000, abort => true);
});
ok(!-e "$dir/exports/aborted.csv", 'an aborted object does not exist');
opendir my $dh, "$dir/exports" or die;
my @tmp = grep { /sfexport-tmp/ } readdir $dh;
closedir $dh;
is(scalar @tmp, 0, 'no temporary file left after abort');

# an error in the middle of a write (cancel by statement_timeout) leaves nothing
my ($ret, $out, $err) = $node->psql('postgres', qq{
	SET sfexport.upload_part_size = '5MB';
	SET statement_timeout = '1ms';
	SELECT sfexport_test.storage_put('loc', 'cancelled.csv', ($big), 10);
});
like($err, qr/statement timeout/, 'a write can be cancelled');
ok(!-e "$dir/exports/cancelled.csv", 'a cancelled object does not exist');

# listing and delete
is($node->safe_psql('postgres', "SELECT string_agg(n, ',') FROM sfexport_test.storage_list('loc') n"),
	'a/small.csv,big.csv', 'listing shows finished objects only');
is($node->safe_psql('postgres', "SELECT string_agg(n, ',') FROM sfexport_test.storage_list('loc', 'a/') n"),
	'a/small.csv', 'listing by prefix');
$node->safe_psql('postgres', "SELECT sfexport_test.storage_delete('loc', 'big.csv'); SELECT sfexport_test.storage_delete('loc', 'big.csv')");
ok(!-e "$dir/exports/big.csv", 'delete removes the file (and deleting twice is fine)');

# names cannot escape the location
($ret, $out, $err) = $node->psql('postgres', "SELECT sfexport_test.storage_put('loc', '../escape', '\\x00')");
like($err, qr/invalid object name/, 'names with .. are refused');

# test_storage: success
my $ts = $node->safe_psql('postgres', "SELECT step || ':' || ok FROM sfexport.test_storage('loc')");
is($ts, "configuration:true\nwrite:true\nstat:true\nread back:true\ndelete:true\nverify deleted:true",
	'test_storage succeeds on a writable directory');
ok(!-e "$dir/exports/_sfexport_probe" || !glob("$dir/exports/_sfexport_probe/*"), 'the probe object is gone');

# test_storage: failures
$ts = $node->safe_psql('postgres', "SELECT step, ok, detail FROM sfexport.test_storage('nodir')");
like($ts, qr/^configuration\|f\|directory ".*missing\/" of server "nodir" does not exist/, 'missing directory reported');
rmdir "$dir/exports/_sfexport_probe";
chmod 0500, "$dir/exports";
$ts = $node->safe_psql('postgres', "SELECT step, ok, detail FROM sfexport.test_storage('loc')");
chmod 0700, "$dir/exports";
like($ts, qr/^configuration\|t\|.*\nwrite\|f\|could not create (file|directory) .*Permission denied/s,
	'an unwritable directory fails the write step with the reason');
unlike($ts, qr/^read back/m, 'later steps are skipped after a failed write');

$node->stop;
done_testing();
