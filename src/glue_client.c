/*-------------------------------------------------------------------------
 *
 * glue_client.c
 *		The AWS Glue Data Catalog client: the tables of a Glue database and
 *		the locations of a table's partitions, for the Glue sync
 *		(glue_sync.c).
 *
 * The client speaks the AWS JSON 1.1 protocol: POST / to
 * https://glue.<region>.amazonaws.com (or the glue_endpoint option) with
 * X-Amz-Target: AWSGlue.<Operation> and Content-Type:
 * application/x-amz-json-1.1, signed with SigV4 for service "glue"
 * (botocore data/glue/2017-03-31/service-2.json: protocol "json",
 * jsonVersion "1.1", targetPrefix "AWSGlue", signingName "glue").  Errors
 * are JSON bodies {"__type": "...#EntityNotFoundException", "message": ...}
 * (botocore parsers.py BaseJSONParser: "__type" with an optional
 * "namespace#" prefix, "message" or "Message").  Throttling comes as HTTP
 * 400 with __type ThrottlingException and is retried here with backoff; 5xx
 * and transport errors are retried by sf_http_request().  Operations used:
 * GetTables (pages with NextToken, MaxResults at most 100:
 * CatalogGetterPageSize; the LIKE pattern also sent as Expression where a
 * regular expression can stand for it) and GetPartitions (every page, one
 * at a time, to tell hive-style from plain partition directories, and
 * which partitions changed since the last sync).  With the glue_catalog_id
 * option every request names the catalog (CatalogId) of another account.
 * API reference:
 * https://docs.aws.amazon.com/glue/latest/webapi/API_GetTables.html
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "glue_client.h"

#include <time.h>

#include "catalog/pg_collation_d.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "sfexport.h"

#include "aws_credentials.h"
#include "config.h"
#include "http.h"
#include "sigv4.h"
#include "waits.h"

#define GLUE_PAGE_SIZE 100			/* CatalogGetterPageSize: 1..100 */
#define GLUE_MAX_PAGES 10000
#define GLUE_THROTTLE_ATTEMPTS 6
#define GLUE_EXPRESSION_MAX 2048	/* FilterString: 0..2048 */

struct SfGlueClient
{
	SfGlueConfig *conf;
	SfUserConfig *usr;			/* whose credentials (aws_credentials.c) */
	SfAwsRequestSigning sign;
	char	   *url;			/* base URL + "/" */
};

typedef struct GlueCall
{
	SfGlueClient *gc;
	const char *op;
	char	   *payload_hash;
} GlueCall;

/* ---------------------------------------------------------------------
 * The Glue client
 * ---------------------------------------------------------------------
 */

SfGlueClient *
sf_glue_client(SfGlueConfig *conf, SfUserConfig *usr)
{
	SfGlueClient *gc = palloc0(sizeof(SfGlueClient));
	char	   *base;
	char	   *host;

	(void) sf_aws_credentials(conf->srv, usr);	/* fails now if there are none */
	if (conf->endpoint)
		sf_aws_split_endpoint(conf->endpoint, &base, &host);
	else
	{
		host = psprintf("glue.%s.amazonaws.com", conf->region);
		base = psprintf("https://%s", host);
	}
	gc->conf = conf;
	gc->url = psprintf("%s/", base);
	gc->sign.host = host;
	gc->sign.region = conf->region;
	gc->sign.service = "glue";
	gc->sign.s3_path_rules = false;
	gc->sign.content_sha256 = false;
	gc->usr = usr;
	return gc;
}

/* Sign (again) before every attempt: fresh X-Amz-Date. */
static void
glue_prepare(SfHttpRequest *req, int attempt, void *arg)
{
	GlueCall   *c = (GlueCall *) arg;
	char		amz_date[17];
	const SfAwsCredentials *cr = sf_aws_credentials(c->gc->conf->srv, c->gc->usr);

	/* current credentials: temporary ones are renewed before they expire */
	c->gc->sign.access_key_id = cr->access_key_id;
	c->gc->sign.secret_access_key = cr->secret_access_key;
	c->gc->sign.session_token = cr->session_token;
	sf_sigv4_amz_date(time(NULL), amz_date);
	req->headers = sf_sigv4_request_headers(&c->gc->sign, "POST", "/", NULL,
											list_make2(psprintf("X-Amz-Target: AWSGlue.%s", c->op),
													   "Content-Type: application/x-amz-json-1.1"),
											c->payload_hash, amz_date);
}

static bool
is_type(const char *type, const char *const *names)
{
	for (; *names; names++)
		if (strcmp(type, *names) == 0)
			return true;
	return false;
}

/*
 * Call a Glue operation with a JSON body; returns the parsed answer (tied to
 * the current memory context), or NULL for EntityNotFoundException when
 * missing_ok.  Other errors are thrown with Glue's error type and message.
 */
