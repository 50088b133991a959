# Audit of tracked tables (issue 14 rules applied to #19): the event
# trigger sfexport_track_ddl runs as whoever runs the ALTER TABLE, and it
# follows the arguments of a trigger named sfexport_track, which the owner
# of the altered table chose.  mallory (USAGE on nothing but her own
# schema) puts such a trigger on her own table, naming alice's foreign
# table; when a superuser then adds a column to mallory's table, the
# superuser's rights must not add that column to alice's foreign table
# (which the worker would then add to alice's Snowflake table).  A real
# tracked table still gains the column (the control: the assertion can fail).
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = SfTest::new_node('audit_ddl', conf => "log_statement = none\n");
sub sq { return $node->safe_psql('postgres', $_[0]); }

sq(qq{
	CREATE ROLE alice LOGIN;
	CREATE ROLE mallory LOGIN;
	GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO alice;
	CREATE SCHEMA a AUTHORIZATION alice;
	CREATE SCHEMA m AUTHORIZATION mallory;
	SET ROLE alice;
	CREATE SERVER sfa FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url 'http://127.0.0.1:9', database 'DB', schema 'PUBLIC',
		warehouse 'WH', location 's3://bucket/audit/');
	CREATE FOREIGN TABLE a.events (id int, v text) SERVER sfa;
	CREATE TABLE a.items (id int PRIMARY KEY, v text);
	SELECT sfexport.track('a.items', 'sfa', snapshot => false);
	RESET ROLE;
	SET ROLE mallory;
	CREATE TABLE m.bait (id int PRIMARY KEY);
	CREATE TRIGGER sfexport_track AFTER INSERT OR UPDATE OR DELETE ON m.bait
	  FOR EACH ROW EXECUTE FUNCTION sfexport.track_row_trigger('a', 'events');
});

sub cols
{
	return sq(qq{SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute
	             WHERE attrelid = '$_[0]'::regclass AND attnum > 0 AND NOT attisdropped});
}
is(cols('a.events'), 'id,v', 'alice\'s foreign table before');

# a superuser (a DBA doing maintenance) alters mallory's table
my ($rc, $out, $err) = $node->psql('postgres', 'ALTER TABLE m.bait ADD COLUMN injected int');
is(cols('a.events'), 'id,v',
	'a superuser\'s ALTER TABLE of mallory\'s table added nothing to alice\'s foreign table');
is(cols('m.bait'), 'id,injected', 'the ALTER TABLE itself went through') or diag $err;

# the control: alice's own tracked table gains the column in its changes table
sq(q{SET ROLE alice; ALTER TABLE a.items ADD COLUMN extra int});
like(cols('a.items_sfexport_changes'), qr/,extra$/,
	'a column added to a tracked table still reaches its changes foreign table');
# and as a superuser too (the owner of both is alice)
sq(q{ALTER TABLE a.items ADD COLUMN extra2 int});
like(cols('a.items_sfexport_changes'), qr/,extra,extra2$/,
	'also when a superuser alters the tracked table');

done_testing();
