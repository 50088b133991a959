/*-------------------------------------------------------------------------
 *
 * snowflake.c
 *		The Snowflake SQL API v2 client: submitting statements, polling,
 *		retries, cancel, results, error mapping (the SQL functions
 *		test_connection, public_key_fingerprint and snowflake_query are
 *		sql_snowflake.c's).
 *
 * Protocol (docs.snowflake.com/en/developer-guide/sql-api/...):
 *
 *	- "Submitting a request": POST /api/v2/statements?requestId=<uuid> with
 *	  statement, timeout, database, schema, warehouse, role, bindings.  We
 *	  always add async=true, so that the first answer is 202 with a
 *	  statement handle: a PostgreSQL query cancel can then always reach the
 *	  remote statement (POST /api/v2/statements/<handle>/cancel, "Cancelling
 *	  the execution of a SQL statement", .../sql-api/cancelling-requests).
 *	- Resubmitting: "if you are not sure whether Snowflake executed the
 *	  statement, send the same request with the same requestId and
 *	  retry=true"; Snowflake does not run again a statement that already
 *	  succeeded.  Transport errors, 429 and 5xx are retried that way by
 *	  sf_http_request() (through the prepare hook), and so is the resubmit
 *	  after a 401.
 *	- A cancel while the submit is unanswered (no handle yet): the same
 *	  request with retry=true reports the running statement's handle
 *	  without running it again, and that is cancelled
 *	  (cancel_unacknowledged); at process exit too (cancel_at_exit).
 *	- "Handling responses": 200 result set (partition 0 inline, partitions
 *	  1..N-1 through GET ...?partition=N, gzip-encoded, decoded by libcurl);
 *	  202 still running (poll GET /api/v2/statements/<handle>); 408 timed
 *	  out; 422 failed, {code, sqlState, message, statementHandle}; 401 bad
 *	  or expired token (code 390144 for an invalid JWT).
 *
 * The bearer token is only ever sent to URLs built here from the server's
 * url option, never to a URL taken from a response.  Messages name the
 * request (method and URL without query) and the statement with literals of
 * credential options masked (sf_redact_sql); tokens, keys and bind values
 * never appear in them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sf_jansson.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "sfexport.h"

#include "config.h"
#include "http.h"
#include "jwt.h"
#include "quote.h"
#include "snowflake.h"
#include "waits.h"

#define SF_API_STATEMENTS "/api/v2/statements"
#define SF_SUBMIT_ATTEMPTS 6
#define SF_POLL_FIRST_MS 25
#define SF_POLL_MAX_MS 1000
/* polling gives up this long after the statement timeout should have hit */
#define SF_POLL_GRACE_S 120

/* State of one statement execution. */
typedef struct SfExec
{
	SfServerConfig *srv;
	SfUserConfig *usr;
	const SfStatement *stmt;
	const char *log_sql;		/* the statement as shown in messages */
	char	   *base_url;		/* srv->url without a trailing '/' */
	char		request_id[37];
	bool		resubmit;		/* submit again with retry=true */
	/*
	 * The token in use was made after a 401.  One renewal per run of 401s:
	 * a 401 with this set is reported (report_auth_error), since a fresh
	 * token refused as well means the key or user is wrong.  Any other
	 * answer clears it, so 401s apart (submit, then a poll) are each cured;
	 * it lives in this statement's SfExec only.  Two 401s in a row, e.g. a
	 * fault injector answering the next two requests with 401
	 * (034_fault_matrix's sf_401 with count 2), surface by design.
	 */
	bool		just_refreshed;
	bool		remote_error;	/* an error reported by Snowflake is being thrown */
	bool		in_flight;		/* submitted, final answer not yet received */
	SfHttpRequest submit_req;	/* the submit; body_delivered survives a throw */
	char	   *handle;			/* statement handle, once known */
	const char *body;			/* submit request body */
	MemoryContext result_cxt;	/* where the result is built */
} SfExec;

/* ---------------------------------------------------------------------
 * Text from Snowflake into the database
 * ---------------------------------------------------------------------
 */

/*
 * A string Snowflake sent (UTF-8: JSON) as text of the database encoding,
 * fit to store in the manifest, return from a function or put in a message:
 * bytes that are not valid UTF-8 become U+FFFD (or '?' where the database
 * encoding has no such character), and a character the database encoding
 * cannot hold becomes \uXXXX.  In a SQL_ASCII database the valid text is
 * kept as it is, as PostgreSQL would.  NULL stays NULL.
 */
