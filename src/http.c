/*-------------------------------------------------------------------------
 *
 * http.c
 *		The HTTP client of sfexport: the only file that talks to libcurl.
 *
 * Every remote client of the extension (object storage, the Snowflake SQL
 * API, AWS Glue) sends its requests through sf_http_perform() (one attempt)
 * or sf_http_request() (attempts with retries).  This file owns the rules
 * that apply to every transfer:
 *
 *	- CURLOPT_NOSIGNAL, protocols restricted to http and https, redirects
 *	  not followed (a signed request must not be replayed elsewhere);
 *	- connect and total timeouts on every transfer;
 *	- TLS peer and host verification always on, with an optional CA file;
 *	- the proxy environment (http_proxy, https_proxy, no_proxy) honoured,
 *	  which libcurl does by itself when CURLOPT_PROXY is not set;
 *	- cancel and shutdown honoured during transfers: the progress callback
 *	  aborts the transfer when an interrupt is pending, and the interrupt is
 *	  serviced by CHECK_FOR_INTERRUPTS() once curl has returned;
 *	- retries with exponential backoff and full jitter on transport errors,
 *	  429, 500, 502, 503 and 504, honouring Retry-After.
 *
 * Callbacks never ereport: they record what went wrong in the transfer
 * state, abort the transfer, and the caller reports after curl returns.
 * Memory they need is allocated with MCXT_ALLOC_NO_OOM for the same reason.
 *
 * Messages name the method and a redacted URL (req->log_url, or the URL
 * without its query string), never header values, bodies or query strings,
 * since those carry signatures and tokens.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include <curl/curl.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/timestamp.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"

#include "sfexport.h"

#include "http.h"
#include "waits.h"

#define SF_HTTP_DEFAULT_CONNECT_TIMEOUT_MS	(10 * 1000)
#define SF_HTTP_DEFAULT_TIMEOUT_MS			(300 * 1000)
#define SF_HTTP_DEFAULT_MAX_ATTEMPTS		5
#define SF_HTTP_DEFAULT_MAX_RESPONSE		((size_t) 64 * 1024 * 1024)
#define SF_HTTP_DEFAULT_BACKOFF_BASE_MS		250
#define SF_HTTP_DEFAULT_BACKOFF_MAX_MS		(20 * 1000)
#define SF_HTTP_MAX_RETRY_AFTER_MS			(120 * 1000)
#define SF_HTTP_MAX_HEADER_BYTES			(256 * 1024)
#define SF_HTTP_PENDING_UPLOAD_BUFFER		(1024 * 1024)	/* libcurl allows 2 MB */

/* Why a callback aborted a transfer. */
typedef enum SfHttpAbort
{
	SF_ABORT_NONE = 0,
	SF_ABORT_INTERRUPT,			/* cancel or shutdown pending */
	SF_ABORT_PM_DEATH,			/* postmaster died */
	SF_ABORT_TOO_LARGE,			/* response larger than max_response_bytes */
	SF_ABORT_OOM,				/* could not allocate */
	SF_ABORT_SINK				/* write_fn returned false */
} SfHttpAbort;

/* State shared with the libcurl callbacks of one transfer. */
typedef struct SfHttpTransfer
{
	SfHttpRequest *req;
	CURL	   *handle;
	MemoryContext cxt;			/* where response memory lives */
	StringInfoData body;		/* buffered response body */
	StringInfoData rawheaders;	/* header lines of the last response */
	size_t		max_body;
	size_t		body_offset;	/* read position in req->body */
	int64		sink_bytes;		/* bytes given to req->write_fn */
	SfHttpAbort abort;
	struct curl_slist *slist;	/* request headers, freed when it is over */
} SfHttpTransfer;

static SfHttpResponse *request_after(SfHttpRequest *req, SfHttpResponse *first);

static bool curl_initialized = false;
static CURL *cached_handle = NULL;	/* kept for connection reuse */

/* ---------------------------------------------------------------------
 * Memory helpers safe inside callbacks
 * ---------------------------------------------------------------------
 */

/*
 * Append to a StringInfo without ever throwing: on allocation failure
 * returns false.  Used by libcurl callbacks only.
 */
