# No path from USAGE on the wrapper to the rights of a superuser
# (issue 14: criticals 1 and 2, mediums 7 and 8).
#
# A non-superuser role ("mallory") with USAGE on the wrapper and CREATE on
# public owns a server, with its own Glue endpoint and S3 bucket, and sets
# traps: public.now(), public.make_interval(secs int), public.power(int,
# int), public.power(float8, int) and operators public.= (text, oid, bigint)
# and public.|| (text), each of which, run by a superuser, writes a marker
# row and makes mallory a superuser.  Then:
#  - glue_sync on mallory's server, from a session with search_path =
#    public, pg_catalog (glue_sync's state is written as the owner of
#    sfexport.glue_sync_state, a superuser);
#  - the worker (the bootstrap superuser) loads mallory's table, with
#    ALTER DATABASE ... SET search_path = public, pg_catalog in force when
#    it connected; the loads fail (no target table) so the backoff
#    arithmetic runs; the periodic Glue sync runs in the worker too;
#  - retry() and flush() from mallory, a bystander and the database owner.
# The traps never fire (no marker row, mallory stays NOSUPERUSER), and
# every refusal carries SQLSTATE 42501: retry() of all tables, of another
# role's table, of a dropped table by someone not owning its server
# (0.1.0 let that through: pg_has_role(..., NULL) is NULL).  flush() by a
# role that is neither superuser nor database owner leaves the backoffs as
# they are; the database owner's flush() cuts them.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use SfSnowflake qw();
use SfGlue;
use SfStorageTest;
use File::Temp qw(tempdir);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

my $kdir = tempdir('sf_keys_XXXX', TMPDIR => 1, CLEANUP => 1);
chmod 0755, $kdir;
my $key = SfSnowflake::gen_key($kdir, 'main');
my $lit = \&SfSnowflake::lit;
my %aws = (AKIDMALLORY => 'mallory-aws-secret-080');
my $s3 = SfStorageTest::start_s3(keys => \%aws, region => 'us-east-1', buckets => ['mbucket']);
my $emu = SfSnowflake::start_emulator(account => 'TESTACCT', users => { LOADER => $key->{pub} },
	args => [ '--s3-endpoint', $s3->{endpoint}, '--s3-access-key', 'AKIDMALLORY',
		'--s3-secret-key', $aws{AKIDMALLORY} ]);
my $glue = SfGlue::start_emulator(keys => \%aws, region => 'us-east-1');
sub sf { return SfSnowflake::emu_query($emu, $_[0]); }
sf(q{CREATE STAGE DB.PUBLIC.SFEXPORT_STAGE URL = 's3://mbucket/lake/'});
sf(q{CREATE FILE FORMAT DB.PUBLIC.SFEXPORT_CSV TYPE = CSV FIELD_OPTIONALLY_ENCLOSED_BY = '"'
	ESCAPE_UNENCLOSED_FIELD = NONE NULL_IF = () COMPRESSION = AUTO});
sub glue_catalog
{
	my ($with_t1) = @_;
	SfGlue::write_catalog($glue, {
		databases => [ { Name => 'gdb' }, { Name => 'gdb2' } ],
		tables => {
			gdb  => [ $with_t1 ? SfGlue::table('t1', 'parquet', 's3://mbucket/lake/t1/', [ id => 'bigint' ]) : () ],
			gdb2 => [ SfGlue::table('t2', 'parquet', 's3://mbucket/lake/t2/', [ id => 'bigint' ]) ],
		},
	});
}
glue_catalog(1);

my $node = SfTest::new_node('sec',
	conf => "sfexport.launcher_naptime = 1s\nlog_statement = none\n");
$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE ROLE bystander LOGIN;
	CREATE ROLE dbo LOGIN CREATEDB;
	CREATE ROLE admin LOGIN SUPERUSER;
	GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO mallory;
	GRANT CREATE ON SCHEMA public TO mallory;
});

