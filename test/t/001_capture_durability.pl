# Capture durability: committed rows survive an immediate shutdown (crash)
# and restart byte for byte; rows of transactions open at the crash, or
# rolled back, never appear.  Also: capture works without
# shared_preload_libraries.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = SfTest::new_node('main');
$node->safe_psql('postgres', q{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'acct', database 'DB', location 's3://bucket/prefix/');
	CREATE FOREIGN TABLE ev (id int, payload text, at timestamptz) SERVER sf;
});

# 500 transactions committed one by one, then one large COPY-style batch.
my $n_single = 500;
my $sql = join('', map { "INSERT INTO ev VALUES ($_, 'row $_ \"q\", x', '2024-01-01 00:00:00+00');\n" } 1 .. $n_single);
$node->safe_psql('postgres', $sql);
$node->safe_psql('postgres',
	"INSERT INTO ev SELECT g, repeat('x', g % 3000), now() FROM generate_series(1001, 21000) g");
my $expected = $node->safe_psql('postgres',
	"SELECT count(*), md5(string_agg(encode(line, 'hex'), ',' ORDER BY line)) FROM sfexport.outbox");
is((split /\|/, $expected)[0], $n_single + 20000, 'all committed rows are in the outbox');
is($node->safe_psql('postgres', "SELECT count(*) FROM sfexport.outbox WHERE get_byte(line, 0) = 1"),
	$n_single + 20000, 'the rows are stored in binary form (rendered by the worker)');
my $records = $node->safe_psql('postgres',
	"SELECT md5(string_agg(sfexport.outbox_record(relid, shape, line), E'\\n' ORDER BY line)) FROM sfexport.outbox");

# A transaction still open at the crash, and one rolled back before it.
$node->safe_psql('postgres', "BEGIN; INSERT INTO ev SELECT g, 'rolled back', now() FROM generate_series(1, 1000) g; ROLLBACK;");
my $open = $node->background_psql('postgres', on_error_stop => 1);
$open->query_safe("BEGIN");
$open->query_safe("INSERT INTO ev SELECT g, 'in flight', now() FROM generate_series(1, 5000) g");

# Crash: immediate shutdown skips the checkpoint; recovery replays WAL.
$node->stop('immediate');
eval { $open->quit };
$node->start;

my $after = $node->safe_psql('postgres',
	"SELECT count(*), md5(string_agg(encode(line, 'hex'), ',' ORDER BY line)) FROM sfexport.outbox");
is($after, $expected, 'committed rows survive an immediate shutdown byte for byte');
is($node->safe_psql('postgres',
	"SELECT md5(string_agg(sfexport.outbox_record(relid, shape, line), E'\\n' ORDER BY line)) FROM sfexport.outbox"),
	$records, 'and render to the same CSV records');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM sfexport.outbox WHERE sfexport.outbox_record(relid, shape, line) ~ 'in flight|rolled back'"),
	'0', 'rows of open or rolled-back transactions are absent after the crash');
is($node->safe_psql('postgres', "SELECT pending_rows FROM sfexport.status WHERE foreign_table = 'ev'::regclass"),
	$n_single + 20000, 'sfexport.status counts the surviving rows');

# The outbox is WAL-logged (not unlogged or temporary).
is($node->safe_psql('postgres', "SELECT relpersistence FROM pg_class WHERE oid = 'sfexport.outbox'::regclass"),
	'p', 'outbox is a permanent, WAL-logged table');

# A second crash right after more inserts, with no checkpoint in between.
$node->safe_psql('postgres', "CHECKPOINT");
$node->safe_psql('postgres', "INSERT INTO ev SELECT g, 'after checkpoint', now() FROM generate_series(1, 777) g");
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres',
	"SELECT count(*) FROM sfexport.outbox WHERE sfexport.outbox_record(relid, shape, line) LIKE '%after checkpoint%'"),
	'777', 'rows committed after the last checkpoint are recovered from WAL');
$node->stop;

# Without shared_preload_libraries: DDL and capture still work.
my $plain = SfTest::new_node('nopreload', preload => 0);
$plain->safe_psql('postgres', q{
	CREATE SERVER sf FOREIGN DATA WRAPPER sfexport
	  OPTIONS (account 'acct', database 'DB', location 's3://bucket/prefix/');
	CREATE FOREIGN TABLE ev (id int) SERVER sf;
	INSERT INTO ev SELECT generate_series(1, 10);
});
is($plain->safe_psql('postgres', 'SELECT pending_rows FROM sfexport.status'), '10',
	'capture works without shared_preload_libraries');
$plain->stop;

done_testing();
