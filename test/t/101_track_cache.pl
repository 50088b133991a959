# The capture of a tracked table is cached across statements in a backend
# (track.c, sf_track_capture_row, kept with the outbox's relation cache):
# every test here runs its statements in ONE session, so a stale cache
# would show.  What must be seen between two statements of one session:
#   - REVOKE of INSERT on a changes table from the owner of the table the
#     rows come from (a hand-made trigger on mallory's table, naming
#     alice's changes table), and the GRANT back;
#   - REVOKE of a role membership that carried that privilege;
#   - ALTER TABLE ADD COLUMN on the tracked table (the event trigger adds
#     it to the changes table): the next change carries the new column;
#   - ALTER TABLE DROP COLUMN, and ALTER FOREIGN TABLE ... OPTIONS on the
#     changes table (merge_keys naming a column the table lacks).
# Changes are captured in binary form (sfexport.capture_binary), like any
# foreign table's rows: the first test also checks that they are.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = SfTest::new_node('track_cache', conf => "log_statement = none\n");
sub sq { return $node->safe_psql('postgres', $_[0]); }

# One session: statements separated by lines "-- step"; returns psql's
# stdout and stderr (ON_ERROR_STOP off: every statement runs).
sub session
{
	my ($sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql", on_error_stop => 0);
	return ($out, $err);
}

sq(q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE mallory LOGIN;
	CREATE ROLE writers NOLOGIN;
	GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO alice;
	CREATE SCHEMA a AUTHORIZATION alice;
	CREATE SCHEMA m AUTHORIZATION mallory;
	GRANT USAGE ON SCHEMA a TO mallory;
	SET ROLE alice;
	CREATE SERVER sfa FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url 'http://127.0.0.1:9', database 'DB', schema 'PUBLIC',
		warehouse 'WH', location 's3://bucket/cache/');
	CREATE TABLE a.items (id int PRIMARY KEY, v text);
	SELECT sfexport.track('a.items', 'sfa', snapshot => false);
	RESET ROLE;
	SET ROLE mallory;
	CREATE TABLE m.t (id int PRIMARY KEY, v text);
	CREATE TRIGGER sfexport_track AFTER INSERT OR UPDATE OR DELETE ON m.t
	  FOR EACH ROW EXECUTE FUNCTION sfexport.track_row_trigger('a', 'items_sfexport_changes');
});
sub changes
{
	return sq(q{SELECT count(*) FROM sfexport.outbox
	            WHERE relid = 'a.items_sfexport_changes'::regclass});
}
# the CSV records of the changes (captured in binary form or not)
my $records = q{(SELECT sfexport.outbox_record(relid, shape, line) AS r FROM sfexport.outbox
                 WHERE relid = 'a.items_sfexport_changes'::regclass) AS o};
sub last_record
{
	return sq(qq{SELECT r FROM $records
	             ORDER BY substring(r from '^"[A-Z]",([0-9]+),')::int8 DESC LIMIT 1});
}

# (1) GRANT, then REVOKE, then GRANT again, each between two INSERTs of mallory
my ($out, $err) = session(q{
	SET ROLE alice;
	GRANT INSERT ON a.items_sfexport_changes TO mallory;
	SET ROLE mallory;
	INSERT INTO m.t VALUES (1, 'granted');
	SET ROLE alice;
	REVOKE INSERT ON a.items_sfexport_changes FROM mallory;
	SET ROLE mallory;
	INSERT INTO m.t VALUES (2, 'revoked');
	SET ROLE alice;
	GRANT INSERT ON a.items_sfexport_changes TO mallory;
	SET ROLE mallory;
	INSERT INTO m.t VALUES (3, 'granted again');
	SET ROLE alice;
	REVOKE INSERT ON a.items_sfexport_changes FROM mallory;
});
my @denied = $err =~ /ERROR:  42501: permission denied to capture changes into "items_sfexport_changes"/g;
is(scalar @denied, 1, 'one session: the INSERT after the REVOKE is refused, the others pass') or diag $err;
is(sq(q{SELECT string_agg(id::text, ',' ORDER BY id) FROM m.t}), '1,3',
	'row 2 was rolled back with its refused capture');
is(changes(), '2', 'two changes captured (rows 1 and 3)');
is(sq(q{SELECT count(*) FROM sfexport.outbox WHERE relid = 'a.items_sfexport_changes'::regclass
        AND substring(line, 1, 1) = '\\x01'::bytea}), '2', 'both in binary form');

