/*-------------------------------------------------------------------------
 *
 * aws_credentials.c
 *		The AWS credential chain, in the order of the AWS SDKs (botocore
 *		credentials.py create_credential_resolver; aws-sdk-cpp
 *		DefaultAWSCredentialsProviderChain; docs/credentials.md section 1):
 *
 *		1. the user mapping's aws_access_key_id / aws_secret_access_key;
 *		2. the postmaster's environment (AWS_ACCESS_KEY_ID, ...; read by
 *		   config.c into the user's config, marked aws_from_host);
 *		3. web identity: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (EKS
 *		   IRSA) through STS AssumeRoleWithWebIdentity (unsigned);
 *		4. the shared config and credentials files with a profile (the
 *		   server's aws_profile, else AWS_PROFILE, AWS_DEFAULT_PROFILE,
 *		   "default"): static keys, or role_arn with source_profile or
 *		   credential_source through STS AssumeRole;
 *		5. container credentials (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
 *		   _FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]);
 *		6. EC2 instance metadata with IMDSv2 session tokens (unless
 *		   AWS_EC2_METADATA_DISABLED=true);
 *
 *		then, when aws_role_arn is set (user mapping, else server), STS
 *		AssumeRole signed with whatever 1-6 gave.  Steps 2-6 are the host's
 *		credentials: only servers that may use them
 *		(sf_server_may_use_host_credentials) go past step 1.
 *
 *		Temporary credentials are cached per backend with their Expiration,
 *		renewed once half their life or 15 minutes (botocore's advisory
 *		window) are left, and never used in their last minute (or quarter
 *		of their life, for short test lifetimes); a failed renewal while the
 *		old ones are still usable keeps them and says so in a WARNING, as
 *		botocore does.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sf_jansson.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "sfexport.h"

#include "aws_credentials.h"
#include "config.h"
#include "http.h"
#include "iso8601.h"
#include "sigv4.h"
#include "xml_scan.h"

#define STS_VERSION "2011-06-15"
#define IMDS_DEFAULT_ENDPOINT "http://169.254.169.254"
#define ECS_HOST "http://169.254.170.2"
#define IMDS_TOKEN_TTL "21600"
#define TOKEN_FILE_MAX (64 * 1024)
#define ADVISORY_WINDOW_S 900	/* botocore _DEFAULT_ADVISORY_REFRESH_TIMEOUT */
#define MANDATORY_WINDOW_S 60

/* One cache entry: credentials of (server, user, options) in TopMemoryContext. */
typedef struct CachedCredentials
{
	struct CachedCredentials *next;
	char	   *key;
	SfAwsCredentials cr;
	time_t		refresh_at;		/* renew from then on */
	time_t		hard_at;		/* never use from then on */
} CachedCredentials;

static CachedCredentials *cache = NULL;

/* What the chain is resolving for: for messages and the sources' rules. */
typedef struct Chain
{
	SfServerConfig *srv;
	SfUserConfig *usr;
	StringInfoData tried;		/* "source: why not; ..." */
} Chain;

/* ---------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------
 */

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return (v && *v) ? v : NULL;
}

static void
tried(Chain *ch, const char *fmt,...) pg_attribute_printf(2, 3);

static void
tried(Chain *ch, const char *fmt,...)
{
	va_list		ap;
	char		buf[512];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	appendStringInfo(&ch->tried, "%s%s", ch->tried.len ? "; " : "", buf);
}

/*
 * Contents of a token file (web identity, container authorization),
 * re-read at every use: Kubernetes rotates them.  Never quoted in messages.
 */
static char *
read_token_file(const char *path, const char *what)
{
	int			fd = open(path, O_RDONLY | PG_BINARY, 0);
	StringInfoData buf;

	if (fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open the %s \"%s\": %m", what, path),
				 errhint("Check the environment the database server was started with and the file's permissions for the server's operating-system user.")));
	initStringInfo(&buf);
	for (;;)
	{
		char		chunk[4096];
		ssize_t		n = read(fd, chunk, sizeof(chunk));

		if (n < 0)
		{
			int			save = errno;

			close(fd);
			errno = save;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read the %s \"%s\": %m", what, path)));
		}
		if (n == 0)
			break;
		if (buf.len + n > TOKEN_FILE_MAX)
		{
			close(fd);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("the %s \"%s\" is larger than %d bytes", what, path, TOKEN_FILE_MAX)));
		}
		appendBinaryStringInfo(&buf, chunk, n);
	}
	close(fd);
	return buf.data;
}

/* Credentials copied into cxt. */
static void
copy_credentials(MemoryContext cxt, const SfAwsCredentials *from, SfAwsCredentials *to)
{
	to->access_key_id = MemoryContextStrdup(cxt, from->access_key_id);
	to->secret_access_key = MemoryContextStrdup(cxt, from->secret_access_key);
	to->session_token = from->session_token ? MemoryContextStrdup(cxt, from->session_token) : NULL;
	to->expiration = from->expiration;
	to->source = MemoryContextStrdup(cxt, from->source);
	to->from_host = from->from_host;
}

static void
free_credentials(SfAwsCredentials *cr)
{
	if (cr->secret_access_key)
	{
		explicit_bzero(cr->secret_access_key, strlen(cr->secret_access_key));
		pfree(cr->secret_access_key);
	}
	if (cr->session_token)
	{
		explicit_bzero(cr->session_token, strlen(cr->session_token));
		pfree(cr->session_token);
	}
	if (cr->access_key_id)
		pfree(cr->access_key_id);
	if (cr->source)
		pfree(cr->source);
	memset(cr, 0, sizeof(*cr));
}

