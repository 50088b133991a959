/*-------------------------------------------------------------------------
 *
 * snowpipe.c
 *		Snowpipe REST API client: pipe names and definitions, insertFiles,
 *		insertReport, loadHistoryScan.
 *
 * Snowflake documentation, "Snowpipe REST API"
 * (https://docs.snowflake.com/en/user-guide/data-load-snowpipe-rest-apis):
 *
 *	POST /v1/data/pipes/<db.schema.pipe>/insertFiles?requestId=<uuid>
 *		body {"files": [{"path": "<path relative to the stage location>"}]}
 *		(at most 5000 files per request) -> 200 {"requestId",
 *		"responseCode": "SUCCESS"}: Snowflake has recorded the files, it has
 *		not necessarily loaded them yet.
 *	GET  /v1/data/pipes/<pipe>/insertReport?requestId=&beginMark=
 *		-> {"pipe", "completeResult", "nextBeginMark", "files": [{"path",
 *		"status": LOADED | LOAD_IN_PROGRESS | LOAD_FAILED | PARTIALLY_LOADED,
 *		"rowsParsed", "rowsInserted", "errorsSeen", "firstError",
 *		"firstErrorLineNum", "firstErrorColumnName", ...}]}.  Events are kept
 *		about 10 minutes (at most 10,000).
 *	GET  /v1/data/pipes/<pipe>/loadHistoryScan?startTimeInclusive=<ISO-8601>
 *		&endTimeExclusive=<ISO-8601>&requestId= -> the same file entries for
 *		older loads (the pipe's load history: 14 days).
 *
 * Authentication: the key-pair JWT of the SQL API as a Bearer token
 * ("Authentication" in the same page; sf_auth_token()).  The pipe name in
 * the URL is case-sensitive and fully qualified.
 *
 * Exactly-once rests on the pipe's load history ("Load history" in
 * "Introduction to Snowpipe",
 * https://docs.snowflake.com/en/user-guide/data-load-snowpipe-intro#load-history):
 * Snowpipe keeps, per pipe, the path and name of each file it loaded and
 * does not load a file of the same name again, even if modified, for 14
 * days.  So submitting a file again (after a crash between insertFiles and
 * recording it, or when a file was never reported) cannot duplicate it.
 * That history belongs to the pipe, not to the table (COPY's load metadata
 * is the table's): a file therefore stays with the path (copy or snowpipe)
 * of its first attempt (load.c), and pipes are never replaced
 * (CREATE PIPE IF NOT EXISTS; recreating a pipe drops its history).
 *
 * One pipe per target table and record shape, since a pipe's COPY names its
 * columns: <table>_SFEXPORT_PIPE_<shape as 16 hex digits>, in the target's
 * database and schema.  A new shape gets a new pipe; the old one keeps its
 * history and still serves files of the old shape.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "sf_jansson.h"

#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#define SNOWPIPE_ATTEMPTS 6

/* Split a target "DB"."SCHEMA"."TABLE" (sf_target_name) into its names. */
static void
split_target(const char *target, char **parts)
{
	const char *p = target;

	for (int i = 0; i < 3; i++)
	{
		StringInfoData s;

		if (*p != '"')
			goto bad;
		p++;
		initStringInfo(&s);
		for (;;)
		{
			if (*p == '\0')
				goto bad;
			if (*p == '"' && p[1] == '"')
			{
				appendStringInfoChar(&s, '"');
				p += 2;
				continue;
			}
			if (*p == '"')
			{
				p++;
				break;
			}
			appendStringInfoChar(&s, *p++);
		}
		parts[i] = s.data;
		if (i < 2)
		{
			if (*p != '.')
				goto bad;
			p++;
		}
	}
	if (*p == '\0')
		return;
bad:
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("malformed Snowflake target name %s", target)));
}

static char *
pipe_object_name(const char *table, int64 shape)
{
	return psprintf("%s_SFEXPORT_PIPE_%016llX", table, (unsigned long long) shape);
}

/* The pipe of a target and shape, quoted for SQL. */
char *
sf_pipe_sql_name(const char *target, int64 shape)
{
	char	   *parts[3];

	split_target(target, parts);
	return psprintf("%s.%s.%s", sf_quote_ident(parts[0]), sf_quote_ident(parts[1]),
					sf_quote_ident(pipe_object_name(parts[2], shape)));
}

/* A part of a REST pipe name: as is when plain, else double-quoted. */
static void
append_rest_part(StringInfo s, const char *name)
{
	bool		plain = *name != '\0';

	for (const char *c = name; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
			  (*c >= '0' && *c <= '9') || *c == '_' || *c == '$'))
			plain = false;
	if (plain)
		appendStringInfoString(s, name);
	else
	{
		appendStringInfoChar(s, '"');
		for (const char *c = name; *c; c++)
		{
			if (*c == '"')
				appendStringInfoChar(s, '"');
			appendStringInfoChar(s, *c);
		}
		appendStringInfoChar(s, '"');
	}
}