# (2) the privilege through a role membership, revoked mid-session
($out, $err) = session(q{
	SET ROLE alice;
	GRANT INSERT ON a.items_sfexport_changes TO writers;
	RESET ROLE;
	GRANT writers TO mallory;
	SET ROLE mallory;
	INSERT INTO m.t VALUES (4, 'member');
	RESET ROLE;
	REVOKE writers FROM mallory;
	SET ROLE mallory;
	INSERT INTO m.t VALUES (5, 'no longer a member');
});
@denied = $err =~ /ERROR:  42501: permission denied to capture changes into/g;
is(scalar @denied, 1, 'one session: REVOKE of the role membership is honoured at the next INSERT')
  or diag $err;
is(changes(), '3', 'row 4 captured, row 5 not');

# (3) DDL on the tracked table between two statements of one session
($out, $err) = session(q{
	SET ROLE alice;
	INSERT INTO a.items VALUES (10, 'before');
	ALTER TABLE a.items ADD COLUMN extra int;
	INSERT INTO a.items VALUES (11, 'after', 4242);
	UPDATE a.items SET extra = 77 WHERE id = 10;
});
is($err, '', 'ADD COLUMN mid-session: no error');
like(last_record(), qr/^"U",\d+,[^,]+,10,"before",77$/,
	'the change after ADD COLUMN carries the new column') or diag last_record();
is(sq(qq{SELECT count(*) FROM $records WHERE r ~ ',11,"after",4242\$'}), '1',
	'the INSERT right after ADD COLUMN too');

($out, $err) = session(q{
	SET ROLE alice;
	UPDATE a.items SET v = 'x' WHERE id = 10;
	ALTER TABLE a.items DROP COLUMN v;
	UPDATE a.items SET extra = 78 WHERE id = 10;
});
like(last_record(), qr/^"U",\d+,[^,]+,10,,78$/,
	'after DROP COLUMN mid-session: the column is empty, the others in place') or diag "$err\n" . last_record();

# (4) options of the changes table changed mid-session: merge_keys naming a
# column that is not the tracked table's fails the next change
($out, $err) = session(q{
	SET ROLE alice;
	UPDATE a.items SET extra = 79 WHERE id = 10;
	ALTER FOREIGN TABLE a.items_sfexport_changes OPTIONS (SET merge_keys 'nosuch');
	UPDATE a.items SET extra = 80 WHERE id = 10;
	ALTER FOREIGN TABLE a.items_sfexport_changes OPTIONS (SET merge_keys 'id');
	UPDATE a.items SET extra = 81 WHERE id = 10;
});
like($err, qr/key column "nosuch" of changes table "items_sfexport_changes" is not a column of the tracked table/,
	'a changed merge_keys option is seen at the next statement');
like(last_record(), qr/,10,,81$/, 'and its repair too');

# The worker's apply bound (merge_apply.c: the smallest _sf_seq still in
# the outbox) reads binary payloads through their rendered records; the
# same expression here, over a mix of binary and CSV payloads.
sq(q{SET sfexport.capture_binary = off; SET ROLE alice; UPDATE a.items SET extra = 82 WHERE id = 10});
is(sq(q{SELECT count(DISTINCT substring(line, 1, 1)) FROM sfexport.outbox
        WHERE relid = 'a.items_sfexport_changes'::regclass}), '2', 'binary and CSV payloads pending');
is(sq(q{SELECT pg_catalog.min(pg_catalog.substring(
          CASE WHEN pg_catalog.substring(line, 1, 1) OPERATOR(pg_catalog.=) '\\x22'::pg_catalog.bytea
               THEN pg_catalog.encode(pg_catalog.substring(line, 1, 32), 'escape')
               ELSE sfexport.outbox_record(relid, shape, line) END,
          '^"[IUDTS]",([0-9]+),')::pg_catalog.int8)
        FROM sfexport.outbox WHERE relid = 'a.items_sfexport_changes'::regclass}),
	sq(qq{SELECT min(substring(r from '^"[A-Z]",([0-9]+),')::int8) FROM $records}),
	'the apply bound over binary and CSV payloads is their smallest _sf_seq');
like(last_record(), qr/,10,,82$/, 'the CSV payload is the newest');

done_testing();