/* The keys of a service's answer must be fit for the headers they go in. */
static void
check_received(const SfAwsCredentials *cr, const char *what)
{
	if (!sf_http_header_value_ok(cr->access_key_id) ||
		!sf_http_header_value_ok(cr->secret_access_key) ||
		(cr->session_token && !sf_http_header_value_ok(cr->session_token)))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("the credentials from %s contain control characters", what)));
}

/* Credentials from a JSON document (IMDS, container): AccessKeyId, ... */
static bool
from_json(const char *body, SfAwsCredentials *out, const char **why)
{
	json_error_t jerr;
	json_t	   *root = json_loads(body, 0, &jerr);
	const char *ak,
			   *sk,
			   *tok,
			   *exp,
			   *code;
	bool		ok = false;

	*why = "the answer is not JSON";
	if (root == NULL)
		return false;
	code = json_string_value(json_object_get(root, "Code"));
	ak = json_string_value(json_object_get(root, "AccessKeyId"));
	sk = json_string_value(json_object_get(root, "SecretAccessKey"));
	tok = json_string_value(json_object_get(root, "Token"));
	exp = json_string_value(json_object_get(root, "Expiration"));
	if (code && strcmp(code, "Success") != 0)
		*why = "the answer's Code is not Success";
	else if (ak == NULL || sk == NULL || *ak == '\0' || *sk == '\0')
		*why = "the answer has no AccessKeyId and SecretAccessKey";
	else if (exp && !sf_parse_iso8601_utc(exp, &out->expiration))
		*why = "the answer's Expiration is not an ISO 8601 time";
	else
	{
		out->access_key_id = pstrdup(ak);
		out->secret_access_key = pstrdup(sk);
		out->session_token = tok && *tok ? pstrdup(tok) : NULL;
		if (exp == NULL)
			out->expiration = 0;
		ok = true;
	}
	json_decref(root);
	return ok;
}

/* ---------------------------------------------------------------------
 * STS (Query API, https://docs.aws.amazon.com/STS/latest/APIReference/)
 * ---------------------------------------------------------------------
 */

typedef struct StsCall
{
	SfAwsRequestSigning sign;	/* access key NULL: unsigned */
	const char *body;
} StsCall;

/* Sign (again) before every attempt: a fresh X-Amz-Date. */
static void
sts_prepare(SfHttpRequest *req, int attempt, void *arg)
{
	StsCall    *c = (StsCall *) arg;
	List	   *h = list_make1("Content-Type: application/x-www-form-urlencoded; charset=utf-8");
	char		amz_date[17];

	if (c->sign.access_key_id == NULL)
	{
		req->headers = h;
		return;
	}
	sf_sigv4_amz_date(time(NULL), amz_date);
	req->headers = sf_sigv4_request_headers(&c->sign, "POST", "/", NULL, h,
											sf_sha256_hex(c->body, strlen(c->body)),
											amz_date);
}

/*
 * The STS endpoint: the server's sts_endpoint (a VPC endpoint, a stand-in),
 * else AWS_ENDPOINT_URL_STS ("Service-specific endpoints" of the SDK
 * reference), else the regional endpoint of the server's region
 * (or AWS_REGION / AWS_DEFAULT_REGION), else the global one signed for
 * us-east-1 (sdkref "AWS STS Regionalized endpoints").
 */
static void
sts_endpoint(SfServerConfig *srv, char **base, char **host, const char **region)
{
	const char *r = srv->region ? srv->region : env("AWS_REGION");

	if (r == NULL)
		r = env("AWS_DEFAULT_REGION");
	*region = r ? r : "us-east-1";
	if (srv->sts_endpoint)
		sf_aws_split_endpoint(srv->sts_endpoint, base, host);
	else if (env("AWS_ENDPOINT_URL_STS"))
		sf_aws_split_endpoint(env("AWS_ENDPOINT_URL_STS"), base, host);
	else if (r)
	{
		*host = psprintf("sts.%s.amazonaws.com", r);
		*base = psprintf("https://%s", *host);
	}
	else
	{
		*host = "sts.amazonaws.com";
		*base = "https://sts.amazonaws.com";
	}
}

/*
 * POST an STS action; signer NULL: unsigned (AssumeRoleWithWebIdentity).
 * On success out gets the <Credentials> of the answer.
 */