static json_t *
glue_call(SfGlueClient *gc, const char *op, json_t *body, bool missing_ok)
{
	static const char *const throttling[] = {
		"ThrottlingException", "TooManyRequestsException",
		"RequestLimitExceeded", "ProvisionedThroughputExceededException", NULL
	};
	static const char *const auth[] = {
		"UnrecognizedClientException", "InvalidSignatureException",
		"IncompleteSignatureException", "MissingAuthenticationTokenException",
		"ExpiredTokenException", "InvalidClientTokenId", "SignatureDoesNotMatch",
		"InvalidAccessKeyId", NULL
	};
	char	   *payload;
	GlueCall   *call = palloc0(sizeof(GlueCall));
	int			delay_ms = 250;

	/*
	 * CatalogId (every operation used here has it: "The ID of the Data
	 * Catalog where the tables reside. If none is provided, the Amazon Web
	 * Services account ID is used by default."): another account's catalog,
	 * the glue_catalog_id option.
	 */
	if (gc->conf->catalog_id)
		json_object_set_new(body, "CatalogId", json_string(gc->conf->catalog_id));
	payload = sf_json_dumps(body);
	call->gc = gc;
	call->op = op;
	call->payload_hash = sf_sha256_hex(payload, strlen(payload));

	for (int attempt = 1;; attempt++)
	{
		SfHttpRequest req;
		SfHttpResponse *resp;
		json_t	   *answer;
		json_error_t jerr;
		char	   *type = NULL;
		char	   *message = NULL;
		const char *hash;
		int			code;

		sf_http_init_request(&req, "POST", gc->url);
		req.log_url = gc->url;
		req.body = payload;
		req.body_len = strlen(payload);
		req.prepare = glue_prepare;
		req.prepare_arg = call;
		sf_http_server_settings(&req, gc->conf->srv);
		resp = sf_http_request(&req);

		answer = resp->body.len > 0 ? json_loadb(resp->body.data, resp->body.len, 0, &jerr) : NULL;
		if (answer)
			sf_json_tracked(answer);
		if (resp->status >= 200 && resp->status < 300)
		{
			if (answer == NULL || !json_is_object(answer))
				ereport(ERROR,
						(errcode(ERRCODE_PROTOCOL_VIOLATION),
						 errmsg("invalid response from AWS Glue to %s", op),
						 errdetail("The answer is not a JSON object."),
						 errcontext("AWS Glue request POST %s (AWSGlue.%s)", gc->url, op)));
			return answer;
		}

		if (answer && json_is_object(answer))
		{
			type = sf_json_string(answer, "__type");
			message = sf_json_string(answer, "message");
			if (message == NULL)
				message = sf_json_string(answer, "Message");
		}
		if (type && (hash = strrchr(type, '#')) != NULL)
			type = pstrdup(hash + 1);
		if (type == NULL)
			type = resp->status == 403 ? "AccessDeniedException" : "";

		if (is_type(type, throttling) && attempt < GLUE_THROTTLE_ATTEMPTS)
		{
			/* full jitter, as http.c */
			sf_wait(1 + (long) (pg_prng_double(&pg_global_prng_state) * delay_ms),
					SF_WAIT_GLUE_BACKOFF, SF_WAIT_UNTIL_LATCH);
			delay_ms = Min(delay_ms * 2, 20000);
			continue;
		}
		if (missing_ok && strcmp(type, "EntityNotFoundException") == 0)
			return NULL;

		if (strcmp(type, "EntityNotFoundException") == 0)
			code = ERRCODE_UNDEFINED_OBJECT;
		else if (is_type(type, auth))
			code = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		else if (strcmp(type, "AccessDeniedException") == 0)
			code = ERRCODE_INSUFFICIENT_PRIVILEGE;
		else if (is_type(type, throttling) || resp->status >= 500 || resp->status == 429)
			code = ERRCODE_CONNECTION_FAILURE;
		else if (strcmp(type, "InvalidInputException") == 0)
			code = ERRCODE_INVALID_PARAMETER_VALUE;
		else
			code = ERRCODE_FDW_ERROR;

		ereport(ERROR,
				(errcode(code),
				 code == ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION
				 ? errmsg("AWS Glue rejected the credentials of the user mapping for server \"%s\"",
						  gc->conf->srv->servername)
				 : errmsg("AWS Glue request %s failed: HTTP %ld%s%s", op, resp->status,
						  *type ? " " : "", type),
				 errdetail_internal("AWS Glue error %s (HTTP %ld)%s%s%s", *type ? type : "(none)",
									resp->status, message ? ": " : "", message ? message : "",
									attempt > 1 ? psprintf(" (after %d attempts)", attempt) : ""),
				 code == ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION
				 ? errhint("Check aws_access_key_id, aws_secret_access_key and aws_session_token in the user mapping, and the glue_region option.")
				 : code == ERRCODE_INSUFFICIENT_PRIVILEGE
				 ? errhint("The AWS principal needs glue:GetTables and glue:GetPartitions on the catalog, database and tables.")
				 : 0,
				 errcontext("AWS Glue request POST %s (AWSGlue.%s)", gc->url, op)));
	}
}