# psql as a role (its own session: session_user is that role)
sub as_role
{
	my ($role, $sql, %o) = @_;
	my ($ret, $out, $err) = $node->psql('postgres', $sql,
		extra_params => [ '-U', $role, '-v', 'VERBOSITY=verbose' ], on_error_die => 0);
	return wantarray ? ($ret, $out, $err) : $out;
}
sub mallory_ok
{
	my ($sql, $what) = @_;
	my ($ret, $out, $err) = as_role('mallory', "\\set ON_ERROR_STOP 1\n$sql");
	is($ret, 0, $what) or diag($err);
	return $out;
}
sub sqlstate_of
{
	my ($err) = @_;
	return $err =~ /ERROR:\s+([0-9A-Z]{5}):/ ? $1 : 'none';
}

# ---- mallory's server, mapping, table and traps
mallory_ok(qq{
	CREATE SERVER msrv FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url '$emu->{url}', database 'DB', schema 'PUBLIC', warehouse 'WH',
		location 's3://mbucket/lake/', endpoint '$s3->{endpoint}', region 'us-east-1',
		glue_endpoint '$glue->{url}', glue_region 'us-east-1', flush_interval '1h');
	CREATE USER MAPPING FOR mallory SERVER msrv OPTIONS (user 'LOADER',
		private_key @{[ $lit->($key->{pem}) ]},
		aws_access_key_id 'AKIDMALLORY', aws_secret_access_key '$aws{AKIDMALLORY}');
	CREATE FOREIGN TABLE public.mevents (id int, v text) SERVER msrv OPTIONS (table 'MEVENTS');

	CREATE TABLE public.trap_fired (what text, by_role text, as_superuser boolean);
	GRANT INSERT ON public.trap_fired TO PUBLIC;
	CREATE FUNCTION public.trap(what text) RETURNS boolean LANGUAGE plpgsql AS \$\$
	DECLARE
	    super boolean := (SELECT rolsuper FROM pg_catalog.pg_roles
	                       WHERE rolname OPERATOR(pg_catalog.=) current_user);
	BEGIN
	    INSERT INTO public.trap_fired VALUES (what, current_user, super);
	    IF super THEN
	        EXECUTE 'ALTER ROLE mallory SUPERUSER';
	    END IF;
	    RETURN true;
	END \$\$;
	CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS
	  \$\$ BEGIN PERFORM public.trap('now()'); RETURN pg_catalog.now(); END \$\$;
	CREATE FUNCTION public.make_interval(secs integer) RETURNS interval LANGUAGE plpgsql AS
	  \$\$ BEGIN PERFORM public.trap('make_interval(secs int)');
	       RETURN pg_catalog.make_interval(secs => secs); END \$\$;
	CREATE FUNCTION public.power(integer, integer) RETURNS double precision LANGUAGE plpgsql AS
	  \$\$ BEGIN PERFORM public.trap('power(int, int)'); RETURN pg_catalog.power(\$1, \$2); END \$\$;
	CREATE FUNCTION public.power(double precision, integer) RETURNS double precision
	  LANGUAGE plpgsql AS
	  \$\$ BEGIN PERFORM public.trap('power(float8, int)'); RETURN pg_catalog.power(\$1, \$2); END \$\$;
	CREATE FUNCTION public.evil_texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS
	  \$\$ BEGIN PERFORM public.trap('= (text, text)'); RETURN pg_catalog.texteq(\$1, \$2); END \$\$;
	CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_texteq);
	CREATE FUNCTION public.evil_oideq(oid, oid) RETURNS boolean LANGUAGE plpgsql AS
	  \$\$ BEGIN PERFORM public.trap('= (oid, oid)'); RETURN pg_catalog.oideq(\$1, \$2); END \$\$;
	CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = oid, FUNCTION = public.evil_oideq);
	CREATE FUNCTION public.evil_int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
	  \$\$ BEGIN PERFORM public.trap('= (bigint, bigint)'); RETURN pg_catalog.int8eq(\$1, \$2); END \$\$;
	CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.evil_int8eq);
	CREATE FUNCTION public.evil_textcat(text, text) RETURNS text LANGUAGE plpgsql AS
	  \$\$ BEGIN PERFORM public.trap('|| (text, text)'); RETURN pg_catalog.textcat(\$1, \$2); END \$\$;
	CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = public.evil_textcat);
}, 'mallory creates a server, a foreign table and the traps');

