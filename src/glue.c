/*-------------------------------------------------------------------------
 *
 * glue.c
 *		AWS Glue Data Catalog client and sfexport.glue_sync(): mirror Glue
 *		tables as Snowflake external tables, idempotently.
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
 * at a time, to tell hive-style from plain partition directories).  API
 * reference:
 * https://docs.aws.amazon.com/glue/latest/webapi/API_GetTables.html
 *
 * What a Glue table becomes (docs/glue.md has the user's view):
 *	- target: "<DB>"."<SCHEMA>"."<TABLE>" — explicit arguments, else the Glue
 *	  database name <database>__<schema>, else the server's database and
 *	  schema; names from Glue are upper-cased (Hive names are
 *	  case-insensitive and Glue stores them lower-case) and always quoted
 *	  with sf_quote_ident();
 *	- location: the table's s3:// location must lie below the location of a
 *	  stage (the server's stage over its location, or one from the
 *	  glue_stage_map option); LOCATION = @stage/<rest of the path>/;
 *	- columns: "<NAME>" <type> AS (<expr>::<type>) with the type from the
 *	  Hive type parser (hive_types.c); CSV columns are value:c1..cN by
 *	  position, JSON/Parquet/ORC/Avro columns GET_IGNORE_CASE(value,
 *	  '<name>') (Hive matches names case-insensitively; Glue stores them
 *	  lower-case), or value:"<key>" from the OpenX SerDe's mapping.<name>;
 *	- partition columns: computed from METADATA$FILENAME, which holds the
 *	  file's path relative to the stage ("Query metadata for staged files":
 *	  https://docs.snowflake.com/en/user-guide/querying-metadata), with
 *	  SPLIT_PART on "/" (and "=" for hive-style key=value directories; Hive
 *	  escapes "=" in partition values, FileUtils.escapePathName, and string
 *	  values are unescaped with REPLACE), listed in PARTITION BY (CREATE
 *	  EXTERNAL TABLE, "Partitioning parameters":
 *	  https://docs.snowflake.com/en/sql-reference/sql/create-external-table).
 *
 * Idempotency: sfexport.glue_sync_state (glue_periodic.c, with the worker's
 * periodic sync) remembers the SHA-256 of the statement applied per Glue
 * table and target; an unchanged table is not touched, a changed one is
 * re-created with CREATE OR REPLACE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "sf_jansson.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_type_d.h"
#include "commands/defrem.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "sfexport.h"

#define GLUE_PAGE_SIZE 100			/* CatalogGetterPageSize: 1..100 */
#define GLUE_MAX_PAGES 10000
#define GLUE_THROTTLE_ATTEMPTS 6
#define GLUE_NAME_MAX 255
#define GLUE_EXPRESSION_MAX 2048	/* FilterString: 0..2048 */

/* A stage and the s3:// location it covers. */
typedef struct GlueStage
{
	char	   *stage_sql;		/* quoted, qualified stage name */
	char	   *bucket;
	char	   *prefix;			/* "" or ending in '/' */
} GlueStage;

/* The Glue options of a server (besides the Snowflake and storage ones). */
typedef struct GlueConfig
{
	SfServerConfig *srv;
	char	   *region;
	char	   *endpoint;		/* NULL = https://glue.<region>.amazonaws.com */
	int			sync_interval_s;	/* 0 = no periodic sync */
	List	   *databases;		/* char *: Glue databases of the periodic sync */
	bool		drop_missing;	/* periodic sync drops tables gone from Glue */
	List	   *stages;			/* GlueStage * */
} GlueConfig;

typedef struct GlueClient
{
	GlueConfig *conf;
	SfAwsRequestSigning sign;
	char	   *url;			/* base URL + "/" */
} GlueClient;

typedef struct GlueCall
{
	GlueClient *gc;
	const char *op;
	char	   *payload_hash;
} GlueCall;

typedef struct GlueColumn
{
	char	   *name;
	char	   *type;
} GlueColumn;

typedef struct GlueTable
{
	char	   *name;
	char	   *table_type;
	char	   *location;
	char	   *classification;
	char	   *serde;
	char	   *input_format;
	char	   *field_delim;	/* SerDe field delimiter, NULL = default */
	json_t	   *serde_params;	/* SerdeInfo.Parameters (tied to the answer), or NULL */
	int			skip_header;
	List	   *columns;		/* GlueColumn * */
	List	   *partition_keys; /* GlueColumn * */
} GlueTable;

/* What glue_sync decided for one Glue table. */
typedef struct GluePlan
{
	char	   *glue_table;
	char	   *target_table;	/* Snowflake name, unquoted */
	char	   *skip_reason;	/* non-NULL: skipped */
	char	   *statement;		/* CREATE OR REPLACE EXTERNAL TABLE ... */
	char	   *hash;
} GluePlan;

/* ---------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------
 */

static bool
valid_stage_part(const char *s, size_t len)
{
	if (len == 0 || len > GLUE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(isalnum((unsigned char) s[i]) || s[i] == '_' || s[i] == '$'))
			return false;
	return true;
}

/*
 * Parse the glue_stage_map option: entries STAGE=s3://bucket/prefix/
 * separated by commas, STAGE being name or database.schema.name (letters,
 * digits, "_" and "$"; quoted as given, so case-sensitive).  An unqualified
 * stage is taken in the server's database and schema.  Returns false with
 * *why set to a sentence when malformed.  Entries (GlueStage *) go to
 * *entries when entries is not NULL (db and schema qualify bare names).
 */
