/*-------------------------------------------------------------------------
 *
 * gcp_credentials.c
 *		Access tokens from the GCE metadata server, for GCS storage of
 *		servers owned by a superuser when the user mapping gives no
 *		service-account key ("View and query VM metadata",
 *		https://cloud.google.com/compute/docs/metadata/querying-metadata;
 *		google-auth compute_engine/_metadata.py):
 *
 *		GET http://HOST/computeMetadata/v1/instance/service-accounts/default/token?scopes=S
 *		Metadata-Flavor: Google
 *		-> {"access_token", "expires_in", "token_type": "Bearer"}
 *
 *		HOST is GCE_METADATA_HOST (google-auth's override, host:port), else
 *		GCE_METADATA_ROOT (its legacy name), else metadata.google.internal;
 *		NO_GCE_CHECK=True (google-auth environment_vars.py) says there is
 *		none.  Every answer of a real metadata server carries
 *		Metadata-Flavor: Google, which tells it from a captive portal; an
 *		answer without it is refused.  No proxy: the server refuses
 *		requests with X-Forwarded-For.  The token is cached per backend
 *		until 3 min 45 s before it expires (google-auth _helpers.py
 *		REFRESH_THRESHOLD; half its life for short test lifetimes), and
 *		never used in its last 30 seconds.
 *
 *		External accounts (workload identity federation, a gcs_credentials
 *		JSON of "type": "external_account"; google-auth external_account.py,
 *		identity_pool.py, oauth2/sts.py, impersonated_credentials.py;
 *		docs/credentials.md section 7): the subject token from
 *		credential_source (a file, read at every exchange, or a URL; text
 *		or JSON), exchanged at token_url (RFC 8693) for a federated token,
 *		then, with service_account_impersonation_url, for the service
 *		account's token (IAM Credentials generateAccessToken).  Like
 *		google-auth since 2023 the URLs are not matched against Google's
 *		hosts: the JSON must come from someone trusted with the host's
 *		files, which storage_gcs.c checks before it gets here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sf_jansson.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "utils/memutils.h"

#include "sfexport.h"

#include "config.h"
#include "gcp_credentials.h"
#include "http.h"
#include "iso8601.h"
#include "sigv4.h"

#define GCE_DEFAULT_HOST "metadata.google.internal"
#define GCE_SA_PATH "/computeMetadata/v1/instance/service-accounts/default/"
#define REFRESH_THRESHOLD_S 225

typedef struct GceToken
{
	char	   *base;
	char	   *scope;
	char	   *token;
	char	   *email;
	time_t		refresh_at;
	time_t		hard_at;
} GceToken;

static GceToken cached = {NULL, NULL, NULL, NULL, 0, 0};

static const char *
env(const char *name)
{
	const char *v = getenv(name);

	return (v && *v) ? v : NULL;
}

char *
sf_gcp_metadata_base(void)
{
	const char *h = env("GCE_METADATA_HOST");
	const char *no = env("NO_GCE_CHECK");

	if (no && pg_strcasecmp(no, "true") == 0)
		return NULL;
	if (h == NULL)
		h = env("GCE_METADATA_ROOT");
	if (h == NULL)
		h = GCE_DEFAULT_HOST;
	return strstr(h, "://") ? pstrdup(h) : psprintf("http://%s", h);
}

void
sf_gcp_metadata_forget(void)
{
	if (cached.token)
	{
		explicit_bzero(cached.token, strlen(cached.token));
		pfree(cached.token);
	}
	if (cached.base)
		pfree(cached.base);
	if (cached.scope)
		pfree(cached.scope);
	if (cached.email)
		pfree(cached.email);
	memset(&cached, 0, sizeof(cached));
}

/* One GET to the metadata server; errors name the server, never the token. */
static SfHttpResponse *
metadata_get(SfServerConfig *srv, const char *base, const char *path)
{
	SfHttpRequest req;
	SfHttpResponse *resp;
	const char *flavor;

	sf_http_init_request(&req, "GET", psprintf("%s%s", base, path));
	req.log_url = psprintf("%s%s", base, GCE_SA_PATH);
	req.headers = list_make1("Metadata-Flavor: Google");
	req.no_proxy = true;
	req.connect_timeout_ms = 3000;	/* google-auth: 3 s, 3 attempts */
	req.timeout_ms = 3000;
	for (int attempt = 0;; attempt++)
	{
		resp = sf_http_perform(&req);
		if ((resp->status != 0 && resp->status < 500) || attempt == 2)
			break;
	}
	if (resp->status == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("no GCS credentials for server \"%s\": the GCE metadata server at %s did not answer",
						srv->servername, base),
				 errdetail_internal("%s", resp->error_text ? resp->error_text : "no response"),
				 errhint("Outside GCE give gcs_credentials or gcs_credentials_file in the user mapping (NO_GCE_CHECK=True in the server's environment skips the metadata server); on GCE check GCE_METADATA_HOST.")));
	flavor = sf_http_header(resp, "metadata-flavor");
	if (resp->status == 200 && (flavor == NULL || strcmp(flavor, "Google") != 0))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("the GCE metadata server at %s answered without Metadata-Flavor: Google", base),
				 errdetail("Something else than a GCE metadata server answers there (a proxy or captive portal?)."),
				 errhint("Check GCE_METADATA_HOST in the database server's environment, or give gcs_credentials in the user mapping.")));
	if (resp->status != 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("no GCS credentials for server \"%s\": the GCE metadata server refused the request",
						srv->servername),
				 errdetail_internal("GET %s%s answered HTTP %ld%s", base, GCE_SA_PATH, resp->status,
									resp->status == 404 ? ": this instance has no service account."
									: resp->status == 403 ? ": the request was refused (through a proxy?)." : "."),
				 errhint("Attach a service account to the instance, or give gcs_credentials or gcs_credentials_file in the user mapping.")));
	return resp;
}