static bool
append_noerror(MemoryContext cxt, StringInfo s, const char *data, size_t len)
{
	if ((size_t) s->len + len + 1 > (size_t) s->maxlen)
	{
		size_t		newlen = Max((size_t) s->maxlen, 1024);
		char	   *nb;

		while (newlen < (size_t) s->len + len + 1)
			newlen *= 2;
		if (newlen > (size_t) INT_MAX)
			return false;
		nb = MemoryContextAllocExtended(cxt, newlen,
										MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);
		if (nb == NULL)
			return false;
		if (s->len > 0)
			memcpy(nb, s->data, s->len);
		if (s->data)
			pfree(s->data);
		s->data = nb;
		s->maxlen = (int) newlen;
	}
	memcpy(s->data + s->len, data, len);
	s->len += (int) len;
	s->data[s->len] = '\0';
	return true;
}

/* ---------------------------------------------------------------------
 * libcurl callbacks: never ereport here
 * ---------------------------------------------------------------------
 */

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	SfHttpTransfer *t = (SfHttpTransfer *) userdata;
	size_t		len = size * nmemb;

	long		status = 0;

	/* only successful bodies go to the sink; error bodies are buffered */
	curl_easy_getinfo(t->handle, CURLINFO_RESPONSE_CODE, &status);
	if (t->req->write_fn && status >= 200 && status < 300)
	{
		if (!t->req->write_fn(ptr, len, t->req->write_arg))
		{
			t->abort = SF_ABORT_SINK;
			return 0;
		}
		t->sink_bytes += len;
		return len;
	}
	if ((size_t) t->body.len + len > t->max_body)
	{
		t->abort = SF_ABORT_TOO_LARGE;
		return 0;
	}
	if (!append_noerror(t->cxt, &t->body, ptr, len))
	{
		t->abort = SF_ABORT_OOM;
		return 0;
	}
	return len;
}

static size_t
header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	SfHttpTransfer *t = (SfHttpTransfer *) userdata;
	size_t		len = size * nmemb;

	/* a new status line starts a new header block (100 Continue, etc.) */
	if (len >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
		t->rawheaders.len = 0;
	if ((size_t) t->rawheaders.len + len > SF_HTTP_MAX_HEADER_BYTES)
	{
		t->abort = SF_ABORT_TOO_LARGE;
		return 0;
	}
	if (!append_noerror(t->cxt, &t->rawheaders, ptr, len))
	{
		t->abort = SF_ABORT_OOM;
		return 0;
	}
	return len;
}

static size_t
read_cb(char *buffer, size_t size, size_t nitems, void *userdata)
{
	SfHttpTransfer *t = (SfHttpTransfer *) userdata;
	size_t		max = size * nitems;

	if (t->req->read_fn)
		return t->req->read_fn(buffer, max, t->req->read_arg);

	if (t->body_offset >= t->req->body_len)
		return 0;
	max = Min(max, t->req->body_len - t->body_offset);
	memcpy(buffer, t->req->body + t->body_offset, max);
	t->body_offset += max;
	return max;
}

/* libcurl may rewind an in-memory body (e.g. after a 100-continue refusal). */
static int
seek_cb(void *userdata, curl_off_t offset, int origin)
{
	SfHttpTransfer *t = (SfHttpTransfer *) userdata;

	if (t->req->read_fn || origin != SEEK_SET || offset < 0 ||
		(size_t) offset > t->req->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	t->body_offset = (size_t) offset;
	return CURL_SEEKFUNC_OK;
}

/*
 * Called by libcurl at least about once a second during a transfer, also
 * while waiting for the network: abort when the backend should stop.
 */
static int
progress_cb(void *clientp, curl_off_t dltotal, curl_off_t dlnow,
			curl_off_t ultotal, curl_off_t ulnow)
{
	SfHttpTransfer *t = (SfHttpTransfer *) clientp;

	if (QueryCancelPending || ProcDiePending)
	{
		t->abort = SF_ABORT_INTERRUPT;
		return 1;
	}
	if (!PostmasterIsAlive())
	{
		t->abort = SF_ABORT_PM_DEATH;
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * Helpers
 * ---------------------------------------------------------------------
 */

static void
ensure_curl(void)
{
	if (!curl_initialized)
	{
		CURLcode	rc = curl_global_init(CURL_GLOBAL_DEFAULT);

		if (rc != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not initialize libcurl: %s",
							curl_easy_strerror(rc))));
		curl_initialized = true;
	}
}

/* The URL as shown in messages: log_url, or the URL up to its query. */
static char *
display_url(SfHttpRequest *req)
{
	const char *q;

	if (req->log_url)
		return pstrdup(req->log_url);
	q = strpbrk(req->url, "?#");
	return q ? pnstrdup(req->url, q - req->url) : pstrdup(req->url);
}

/* Does the request carry a header with this name (case-insensitive)? */
static bool
has_header(List *headers, const char *name)
{
	ListCell   *lc;
	size_t		nlen = strlen(name);

	foreach(lc, headers)
	{
		const char *h = (const char *) lfirst(lc);

		if (pg_strncasecmp(h, name, nlen) == 0 && h[nlen] == ':')
			return true;
	}
	return false;
}

/*
 * Refuse to send a header line with a control character in it.  libcurl
 * sends CURLOPT_HTTPHEADER strings as given, and a CR or LF in a value
 * (a token, a session token) would end the header and start others of
 * the value's choosing; RFC 9110 section 5.5 calls field values with CR,
 * LF or NUL "invalid and dangerous".  The validator refuses such option
 * values at DDL time; this is the check at use, for every header of every
 * request, whatever its source (e.g. a token from a token endpoint).  The
 * message names the header, never its value.
 */
static void
check_headers(SfHttpRequest *req)
{
	ListCell   *lc;

	foreach(lc, req->headers)
	{
		const char *h = (const char *) lfirst(lc);

		if (!sf_http_header_value_ok(h))
		{
			const char *colon = strchr(h, ':');
			char	   *name = colon ? pnstrdup(h, colon - h) : pstrdup("?");

			if (!sf_http_header_value_ok(name))
				name = "?";
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("refusing to send request %s %s: header \"%s\" contains control characters",
							req->method, display_url(req), name),
					 errdetail("A carriage return or line feed in a header value could add headers to the request."),
					 errhint("Check the credentials in the user mapping (token, aws_session_token) for line breaks.")));
		}
	}
}

