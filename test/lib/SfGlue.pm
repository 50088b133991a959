# SfGlue.pm: helpers for the Glue sync tests (050-059).
#
#   my $glue = SfGlue::start_emulator(keys => { AKID => 'secret' }, region => 'eu-west-1',
#                                     policies => { AKID => 'iam-policy.json' });
#   SfGlue::write_catalog($glue, { databases => [...], tables => {...}, partitions => {...} });
#   SfGlue::admin($glue, 'POST', 'faults', { kind => 'throttling', count => 2 });
#   my $reqs = SfGlue::requests($glue, 'GetTables');
#   SfGlue::table('events', 'parquet', 's3://lake/warehouse/events/', [id => 'bigint'], ...)
#
# The stand-in (test/emulators/glue) re-reads its fixture
# file whenever it changes, and verifies every SigV4 signature with botocore.
package SfGlue;

use strict;
use warnings;

use File::Temp qw(tempdir);
use HTTP::Tiny;
use JSON::PP;
use SfTest;
use Time::HiRes qw(usleep);

sub start_emulator
{
	my (%o) = @_;
	my $dir = tempdir('sf_glue_XXXX', TMPDIR => 1, CLEANUP => 1);
	my $fixture = "$dir/catalog.json";
	write_file($fixture, { databases => [] });
	my @cmd = (SfTest::emulator('glue'),
		'--port', '0', '--port-file', '{PORT_FILE}', '--fixture', $fixture,
		'--region', $o{region} // 'us-east-1',
		(map { ('--key', "$_=$o{keys}{$_}") } sort keys %{ $o{keys} }),
		(map { ('--session-token', "$_=$o{tokens}{$_}") } sort keys %{ $o{tokens} // {} }),
		(map { ('--policy', "$_=$o{policies}{$_}") } sort keys %{ $o{policies} // {} }));
	SfTest::register_secret("AWS secret access key of $_ (Glue)", $o{keys}{$_}) for sort keys %{ $o{keys} };
	SfTest::register_secret("AWS session token of $_ (Glue)", $o{tokens}{$_}) for sort keys %{ $o{tokens} // {} };
	if (my $ev = SfTest::evidence_dir())
	{
		my $n = 1;
		$n++ while -e "$ev/glue_requests_$n.log";
		push @cmd, '--request-log', "$ev/glue_requests_$n.log";
	}
	my $svc = SfTest::start_service($o{name} // 'glue', \@cmd, dir => $dir);
	$svc->{url} = "http://127.0.0.1:$svc->{port}";
	$svc->{fixture} = $fixture;
	return $svc;
}

sub write_file
{
	my ($path, $data) = @_;
	open my $fh, '>', "$path.tmp" or die "cannot write $path.tmp: $!";
	print $fh JSON::PP->new->canonical->encode($data);
	close $fh;
	rename "$path.tmp", $path or die "cannot rename to $path: $!";
}

# Replace the catalog (through the admin API, so the change is immediate).
sub write_catalog
{
	my ($glue, $data) = @_;
	write_file($glue->{fixture}, $data);
	admin($glue, 'POST', 'fixture', $data);
}

sub admin
{
	my ($glue, $method, $path, $body) = @_;
	my $res = HTTP::Tiny->new(timeout => 30)->request(
		$method, "$glue->{url}/_emulator/$path",
		{
			headers => { 'Content-Type' => 'application/json' },
			defined $body ? (content => encode_json($body)) : (),
		});
	die "glue emulator admin $method $path: $res->{status} $res->{content}"
	  unless $res->{success};
	return decode_json($res->{content});
}

# Requests the emulator received (optionally of one operation).
sub requests
{
	my ($glue, $op) = @_;
	my $r = admin($glue, 'GET', 'requests')->{requests};
	return [ grep { !defined $op || ($_->{operation} // '') eq $op } @$r ];
}

# A Glue table: name, classification (undef: none), location, columns as
# name => type pairs; options: partition_keys => [name => type, ...],
# serde => ..., input_format => ..., parameters => {...}, serde_parameters => {...}
sub table
{
	my ($name, $class, $loc, $cols, %o) = @_;
	my @c = @$cols;
	my @columns;
	push @columns, { Name => shift @c, Type => shift @c } while @c;
	my @p = @{ $o{partition_keys} // [] };
	my @pk;
	push @pk, { Name => shift @p, Type => shift @p } while @p;
	my %params = %{ $o{parameters} // {} };
	$params{classification} = $class if defined $class;
	return {
		Name => $name,
		TableType => $o{table_type} // 'EXTERNAL_TABLE',
		Parameters => \%params,
		PartitionKeys => \@pk,
		StorageDescriptor => {
			Columns => \@columns,
			Location => $loc,
			(defined $o{input_format} ? (InputFormat => $o{input_format}) : ()),
			SerdeInfo => {
				(defined $o{serde} ? (SerializationLibrary => $o{serde}) : ()),
				Parameters => $o{serde_parameters} // {},
			},
		},
	};
}

# Partitions of a table, from their locations.
sub partitions
{
	my (@locs) = @_;
	return [ map { { Values => [ 'v' ], StorageDescriptor => { Location => $_ } } } @locs ];
}

1;
