/*-------------------------------------------------------------------------
 *
 * http.h
 *		HTTP over libcurl (http.c) and its URL and header rules
 *		(http_url.c; protocols layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_HTTP_H
#define SF_HTTP_H

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

/* ----------------------------------------------------------------
 * http.c — the only file that talks to libcurl (with http_url.c, its
 * rules for URLs and headers apart from transfers)
 *
 * Contract (shared by storage, Snowflake and Glue clients):
 *	- sf_http_perform() makes ONE attempt and never throws for transport
 *	  problems: it fills resp->curl_error / resp->error_text instead, so the
 *	  caller can decide to retry.  It does throw for cancel/shutdown
 *	  (CHECK_FOR_INTERRUPTS after an aborted transfer) and out-of-memory.
 *	- sf_http_request() wraps it with retries: transport errors, 429, 500,
 *	  502, 503, 504 are retried with exponential backoff and full jitter,
 *	  honouring Retry-After; other statuses are returned to the caller.
 *	  Before every attempt it calls req->prepare(req, attempt, arg) when
 *	  set, so a caller can re-sign or mark a retry (Snowflake's retry=true).
 *	  After the last attempt, a transport error is raised with
 *	  ERRCODE_CONNECTION_FAILURE naming method and redacted URL.
 *	- Every transfer: CURLOPT_NOSIGNAL, http/https only, connect and total
 *	  timeouts, TLS verification on (ca_file optional), proxy environment
 *	  honoured, progress callback checking interrupts.
 *	- Messages show req->log_url (or the URL without its query string),
 *	  never header values, bodies or query strings.
 *	- Callbacks (read_fn, write_fn) run inside libcurl: they must not throw
 *	  (no ereport, no palloc that can fail); set a flag and return 0/false.
 *	  A streamed body (read_fn) is retried only when prepare is set, since
 *	  prepare must rewind it.  Redirects are not followed.
 *	- With decode_content (the default) gzip/deflate responses are decoded
 *	  by libcurl; the content-encoding header is still listed in headers.
 * ----------------------------------------------------------------
 */
typedef struct SfHttpRequest SfHttpRequest;

/* Streaming request body: copy up to max bytes into buf, return count (0 = end). */
typedef size_t (*SfHttpReadFn) (char *buf, size_t max, void *arg);
/*
 * Streaming response body sink: return false to abort the transfer.  It
 * receives the body of 2xx responses only; other bodies are buffered in
 * resp->body so that the caller can read the error.
 */
typedef bool (*SfHttpWriteFn) (const char *data, size_t len, void *arg);
/* Called before each attempt (attempt = 0, 1, ...). */
typedef void (*SfHttpPrepareFn) (SfHttpRequest *req, int attempt, void *arg);

struct SfHttpRequest
{
	const char *method;			/* "GET", "PUT", "POST", "DELETE", "HEAD" */
	char	   *url;			/* full URL, may be replaced by prepare() */
	const char *log_url;		/* URL safe to show in messages, or NULL */
	List	   *headers;		/* char * "Name: value", replaceable by prepare() */
	const char *body;			/* in-memory request body, or NULL */
	size_t		body_len;
	SfHttpReadFn read_fn;		/* streaming body instead of body */
	void	   *read_arg;
	int64		read_len;		/* length of the streamed body, -1 = chunked */
	SfHttpWriteFn write_fn;		/* stream the response body instead of buffering */
	void	   *write_arg;
	SfHttpPrepareFn prepare;
	void	   *prepare_arg;
	int			connect_timeout_ms;
	int			timeout_ms;
	const char *ca_file;
	int			max_attempts;	/* sf_http_request: total attempts, >= 1 */
	size_t		max_response_bytes; /* buffered body limit, 0 = 64 MB */
	/* added after the first contract; sf_http_init_request sets defaults */
	bool		decode_content; /* ask for and undo gzip/deflate content
								 * encoding (default true); storage reads set
								 * false to get the stored bytes */
	int			backoff_base_ms;	/* first retry delay ceiling, default 250 */
	int			backoff_max_ms; /* largest retry delay ceiling, default 20 s */
	TimestampTz deadline;		/* 0, or sf_http_request gives up then: no
								 * retry after it, each attempt's timeout_ms
								 * cut to it (listings' time budget) */
	bool		no_proxy;		/* never through a proxy, whatever the
								 * environment says (link-local metadata
								 * services refuse X-Forwarded-For) */
	/* set by the transfer, kept across attempts (never reset by a retry) */
	bool		body_delivered; /* an attempt handed the whole request (and
								 * body) to the network: the server may
								 * have received it, even if it never
								 * answered */
};

typedef struct SfHttpResponse
{
	long		status;			/* HTTP status, 0 when no response */
	StringInfoData body;		/* buffered body (with write_fn: only non-2xx) */
	List	   *headers;		/* char * "name: value", names lower-cased */
	int			curl_error;		/* CURLcode of a failed transfer, 0 if none */
	char	   *error_text;		/* readable transport error, NULL if none */
	int			attempts;		/* attempts made by sf_http_request */
	int64		sink_bytes;		/* bytes given to write_fn (no retry once > 0) */
	long		proxy_status;	/* status of a refused proxy CONNECT, else 0 */
} SfHttpResponse;

extern void sf_http_init_request(SfHttpRequest *req, const char *method,
								 const char *url);
extern SfHttpResponse *sf_http_perform(SfHttpRequest *req);
extern SfHttpResponse *sf_http_request(SfHttpRequest *req);

/*
 * sf_http_request() in two steps, so that the caller can work while the
 * first attempt is on the network (one such transfer per process): start
 * it, move it on now and then with progress (never throws, returns at
 * once), and finish it, which waits for it and then retries as
 * sf_http_request() would.  Deleting the memory context that was current
 * at start cancels it.  The callbacks run on the caller's thread, inside
 * these calls.
 */
typedef struct SfHttpPending SfHttpPending;
extern SfHttpPending *sf_http_request_start(SfHttpRequest *req);
extern bool sf_http_request_busy(void);
extern void sf_http_request_progress(SfHttpPending *p);
extern SfHttpResponse *sf_http_request_finish(SfHttpPending *p);
extern void sf_http_apply_deadline(SfHttpRequest *req);
extern const char *sf_http_header(SfHttpResponse *resp, const char *name);
extern bool sf_http_header_value_ok(const char *value);
extern bool sf_http_same_origin(const char *url, const char *base);
extern char *sf_http_url_encode(const char *s, bool keep_slash);

#endif							/* SF_HTTP_H */