/* Split the raw header block into "name: value" strings, names lower-cased. */
static List *
parse_headers(const char *raw)
{
	List	   *out = NIL;
	const char *p = raw;

	while (p && *p)
	{
		const char *eol = strpbrk(p, "\r\n");
		size_t		len = eol ? (size_t) (eol - p) : strlen(p);
		const char *colon = memchr(p, ':', len);

		if (colon && colon > p)
		{
			StringInfoData h;
			const char *v = colon + 1;
			const char *vend = p + len;

			initStringInfo(&h);
			for (const char *c = p; c < colon; c++)
				appendStringInfoChar(&h, pg_ascii_tolower((unsigned char) *c));
			while (v < vend && (*v == ' ' || *v == '\t'))
				v++;
			while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
				vend--;
			appendStringInfoString(&h, ": ");
			appendBinaryStringInfo(&h, v, vend - v);
			out = lappend(out, h.data);
		}
		if (eol == NULL)
			break;
		p = eol;
		while (*p == '\r' || *p == '\n')
			p++;
	}
	return out;
}

/* Set the method and the request body on the handle. */
static void
set_method_and_body(CURL *h, SfHttpRequest *req, bool *needs_ctype_blank)
{
	bool		has_body = req->body != NULL || req->read_fn != NULL;
	curl_off_t	len = req->read_fn ? (curl_off_t) req->read_len
		: (curl_off_t) req->body_len;

	*needs_ctype_blank = false;
	if (strcmp(req->method, "GET") == 0 && !has_body)
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	else if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, "PUT") == 0)
	{
		/* PUT always sends a body, possibly empty */
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, has_body ? len : (curl_off_t) 0);
	}
	else if (has_body || strcmp(req->method, "POST") == 0)
	{
		/* POST, or another method with a body: post semantics */
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, has_body ? len : (curl_off_t) 0);
		if (strcmp(req->method, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
		/* libcurl would add a form content type to a POST */
		*needs_ctype_blank = true;
	}
	else
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
}

/* ---------------------------------------------------------------------
 * Public interface
 * ---------------------------------------------------------------------
 */

/*
 * Fill a request with defaults: the given method and URL, no headers or
 * body, default timeouts and attempts.
 */
void
sf_http_init_request(SfHttpRequest *req, const char *method, const char *url)
{
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->url = pstrdup(url);
	req->read_len = -1;
	req->connect_timeout_ms = SF_HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
	req->timeout_ms = SF_HTTP_DEFAULT_TIMEOUT_MS;
	req->max_attempts = SF_HTTP_DEFAULT_MAX_ATTEMPTS;
	req->decode_content = true;
	req->backoff_base_ms = SF_HTTP_DEFAULT_BACKOFF_BASE_MS;
	req->backoff_max_ms = SF_HTTP_DEFAULT_BACKOFF_MAX_MS;
}

