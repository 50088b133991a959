/*-------------------------------------------------------------------------
 *
 * sql_test.c
 *		Test surface entry points to internals: the SigV4 signer, the
 *		compressor of staged files, the Hive type parser and the worker's
 *		reading of what the outbox holds.  Their SQL functions belong to the test-only
 *		extension sfexport_test ("Test surface" in docs/ARCHITECTURE.md);
 *		the symbols stay in the library, which sfexport--0.1.0.sql names.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "sfexport.h"

#include "compress.h"
#include "flush.h"
#include "hive_types.h"
#include "sigv4.h"

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

PG_FUNCTION_INFO_V1(sfexport_hive_to_snowflake);

/*
 * sfexport_test.hive_to_snowflake(hive_type text) → text: the Snowflake type
 * glue_sync uses for a Hive type string; an error (22P02) for a malformed
 * one.  For the tests (the test-only extension sfexport_test).
 */
Datum
sfexport_hive_to_snowflake(PG_FUNCTION_ARGS)
{
	char	   *hive = text_to_cstring(PG_GETARG_TEXT_PP(0));
	SfHiveType t;
	char	   *error;

	if (!sf_hive_parse_type(hive, &t, &error))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid Hive type \"%s\": %s", hive, error)));
	PG_RETURN_TEXT_P(cstring_to_text(t.snowflake));
}

/* The compressor's sink of sfexport_compress: all of it in memory. */
static void
collect_sink(const char *data, size_t len, void *arg)
{
	StringInfo	buf = (StringInfo) arg;

	if ((size_t) buf->len + len >= MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("compressed output is larger than 1 GB")));
	appendBinaryStringInfo(buf, data, len);
}

PG_FUNCTION_INFO_V1(sfexport_compress);

/*
 * sfexport_test.compress(compression, level, data, chunk, times) → bytea:
 * one stream of data repeated times times, written in pieces of chunk
 * bytes, as a staged file would be compressed.
 */
Datum
sfexport_compress(PG_FUNCTION_ARGS)
{
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			level = PG_GETARG_INT32(1);
	bytea	   *data = PG_GETARG_BYTEA_PP(2);
	int			chunk = PG_GETARG_INT32(3);
	int			times = PG_GETARG_INT32(4);
	const char *p = VARDATA_ANY(data);
	size_t		len = VARSIZE_ANY_EXHDR(data);
	SfCompression comp;
	SfCompressor *c;
	StringInfoData buf;
	bytea	   *res;

	if (strcmp(kind, "gzip") == 0)
		comp = SF_COMPRESSION_GZIP;
	else if (strcmp(kind, "zstd") == 0)
		comp = SF_COMPRESSION_ZSTD;
	else if (strcmp(kind, "none") == 0)
		comp = SF_COMPRESSION_NONE;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown compression \"%s\"", kind)));
	if (chunk <= 0 || times < 0 || level < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("chunk must be positive, times and level not negative")));

	initStringInfo(&buf);
	c = sf_compress_begin(comp, level, collect_sink, &buf);
	for (int i = 0; i < times; i++)
	{
		for (size_t off = 0; off < len; off += chunk)
		{
			sf_compress_write(c, p + off, Min((size_t) chunk, len - off));
			CHECK_FOR_INTERRUPTS();
		}
	}
	sf_compress_finish(c);
	if (sf_compress_in_bytes(c) != (int64) len * times ||
		sf_compress_out_bytes(c) != buf.len)
		elog(ERROR, "sfexport: compressor byte counts are wrong");
	res = palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(res, VARHDRSZ + buf.len);
	memcpy(VARDATA(res), buf.data, buf.len);
	PG_RETURN_BYTEA_P(res);
}

/*
 * sfexport_test.outbox_pending() → setof (relid, shape, rows, bytes, oldest)
 *
 * What the worker's plan reads of the outbox (sf_flush_pending), for
 * comparison with the same aggregate in SQL.  Superusers only.
 */
PG_FUNCTION_INFO_V1(sfexport_outbox_pending);

Datum
sfexport_outbox_pending(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SfPendingShape *p;
	int			n;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	p = sf_flush_pending(GetActiveSnapshot(), &n);
	for (int i = 0; i < n; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		values[0] = ObjectIdGetDatum(p[i].relid);
		values[1] = Int64GetDatum(p[i].shape);
		values[2] = Int64GetDatum(p[i].rows);
		values[3] = Int64GetDatum(p[i].bytes);
		values[4] = TimestampTzGetDatum(p[i].oldest);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
