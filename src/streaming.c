/*-------------------------------------------------------------------------
 *
 * streaming.c
 *		Snowpipe Streaming REST API client (high-performance architecture).
 *
 * Snowflake documentation, "Snowpipe Streaming REST API endpoints"
 * (https://docs.snowflake.com/en/user-guide/snowpipe-streaming/snowpipe-streaming-high-performance-rest-api)
 * and the cURL tutorial (.../snowpipe-streaming-high-performance-rest-tutorial);
 * docs/streaming.md has every fact with its source and what is left open.
 *
 *	GET  <account host>/v2/streaming/hostname -> the ingest host
 *	POST <account host>/oauth/token  grant_type=urn:ietf:params:oauth:
 *		grant-type:jwt-bearer&scope=<ingest host> -> the scoped token
 *	PUT  <ingest>/v2/streaming/databases/D/schemas/S/pipes/P/channels/C
 *		-> {"next_continuation_token", "channel_status": {...}}
 *	POST <ingest>/v2/streaming/data/databases/D/schemas/S/pipes/P/channels/C/rows
 *		?continuationToken=&startOffsetToken=&endOffsetToken= (NDJSON)
 *		-> {"next_continuation_token"}
 *	POST <ingest>/v2/streaming/databases/D/schemas/S/pipes/P:bulk-channel-status
 *		{"channel_names": [C]} -> {"channel_statuses": {C: {...}}}
 *
 * Both replies of the account host are read as a JSON object, a JSON
 * string or bare text: the reference shows {"hostname"} / {"token"}, the
 * tutorial uses the body as it is (docs/streaming.md 2.1, 2.2).  The
 * tutorial's rule: underscores in the returned host become dashes, before
 * the token exchange.  The returned host is where the scoped token goes,
 * so it must be a plain host[:port]; it is reached with the scheme of the
 * server's url.
 *
 * Credentials: the mapping's credential (key-pair JWT, OAuth token or
 * PAT) is exchanged for a scoped token (cached per server and user for 30
 * minutes, its lifetime being undocumented; a 401 drops it).  The exchange
 * is documented for JWTs only: an OAuth token or PAT the account host
 * refuses to exchange (4xx) is sent to the ingest host as it is
 * (docs/streaming.md sections 9 and 10).
 *
 * Errors (section 6): 429 and 5xx are retried by sf_http_request with
 * backoff and Retry-After; an append that still fails is "throttled" (429)
 * or "reopen" (5xx, 408, 409, 410, a stale or invalid sequencer): its
 * outcome is unknown, and only reopening the channel tells what Snowflake
 * committed.  Other statuses raise an error with Snowflake's code and
 * message (errdetail), never a header, token or row.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "sf_jansson.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "http.h"
#include "jwt.h"
#include "sigv4.h"
#include "snowflake.h"
#include "streaming.h"

#define STREAM_ATTEMPTS 4
#define SCOPED_TOKEN_REUSE_MS (30 * 60 * 1000)

/* ---------------------------------------------------------------------
 * Ingest host and scoped token, per server and user (TopMemoryContext)
 * ---------------------------------------------------------------------
 */
typedef struct StreamHost
{
	Oid			serverid;
	Oid			userid;
	char	   *config;			/* what it was found with (config_key) */
	char	   *base;			/* scheme://ingest-host */
	char	   *host;
	char	   *token;			/* scoped token, NULL = none yet */
	TimestampTz token_until;
	bool		no_exchange;	/* OAuth/PAT the account host would not
								 * exchange: sent as it is */
	struct StreamHost *next;
} StreamHost;

static StreamHost *stream_hosts = NULL;

/* Forget every ingest host and token (e.g. after a 410). */
void
sf_stream_forget_hosts(void)
{
	while (stream_hosts)
	{
		StreamHost *h = stream_hosts;

		stream_hosts = h->next;
		if (h->token)
		{
			explicit_bzero(h->token, strlen(h->token));
			pfree(h->token);
		}
		pfree(h->config);
		pfree(h->base);
		pfree(h->host);
		pfree(h);
	}
}

/* A reply that is {"key": "v"}, "v" or bare v; NULL if none of these. */
static char *
reply_text(SfHttpResponse *resp, const char *key)
{
	json_error_t jerr;
	json_t	   *root;
	char	   *out = NULL;
	char	   *text;
	int			len;

	text = pnstrdup(resp->body.data, resp->body.len);
	len = strlen(text);
	while (len > 0 && isspace((unsigned char) text[len - 1]))
		text[--len] = '\0';
	while (*text && isspace((unsigned char) *text))
		text++;
	root = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (root)
	{
		json_t	   *v = json_is_object(root) ? json_object_get(root, key) : root;

		if (json_is_string(v))
			out = pstrdup(json_string_value(v));
		json_decref(root);
		return out;
	}
	return *text ? text : NULL;
}

