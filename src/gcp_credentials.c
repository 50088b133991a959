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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sf_jansson.h"

#include <time.h>

#include "utils/memutils.h"

#include "sfexport.h"

#include "config.h"
#include "gcp_credentials.h"
#include "http.h"

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
	req.connect_timeout_ms = 3000;	/* google-auth: 3 s */
	req.timeout_ms = 3000;
	req.max_attempts = 3;
	resp = sf_http_request(&req);
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