bool
sf_glue_parse_stage_map(const char *value, const char *db, const char *schema,
						List **entries, char **why)
{
	char	   *copy = pstrdup(value);
	char	   *saveptr = NULL;
	int			n = 0;

	for (char *item = strtok_r(copy, ",", &saveptr); item;
		 item = strtok_r(NULL, ",", &saveptr))
	{
		char	   *eq;
		char	   *name;
		char	   *loc;
		SfLocation	l;
		char	   *lwhy = NULL;
		List	   *parts = NIL;
		char	   *dot;
		char	   *start;

		while (*item == ' ' || *item == '\t' || *item == '\n')
			item++;
		for (char *e = item + strlen(item); e > item && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'); e--)
			e[-1] = '\0';
		if (*item == '\0')
			continue;
		eq = strchr(item, '=');
		if (eq == NULL)
		{
			*why = psprintf("Entry \"%s\" is not of the form STAGE=s3://bucket/prefix/.", item);
			return false;
		}
		name = pnstrdup(item, eq - item);
		loc = eq + 1;
		for (char *e = name + strlen(name); e > name && e[-1] == ' '; e--)
			e[-1] = '\0';
		while (*loc == ' ')
			loc++;
		start = name;
		while ((dot = strchr(start, '.')) != NULL)
		{
			if (!valid_stage_part(start, dot - start))
				break;
			parts = lappend(parts, pnstrdup(start, dot - start));
			start = dot + 1;
		}
		if (dot != NULL || !valid_stage_part(start, strlen(start)) ||
			(list_length(parts) != 0 && list_length(parts) != 2))
		{
			*why = psprintf("Stage name \"%s\" must be NAME or DATABASE.SCHEMA.NAME, each part letters, digits, \"_\" or \"$\".", name);
			return false;
		}
		parts = lappend(parts, pstrdup(start));
		if (!sf_parse_location(loc, &l, &lwhy) || l.kind != SF_LOCATION_S3)
		{
			*why = psprintf("Location \"%s\" of stage \"%s\" is not an s3:// location%s%s",
							loc, name, lwhy ? ": " : ".", lwhy ? lwhy : "");
			return false;
		}
		if (entries)
		{
			GlueStage  *gs = palloc0(sizeof(GlueStage));

			if (list_length(parts) == 1)
				gs->stage_sql = psprintf("%s.%s.%s", sf_quote_ident(db),
										 sf_quote_ident(schema),
										 sf_quote_ident(linitial(parts)));
			else
				gs->stage_sql = psprintf("%s.%s.%s",
										 sf_quote_ident(linitial(parts)),
										 sf_quote_ident(lsecond(parts)),
										 sf_quote_ident(lthird(parts)));
			gs->bucket = l.bucket;
			gs->prefix = l.prefix;
			*entries = lappend(*entries, gs);
		}
		n++;
	}
	if (n == 0)
	{
		*why = "The map must name at least one stage.";
		return false;
	}
	return true;
}

/* The Glue configuration of a server. */
static GlueConfig *
glue_config(Oid serverid)
{
	ForeignServer *server = GetForeignServer(serverid);
	GlueConfig *conf = palloc0(sizeof(GlueConfig));
	char	   *stage_map = NULL;
	ListCell   *lc;

	conf->srv = sf_get_server_config(serverid);
	foreach(lc, server->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);
		char	   *v = defGetString(def);

		if (strcmp(def->defname, "glue_region") == 0)
			conf->region = v;
		else if (strcmp(def->defname, "glue_endpoint") == 0)
			conf->endpoint = v;
		else if (strcmp(def->defname, "glue_sync_interval") == 0)
			(void) parse_int(v, &conf->sync_interval_s, GUC_UNIT_S, NULL);
		else if (strcmp(def->defname, "glue_databases") == 0)
		{
			char	   *saveptr = NULL;

			/* comma-separated Glue database names, blanks around ignored */
			for (char *item = strtok_r(pstrdup(v), ",", &saveptr); item;
				 item = strtok_r(NULL, ",", &saveptr))
			{
				char	   *end;

				while (*item == ' ')
					item++;
				end = item + strlen(item);
				while (end > item && end[-1] == ' ')
					*--end = '\0';
				if (*item)
					conf->databases = lappend(conf->databases, item);
			}
		}
		else if (strcmp(def->defname, "glue_drop_missing") == 0)
			(void) parse_bool(v, &conf->drop_missing);
		else if (strcmp(def->defname, "glue_stage_map") == 0)
			stage_map = v;
	}
	if (conf->region == NULL)
		conf->region = conf->srv->region ? conf->srv->region : "us-east-1";

	/* the server's own stage covers its location when that is on S3 */
	if (conf->srv->location.kind == SF_LOCATION_S3)
	{
		GlueStage  *gs = palloc0(sizeof(GlueStage));

		gs->stage_sql = psprintf("%s.%s.%s", sf_quote_ident(conf->srv->database),
								 sf_quote_ident(conf->srv->schema),
								 sf_quote_ident(conf->srv->stage));
		gs->bucket = conf->srv->location.bucket;
		gs->prefix = conf->srv->location.prefix;
		conf->stages = lappend(conf->stages, gs);
	}
	if (stage_map)
	{
		char	   *why = NULL;

		if (!sf_glue_parse_stage_map(stage_map, conf->srv->database,
									 conf->srv->schema, &conf->stages, &why))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid glue_stage_map for server \"%s\"", conf->srv->servername),
					 errdetail_internal("%s", why)));
	}
	return conf;
}

/*
 * What the periodic sync of a server needs: the Glue databases it mirrors
 * (glue_databases) and whether it drops tables gone from Glue
 * (glue_drop_missing), in the current memory context.
 */
void
sf_glue_periodic_options(Oid serverid, List **databases, bool *drop_missing)
{
	GlueConfig *conf = glue_config(serverid);

	*databases = conf->databases;
	*drop_missing = conf->drop_missing;
}

/* ---------------------------------------------------------------------
 * The Glue client
 * ---------------------------------------------------------------------
 */

static void
json_release(void *arg)
{
	json_decref((json_t *) arg);
}

/* Tie a jansson value to the current memory context (freed on reset/error). */
static json_t *
json_tracked(json_t *j)
{
	MemoryContextCallback *cb = palloc(sizeof(MemoryContextCallback));

	cb->func = json_release;
	cb->arg = j;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return j;
}

/* A string member, copied; NULL when absent or not a string. */
static char *
jstr(json_t *obj, const char *key)
{
	json_t	   *v = obj ? json_object_get(obj, key) : NULL;

	return (v && json_is_string(v)) ? pstrdup(json_string_value(v)) : NULL;
}

