# SfReadme.pm: take commands out of README.md, so tests run what users read.
#
#   my @sql = SfReadme::blocks(qr/Quick start/, 'sql');     # ```sql blocks of a section
#   my @stmts = SfReadme::statements($sql);                  # split at ;
#   my @cmds = SfReadme::commands($sh);                      # shell lines of a ```sh block
#
# A section is a heading matching the regex, up to the next "## " heading.
# Blocks inside numbered lists are indented by three spaces; that is removed.
package SfReadme;

use strict;
use warnings;

use PostgreSQL::Test::Utils;
use SfTest;

my $readme;

sub text
{
	$readme //= PostgreSQL::Test::Utils::slurp_file(SfTest::src_dir() . '/README.md');
	return $readme;
}

sub section
{
	my ($re) = @_;
	my ($section) = text() =~ /(^#+ [^\n]*$re[^\n]*\n.*?)(?=^## |\z)/ms;
	die "README section matching $re not found" unless $section;
	return $section;
}

# The fenced blocks of a language in a section.
sub blocks
{
	my ($re, $lang) = @_;
	my @blocks = section($re) =~ /^ *```\Q$lang\E\n(.*?)^ *```/gms;
	s/^ {3}//mg for @blocks;
	return @blocks;
}

# The one block of a section and language whose text matches $what.
sub block
{
	my ($re, $lang, $what) = @_;
	my @b = grep { $_ =~ $what } blocks($re, $lang);
	die "README: " . scalar(@b) . " $lang blocks in section $re match $what, expected 1"
	  unless @b == 1;
	return $b[0];
}

# SQL text -> statements (README has no semicolons or "--" inside literals).
sub statements
{
	my ($sql) = @_;
	$sql =~ s/--[^\n]*//g;
	return grep { /\S/ } map { s/^\s+|\s+$//gr } split /;/, $sql;
}

# A shell block -> its commands (comments and blank lines dropped,
# backslash continuations joined).
sub commands
{
	my ($sh) = @_;
	$sh =~ s/\\\n\s*/ /g;
	return grep { /\S/ && !/^\s*#/ } map { s/\s+#\s.*$//r } split /\n/, $sh;
}

1;
