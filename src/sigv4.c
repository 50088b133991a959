/*-------------------------------------------------------------------------
 *
 * sigv4.c
 *		AWS Signature Version 4: canonical request, string to sign, signing
 *		key and Authorization header, computed with OpenSSL.
 *
 * Pure functions over their inputs (no clock, no network, no catalog), so
 * that they can be checked against the published test vectors through
 * sfexport_test.sigv4_sign() (test/t/010_sigv4_vectors.pl).  Used by the S3
 * backend (storage_s3.c) and the Glue client (glue.c), both through
 * sf_sigv4_request_headers().
 *
 * Rules and sources:
 *	- AWS, "Create a signed AWS API request" and, for S3, "Authenticating
 *	  Requests: Using the Authorization Header (AWS Signature Version 4)":
 *	  https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
 *	  https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
 *	- botocore/auth.py (SigV4Auth.canonical_request, canonical_headers,
 *	  _header_value, string_to_sign, signature; S3SigV4Auth._normalize_url_path
 *	  returns the path unchanged: "For S3, we do not normalize the path").
 *	- S3: the path is URI-encoded once (as sent) and never normalized;
 *	  other services: dot segments removed, then every segment encoded again
 *	  (so "%20" becomes "%2520"), as botocore and aws-c-auth do.
 *	- Query: each name and value URI-encoded with only A-Za-z0-9-_.~ bare,
 *	  sorted by name then value, "name=" for an empty value.
 *	- Headers: names lower-cased, values trimmed with inner runs of
 *	  whitespace collapsed to one space (aws-c-auth get-header-value-trim:
 *	  "a   b   c" signs as "a b c"), repeated names joined with ",", sorted.
 *	- Session tokens: the caller adds X-Amz-Security-Token to the headers
 *	  before signing, so it is a signed header (aws-c-auth
 *	  get-vanilla-with-session-token).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "sfexport.h"

/* Lower-case hex of len bytes. */
static char *
to_hex(const unsigned char *b, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char	   *out = palloc(len * 2 + 1);

	for (size_t i = 0; i < len; i++)
	{
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 0x0F];
	}
	out[len * 2] = '\0';
	return out;
}

/* Hex SHA-256 of a buffer. */
char *
sf_sha256_hex(const void *data, size_t len)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	unsigned int mdlen = 0;

	if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute a SHA-256 digest")));
	return to_hex(md, mdlen);
}