static GlueClient *
glue_client(GlueConfig *conf, SfUserConfig *usr)
{
	GlueClient *gc = palloc0(sizeof(GlueClient));
	char	   *base;
	char	   *host;

	sf_require_aws_credentials(conf->srv, usr);
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
	gc->sign.access_key_id = usr->aws_access_key_id;
	gc->sign.secret_access_key = usr->aws_secret_access_key;
	gc->sign.session_token = usr->aws_session_token;
	return gc;
}

/* Sign (again) before every attempt: fresh X-Amz-Date. */
static void
glue_prepare(SfHttpRequest *req, int attempt, void *arg)
{
	GlueCall   *c = (GlueCall *) arg;
	char		amz_date[17];

	sf_sigv4_amz_date(time(NULL), amz_date);
	req->headers = sf_sigv4_request_headers(&c->gc->sign, "POST", "/", NULL,
											list_make2(psprintf("X-Amz-Target: AWSGlue.%s", c->op),
													   "Content-Type: application/x-amz-json-1.1"),
											c->payload_hash, amz_date);
}

static void
glue_sleep(int ms)
{
	int			rc;

	rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
				   ms, sf_wait_event(SF_WAIT_GLUE_BACKOFF));
	if (rc & WL_LATCH_SET)
		ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
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
glue_call(GlueClient *gc, const char *op, json_t *body, bool missing_ok)
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
	char	   *raw = json_dumps(body, JSON_COMPACT);
	char	   *payload;
	GlueCall   *call = palloc0(sizeof(GlueCall));
	int			delay_ms = 250;

	if (raw == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	payload = pstrdup(raw);
	free(raw);
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
		req.connect_timeout_ms = gc->conf->srv->connect_timeout_ms;
		req.timeout_ms = gc->conf->srv->request_timeout_ms;
		req.ca_file = gc->conf->srv->ca_file;
		resp = sf_http_request(&req);

		answer = resp->body.len > 0 ? json_loadb(resp->body.data, resp->body.len, 0, &jerr) : NULL;
		if (answer)
			json_tracked(answer);
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
			type = jstr(answer, "__type");
			message = jstr(answer, "message");
			if (message == NULL)
				message = jstr(answer, "Message");
		}
		if (type && (hash = strrchr(type, '#')) != NULL)
			type = pstrdup(hash + 1);
		if (type == NULL)
			type = resp->status == 403 ? "AccessDeniedException" : "";

		if (is_type(type, throttling) && attempt < GLUE_THROTTLE_ATTEMPTS)
		{
			/* full jitter, as http.c */
			glue_sleep(1 + (int) (pg_prng_double(&pg_global_prng_state) * delay_ms));
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
		GlueColumn *col = palloc0(sizeof(GlueColumn));

		col->name = jstr(c, "Name");
		col->type = jstr(c, "Type");
		out = lappend(out, col);
	}
	return out;
}

static GlueTable *
read_table(json_t *t)
{
	GlueTable  *gt = palloc0(sizeof(GlueTable));
	json_t	   *sd = json_object_get(t, "StorageDescriptor");
	json_t	   *params = json_object_get(t, "Parameters");
	json_t	   *serde = sd ? json_object_get(sd, "SerdeInfo") : NULL;
	json_t	   *sparams = serde ? json_object_get(serde, "Parameters") : NULL;
	char	   *skip;

	gt->name = jstr(t, "Name");
	gt->table_type = jstr(t, "TableType");
	gt->location = jstr(sd, "Location");
	gt->input_format = jstr(sd, "InputFormat");
	gt->serde = jstr(serde, "SerializationLibrary");
	gt->classification = jstr(params, "classification");
	gt->columns = read_columns(sd ? json_object_get(sd, "Columns") : NULL);
	gt->partition_keys = read_columns(json_object_get(t, "PartitionKeys"));
	gt->serde_params = json_is_object(sparams) ? sparams : NULL;
	gt->field_delim = jstr(sparams, "field.delim");
	if (gt->field_delim == NULL)
		gt->field_delim = jstr(sparams, "separatorChar");
	skip = jstr(params, "skip.header.line.count");
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

/* Every table of a Glue database, over all pages, with names matching pattern. */
static List *
glue_list_tables(GlueClient *gc, const char *database, const char *pattern)
{
	List	   *out = NIL;
	char	   *token = NULL;
	char	   *expression = like_expression(pattern);

	for (int page = 0; page < GLUE_MAX_PAGES; page++)
	{
		json_t	   *body = json_tracked(json_pack("{s:s, s:i}", "DatabaseName", database,
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
			char	   *name = jstr(t, "Name");

			if (name == NULL)
				continue;
			if (!DatumGetBool(DirectFunctionCall2Coll(textlike, C_COLLATION_OID,
													  CStringGetTextDatum(name),
													  CStringGetTextDatum(pattern))))
				continue;
			out = lappend(out, read_table(t));
		}
		token = jstr(answer, "NextToken");
		if (token == NULL || *token == '\0')
			return out;
	}
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("AWS Glue database \"%s\" has more than %d pages of tables",
					database, GLUE_MAX_PAGES)));
	return NIL;					/* keep compiler quiet */
}

/* ---------------------------------------------------------------------
 * Planning one table
 * ---------------------------------------------------------------------
 */

typedef enum GlueFormat
{
	FMT_UNSUPPORTED,
	FMT_CSV,
	FMT_JSON,
	FMT_PARQUET,
	FMT_ORC,
	FMT_AVRO
} GlueFormat;

static bool
contains_ci(const char *s, const char *what)
{
	size_t		n = strlen(what);

	if (s == NULL)
		return false;
	for (; *s; s++)
		if (pg_strncasecmp(s, what, n) == 0)
			return true;
	return false;
}

/*
 * The data format: Parameters.classification (what Glue crawlers set), else
 * the SerDe library, else the InputFormat class.
 */