char *
sf_remote_text(const char *utf8)
{
	int			enc = GetDatabaseEncoding();
	int			len;
	const unsigned char *p;
	const unsigned char *end;
	StringInfoData out;
	Oid			proc = InvalidOid;

	if (utf8 == NULL)
		return NULL;
	len = strlen(utf8);
	if ((enc == PG_UTF8 || enc == PG_SQL_ASCII) &&
		pg_verify_mbstr(PG_UTF8, utf8, len, true))
		return pstrdup(utf8);
	if (enc != PG_UTF8 && enc != PG_SQL_ASCII)
		proc = FindDefaultConversionProc(PG_UTF8, enc);

	initStringInfo(&out);
	p = (const unsigned char *) utf8;
	end = p + len;
	while (p < end)
	{
		int			l = IS_HIGHBIT_SET(*p) ? pg_utf_mblen(p) : 1;
		unsigned char conv[MAX_CONVERSION_GROWTH * 4 + 1];

		if (l > end - p || !pg_utf8_islegal(p, l))
		{
			appendStringInfoString(&out, enc == PG_UTF8 || enc == PG_SQL_ASCII
								   ? "\xEF\xBF\xBD" : "?");
			p++;
			continue;
		}
		if (l == 1 || !OidIsValid(proc))
			appendBinaryStringInfo(&out, (const char *) p, l);
		else if (pg_do_encoding_conversion_buf(proc, PG_UTF8, enc, (unsigned char *) p, l,
											   conv, sizeof(conv), true) == l)
			appendStringInfoString(&out, (const char *) conv);
		else
			appendStringInfo(&out, l < 4 ? "\\u%04X" : "\\U%08X",
							 (unsigned int) utf8_to_unicode(p));
		p += l;
	}
	return out.data;
}

/* ---------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------
 */

/*
 * A random (version 4) UUID from pg_strong_random, as text: the requestId
 * of a call to Snowflake's REST APIs (SQL API, Snowpipe).
 */
