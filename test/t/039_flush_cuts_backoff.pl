# sfexport.flush() cuts short the backoffs of failed flushes and failed
# loads: after the DBA fixed the cause, rows go at once instead of after
# a backoff that has grown to minutes.  Files Snowflake rejected stay
# failed (that takes sfexport.retry()).
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $stage = tempdir('sf_stage_XXXX', TMPDIR => 1, CLEANUP => 1);
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }

my $node = SfTest::new_node('flushnow', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (account 'testacct', url '$emu->{url}',
	  database 'DB', location 'file://$stage/', flush_interval '1h');
	CREATE USER MAPPING FOR PUBLIC SERVER sf OPTIONS (user 'LOADER',
	  private_key @{[ SfSnowflake::lit($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int, v text) SERVER sf OPTIONS (table 'EV');
});
sf(q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () COMPRESSION = AUTO});
sf(qq{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 'file://$stage/'});

sub warnings_so_far { return () = slurp_file($node->logfile) =~ /$_[0]/g; }
sub wait_for
{
	my ($cond) = @_;
	my $deadline = time + 120;
	until ($cond->()) { return 0 if time > $deadline; select(undef, undef, undef, 0.2); }
	return 1;
}

# --- a flush that keeps failing: the stage directory is not writable
chmod 0500, $stage;
$node->safe_psql('postgres', q{INSERT INTO ev SELECT g, 'a' FROM generate_series(1, 100) g});
for my $n (1 .. 3)
{
	# each flush() fails once more: backoffs 5 s, 10 s, 20 s follow
	$node->safe_psql('postgres', 'SELECT sfexport.flush()');
	ok(wait_for(sub { warnings_so_far(qr/WARNING: .*could not create/) >= $n }),
		"staging failed ($n)") or last;
}
chmod 0755, $stage;
my $t0 = time;
$node->safe_psql('postgres', 'SELECT sfexport.flush()');
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM sfexport.files}),
	'after the fix, flush() stages at once');
cmp_ok(time - $t0, '<', 15, 'without waiting out the backoff (20 s by now)');
is($node->safe_psql('postgres', q{SELECT sum(rows) FROM sfexport.files}), '100', 'all rows staged');

# --- a load that keeps failing: the target table does not exist yet.
# Each flush() makes one more attempt; wait for it before the next, so no
# flush() is still pending (it would cut the backoff) when it is read.
my $att = $node->safe_psql('postgres', 'SELECT attempts FROM sfexport.files');
while ($att < 3)
{
	$node->safe_psql('postgres', 'SELECT sfexport.flush()');
	ok($node->poll_query_until('postgres', "SELECT attempts > $att FROM sfexport.files"),
		"the load failed (attempt " . ($att + 1) . ")") or last;
	$att = $node->safe_psql('postgres', 'SELECT attempts FROM sfexport.files');
}
ok($node->poll_query_until('postgres',
		q{SELECT next_attempt_at - now() > interval '15 s' FROM sfexport.files}),
	'the load backoff has grown past 15 s');
sf(q{CREATE TABLE DB.PUBLIC.EV ("id" NUMBER, "v" VARCHAR)});
$t0 = time;
$node->safe_psql('postgres', 'SELECT sfexport.flush()');
ok($node->poll_query_until('postgres', q{SELECT state = 'loaded' FROM sfexport.files}),
	'after the fix, flush() loads at once');
cmp_ok(time - $t0, '<', 15, 'without waiting out the load backoff');
is(sf('SELECT COUNT(*) FROM DB.PUBLIC.EV')->{rows}[0][0], 100, 'every row arrived once');

$node->stop;
done_testing();