/*
 * Set every option of one transfer of req on handle h (reset first by the
 * caller): the rules of the file header, the callbacks with t, errbuf and
 * the header list, kept in t->slist for the caller to free once the
 * transfer is over (also when this throws, for out of memory).
 */
static void
setup_transfer(CURL *h, SfHttpRequest *req, SfHttpTransfer *t, char *errbuf)
{
	struct curl_slist **slist = &t->slist;
	ListCell   *lc;
	bool		blank_ctype;

	t->handle = h;
	errbuf[0] = '\0';
	curl_easy_setopt(h, CURLOPT_URL, req->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	if (req->no_proxy)
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
					 (long) (req->connect_timeout_ms > 0 ? req->connect_timeout_ms
							 : SF_HTTP_DEFAULT_CONNECT_TIMEOUT_MS));
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
					 (long) (req->timeout_ms > 0 ? req->timeout_ms
							 : SF_HTTP_DEFAULT_TIMEOUT_MS));
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (req->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, req->ca_file);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_USERAGENT, SFEXPORT_USER_AGENT);
	if (req->decode_content)
		curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	else
		curl_easy_setopt(h, CURLOPT_HTTP_CONTENT_DECODING, 0L);

	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(h, CURLOPT_READDATA, t);
	curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
	curl_easy_setopt(h, CURLOPT_SEEKDATA, t);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, t);

	set_method_and_body(h, req, &blank_ctype);

	foreach(lc, req->headers)
	{
		struct curl_slist *n = curl_slist_append(*slist, (const char *) lfirst(lc));

		if (n == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		*slist = n;
	}
	/* no "Expect: 100-continue" round trip; no implicit form type */
	if (!has_header(req->headers, "Expect"))
	{
		struct curl_slist *n = curl_slist_append(*slist, "Expect:");

		if (n == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		*slist = n;
	}
	if (blank_ctype && !has_header(req->headers, "Content-Type"))
	{
		struct curl_slist *n = curl_slist_append(*slist, "Content-Type:");

		if (n == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("out of memory")));
		*slist = n;
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *slist);
}

/*
 * What a finished transfer left on its handle: the status, the proxy's
 * CONNECT status, and whether the whole request went out.  The handle then
 * forgets the caller's header list and error buffer.
 */
static void
read_transfer(CURL *h, SfHttpRequest *req, long *status, long *connect_status)
{
	curl_off_t	uploaded = 0;
	long		header_bytes = 0;
	curl_off_t	want = req->read_fn ? (curl_off_t) req->read_len
		: (curl_off_t) req->body_len;

	*status = 0;
	*connect_status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	/* before an interrupt is serviced: callers read it then */
	curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &uploaded);
	curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &header_bytes);
	if (header_bytes > 0 && uploaded >= want)
		req->body_delivered = true;
	curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, connect_status);

	/* the handle must not keep pointers to the caller's slist and buffer */
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
}

/*
 * The response of a finished transfer, once what its callbacks saw is
 * serviced: postmaster death (FATAL), cancel or shutdown (thrown, after
 * *handle, whose connection may be half used, is cleaned up), out of
 * memory.  In the caller's memory context.
 */
static SfHttpResponse *
transfer_response(SfHttpRequest *req, SfHttpTransfer *t, CURL **handle,
				  CURLcode rc, long status, long connect_status,
				  const char *errbuf)
{
	SfHttpResponse *resp = palloc0(sizeof(SfHttpResponse));

	if (t->abort == SF_ABORT_PM_DEATH)
		ereport(FATAL,
				(errcode(ERRCODE_ADMIN_SHUTDOWN),
				 errmsg("terminating connection due to unexpected postmaster exit")));
	if (t->abort == SF_ABORT_INTERRUPT)
	{
		/* an aborted half transfer may leave the connection unusable */
		curl_easy_cleanup(*handle);
		*handle = NULL;
		CHECK_FOR_INTERRUPTS();
	}
	if (t->abort == SF_ABORT_OOM)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory while receiving the response to %s %s",
						req->method, display_url(req))));

	resp->status = status;
	resp->body = t->body;
	resp->headers = parse_headers(t->rawheaders.data);
	resp->attempts = 1;
	resp->sink_bytes = t->sink_bytes;
	if (rc != CURLE_OK)
	{
		resp->curl_error = (int) rc;
		/* the proxy refused the tunnel (e.g. 407): what it answered */
		if (connect_status != 0 && (connect_status < 200 || connect_status >= 300))
			resp->proxy_status = connect_status;
		/* keep the status only when we cut off a response that did arrive */
		if (t->abort != SF_ABORT_SINK && t->abort != SF_ABORT_TOO_LARGE)
			resp->status = 0;
		switch (t->abort)
		{
			case SF_ABORT_TOO_LARGE:
				resp->error_text = psprintf("response larger than %zu bytes",
											t->max_body);
				break;
			case SF_ABORT_SINK:
				resp->error_text = pstrdup("response body rejected by the receiver");
				break;
			case SF_ABORT_INTERRUPT:
				resp->error_text = pstrdup("transfer interrupted");
				break;
			default:
				/* errbuf names hosts and ports, never query strings */
				resp->error_text = errbuf[0]
					? psprintf("%s: %s", curl_easy_strerror(rc), errbuf)
					: pstrdup(curl_easy_strerror(rc));
				break;
		}
	}
	pfree(t->rawheaders.data);
	return resp;
}