void
sf_snowflake_request_id(char out[37])
{
	uint8		b[16];

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random request ID")));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	snprintf(out, 37,
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
			 b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/*
 * The headers of a request to Snowflake's REST APIs (SQL API, Snowpipe),
 * with the mapping's current bearer token.
 */
List *
sf_snowflake_headers(SfServerConfig *srv, SfUserConfig *usr, bool with_body)
{
	const char *token = sf_auth_token(srv, usr, false);
	List	   *h = NIL;

	h = lappend(h, psprintf("Authorization: Bearer %s", token));
	h = lappend(h, psprintf("X-Snowflake-Authorization-Token-Type: %s",
							usr->token_type));
	h = lappend(h, pstrdup("Accept: application/json"));
	if (with_body)
		h = lappend(h, pstrdup("Content-Type: application/json"));
	return h;
}

/* Timeouts and TLS settings of the server on a request. */
static void
init_request(SfExec *ex, SfHttpRequest *req, const char *method, const char *url)
{
	sf_http_init_request(req, method, url);
	sf_http_server_settings(req, ex->srv);
	req->max_attempts = SF_SUBMIT_ATTEMPTS;
}

/* prepare hook of the submit: the same requestId, retry=true on retries. */
static void
submit_prepare(SfHttpRequest *req, int attempt, void *arg)
{
	SfExec	   *ex = (SfExec *) arg;

	req->url = psprintf("%s" SF_API_STATEMENTS "?requestId=%s&async=true%s",
						ex->base_url, ex->request_id,
						(attempt > 0 || ex->resubmit) ? "&retry=true" : "");
	req->headers = sf_snowflake_headers(ex->srv, ex->usr, true);
}

/* prepare hook of GET requests: a fresh token header when renewed. */
static void
get_prepare(SfHttpRequest *req, int attempt, void *arg)
{
	SfExec	   *ex = (SfExec *) arg;

	req->headers = sf_snowflake_headers(ex->srv, ex->usr, false);
}

/* Parse a JSON response body; NULL when it is not a JSON object. */
static json_t *
parse_body(SfHttpResponse *resp)
{
	json_error_t jerr;
	json_t	   *root;

	if (resp->body.len == 0)
		return NULL;
	root = json_loadb(resp->body.data, resp->body.len, 0, &jerr);
	if (root && !json_is_object(root))
	{
		json_decref(root);
		return NULL;
	}
	return root;
}

/* A string member of a JSON object, palloc'd, or NULL. */
static char *
json_member_str(json_t *obj, const char *name)
{
	json_t	   *v = obj ? json_object_get(obj, name) : NULL;

	if (json_is_string(v))
		return sf_remote_text(json_string_value(v));
	if (json_is_integer(v))
		return psprintf("%lld", (long long) json_integer_value(v));
	return NULL;
}

/* Snowflake's error fields of a response. */
typedef struct SfRemoteError
{
	char	   *code;
	char	   *sql_state;
	char	   *message;
	char	   *handle;
} SfRemoteError;

static void
read_remote_error(SfHttpResponse *resp, SfRemoteError *err)
{
	json_t	   *root = parse_body(resp);

	memset(err, 0, sizeof(*err));
	if (root == NULL)
		return;
	PG_TRY();
	{
		err->code = json_member_str(root, "code");
		err->sql_state = json_member_str(root, "sqlState");
		err->message = json_member_str(root, "message");
		err->handle = json_member_str(root, "statementHandle");
	}
	PG_FINALLY();
	{
		json_decref(root);
	}
	PG_END_TRY();
}

/*
 * The PostgreSQL error code for Snowflake's sqlState: passed on when it is
 * a well-formed SQLSTATE of an error class, else the fallback.  Snowflake
 * reports "Object ... does not exist or not authorized" (error 002003) with
 * class 02 ("no data"), which is not an error class in PostgreSQL: that
 * becomes undefined_object.  Classes 00 and 01 get the fallback.
 */
static int
map_sqlstate(const char *s, int fallback)
{
	if (s == NULL || strlen(s) != 5)
		return fallback;
	for (int i = 0; i < 5; i++)
		if (!(isdigit((unsigned char) s[i]) || (s[i] >= 'A' && s[i] <= 'Z')))
			return fallback;
	if (s[0] == '0' && s[1] == '2')
		return ERRCODE_UNDEFINED_OBJECT;
	if (s[0] == '0' && (s[1] == '0' || s[1] == '1'))
		return fallback;
	return MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
}

/* Report a statement that failed (422) or timed out (408) in Snowflake. */
static void
report_statement_error(SfExec *ex, SfHttpResponse *resp)
{
	SfRemoteError err;
	bool		timeout;
	const char *handle;

	read_remote_error(resp, &err);
	/* 000630: "Statement reached its statement or warehouse timeout" */
	timeout = resp->status == 408 || (err.code && strcmp(err.code, "000630") == 0);
	handle = err.handle ? err.handle : ex->handle ? ex->handle : "unknown";
	ex->remote_error = true;
	if (ex->stmt->rejected)
		*ex->stmt->rejected = true;
	ereport(ERROR,
			(errcode(map_sqlstate(err.sql_state,
								  timeout ? ERRCODE_QUERY_CANCELED : ERRCODE_FDW_ERROR)),
			 timeout
			 ? errmsg("Snowflake cancelled the statement because it ran too long")
			 : errmsg("Snowflake could not execute the statement"),
			 errdetail_internal("Snowflake error %s (SQL state %s): %s",
								err.code ? err.code : "unknown",
								err.sql_state ? err.sql_state : "unknown",
								err.message ? err.message : "no message"),
			 timeout
			 ? errhint("Raise the statement_timeout option of server \"%s\" (now %d s), or the STATEMENT_TIMEOUT_IN_SECONDS of the warehouse.",
					   ex->srv->servername,
					   ex->stmt->timeout_s > 0 ? ex->stmt->timeout_s : ex->srv->statement_timeout_s)
			 : 0,
			 errcontext("Snowflake statement %s: %s", handle, ex->log_sql)));
}

/* Report a 401 that a fresh token did not cure (or that no refresh can). */
static void
report_auth_error(SfExec *ex, SfHttpResponse *resp)
{
	SfRemoteError err;
	bool		keypair = strcmp(ex->usr->token_type, "KEYPAIR_JWT") == 0;
	char	   *fp = NULL;

	read_remote_error(resp, &err);
	if (keypair)
		fp = sf_jwt_public_key_fingerprint(ex->usr->private_key,
										   ex->usr->private_key_passphrase,
										   ex->usr->private_key_file ? "private_key_file" : "private_key");
	ex->remote_error = true;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
			 errmsg("Snowflake rejected the credentials of the user mapping for server \"%s\"",
					ex->srv->servername),
			 errdetail_internal("Snowflake error %s: %s",
								err.code ? err.code : "unknown",
								err.message ? err.message : "no message"),
			 keypair
			 ? errhint("Check that Snowflake user \"%s\" of account \"%s\" has the public key with fingerprint %s (DESC USER shows RSA_PUBLIC_KEY_FP).",
					   ex->usr->user, sf_jwt_account_name(ex->srv->account), fp)
			 : errhint("The %s token may have expired or been revoked; set a new one with ALTER USER MAPPING.",
					   ex->usr->token_type),
			 errcontext("Snowflake SQL API request to %s" SF_API_STATEMENTS, ex->base_url)));
}

/* Report any other unexpected answer. */
static void
report_http_error(SfExec *ex, SfHttpRequest *req, SfHttpResponse *resp)
{
	SfRemoteError err;
	char	   *url = pstrdup(req->url);
	char	   *q = strchr(url, '?');

	if (q)
		*q = '\0';
	read_remote_error(resp, &err);
	ex->remote_error = true;
	if (resp->status == 429 || resp->status >= 500)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the Snowflake SQL API is not available"),
				 errdetail("%s %s answered HTTP status %ld after %d attempts.",
						   req->method, url, resp->status, resp->attempts),
				 errcontext("Snowflake statement: %s", ex->log_sql)));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_ERROR),
			 errmsg("unexpected answer from the Snowflake SQL API: HTTP status %ld",
					resp->status),
			 err.message
			 ? errdetail_internal("Snowflake error %s: %s",
								  err.code ? err.code : "unknown", err.message)
			 : 0,
			 errcontext("%s %s, Snowflake statement: %s", req->method, url, ex->log_sql)));
}