static GlueFormat
table_format(GlueTable *t, const char **shown)
{
	const char *c = t->classification;

	*shown = c;
	if (c)
	{
		if (pg_strcasecmp(c, "csv") == 0)
			return FMT_CSV;
		if (pg_strcasecmp(c, "json") == 0)
			return FMT_JSON;
		if (pg_strcasecmp(c, "parquet") == 0)
			return FMT_PARQUET;
		if (pg_strcasecmp(c, "orc") == 0)
			return FMT_ORC;
		if (pg_strcasecmp(c, "avro") == 0)
			return FMT_AVRO;
		return FMT_UNSUPPORTED;
	}
	*shown = t->serde ? t->serde : t->input_format;
	if (contains_ci(t->serde, "OpenCSVSerde") || contains_ci(t->serde, "LazySimpleSerDe"))
		return FMT_CSV;
	if (contains_ci(t->serde, "JsonSerDe"))
		return FMT_JSON;
	if (contains_ci(t->serde, "ParquetHiveSerDe"))
		return FMT_PARQUET;
	if (contains_ci(t->serde, "OrcSerde"))
		return FMT_ORC;
	if (contains_ci(t->serde, "AvroSerDe"))
		return FMT_AVRO;
	if (t->serde == NULL)
	{
		if (contains_ci(t->input_format, "MapredParquetInputFormat"))
			return FMT_PARQUET;
		if (contains_ci(t->input_format, "OrcInputFormat"))
			return FMT_ORC;
		if (contains_ci(t->input_format, "AvroContainerInputFormat"))
			return FMT_AVRO;
		if (contains_ci(t->input_format, "TextInputFormat"))
			return FMT_CSV;
	}
	return FMT_UNSUPPORTED;
}