static void
sts_call(Chain *ch, const char *action, const char *params,
		 const SfAwsCredentials *signer, const char *role_arn,
		 SfAwsCredentials *out)
{
	StsCall    *c = palloc0(sizeof(StsCall));
	SfHttpRequest req;
	SfHttpResponse *resp;
	char	   *base;
	char	   *host;
	const char *region;
	char	   *exp;
	char	   *code;
	char	   *message;

	sts_endpoint(ch->srv, &base, &host, &region);
	c->body = psprintf("Action=%s&Version=%s&%s", action, STS_VERSION, params);
	if (signer)
	{
		c->sign.host = host;
		c->sign.region = region;
		c->sign.service = "sts";
		c->sign.access_key_id = signer->access_key_id;
		c->sign.secret_access_key = signer->secret_access_key;
		c->sign.session_token = signer->session_token;
	}
	sf_http_init_request(&req, "POST", psprintf("%s/", base));
	req.body = c->body;
	req.body_len = strlen(c->body);
	req.prepare = sts_prepare;
	req.prepare_arg = c;
	sf_http_server_settings(&req, ch->srv);
	req.timeout_ms = Min(req.timeout_ms, 30 * 1000);
	req.max_attempts = 3;
	resp = sf_http_request(&req);

	if (resp->status != 200)
	{
		code = sf_xml_get(resp->body.data, "Code");
		message = sf_xml_get(resp->body.data, "Message");
		ereport(ERROR,
				(errcode(resp->status >= 500 ? ERRCODE_CONNECTION_FAILURE
						 : ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("AWS STS %s of role \"%s\" failed for server \"%s\"",
						action, role_arn, ch->srv->servername),
				 errdetail_internal("POST %s/ answered HTTP %ld %s: %s", base, resp->status,
									code ? code : "", message ? message : "(no message)"),
				 errhint("%s",
						 code && strcmp(code, "AccessDenied") == 0
						 ? "Check the role's trust policy (the principal, sts:ExternalId, the web identity's aud and sub) and that the caller may call sts:AssumeRole on it."
						 : code && (strcmp(code, "ExpiredToken") == 0 || strcmp(code, "ExpiredTokenException") == 0)
						 ? "The credentials or the web identity token used to ask for the role have expired: check what renews them."
						 : "Check the role ARN, the base credentials and the STS endpoint (AWS_ENDPOINT_URL_STS, the server's region).")));
	}
	out->access_key_id = sf_xml_get(resp->body.data, "AccessKeyId");
	out->secret_access_key = sf_xml_get(resp->body.data, "SecretAccessKey");
	out->session_token = sf_xml_get(resp->body.data, "SessionToken");
	exp = sf_xml_get(resp->body.data, "Expiration");
	if (out->access_key_id == NULL || out->secret_access_key == NULL ||
		out->session_token == NULL || !sf_parse_iso8601_utc(exp, &out->expiration))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("AWS STS %s answered without usable credentials", action),
				 errdetail_internal("POST %s/ answered HTTP 200 without AccessKeyId, SecretAccessKey, SessionToken and an ISO 8601 Expiration.", base)));
	check_received(out, "AWS STS");
}

/* A RoleSessionName: 2..64 of [\w+=,.@-] (STS API reference). */
static char *
session_name(const char *given)
{
	if (given)
		return pstrdup(given);
	return psprintf("sfexport-%u-%d", MyDatabaseId, MyProcPid);
}

/* STS AssumeRole of role_arn signed with base. */
static void
assume_role(Chain *ch, const SfAwsCredentials *base, const char *role_arn,
			const char *external_id, const char *session, const char *duration,
			SfAwsCredentials *out)
{
	StringInfoData p;

	initStringInfo(&p);
	appendStringInfo(&p, "RoleArn=%s&RoleSessionName=%s",
					 sf_http_url_encode(role_arn, false),
					 sf_http_url_encode(session_name(session), false));
	if (duration)
		appendStringInfo(&p, "&DurationSeconds=%s", sf_http_url_encode(duration, false));
	if (external_id)
		appendStringInfo(&p, "&ExternalId=%s", sf_http_url_encode(external_id, false));
	sts_call(ch, "AssumeRole", p.data, base, role_arn, out);
}

/* STS AssumeRoleWithWebIdentity with the token in token_file. */
static void
assume_role_web_identity(Chain *ch, const char *role_arn, const char *token_file,
						 const char *session, SfAwsCredentials *out)
{
	char	   *token = read_token_file(token_file, "web identity token file");
	char	   *params;

	params = psprintf("RoleArn=%s&RoleSessionName=%s&WebIdentityToken=%s",
					  sf_http_url_encode(role_arn, false),
					  sf_http_url_encode(session_name(session), false),
					  sf_http_url_encode(token, false));
	explicit_bzero(token, strlen(token));
	sts_call(ch, "AssumeRoleWithWebIdentity", params, NULL, role_arn, out);
}

/* ---------------------------------------------------------------------
 * Container credentials (sdkref "Container credential provider";
 * botocore ContainerProvider, ContainerMetadataFetcher)
 * ---------------------------------------------------------------------
 */

/* May a plain-http full URI go to this host (loopback, ECS, EKS Pod Identity)? */
static bool
container_http_host_ok(const char *url)
{
	const char *h = url + strlen("http://");
	size_t		len;
	char	   *host;
	struct in_addr a4;

	len = (*h == '[') ? strcspn(h, "]") + 1 : strcspn(h, ":/?#");
	host = pnstrdup(h, len);
	if (strchr(host, '@'))
		return false;
	/* 127.0.0.0/8 as an address, never a name that merely starts so */
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127 ||
			strcmp(host, "169.254.170.2") == 0 || strcmp(host, "169.254.170.23") == 0;
	return strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
		strcmp(host, "[fd00:ec2::23]") == 0;
}