/* Start the state of one transfer of req; response memory in cxt. */
static void
init_transfer(SfHttpTransfer *t, SfHttpRequest *req, MemoryContext cxt)
{
	memset(t, 0, sizeof(*t));
	t->req = req;
	t->cxt = cxt;
	t->body.data = MemoryContextAlloc(cxt, 1024);
	t->body.maxlen = 1024;
	t->body.data[0] = '\0';
	t->rawheaders.data = MemoryContextAlloc(cxt, 1024);
	t->rawheaders.maxlen = 1024;
	t->rawheaders.data[0] = '\0';
	t->max_body = req->max_response_bytes > 0 ? req->max_response_bytes
		: SF_HTTP_DEFAULT_MAX_RESPONSE;
}

/* A fresh or reset easy handle in *slot. */
static CURL *
ready_handle(CURL **slot)
{
	if (*slot == NULL)
	{
		*slot = curl_easy_init();
		if (*slot == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl handle")));
	}
	else
		curl_easy_reset(*slot);
	return *slot;
}

/*
 * One attempt of a request.  Transport problems are reported in the
 * response (curl_error, error_text), not thrown; cancel and shutdown are
 * serviced (thrown) once curl has returned.  The response is allocated in
 * the caller's memory context.
 */
SfHttpResponse *
sf_http_perform(SfHttpRequest *req)
{
	/* in memory, not on the stack: read again after a longjmp */
	SfHttpTransfer *t = palloc(sizeof(SfHttpTransfer));
	char	   *errbuf = palloc(CURL_ERROR_SIZE);
	CURLcode	rc;
	long		status;
	long		connect_status;
	SfHttpResponse *resp;

	ensure_curl();
	CHECK_FOR_INTERRUPTS();
	check_headers(req);
	init_transfer(t, req, CurrentMemoryContext);

	PG_TRY();
	{
		CURL	   *h = ready_handle(&cached_handle);

		setup_transfer(h, req, t, errbuf);
		/* the wait on the network shows in pg_stat_activity (waits.c) */
		pgstat_report_wait_start(sf_wait_event(SF_WAIT_HTTP_TRANSFER));
		rc = curl_easy_perform(h);
		pgstat_report_wait_end();
		read_transfer(h, req, &status, &connect_status);
	}
	PG_CATCH();
	{
		if (t->slist)
			curl_slist_free_all(t->slist);
		if (cached_handle)
			curl_easy_cleanup(cached_handle);
		cached_handle = NULL;
		PG_RE_THROW();
	}
	PG_END_TRY();
	curl_slist_free_all(t->slist);
	t->slist = NULL;

	resp = transfer_response(req, t, &cached_handle, rc, status,
							 connect_status, errbuf);
	pfree(t);
	pfree(errbuf);
	return resp;
}

/* ---------------------------------------------------------------------
 * A transfer in the background (sf_http_request_start)
 *
 * One attempt runs on a multi handle while the caller goes on; it advances
 * only when the caller calls sf_http_request_progress() or waits for it,
 * so every callback still runs on the backend's own thread, inside a
 * libcurl call made by this file (the rules above hold unchanged).  One
 * such transfer at a time per process: the storage writer overlaps the
 * upload of one part with the making of the next (storage.c).
 * ---------------------------------------------------------------------
 */

struct SfHttpPending
{
	SfHttpTransfer t;
	char		errbuf[CURL_ERROR_SIZE];
	bool		added;			/* on the multi handle */
	bool		done;			/* the attempt is over */
	CURLcode	rc;
	MemoryContextCallback cb;	/* releases it with its memory context */
};

static CURLM *multi_handle = NULL;
static CURL *pending_handle = NULL; /* kept for connection reuse */
static SfHttpPending *active_pending = NULL;

/* Take p off the multi handle and free what libcurl holds of it. */
static void
release_pending(SfHttpPending *p)
{
	if (p->added)
	{
		curl_multi_remove_handle(multi_handle, pending_handle);
		p->added = false;
		if (!p->done)
		{
			/* a transfer cut off midway: its connection is not reusable */
			curl_easy_cleanup(pending_handle);
			pending_handle = NULL;
		}
		else
		{
			curl_easy_setopt(pending_handle, CURLOPT_HTTPHEADER, NULL);
			curl_easy_setopt(pending_handle, CURLOPT_ERRORBUFFER, NULL);
		}
	}
	if (p->t.slist)
	{
		curl_slist_free_all(p->t.slist);
		p->t.slist = NULL;
	}
	if (active_pending == p)
		active_pending = NULL;
}

static void
release_pending_cb(void *arg)
{
	release_pending((SfHttpPending *) arg);
}

/*
 * Let libcurl move the transfer on, without waiting; never throws.  One
 * curl_multi_perform() sends at most one upload buffer, so it is called
 * again while it sends (a few times at most: the socket takes the rest
 * later), so that a large body does not trickle out between the caller's
 * calls.
 */
static void
step_pending(SfHttpPending *p)
{
	for (int round = 0; round < 8 && p->added && !p->done; round++)
	{
		int			running = 0;
		int			left = 0;
		CURLMsg    *msg;
		curl_off_t	before = 0;
		curl_off_t	after = 0;

		curl_easy_getinfo(pending_handle, CURLINFO_SIZE_UPLOAD_T, &before);
		if (curl_multi_perform(multi_handle, &running) != CURLM_OK)
		{
			p->rc = CURLE_FAILED_INIT;
			p->done = true;
			return;
		}
		while ((msg = curl_multi_info_read(multi_handle, &left)) != NULL)
		{
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == pending_handle)
			{
				p->rc = msg->data.result;
				p->done = true;
			}
		}
		curl_easy_getinfo(pending_handle, CURLINFO_SIZE_UPLOAD_T, &after);
		if (after == before)
			break;
	}
}