/* The pipe of a target and shape as the REST API names it: db.schema.pipe. */
char *
sf_pipe_rest_name(const char *target, int64 shape)
{
	char	   *parts[3];
	StringInfoData s;

	split_target(target, parts);
	initStringInfo(&s);
	append_rest_part(&s, parts[0]);
	appendStringInfoChar(&s, '.');
	append_rest_part(&s, parts[1]);
	appendStringInfoChar(&s, '.');
	append_rest_part(&s, pipe_object_name(parts[2], shape));
	return s.data;
}

/*
 * CREATE PIPE IF NOT EXISTS <pipe> AS <the COPY of load.c without FILES>.
 * The COPY is the one COPY mode runs (same transformation, file format and
 * ON_ERROR = SKIP_FILE), so both modes load a file the same way.
 */
char *
sf_pipe_statement(SfServerConfig *srv, const char *target, int64 shape,
				  ArrayType *columns, ArrayType *types)
{
	return psprintf("CREATE PIPE IF NOT EXISTS %s AS %s",
					sf_pipe_sql_name(target, shape),
					sf_copy_statement(srv, target, columns, types, NIL));
}

/* ---------------------------------------------------------------------
 * REST calls
 * ---------------------------------------------------------------------
 */
typedef struct PipeCall
{
	SfServerConfig *srv;
	SfUserConfig *usr;
	const char *pipe;
	const char *what;			/* insertFiles, insertReport, loadHistoryScan */
} PipeCall;

static void
make_uuid(char *out)
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

/* Headers with a current token; run before every attempt. */
static void
pipe_prepare(SfHttpRequest *req, int attempt, void *arg)
{
	PipeCall   *c = (PipeCall *) arg;
	List	   *h = NIL;

	h = lappend(h, psprintf("Authorization: Bearer %s", sf_auth_token(c->srv, c->usr, false)));
	h = lappend(h, psprintf("X-Snowflake-Authorization-Token-Type: %s", c->usr->token_type));
	h = lappend(h, pstrdup("Accept: application/json"));
	if (req->body)
		h = lappend(h, pstrdup("Content-Type: application/json"));
	req->headers = h;
}

/* One REST call; returns the parsed JSON object of a 200 answer. */
static json_t *
pipe_call(PipeCall *c, const char *method, const char *query, const char *body)
{
	SfHttpRequest req;
	SfHttpResponse *resp;
	char		uuid[37];
	char	   *base;
	json_t	   *root;
	json_error_t jerr;

	make_uuid(uuid);
	base = psprintf("%s/v1/data/pipes/%s/%s", c->srv->url,
					sf_http_url_encode(c->pipe, false), c->what);
	sf_http_init_request(&req, method, psprintf("%s?requestId=%s%s%s", base, uuid,
												query ? "&" : "", query ? query : ""));
	req.log_url = base;
	req.connect_timeout_ms = c->srv->connect_timeout_ms;
	req.timeout_ms = c->srv->request_timeout_ms;
	req.ca_file = c->srv->ca_file;
	req.max_attempts = SNOWPIPE_ATTEMPTS;
	if (body)
	{
		req.body = body;
		req.body_len = strlen(body);
	}
	req.prepare = pipe_prepare;
	req.prepare_arg = c;
	resp = sf_http_request(&req);
	if (resp->status == 401 && strcmp(c->usr->token_type, "KEYPAIR_JWT") == 0)
	{
		(void) sf_auth_token(c->srv, c->usr, true);
		resp = sf_http_request(&req);
	}
	root = resp->body.len > 0 ? json_loadb(resp->body.data, resp->body.len, 0, &jerr) : NULL;
	if (resp->status != 200)
	{
		json_t	   *code = root ? json_object_get(root, "code") : NULL;
		json_t	   *msg = root ? json_object_get(root, "message") : NULL;
		char	   *detail = json_is_string(msg)
			? psprintf("Snowflake error %s: %s",
					   json_is_string(code) ? sf_remote_text(json_string_value(code)) : "unknown",
					   sf_remote_text(json_string_value(msg)))
			: NULL;

		if (root)
			json_decref(root);
		ereport(ERROR,
				(errcode(resp->status == 401 ? ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION :
						 resp->status == 404 ? ERRCODE_UNDEFINED_OBJECT :
						 ERRCODE_FDW_ERROR),
				 errmsg("Snowpipe %s for pipe %s failed: HTTP status %ld",
						c->what, c->pipe, resp->status),
				 detail ? errdetail_internal("%s", detail) : 0,
				 resp->status == 404 ?
				 errhint("Run sfexport.setup_table() to create the pipe.") : 0));
	}
	if (root == NULL || !json_is_object(root))
	{
		if (root)
			json_decref(root);
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("invalid response from the Snowpipe REST API (%s)", c->what)));
	}
	return root;
}