static void
report_bad_response(SfExec *ex, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROTOCOL_VIOLATION),
			 errmsg("invalid response from the Snowflake SQL API"),
			 errdetail("%s", what),
			 errcontext("Snowflake statement %s: %s",
						ex->handle ? ex->handle : "unknown", ex->log_sql)));
}

/* ---------------------------------------------------------------------
 * Results
 * ---------------------------------------------------------------------
 */

/* Append the rows of a "data" array to the result.  Never keeps json. */
static void
append_rows(SfExec *ex, SfSnowflakeResult *res, json_t *data, int64 *capacity)
{
	MemoryContext old;
	size_t		n;

	if (data == NULL || json_is_null(data))
		return;
	if (!json_is_array(data))
		report_bad_response(ex, "The \"data\" member is not an array.");
	n = json_array_size(data);
	old = MemoryContextSwitchTo(ex->result_cxt);
	if (res->nrows + (int64) n > *capacity)
	{
		int64		newcap = Max(*capacity * 2, res->nrows + (int64) n);

		res->rows = res->rows
			? repalloc_huge(res->rows, newcap * sizeof(char **))
			: palloc_extended(newcap * sizeof(char **), MCXT_ALLOC_HUGE);
		*capacity = newcap;
	}
	for (size_t i = 0; i < n; i++)
	{
		json_t	   *row = json_array_get(data, i);
		char	  **vals;

		if (!json_is_array(row) || json_array_size(row) != (size_t) res->ncolumns)
		{
			MemoryContextSwitchTo(old);
			report_bad_response(ex, "A row does not have one value per column.");
		}
		vals = palloc(sizeof(char *) * Max(res->ncolumns, 1));
		for (int j = 0; j < res->ncolumns; j++)
		{
			json_t	   *v = json_array_get(row, j);

			if (json_is_string(v))
				vals[j] = sf_remote_text(json_string_value(v));
			else if (json_is_null(v))
				vals[j] = NULL;
			else
			{
				/* not as documented (values are strings), but keep it readable */
				char	   *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

				vals[j] = pstrdup(s ? s : "");
				free(s);
			}
		}
		res->rows[res->nrows++] = vals;
	}
	MemoryContextSwitchTo(old);
}

/* Fetch result partition N >= 1 and append its rows. */
static void
fetch_partition(SfExec *ex, SfSnowflakeResult *res, int partition, int64 *capacity)
{
	SfHttpRequest req;
	SfHttpResponse *resp;
	json_t	   *root;

	init_request(ex, &req, "GET",
				 psprintf("%s" SF_API_STATEMENTS "/%s?partition=%d", ex->base_url,
						  sf_http_url_encode(ex->handle, false), partition));
	req.prepare = get_prepare;
	req.prepare_arg = ex;
	resp = sf_http_request(&req);
	if (resp->status == 401 && !ex->just_refreshed &&
		strcmp(ex->usr->token_type, "KEYPAIR_JWT") == 0)
	{
		(void) sf_auth_token(ex->srv, ex->usr, true);
		ex->just_refreshed = true;
		resp = sf_http_request(&req);
	}
	if (resp->status == 401)
		report_auth_error(ex, resp);
	if (resp->status != 200)
		report_http_error(ex, &req, resp);
	ex->just_refreshed = false;

	root = parse_body(resp);
	if (root == NULL)
		report_bad_response(ex, psprintf("Partition %d is not a JSON object.", partition));
	PG_TRY();
	{
		append_rows(ex, res, json_object_get(root, "data"), capacity);
	}
	PG_FINALLY();
	{
		json_decref(root);
	}
	PG_END_TRY();
}