static void
hmac_sha256(const void *key, size_t keylen, const char *msg,
			unsigned char out[SHA256_DIGEST_LENGTH])
{
	unsigned int outlen = 0;

	if (HMAC(EVP_sha256(), key, (int) keylen, (const unsigned char *) msg,
			 strlen(msg), out, &outlen) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute an HMAC-SHA256")));
}

/* Decode %XX escapes (and nothing else: '+' stays '+', as AWS expects). */
static char *
percent_decode(const char *s, size_t len)
{
	char	   *out = palloc(len + 1);
	size_t		o = 0;

	for (size_t i = 0; i < len; i++)
	{
		if (s[i] == '%' && i + 2 < len &&
			isxdigit((unsigned char) s[i + 1]) && isxdigit((unsigned char) s[i + 2]))
		{
			char		h[3] = {s[i + 1], s[i + 2], 0};

			out[o++] = (char) strtol(h, NULL, 16);
			i += 2;
		}
		else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

typedef struct QueryPair
{
	char	   *name;			/* encoded */
	char	   *value;			/* encoded */
} QueryPair;

static int
cmp_pairs(const void *a, const void *b)
{
	const QueryPair *x = (const QueryPair *) a;
	const QueryPair *y = (const QueryPair *) b;
	int			c = strcmp(x->name, y->name);

	return c != 0 ? c : strcmp(x->value, y->value);
}

/*
 * Canonical query string from a query as sent: every pair decoded and
 * re-encoded with the SigV4 rules, sorted by code point.
 */
static char *
canonical_query(const char *query)
{
	QueryPair  *pairs;
	int			n = 0;
	int			cap = 8;
	const char *p = query;
	StringInfoData out;

	initStringInfo(&out);
	if (query == NULL || *query == '\0')
		return out.data;

	pairs = palloc(sizeof(QueryPair) * cap);
	while (*p)
	{
		const char *amp = strchr(p, '&');
		size_t		len = amp ? (size_t) (amp - p) : strlen(p);
		const char *eq = memchr(p, '=', len);

		if (len > 0)
		{
			if (n == cap)
			{
				cap *= 2;
				pairs = repalloc(pairs, sizeof(QueryPair) * cap);
			}
			if (eq)
			{
				pairs[n].name = sf_http_url_encode(percent_decode(p, eq - p), false);
				pairs[n].value = sf_http_url_encode(percent_decode(eq + 1, len - (eq - p) - 1), false);
			}
			else
			{
				pairs[n].name = sf_http_url_encode(percent_decode(p, len), false);
				pairs[n].value = "";
			}
			n++;
		}
		if (!amp)
			break;
		p = amp + 1;
	}
	qsort(pairs, n, sizeof(QueryPair), cmp_pairs);
	for (int i = 0; i < n; i++)
		appendStringInfo(&out, "%s%s=%s", i > 0 ? "&" : "", pairs[i].name, pairs[i].value);
	return out.data;
}

/*
 * Canonical URI for services other than S3: remove "." and ".." segments
 * and empty segments, then encode the (already encoded) path again.
 */
static char *
normalized_double_encoded_path(const char *path)
{
	List	   *segs = NIL;
	char	   *copy = pstrdup(path);
	char	   *tok;
	char	   *save = NULL;
	bool		trailing = strlen(path) > 1 && path[strlen(path) - 1] == '/';
	StringInfoData out;
	ListCell   *lc;

	for (tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
	{
		if (strcmp(tok, ".") == 0)
			continue;
		if (strcmp(tok, "..") == 0)
		{
			if (segs != NIL)
				segs = list_delete_last(segs);
			continue;
		}
		segs = lappend(segs, tok);
	}
	initStringInfo(&out);
	foreach(lc, segs)
	{
		appendStringInfoChar(&out, '/');
		appendStringInfoString(&out, sf_http_url_encode((char *) lfirst(lc), false));
	}
	if (out.len == 0 || trailing)
		appendStringInfoChar(&out, '/');
	return out.data;
}

typedef struct HeaderEntry
{
	char	   *name;			/* lower-case */
	StringInfoData value;		/* canonical value(s), joined with "," */
} HeaderEntry;

static int
cmp_headers(const void *a, const void *b)
{
	return strcmp(((const HeaderEntry *) a)->name, ((const HeaderEntry *) b)->name);
}

/* Trim and collapse runs of whitespace to one space. */
static void
append_canonical_value(StringInfo out, const char *v)
{
	bool		space = false;

	while (*v == ' ' || *v == '\t')
		v++;
	for (; *v; v++)
	{
		if (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r')
			space = true;
		else
		{
			if (space)
				appendStringInfoChar(out, ' ');
			space = false;
			appendStringInfoChar(out, *v);
		}
	}
}

/*
 * Sign a request.  See SfSigV4Params in sfexport.h.  Everything returned
 * is palloc'd in the current memory context.  The secret key appears in
 * none of the outputs.
 */
void
sf_sigv4_sign(const SfSigV4Params *p, SfSigV4Result *res)
{
	HeaderEntry *hdrs;
	int			nh = 0;
	ListCell   *lc;
	StringInfoData creq;
	StringInfoData sh;
	StringInfoData sts;
	char		date[9];
	char	   *scope;
	char	   *kinit;
	unsigned char k1[SHA256_DIGEST_LENGTH];
	unsigned char k2[SHA256_DIGEST_LENGTH];
	unsigned char k3[SHA256_DIGEST_LENGTH];
	unsigned char k4[SHA256_DIGEST_LENGTH];
	unsigned char sig[SHA256_DIGEST_LENGTH];

	if (p->amz_date == NULL || strlen(p->amz_date) != 16)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid SigV4 timestamp"),
				 errdetail("The timestamp must have the form YYYYMMDDTHHMMSSZ.")));
	memcpy(date, p->amz_date, 8);
	date[8] = '\0';

	/* canonical headers, merged by name and sorted */
	hdrs = palloc0(sizeof(HeaderEntry) * Max(1, list_length(p->headers)));
	foreach(lc, p->headers)
	{
		const char *h = (const char *) lfirst(lc);
		const char *colon = strchr(h, ':');
		char	   *name;
		int			i;

		if (colon == NULL)
			continue;
		name = pnstrdup(h, colon - h);
		for (char *c = name; *c; c++)
			*c = pg_ascii_tolower((unsigned char) *c);
		/* trailing blanks of a name are not part of it */
		for (i = strlen(name); i > 0 && (name[i - 1] == ' ' || name[i - 1] == '\t'); i--)
			name[i - 1] = '\0';
		for (i = 0; i < nh; i++)
			if (strcmp(hdrs[i].name, name) == 0)
				break;
		if (i == nh)
		{
			hdrs[nh].name = name;
			initStringInfo(&hdrs[nh].value);
			nh++;
		}
		else
			appendStringInfoChar(&hdrs[i].value, ',');
		append_canonical_value(&hdrs[i].value, colon + 1);
	}
	qsort(hdrs, nh, sizeof(HeaderEntry), cmp_headers);

	initStringInfo(&sh);
	for (int i = 0; i < nh; i++)
		appendStringInfo(&sh, "%s%s", i > 0 ? ";" : "", hdrs[i].name);

	initStringInfo(&creq);
	appendStringInfo(&creq, "%s\n", p->method);
	if (p->s3_path_rules)
		appendStringInfo(&creq, "%s\n", (p->path && *p->path) ? p->path : "/");
	else
		appendStringInfo(&creq, "%s\n", normalized_double_encoded_path(p->path ? p->path : "/"));
	appendStringInfo(&creq, "%s\n", canonical_query(p->query));
	for (int i = 0; i < nh; i++)
		appendStringInfo(&creq, "%s:%s\n", hdrs[i].name, hdrs[i].value.data);
	appendStringInfo(&creq, "\n%s\n%s", sh.data, p->payload_hash);

	scope = psprintf("%s/%s/%s/aws4_request", date, p->region, p->service);
	initStringInfo(&sts);
	appendStringInfo(&sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s",
					 p->amz_date, scope, sf_sha256_hex(creq.data, creq.len));

	/* signing key: HMAC chain from "AWS4" + secret */
	kinit = psprintf("AWS4%s", p->secret_access_key);
	hmac_sha256(kinit, strlen(kinit), date, k1);
	explicit_bzero(kinit, strlen(kinit));
	pfree(kinit);
	hmac_sha256(k1, sizeof(k1), p->region, k2);
	hmac_sha256(k2, sizeof(k2), p->service, k3);
	hmac_sha256(k3, sizeof(k3), "aws4_request", k4);
	hmac_sha256(k4, sizeof(k4), sts.data, sig);
	explicit_bzero(k1, sizeof(k1));
	explicit_bzero(k4, sizeof(k4));

	res->canonical_request = creq.data;
	res->string_to_sign = sts.data;
	res->signed_headers = sh.data;
	res->signature = to_hex(sig, sizeof(sig));
	res->authorization = psprintf("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
								  p->access_key_id, scope, sh.data, res->signature);
}

/*
 * The headers of a request signed with AWS credentials, in the order they
 * are sent: Host, X-Amz-Date, x-amz-content-sha256 (when content_sha256,
 * as S3 requires), X-Amz-Security-Token (session credentials: a signed
 * header), the caller's extra headers, then Authorization.  Shared by the
 * S3 backend and the Glue client; called again before every attempt with a
 * fresh amz_date.
 */
List *
sf_sigv4_request_headers(const SfAwsRequestSigning *s, const char *method,
						 const char *path, const char *query,
						 List *extra_headers, const char *payload_hash,
						 const char *amz_date)
{
	SfSigV4Params p;
	SfSigV4Result r;
	List	   *headers = NIL;
	ListCell   *lc;

	headers = lappend(headers, psprintf("Host: %s", s->host));
	headers = lappend(headers, psprintf("X-Amz-Date: %s", amz_date));
	if (s->content_sha256)
		headers = lappend(headers, psprintf("x-amz-content-sha256: %s", payload_hash));
	if (s->session_token)
		headers = lappend(headers, psprintf("X-Amz-Security-Token: %s", s->session_token));
	foreach(lc, extra_headers)
		headers = lappend(headers, lfirst(lc));

	memset(&p, 0, sizeof(p));
	p.method = method;
	p.path = path;
	p.query = query;
	p.headers = headers;
	p.payload_hash = payload_hash;
	p.access_key_id = s->access_key_id;
	p.secret_access_key = s->secret_access_key;
	p.region = s->region;
	p.service = s->service;
	p.amz_date = amz_date;
	p.s3_path_rules = s->s3_path_rules;
	sf_sigv4_sign(&p, &r);
	return lappend(headers, psprintf("Authorization: %s", r.authorization));
}

/*
 * Split an endpoint override (http(s)://host[:port][/ignored]) into the base
 * URL (scheme://host[:port]) and the Host header value.  A path in the
 * endpoint is ignored.
 */
void
sf_aws_split_endpoint(const char *endpoint, char **base, char **host)
{
	char	   *b = pstrdup(endpoint);
	char	   *hoststart = strstr(b, "://");
	char	   *slash;

	hoststart = hoststart ? hoststart + 3 : b;
	slash = strchr(hoststart, '/');
	if (slash)
		*slash = '\0';
	*base = b;
	*host = pstrdup(hoststart);
}

/* The SigV4 timestamp (YYYYMMDDTHHMMSSZ, UTC) of a time_t. */
void
sf_sigv4_amz_date(time_t t, char *buf)
{
	struct tm	tm;

	gmtime_r(&t, &tm);
	strftime(buf, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/*
 * sfexport_test.sigv4_sign(method, url, headers text[], payload bytea,
 *						access_key, secret_key, region, service, amz_date,
 *						s3 boolean)
 *	 → (canonical_request, string_to_sign, authorization)
 *
 * Test entry point: signs a request described by its URL (path and query
 * as sent) and "Name: value" headers, so the signer can be compared with
 * the published test vectors.  Only for superusers (EXECUTE revoked).
 */
PG_FUNCTION_INFO_V1(sfexport_sigv4_sign);

Datum
sfexport_sigv4_sign(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(1));
	ArrayType  *harr = PG_GETARG_ARRAYTYPE_P(2);
	bytea	   *payload = PG_GETARG_BYTEA_PP(3);
	SfSigV4Params p;
	SfSigV4Result r;
	Datum	   *elems;
	bool	   *nulls;
	int			nelems;
	char	   *pathstart;
	char	   *q;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		isnull[3] = {false, false, false};

	memset(&p, 0, sizeof(p));
	p.method = text_to_cstring(PG_GETARG_TEXT_PP(0));
	deconstruct_array(harr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &nelems);
	for (int i = 0; i < nelems; i++)
		if (!nulls[i])
			p.headers = lappend(p.headers, TextDatumGetCString(elems[i]));
	p.payload_hash = sf_sha256_hex(VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload));
	p.access_key_id = text_to_cstring(PG_GETARG_TEXT_PP(4));
	p.secret_access_key = text_to_cstring(PG_GETARG_TEXT_PP(5));
	p.region = text_to_cstring(PG_GETARG_TEXT_PP(6));
	p.service = text_to_cstring(PG_GETARG_TEXT_PP(7));
	p.amz_date = text_to_cstring(PG_GETARG_TEXT_PP(8));
	p.s3_path_rules = PG_GETARG_BOOL(9);

	/* split "scheme://host/path?query" or "/path?query" */
	pathstart = url;
	if (strstr(url, "://"))
	{
		pathstart = strchr(strstr(url, "://") + 3, '/');
		if (pathstart == NULL)
			pathstart = "/";
	}
	pathstart = pstrdup(pathstart);
	q = strchr(pathstart, '?');
	if (q)
	{
		*q = '\0';
		p.query = q + 1;
	}
	p.path = pathstart;

	sf_sigv4_sign(&p, &r);

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("function returning record called in a context that cannot accept a record")));
	tupdesc = BlessTupleDesc(tupdesc);
	values[0] = CStringGetTextDatum(r.canonical_request);
	values[1] = CStringGetTextDatum(r.string_to_sign);
	values[2] = CStringGetTextDatum(r.authorization);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, isnull)));
}
