/*-------------------------------------------------------------------------
 *
 * storage_s3.c
 *		Amazon S3 backend of the storage interface (and S3-compatible stores
 *		reached through the endpoint option): single PUT, multipart upload,
 *		GET, HEAD, DELETE and ListObjectsV2, signed with SigV4 (sigv4.c).
 *
 * Addressing: virtual-hosted style https://<bucket>.s3.<region>.amazonaws.com
 * by default (path style at s3.<region>.amazonaws.com for bucket names with
 * dots, which the wildcard certificate does not cover); path style
 * <endpoint>/<bucket>/<key> when the server has an endpoint option, as
 * local stand-ins and most S3-compatible stores need.
 *
 * Every request carries x-amz-content-sha256 with the hex SHA-256 of its
 * body (required by S3 for SigV4) and, with session credentials,
 * x-amz-security-token as a signed header.  Requests are signed again
 * before every attempt (the prepare callback), so retries carry a fresh
 * X-Amz-Date.  Keys are URI-encoded once, '/' kept, as S3 signs them
 * (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).
 *
 * Multipart: POST ?uploads, PUT ?partNumber=N&uploadId=..., POST
 * ?uploadId=... with the part list (S3 may answer 200 with an <Error>
 * body), DELETE ?uploadId=... to abort
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpuoverview.html).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "miscadmin.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "aws_credentials.h"
#include "config.h"
#include "http.h"
#include "sigv4.h"
#include "xml_scan.h"
#include "storage.h"
#include "storage_backend.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct S3Conf
{
	char	   *base;			/* scheme://host[:port] */
	char	   *host;			/* Host header value */
	char	   *bucket_path;	/* "" (virtual-hosted) or "/bucket" (path style) */
	char	   *region;
	SfServerConfig *srv;		/* whose credentials (aws_credentials.c) */
	SfUserConfig *usr;
} S3Conf;

typedef struct S3Upload
{
	char	   *upload_id;
	StringInfoData parts;		/* <Part> elements for the completion */
} S3Upload;

/* One request being made: what prepare() needs to sign it. */
typedef struct S3Call
{
	S3Conf	   *conf;
	char	   *path;			/* encoded path as sent */
	char	   *query;			/* query as sent, or NULL */
	char	   *payload_hash;
	List	   *extra_headers;
} S3Call;

/* ---------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------
 */

/* Sign (again) before every attempt. */
static void
s3_prepare(SfHttpRequest *req, int attempt, void *arg)
{
	S3Call	   *c = (S3Call *) arg;
	S3Conf	   *conf = c->conf;
	SfAwsRequestSigning s;
	char		amz_date[17];
	const SfAwsCredentials *cr = sf_aws_credentials(conf->srv, conf->usr);

	memset(&s, 0, sizeof(s));
	s.host = conf->host;
	s.region = conf->region;
	s.service = "s3";
	s.s3_path_rules = true;
	s.content_sha256 = true;
	s.access_key_id = cr->access_key_id;
	s.secret_access_key = cr->secret_access_key;
	s.session_token = cr->session_token;
	sf_sigv4_amz_date(time(NULL), amz_date);
	req->headers = sf_sigv4_request_headers(&s, req->method, c->path, c->query,
											c->extra_headers, c->payload_hash,
											amz_date);
}

/*
 * Fill *req with a request for key (NULL: the bucket) with an in-memory
 * body (or a response sink), signed before every attempt (s3_prepare).
 */
static void
s3_build(SfStorage *st, const char *method, const char *key, const char *query,
		 const char *body, size_t body_len, List *extra_headers,
		 SfHttpWriteFn sink, void *sink_arg, SfHttpRequest *req)
{
	S3Conf	   *conf = (S3Conf *) st->priv;
	S3Call	   *c = palloc0(sizeof(S3Call));
	char	   *url;

	c->conf = conf;
	c->path = key ? psprintf("%s/%s", conf->bucket_path, sf_http_url_encode(key, true))
		: psprintf("%s/", conf->bucket_path);
	c->query = query ? pstrdup(query) : NULL;
	c->payload_hash = body_len > 0 ? sf_sha256_hex(body, body_len) : EMPTY_SHA256;
	c->extra_headers = extra_headers;

	url = psprintf("%s%s%s%s", conf->base, c->path, query ? "?" : "", query ? query : "");
	sf_http_init_request(req, method, url);
	req->log_url = psprintf("%s%s", conf->base, c->path);
	req->body = body;
	req->body_len = body_len;
	if (body == NULL && (strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0))
	{
		req->body = "";
		req->body_len = 0;
	}
	req->write_fn = sink;
	req->write_arg = sink_arg;
	req->prepare = s3_prepare;
	req->prepare_arg = c;
	req->decode_content = false;	/* objects are read byte for byte */
	sf_http_server_settings(req, st->srv);
	req->deadline = st->deadline;
}

