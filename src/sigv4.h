/*-------------------------------------------------------------------------
 *
 * sigv4.h
 *		AWS Signature Version 4, pure functions over OpenSSL (sigv4.c;
 *		protocols layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_SIGV4_H
#define SF_SIGV4_H

#include <time.h>

#include "nodes/pg_list.h"

typedef struct SfSigV4Params
{
	const char *method;
	const char *path;			/* URI path as sent (percent-encoded) */
	const char *query;			/* query string as sent, without '?', or NULL */
	List	   *headers;		/* char * "Name: value" to sign, Host included */
	const char *payload_hash;	/* hex SHA-256 of the body, or UNSIGNED-PAYLOAD */
	const char *access_key_id;
	const char *secret_access_key;
	const char *region;
	const char *service;		/* "s3", "glue", ... */
	const char *amz_date;		/* YYYYMMDDTHHMMSSZ, also sent as X-Amz-Date */
	bool		s3_path_rules;	/* S3: path used as is; else normalized and
								 * encoded a second time */
} SfSigV4Params;

typedef struct SfSigV4Result
{
	char	   *canonical_request;
	char	   *string_to_sign;
	char	   *signed_headers;
	char	   *signature;		/* hex */
	char	   *authorization;	/* value of the Authorization header */
} SfSigV4Result;

extern void sf_sigv4_sign(const SfSigV4Params *p, SfSigV4Result *res);
/* How a service's requests are signed (S3, Glue): see sf_sigv4_request_headers. */
typedef struct SfAwsRequestSigning
{
	const char *host;			/* Host header value */
	const char *region;
	const char *service;		/* "s3", "glue" */
	bool		s3_path_rules;
	bool		content_sha256; /* send x-amz-content-sha256 (S3) */
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;	/* NULL without session credentials */
} SfAwsRequestSigning;

extern List *sf_sigv4_request_headers(const SfAwsRequestSigning *s,
									  const char *method, const char *path,
									  const char *query, List *extra_headers,
									  const char *payload_hash,
									  const char *amz_date);
extern void sf_aws_split_endpoint(const char *endpoint, char **base, char **host);

extern void sf_sigv4_amz_date(time_t t, char *buf);	/* buf: 17 bytes */
extern char *sf_sha256_hex(const void *data, size_t len);

#endif							/* SF_SIGV4_H */