/*
 * Start one attempt of req (after its deadline and prepare(req, 0), as
 * sf_http_request would) and return at once.  The request, its body and
 * the returned handle must stay as they are until sf_http_request_finish()
 * or until the current memory context goes, which cancels the transfer.
 */
SfHttpPending *
sf_http_request_start(SfHttpRequest *req)
{
	SfHttpPending *p;

	ensure_curl();
	CHECK_FOR_INTERRUPTS();
	if (active_pending != NULL)
		elog(ERROR, "sfexport: one background HTTP transfer at a time");
	sf_http_apply_deadline(req);
	if (req->prepare)
		req->prepare(req, 0, req->prepare_arg);
	check_headers(req);
	if (multi_handle == NULL)
	{
		multi_handle = curl_multi_init();
		if (multi_handle == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not create a libcurl multi handle")));
	}

	p = palloc0(sizeof(SfHttpPending));
	init_transfer(&p->t, req, CurrentMemoryContext);
	p->cb.func = release_pending_cb;
	p->cb.arg = p;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, &p->cb);
	active_pending = p;
	PG_TRY();
	{
		setup_transfer(ready_handle(&pending_handle), req, &p->t, p->errbuf);
		/* larger steps for a large body: it moves on between the caller's calls */
		if (req->body_len >= SF_HTTP_PENDING_UPLOAD_BUFFER)
			curl_easy_setopt(pending_handle, CURLOPT_UPLOAD_BUFFERSIZE,
							 (long) SF_HTTP_PENDING_UPLOAD_BUFFER);
		if (curl_multi_add_handle(multi_handle, pending_handle) != CURLM_OK)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not start a libcurl transfer")));
		p->added = true;
	}
	PG_CATCH();
	{
		release_pending(p);
		PG_RE_THROW();
	}
	PG_END_TRY();
	step_pending(p);
	return p;
}

/* Whether a background transfer is started and not finished. */
bool
sf_http_request_busy(void)
{
	return active_pending != NULL;
}

/* Move a background transfer on, if it has anything to do; never throws. */
void
sf_http_request_progress(SfHttpPending *p)
{
	step_pending(p);
}

/*
 * Wait for a background transfer, then go on as sf_http_request() does
 * from its second attempt: the same retries, the same errors.
 */