/* A name from Glue we can use: non-empty, not too long, no control characters. */
static bool
usable_name(const char *name)
{
	if (name == NULL || name[0] == '\0' || strlen(name) > GLUE_NAME_MAX)
		return false;
	for (const char *c = name; *c; c++)
		if ((unsigned char) *c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

static char *
upper_name(const char *name)
{
	char	   *u = pstrdup(name);

	for (char *c = u; *c; c++)
		*c = pg_ascii_toupper((unsigned char) *c);
	return u;
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
 * An s3:// location (also s3a://, s3n://) split into bucket and key prefix
 * ending in '/'.  False when it is not one.
 */
static bool
split_s3(const char *loc, char **bucket, char **key)
{
	const char *rest;
	const char *slash;

	if (loc == NULL)
		return false;
	if (strncmp(loc, "s3://", 5) == 0)
		rest = loc + 5;
	else if (strncmp(loc, "s3a://", 6) == 0 || strncmp(loc, "s3n://", 6) == 0)
		rest = loc + 6;
	else
		return false;
	slash = strchr(rest, '/');
	if (slash == NULL)
	{
		*bucket = pstrdup(rest);
		*key = pstrdup("");
	}
	else
	{
		*bucket = pnstrdup(rest, slash - rest);
		*key = pstrdup(slash + 1);
	}
	if (**bucket == '\0')
		return false;
	if (**key != '\0' && (*key)[strlen(*key) - 1] != '/')
		*key = psprintf("%s/", *key);
	return true;
}

/*
 * A path that can follow @stage/ unquoted: letters, digits and
 * "_-.=/" only, no empty or dot-dot segments.
 */
static bool
safe_stage_path(const char *p)
{
	for (const char *c = p; *c; c++)
		if (!(isalnum((unsigned char) *c) || strchr("_-.=/", *c) != NULL))
			return false;
	return strstr(p, "//") == NULL && strstr(p, "../") == NULL && p[0] != '/';
}

static int
count_segments(const char *p)
{
	int			n = 0;

	for (const char *c = p; *c; c++)
		if (*c == '/')
			n++;
	return n;					/* p is "" or ends in '/' */
}

/*
 * Hive's escaping of partition directory names (FileUtils.escapePathName,
 * also Spark's ExternalCatalogUtils): control characters 0x01-0x1F, 0x7F
 * and  " # % ' * / : = ? \ { [ ] ^  become %XX (upper-case hex; some Spark
 * versions write lower case); Hive on Windows also escapes space < > |.
 * unescapePathName turns any %XX back into its character.
 */
static bool
hive_needs_escape(unsigned char c)
{
	return (c >= 0x01 && c <= 0x1F) || c == 0x7F || strchr("\"#%'*/:=?\\{[]^", c) != NULL;
}

/* A partition key name as Hive writes it in a directory name. */
static char *
hive_escape_path_name(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const unsigned char *c = (const unsigned char *) s; *c; c++)
	{
		if (hive_needs_escape(*c))
			appendStringInfo(&buf, "%%%02X", *c);
		else
			appendStringInfoChar(&buf, (char) *c);
	}
	return buf.data;
}

/*
 * A Snowflake expression that undoes Hive's escaping of the string expr:
 * nested REPLACE(x, '%XX', CHR(n)) for every character Hive escapes (both
 * hex cases, and the Windows set), "%25" last so that an escaped "%"
 * followed by hex digits is not decoded twice.  Snowflake has no URL-decode
 * function; REPLACE and CHR are plain string functions.
 */
static char *
hive_unescape_sql(const char *expr)
{
	StringInfoData buf;
	StringInfoData tail;
	int			n = 0;

	initStringInfo(&buf);
	initStringInfo(&tail);
	for (int c = 1; c < 128; c++)
	{
		char		hex[3];

		if (c == '%' || !(hive_needs_escape((unsigned char) c) || strchr(" <>|", c)))
			continue;
		snprintf(hex, sizeof(hex), "%02X", c);
		appendStringInfo(&tail, ", '%%%s', CHR(%d))", hex, c);
		n++;
		if (hex[0] != pg_ascii_tolower(hex[0]) || hex[1] != pg_ascii_tolower(hex[1]))
		{
			appendStringInfo(&tail, ", '%%%c%c', CHR(%d))", pg_ascii_tolower(hex[0]),
							 pg_ascii_tolower(hex[1]), c);
			n++;
		}
	}
	appendStringInfoString(&tail, ", '%25', CHR(37))");
	n++;
	for (int i = 0; i < n; i++)
		appendStringInfoString(&buf, "REPLACE(");
	appendStringInfo(&buf, "%s%s", expr, tail.data);
	return buf.data;
}

/*
 * The directory layout of a table's partitions, from the locations Glue
 * reports for them (GetPartitions, every page, one page in memory at a
 * time): *hive_layout true for key=value directories, false for plain ones.
 * A table without partitions yet is taken as hive style.  Returns NULL, or
 * why the table cannot be mirrored.
 */
static char *
partition_layout(GlueClient *gc, const char *glue_db, GlueTable *t, const char *bucket,
				 const char *key, bool *hive_layout)
{
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext pagecxt = AllocSetContextCreate(CurrentMemoryContext, "sfexport glue partitions",
												  ALLOCSET_DEFAULT_SIZES);
	List	   *esc_keys = NIL;
	char	   *token = NULL;
	char	   *reason = NULL;
	bool		first = true;
	ListCell   *lc;

	*hive_layout = true;
	foreach(lc, t->partition_keys)
	{
		GlueColumn *k = (GlueColumn *) lfirst(lc);

		esc_keys = lappend(esc_keys, psprintf("%s=", hive_escape_path_name(k->name ? k->name : "")));
	}

	for (int page = 0; page < GLUE_MAX_PAGES && reason == NULL; page++)
	{
		json_t	   *body;
		json_t	   *answer;
		json_t	   *list;
		size_t		i;
		json_t	   *p;

		CHECK_FOR_INTERRUPTS();
		MemoryContextSwitchTo(pagecxt);
		body = json_tracked(json_pack("{s:s, s:s, s:i, s:b}",
									  "DatabaseName", glue_db, "TableName", t->name,
									  "MaxResults", GLUE_PAGE_SIZE, "ExcludeColumnSchema", 1));
		if (token)
			json_object_set_new(body, "NextToken", json_string(token));
		answer = glue_call(gc, "GetPartitions", body, true);
		list = answer ? json_object_get(answer, "Partitions") : NULL;
		json_array_foreach(list, i, p)
		{
			char	   *loc = jstr(json_object_get(p, "StorageDescriptor"), "Location");
			char	   *pb;
			char	   *pk;
			const char *rel;
			bool		hive;

			if (loc == NULL)
				continue;
			if (!split_s3(loc, &pb, &pk) || strcmp(pb, bucket) != 0 ||
				strncmp(pk, key, strlen(key)) != 0 ||
				count_segments(pk + strlen(key)) < list_length(t->partition_keys))
			{
				MemoryContextSwitchTo(outer);
				reason = psprintf("partition location \"%s\" is not below the table location \"s3://%s/%s\"",
								  sf_glue_shown_name(loc), sf_glue_shown_name(bucket), sf_glue_shown_name(key));
				break;
			}
			rel = pk + strlen(key);
			hive = strncmp(rel, linitial(esc_keys), strlen(linitial(esc_keys))) == 0;
			if (!first && hive != *hive_layout)
			{
				MemoryContextSwitchTo(outer);
				reason = pstrdup("partitions mix hive-style (key=value) and plain directories");
				break;
			}
			if (hive)
			{
				/* every key in its place: k1=../k2=../ */
				foreach(lc, esc_keys)
				{
					const char *k = (const char *) lfirst(lc);

					if (strncmp(rel, k, strlen(k)) != 0)
					{
						MemoryContextSwitchTo(outer);
						reason = psprintf("partition location \"%s\" does not have the partition keys in order as key=value directories",
										  sf_glue_shown_name(loc));
						break;
					}
					rel = strchr(rel, '/') + 1;
				}
				if (reason)
					break;
			}
			*hive_layout = hive;
			first = false;
		}
		MemoryContextSwitchTo(outer);
		if (token)
			pfree(token);
		token = NULL;
		if (reason == NULL && answer != NULL)
		{
			char	   *next = jstr(answer, "NextToken");

			if (next && *next)
				token = next;
		}
		MemoryContextReset(pagecxt);
		if (token == NULL)
			break;
	}
	MemoryContextDelete(pagecxt);
	if (reason == NULL && token != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("AWS Glue table \"%s\" has more than %d pages of partitions",
						sf_glue_shown_name(t->name), GLUE_MAX_PAGES)));
	return reason;
}

/*
 * The expression that reads a column of a JSON, Parquet, ORC or Avro file.
 *
 * Glue (like Hive) stores column names in lower case, while the keys in
 * the files keep their case ("userId"), and Snowflake's value:"key" is
 * case-sensitive.  Hive's readers match names case-insensitively (the
 * OpenX JSON SerDe unless its SerDe parameter case.insensitive is false;
 * Hive's JsonSerDe, ParquetHiveSerDe, OrcSerde and AvroSerDe always), so:
 *	- SerDe parameter mapping.<column> (OpenX JSON SerDe: the key in the
 *	  file for a Glue column) gives the key exactly: value:"<key>";
 *	- case.insensitive = false: the Glue name is the key, exactly;
 *	- otherwise GET_IGNORE_CASE(value, '<name>'), which matches the key in
 *	  any case as Hive does (GET_IGNORE_CASE: "similar to GET but applies
 *	  case-insensitive matching to field names").
 */
static char *
column_path(GlueTable *t, const char *name)
{
	char	   *mapkey = psprintf("mapping.%s", name);
	char	   *mapped = jstr(t->serde_params, mapkey);
	char	   *ci = jstr(t->serde_params, "case.insensitive");

	if (mapped && usable_name(mapped))
		return psprintf("value:%s", sf_quote_ident(mapped));
	if (ci && pg_strcasecmp(ci, "false") == 0)
		return psprintf("value:%s", sf_quote_ident(name));
	return psprintf("GET_IGNORE_CASE(value, %s)", sf_quote_literal(name));
}

/* The CSV field delimiter as a Snowflake string constant. */
static char *
csv_delimiter_sql(const char *delim, bool lazy_simple)
{
	if (delim == NULL || *delim == '\0')
		delim = lazy_simple ? "\001" : ",";	/* Hive LazySimpleSerDe: ^A */
	if (strlen(delim) == 1 && ((unsigned char) delim[0] < 0x20 || delim[0] == 0x7f))
		return psprintf("'\\%03o'", (unsigned char) delim[0]);	/* octal escape */
	return sf_quote_literal(delim);
}

static void
skip(GluePlan *plan, const char *fmt,...) pg_attribute_printf(2, 3);

static void
skip(GluePlan *plan, const char *fmt,...)
{
	va_list		ap;
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(ap, fmt);
		needed = appendStringInfoVA(&buf, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	plan->skip_reason = buf.data;
}

/*
 * Decide what a Glue table becomes: the CREATE OR REPLACE EXTERNAL TABLE
 * statement and its hash, or a reason to skip it.
 */
static void
plan_table(GlueClient *gc, GlueConfig *conf, const char *glue_db, GlueTable *t,
		   const char *target_db, const char *target_schema, GluePlan *plan)
{
	const char *shown_format;
	GlueFormat	fmt = table_format(t, &shown_format);
	char	   *bucket;
	char	   *key;
	GlueStage  *stage = NULL;
	char	   *relpath = NULL;
	StringInfoData sql;
	StringInfoData pby;
	List	   *seen = NIL;
	ListCell   *lc;
	int			pos = 0;
	int			depth;
	bool		hive_layout = true;
	const char *ff;

	memset(plan, 0, sizeof(*plan));
	plan->glue_table = t->name;
	if (!usable_name(t->name))
	{
		skip(plan, "the table name is empty, longer than %d bytes or has control characters",
			 GLUE_NAME_MAX);
		return;
	}
	plan->target_table = upper_name(t->name);

	if (t->table_type && (strcmp(t->table_type, "VIRTUAL_VIEW") == 0 ||
						  strcmp(t->table_type, "GOVERNED") == 0))
	{
		skip(plan, "table type %s is not supported", sf_glue_shown_name(t->table_type));
		return;
	}
	if (fmt == FMT_UNSUPPORTED)
	{
		skip(plan, "unsupported format \"%s\" (supported: csv, json, parquet, orc, avro)",
			 shown_format ? sf_glue_shown_name(shown_format) : "unknown");
		return;
	}
	if (!split_s3(t->location, &bucket, &key))
	{
		skip(plan, "location \"%s\" is not an s3:// location", sf_glue_shown_name(t->location));
		return;
	}
	/* the stage with the longest prefix that covers the location */
	foreach(lc, conf->stages)
	{
		GlueStage  *gs = (GlueStage *) lfirst(lc);

		if (strcmp(gs->bucket, bucket) == 0 &&
			strncmp(key, gs->prefix, strlen(gs->prefix)) == 0 &&
			(stage == NULL || strlen(gs->prefix) > strlen(stage->prefix)))
			stage = gs;
	}
	if (stage == NULL)
	{
		skip(plan, "no stage covers location \"%s\" (add one to the glue_stage_map option of server \"%s\")",
			 sf_glue_shown_name(t->location), conf->srv->servername);
		return;
	}
	relpath = key + strlen(stage->prefix);
	if (!safe_stage_path(relpath))
	{
		skip(plan, "location \"%s\" has characters that cannot follow a stage name (allowed: letters, digits, \"_-.=/\")",
			 sf_glue_shown_name(t->location));
		return;
	}
	if (t->columns == NIL)
	{
		skip(plan, "the table has no columns");
		return;
	}

	/* partition layout: look at where Glue says the partitions are */
	if (t->partition_keys != NIL)
	{
		char	   *why = partition_layout(gc, glue_db, t, bucket, key, &hive_layout);

		if (why)
		{
			skip(plan, "%s", why);
			return;
		}
	}

	/* the statement */
	initStringInfo(&sql);
	initStringInfo(&pby);
	appendStringInfo(&sql, "CREATE OR REPLACE EXTERNAL TABLE %s.%s.%s (",
					 sf_quote_ident(target_db), sf_quote_ident(target_schema),
					 sf_quote_ident(plan->target_table));
	foreach(lc, t->columns)
	{
		GlueColumn *c = (GlueColumn *) lfirst(lc);
		SfHiveType ht;
		char	   *error;
		char	   *colname;
		const char *type;

		pos++;
		if (!usable_name(c->name))
		{
			skip(plan, "column %d has a name that is empty, longer than %d bytes or has control characters",
				 pos, GLUE_NAME_MAX);
			return;
		}
		if (c->type == NULL || !sf_hive_parse_type(c->type, &ht, &error))
		{
			skip(plan, "column \"%s\" has a malformed type \"%s\": %s", sf_glue_shown_name(c->name),
				 sf_glue_shown_name(c->type), c->type ? error : "no type");
			return;
		}
		colname = upper_name(c->name);
		if (list_member(seen, makeString(colname)))
		{
			skip(plan, "two columns are both named \"%s\" in Snowflake", sf_glue_shown_name(colname));
			return;
		}
		seen = lappend(seen, makeString(colname));
		/* CSV holds nested values as text in Hive's own delimited form */
		type = (fmt == FMT_CSV && ht.kind != SF_HIVE_PRIMITIVE) ? "VARCHAR" : ht.snowflake;
		if (fmt == FMT_CSV)
			appendStringInfo(&sql, "%s\n  %s %s AS (value:c%d::%s)", pos > 1 ? "," : "",
							 sf_quote_ident(colname), type, pos, type);
		else
			appendStringInfo(&sql, "%s\n  %s %s AS (%s::%s)", pos > 1 ? "," : "",
							 sf_quote_ident(colname), type, column_path(t, c->name), type);
	}

	depth = count_segments(relpath);
	foreach(lc, t->partition_keys)
	{
		GlueColumn *c = (GlueColumn *) lfirst(lc);
		int			part = depth + foreach_current_index(lc) + 1;
		SfHiveType ht;
		char	   *error;
		char	   *colname;
		char	   *segment;

		if (!usable_name(c->name))
		{
			skip(plan, "partition key %d has a name that is empty, longer than %d bytes or has control characters",
				 foreach_current_index(lc) + 1, GLUE_NAME_MAX);
			return;
		}
		if (c->type == NULL || !sf_hive_parse_type(c->type, &ht, &error))
		{
			skip(plan, "partition key \"%s\" has a malformed type \"%s\": %s", sf_glue_shown_name(c->name),
				 sf_glue_shown_name(c->type), c->type ? error : "no type");
			return;
		}
		if (ht.kind != SF_HIVE_PRIMITIVE)
		{
			skip(plan, "partition key \"%s\" has the nested type \"%s\"", sf_glue_shown_name(c->name),
				 sf_glue_shown_name(c->type));
			return;
		}
		colname = upper_name(c->name);
		if (list_member(seen, makeString(colname)))
		{
			skip(plan, "two columns are both named \"%s\" in Snowflake", sf_glue_shown_name(colname));
			return;
		}
		seen = lappend(seen, makeString(colname));
		segment = psprintf("SPLIT_PART(METADATA$FILENAME, '/', %d)", part);
		if (hive_layout)
			segment = psprintf("SPLIT_PART(%s, '=', 2)", segment);
		/*
		 * key=value directories are Hive's: values that can hold characters
		 * Hive escapes are unescaped.  Plain directories were not written by
		 * Hive's escaping, and are taken as they are.
		 */
		if (hive_layout &&
			(strncmp(ht.snowflake, "VARCHAR", 7) == 0 || strncmp(ht.snowflake, "CHAR", 4) == 0 ||
			 strncmp(ht.snowflake, "TIMESTAMP", 9) == 0))
			segment = hive_unescape_sql(segment);
		appendStringInfo(&sql, ",\n  %s %s AS (%s::%s)", sf_quote_ident(colname),
						 ht.snowflake, segment, ht.snowflake);
		appendStringInfo(&pby, "%s%s", pby.len ? ", " : "", sf_quote_ident(colname));
	}
	appendStringInfoString(&sql, "\n)");
	if (pby.len > 0)
		appendStringInfo(&sql, "\nPARTITION BY (%s)", pby.data);
	appendStringInfo(&sql, "\nLOCATION = @%s/%s", stage->stage_sql, relpath);
	appendStringInfoString(&sql, "\nAUTO_REFRESH = FALSE");
	switch (fmt)
	{
		case FMT_CSV:
			ff = psprintf("TYPE = CSV FIELD_DELIMITER = %s SKIP_HEADER = %d%s",
						  csv_delimiter_sql(t->field_delim, !contains_ci(t->serde, "OpenCSVSerde")),
						  t->skip_header,
						  contains_ci(t->serde, "OpenCSVSerde") ? " FIELD_OPTIONALLY_ENCLOSED_BY = '\"'" : "");
			break;
		case FMT_JSON:
			ff = "TYPE = JSON";
			break;
		case FMT_PARQUET:
			ff = "TYPE = PARQUET";
			break;
		case FMT_ORC:
			ff = "TYPE = ORC";
			break;
		default:
			ff = "TYPE = AVRO";
			break;
	}
	appendStringInfo(&sql, "\nFILE_FORMAT = (%s)", ff);
	plan->statement = sql.data;
	plan->hash = sf_sha256_hex(sql.data, sql.len);
}

/* ---------------------------------------------------------------------
 * The sync
 * ---------------------------------------------------------------------
 */

/*
 * Run a Snowflake statement for one table.  Errors Snowflake reports for
 * the statement (SQL compilation errors, a name that exists as another kind
 * of object, ...) are caught and returned as a reason, so that one bad
 * table does not stop the others; connection, authentication and cancel
 * errors are thrown.
 */
static char *
run_table_statement(SfServerConfig *srv, SfUserConfig *usr, const char *sql)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	   *volatile reason = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		SfStatement st;

		memset(&st, 0, sizeof(st));
		st.sql = sql;
		st.query_tag = "sfexport glue_sync";
		(void) sf_snowflake_run(srv, usr, &st);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		int			cls;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		cls = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
		if (cls == ERRCODE_CONNECTION_EXCEPTION ||
			cls == ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION ||
			cls == ERRCODE_OPERATOR_INTERVENTION ||
			cls == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
			cls == ERRCODE_INSUFFICIENT_RESOURCES ||
			edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
		reason = psprintf("Snowflake refused the statement (SQLSTATE %s): %s%s%s",
						  unpack_sql_state(edata->sqlerrcode), edata->message,
						  edata->detail ? " " : "", edata->detail ? edata->detail : "");
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return reason;
}

static int
cmp_plan_names(const ListCell *a, const ListCell *b)
{
	return strcmp(((GlueTable *) lfirst(a))->name ? ((GlueTable *) lfirst(a))->name : "",
				  ((GlueTable *) lfirst(b))->name ? ((GlueTable *) lfirst(b))->name : "");
}

/*
 * The target database and schema: explicit, else <database>__<schema> from
 * the Glue database name (upper-cased), else the server's.
 */
static void
resolve_target(SfGlueSyncArgs *a, SfServerConfig *srv, char **tdb, char **tschema)
{
	const char *sep = strstr(a->glue_database, "__");

	*tdb = a->target_database;
	*tschema = a->target_schema;
	if (sep && sep != a->glue_database && sep[2] != '\0')
	{
		if (*tdb == NULL)
			*tdb = upper_name(pnstrdup(a->glue_database, sep - a->glue_database));
		if (*tschema == NULL)
			*tschema = upper_name(sep + 2);
	}
	if (*tdb == NULL)
		*tdb = srv->database;
	if (*tschema == NULL)
		*tschema = srv->schema;
	if (!usable_name(*tdb) || !usable_name(*tschema))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid target database or schema for AWS Glue database \"%s\"",
						sf_glue_shown_name(a->glue_database)),
				 errdetail("Names must be 1 to %d bytes without control characters.", GLUE_NAME_MAX)));
}