/*
 * Temporary credentials the service says have expired (revoked, or a clock
 * behind the issuer's): drop them and try once more with new ones.
 * "ExpiredToken: The provided token has expired." (S3 error responses);
 * long-term keys never expire and are not retried.
 */
static SfHttpResponse *
s3_unless_expired(SfStorage *st, SfHttpRequest *req, SfHttpResponse *resp)
{
	S3Conf	   *conf = (S3Conf *) st->priv;

	if ((resp->status == 400 || resp->status == 403) && resp->sink_bytes == 0 &&
		sf_aws_credentials(conf->srv, conf->usr)->expiration != 0)
	{
		char	   *code = sf_xml_get(resp->body.data, "Code");

		if (code && strcmp(code, "ExpiredToken") == 0)
		{
			sf_aws_credentials_forget(conf->srv, conf->usr);
			resp = sf_http_request(req);
		}
	}
	return resp;
}

/*
 * Make a signed request (s3_build) and return the response; HTTP errors
 * are left to the caller, transport errors after retries are thrown by
 * sf_http_request.
 */
static SfHttpResponse *
s3_call(SfStorage *st, const char *method, const char *key, const char *query,
		const char *body, size_t body_len, List *extra_headers,
		SfHttpWriteFn sink, void *sink_arg, SfHttpRequest *reqout)
{
	s3_build(st, method, key, query, body, body_len, extra_headers, sink,
			 sink_arg, reqout);
	return s3_unless_expired(st, reqout, sf_http_request(reqout));
}

/* Throw for a non-2xx response, with S3's error Code and Message. */
static void
s3_check(SfHttpRequest *req, SfHttpResponse *resp)
{
	char	   *code;
	char	   *message;

	if (resp->status >= 200 && resp->status < 300)
		return;
	code = sf_xml_get(resp->body.data, "Code");
	message = sf_xml_get(resp->body.data, "Message");
	if (code == NULL && resp->status == 404)
		code = "NoSuchKey";
	if (code == NULL && resp->status == 403)
		code = "AccessDenied";
	if (code && strcmp(code, "NoSuchBucket") == 0)
	{
		char	   *bucket = sf_xml_get(resp->body.data, "BucketName");

		message = psprintf("The bucket \"%s\" does not exist%s%s",
						   bucket ? bucket : "", message ? ": " : ".",
						   message ? message : "");
	}
	sf_storage_http_error("S3", req, resp, code, message);
}

/* ---------------------------------------------------------------------
 * Backend operations
 * ---------------------------------------------------------------------
 */

static void
s3_open(SfStorage *st)
{
	S3Conf	   *conf = palloc0(sizeof(S3Conf));
	SfUserConfig *u = st->user;

	/* the chain is asked now, so that a missing credential fails at open */
	st->credential_source = pstrdup(sf_aws_credentials(st->srv, u)->source);
	conf->srv = st->srv;
	conf->usr = u;
	conf->region = st->srv->region ? st->srv->region : "us-east-1";

	if (st->srv->endpoint)
	{
		/* path style against the given endpoint */
		sf_aws_split_endpoint(st->srv->endpoint, &conf->base, &conf->host);
		conf->bucket_path = psprintf("/%s", st->bucket);
	}
	else if (strchr(st->bucket, '.') != NULL)
	{
		conf->host = psprintf("s3.%s.amazonaws.com", conf->region);
		conf->base = psprintf("https://%s", conf->host);
		conf->bucket_path = psprintf("/%s", st->bucket);
	}
	else
	{
		conf->host = psprintf("%s.s3.%s.amazonaws.com", st->bucket, conf->region);
		conf->base = psprintf("https://%s", conf->host);
		conf->bucket_path = "";
	}
	st->priv = conf;
}

static void
s3_put(SfStorageWriter *w, const char *data, size_t len)
{
	SfHttpRequest req;
	SfHttpResponse *resp;

	resp = s3_call(w->st, "PUT", w->key, NULL, data, len,
				   list_make1(psprintf("Content-Type: %s", w->content_type)),
				   NULL, NULL, &req);
	s3_check(&req, resp);
}

static void
s3_mp_start(SfStorageWriter *w)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	S3Upload   *up = palloc0(sizeof(S3Upload));
	SfHttpRequest req;
	SfHttpResponse *resp;

	initStringInfo(&up->parts);
	MemoryContextSwitchTo(old);

	resp = s3_call(w->st, "POST", w->key, "uploads", NULL, 0,
				   list_make1(psprintf("Content-Type: %s", w->content_type)),
				   NULL, NULL, &req);
	s3_check(&req, resp);
	up->upload_id = sf_xml_get(resp->body.data, "UploadId");
	if (up->upload_id == NULL || up->upload_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("S3 request POST %s?uploads returned no UploadId", req.log_url)));
	up->upload_id = MemoryContextStrdup(w->cxt, up->upload_id);
	w->priv = up;
}