static bool
from_container(Chain *ch, SfAwsCredentials *out)
{
	const char *rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
	const char *token_file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	char	   *url;
	char	   *token = NULL;
	SfHttpRequest req;
	SfHttpResponse *resp;
	const char *why;

	if (rel == NULL && full == NULL)
	{
		tried(ch, "container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and _FULL_URI not set");
		return false;
	}
	if (rel)
		url = psprintf("%s%s%s", ECS_HOST, rel[0] == '/' ? "" : "/", rel);
	else
	{
		url = pstrdup(full);
		if (!(strncmp(url, "https://", 8) == 0 ||
			  (strncmp(url, "http://", 7) == 0 && container_http_host_ok(url))))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("AWS_CONTAINER_CREDENTIALS_FULL_URI is not an allowed container credentials URL"),
					 errdetail("Over plain http only loopback addresses, 169.254.170.2 (ECS) and 169.254.170.23 or fd00:ec2::23 (EKS Pod Identity) are allowed; anything else must be https."),
					 errhint("Check the environment the database server was started with.")));
	}
	/* the file wins over the variable (botocore ContainerProvider._build_headers) */
	if (token_file)
		token = read_token_file(token_file, "container authorization token file");
	else if (env("AWS_CONTAINER_AUTHORIZATION_TOKEN"))
		token = pstrdup(env("AWS_CONTAINER_AUTHORIZATION_TOKEN"));
	if (token && (strchr(token, '\r') || strchr(token, '\n') || !sf_http_header_value_ok(token)))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("the container authorization token contains control characters"),
				 errhint("Check AWS_CONTAINER_AUTHORIZATION_TOKEN or the file AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE names (no trailing line break).")));
	sf_http_init_request(&req, "GET", url);
	req.log_url = url;
	if (token)
		req.headers = list_make1(psprintf("Authorization: %s", token));
	req.no_proxy = true;
	req.connect_timeout_ms = 2000;
	req.timeout_ms = 2000;
	req.max_attempts = 3;		/* botocore: 2 s timeout, 3 attempts */
	req.backoff_base_ms = 1000;
	resp = sf_http_request(&req);
	if (resp->status != 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the container credentials endpoint refused the request for server \"%s\"",
						ch->srv->servername),
				 errdetail_internal("GET %s answered HTTP %ld.", url, resp->status),
				 errhint("Check AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI and the authorization token in the database server's environment.")));
	if (!from_json(resp->body.data, out, &why))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("the container credentials endpoint gave no usable credentials: %s", why),
				 errdetail_internal("GET %s answered HTTP 200.", url)));
	check_received(out, "the container credentials endpoint");
	out->source = psprintf("container credentials (%s)", rel ? "ECS task role" : "full URI");
	return true;
}

/* ---------------------------------------------------------------------
 * EC2 instance metadata, IMDSv2 (EC2 User Guide "Use IMDSv2",
 * "Retrieve security credentials from instance metadata"; botocore
 * utils.py IMDSFetcher, InstanceMetadataFetcher)
 * ---------------------------------------------------------------------
 */

/* One IMDS request: one attempt (IMDS answers fast or not at all), no proxy. */
static SfHttpResponse *
imds_request(const char *method, const char *url, const char *header)
{
	SfHttpRequest req;
	const char *t = env("AWS_METADATA_SERVICE_TIMEOUT");
	int			timeout_ms = t ? Max(1, atoi(t)) * 1000 : 1000;

	sf_http_init_request(&req, method, url);
	req.headers = list_make1(pstrdup(header));
	if (strcmp(method, "PUT") == 0)
	{
		req.body = "";
		req.body_len = 0;
	}
	req.no_proxy = true;
	req.connect_timeout_ms = timeout_ms;
	req.timeout_ms = timeout_ms * 2;
	return sf_http_perform(&req);
}

static bool
from_instance_metadata(Chain *ch, SfAwsCredentials *out)
{
	const char *disabled = env("AWS_EC2_METADATA_DISABLED");
	const char *ep = env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
	char	   *base = pstrdup(ep ? ep : IMDS_DEFAULT_ENDPOINT);
	SfHttpResponse *resp;
	char	   *token;
	char	   *tokhdr;
	char	   *role;
	const char *why;

	if (disabled && pg_strcasecmp(disabled, "true") == 0)
	{
		tried(ch, "instance metadata: AWS_EC2_METADATA_DISABLED is true");
		return false;
	}
	if (base[0] && base[strlen(base) - 1] == '/')
		base[strlen(base) - 1] = '\0';

	resp = imds_request("PUT", psprintf("%s/latest/api/token", base),
						"X-aws-ec2-metadata-token-ttl-seconds: " IMDS_TOKEN_TTL);
	if (resp->status != 200 || resp->body.len == 0)
	{
		if (resp->status == 0)
			tried(ch, "instance metadata at %s: %s", base,
				  resp->error_text ? resp->error_text : "no answer");
		else
			tried(ch, "instance metadata at %s: PUT /latest/api/token answered HTTP %ld",
				  base, resp->status);
		return false;
	}
	token = pstrdup(resp->body.data);
	if (!sf_http_header_value_ok(token))
	{
		tried(ch, "instance metadata at %s: the session token is not a header value", base);
		return false;
	}
	tokhdr = psprintf("X-aws-ec2-metadata-token: %s", token);
	resp = imds_request("GET", psprintf("%s/latest/meta-data/iam/security-credentials/", base), tokhdr);
	if (resp->status != 200 || resp->body.len == 0)
	{
		tried(ch, "instance metadata at %s: %s", base,
			  resp->status == 404 ? "no instance profile (role) on this instance"
			  : psprintf("the role list answered HTTP %ld", resp->status));
		return false;
	}
	role = pnstrdup(resp->body.data, strcspn(resp->body.data, "\r\n"));
	if (role[0] == '\0' || strchr(role, '/') || strchr(role, '?') || strchr(role, '#'))
	{
		tried(ch, "instance metadata at %s: the role list is not a role name", base);
		return false;
	}
	resp = imds_request("GET", psprintf("%s/latest/meta-data/iam/security-credentials/%s",
										base, sf_http_url_encode(role, false)), tokhdr);
	explicit_bzero(token, strlen(token));
	explicit_bzero(tokhdr, strlen(tokhdr));
	if (resp->status != 200)
	{
		tried(ch, "instance metadata at %s: the credentials of role \"%s\" answered HTTP %ld",
			  base, role, resp->status);
		return false;
	}
	if (!from_json(resp->body.data, out, &why))
	{
		tried(ch, "instance metadata at %s: %s", base, why);
		return false;
	}
	check_received(out, "the instance metadata service");
	out->source = psprintf("instance metadata (role %s)", role);
	return true;
}

