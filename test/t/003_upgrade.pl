# Upgrade path: a database that installed sfexport 0.1.0 and runs
# ALTER EXTENSION sfexport UPDATE ends with exactly the objects of a new
# install of the current version (functions and their definitions,
# tables, columns, constraints, indexes, views, grants, comments, event
# triggers), and
# keeps its captured rows.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = SfTest::new_node('main', no_extension => 1);
my $current = $node->safe_psql('postgres',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'sfexport'");
isnt($current, '0.1.0', "the current version ($current) is newer than 0.1.0");

$node->safe_psql('postgres', 'CREATE DATABASE fresh');
$node->safe_psql('postgres', 'CREATE DATABASE upgraded');
$node->safe_psql('fresh', 'CREATE EXTENSION sfexport');
$node->safe_psql('upgraded', "CREATE EXTENSION sfexport VERSION '0.1.0'");

# rows captured by 0.1.0 survive the upgrade
$node->safe_psql('upgraded', q{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'acct', database 'DB', location 'file:///nonexistent/');
	CREATE FOREIGN TABLE ev (id int, note text) SERVER sf;
	INSERT INTO ev SELECT g, 'row ' || g FROM generate_series(1, 100) g;
});
my $before = $node->safe_psql('upgraded',
	"SELECT count(*), md5(string_agg(encode(line, 'hex'), ',' ORDER BY line)) FROM sfexport.outbox");

my ($rc, $out, $err) = $node->psql('upgraded', 'ALTER EXTENSION sfexport UPDATE');
is($rc, 0, 'ALTER EXTENSION sfexport UPDATE succeeds') or diag($err);
is($node->safe_psql('upgraded', "SELECT extversion FROM pg_extension WHERE extname = 'sfexport'"),
	$current, "the upgraded database is at $current");
is($node->safe_psql('upgraded',
	"SELECT count(*), md5(string_agg(encode(line, 'hex'), ',' ORDER BY line)) FROM sfexport.outbox"),
	$before, 'the captured rows are kept');
$node->safe_psql('upgraded', "INSERT INTO ev VALUES (101, 'after the upgrade')");
is($node->safe_psql('upgraded', 'SELECT count(*) FROM sfexport.outbox'), 101,
	'capture works after the upgrade');

# Everything that describes the extension's objects, one line each.
my @snapshot = (
	# members
	q{SELECT pg_describe_object(classid, objid, objsubid)
	  FROM pg_depend
	  WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
	    AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sfexport')},
	# functions: full definitions, ACLs, comments
	q{SELECT p.oid::regprocedure || ' ' || pg_get_functiondef(p.oid)
	         || ' acl=' || coalesce(p.proacl::text, '-')
	         || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
	  FROM pg_proc p WHERE p.pronamespace = 'sfexport'::regnamespace AND p.prokind <> 'a'},
	# relations: kind, persistence, options, ACL, comment
	q{SELECT c.oid::regclass::text || ' ' || c.relkind::text || c.relpersistence::text
	         || ' opts=' || coalesce(c.reloptions::text, '-')
	         || ' acl=' || coalesce(c.relacl::text, '-')
	         || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '-')
	  FROM pg_class c WHERE c.relnamespace = 'sfexport'::regnamespace},
	# columns, defaults, column comments
	q{SELECT a.attrelid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
	         || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
	         || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
	         || ' comment=' || coalesce(col_description(a.attrelid, a.attnum), '-')
	         || ' acl=' || coalesce(a.attacl::text, '-')
	  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	  WHERE c.relnamespace = 'sfexport'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped},
	# constraints, indexes, views, triggers, inheritance
	q{SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
	  FROM pg_constraint WHERE connamespace = 'sfexport'::regnamespace},
	q{SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	  WHERE c.relnamespace = 'sfexport'::regnamespace},
	q{SELECT c.oid::regclass || ' ' || pg_get_viewdef(c.oid) FROM pg_class c
	  WHERE c.relnamespace = 'sfexport'::regnamespace AND c.relkind IN ('v', 'm')},
	q{SELECT tgrelid::regclass || ' ' || pg_get_triggerdef(t.oid) FROM pg_trigger t
	  JOIN pg_class c ON c.oid = t.tgrelid
	  WHERE c.relnamespace = 'sfexport'::regnamespace AND NOT t.tgisinternal},
	q{SELECT inhrelid::regclass || ' inherits ' || inhparent::regclass FROM pg_inherits i
	  JOIN pg_class c ON c.oid = i.inhrelid WHERE c.relnamespace = 'sfexport'::regnamespace},
	# types, the wrapper, the schema's grants
	q{SELECT t.oid::regtype || ' ' || t.typtype::text FROM pg_type t
	  WHERE t.typnamespace = 'sfexport'::regnamespace AND t.typrelid = 0 AND t.typelem = 0},
	q{SELECT w.fdwname || ' ' || w.fdwhandler::regproc || ' ' || w.fdwvalidator::regproc
	         || ' acl=' || coalesce(w.fdwacl::text, '-')
	  FROM pg_foreign_data_wrapper w WHERE w.fdwname = 'sfexport'},
	q{SELECT nspname || ' acl=' || coalesce(nspacl::text, '-') FROM pg_namespace
	  WHERE nspname = 'sfexport'},
	# event triggers: event, tags, function, enabled
	q{SELECT evtname || ' ' || evtevent || ' ' || coalesce(evttags::text, '-') || ' '
	         || evtfoid::regprocedure || ' ' || evtenabled::text
	  FROM pg_event_trigger WHERE evtname LIKE 'sfexport%'},
);

for my $q (@snapshot)
{
	my $sql = "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ($q) s(x)";
	my $fresh = $node->safe_psql('fresh', $sql);
	my $upgraded = $node->safe_psql('upgraded', $sql);
	my ($what) = $q =~ /^\s*SELECT\s+(\S+)/;
	if ($fresh eq $upgraded)
	{
		pass("same as a new install: $what");
	}
	else
	{
		my %f = map { $_ => 1 } split /\n/, $fresh;
		my %u = map { $_ => 1 } split /\n/, $upgraded;
		my @only_fresh = grep { !$u{$_} } sort keys %f;
		my @only_upgraded = grep { !$f{$_} } sort keys %u;
		fail("same as a new install: $what");
		diag("only in a new install:\n  " . join("\n  ", @only_fresh)) if @only_fresh;
		diag("only after the upgrade:\n  " . join("\n  ", @only_upgraded)) if @only_upgraded;
	}
}

# The test surface left the extension for sfexport_test (docs/ARCHITECTURE.md,
# "Test surface"): neither database has a test-only function in sfexport,
# and the test extension installs over the upgraded one.
for my $db ('fresh', 'upgraded')
{
	is($node->safe_psql($db, q{SELECT string_agg(proname, ',' ORDER BY proname) FROM pg_proc
	  WHERE pronamespace = 'sfexport'::regnamespace AND proname LIKE '\_%'}),
		'_ddl_check,_launcher_wakeup',
		"$db: the only _-functions in sfexport are the launcher wake-up and the DDL check");
}
$node->safe_psql('upgraded', 'CREATE EXTENSION sfexport_test');
is($node->safe_psql('upgraded', q{SELECT sfexport_test.hive_to_snowflake('int')}), 'NUMBER(10,0)',
	'sfexport_test works over the upgraded database');

# the status view of the upgraded database counts the rows
is($node->safe_psql('upgraded', "SELECT pending_rows FROM sfexport.status WHERE foreign_table = 'ev'::regclass"),
	101, 'sfexport.status counts the pending rows after the upgrade');

done_testing();
