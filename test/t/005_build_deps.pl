# 005_build_deps.pl: "make" rebuilds an object when a header it includes
# changes.
#
# PGXS tracks header dependencies only in a PostgreSQL built with
# --enable-depend, and Debian's is not (Makefile.global: "autodepend =").
# Without the Makefile's own rule an incremental build kept objects compiled
# against an older src/sfexport.h: a src/glue.o whose SfStatement lacked the
# "rejected" field next to a src/snowflake.o that writes through it, so a
# refused glue_sync statement wrote into whatever the caller's uninitialized
# stack held, and the backend crashed at exit inside OPENSSL_cleanup().  A
# clean build (and so every sanitizer run) never showed it.
#
# The check runs "make -n" (nothing is compiled) in a copy of the build
# files whose timestamps it sets: every object and bitcode file up to date,
# then one header newer than all of them.
use strict;
use warnings;

use File::Basename qw(basename);
use File::Temp qw(tempdir);
use PostgreSQL::Test::Utils;
use Test::More;
use SfTest;

my $src = SfTest::src_dir();
my $dir = tempdir('sf_build_deps_XXXX', TMPDIR => 1, CLEANUP => 1);
system('cp', '-R', "$src/Makefile", "$src/sfexport.control", "$src/sql", "$src/src", $dir) == 0
  or die "cannot copy the build files to $dir";
unlink glob("$dir/src/*.o"), glob("$dir/src/*.bc"), "$dir/sfexport.so";

my @c = map { basename($_, '.c') } glob("$dir/src/*.c");
my @h = map { basename($_) } glob("$dir/src/*.h");

# what "make" would compile, as { 'glue.o' => 1, 'glue.bc' => 1, ... }
sub planned
{
	my ($out, $err) = ('', '');
	IPC::Run::run([ 'make', '-n', '-C', $dir ], '>', \$out, '2>', \$err)
	  or die "make -n failed: $err";
	my %built;
	$built{"$1.$2"} = 1 while $out =~ m{-o src/(\w+)\.(o|bc) src/\1\.c\b}g;
	return \%built;
}

# the artifacts a fresh tree builds from each .c (the .o, and the .bc with LLVM)
my $fresh = planned();
my %artifacts;
for my $f (keys %$fresh)
{
	my ($c) = $f =~ /^(\w+)\./;
	push @{ $artifacts{$c} }, $f;
}
is(join(',', sort keys %artifacts), join(',', sort @c), 'a fresh tree compiles every src/*.c');

# the headers each .c includes, directly or through another of ours
my %includes;
for my $file ((map { "$_.c" } @c), @h)
{
	my $text = PostgreSQL::Test::Utils::slurp_file("$dir/src/$file");
	$includes{$file} = [ $text =~ /^#include "([^"\/]+\.h)"/mg ];
}
sub closure
{
	my ($file, $seen) = @_;
	for my $inc (@{ $includes{$file} // [] })
	{
		next if $seen->{$inc}++;
		closure($inc, $seen);
	}
	return $seen;
}

# sources and headers old, the built files newer: nothing to do
my ($old, $built_at) = (946684800, 978307200);	# 2000-01-01, 2001-01-01
sub reset_times
{
	utime $old, $old, glob("$dir/src/*.c"), glob("$dir/src/*.h"), "$dir/Makefile",
	  "$dir/sfexport.control", glob("$dir/sql/*");
	for my $c (@c)
	{
		for my $f (@{ $artifacts{$c} })
		{
			open my $fh, '>>', "$dir/src/$f" or die "cannot create $f: $!";
			close $fh;
			utime $built_at, $built_at, "$dir/src/$f";
		}
	}
	open my $fh, '>>', "$dir/sfexport.so" or die "cannot create sfexport.so: $!";
	close $fh;
	utime $built_at, $built_at, "$dir/sfexport.so";
}
reset_times();
is(join(',', sort keys %{ planned() }), '', 'with every object newer than its sources make compiles nothing');

ok(scalar(grep { $_ eq 'sfexport.h' } @h), 'src/sfexport.h exists');
for my $hdr (@h)
{
	reset_times();
	utime undef, undef, "$dir/src/$hdr";	# now: newer than every object
	my @want = sort map { @{ $artifacts{$_} } } grep { closure("$_.c", {})->{$hdr} } @c;
	ok(@want, "some source includes src/$hdr");
	my $planned = planned();
	is(join(',', grep { !$planned->{$_} } @want), '',
		"a newer src/$hdr leaves no object stale of a source that includes it");
}

done_testing();