# the traps are armed: where a session would resolve to them, they fire
mallory_ok(q{
	SET search_path = public, pg_catalog;
	SELECT now(); SELECT 'a'::text = 'a'::text; SELECT 'a'::text || 'b'::text;
	SELECT 1::oid = 1::oid; SELECT 1::bigint = 1::bigint;
	RESET search_path;
	SELECT power(2, LEAST(1, 6)); SELECT power(2.0::float8, 1); SELECT make_interval(secs => 5);
}, 'mallory calls the traps herself');
is(as_role('mallory', q{SELECT string_agg(what, ', ' ORDER BY what) FROM public.trap_fired WHERE NOT as_superuser}),
	'= (bigint, bigint), = (oid, oid), = (text, text), make_interval(secs int), now(), power(float8, int), power(int, int), || (text, text)',
	'every trap is armed (fires when resolved, here as mallory herself)');
mallory_ok('TRUNCATE public.trap_fired', 'markers cleared');

sub traps_fired
{
	return $node->safe_psql('postgres',
		q{SELECT count(*) || coalesce(': ' || string_agg(what || ' by ' || by_role, ', '), '') FROM public.trap_fired});
}
sub mallory_super
{
	return $node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'});
}

# ---- critical 1: glue_sync on her own server, her search_path first
my $syncsql = q{SET search_path = public, pg_catalog;
	SELECT glue_table OPERATOR(pg_catalog.||) ':' OPERATOR(pg_catalog.||) action
	  FROM sfexport.glue_sync('msrv', 'gdb', drop_missing => true)};
my $sync = mallory_ok("$syncsql; $syncsql", 'glue_sync on her own server works from her session');
glue_catalog(0);
$sync .= "\n" . mallory_ok($syncsql, 'and again once the Glue table is gone');
is($sync, "t1:created\nt1:unchanged\nt1:dropped", 'state saved, read back, deleted (as the state table\'s owner)');
is(traps_fired(), '0', 'glue_sync\'s state SQL never reached a trap');
is(mallory_super(), 'f', 'mallory is no superuser');
is($node->safe_psql('postgres', 'SELECT count(*) FROM sfexport.glue_sync_state'), '0',
	'the state rows were written and deleted');

# ---- critical 2: the worker, with a hostile search_path set for its role
# (sessions of "admin", a superuser of the test, do not get it)
as_role('admin', q{ALTER ROLE postgres IN DATABASE postgres SET search_path = public, pg_catalog});
# (the worker may still be starting: wait for it before reading its pid)
$node->poll_query_until('postgres', q{SELECT pg_catalog.count(*) OPERATOR(pg_catalog.=) 1
	FROM pg_catalog.pg_stat_activity WHERE backend_type OPERATOR(pg_catalog.=) 'sfexport worker'})
  or die 'the sfexport worker did not start';
my $pid = as_role('admin', q{SELECT pid FROM pg_catalog.pg_stat_activity
	WHERE backend_type OPERATOR(pg_catalog.=) 'sfexport worker'});
as_role('admin', "SELECT pg_catalog.pg_terminate_backend($pid)");
my $new = 0;
for (1 .. 120)
{
	$new = as_role('admin', qq{SELECT pg_catalog.count(*) FROM pg_catalog.pg_stat_activity
		WHERE backend_type OPERATOR(pg_catalog.=) 'sfexport worker'
		  AND pid OPERATOR(pg_catalog.<>) $pid});
	last if $new eq '1';
	select(undef, undef, undef, 0.5);
}
is($new, '1', 'a new worker connected with the role setting in force');
# it applies when the worker connects; the test's own sessions need not see it
as_role('admin', q{ALTER ROLE postgres IN DATABASE postgres RESET search_path});

mallory_ok(q{
	INSERT INTO public.mevents SELECT g, 'row ' || g FROM generate_series(1, 50) g;
	SELECT sfexport.flush();
	ALTER SERVER msrv OPTIONS (ADD glue_sync_interval '1min', ADD glue_databases 'gdb2');
}, 'mallory inserts, flushes, and has the worker sync Glue');
ok($node->poll_query_until('postgres', q{SELECT attempts >= 1 AND last_error IS NOT NULL
	AND next_attempt_at > now() FROM sfexport.files WHERE relid = 'public.mevents'::regclass}),
	'the worker staged the rows and its COPY failed (no target table): backoff computed')
  or diag($node->safe_psql('postgres', 'SELECT * FROM sfexport.files'));