/* Build the result from a 200 answer, fetching further partitions. */
static SfSnowflakeResult *
read_result(SfExec *ex, SfHttpResponse *resp)
{
	SfSnowflakeResult *res;
	json_t	   *root = parse_body(resp);
	int			npartitions = 1;
	int64		capacity = 0;

	if (root == NULL)
		report_bad_response(ex, "The result is not a JSON object.");

	res = MemoryContextAllocZero(ex->result_cxt, sizeof(SfSnowflakeResult));
	PG_TRY();
	{
		json_t	   *meta = json_object_get(root, "resultSetMetaData");
		json_t	   *rowtype = meta ? json_object_get(meta, "rowType") : NULL;
		json_t	   *parts = meta ? json_object_get(meta, "partitionInfo") : NULL;
		MemoryContext old = MemoryContextSwitchTo(ex->result_cxt);
		char	   *h = json_member_str(root, "statementHandle");

		res->statement_handle = h ? h : (ex->handle ? pstrdup(ex->handle) : NULL);
		res->sql_state = json_member_str(root, "sqlState");
		res->message = json_member_str(root, "message");
		if (json_is_array(rowtype))
		{
			res->ncolumns = (int) json_array_size(rowtype);
			res->column_names = palloc0(sizeof(char *) * Max(res->ncolumns, 1));
			res->column_types = palloc0(sizeof(char *) * Max(res->ncolumns, 1));
			for (int j = 0; j < res->ncolumns; j++)
			{
				json_t	   *col = json_array_get(rowtype, j);
				char	   *name = json_member_str(col, "name");
				char	   *type = json_member_str(col, "type");

				res->column_names[j] = name ? name : psprintf("column%d", j + 1);
				res->column_types[j] = type ? type : pstrdup("text");
			}
		}
		MemoryContextSwitchTo(old);
		if (res->statement_handle && ex->handle == NULL)
			ex->handle = pstrdup(res->statement_handle);
		if (json_is_array(parts) && json_array_size(parts) > 1)
			npartitions = (int) json_array_size(parts);
		append_rows(ex, res, json_object_get(root, "data"), &capacity);
	}
	PG_FINALLY();
	{
		json_decref(root);
	}
	PG_END_TRY();

	if (npartitions > 1 && ex->handle == NULL)
		report_bad_response(ex, "A result with several partitions has no statement handle.");
	for (int p = 1; p < npartitions; p++)
	{
		CHECK_FOR_INTERRUPTS();
		fetch_partition(ex, res, p, &capacity);
	}
	return res;
}

/* ---------------------------------------------------------------------
 * Submit, poll, cancel
 * ---------------------------------------------------------------------
 */

/* The request body of the submit. */
static char *
build_body(SfExec *ex)
{
	const SfStatement *st = ex->stmt;
	/*
	 * json_pack("{}"), not json_object(): the server binary exports a
	 * json_object symbol of its own, which wins at run time (sf_jansson.h).
	 */
	json_t	   *body = json_pack("{}");
	char	   *text;
	char	   *out;
	bool		ok = body != NULL;
	int			timeout = st->timeout_s > 0 ? st->timeout_s : ex->srv->statement_timeout_s;

#define SET(k, v) (ok = ok && json_object_set_new(body, (k), (v)) == 0)
	SET("statement", json_string(st->sql));
	SET("timeout", json_integer(timeout));
	if (ex->srv->database)
		SET("database", json_string(ex->srv->database));
	if (ex->srv->schema)
		SET("schema", json_string(ex->srv->schema));
	if (ex->srv->warehouse)
		SET("warehouse", json_string(ex->srv->warehouse));
	if (ex->srv->role)
		SET("role", json_string(ex->srv->role));
	if (st->nbinds > 0)
	{
		json_t	   *binds = json_pack("{}");

		ok = ok && binds != NULL;
		for (int i = 0; ok && i < st->nbinds; i++)
		{
			char		key[16];
			const char *type = (st->bind_types && st->bind_types[i]) ? st->bind_types[i] : "TEXT";
			const char *value = st->bind_values ? st->bind_values[i] : NULL;

			snprintf(key, sizeof(key), "%d", i + 1);
			ok = json_object_set_new(binds, key,
									 json_pack("{s:s, s:o}", "type", type,
											   "value", value ? json_string(value) : json_null())) == 0;
		}
		SET("bindings", binds);
	}
	if (st->query_tag || st->multi_statements > 0)
	{
		json_t	   *params = json_pack("{}");

		ok = ok && params != NULL;
		if (ok && st->query_tag)
			ok = json_object_set_new(params, "query_tag", json_string(st->query_tag)) == 0;

		/*
		 * Several statements in one request: the SQL API runs them only with
		 * MULTI_STATEMENT_COUNT, the exact count as a string (0 = any),
		 * without bind variables; BEGIN/COMMIT work only in such a request
		 * (docs.snowflake.com/en/developer-guide/sql-api/submitting-multiple-statements).
		 */
		if (ok && st->multi_statements > 0)
			ok = json_object_set_new(params, "MULTI_STATEMENT_COUNT",
									 json_string(psprintf("%d", st->multi_statements))) == 0;
		SET("parameters", params);
	}
#undef SET

	text = ok ? json_dumps(body, JSON_COMPACT) : NULL;
	if (body)
		json_decref(body);
	if (text == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("could not encode the Snowflake request"),
				 errdetail("The statement or a bind value is not valid UTF-8, or memory ran out.")));
	out = pstrdup(text);
	free(text);
	return out;
}