/* Snowflake's {"code", "message"} of an error reply, for errdetail. */
static char *
error_detail(SfHttpResponse *resp, char **code_out)
{
	json_error_t jerr;
	json_t	   *root = resp->body.len > 0 ?
		json_loadb(resp->body.data, resp->body.len, 0, &jerr) : NULL;
	char	   *detail = NULL;

	*code_out = NULL;
	if (root && json_is_object(root))
	{
		json_t	   *code = json_object_get(root, "code");
		json_t	   *msg = json_object_get(root, "message");

		if (!json_is_string(code))
			code = json_object_get(root, "error");
		if (json_is_string(code))
			*code_out = pstrdup(json_string_value(code));
		detail = psprintf("Snowflake error %s: %s",
						  *code_out ? sf_remote_text(*code_out) : "unknown",
						  json_is_string(msg) ? sf_remote_text(json_string_value(msg)) : "");
	}
	if (root)
		json_decref(root);
	return detail;
}

static void
report_failure(SfHttpResponse *resp, const char *what, const char *where)
{
	char	   *code;
	char	   *detail = error_detail(resp, &code);

	ereport(ERROR,
			(errcode(resp->status == 401 ? ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION :
					 resp->status == 403 ? ERRCODE_INSUFFICIENT_PRIVILEGE :
					 resp->status == 404 ? ERRCODE_UNDEFINED_OBJECT :
					 ERRCODE_FDW_ERROR),
			 errmsg("Snowpipe Streaming %s for %s failed: HTTP status %ld",
					what, where, resp->status),
			 detail ? errdetail_internal("%s", detail) :
			 errdetail("The reply carried no Snowflake error code."),
			 resp->status == 404 ?
			 errhint("Check the table's database, schema and streaming_pipe options: the pipe must be a streaming pipe, or the table's default pipe <TABLE>-STREAMING.") :
			 resp->status == 401 || resp->status == 403 ?
			 errhint("Check the user mapping's credentials and that the role may INSERT into the table (and OPERATE a named pipe).") :
			 errhint("The worker retries later; rows stay in sfexport.stream_batches.")));
}

/* A host name Snowflake handed back: letters, digits, '.', '-', ':port'. */
static bool
plain_host(const char *h)
{
	if (*h == '\0' || strlen(h) > 255)
		return false;
	for (const char *c = h; *c; c++)
		if (!(isalnum((unsigned char) *c) || *c == '.' || *c == '-' || *c == ':'))
			return false;
	return true;
}

static List *
account_headers(SfServerConfig *srv, SfUserConfig *usr, const char *content_type)
{
	List	   *h = sf_snowflake_headers(srv, usr, false);

	if (content_type)
		h = lappend(h, psprintf("Content-Type: %s", content_type));
	return h;
}

static SfHttpResponse *
account_call(SfServerConfig *srv, SfUserConfig *usr, const char *method,
			 const char *path, const char *body, const char *content_type)
{
	SfHttpRequest req;
	SfHttpResponse *resp;
	char	   *url = psprintf("%s%s", srv->url, path);

	sf_http_init_request(&req, method, url);
	req.log_url = url;
	sf_http_server_settings(&req, srv);
	req.max_attempts = STREAM_ATTEMPTS;
	req.headers = account_headers(srv, usr, content_type);
	if (body)
	{
		req.body = body;
		req.body_len = strlen(body);
	}
	resp = sf_http_request(&req);
	if (resp->status == 401 && strcmp(usr->token_type, "KEYPAIR_JWT") == 0)
	{
		(void) sf_auth_token(srv, usr, true);
		req.headers = account_headers(srv, usr, content_type);
		resp = sf_http_request(&req);
	}
	return resp;
}

/*
 * What a cached ingest host and scoped token were obtained with: the
 * server's url and account and the mapping's credentials, as a SHA-256 (no
 * secret in clear).  After ALTER SERVER ... url or a changed mapping the
 * old host and token are not used again: rows go where the server now
 * points, with the credentials it now has (docs/security-review.md).
 */