/* ---------------------------------------------------------------------
 * Reading Glue tables
 * ---------------------------------------------------------------------
 */

static List *
read_columns(json_t *arr)
{
	List	   *out = NIL;
	size_t		i;
	json_t	   *c;

	if (!json_is_array(arr))
		return NIL;
	json_array_foreach(arr, i, c)
	{
		SfGlueColumn *col = palloc0(sizeof(SfGlueColumn));

		col->name = sf_json_string(c, "Name");
		col->type = sf_json_string(c, "Type");
		out = lappend(out, col);
	}
	return out;
}

static SfGlueTable *
read_table(json_t *t)
{
	SfGlueTable  *gt = palloc0(sizeof(SfGlueTable));
	json_t	   *sd = json_object_get(t, "StorageDescriptor");
	json_t	   *params = json_object_get(t, "Parameters");
	json_t	   *serde = sd ? json_object_get(sd, "SerdeInfo") : NULL;
	json_t	   *sparams = serde ? json_object_get(serde, "Parameters") : NULL;
	char	   *skip;

	gt->name = sf_json_string(t, "Name");
	gt->table_type = sf_json_string(t, "TableType");
	gt->location = sf_json_string(sd, "Location");
	gt->input_format = sf_json_string(sd, "InputFormat");
	gt->serde = sf_json_string(serde, "SerializationLibrary");
	gt->classification = sf_json_string(params, "classification");
	gt->columns = read_columns(sd ? json_object_get(sd, "Columns") : NULL);
	gt->partition_keys = read_columns(json_object_get(t, "PartitionKeys"));
	gt->serde_params = json_is_object(sparams) ? sparams : NULL;
	gt->field_delim = sf_json_string(sparams, "field.delim");
	if (gt->field_delim == NULL)
		gt->field_delim = sf_json_string(sparams, "separatorChar");
	skip = sf_json_string(params, "skip.header.line.count");
	gt->skip_header = skip ? atoi(skip) : 0;
	if (gt->skip_header < 0 || gt->skip_header > 1000)
		gt->skip_header = 0;
	return gt;
}

/*
 * The GetTables Expression for a LIKE pattern, or NULL to send none.
 *
 * The API reference says only "A regular expression pattern. If present,
 * only those tables whose names match the pattern are returned."  Clients
 * and stand-ins read that differently: a match of the whole name, a search
 * anywhere in it, or Hive metastore's pattern ("*" means ".*", "|"
 * separates alternatives, case-insensitive).  So the expression is built to
 * select at least the LIKE matches under every one of those readings, and
 * the LIKE filter applied afterwards stays the authority:
 *	- anchored with ^...$ (a search then matches the whole name too);
 *	- "%" becomes "([\s\S]+)?" and "_" becomes "[\s\S]" (any character,
 *	  line breaks too, which "." does not match in Java or Python): no "*"
 *	  (rewritten by the Hive reading) and no "|";
 *	- literal characters must be ASCII letters, digits, "_" or "-", which
 *	  mean themselves in every reading; any other literal (or a pattern
 *	  that is just "%", or too long for Glue's 2048-character FilterString)
 *	  sends no expression and filters locally only.
 */
