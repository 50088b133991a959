# The SigV4 signer (src/sigv4.c) against published test vectors:
# - aws-c-auth's signing test suite (tests/aws-signing-test-suite/v4/*,
#   key AKIDEXAMPLE, 20150830T123600Z, service "service"), which continues
#   the aws4_testsuite botocore used;
# - the worked examples of the S3 documentation "Examples: Signature
#   Calculations in AWS Signature Version 4" (key AKIAIOSFODNN7EXAMPLE,
#   20130524T000000Z): GET object with Range, PUT object, GET ?lifecycle,
#   GET bucket listing.
# Each vector compares the whole Authorization header (signed header list
# and signature); some also compare the canonical request.
use strict;
use warnings;
use lib $ENV{SFEXPORT_SRC} . '/test/lib';
use SfTest;
use PostgreSQL::Test::Utils;
use Test::More;
use Encode ();

# (log_statement = none: the harness logs every statement, and the calls
# below pass a secret, which PostgreSQL itself would log; see README, Security)
my $node = SfTest::new_node('sigv4', test_surface => 1, conf => "log_statement = none\n");

my $AKID = 'AKIDEXAMPLE';
my $SUITE_SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
my $S3_KEY = 'AKIAIOSFODNN7EXAMPLE';
my $S3_SECRET = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
SfTest::register_secret('AWS example secret', $SUITE_SECRET, $S3_SECRET, 'not-the-secret');
my $EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

sub sqlq { my $s = Encode::encode_utf8(shift); $s =~ s/'/''/g; return "'$s'"; }

sub sign
{
	my (%v) = @_;
	my $hdrs = 'ARRAY[' . join(',', map { sqlq($_) } @{ $v{headers} }) . ']::text[]';
	my $sql = sprintf(
		"SELECT canonical_request, authorization_header FROM sfexport_test.sigv4_sign(%s, %s, %s, convert_to(%s, 'UTF8'), %s, %s, %s, %s, %s, %s)",
		sqlq($v{method}), sqlq($v{url}), $hdrs, sqlq($v{body} // ''), sqlq($v{key}),
		sqlq($v{secret}), sqlq($v{region} // 'us-east-1'), sqlq($v{service}),
		sqlq($v{date}), $v{s3} ? 'true' : 'false');
	my ($cr, $auth) = split /\|/, $node->safe_psql('postgres', $sql), 2;
	# psql prints embedded newlines of the first column as is
	return ($cr, $auth);
}

my @suite = (
	{
		name => 'get-vanilla',
		method => 'GET', url => '/',
		headers => ['Host:example.amazonaws.com', 'X-Amz-Date:20150830T123600Z'],
		auth => 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31',
		creq => "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n$EMPTY",
	},
	{
		name => 'get-vanilla-query-order-key-case',
		method => 'GET', url => '/?Param2=value2&Param1=value1',
		headers => ['Host:example.amazonaws.com', 'X-Amz-Date:20150830T123600Z'],
		auth => 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500',
		creq => "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n$EMPTY",
	},
	{
		name => 'get-vanilla-utf8-query',
		method => 'GET', url => "/?\x{1234}=bar",
		headers => ['Host:example.amazonaws.com', 'X-Amz-Date:20150830T123600Z'],
		auth => 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04',
	},
	{
		name => 'get-header-value-trim',
		method => 'GET', url => '/',
		headers => ['Host:example.amazonaws.com', 'My-Header1: value1', 'My-Header2: "a   b   c"', 'X-Amz-Date:20150830T123600Z'],
		auth => 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736',
	},
	{
		name => 'get-unreserved',
		method => 'GET', url => '/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
		headers => ['Host:example.amazonaws.com', 'X-Amz-Date:20150830T123600Z'],
		auth => 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f',
	},
	{
		name => 'get-vanilla-with-session-token',
		method => 'GET', url => '/',
		headers => ['Host:example.amazonaws.com', 'X-Amz-Date:20150830T123600Z',
			'X-Amz-Security-Token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267'],
		auth => 'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8',
	},
);

for my $v (@suite)
{
	my ($cr, $auth) = sign(%$v, key => $AKID, secret => $SUITE_SECRET,
		service => 'service', date => '20150830T123600Z');
	is($auth, $v->{auth}, "aws-c-auth vector $v->{name}: Authorization header");
	is($cr, $v->{creq}, "aws-c-auth vector $v->{name}: canonical request") if $v->{creq};
}

my @s3 = (
	{
		name => 'GET object with Range',
		method => 'GET', url => 'https://examplebucket.s3.amazonaws.com/test.txt',
		headers => ['Host: examplebucket.s3.amazonaws.com', 'Range: bytes=0-9',
			"x-amz-content-sha256: $EMPTY", 'x-amz-date: 20130524T000000Z'],
		auth => 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41',
	},
	{
		name => 'PUT object (path encoded once)',
		method => 'PUT', url => 'https://examplebucket.s3.amazonaws.com/test%24file.text',
		body => 'Welcome to Amazon S3.',
		headers => ['Host: examplebucket.s3.amazonaws.com', 'Date: Fri, 24 May 2013 00:00:00 GMT',
			'x-amz-date: 20130524T000000Z', 'x-amz-storage-class: REDUCED_REDUNDANCY',
			'x-amz-content-sha256: 44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072'],
		auth => 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd',
		creq => "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\nhost:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\nx-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\ndate;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
	},
	{
		name => 'GET bucket lifecycle (empty query value)',
		method => 'GET', url => 'https://examplebucket.s3.amazonaws.com/?lifecycle',
		headers => ['Host: examplebucket.s3.amazonaws.com', "x-amz-content-sha256: $EMPTY",
			'x-amz-date: 20130524T000000Z'],
		auth => 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543',
	},
	{
		name => 'GET bucket listing (query sorted)',
		method => 'GET', url => 'https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J',
		headers => ['Host: examplebucket.s3.amazonaws.com', "x-amz-content-sha256: $EMPTY",
			'x-amz-date: 20130524T000000Z'],
		auth => 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7',
	},
);

for my $v (@s3)
{
	my ($cr, $auth) = sign(%$v, key => $S3_KEY, secret => $S3_SECRET,
		service => 's3', date => '20130524T000000Z', s3 => 1);
	is($auth, $v->{auth}, "S3 documentation example $v->{name}: Authorization header");
	is($cr, $v->{creq}, "S3 documentation example $v->{name}: canonical request") if $v->{creq};
}

# A wrong secret gives a different signature (the check above can fail).
my ($cr, $auth) = sign(%{ $s3[0] }, key => $S3_KEY, secret => 'not-the-secret',
	service => 's3', date => '20130524T000000Z', s3 => 1);
isnt($auth, $s3[0]{auth}, 'a wrong secret changes the signature');

# The secret never appears in the outputs.
unlike($cr . $auth, qr/EXAMPLEKEY|not-the-secret/, 'no output contains the secret');

# Not callable by ordinary users.
$node->safe_psql('postgres', 'CREATE ROLE plain LOGIN');
my ($ret, $out, $err) = $node->psql('postgres',
	"SELECT * FROM sfexport_test.sigv4_sign('GET', '/', '{}', '', 'a', 'b', 'r', 's', '20150830T123600Z', true)",
	extra_params => ['-U', 'plain']);
like($err, qr/permission denied/, 'the test signer is not executable by PUBLIC');

$node->stop;
done_testing();