static char *
config_key(SfServerConfig *srv, SfUserConfig *usr)
{
	StringInfoData buf;
	char	   *hash;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s\n%s\n%s\n%s\n", srv->url ? srv->url : "",
					 srv->account ? srv->account : "", usr->user ? usr->user : "",
					 usr->token_type ? usr->token_type : "");
	if (usr->token)
		appendStringInfoString(&buf, usr->token);
	appendStringInfoChar(&buf, '\n');
	if (usr->private_key)
		appendStringInfoString(&buf, usr->private_key);
	hash = sf_sha256_hex(buf.data, buf.len);
	explicit_bzero(buf.data, buf.len);
	pfree(buf.data);
	return hash;
}

static void
drop_host(StreamHost *gone)
{
	StreamHost **pp = &stream_hosts;

	while (*pp && *pp != gone)
		pp = &(*pp)->next;
	if (*pp)
		*pp = gone->next;
	if (gone->token)
	{
		explicit_bzero(gone->token, strlen(gone->token));
		pfree(gone->token);
	}
	pfree(gone->config);
	pfree(gone->base);
	pfree(gone->host);
	pfree(gone);
}

/* The ingest host of a server (discovered once) with a valid scoped token. */
static StreamHost *
stream_host(SfServerConfig *srv, SfUserConfig *usr)
{
	StreamHost *h;
	SfHttpResponse *resp;
	char	   *host;
	const char *scheme_end;
	MemoryContext old;
	char	   *config = config_key(srv, usr);

	for (h = stream_hosts; h; h = h->next)
		if (h->serverid == srv->serverid && h->userid == usr->userid)
			break;
	if (h != NULL && strcmp(h->config, config) != 0)
	{
		drop_host(h);
		h = NULL;
	}
	if (h == NULL)
	{
		resp = account_call(srv, usr, "GET", "/v2/streaming/hostname", NULL, NULL);
		if (resp->status != 200)
			report_failure(resp, "host discovery", srv->servername);
		host = reply_text(resp, "hostname");
		if (host == NULL || !plain_host(host))
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("invalid ingest host from Snowpipe Streaming host discovery for server \"%s\"",
							srv->servername),
					 errdetail("The reply is not a host name (letters, digits, dots, dashes and a port)."),
					 errhint("Check the server's url option.")));
		/* the tutorial: underscores of the account name become dashes */
		for (char *c = host; *c; c++)
			if (*c == '_')
				*c = '-';
		scheme_end = strstr(srv->url, "://");
		old = MemoryContextSwitchTo(TopMemoryContext);
		h = palloc0(sizeof(StreamHost));
		h->serverid = srv->serverid;
		h->userid = usr->userid;
		h->config = pstrdup(config);
		h->host = pstrdup(host);
		h->base = psprintf("%.*s://%s", scheme_end ? (int) (scheme_end - srv->url) : 5,
						   scheme_end ? srv->url : "https", host);
		h->next = stream_hosts;
		stream_hosts = h;
		MemoryContextSwitchTo(old);
	}

	if (!h->no_exchange &&
		(h->token == NULL || GetCurrentTimestamp() >= h->token_until))
	{
		bool		jwt = strcmp(usr->token_type, "KEYPAIR_JWT") == 0;

		char	   *body;
		char	   *token;

		body = psprintf("grant_type=%s&scope=%s",
						sf_http_url_encode("urn:ietf:params:oauth:grant-type:jwt-bearer", false),
						sf_http_url_encode(h->host, false));
		resp = account_call(srv, usr, "POST", "/oauth/token", body,
							"application/x-www-form-urlencoded");

		/*
		 * The exchange is documented for key-pair JWTs.  An OAuth token or
		 * a PAT that cannot be exchanged is sent to the ingest host as it
		 * is (docs/streaming.md, section 10).
		 */
		if (resp->status != 200 && !jwt && resp->status >= 400 && resp->status < 500)
		{
			h->no_exchange = true;
			return h;
		}
		if (resp->status != 200)
			report_failure(resp, "scoped token exchange", srv->servername);
		token = reply_text(resp, "token");
		if (token == NULL || !sf_http_header_value_ok(token))
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("invalid scoped token from Snowflake for server \"%s\"", srv->servername),
					 errdetail("The reply of the token exchange holds no usable token."),
					 errhint("Check the server's url option.")));
		if (h->token)
		{
			explicit_bzero(h->token, strlen(h->token));
			pfree(h->token);
		}
		h->token = MemoryContextStrdup(TopMemoryContext, token);
		explicit_bzero(token, strlen(token));
		/* the lifetime is not documented (observed: an hour); a 401 renews */
		h->token_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													 SCOPED_TOKEN_REUSE_MS);
	}
	return h;
}