/*
 * In the PG_CATCH of a best-effort cancel: turn the error being handled
 * into a WARNING (msgfmt with one string argument), with the error's
 * message as detail, and go on.  cxt is the memory context the cancel
 * started in.
 */
static void
warn_cancel_failed(MemoryContext cxt, const char *msgfmt, const char *arg)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	ereport(WARNING,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg_internal(msgfmt, arg),
			 errdetail_internal("%s", edata->message)));
	FreeErrorData(edata);
}

/* set while the process ends (cancel_at_exit): shutdown must not wait long */
static bool cancelling_at_exit = false;

/*
 * Bounds of a cancel: 5 s to connect, 10 s per request, two attempts; as
 * the process ends (SIGTERM, a fast shutdown waiting for us) 2 s, 3 s and
 * one attempt, so a dead Snowflake holds a shutdown for 10 s at most.
 */
static void
set_cancel_bounds(SfExec *ex, SfHttpRequest *req)
{
	req->connect_timeout_ms = Min(ex->srv->connect_timeout_ms,
								  cancelling_at_exit ? 2000 : 5000);
	req->timeout_ms = Min(ex->srv->request_timeout_ms,
						  cancelling_at_exit ? 3000 : 10000);
	req->max_attempts = cancelling_at_exit ? 1 : 2;
}

/*
 * Ask Snowflake to cancel the statement; used when the PostgreSQL query is
 * cancelled.  Best effort: a failure is logged, never thrown.
 */
static bool
send_cancel(SfExec *ex)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = false;

	PG_TRY();
	{
		SfHttpRequest req;
		SfHttpResponse *resp;

		init_request(ex, &req, "POST",
					 psprintf("%s" SF_API_STATEMENTS "/%s/cancel", ex->base_url,
							  sf_http_url_encode(ex->handle, false)));
		set_cancel_bounds(ex, &req);
		req.body = "";
		req.body_len = 0;
		req.headers = sf_snowflake_headers(ex->srv, ex->usr, false);
		resp = sf_http_request(&req);
		ok = resp->status == 200;
		if (!ok)
			ereport(WARNING,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not cancel Snowflake statement %s", ex->handle),
					 errdetail("POST %s" SF_API_STATEMENTS "/%s/cancel answered HTTP status %ld.",
							   ex->base_url, ex->handle, resp->status)));
	}
	PG_CATCH();
	{
		warn_cancel_failed(cxt, "could not cancel Snowflake statement %s", ex->handle);
	}
	PG_END_TRY();
	return ok;
}

/* Submit the statement; returns the first answer that is not a 401 to cure. */
static SfHttpResponse *
submit(SfExec *ex)
{
	SfHttpRequest *req = &ex->submit_req;
	SfHttpResponse *resp;

	for (;;)
	{
		bool		delivered = req->body_delivered;

		init_request(ex, req, "POST", ex->base_url);
		req->body_delivered = delivered;
		req->body = ex->body;
		req->body_len = strlen(ex->body);
		req->prepare = submit_prepare;
		req->prepare_arg = ex;
		resp = sf_http_request(req);

		if (resp->status == 401 && !ex->just_refreshed &&
			strcmp(ex->usr->token_type, "KEYPAIR_JWT") == 0)
		{
			/* a fresh token, then the same request again */
			(void) sf_auth_token(ex->srv, ex->usr, true);
			ex->just_refreshed = true;
			ex->resubmit = true;
			continue;
		}
		if (resp->status == 401)
			report_auth_error(ex, resp);
		if (resp->status != 200 && resp->status != 202 &&
			resp->status != 408 && resp->status != 422)
			report_http_error(ex, req, resp);
		ex->just_refreshed = false;
		return resp;
	}
}

/*
 * The PostgreSQL query was interrupted (cancel, statement_timeout, or the
 * process is ending) while the submit was in flight, so that no statement
 * handle is known yet.  When the request may have reached Snowflake (an
 * attempt handed over the whole request), ask for the statement of our
 * requestId: "send the same request with the same requestId and
 * retry=true" reports the statement already running (or its result) and
 * does not run it again (.../sql-api/submitting-requests, "Resubmitting a
 * request").  Then cancel it (.../sql-api/cancelling-requests).  A request
 * that never got out completely cannot have started a statement: nothing
 * to do.  Should the original request be lost on the way after all,
 * retry=true runs the statement afresh, and it is cancelled at once.
 *
 * Bounded (set_cancel_bounds; no token renewal) and best effort: never
 * throws; returns the detail for the re-thrown interrupt, or NULL.  Runs with the interrupt already taken off the flags
 * (the caller re-throws it); a second cancel aborts it.
 */