/* ---------------------------------------------------------------------
 * Environment and web identity
 * ---------------------------------------------------------------------
 */

static bool
from_environment(Chain *ch, SfAwsCredentials *out)
{
	const char *id = env("AWS_ACCESS_KEY_ID");
	const char *secret = env("AWS_SECRET_ACCESS_KEY");
	const char *token = env("AWS_SESSION_TOKEN");

	if (token == NULL)
		token = env("AWS_SECURITY_TOKEN");
	if (id == NULL || secret == NULL)
	{
		tried(ch, "environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set");
		return false;
	}
	out->access_key_id = pstrdup(id);
	out->secret_access_key = pstrdup(secret);
	out->session_token = token ? pstrdup(token) : NULL;
	if (env("AWS_CREDENTIAL_EXPIRATION") &&
		!sf_parse_iso8601_utc(env("AWS_CREDENTIAL_EXPIRATION"), &out->expiration))
		out->expiration = 0;
	check_received(out, "the database server's environment");
	out->source = pstrdup("environment");
	return true;
}

static bool
from_web_identity(Chain *ch, SfAwsCredentials *out)
{
	const char *role = env("AWS_ROLE_ARN");
	const char *file = env("AWS_WEB_IDENTITY_TOKEN_FILE");

	if (role == NULL || file == NULL)
	{
		tried(ch, "web identity: AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE not set");
		return false;
	}
	assume_role_web_identity(ch, role, file, env("AWS_ROLE_SESSION_NAME"), out);
	out->source = psprintf("web identity (role %s)", role);
	return true;
}

/* ---------------------------------------------------------------------
 * Shared config and credentials files (sdkref "Shared config and
 * credentials files"; botocore configloader.py build_profile_map)
 * ---------------------------------------------------------------------
 */

typedef struct IniValue
{
	char	   *key;
	char	   *value;
} IniValue;

static char *
trim(char *s)
{
	char	   *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/*
 * The keys of one profile in an INI file: in the config file the section
 * is [profile NAME] ([default] or [profile default] for the default), in
 * the credentials file [NAME].  Later values of a key win; nested values
 * (indented lines under "key =") are skipped.  *exists: the file exists.
 */
static List *
ini_profile(const char *path, const char *profile, bool config_file,
			bool *exists, bool *found)
{
	FILE	   *f = path ? AllocateFile(path, "r") : NULL;
	char		line[4096];
	bool		in = false;
	bool		nested = false;
	List	   *kv = NIL;

	*exists = f != NULL;
	*found = false;
	if (f == NULL)
		return NIL;
	while (fgets(line, sizeof(line), f))
	{
		char	   *l;
		char	   *eq;

		line[strcspn(line, "\n")] = '\0';
		if ((line[0] == ' ' || line[0] == '\t') && nested)
			continue;			/* a nested value */
		nested = false;
		l = trim(line);
		if (*l == '\0' || *l == '#' || *l == ';')
			continue;
		if (*l == '[')
		{
			char	   *end = strchr(l, ']');
			char	   *name;

			if (end == NULL)
			{
				in = false;
				continue;
			}
			*end = '\0';
			name = trim(l + 1);
			if (config_file)
			{
				if (strncmp(name, "profile", 7) == 0 && (name[7] == ' ' || name[7] == '\t'))
					in = strcmp(trim(name + 8), profile) == 0;
				else
					in = strcmp(profile, "default") == 0 && strcmp(name, "default") == 0;
			}
			else
				in = strcmp(name, profile) == 0;
			if (in)
				*found = true;
			continue;
		}
		if (!in || (eq = strchr(l, '=')) == NULL)
			continue;
		*eq = '\0';
		{
			IniValue   *v = palloc(sizeof(IniValue));

			v->key = pstrdup(trim(l));
			v->value = pstrdup(trim(eq + 1));
			if (*v->value == '\0')
				nested = true;
			kv = lappend(kv, v);
		}
	}
	FreeFile(f);
	return kv;
}

static const char *
ini_get(List *kv, const char *key)
{
	const char *v = NULL;
	ListCell   *lc;

	foreach(lc, kv)
	{
		IniValue   *iv = lfirst(lc);

		if (strcmp(iv->key, key) == 0)
			v = iv->value;
	}
	return (v && *v) ? v : NULL;
}

static char *
home_file(const char *envname, const char *rel)
{
	const char *home;

	if (env(envname))
		return pstrdup(env(envname));
	home = env("HOME");
	return home ? psprintf("%s/%s", home, rel) : NULL;
}

pg_noreturn static void profile_error(const char *profile, const char *what);

static void
profile_error(const char *profile, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_CONFIG_FILE_ERROR),
			 errmsg("AWS profile \"%s\" cannot be used: %s", profile, what),
			 errhint("Check the profile in the shared config and credentials files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, ~/.aws/ of the database server's operating-system user).")));
}