static char *
upload_query(S3Upload *up, int part)
{
	char	   *id = sf_http_url_encode(up->upload_id, false);

	return part > 0 ? psprintf("partNumber=%d&uploadId=%s", part, id)
		: psprintf("uploadId=%s", id);
}

/*
 * The request of part w->nparts (storage.c sends it, at once or in the
 * background); returns its number for s3_mp_part_answer.
 */
static void *
s3_mp_part_request(SfStorageWriter *w, const char *data, size_t len,
				   SfHttpRequest *req)
{
	S3Upload   *up = (S3Upload *) w->priv;
	int		   *part = palloc(sizeof(int));

	if (w->nparts > 10000)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("object \"%s\" needs more than 10000 parts", sf_storage_uri(w->st, w->name)),
				 errhint("Raise sfexport.upload_part_size or lower max_file_size.")));
	*part = w->nparts;
	s3_build(w->st, "PUT", w->key, upload_query(up, w->nparts), data, len,
			 NIL, NULL, NULL, req);
	return part;
}

/* The answer to a part: its ETag kept for the completion, or an error. */
static void
s3_mp_part_answer(SfStorageWriter *w, SfHttpRequest *req, SfHttpResponse *resp,
				  void *arg)
{
	S3Upload   *up = (S3Upload *) w->priv;
	int			part = *(int *) arg;
	const char *etag;
	MemoryContext old;
	char	   *esc;

	resp = s3_unless_expired(w->st, req, resp);
	s3_check(req, resp);
	etag = sf_http_header(resp, "etag");
	if (etag == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("S3 request PUT %s (part %d) returned no ETag", req->log_url, part)));
	old = MemoryContextSwitchTo(w->cxt);
	esc = pstrdup(etag);
	/* ETags are quoted hex; escape the quotes for XML */
	appendStringInfo(&up->parts, "<Part><PartNumber>%d</PartNumber><ETag>", part);
	for (char *c = esc; *c; c++)
	{
		if (*c == '"')
			appendStringInfoString(&up->parts, "&quot;");
		else if (*c == '&')
			appendStringInfoString(&up->parts, "&amp;");
		else if (*c == '<')
			appendStringInfoString(&up->parts, "&lt;");
		else
			appendStringInfoChar(&up->parts, *c);
	}
	appendStringInfoString(&up->parts, "</ETag></Part>");
	MemoryContextSwitchTo(old);
}

static void
s3_mp_part(SfStorageWriter *w, const char *data, size_t len)
{
	SfHttpRequest req;
	void	   *arg = s3_mp_part_request(w, data, len, &req);

	s3_mp_part_answer(w, &req, sf_http_request(&req), arg);
}

static void
s3_mp_complete(SfStorageWriter *w)
{
	S3Upload   *up = (S3Upload *) w->priv;
	SfHttpRequest req;
	SfHttpResponse *resp;
	char	   *body = psprintf("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">%s</CompleteMultipartUpload>",
								up->parts.data);

	resp = s3_call(w->st, "POST", w->key, upload_query(up, 0), body, strlen(body),
				   list_make1("Content-Type: application/xml"), NULL, NULL, &req);
	s3_check(&req, resp);
	/* "a 200 OK response can contain either a success or an error" */
	if (strstr(resp->body.data, "<Error>") != NULL)
	{
		resp->status = 500;
		s3_check(&req, resp);
	}
}

/* One attempt, no throw for remote problems (see sf_storage_abort). */
static void
s3_mp_abort(SfStorageWriter *w)
{
	S3Upload   *up = (S3Upload *) w->priv;
	S3Conf	   *conf = (S3Conf *) w->st->priv;
	SfHttpRequest req;
	SfHttpResponse *resp;
	S3Call	   *c;
	char	   *q;

	if (up == NULL || up->upload_id == NULL)
		return;
	q = upload_query(up, 0);
	c = palloc0(sizeof(S3Call));
	c->conf = conf;
	c->path = psprintf("%s/%s", conf->bucket_path, sf_http_url_encode(w->key, true));
	c->query = q;
	c->payload_hash = EMPTY_SHA256;
	sf_http_init_request(&req, "DELETE", psprintf("%s%s?%s", conf->base, c->path, q));
	req.log_url = psprintf("%s%s", conf->base, c->path);
	sf_http_server_settings(&req, w->st->srv);
	req.timeout_ms = Min(req.timeout_ms, 30 * 1000);
	req.deadline = w->st->deadline;
	sf_http_apply_deadline(&req);
	s3_prepare(&req, 0, c);
	resp = sf_http_perform(&req);
	if (resp->curl_error != 0 || (resp->status != 204 && resp->status != 200 &&
								  resp->status != 404))
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not abort the multipart upload of \"%s\"",
						sf_storage_uri(w->st, w->name)),
				 resp->curl_error ? errdetail_internal("%s", resp->error_text)
				 : errdetail_internal("HTTP %ld %s", resp->status,
									  sf_xml_get(resp->body.data, "Code") ? sf_xml_get(resp->body.data, "Code") : ""),
				 errhint("A lifecycle rule with AbortIncompleteMultipartUpload removes such uploads.")));
}