const char *
sf_gcp_metadata_token(SfServerConfig *srv, const char *scope, const char **email)
{
	char	   *base = sf_gcp_metadata_base();
	time_t		now = time(NULL);
	SfHttpResponse *resp;
	json_t	   *root;
	json_error_t jerr;
	const char *tok;
	json_int_t	expires_in;
	char	   *mail;

	if (base == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("no GCS credentials for server \"%s\"", srv->servername),
				 errdetail("The user mapping gives no service-account key, and NO_GCE_CHECK says there is no GCE metadata server."),
				 errhint("Set gcs_credentials or gcs_credentials_file in the user mapping to a service-account key.")));
	if (cached.token && strcmp(cached.base, base) == 0 && strcmp(cached.scope, scope) == 0 &&
		now < cached.refresh_at && now < cached.hard_at)
	{
		if (email)
			*email = cached.email;
		return cached.token;
	}

	resp = metadata_get(srv, base, psprintf("%stoken?scopes=%s", GCE_SA_PATH,
											sf_http_url_encode(scope, false)));
	root = json_loads(resp->body.data, 0, &jerr);
	tok = root ? json_string_value(json_object_get(root, "access_token")) : NULL;
	expires_in = root ? json_integer_value(json_object_get(root, "expires_in")) : 0;
	if (tok == NULL || *tok == '\0' || !sf_http_header_value_ok(tok) || expires_in <= 0)
	{
		if (root)
			json_decref(root);
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("the GCE metadata server at %s gave no usable access token", base),
				 errdetail("The answer lacks access_token or a positive expires_in.")));
	}
	tok = pstrdup(tok);
	json_decref(root);
	/* which account: for test_storage and messages (never the token) */
	resp = metadata_get(srv, base, GCE_SA_PATH "email");
	mail = pnstrdup(resp->body.data, strcspn(resp->body.data, "\r\n"));

	sf_gcp_metadata_forget();
	expires_in = Min(expires_in, 86400);
	cached.base = MemoryContextStrdup(TopMemoryContext, base);
	cached.scope = MemoryContextStrdup(TopMemoryContext, scope);
	cached.token = MemoryContextStrdup(TopMemoryContext, tok);
	cached.email = MemoryContextStrdup(TopMemoryContext, mail);
	cached.refresh_at = now + expires_in - Min(REFRESH_THRESHOLD_S, expires_in / 2);
	cached.hard_at = now + expires_in - Min(30, expires_in / 4);
	explicit_bzero((char *) tok, strlen(tok));
	if (email)
		*email = cached.email;
	return cached.token;
}