SfHttpResponse *
sf_http_request_finish(SfHttpPending *p)
{
	SfHttpRequest *req = p->t.req;
	SfHttpResponse *resp;
	long		status;
	long		connect_status;

	pgstat_report_wait_start(sf_wait_event(SF_WAIT_HTTP_TRANSFER));
	for (;;)
	{
		step_pending(p);
		if (p->done)
			break;
		/* at most a second: the progress callback checks interrupts */
		if (curl_multi_poll(multi_handle, NULL, 0, 1000, NULL) != CURLM_OK)
		{
			p->rc = CURLE_FAILED_INIT;
			p->done = true;
		}
	}
	pgstat_report_wait_end();
	read_transfer(pending_handle, req, &status, &connect_status);
	curl_multi_remove_handle(multi_handle, pending_handle);
	p->added = false;
	release_pending(p);
	resp = transfer_response(req, &p->t, &pending_handle, p->rc, status,
							 connect_status, p->errbuf);
	return request_after(req, resp);
}

/* Whether a status deserves another attempt. */
static bool
retryable_status(long status)
{
	return status == 429 || status == 500 || status == 502 ||
		status == 503 || status == 504;
}

/*
 * Whether a transport error deserves another attempt: connection problems
 * and timeouts do; errors of our own making (bad URL, TLS verification,
 * aborts by a callback) do not.
 */
static bool
retryable_curl_error(int code)
{
	switch ((CURLcode) code)
	{
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
		case CURLE_SSL_CONNECT_ERROR:
			return true;
		default:
			return false;
	}
}

/*
 * Milliseconds asked for by a Retry-After header (RFC 9110, 10.2.3: either
 * delay-seconds, 1*DIGIT, or an HTTP-date), capped at
 * SF_HTTP_MAX_RETRY_AFTER_MS; -1 when absent or unreadable (the caller
 * then uses its own backoff).
 */
static int
retry_after_ms(SfHttpResponse *resp)
{
	const char *v = sf_http_header(resp, "retry-after");
	const char *c;
	time_t		when;
	time_t		now;

	if (v == NULL || *v == '\0')
		return -1;
	for (c = v; *c >= '0' && *c <= '9'; c++)
		;
	if (*c == '\0')
	{
		/* delay-seconds: any number of digits; large values are capped */
		long		secs = 0;

		for (c = v; *c; c++)
		{
			secs = secs * 10 + (*c - '0');
			if (secs * 1000 >= SF_HTTP_MAX_RETRY_AFTER_MS)
				return SF_HTTP_MAX_RETRY_AFTER_MS;
		}
		return (int) (secs * 1000);
	}
	when = curl_getdate(v, NULL);
	now = time(NULL);
	if (when == (time_t) -1)
		return -1;
	if (when <= now)
		return 0;
	if ((double) (when - now) * 1000.0 >= (double) SF_HTTP_MAX_RETRY_AFTER_MS)
		return SF_HTTP_MAX_RETRY_AFTER_MS;
	return (int) ((when - now) * 1000);
}

/*
 * The errhint() for a transport error whose cause is in the configuration:
 * TLS verification (the server's ca_file option) or the proxy environment.
 */
static int
curl_error_hint(int code, const char *ca_file)
{
	switch ((CURLcode) code)
	{
		case CURLE_PEER_FAILED_VERIFICATION:
			return ca_file
				? errhint("The certificate must chain to a CA in the server's ca_file \"%s\" and name the host of the URL.",
						  ca_file)
				: errhint("The certificate must chain to a CA the system trusts and name the host of the URL; for a private CA set the server's ca_file option.");
		case CURLE_SSL_CACERT_BADFILE:
			return errhint("Check that the server's ca_file \"%s\" is a readable PEM file of CA certificates.",
						   ca_file ? ca_file : "");
		case CURLE_SSL_CONNECT_ERROR:
			return errhint("The TLS handshake failed: check that the endpoint speaks TLS (https) and the server's ca_file option.");
		case CURLE_COULDNT_RESOLVE_PROXY:
#if LIBCURL_VERSION_NUM >= 0x074900
		case CURLE_PROXY:
#endif
			return errhint("Check the proxy environment of the PostgreSQL server (https_proxy, http_proxy, all_proxy, no_proxy).");
		default:
			return 0;
	}
}

/*
 * Cut a request's timeouts to its deadline, if it has one (at least 1 s
 * for an attempt): the caller's time budget (listings, aborts at exit).
 */
