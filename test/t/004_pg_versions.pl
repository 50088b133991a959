# The PostgreSQL versions sfexport builds for (README, Install):
# - src/compat.h stops a build against the server headers of an unsupported
#   major version (14, 19) with an #error naming the supported ones, and
#   lets 15 to 18 through;
# - the server these tests run on is one of those, and the library loaded
#   into it (CREATE EXTENSION succeeded).
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use IPC::Run;
use PostgreSQL::Test::Utils;
use Test::More;

my $src = SfTest::src_dir();
# the compiler the server was built with, as PGXS uses it
my $cc = `pg_config --cc`;
die "pg_config --cc failed" if $? != 0;
my @cc = split ' ', $cc;
my $refusal = qr/#error "sfexport supports PostgreSQL 15, 16, 17 and 18 only: build it with the pg_config of one of those/;

# Preprocess compat.h alone with a given PG_VERSION_NUM: the version check
# comes first, so the #error (or its absence) is what matters here; the
# server headers compat.h includes afterwards are not on the include path.
for my $v (140000, 149999, 150000, 160000, 170000, 180000, 189999, 190000)
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ @cc, '-E', '-x', 'c', "-I$src/src", '-' ],
		'<', \"#define PG_VERSION_NUM $v\n#include \"compat.h\"\n", '>', \$out, '2>', \$err);
	if ($v < 150000 || $v >= 190000)
	{
		like($err, $refusal, "headers of version $v are refused with a message naming 15 to 18");
	}
	else
	{
		unlike($err, qr/sfexport supports PostgreSQL/, "headers of version $v pass the version check");
	}
}

my $node = SfTest::new_node('versions');
my $num = $node->safe_psql('postgres', 'SHOW server_version_num');
ok($num >= 150000 && $num < 190000, "the server under test ($num) is a supported version");
is($node->safe_psql('postgres', q{SELECT extversion FROM pg_extension WHERE extname = 'sfexport'}),
	'0.2.0', 'CREATE EXTENSION loaded the library built for this server');

done_testing();