/* ---------------------------------------------------------------------
 * External accounts (workload identity federation)
 * ---------------------------------------------------------------------
 */

#define GOOGLE_CLOUD_PLATFORM_SCOPE "https://www.googleapis.com/auth/cloud-platform"
#define SUBJECT_TOKEN_MAX (64 * 1024)

static GceToken cached_external = {NULL, NULL, NULL, NULL, 0, 0};

static void
forget_external(void)
{
	if (cached_external.token)
	{
		explicit_bzero(cached_external.token, strlen(cached_external.token));
		pfree(cached_external.token);
	}
	if (cached_external.base)
		pfree(cached_external.base);
	if (cached_external.scope)
		pfree(cached_external.scope);
	if (cached_external.email)
		pfree(cached_external.email);
	memset(&cached_external, 0, sizeof(cached_external));
}

void
sf_gcp_external_account_forget(void)
{
	forget_external();
}

pg_noreturn static void external_error(SfServerConfig *srv, const char *what);

static void
external_error(SfServerConfig *srv, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
			 errmsg("invalid external account credentials for server \"%s\": %s",
					srv->servername, what),
			 errhint("Give the credential configuration file made by \"gcloud iam workload-identity-pools create-cred-config\" in gcs_credentials or gcs_credentials_file.")));
}

static const char *
jstr(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return (v && *v) ? v : NULL;
}

/* The subject token: credential_source file (read every time) or url. */
static char *
subject_token(SfServerConfig *srv, json_t *source)
{
	const char *file = jstr(source, "file");
	const char *url = jstr(source, "url");
	json_t	   *format = json_object_get(source, "format");
	const char *ftype = format ? jstr(format, "type") : NULL;
	const char *field = format ? jstr(format, "subject_token_field_name") : NULL;
	StringInfoData buf;

	initStringInfo(&buf);
	if (json_object_get(source, "executable") || json_object_get(source, "environment_id"))
		external_error(srv, "only credential_source file and url are supported");
	if (file)
	{
		int			fd = open(file, O_RDONLY | PG_BINARY, 0);

		if (fd < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not open the subject token file \"%s\" of server \"%s\": %m",
							file, srv->servername)));
		for (;;)
		{
			char		chunk[4096];
			ssize_t		n = read(fd, chunk, sizeof(chunk));

			if (n <= 0 || buf.len + n > SUBJECT_TOKEN_MAX)
			{
				close(fd);
				if (n < 0 || buf.len + n > SUBJECT_TOKEN_MAX)
					ereport(ERROR,
							(errcode(ERRCODE_CONFIG_FILE_ERROR),
							 errmsg("could not read the subject token file \"%s\" of server \"%s\"",
									file, srv->servername),
							 errdetail("It is unreadable or larger than %d bytes.", SUBJECT_TOKEN_MAX)));
				break;
			}
			appendBinaryStringInfo(&buf, chunk, n);
		}
	}
	else if (url)
	{
		SfHttpRequest req;
		SfHttpResponse *resp;
		json_t	   *headers = json_object_get(source, "headers");
		const char *hname;
		json_t	   *hval;

		sf_http_init_request(&req, "GET", url);
		json_object_foreach(headers, hname, hval)
		{
			const char *v = json_string_value(hval);

			if (v && sf_http_header_value_ok(v) && sf_http_header_value_ok(hname))
				req.headers = lappend(req.headers, psprintf("%s: %s", hname, v));
		}
		sf_http_server_settings(&req, srv);
		req.timeout_ms = Min(req.timeout_ms, 30 * 1000);
		resp = sf_http_request(&req);
		if (resp->status != 200)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("the subject token URL of server \"%s\" answered HTTP %ld",
							srv->servername, resp->status),
					 errdetail_internal("GET %s", url)));
		appendBinaryStringInfo(&buf, resp->body.data, resp->body.len);
	}
	else
		external_error(srv, "credential_source has neither file nor url");

	if (ftype && strcmp(ftype, "json") == 0)
	{
		json_error_t jerr;
		json_t	   *root = json_loads(buf.data, 0, &jerr);
		const char *tok = root && field ? jstr(root, field) : NULL;
		char	   *copy = tok ? pstrdup(tok) : NULL;

		if (root)
			json_decref(root);
		explicit_bzero(buf.data, buf.len);
		if (copy == NULL)
			external_error(srv, "the subject token is not JSON with the field subject_token_field_name names");
		return copy;
	}
	if (ftype && strcmp(ftype, "text") != 0)
		external_error(srv, "credential_source format type must be text or json");
	return buf.data;
}