/*
 * Credentials of a profile: its static keys, or role_arn assumed with the
 * credentials of source_profile (recursively) or credential_source, or
 * role_arn + web_identity_token_file.  Returns false only for a profile
 * not found when explicit is false (the default profile need not exist).
 */
static bool
profile_credentials(Chain *ch, const char *profile, bool explicit, int depth,
					SfAwsCredentials *out)
{
	char	   *cfg_path = home_file("AWS_CONFIG_FILE", ".aws/config");
	char	   *cred_path = home_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
	bool		cfg_exists,
				cred_exists,
				in_cfg,
				in_cred;
	List	   *kv;
	const char *role;
	const char *src_profile;
	const char *src;
	SfAwsCredentials base;

	/* the credentials file wins over the config file (botocore session.py) */
	kv = ini_profile(cfg_path, profile, true, &cfg_exists, &in_cfg);
	kv = list_concat(kv, ini_profile(cred_path, profile, false, &cred_exists, &in_cred));
	if (!in_cfg && !in_cred)
	{
		if (explicit || depth > 0)
			profile_error(profile, (cfg_exists || cred_exists)
						  ? "no such profile in the shared files"
						  : "neither the shared config file nor the credentials file exists");
		tried(ch, "profile \"%s\": %s", profile, (cfg_exists || cred_exists)
			  ? "not in the shared files" : "no shared config or credentials file");
		return false;
	}
	if (ini_get(kv, "credential_process"))
		profile_error(profile, "credential_process is not supported");
	if (ini_get(kv, "sso_session") || ini_get(kv, "sso_start_url"))
		profile_error(profile, "SSO profiles are not supported");
	if (ini_get(kv, "mfa_serial"))
		profile_error(profile, "a role that needs MFA cannot be assumed by a database server");

	role = ini_get(kv, "role_arn");
	if (role == NULL)
	{
		const char *id = ini_get(kv, "aws_access_key_id");
		const char *secret = ini_get(kv, "aws_secret_access_key");
		const char *token = ini_get(kv, "aws_session_token");

		if (token == NULL)
			token = ini_get(kv, "aws_security_token");
		if (id == NULL || secret == NULL)
		{
			if (explicit || depth > 0)
				profile_error(profile, "it has neither aws_access_key_id and aws_secret_access_key nor role_arn");
			tried(ch, "profile \"%s\": no keys and no role_arn", profile);
			return false;
		}
		out->access_key_id = pstrdup(id);
		out->secret_access_key = pstrdup(secret);
		out->session_token = token ? pstrdup(token) : NULL;
		check_received(out, "the shared credentials file");
		out->source = psprintf("profile \"%s\"", profile);
		return true;
	}

	if (!sf_aws_role_arn_ok(role))
		profile_error(profile, "its role_arn is not a role ARN");
	src_profile = ini_get(kv, "source_profile");
	src = ini_get(kv, "credential_source");
	memset(&base, 0, sizeof(base));
	if (ini_get(kv, "web_identity_token_file") && src_profile == NULL && src == NULL)
	{
		assume_role_web_identity(ch, role, ini_get(kv, "web_identity_token_file"),
								 ini_get(kv, "role_session_name"), out);
		out->source = psprintf("profile \"%s\" (web identity, role %s)", profile, role);
		return true;
	}
	if (src_profile && src)
		profile_error(profile, "it has both source_profile and credential_source");
	if (src_profile == NULL && src == NULL)
		profile_error(profile, "its role_arn needs source_profile or credential_source");
	if (src_profile)
	{
		if (strcmp(src_profile, profile) == 0 && ini_get(kv, "aws_access_key_id") &&
			ini_get(kv, "aws_secret_access_key"))
		{
			/* a profile that names itself uses its own keys (botocore) */
			base.access_key_id = pstrdup(ini_get(kv, "aws_access_key_id"));
			base.secret_access_key = pstrdup(ini_get(kv, "aws_secret_access_key"));
			base.session_token = ini_get(kv, "aws_session_token")
				? pstrdup(ini_get(kv, "aws_session_token")) : NULL;
		}
		else if (depth >= 4)
			profile_error(profile, "source_profile chains longer than 4 (or a cycle)");
		else
			profile_credentials(ch, src_profile, true, depth + 1, &base);
	}
	else if (strcmp(src, "Environment") == 0)
	{
		if (!from_environment(ch, &base))
			profile_error(profile, "credential_source Environment, but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set");
	}
	else if (strcmp(src, "Ec2InstanceMetadata") == 0)
	{
		if (!from_instance_metadata(ch, &base))
			profile_error(profile, "credential_source Ec2InstanceMetadata, but the instance metadata service gave no credentials");
	}
	else if (strcmp(src, "EcsContainer") == 0)
	{
		if (!from_container(ch, &base))
			profile_error(profile, "credential_source EcsContainer, but AWS_CONTAINER_CREDENTIALS_* is not set");
	}
	else
		profile_error(profile, "credential_source must be Environment, Ec2InstanceMetadata or EcsContainer");

	assume_role(ch, &base, role, ini_get(kv, "external_id"),
				ini_get(kv, "role_session_name"), ini_get(kv, "duration_seconds"), out);
	out->source = psprintf("profile \"%s\" (role %s)", profile, role);
	return true;
}

