/*-------------------------------------------------------------------------
 *
 * fake_http.c
 *		The http.c contract (src/sfexport.h) answered from a script: the
 *		fuzz input.  Replaces src/http.c in the harnesses, so that the
 *		Snowflake, S3 and GCS clients parse whatever the fuzzer makes up,
 *		through their real retry and polling paths.
 *
 * Script format (pgstub.h): responses separated by a line "~~~"; each is
 * an optional three-digit status line (default 200), optional header lines
 * "@name: value", then the body.
 *
 * sf_http_request() behaves as http.c documents: prepare() before every
 * attempt, 429/500/502/503/504 retried up to max_attempts, other statuses
 * returned; when the script has run out, the request fails as a transport
 * error does after the last attempt (ERRCODE_CONNECTION_FAILURE).
 * sf_http_init_request, sf_http_header and sf_http_url_encode are copies of
 * http.c's pure functions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "sfexport.h"

#include "pgstub.h"

static const uint8_t *script;
static size_t script_len;
static size_t script_pos;
static int	served;

void
fuzz_http_script(const uint8_t *data, size_t size)
{
	script = data;
	script_len = size;
	script_pos = 0;
	served = 0;
}

int
fuzz_http_requests(void)
{
	return served;
}

/* Next response of the script, or NULL when there is none. */
static SfHttpResponse *
next_response(void)
{
	static const char sep[] = "\n~~~\n";
	const uint8_t *p;
	const uint8_t *end;
	const uint8_t *stop;
	SfHttpResponse *resp;

	if (script == NULL || script_pos > script_len ||
		(script_pos == script_len && served > 0))
		return NULL;
	p = script + script_pos;
	end = script + script_len;
	stop = end;
	for (const uint8_t *q = p; q + sizeof(sep) - 1 <= end; q++)
		if (memcmp(q, sep, sizeof(sep) - 1) == 0)
		{
			stop = q;
			break;
		}
	script_pos = (stop == end) ? script_len + 1 : (size_t) (stop - script) + sizeof(sep) - 1;
	served++;

	resp = palloc0(sizeof(SfHttpResponse));
	initStringInfo(&resp->body);
	resp->status = 200;
	resp->attempts = 1;
	if (stop - p >= 3 && isdigit(p[0]) && isdigit(p[1]) && isdigit(p[2]) &&
		(stop - p == 3 || p[3] == '\n'))
	{
		resp->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		p += (stop - p == 3) ? 3 : 4;
	}
	while (p < stop && *p == '@')
	{
		const uint8_t *nl = memchr(p, '\n', stop - p);
		const uint8_t *lend = nl ? nl : stop;
		const uint8_t *colon = memchr(p, ':', lend - p);

		/* stored as http.c's parse_headers does: "name: value", name lower-case */
		if (colon && colon > p + 1)
		{
			StringInfoData h;
			const uint8_t *v = colon + 1;
			const uint8_t *vend = lend;

			initStringInfo(&h);
			for (const uint8_t *c = p + 1; c < colon; c++)
				appendStringInfoChar(&h, pg_ascii_tolower(*c));
			while (v < vend && (*v == ' ' || *v == '\t'))
				v++;
			while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
				vend--;
			appendStringInfoString(&h, ": ");
			appendBinaryStringInfo(&h, (const char *) v, vend - v);
			resp->headers = lappend(resp->headers, h.data);
		}
		p = nl ? nl + 1 : stop;
	}
	appendBinaryStringInfo(&resp->body, (const char *) p, stop - p);
	return resp;
}

void
sf_http_init_request(SfHttpRequest *req, const char *method, const char *url)
{
	memset(req, 0, sizeof(*req));
	req->method = method;
	req->url = pstrdup(url);
	req->read_len = -1;
	req->connect_timeout_ms = 10000;
	req->timeout_ms = 300000;
	req->max_attempts = 6;
	req->decode_content = true;
	req->backoff_base_ms = 250;
	req->backoff_max_ms = 20000;
}

/* Consume a streamed request body, as curl would. */
static void
drain_body(SfHttpRequest *req)
{
	char		buf[4096];
	int			guard = 0;

	if (req->read_fn == NULL)
		return;
	while (req->read_fn(buf, sizeof(buf), req->read_arg) > 0)
		if (++guard > 100000)
			fuzz_fail("read_fn never ends");
}

SfHttpResponse *
sf_http_perform(SfHttpRequest *req)
{
	SfHttpResponse *resp;

	CHECK_FOR_INTERRUPTS();
	drain_body(req);
	resp = next_response();
	if (resp == NULL)
	{
		resp = palloc0(sizeof(SfHttpResponse));
		initStringInfo(&resp->body);
		resp->curl_error = 7;
		resp->error_text = pstrdup("Failed to connect (fuzz script ended)");
		resp->attempts = 1;
		return resp;
	}
	if (resp->status >= 200 && resp->status < 300 && req->write_fn)
	{
		/* stream a 2xx body in small pieces; no buffering */
		size_t		off = 0;

		while (off < (size_t) resp->body.len)
		{
			size_t		n = Min((size_t) 1000, resp->body.len - off);

			if (!req->write_fn(resp->body.data + off, n, req->write_arg))
			{
				resp->curl_error = 23;
				resp->error_text = pstrdup("Failure writing output to destination");
				break;
			}
			off += n;
		}
		resp->sink_bytes = off;
		resetStringInfo(&resp->body);
	}
	return resp;
}

/* No network here: a deadline changes no timeout worth modelling. */
void
sf_http_apply_deadline(SfHttpRequest *req)
{
}

static bool
retryable(long status)
{
	return status == 429 || status == 500 || status == 502 ||
		status == 503 || status == 504;
}

SfHttpResponse *
sf_http_request(SfHttpRequest *req)
{
	SfHttpResponse *resp = NULL;
	int			max = Max(req->max_attempts, 1);

	for (int attempt = 0; attempt < max; attempt++)
	{
		if (req->prepare)
			req->prepare(req, attempt, req->prepare_arg);
		resp = sf_http_perform(req);
		resp->attempts = attempt + 1;
		if (resp->curl_error == 0 && !retryable(resp->status))
			return resp;
		if (resp->sink_bytes > 0)
			break;
		if (req->read_fn && req->prepare == NULL)
			break;
	}
	if (resp->curl_error != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("%s %s failed: %s", req->method,
						req->log_url ? req->log_url : "(url)", resp->error_text)));
	return resp;
}

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