/* Google's error answer, for messages: RFC 6749 or Google API error JSON. */
static char *
google_error(SfHttpResponse *resp)
{
	json_error_t jerr;
	json_t	   *root = json_loads(resp->body.data, 0, &jerr);
	char	   *msg;

	if (root == NULL)
		return pstrdup("(no JSON error)");
	if (json_is_object(json_object_get(root, "error")))
	{
		json_t	   *e = json_object_get(root, "error");

		msg = psprintf("%s: %s", jstr(e, "status") ? jstr(e, "status") : "",
					   jstr(e, "message") ? jstr(e, "message") : "");
	}
	else
		msg = psprintf("%s: %s", jstr(root, "error") ? jstr(root, "error") : "",
					   jstr(root, "error_description") ? jstr(root, "error_description") : "");
	json_decref(root);
	return msg;
}

const char *
sf_gcp_external_account_token(SfServerConfig *srv, const char *config, const char *scope,
							  const char **principal)
{
	char	   *key = psprintf("%s|%s", sf_sha256_hex(config, strlen(config)), scope);
	time_t		now = time(NULL);
	json_error_t jerr;
	json_t	   *root;
	const char *audience,
			   *token_url,
			   *subject_type,
			   *imp_url;
	json_t	   *source;
	char	   *subject;
	char	   *body;
	SfHttpRequest req;
	SfHttpResponse *resp;
	json_t	   *ans;
	const char *tok;
	json_int_t	expires_in = 0;
	time_t		expires_at = 0;
	char	   *token;
	char	   *who;

	if (cached_external.token && strcmp(cached_external.base, key) == 0 &&
		now < cached_external.refresh_at && now < cached_external.hard_at)
	{
		if (principal)
			*principal = cached_external.email;
		return cached_external.token;
	}

	root = json_loads(config, 0, &jerr);
	if (root == NULL)
		external_error(srv, "not JSON");
	audience = jstr(root, "audience");
	token_url = jstr(root, "token_url");
	subject_type = jstr(root, "subject_token_type");
	imp_url = jstr(root, "service_account_impersonation_url");
	source = json_object_get(root, "credential_source");
	if (audience == NULL || token_url == NULL || subject_type == NULL || !json_is_object(source))
		external_error(srv, "audience, subject_token_type, token_url and credential_source are required");
	if (strncmp(token_url, "https://", 8) != 0 && strncmp(token_url, "http://", 7) != 0)
		external_error(srv, "token_url is not an http(s) URL");
	if (imp_url && strncmp(imp_url, "https://", 8) != 0 && strncmp(imp_url, "http://", 7) != 0)
		external_error(srv, "service_account_impersonation_url is not an http(s) URL");

	/* 1. exchange the subject token (RFC 8693, Google STS "token") */
	subject = subject_token(srv, source);
	body = psprintf("grant_type=%s&audience=%s&scope=%s&requested_token_type=%s"
					"&subject_token=%s&subject_token_type=%s",
					sf_http_url_encode("urn:ietf:params:oauth:grant-type:token-exchange", false),
					sf_http_url_encode(audience, false),
					sf_http_url_encode(imp_url ? GOOGLE_CLOUD_PLATFORM_SCOPE : scope, false),
					sf_http_url_encode("urn:ietf:params:oauth:token-type:access_token", false),
					sf_http_url_encode(subject, false),
					sf_http_url_encode(subject_type, false));
	explicit_bzero(subject, strlen(subject));
	sf_http_init_request(&req, "POST", token_url);
	req.headers = list_make1("Content-Type: application/x-www-form-urlencoded");
	req.body = body;
	req.body_len = strlen(body);
	sf_http_server_settings(&req, srv);
	req.timeout_ms = Min(req.timeout_ms, 30 * 1000);
	resp = sf_http_request(&req);
	explicit_bzero(body, strlen(body));
	if (resp->status != 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the Google STS token exchange for server \"%s\" failed", srv->servername),
				 errdetail_internal("POST %s answered HTTP %ld %s", token_url, resp->status,
									google_error(resp)),
				 errhint("Check the workload identity pool provider (audience), its attribute mapping and conditions, and the subject token's issuer and audience.")));
	ans = json_loads(resp->body.data, 0, &jerr);
	tok = ans ? jstr(ans, "access_token") : NULL;
	expires_in = ans ? json_integer_value(json_object_get(ans, "expires_in")) : 0;
	if (tok == NULL || !sf_http_header_value_ok(tok))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("the Google STS token exchange for server \"%s\" gave no access_token",
						srv->servername)));
	token = pstrdup(tok);
	json_decref(ans);
	expires_at = now + (expires_in > 0 ? Min(expires_in, 86400) : 3600);
	who = psprintf("workload identity federation (%s)", audience);

	/* 2. the service account's token (IAM Credentials generateAccessToken) */
	if (imp_url)
	{
		json_t	   *imp = json_object_get(root, "service_account_impersonation");
		json_int_t	life = imp ? json_integer_value(json_object_get(imp, "token_lifetime_seconds")) : 0;
		char	   *jbody;
		const char *email_start = strstr(imp_url, "serviceAccounts/");
		const char *email_end = email_start ? strstr(email_start, ":generateAccessToken") : NULL;

		jbody = psprintf("{\"scope\": [\"%s\"], \"lifetime\": \"%llds\"}", scope,
						 (long long) (life > 0 ? Min(life, 43200) : 3600));
		sf_http_init_request(&req, "POST", imp_url);
		req.headers = list_make2("Content-Type: application/json",
								 psprintf("Authorization: Bearer %s", token));
		req.body = jbody;
		req.body_len = strlen(jbody);
		sf_http_server_settings(&req, srv);
		req.timeout_ms = Min(req.timeout_ms, 30 * 1000);
		resp = sf_http_request(&req);
		explicit_bzero(token, strlen(token));
		if (resp->status != 200)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("impersonating the service account failed for server \"%s\"",
							srv->servername),
					 errdetail_internal("POST %s answered HTTP %ld %s", imp_url, resp->status,
										google_error(resp)),
					 errhint("Grant the federated principal roles/iam.workloadIdentityUser on the service account.")));
		ans = json_loads(resp->body.data, 0, &jerr);
		tok = ans ? jstr(ans, "accessToken") : NULL;
		if (tok == NULL || !sf_http_header_value_ok(tok) ||
			!sf_parse_iso8601_utc(jstr(ans, "expireTime"), &expires_at))
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("generateAccessToken for server \"%s\" gave no accessToken and expireTime",
							srv->servername)));
		token = pstrdup(tok);
		json_decref(ans);
		if (email_start && email_end)
			who = psprintf("workload identity federation (service account %s)",
						   pnstrdup(email_start + strlen("serviceAccounts/"),
									email_end - email_start - strlen("serviceAccounts/")));
	}
	json_decref(root);
	if (expires_at <= now + 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the Google token for server \"%s\" has already expired", srv->servername)));

	forget_external();
	cached_external.base = MemoryContextStrdup(TopMemoryContext, key);
	cached_external.scope = MemoryContextStrdup(TopMemoryContext, scope);
	cached_external.token = MemoryContextStrdup(TopMemoryContext, token);
	cached_external.email = MemoryContextStrdup(TopMemoryContext, who);
	cached_external.refresh_at = expires_at - Min(REFRESH_THRESHOLD_S, (expires_at - now) / 2);
	cached_external.hard_at = expires_at - Min(30, (expires_at - now) / 4);
	explicit_bzero(token, strlen(token));
	if (principal)
		*principal = cached_external.email;
	return cached_external.token;
}