/* Submit files (paths relative to the stage location) to a pipe. */
void
sf_snowpipe_insert_files(SfServerConfig *srv, SfUserConfig *usr, const char *pipe,
						 List *paths)
{
	PipeCall	c = {srv, usr, pipe, "insertFiles"};
	json_t	   *files = json_array();
	json_t	   *doc;
	json_t	   *root;
	json_t	   *code;
	char	   *body;
	char	   *copy;
	ListCell   *lc;

	foreach(lc, paths)
		json_array_append_new(files, json_pack("{s:s}", "path", (const char *) lfirst(lc)));
	doc = json_pack("{s:o}", "files", files);
	body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	if (body == NULL)
		elog(ERROR, "out of memory");
	copy = pstrdup(body);
	free(body);

	root = pipe_call(&c, "POST", NULL, copy);
	code = json_object_get(root, "responseCode");
	if (!json_is_string(code) || strcmp(json_string_value(code), "SUCCESS") != 0)
	{
		char	   *got = json_is_string(code) ? pstrdup(json_string_value(code)) : "none";

		json_decref(root);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("Snowpipe did not accept the files for pipe %s", pipe),
				 errdetail_internal("responseCode: %s", got)));
	}
	json_decref(root);
}

static char *
member_text(json_t *obj, const char *name)
{
	json_t	   *v = json_object_get(obj, name);

	if (json_is_string(v))
		return sf_remote_text(json_string_value(v));
	if (json_is_integer(v))
		return psprintf("%lld", (long long) json_integer_value(v));
	return NULL;
}

/* The file entries of a report or history answer. */
static List *
read_files(json_t *root)
{
	json_t	   *files = json_object_get(root, "files");
	List	   *out = NIL;

	if (!json_is_array(files))
		return NIL;
	for (size_t i = 0; i < json_array_size(files); i++)
	{
		json_t	   *f = json_array_get(files, i);
		SfPipeFileReport *r;

		if (!json_is_object(f) || !json_is_string(json_object_get(f, "path")))
			continue;
		r = palloc0(sizeof(SfPipeFileReport));
		r->path = member_text(f, "path");
		r->status = member_text(f, "status");
		r->rows_parsed = member_text(f, "rowsParsed");
		r->rows_inserted = member_text(f, "rowsInserted");
		r->errors_seen = member_text(f, "errorsSeen");
		r->first_error = member_text(f, "firstError");
		r->first_error_line = member_text(f, "firstErrorLineNum");
		r->first_error_column = member_text(f, "firstErrorColumnName");
		out = lappend(out, r);
	}
	return out;
}

/*
 * Load events of a pipe since *begin_mark (NULL: the last ~10 minutes);
 * *begin_mark is set to nextBeginMark.
 */
List *
sf_snowpipe_insert_report(SfServerConfig *srv, SfUserConfig *usr, const char *pipe,
						  char **begin_mark)
{
	PipeCall	c = {srv, usr, pipe, "insertReport"};
	json_t	   *root;
	List	   *files;
	char	   *next;

	root = pipe_call(&c, "GET", *begin_mark ?
					 psprintf("beginMark=%s", sf_http_url_encode(*begin_mark, false)) : NULL,
					 NULL);
	files = read_files(root);
	next = member_text(root, "nextBeginMark");
	if (next)
		*begin_mark = next;
	json_decref(root);
	return files;
}

static char *
iso8601(TimestampTz t)
{
	time_t		tt = timestamptz_to_time_t(t);
	struct tm	tm;
	char		buf[32];

	gmtime_r(&tt, &tm);
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return pstrdup(buf);
}

/* The pipe's load history between two instants. */
List *
sf_snowpipe_load_history(SfServerConfig *srv, SfUserConfig *usr, const char *pipe,
						 TimestampTz start, TimestampTz end)
{
	PipeCall	c = {srv, usr, pipe, "loadHistoryScan"};
	json_t	   *root;
	List	   *files;

	root = pipe_call(&c, "GET",
					 psprintf("startTimeInclusive=%s&endTimeExclusive=%s",
							  sf_http_url_encode(iso8601(start), false),
							  sf_http_url_encode(iso8601(end), false)),
					 NULL);
	files = read_files(root);
	json_decref(root);
	return files;
}
