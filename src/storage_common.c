/*-------------------------------------------------------------------------
 *
 * storage_common.c
 *		What the storage backends share and the interface builds on: the URI
 *		of an object for messages, and the error report of a failed HTTP
 *		response of a storage service (S3, GCS).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sfexport.h"

#include "config.h"
#include "http.h"
#include "storage.h"
#include "storage_backend.h"

/* The full URI of an object, for messages: s3://bucket/prefix/name etc. */
char *
sf_storage_uri(SfStorage *st, const char *name)
{
	switch (st->srv->location.kind)
	{
		case SF_LOCATION_S3:
			return psprintf("s3://%s/%s%s", st->bucket, st->prefix, name);
		case SF_LOCATION_GCS:
			return psprintf("gcs://%s/%s%s", st->bucket, st->prefix, name);
		default:
			return psprintf("file://%s%s", st->prefix, name);
	}
}

/*
 * Report a failed HTTP response of a storage service.  code and message
 * are the service's own (S3 XML Code/Message, GCS JSON error), when known.
 */
void
sf_storage_http_error(const char *service, SfHttpRequest *req,
					  SfHttpResponse *resp, const char *code,
					  const char *message)
{
	const char *url = req->log_url ? req->log_url : pstrdup(req->url);
	char	   *q = strchr(url, '?');
	int			sqlstate;
	const char *hint = NULL;

	if (q && req->log_url == NULL)
		*q = '\0';
	if (resp->status == 401 || resp->status == 403)
	{
		sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		if (code && (strcmp(code, "SignatureDoesNotMatch") == 0 ||
					 strcmp(code, "InvalidAccessKeyId") == 0))
			hint = "Check aws_access_key_id and aws_secret_access_key in the user mapping.";
		else
			hint = "Check the credentials in the user mapping and the permissions they grant on the bucket.";
	}
	else if (resp->status == 404)
		sqlstate = ERRCODE_UNDEFINED_OBJECT;
	else if (resp->status >= 500 || resp->status == 429)
		sqlstate = ERRCODE_CONNECTION_FAILURE;
	else
		sqlstate = ERRCODE_FDW_ERROR;

	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("%s request %s %s failed: HTTP %ld%s%s", service,
					req->method, url, resp->status,
					code ? " " : "", code ? code : ""),
			 message ? errdetail_internal("%s", message) : 0,
			 hint ? errhint("%s", hint) : 0));
}
