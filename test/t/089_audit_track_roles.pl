# Audit of tracked tables (#19) as a hostile role: mallory, with USAGE on
# alice's schema and CREATE on her own, tries every function of the
# feature on alice's tracked table.  Each is refused with SQLSTATE 42501,
# and no change reaches alice's changes table (the outbox holds exactly
# what alice's own statements put there).  Nothing here needs Snowflake:
# the refusals happen before anything is sent.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = SfTest::new_node('audit_track', conf => "log_statement = none\n");
sub sq { return $node->safe_psql('postgres', $_[0]); }
sub as_mallory
{
	my ($sql) = @_;
	my ($rc, $out, $err) = $node->psql('postgres', "\\set VERBOSITY verbose\n$sql",
		extra_params => [ '-U', 'mallory' ]);
	return $err;
}

sq(q{
	CREATE ROLE alice LOGIN;
	CREATE ROLE mallory LOGIN;
	GRANT USAGE ON FOREIGN DATA WRAPPER sfexport TO alice, mallory;
	CREATE SCHEMA a AUTHORIZATION alice;
	CREATE SCHEMA m AUTHORIZATION mallory;
	GRANT USAGE ON SCHEMA a TO mallory;
	SET ROLE alice;
	CREATE SERVER sfa FOREIGN DATA WRAPPER sfexport OPTIONS (
		account 'testacct', url 'http://127.0.0.1:9', database 'DB', schema 'PUBLIC',
		warehouse 'WH', location 's3://bucket/audit/');
	GRANT USAGE ON FOREIGN SERVER sfa TO mallory;
	CREATE TABLE a.items (id int PRIMARY KEY, secret text);
	CREATE TABLE a.plain (id int PRIMARY KEY);
	INSERT INTO a.items VALUES (1, 'alice-only-1'), (2, 'alice-only-2');
	GRANT SELECT ON a.items, a.plain TO mallory;
	SELECT sfexport.track('a.items', 'sfa');
});
my $changes = q{(SELECT count(*) FROM sfexport.outbox WHERE relid = 'a.items_sfexport_changes'::regclass)};
is(sq("SELECT $changes"), '2', 'alice\'s snapshot: two changes');

like(as_mallory(q{SELECT sfexport.snapshot_chunk('a.items', 0, 100)}),
	qr/ERROR:  42501: permission denied to snapshot table "items"/,
	'snapshot_chunk of alice\'s table: refused');
like(as_mallory(q{CALL sfexport.snapshot('a.items')}), qr/ERROR:  42501:/,
	'snapshot() of alice\'s table: refused');
like(as_mallory(q{SELECT sfexport.track('a.plain', 'sfa')}),
	qr/ERROR:  42501: permission denied to track table a\.plain/,
	'track() of alice\'s table: refused');
like(as_mallory(q{SELECT sfexport.untrack('a.items')}), qr/ERROR:  42501:/,
	'untrack() of alice\'s table: refused');
is(sq(q{SELECT count(*) FROM pg_trigger WHERE tgrelid = 'a.items'::regclass AND tgname LIKE 'sfexport_track%'}),
	'2', 'alice\'s table still has both triggers');

# mallory's own table, with sfexport's trigger by hand naming alice's changes table
like(as_mallory(q{
	CREATE TABLE m.t (id int PRIMARY KEY, secret text);
	CREATE TRIGGER sfexport_track AFTER INSERT OR UPDATE OR DELETE ON m.t
	  FOR EACH ROW EXECUTE FUNCTION sfexport.track_row_trigger('a', 'items_sfexport_changes');
	INSERT INTO m.t VALUES (99, 'forged');}),
	qr/ERROR:  42501: permission denied to capture changes into "items_sfexport_changes"/,
	'a hand-made trigger writing into alice\'s changes table: refused');
like(as_mallory(q{
	CREATE TRIGGER sfexport_track_truncate AFTER TRUNCATE ON m.t
	  FOR EACH STATEMENT EXECUTE FUNCTION sfexport.track_truncate_trigger('a', 'items_sfexport_changes');
	TRUNCATE m.t;}),
	qr/ERROR:  42501: permission denied to capture changes into "items_sfexport_changes"/,
	'a hand-made TRUNCATE trigger (a forged T change would empty alice\'s mirror): refused');
# calling the trigger functions directly
like(as_mallory(q{SELECT sfexport.track_row_trigger()}), qr/ERROR:  0A000:|trigger/,
	'the trigger function cannot be called as a function');
# a direct INSERT into the changes foreign table
like(as_mallory(q{INSERT INTO a.items_sfexport_changes (_sf_op, _sf_seq, _sf_at, id) VALUES ('D', 1, now(), 1)}),
	qr/ERROR:  42501: permission denied for foreign table items_sfexport_changes/,
	'a forged D change straight into the changes table: refused');
# flush(wait) on alice's table: counts only, nothing row-derived
my ($rc, $out, $err) = $node->psql('postgres',
	q{SELECT sfexport.flush('a.items_sfexport_changes', false)}, extra_params => [ '-U', 'mallory' ]);
unlike("$out$err", qr/alice-only/, 'flush() of alice\'s changes table shows nothing of her rows');
is(sq("SELECT $changes"), '2', 'the outbox holds alice\'s two changes and nothing of mallory\'s');

done_testing();