static bool
from_profile(Chain *ch, SfAwsCredentials *out)
{
	const char *p = ch->srv->aws_profile;
	bool		explicit = true;

	if (p == NULL)
		p = env("AWS_PROFILE");
	if (p == NULL)
		p = env("AWS_DEFAULT_PROFILE");
	if (p == NULL)
	{
		p = "default";
		explicit = false;
	}
	return profile_credentials(ch, p, explicit, 0, out);
}

/* ---------------------------------------------------------------------
 * The chain and the cache
 * ---------------------------------------------------------------------
 */

/* The base credentials: steps 1 to 6. */
static void
resolve_base(Chain *ch, SfAwsCredentials *out)
{
	SfUserConfig *usr = ch->usr;
	char	   *role;

	if (usr->aws_access_key_id && usr->aws_secret_access_key &&
		!(usr->aws_from_host && ch->srv->aws_profile))
	{
		out->access_key_id = usr->aws_access_key_id;
		out->secret_access_key = usr->aws_secret_access_key;
		out->session_token = usr->aws_session_token;
		out->source = pstrdup(usr->aws_from_host ? "environment" : "user mapping");
		out->from_host = usr->aws_from_host;
		return;
	}
	tried(ch, "user mapping: no aws_access_key_id");
	if (!usr->host_credentials_allowed)
	{
		role = OidIsValid(usr->userid) ? GetUserNameFromId(usr->userid, true) : NULL;
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("no AWS credentials for server \"%s\"", ch->srv->servername),
				 errdetail("The user mapping gives no access key, and only servers owned by a superuser may use the database server's own AWS credentials (environment, web identity, shared files, container or instance role)."),
				 errhint("Set aws_access_key_id and aws_secret_access_key in the user mapping for %s on server %s (CREATE or ALTER USER MAPPING ... OPTIONS (aws_access_key_id '...', aws_secret_access_key '...')).",
						 role ? quote_identifier(role) : "the role", quote_identifier(ch->srv->servername))));
	}
	out->from_host = true;
	/*
	 * config.c put environment keys into usr (aws_from_host): step 2 found
	 * none, or the server names a profile, and then the environment is
	 * skipped as botocore's EnvProvider is for an explicit profile.
	 */
	if (usr->aws_from_host)
		tried(ch, "environment: skipped, the server names aws_profile");
	else
		tried(ch, "environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set");
	if (from_web_identity(ch, out) || from_profile(ch, out) ||
		from_container(ch, out) || from_instance_metadata(ch, out))
	{
		out->from_host = true;
		return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
			 errmsg("no AWS credentials for server \"%s\"", ch->srv->servername),
			 errdetail("Tried the AWS credential chain: %s.", ch->tried.data),
			 errhint("Set aws_access_key_id and aws_secret_access_key in the user mapping, or give the database server credentials of its host: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE (EKS), a profile in ~/.aws, a task role (ECS) or an instance profile (EC2).")));
}

/*
 * A role (or external ID) that a user mapping names is assumed with the
 * base credentials.  When the mapping brings no keys those are the host's
 * (steps 2 to 6), and the mapping's maker would choose which role the
 * host's identity assumes: any role that trusts the host, not only the
 * one the superuser who owns the server configured.  So, as for GCS
 * external accounts (storage_gcs.c), only a mapping a superuser made (its
 * own, or PUBLIC, which only the server's owner can create) may name them
 * there; others bring keys of their own (docs/security-review.md).
 * Checked before any host source is asked.
 */
static void
check_mapping_role(Chain *ch)
{
	SfUserConfig *usr = ch->usr;
	bool		own_keys = usr->aws_access_key_id && usr->aws_secret_access_key &&
		!usr->aws_from_host;

	if ((usr->aws_role_arn || usr->aws_external_id) && !own_keys &&
		usr->host_credentials_allowed &&
		OidIsValid(usr->mapping_user) && !superuser_arg(usr->mapping_user))
	{
		const char *who = GetUserNameFromId(usr->mapping_user, true);

		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the user mapping for %s on server \"%s\" may not name aws_role_arn or aws_external_id without keys of its own",
						who ? quote_identifier(who) : "its role", ch->srv->servername),
				 errdetail("Without aws_access_key_id in the mapping the role would be assumed with the database server's own AWS credentials, and only a superuser may choose which role those assume."),
				 errhint("Give the mapping aws_access_key_id and aws_secret_access_key, or drop aws_role_arn and aws_external_id from it and ask a superuser to set them on the server or on the PUBLIC mapping.")));
	}
}

/* The whole chain: base credentials, then aws_role_arn if set. */
static void
resolve(Chain *ch, const char *role_arn, const char *external_id, SfAwsCredentials *out)
{
	SfAwsCredentials base;

	check_mapping_role(ch);
	memset(&base, 0, sizeof(base));
	resolve_base(ch, &base);
	if (role_arn == NULL)
	{
		*out = base;
		return;
	}
	assume_role(ch, &base, role_arn, external_id, NULL, NULL, out);
	out->source = psprintf("%s, then role %s", base.source, role_arn);
	out->from_host = base.from_host;
}

static void
role_of(SfServerConfig *srv, SfUserConfig *usr, const char **role, const char **ext)
{
	*role = usr->aws_role_arn ? usr->aws_role_arn : srv->aws_role_arn;
	*ext = usr->aws_external_id ? usr->aws_external_id : srv->aws_external_id;
}