static char *
cancel_unacknowledged(SfExec *ex)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *volatile detail = NULL;

	if (!ex->submit_req.body_delivered)
		return NULL;
	PG_TRY();
	{
		SfHttpRequest req;
		SfHttpResponse *resp;
		SfRemoteError err;

		ex->resubmit = true;
		init_request(ex, &req, "POST", ex->base_url);
		set_cancel_bounds(ex, &req);
		req.body = ex->body;
		req.body_len = strlen(ex->body);
		req.prepare = submit_prepare;
		req.prepare_arg = ex;
		resp = sf_http_request(&req);
		read_remote_error(resp, &err);
		if (resp->status == 202 && err.handle && err.handle[0] != '\0')
		{
			ex->handle = err.handle;
			if (send_cancel(ex))
				detail = psprintf("Snowflake statement %s was cancelled as well (found through request %s).",
								  ex->handle, ex->request_id);
		}
		else if (resp->status == 200 || resp->status == 408 || resp->status == 422)
			detail = psprintf("Snowflake statement %s had already ended (HTTP status %ld).",
							  err.handle ? err.handle : "of request", resp->status);
		else
			ereport(WARNING,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not cancel the Snowflake statement of request %s",
							ex->request_id),
					 errdetail("The resubmit with retry=true to find its handle answered HTTP status %ld%s%s.",
							   resp->status, resp->error_text ? ": " : "",
							   resp->error_text ? resp->error_text : "")));
	}
	PG_CATCH();
	{
		warn_cancel_failed(cxt, "could not cancel the Snowflake statement of request %s",
						   ex->request_id);
	}
	PG_END_TRY();
	return detail;
}

/*
 * before_shmem_exit callback while a statement is in flight: the process
 * is ending (SIGTERM of the worker, pg_terminate_backend: a FATAL error
 * does not unwind to our PG_CATCH), so cancel the remote statement, found
 * through its handle or, during the submit, through its requestId.
 * Interrupts are held and their flags cleared by proc_exit at this point.
 */
static void
cancel_at_exit(int code, Datum arg)
{
	SfExec	   *ex = (SfExec *) DatumGetPointer(arg);
	MemoryContext cxt;
	MemoryContext old;
	char	   *detail = NULL;

	if (!ex->in_flight)
		return;
	ex->in_flight = false;
	cancelling_at_exit = true;
	cxt = AllocSetContextCreate(TopMemoryContext, "sfexport Snowflake cancel at exit",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	if (ex->handle)
	{
		if (send_cancel(ex))
			detail = psprintf("Snowflake statement %s was cancelled.", ex->handle);
	}
	else
		detail = cancel_unacknowledged(ex);
	if (detail)
		ereport(LOG,
				(errmsg("cancelled a running Snowflake statement as the process ends"),
				 errdetail_internal("%s", detail)));
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/* The statement handle of a 202 answer. */
static void
remember_handle(SfExec *ex, SfHttpResponse *resp)
{
	SfRemoteError err;

	read_remote_error(resp, &err);
	if (err.handle == NULL || err.handle[0] == '\0')
		report_bad_response(ex, "A 202 answer carries no statement handle.");
	ex->handle = MemoryContextStrdup(ex->result_cxt, err.handle);
}

/*
 * Poll the statement until it is done; returns its 200 answer.  Polls back
 * off from 25 ms to 1 s, sleeping on the latch.
 */
static SfHttpResponse *
poll_until_done(SfExec *ex, MemoryContext poll_cxt)
{
	SfHttpRequest req;
	SfHttpResponse *resp;
	int			delay = SF_POLL_FIRST_MS;
	int			timeout = ex->stmt->timeout_s > 0 ? ex->stmt->timeout_s
		: ex->srv->statement_timeout_s;
	TimestampTz deadline = GetCurrentTimestamp() +
		(int64) (timeout + SF_POLL_GRACE_S) * USECS_PER_SEC;
	MemoryContext old;
	bool		at_once = false;	/* the poll again after a token renewal */

	for (;;)
	{
		if (!at_once)
		{
			sf_wait(delay, SF_WAIT_SNOWFLAKE_POLL, SF_WAIT_UNTIL_LATCH);
			delay = Min(delay * 2, SF_POLL_MAX_MS);
		}
		at_once = false;
		if (GetCurrentTimestamp() > deadline)
		{
			send_cancel(ex);
			ex->remote_error = true;
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("Snowflake statement %s did not finish within %d seconds",
							ex->handle, timeout + SF_POLL_GRACE_S),
					 errdetail("The statement was cancelled."),
					 errcontext("Snowflake statement %s: %s", ex->handle, ex->log_sql)));
		}

		MemoryContextReset(poll_cxt);
		old = MemoryContextSwitchTo(poll_cxt);
		init_request(ex, &req, "GET",
					 psprintf("%s" SF_API_STATEMENTS "/%s", ex->base_url,
							  sf_http_url_encode(ex->handle, false)));
		req.prepare = get_prepare;
		req.prepare_arg = ex;
		resp = sf_http_request(&req);
		MemoryContextSwitchTo(old);

		if (resp->status == 202)
		{
			ex->just_refreshed = false;
			continue;
		}
		if (resp->status == 401 && !ex->just_refreshed &&
			strcmp(ex->usr->token_type, "KEYPAIR_JWT") == 0)
		{
			(void) sf_auth_token(ex->srv, ex->usr, true);
			ex->just_refreshed = true;
			at_once = true;
			continue;
		}
		if (resp->status == 401)
			report_auth_error(ex, resp);
		if (resp->status == 408 || resp->status == 422)
			report_statement_error(ex, resp);
		if (resp->status != 200)
			report_http_error(ex, &req, resp);
		ex->just_refreshed = false;
		return resp;
	}
}