ok($node->poll_query_until('postgres', q{SELECT count(*) = 1 FROM sfexport.glue_sync_state
	WHERE glue_table = 't2'}), 'the worker\'s periodic Glue sync saved its state');
is(traps_fired(), '0', 'the worker never reached a trap');
is(mallory_super(), 'f', 'mallory is still no superuser');

# ---- medium 8: who may cut backoffs short
$node->safe_psql('postgres', q{UPDATE sfexport.files SET next_attempt_at = now() + interval '1 hour'
	WHERE relid = 'public.mevents'::regclass});
my $attempts = $node->safe_psql('postgres', q{SELECT attempts FROM sfexport.files
	WHERE relid = 'public.mevents'::regclass});
for my $role ('mallory', 'bystander')
{
	my ($ret, $out, $err) = as_role($role, 'SELECT sfexport.flush()');
	is($out, 't', "$role may ask for a flush");
}
sleep 3;	# the worker acts on a flush within a second; give it three
is($node->safe_psql('postgres', q{SELECT attempts || ' ' || (next_attempt_at > now() + interval '50 min')
	FROM sfexport.files WHERE relid = 'public.mevents'::regclass}), "$attempts true",
	'their flush() leaves the load backoff alone (no COPY, backoff unchanged)');
$node->safe_psql('postgres', 'ALTER DATABASE postgres OWNER TO dbo');
my ($ret, $out, $err) = as_role('dbo', 'SELECT sfexport.flush()');
is($out, 't', 'the database owner asks for a flush');
ok($node->poll_query_until('postgres', qq{SELECT attempts > $attempts AND next_attempt_at IS NOT NULL
	FROM sfexport.files WHERE relid = 'public.mevents'::regclass}),
	'the database owner\'s flush() cuts the backoff: COPY again (and it fails again)');
$node->safe_psql('postgres', 'ALTER DATABASE postgres OWNER TO postgres');

# ---- medium 7: retry()
($ret, $out, $err) = as_role('bystander', 'SELECT sfexport.retry()');
is(sqlstate_of($err), '42501', 'retry() of every table: refused to a non-superuser (42501)');
like($err, qr/permission denied to retry the files of every table/, '... with its message');
($ret, $out, $err) = as_role('bystander', q{SELECT sfexport.retry('public.mevents')});
is(sqlstate_of($err), '42501', 'retry() of another role\'s table: refused (42501)');
like($err, qr/must be owner of foreign table public\.mevents/, '... with its message');
is(as_role('mallory', q{SET search_path = public, pg_catalog; SELECT sfexport.retry('public.mevents')}), '1',
	'the owner re-queues her file, from her own search_path');

# a dropped table: its files outlive it
mallory_ok(q{
	CREATE FOREIGN TABLE public.mtmp (id int) SERVER msrv OPTIONS (table 'MTMP');
	INSERT INTO public.mtmp SELECT generate_series(1, 5);
	SELECT sfexport.flush();
}, 'mallory stages rows of a second table');
my $tmp = $node->safe_psql('postgres', q{SELECT 'public.mtmp'::regclass::oid});
ok($node->poll_query_until('postgres', qq{SELECT attempts >= 1 FROM sfexport.files WHERE relid = $tmp}),
	'its file was staged and its COPY failed');
mallory_ok('DROP FOREIGN TABLE public.mtmp', 'mallory drops the table');
($ret, $out, $err) = as_role('bystander', "SELECT sfexport.retry($tmp)");
is(sqlstate_of($err), '42501', 'retry() of a dropped table by someone who owns none of its servers: refused (42501)');
like($err, qr/must be owner of the server of the files of dropped table $tmp/, '... with its message');
is(as_role('mallory', "SELECT sfexport.retry($tmp) >= 0"), 't', 'the server\'s owner may retry them');
is(as_role('postgres', "SELECT sfexport.retry($tmp) >= 0"), 't', 'so may a superuser');

is(traps_fired(), '0', 'in the end: no trap ever fired');
is(mallory_super(), 'f', 'in the end: mallory is no superuser');

$node->stop;
done_testing();