void
sf_http_apply_deadline(SfHttpRequest *req)
{
	long		left;
	int			limit;

	if (req->deadline == 0)
		return;
	left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), req->deadline);
	limit = req->timeout_ms > 0 ? req->timeout_ms : SF_HTTP_DEFAULT_TIMEOUT_MS;
	req->timeout_ms = (int) Max(Min((long) limit, left), 1000L);
	req->connect_timeout_ms = Min(req->connect_timeout_ms > 0
								  ? req->connect_timeout_ms
								  : SF_HTTP_DEFAULT_CONNECT_TIMEOUT_MS,
								  req->timeout_ms);
}

/*
 * A request with retries (see the contract in http.h), its first attempt
 * already made when first is not NULL.  Requests with a streamed body
 * (read_fn) are retried only when prepare is set, since only prepare can
 * rewind the stream.
 */
static SfHttpResponse *
request_after(SfHttpRequest *req, SfHttpResponse *first)
{
	int			max_attempts = Max(1, req->max_attempts);
	int			base = req->backoff_base_ms > 0 ? req->backoff_base_ms
		: SF_HTTP_DEFAULT_BACKOFF_BASE_MS;
	int			cap = req->backoff_max_ms > 0 ? req->backoff_max_ms
		: SF_HTTP_DEFAULT_BACKOFF_MAX_MS;
	SfHttpResponse *resp = NULL;
	int			attempt;

	if (req->read_fn && req->prepare == NULL)
		max_attempts = 1;

	for (attempt = 0; attempt < max_attempts; attempt++)
	{
		bool		retry;
		int			delay;

		if (attempt == 0 && first != NULL)
			resp = first;
		else
		{
			sf_http_apply_deadline(req);
			if (req->prepare)
				req->prepare(req, attempt, req->prepare_arg);
			resp = sf_http_perform(req);
		}
		resp->attempts = attempt + 1;

		if (resp->proxy_status != 0)
			retry = retryable_status(resp->proxy_status);	/* not 407 */
		else if (resp->curl_error != 0)
			retry = retryable_curl_error(resp->curl_error);
		else
			retry = retryable_status(resp->status);
		/* the sink cannot take back what it got: no retry after that */
		if (resp->sink_bytes > 0)
			retry = false;
		if (!retry || attempt + 1 >= max_attempts)
			break;

		/* exponential backoff with full jitter, unless the server says when */
		delay = retry_after_ms(resp);
		if (delay < 0)
		{
			double		ceiling = Min((double) cap, (double) base * pow(2.0, attempt));

			delay = (int) (pg_prng_double(&pg_global_prng_state) * ceiling);
		}
		if (req->deadline != 0 &&
			TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay) >= req->deadline)
			break;				/* the time budget is spent: this is the answer */
		ereport(DEBUG1,
				(errmsg_internal("sfexport: retrying %s %s in %d ms (attempt %d of %d): %s",
								 req->method, display_url(req), delay,
								 attempt + 2, max_attempts,
								 resp->curl_error ? resp->error_text
								 : psprintf("HTTP %ld", resp->status))));
		/*
		 * The worker's latch is set for other reasons too (every commit
		 * that captured rows, sfexport.flush()): waking up does not cut the
		 * backoff short, only the clock does.
		 */
		sf_wait(delay, SF_WAIT_HTTP_BACKOFF, SF_WAIT_FULL_TIME);
	}

	if (resp->curl_error != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("%s %s failed: %s", req->method, display_url(req),
						resp->error_text),
				 errdetail("The request was attempted %d time%s.",
						   resp->attempts, resp->attempts == 1 ? "" : "s"),
				 resp->proxy_status != 0
				 ? errhint("The proxy refused the connection (HTTP %ld): check the proxy environment of the PostgreSQL server (https_proxy, http_proxy, all_proxy, no_proxy) and the proxy credentials in it.",
						   resp->proxy_status)
				 : curl_error_hint(resp->curl_error, req->ca_file)));
	return resp;
}

SfHttpResponse *
sf_http_request(SfHttpRequest *req)
{
	return request_after(req, NULL);
}

/*
 * The value of a response header (name case-insensitive), or NULL.  When a
 * header repeats, the first is returned.
 */
const char *
sf_http_header(SfHttpResponse *resp, const char *name)
{
	ListCell   *lc;
	size_t		nlen = strlen(name);

	foreach(lc, resp->headers)
	{
		const char *h = (const char *) lfirst(lc);

		if (pg_strncasecmp(h, name, nlen) == 0 && h[nlen] == ':')
			return h + nlen + 2;
	}
	return NULL;
}