/*
 * The sync itself; emits one row per Glue table (and per table gone from
 * Glue).  Also run by the worker's periodic sync (glue_periodic.c).
 */
void
sf_glue_sync_run(SfGlueSyncArgs *a, SfGlueEmitFn emit, void *emit_arg)
{
	GlueConfig *conf = glue_config(a->serverid);
	SfUserConfig *usr = sf_get_user_config(a->serverid, a->userid);
	GlueClient *gc = glue_client(conf, usr);
	char	   *tdb;
	char	   *tschema;
	List	   *tables;
	List	   *state;
	ListCell   *lc;

	resolve_target(a, conf->srv, &tdb, &tschema);
	tables = glue_list_tables(gc, a->glue_database, a->pattern);
	list_sort(tables, cmp_plan_names);
	state = sf_glue_state_load(a->serverid, a->glue_database, tdb, tschema);

	foreach(lc, tables)
	{
		GlueTable  *t = (GlueTable *) lfirst(lc);
		GluePlan	plan;
		SfGlueState  *prev = NULL;
		ListCell   *sc;
		const char *action;
		char	   *reason;

		CHECK_FOR_INTERRUPTS();
		plan_table(gc, conf, a->glue_database, t, tdb, tschema, &plan);
		foreach(sc, state)
		{
			SfGlueState  *s = (SfGlueState *) lfirst(sc);

			if (t->name && strcmp(s->glue_table, t->name) == 0)
			{
				prev = s;
				s->seen = true;
			}
		}
		if (plan.skip_reason)
		{
			emit(emit_arg, t->name, "skipped", plan.skip_reason, NULL);
			continue;
		}
		if (prev && strcmp(prev->hash, plan.hash) == 0)
		{
			emit(emit_arg, t->name, "unchanged", NULL, NULL);
			continue;
		}
		action = prev ? "replaced" : "created";
		if (a->dry_run)
		{
			emit(emit_arg, t->name, action, NULL, plan.statement);
			continue;
		}
		reason = run_table_statement(conf->srv, usr, plan.statement);
		if (reason)
		{
			emit(emit_arg, t->name, "skipped", reason, plan.statement);
			continue;
		}
		sf_glue_state_save(a->serverid, a->glue_database, tdb, tschema, plan.glue_table,
						   plan.target_table, plan.hash);
		emit(emit_arg, t->name, action, NULL, plan.statement);
	}

	/* tables we created earlier that Glue no longer has */
	foreach(lc, state)
	{
		SfGlueState  *s = (SfGlueState *) lfirst(lc);
		char	   *sql;
		char	   *reason;

		if (s->seen ||
			!DatumGetBool(DirectFunctionCall2Coll(textlike, C_COLLATION_OID,
												  CStringGetTextDatum(s->glue_table),
												  CStringGetTextDatum(a->pattern))))
			continue;
		sql = psprintf("DROP EXTERNAL TABLE IF EXISTS %s.%s.%s", sf_quote_ident(tdb),
					   sf_quote_ident(tschema), sf_quote_ident(s->target_table));
		if (!a->drop_missing)
		{
			emit(emit_arg, s->glue_table, "skipped",
				 "the table is no longer in AWS Glue; pass drop_missing => true to drop its external table",
				 NULL);
			continue;
		}
		if (a->dry_run)
		{
			emit(emit_arg, s->glue_table, "dropped", NULL, sql);
			continue;
		}
		reason = run_table_statement(conf->srv, usr, sql);
		if (reason)
		{
			emit(emit_arg, s->glue_table, "skipped", reason, sql);
			continue;
		}
		sf_glue_state_delete(a->serverid, a->glue_database, tdb, tschema, s->glue_table);
		emit(emit_arg, s->glue_table, "dropped", NULL, sql);
	}
}