static char *
like_expression(const char *pattern)
{
	StringInfoData re;
	bool		any_literal_or_one = false;
	bool		last_pct = false;

	initStringInfo(&re);
	appendStringInfoChar(&re, '^');
	for (const char *p = pattern; *p; p++)
	{
		char		c = *p;

		if (c == '%')
		{
			if (!last_pct)
				appendStringInfoString(&re, "([\\s\\S]+)?");
			last_pct = true;
			continue;
		}
		last_pct = false;
		any_literal_or_one = true;
		if (c == '_')
		{
			appendStringInfoString(&re, "[\\s\\S]");
			continue;
		}
		if (c == '\\')
		{
			c = *++p;
			if (c == '\0')
				return NULL;	/* LIKE refuses it; let the local filter say so */
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return NULL;
		appendStringInfoChar(&re, c);
	}
	appendStringInfoChar(&re, '$');
	if (!any_literal_or_one || re.len > GLUE_EXPRESSION_MAX)
		return NULL;
	return re.data;
}

/*
 * Every table of a Glue database, over all pages, with names matching
 * pattern (LIKE, C collation: the filter applied here is the authority).
 */
List *
sf_glue_list_tables(SfGlueClient *gc, const char *database, const char *pattern)
{
	List	   *out = NIL;
	char	   *token = NULL;
	char	   *expression = like_expression(pattern);

	for (int page = 0; page < GLUE_MAX_PAGES; page++)
	{
		json_t	   *body = sf_json_tracked(json_pack("{s:s, s:i}", "DatabaseName", database,
												  "MaxResults", GLUE_PAGE_SIZE));
		json_t	   *answer;
		json_t	   *list;
		size_t		i;
		json_t	   *t;

		CHECK_FOR_INTERRUPTS();
		if (expression)
			json_object_set_new(body, "Expression", json_string(expression));
		if (token)
			json_object_set_new(body, "NextToken", json_string(token));
		answer = glue_call(gc, "GetTables", body, true);
		if (answer == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("AWS Glue database \"%s\" does not exist", database),
					 errhint("Check the name and the glue_region option of server \"%s\".",
							 gc->conf->srv->servername)));
		list = json_object_get(answer, "TableList");
		if (list && !json_is_array(list))
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("invalid response from AWS Glue to GetTables"),
					 errdetail("TableList is not an array.")));
		json_array_foreach(list, i, t)
		{
			char	   *name = sf_json_string(t, "Name");

			if (name == NULL)
				continue;
			if (!DatumGetBool(DirectFunctionCall2Coll(textlike, C_COLLATION_OID,
													  CStringGetTextDatum(name),
													  CStringGetTextDatum(pattern))))
				continue;
			out = lappend(out, read_table(t));
		}
		token = sf_json_string(answer, "NextToken");
		if (token == NULL || *token == '\0')
			return out;
	}
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("AWS Glue database \"%s\" has more than %d pages of tables",
					database, GLUE_MAX_PAGES)));
	return NIL;					/* keep compiler quiet */
}

/* A name from Glue we can use: non-empty, not too long, no control characters. */
bool
sf_glue_usable_name(const char *name)
{
	if (name == NULL || name[0] == '\0' || strlen(name) > SF_GLUE_NAME_MAX)
		return false;
	for (const char *c = name; *c; c++)
		if ((unsigned char) *c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

/* A name for messages: control characters shown as "?". */
char *
sf_glue_shown_name(const char *name)
{
	char	   *s = pstrdup(name ? name : "");

	for (char *c = s; *c; c++)
		if ((unsigned char) *c < 0x20 || *c == 0x7f)
			*c = '?';
	return s;
}

/*
 * The storage location and values of every partition of a table
 * (GetPartitions, every page, one page in memory at a time), given to fn
 * one at a time until fn
 * returns false.  fn runs in a memory context that is reset after each
 * page: what it keeps must be allocated elsewhere.
 */
void
sf_glue_partition_locations(SfGlueClient *gc, const char *glue_db, const char *table,
							SfGlueLocationFn fn, void *arg)
{
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext pagecxt = AllocSetContextCreate(CurrentMemoryContext, "sfexport glue partitions",
												  ALLOCSET_DEFAULT_SIZES);
	char	   *token = NULL;
	bool		stopped = false;

	for (int page = 0; page < GLUE_MAX_PAGES && !stopped; page++)
	{
		json_t	   *body;
		json_t	   *answer;
		json_t	   *list;
		size_t		i;
		json_t	   *p;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(pagecxt);
		body = sf_json_tracked(json_pack("{s:s, s:s, s:i, s:b}",
										 "DatabaseName", glue_db, "TableName", table,
										 "MaxResults", GLUE_PAGE_SIZE, "ExcludeColumnSchema", 1));
		if (token)
			json_object_set_new(body, "NextToken", json_string(token));
		answer = glue_call(gc, "GetPartitions", body, true);
		list = answer ? json_object_get(answer, "Partitions") : NULL;
		json_array_foreach(list, i, p)
		{
			char	   *loc = sf_json_string(json_object_get(p, "StorageDescriptor"), "Location");

			if (loc == NULL)
				continue;
			if (!fn(arg, loc, json_object_get(p, "Values")))
			{
				stopped = true;
				break;
			}
		}
		MemoryContextSwitchTo(outer);
		if (token)
			pfree(token);
		token = NULL;
		if (!stopped && answer != NULL)
		{
			char	   *next = sf_json_string(answer, "NextToken");

			if (next && *next)
				token = next;
		}
		MemoryContextReset(pagecxt);
		if (token == NULL)
			break;
	}
	MemoryContextDelete(pagecxt);
	if (!stopped && token != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("AWS Glue table \"%s\" has more than %d pages of partitions",
						sf_glue_shown_name(table), GLUE_MAX_PAGES)));
}