static bool
s3_read(SfStorage *st, const char *key, SfHttpWriteFn sink, void *arg)
{
	SfHttpRequest req;
	SfHttpResponse *resp;

	/* the sink gets 2xx bodies only (http.c); errors stay in resp->body */
	resp = s3_call(st, "GET", key, NULL, NULL, 0, NIL, sink, arg, &req);
	if (resp->status == 404 && !(sf_xml_get(resp->body.data, "Code") &&
								 strcmp(sf_xml_get(resp->body.data, "Code"), "NoSuchBucket") == 0))
		return false;
	s3_check(&req, resp);
	return true;
}

static bool
s3_head(SfStorage *st, const char *key, int64 *size)
{
	SfHttpRequest req;
	SfHttpResponse *resp;
	const char *cl;

	resp = s3_call(st, "HEAD", key, NULL, NULL, 0, NIL, NULL, NULL, &req);
	if (resp->status == 404)
		return false;
	s3_check(&req, resp);
	cl = sf_http_header(resp, "content-length");
	*size = cl ? strtoll(cl, NULL, 10) : -1;
	return true;
}

static void
s3_del(SfStorage *st, const char *key)
{
	SfHttpRequest req;
	SfHttpResponse *resp;

	resp = s3_call(st, "DELETE", key, NULL, NULL, 0, NIL, NULL, NULL, &req);
	if (resp->status == 404 && sf_xml_get(resp->body.data, "Code") &&
		strcmp(sf_xml_get(resp->body.data, "Code"), "NoSuchKey") == 0)
		return;
	s3_check(&req, resp);
}

/*
 * ListObjectsV2 page after page, within the bounds (storage.c): the store
 * decides how many pages there are (IsTruncated), we decide how many we
 * read.  A continuation token that comes back unchanged would page forever.
 */
static List *
s3_list(SfStorage *st, const char *keyprefix, SfListBounds *b)
{
	List	   *out = NIL;
	char	   *token = NULL;

	for (;;)
	{
		SfHttpRequest req;
		SfHttpResponse *resp;
		const char *pos = NULL;
		char	   *key;
		char	   *trunc;
		char	   *next;
		StringInfoData q;

		CHECK_FOR_INTERRUPTS();
		if (b->pages >= b->max_pages ||
			(b->deadline != 0 && GetCurrentTimestamp() >= b->deadline))
		{
			b->truncated = true;
			break;
		}
		initStringInfo(&q);
		if (token)
			appendStringInfo(&q, "continuation-token=%s&", sf_http_url_encode(token, false));
		appendStringInfo(&q, "list-type=2&prefix=%s", sf_http_url_encode(keyprefix, false));
		if (token == NULL && b->start_after)
			appendStringInfo(&q, "&start-after=%s", sf_http_url_encode(b->start_after, false));
		b->pages++;
		resp = s3_call(st, "GET", NULL, q.data, NULL, 0, NIL, NULL, NULL, &req);
		s3_check(&req, resp);
		while ((key = sf_xml_next(resp->body.data, "Key", &pos)) != NULL)
			out = lappend(out, key);
		trunc = sf_xml_get(resp->body.data, "IsTruncated");
		next = sf_xml_get(resp->body.data, "NextContinuationToken");
		if (trunc == NULL || strcmp(trunc, "true") != 0 || next == NULL)
			break;
		if (token && strcmp(token, next) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("S3 request GET %s returned the same continuation token twice",
							req.log_url),
					 errdetail("ListObjectsV2 answered IsTruncated=true without moving on; the listing stopped after %d pages.",
							   b->pages)));
		token = next;
	}
	return out;
}

const SfStorageOps sf_storage_s3_ops = {
	.name = "S3",
	.open = s3_open,
	.put = s3_put,
	.mp_start = s3_mp_start,
	.mp_part = s3_mp_part,
	.mp_part_request = s3_mp_part_request,
	.mp_part_answer = s3_mp_part_answer,
	.mp_complete = s3_mp_complete,
	.mp_abort = s3_mp_abort,
	.read = s3_read,
	.head = s3_head,
	.del = s3_del,
	.list = s3_list,
};
