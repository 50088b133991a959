# Audit of Snowpipe Streaming (#20): the worker caches each server's ingest
# host and scoped token (streaming.c).  When the server's url is changed
# (ALTER SERVER ... OPTIONS (SET url ...): the old account is retired, or
# was the wrong one), the rows inserted after the change must go to the new
# account, not keep flowing to the old account's ingest host with a token
# of the old account until the worker happens to restart.  Two emulators
# (two accounts); the worker stays the same process throughout.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use JSON::PP;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $old = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $new = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} });
my $lit = \&SfSnowflake::lit;
for my $e ($old, $new)
{
	SfSnowflake::admin($e, 'POST', 'streaming', { require_scoped_token => JSON::PP::true });
	SfSnowflake::emu_query($e, q{CREATE TABLE DB.PUBLIC.EV ("ID" NUMBER(10,0))});
}

my $node = SfTest::new_node('audit_stream', conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n"
	  . "sfexport.streaming_poll_interval = 200ms\n");
sub sq { return $node->safe_psql('postgres', $_[0]); }
sq(qq{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$old->{url}', database 'DB', schema 'PUBLIC',
		location 's3://unused/audit/', flush_interval '1s',
		upper_case_identifiers 'true', load_mode 'streaming');
	CREATE USER MAPPING FOR PUBLIC SERVER sf
		OPTIONS (user 'LOADER', private_key @{[ $lit->($key->{pem}) ]});
	CREATE FOREIGN TABLE ev (id int) SERVER sf;
});

sub ids
{
	my ($e) = @_;
	return join ',', sort { $a <=> $b } map { $_->[0] }
	  @{ SfSnowflake::emu_query($e, q{SELECT "ID" FROM DB.PUBLIC.EV})->{rows} };
}
sub drained
{
	my ($what) = @_;
	ok($node->poll_query_until('postgres', q{SELECT
		  NOT EXISTS (SELECT FROM sfexport.outbox WHERE relid = 'ev'::regclass)
		  AND NOT EXISTS (SELECT FROM sfexport.stream_batches WHERE relid = 'ev'::regclass)}),
		$what) or diag(sq(q{SELECT batch_id, state, rows, error FROM sfexport.stream_batches}));
}

sq(q{INSERT INTO ev SELECT generate_series(1, 3); SELECT sfexport.flush()});
drained('the first rows are streamed');
is(ids($old), '1,2,3', 'they are in the old account');
my $w = sq(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sfexport worker'});

sq(qq{ALTER SERVER sf OPTIONS (SET url '$new->{url}')});
sq(q{INSERT INTO ev SELECT generate_series(4, 6); SELECT sfexport.flush()});
drained('the rows after the change are streamed');
is(ids($new), '4,5,6', 'the rows inserted after ALTER SERVER ... url reach the new account');
is(ids($old), '1,2,3', 'the old account receives nothing more');
is(sq(q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'sfexport worker'}), $w,
	'the same worker did both');

done_testing();