/*
 * Execute one statement in Snowflake and return its result, built in the
 * caller's memory context.  Retries, token renewal and polling happen
 * inside; a PostgreSQL query cancel during the wait cancels the statement in
 * Snowflake before the cancel error is re-thrown.
 */
SfSnowflakeResult *
sf_snowflake_run(SfServerConfig *srv, SfUserConfig *usr, const SfStatement *stmt)
{
	SfExec		ex;
	SfSnowflakeResult *res;
	SfHttpResponse *resp;
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext work;
	MemoryContext poll_cxt;
	size_t		len;

	memset(&ex, 0, sizeof(ex));
	ex.srv = srv;
	ex.usr = usr;
	ex.stmt = stmt;
	ex.result_cxt = caller;
	ex.log_sql = stmt->log_sql ? stmt->log_sql : sf_redact_sql(stmt->sql);
	len = strlen(srv->url);
	while (len > 0 && srv->url[len - 1] == '/')
		len--;
	ex.base_url = pnstrdup(srv->url, len);
	sf_snowflake_request_id(ex.request_id);

	work = AllocSetContextCreate(caller, "sfexport Snowflake request",
								 ALLOCSET_DEFAULT_SIZES);
	poll_cxt = AllocSetContextCreate(work, "sfexport Snowflake poll",
									 ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(work);

	ex.body = build_body(&ex);

	/*
	 * From the submit to the final answer, an interrupt cancels the remote
	 * statement: a query cancel or statement_timeout here (PG_CATCH), the
	 * end of the process in cancel_at_exit.  Without a handle yet (the
	 * submit still in flight), cancel_unacknowledged finds it.
	 */
	ex.in_flight = true;
	before_shmem_exit(cancel_at_exit, PointerGetDatum(&ex));
	PG_TRY();
	{
		resp = submit(&ex);
		if (resp->status == 202)
		{
			remember_handle(&ex, resp);
			resp = poll_until_done(&ex, poll_cxt);
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		char	   *detail;

		ex.in_flight = false;
		cancel_before_shmem_exit(cancel_at_exit, PointerGetDatum(&ex));
		MemoryContextSwitchTo(work);
		edata = CopyErrorData();
		if (edata->sqlerrcode != ERRCODE_QUERY_CANCELED || ex.remote_error)
		{
			FreeErrorData(edata);
			PG_RE_THROW();
		}
		/* our query was cancelled: cancel the remote statement too */
		FlushErrorState();
		if (ex.handle)
			detail = send_cancel(&ex)
				? psprintf("Snowflake statement %s was cancelled as well.", ex.handle)
				: NULL;
		else
			detail = cancel_unacknowledged(&ex);
		if (detail && edata->detail == NULL)
			edata->detail = detail;
		ReThrowError(edata);
	}
	PG_END_TRY();
	ex.in_flight = false;
	cancel_before_shmem_exit(cancel_at_exit, PointerGetDatum(&ex));
	if (resp->status == 408 || resp->status == 422)
		report_statement_error(&ex, resp);
	res = read_result(&ex, resp);

	MemoryContextSwitchTo(caller);
	MemoryContextDelete(work);
	return res;
}

/*
 * Execute a statement with bind variables (types are Snowflake binding
 * types such as TEXT or FIXED; NULL types mean TEXT, NULL values bind SQL
 * NULL) and the server's default timeout.
 */
SfSnowflakeResult *
sf_snowflake_execute(SfServerConfig *srv, SfUserConfig *usr, const char *sql,
					 int nbinds, const char **bind_types, const char **bind_values)
{
	SfStatement st;

	memset(&st, 0, sizeof(st));
	st.sql = sql;
	st.nbinds = nbinds;
	st.bind_types = bind_types;
	st.bind_values = bind_values;
	return sf_snowflake_run(srv, usr, &st);
}

/*
 * The column index of a result column by name (case-insensitive, as COPY
 * results name them in upper case), or -1.
 */
int
sf_result_column(SfSnowflakeResult *res, const char *name)
{
	for (int j = 0; j < res->ncolumns; j++)
		if (pg_strcasecmp(res->column_names[j], name) == 0)
			return j;
	return -1;
}