/* Headers for the ingest host. */
static List *
ingest_headers(SfServerConfig *srv, SfUserConfig *usr, StreamHost *h,
			   const char *content_type, const char *content_encoding)
{
	List	   *l = NIL;

	if (h->token)
		l = lappend(l, psprintf("Authorization: Bearer %s", h->token));
	else
		l = sf_snowflake_headers(srv, usr, false);
	l = lappend(l, pstrdup("Accept: application/json"));
	if (content_type)
		l = lappend(l, psprintf("Content-Type: %s", content_type));
	/* the reference's request headers: gzip or zstd, compressed by us */
	if (content_encoding)
		l = lappend(l, psprintf("Content-Encoding: %s", content_encoding));
	return l;
}

/*
 * One request to the ingest host; a 401 drops the scoped token and tries
 * once more with a new one.
 */
static SfHttpResponse *
ingest_call(SfServerConfig *srv, SfUserConfig *usr, const char *method,
			const char *path, const char *query, const char *body, size_t len,
			const char *content_type, const char *content_encoding, int attempts)
{
	SfHttpRequest req;
	SfHttpResponse *resp;
	StreamHost *h = stream_host(srv, usr);
	char		uuid[37];
	char	   *base = psprintf("%s%s", h->base, path);

	sf_snowflake_request_id(uuid);
	sf_http_init_request(&req, method, psprintf("%s?requestId=%s%s%s", base, uuid,
												query ? "&" : "", query ? query : ""));
	req.log_url = base;
	sf_http_server_settings(&req, srv);
	req.max_attempts = attempts;
	req.headers = ingest_headers(srv, usr, h, content_type, content_encoding);
	req.body = body;
	req.body_len = len;
	resp = sf_http_request(&req);
	if (resp->status == 401)
	{
		if (h->token)
			h->token_until = 0;
		else
			(void) sf_auth_token(srv, usr, true);
		h = stream_host(srv, usr);
		req.headers = ingest_headers(srv, usr, h, content_type, content_encoding);
		resp = sf_http_request(&req);
	}
	return resp;
}

static char *
channel_path(const SfStreamChannel *ch, bool data)
{
	return psprintf("/v2/streaming/%sdatabases/%s/schemas/%s/pipes/%s/channels/%s",
					data ? "data/" : "",
					sf_http_url_encode(ch->database, false),
					sf_http_url_encode(ch->schema, false),
					sf_http_url_encode(ch->pipe, false),
					sf_http_url_encode(ch->channel, false));
}

static char *
channel_label(const SfStreamChannel *ch)
{
	return psprintf("channel %s of pipe %s.%s.%s", ch->channel, ch->database,
					ch->schema, ch->pipe);
}

static int64
member_int(json_t *obj, const char *name)
{
	json_t	   *v = json_object_get(obj, name);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

static char *
member_str(json_t *obj, const char *name)
{
	json_t	   *v = json_object_get(obj, name);

	if (json_is_string(v))
		return sf_remote_text(json_string_value(v));
	if (json_is_integer(v))
		return psprintf("%lld", (long long) json_integer_value(v));
	return NULL;
}

/* A channel status object of either reply. */
static void
read_status(json_t *s, SfStreamStatus *st)
{
	memset(st, 0, sizeof(*st));
	if (!json_is_object(s))
		return;
	st->found = true;
	st->status_code = member_str(s, "channel_status_code");
	/* SUCCESS (error-handling page) or ACTIVE (the reference's example) */
	st->valid = st->status_code == NULL ||
		strcmp(st->status_code, "SUCCESS") == 0 || strcmp(st->status_code, "ACTIVE") == 0;
	st->committed_token = member_str(s, "last_committed_offset_token");
	st->rows_inserted = member_int(s, "rows_inserted");
	/* rows_error_count in the open reply; the bulk table says rows_errors */
	st->rows_errors = json_object_get(s, "rows_error_count") ?
		member_int(s, "rows_error_count") : member_int(s, "rows_errors");
	st->last_error_offset = member_str(s, "last_error_offset_upper_bound");
	st->last_error_message = member_str(s, "last_error_message");
}

static json_t *
reply_object(SfHttpResponse *resp, const char *what)
{
	json_error_t jerr;
	json_t	   *root = json_loadb(resp->body.data, resp->body.len, 0, &jerr);

	if (root == NULL || !json_is_object(root))
	{
		if (root)
			json_decref(root);
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("invalid reply from the Snowpipe Streaming REST API (%s)", what),
				 errdetail("The reply is not a JSON object."),
				 errhint("Check the server's url option.")));
	}
	return sf_json_tracked(root);
}

/*
 * Open (or reopen) a channel: returns its continuation token, fills *st
 * with its status, last committed offset token included.  Reopening
 * discards what Snowflake received and did not commit.
 */