/* ---------------------------------------------------------------------
 * SQL: sfexport.glue_sync(...)
 * ---------------------------------------------------------------------
 */

static void
emit_tuple(void *arg, const char *glue_table, const char *action,
		   const char *reason, const char *statement)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	values[0] = CStringGetTextDatum(glue_table ? glue_table : "");
	values[1] = CStringGetTextDatum(action);
	nulls[2] = reason == NULL;
	values[2] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	nulls[3] = statement == NULL;
	values[3] = statement ? CStringGetTextDatum(statement) : (Datum) 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

PG_FUNCTION_INFO_V1(sfexport_glue_sync);

/*
 * sfexport.glue_sync(server name, glue_database text, table_pattern text,
 *					  dry_run boolean, drop_missing boolean,
 *					  target_database text, target_schema text)
 *	→ SETOF (glue_table, action, reason, statement)
 *
 * Only the server's owner (or a superuser) may run it: it creates and drops
 * Snowflake objects with the server's credentials.
 */
Datum
sfexport_glue_sync(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SfGlueSyncArgs a;
	ForeignServer *server;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("server, glue_database, table_pattern, dry_run and drop_missing must not be null")));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	server = GetForeignServerByName(NameStr(*PG_GETARG_NAME(0)), false);
	if (!object_ownercheck(ForeignServerRelationId, server->serverid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to run glue_sync on server \"%s\"", server->servername),
				 errdetail("glue_sync creates and drops Snowflake objects with the server's settings."),
				 errhint("Only the owner of the server or a superuser may run it.")));
	if (strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "sfexport") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not an sfexport server", server->servername)));

	memset(&a, 0, sizeof(a));
	a.serverid = server->serverid;
	a.userid = GetUserId();
	a.glue_database = text_to_cstring(PG_GETARG_TEXT_PP(1));
	a.pattern = text_to_cstring(PG_GETARG_TEXT_PP(2));
	a.dry_run = PG_GETARG_BOOL(3);
	a.drop_missing = PG_GETARG_BOOL(4);
	a.target_database = PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5));
	a.target_schema = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	if (!usable_name(a.glue_database))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid AWS Glue database name"),
				 errdetail("Names are 1 to %d bytes without control characters.", GLUE_NAME_MAX)));

	sf_glue_sync_run(&a, emit_tuple, rsinfo);
	return (Datum) 0;
}