/* What the cached credentials depend on (no secret in clear). */
static char *
cache_key(SfServerConfig *srv, SfUserConfig *usr, const char *role, const char *ext)
{
	return psprintf("%u|%u|%s|%s|%s|%s|%s|%d", srv->serverid, usr->userid,
					usr->aws_access_key_id ? usr->aws_access_key_id : "",
					usr->aws_secret_access_key
					? sf_sha256_hex(usr->aws_secret_access_key, strlen(usr->aws_secret_access_key)) : "",
					role ? role : "", ext ? ext : "",
					srv->aws_profile ? srv->aws_profile : "",
					(int) usr->host_credentials_allowed);
}

static CachedCredentials *
cache_find(const char *key)
{
	for (CachedCredentials *e = cache; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void
cache_drop(CachedCredentials *e)
{
	CachedCredentials **pp = &cache;

	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp)
		*pp = e->next;
	free_credentials(&e->cr);
	pfree(e->key);
	pfree(e);
}

/* Keep fetched credentials; when to renew them and when they are unusable. */
static CachedCredentials *
cache_store(const char *key, const SfAwsCredentials *cr)
{
	CachedCredentials *e = MemoryContextAllocZero(TopMemoryContext, sizeof(CachedCredentials));
	time_t		now = time(NULL);
	time_t		left = cr->expiration - now;

	e->key = MemoryContextStrdup(TopMemoryContext, key);
	copy_credentials(TopMemoryContext, cr, &e->cr);
	if (cr->expiration == 0)
	{
		e->refresh_at = now + 3600;
		e->hard_at = (time_t) PG_INT64_MAX;
	}
	else
	{
		e->refresh_at = cr->expiration - Min(ADVISORY_WINDOW_S, left / 2);
		e->hard_at = cr->expiration - Min(MANDATORY_WINDOW_S, left / 4);
	}
	e->next = cache;
	cache = e;
	return e;
}

/* Credentials that expire before they could be used. */
static void
check_fresh(Chain *ch, const SfAwsCredentials *cr)
{
	if (cr->expiration != 0 && cr->expiration <= time(NULL) + 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the AWS credentials from %s for server \"%s\" have expired",
						cr->source, ch->srv->servername),
				 errdetail("Their Expiration is not in the future."),
				 errhint("Check the clock of the database server and what renews the credentials of that source.")));
}

const SfAwsCredentials *
sf_aws_credentials(SfServerConfig *srv, SfUserConfig *usr)
{
	static SfAwsCredentials direct;
	const char *role;
	const char *ext;
	char	   *key;
	CachedCredentials *volatile e;
	time_t		now = time(NULL);
	Chain		ch;
	SfAwsCredentials fresh;
	MemoryContext cxt = CurrentMemoryContext;

	role_of(srv, usr, &role, &ext);

	/* long-term keys of the mapping or the environment: nothing to cache */
	if (role == NULL && usr->aws_access_key_id && usr->aws_secret_access_key &&
		!(usr->aws_from_host && srv->aws_profile))
	{
		memset(&direct, 0, sizeof(direct));
		direct.access_key_id = usr->aws_access_key_id;
		direct.secret_access_key = usr->aws_secret_access_key;
		direct.session_token = usr->aws_session_token;
		direct.source = usr->aws_from_host ? "environment" : "user mapping";
		direct.from_host = usr->aws_from_host;
		return &direct;
	}

	key = cache_key(srv, usr, role, ext);
	e = cache_find(key);
	if (e && now < e->refresh_at && now < e->hard_at)
		return &e->cr;

	/* (re)fetch: only now the chain's bookkeeping */
	ch.srv = srv;
	ch.usr = usr;
	initStringInfo(&ch.tried);
	memset(&fresh, 0, sizeof(fresh));
	if (e && now < e->hard_at)
	{
		/* renew early; the current ones stay usable if that fails */
		volatile bool ok = false;

		PG_TRY();
		{
			resolve(&ch, role, ext, &fresh);
			ok = true;
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			if (edata->elevel > ERROR || edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
				edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN || edata->sqlerrcode == ERRCODE_OUT_OF_MEMORY)
				PG_RE_THROW();
			FlushErrorState();
			ereport(WARNING,
					(errcode(edata->sqlerrcode),
					 errmsg("could not renew the AWS credentials from %s for server \"%s\"; the current ones are used for %d more seconds",
							e->cr.source, srv->servername, (int) (e->hard_at - now)),
					 errdetail_internal("%s", edata->message)));
			FreeErrorData(edata);
		}
		PG_END_TRY();
		if (!ok)
		{
			/* not again at every request: in a while, before hard_at */
			e->refresh_at = now + Max(1, Min(30, (e->hard_at - now) / 4));
			return &e->cr;
		}
	}
	else
		resolve(&ch, role, ext, &fresh);

	check_fresh(&ch, &fresh);
	if (e)
		cache_drop(e);
	/* long-term keys (shared files) are read again after an hour */
	e = cache_store(key, &fresh);
	return &e->cr;
}

void
sf_aws_credentials_forget(SfServerConfig *srv, SfUserConfig *usr)
{
	const char *role;
	const char *ext;
	CachedCredentials *e;

	role_of(srv, usr, &role, &ext);
	e = cache_find(cache_key(srv, usr, role, ext));
	if (e)
		cache_drop(e);
}