char *
sf_stream_open(SfServerConfig *srv, SfUserConfig *usr, const SfStreamChannel *ch,
			   SfStreamStatus *st)
{
	SfHttpResponse *resp;
	json_t	   *root;
	char	   *cont;
	const char *body = "{}";

	resp = ingest_call(srv, usr, "PUT", channel_path(ch, false), NULL, body, strlen(body),
					   "application/json", NULL, STREAM_ATTEMPTS);
	if (resp->status == 410)
		sf_stream_forget_hosts();
	if (resp->status != 200)
		report_failure(resp, "open channel", channel_label(ch));
	root = reply_object(resp, "open channel");
	cont = sf_json_string(root, "next_continuation_token");
	if (cont == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("Snowpipe Streaming opened %s without a continuation token",
						channel_label(ch)),
				 errdetail("The reply has no next_continuation_token."),
				 errhint("Check the server's url option.")));
	read_status(json_object_get(root, "channel_status"), st);
	st->found = true;
	return cont;
}

/*
 * Append one NDJSON body whose last row has offset_token.  On
 * SF_STREAM_APPENDED *next_continuation is the token for the next append.
 */
SfStreamAppendResult
sf_stream_append(SfServerConfig *srv, SfUserConfig *usr, const SfStreamChannel *ch,
				 const char *continuation, const char *body, size_t len,
				 const char *content_encoding, const char *offset_token,
				 char **next_continuation, int *retry_after_ms)
{
	SfHttpResponse *resp;
	json_t	   *root;
	char	   *code;
	char	   *query;

	*retry_after_ms = 0;
	*next_continuation = NULL;

	/*
	 * One offset token per batch: the current reference names the first
	 * and the last row's (startOffsetToken, endOffsetToken); a batch's rows
	 * are committed together, and the committed token becomes the end one.
	 */
	query = psprintf("continuationToken=%s&startOffsetToken=%s&endOffsetToken=%s",
					 sf_http_url_encode(continuation, false),
					 sf_http_url_encode(offset_token, false),
					 sf_http_url_encode(offset_token, false));
	resp = ingest_call(srv, usr, "POST", psprintf("%s/rows", channel_path(ch, true)),
					   query, body, len, "application/x-ndjson", content_encoding,
					   STREAM_ATTEMPTS);
	if (resp->status == 200)
	{
		root = reply_object(resp, "append rows");
		*next_continuation = sf_json_string(root, "next_continuation_token");
		return *next_continuation ? SF_STREAM_APPENDED : SF_STREAM_REOPEN;
	}
	if (resp->status == 429)
	{
		const char *ra = sf_http_header(resp, "retry-after");

		*retry_after_ms = ra ? Min(atoi(ra), 600) * 1000 : 0;
		return SF_STREAM_THROTTLED;
	}
	if (resp->status == 413)
		return SF_STREAM_TOO_LARGE;
	if (resp->status == 410)
		sf_stream_forget_hosts();
	(void) error_detail(resp, &code);
	if (resp->status == 408 || resp->status == 409 || resp->status == 410 ||
		resp->status >= 500 ||
		(resp->status == 400 && code &&
		 (strstr(code, "SEQUENCER") != NULL || strstr(code, "REOPEN") != NULL)))
		return SF_STREAM_REOPEN;
	report_failure(resp, "append rows", channel_label(ch));
	return SF_STREAM_REOPEN;	/* not reached */
}

/* The channel's status (bulk channel status with one name). */
void
sf_stream_status(SfServerConfig *srv, SfUserConfig *usr, const SfStreamChannel *ch,
				 SfStreamStatus *st)
{
	SfHttpResponse *resp;
	json_t	   *root;
	json_t	   *all;
	char	   *body;
	char	   *path;

	body = sf_json_dumps(sf_json_tracked(json_pack("{s:[s]}", "channel_names", ch->channel)));
	path = psprintf("/v2/streaming/databases/%s/schemas/%s/pipes/%s:bulk-channel-status",
					sf_http_url_encode(ch->database, false),
					sf_http_url_encode(ch->schema, false),
					sf_http_url_encode(ch->pipe, false));
	resp = ingest_call(srv, usr, "POST", path, NULL, body, strlen(body),
					   "application/json", NULL, STREAM_ATTEMPTS);
	if (resp->status == 410)
		sf_stream_forget_hosts();
	if (resp->status != 200)
		report_failure(resp, "channel status", channel_label(ch));
	root = reply_object(resp, "channel status");
	all = json_object_get(root, "channel_statuses");
	/* a channel not found has no entry */
	read_status(json_is_object(all) ? json_object_get(all, ch->channel) : NULL, st);
}
