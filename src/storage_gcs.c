/*-------------------------------------------------------------------------
 *
 * storage_gcs.c
 *		Google Cloud Storage backend of the storage interface: OAuth 2.0
 *		service-account tokens, media and resumable uploads, reads, metadata,
 *		deletes and listings through the JSON API.
 *
 * Tokens (https://developers.google.com/identity/protocols/oauth2/service-account):
 * an RS256 JWT {iss: client_email, scope: devstorage.read_write, aud:
 * token_uri, iat, exp = iat + 3600} signed with the key's private_key is
 * exchanged at token_uri (grant_type jwt-bearer) for a bearer token, cached
 * in backend memory per (client_email, token_uri) until five minutes before
 * it expires, and dropped when a request answers 401.
 *
 * Uploads (https://cloud.google.com/storage/docs/uploads-downloads):
 * small objects with uploadType=media; larger ones with a resumable session
 * (POST uploadType=resumable, then PUT chunks with Content-Range; every
 * chunk but the last a multiple of 256 KiB, answered 308 with the persisted
 * Range; the last one names the total size).  Before retrying a chunk the
 * session is asked how much it persisted (Content-Range: bytes
 * star/total), and only the rest is sent.
 *
 * Base URL: the server's endpoint option, else STORAGE_EMULATOR_HOST (as
 * Google's client libraries do; only for servers that may use the host's
 * settings, sf_server_may_use_host_credentials), else
 * https://storage.googleapis.com.  A resumable session URI must have the
 * origin of the base URL (gcs_mp_start), since it receives the token.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sf_jansson.h"

#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "gcp_credentials.h"
#include "http.h"
#include "storage.h"
#include "storage_backend.h"

#define GCS_SCOPE "https://www.googleapis.com/auth/devstorage.read_write"
#define GCS_DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"
#define GCS_CHUNK_UNIT (256 * 1024)

typedef struct GcsConf
{
	char	   *base;			/* scheme://host[:port] */
	char	   *client_email;
	char	   *private_key;	/* PEM */
	char	   *private_key_id;
	char	   *token_uri;
	bool		metadata;		/* tokens from the GCE metadata server */
	char	   *external;		/* external-account JSON, or NULL */
} GcsConf;

/* Cached bearer token (TopMemoryContext). */
typedef struct GcsToken
{
	char	   *cache_key;		/* client_email + token_uri */
	char	   *token;
	time_t		expires_at;
} GcsToken;

static GcsToken cached_token = {NULL, NULL, 0};

typedef struct GcsUpload
{
	char	   *session_url;	/* resumable session URI (a capability: never logged) */
} GcsUpload;

/* ---------------------------------------------------------------------
 * OAuth token
 * ---------------------------------------------------------------------
 */

static char *
base64url(const unsigned char *data, size_t len)
{
	char	   *out = palloc(((len + 2) / 3) * 4 + 1);
	int			n = EVP_EncodeBlock((unsigned char *) out, data, (int) len);

	while (n > 0 && out[n - 1] == '=')
		n--;
	out[n] = '\0';
	for (char *c = out; *c; c++)
	{
		if (*c == '+')
			*c = '-';
		else if (*c == '/')
			*c = '_';
	}
	return out;
}

/* The signed JWT assertion for the token request. */
static char *
make_assertion(GcsConf *conf, time_t now)
{
	json_t	   *hdr = json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
	json_t	   *claims = json_pack("{s:s, s:s, s:s, s:I, s:I}",
								   "iss", conf->client_email,
								   "scope", GCS_SCOPE,
								   "aud", conf->token_uri,
								   "iat", (json_int_t) now,
								   "exp", (json_int_t) now + 3600);
	char	   *signing_input;
	BIO		   *volatile bio = NULL;
	EVP_PKEY   *volatile pkey = NULL;
	EVP_MD_CTX *volatile md = NULL;
	unsigned char *sig = NULL;
	size_t		siglen = 0;
	char	   *result = NULL;

	if (hdr == NULL || claims == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (conf->private_key_id)
		json_object_set_new(hdr, "kid", json_string(conf->private_key_id));
	{
		char	   *h = sf_json_dumps(hdr);
		char	   *c = sf_json_dumps(claims);

		signing_input = psprintf("%s.%s",
								 base64url((unsigned char *) h, strlen(h)),
								 base64url((unsigned char *) c, strlen(c)));
	}
	json_decref(hdr);
	json_decref(claims);

	PG_TRY();
	{
		bio = BIO_new_mem_buf(conf->private_key, -1);
		if (bio)
			pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
		if (pkey == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("could not read the private key of the GCS service account \"%s\"",
							conf->client_email),
					 errhint("Give the service-account key JSON downloaded from Google Cloud in gcs_credentials or gcs_credentials_file.")));
		md = EVP_MD_CTX_new();
		if (md == NULL ||
			EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
			EVP_DigestSign(md, NULL, &siglen, (unsigned char *) signing_input, strlen(signing_input)) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not sign the GCS token request")));
		sig = palloc(siglen);
		if (EVP_DigestSign(md, sig, &siglen, (unsigned char *) signing_input, strlen(signing_input)) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not sign the GCS token request")));
		result = psprintf("%s.%s", signing_input, base64url(sig, siglen));
	}
	PG_FINALLY();
	{
		if (md)
			EVP_MD_CTX_free(md);
		if (pkey)
			EVP_PKEY_free(pkey);
		if (bio)
			BIO_free(bio);
	}
	PG_END_TRY();
	return result;
}

static void
forget_token(void)
{
	if (cached_token.token)
	{
		explicit_bzero(cached_token.token, strlen(cached_token.token));
		pfree(cached_token.token);
	}
	if (cached_token.cache_key)
		pfree(cached_token.cache_key);
	cached_token.token = NULL;
	cached_token.cache_key = NULL;
	cached_token.expires_at = 0;
}

/* A valid bearer token, from the cache or from token_uri. */
static const char *
get_token(SfStorage *st)
{
	GcsConf    *conf = (GcsConf *) st->priv;
	char	   *key = psprintf("%s|%s", conf->client_email, conf->token_uri);
	time_t		now = time(NULL);
	SfHttpRequest req;
	SfHttpResponse *resp;
	char	   *body;
	json_t	   *root;
	json_error_t jerr;
	const char *tok;
	json_int_t	expires_in;

	if (conf->metadata)
		return sf_gcp_metadata_token(st->srv, GCS_SCOPE, NULL);
	if (conf->external)
		return sf_gcp_external_account_token(st->srv, conf->external, GCS_SCOPE, NULL);
	if (cached_token.token && strcmp(cached_token.cache_key, key) == 0 &&
		cached_token.expires_at - now > 300)
		return cached_token.token;
	forget_token();

	body = psprintf("grant_type=%s&assertion=%s",
					sf_http_url_encode("urn:ietf:params:oauth:grant-type:jwt-bearer", false),
					make_assertion(conf, now));
	sf_http_init_request(&req, "POST", conf->token_uri);
	req.headers = list_make1("Content-Type: application/x-www-form-urlencoded");
	req.body = body;
	req.body_len = strlen(body);
	sf_http_server_settings(&req, st->srv);
	req.timeout_ms = Min(req.timeout_ms, 60 * 1000);
	resp = sf_http_request(&req);

	root = json_loads(resp->body.data, 0, &jerr);
	if (resp->status != 200)
	{
		const char *err = root ? json_string_value(json_object_get(root, "error")) : NULL;
		const char *desc = root ? json_string_value(json_object_get(root, "error_description")) : NULL;
		char	   *message = desc ? pstrdup(desc) : NULL;
		char	   *code = err ? pstrdup(err) : NULL;

		if (root)
			json_decref(root);
		if (resp->status == 400 && code && strcmp(code, "invalid_grant") == 0)
			resp->status = 401;	/* report as an authorization problem */
		sf_storage_http_error("GCS token", &req, resp, code, message);
	}
	tok = root ? json_string_value(json_object_get(root, "access_token")) : NULL;
	expires_in = root ? json_integer_value(json_object_get(root, "expires_in")) : 0;
	if (tok == NULL)
	{
		if (root)
			json_decref(root);
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("GCS token request POST %s returned no access_token", req.url)));
	}
	cached_token.cache_key = MemoryContextStrdup(TopMemoryContext, key);
	cached_token.token = MemoryContextStrdup(TopMemoryContext, tok);
	/* expires_in is the server's word: keep the sum in range */
	cached_token.expires_at = now + ((expires_in > 0 && expires_in <= 86400) ? expires_in : 3600);
	json_decref(root);
	return cached_token.token;
}

/* ---------------------------------------------------------------------
 * Requests
 * ---------------------------------------------------------------------
 */

typedef struct GcsCall
{
	SfStorage  *st;
	List	   *extra_headers;
} GcsCall;

/* Before each attempt: a current bearer token. */
static void
gcs_prepare(SfHttpRequest *req, int attempt, void *arg)
{
	GcsCall    *c = (GcsCall *) arg;
	List	   *h = list_copy(c->extra_headers);

	h = lappend(h, psprintf("Authorization: Bearer %s", get_token(c->st)));
	req->headers = h;
}

static void
gcs_init(SfStorage *st, SfHttpRequest *req, const char *method, const char *url,
		 const char *log_url, List *extra_headers)
{
	GcsCall    *c = palloc0(sizeof(GcsCall));

	c->st = st;
	c->extra_headers = extra_headers;
	sf_http_init_request(req, method, url);
	req->log_url = log_url;
	req->prepare = gcs_prepare;
	req->prepare_arg = c;
	req->decode_content = false;
	sf_http_server_settings(req, st->srv);
	req->deadline = st->deadline;
}

/* sf_http_request, once more with a fresh token after a 401. */
static SfHttpResponse *
gcs_send(SfHttpRequest *req)
{
	SfHttpResponse *resp = sf_http_request(req);

	if (resp->status == 401 && resp->sink_bytes == 0)
	{
		forget_token();
		sf_gcp_metadata_forget();
		sf_gcp_external_account_forget();
		resp = sf_http_request(req);
	}
	return resp;
}

/* Throw for a non-2xx response with GCS's JSON error message. */
static void
gcs_check(SfHttpRequest *req, SfHttpResponse *resp)
{
	json_t	   *root;
	json_error_t jerr;
	char	   *message = NULL;
	char	   *code = NULL;

	if (resp->status >= 200 && resp->status < 300)
		return;
	root = json_loads(resp->body.data, 0, &jerr);
	if (root)
	{
		json_t	   *err = json_object_get(root, "error");
		json_t	   *errors = json_object_get(err, "errors");
		const char *m = json_string_value(json_object_get(err, "message"));
		const char *r = json_string_value(json_object_get(json_array_get(errors, 0), "reason"));

		if (m)
			message = pstrdup(m);
		if (r)
			code = pstrdup(r);
		json_decref(root);
	}
	else if (resp->body.len > 0 && resp->body.len < 1000)
		message = pstrdup(resp->body.data);
	sf_storage_http_error("GCS", req, resp, code, message);
}

static char *
object_url(GcsConf *conf, SfStorage *st, const char *key, const char *suffix)
{
	return psprintf("%s/storage/v1/b/%s/o/%s%s", conf->base,
					sf_http_url_encode(st->bucket, false),
					sf_http_url_encode(key, false), suffix ? suffix : "");
}

static char *
log_object(GcsConf *conf, SfStorage *st, const char *key)
{
	return psprintf("%s/storage/v1/b/%s/o/%s", conf->base, st->bucket,
					sf_http_url_encode(key, false));
}

/* A 404 about the bucket rather than the object. */
static bool
bucket_missing(SfHttpResponse *resp)
{
	return resp->status == 404 &&
		strstr(resp->body.data, "bucket does not exist") != NULL;
}

/* ---------------------------------------------------------------------
 * Backend operations
 * ---------------------------------------------------------------------
 */

static void
gcs_open(SfStorage *st)
{
	GcsConf    *conf = palloc0(sizeof(GcsConf));
	json_t	   *root;
	json_error_t jerr;
	const char *v;

	if (st->user->gcs_credentials == NULL && !st->user->host_credentials_allowed)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("no GCS credentials for server \"%s\"", st->srv->servername),
				 errdetail("The user mapping gives no service-account key, and only servers owned by a superuser may use the GCE metadata server's service account."),
				 errhint("Set gcs_credentials or gcs_credentials_file in the user mapping to a service-account key.")));
	if (st->user->gcs_credentials == NULL)
	{
		const char *email = NULL;

		/* the host's service account; asked now, so that open fails early */
		conf->metadata = true;
		(void) sf_gcp_metadata_token(st->srv, GCS_SCOPE, &email);
		st->credential_source = psprintf("the GCE metadata server (service account %s)", email);
	}
	else
	{
		root = json_loads(st->user->gcs_credentials, 0, &jerr);
		v = root ? json_string_value(json_object_get(root, "type")) : NULL;
		if (v && strcmp(v, "external_account") == 0)
		{
			const char *who = NULL;

			json_decref(root);

			/*
			 * The JSON names a file of the host (or a URL) whose contents are
			 * sent to its token_url: only for a server that may use the
			 * host's credentials, from a mapping a superuser made (its own,
			 * or PUBLIC, which only the server's owner can create).
			 */
			if (!st->user->host_credentials_allowed ||
				(OidIsValid(st->user->mapping_user) && !superuser_arg(st->user->mapping_user)))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("external account credentials cannot be used for server \"%s\"",
								st->srv->servername),
						 errdetail("External account credentials read a file or URL of the database server's host; only a superuser's server, with a user mapping of a superuser or PUBLIC, may use them."),
						 errhint("Use a service-account key in gcs_credentials, or ask a superuser to set up the mapping.")));
			conf->external = pstrdup(st->user->gcs_credentials);
			(void) sf_gcp_external_account_token(st->srv, conf->external, GCS_SCOPE, &who);
			st->credential_source = psprintf("the user mapping's external account, %s", who);
		}
		else
		{
			if (root == NULL || !json_is_string(json_object_get(root, "client_email")) ||
				!json_is_string(json_object_get(root, "private_key")))
			{
				if (root)
					json_decref(root);
				/* jerr.text may quote the key: do not pass it on */
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("invalid GCS credentials for server \"%s\"", st->srv->servername),
						 errdetail("The service-account key is not JSON with client_email and private_key.")));
			}
			conf->client_email = pstrdup(json_string_value(json_object_get(root, "client_email")));
			conf->private_key = pstrdup(json_string_value(json_object_get(root, "private_key")));
			v = json_string_value(json_object_get(root, "private_key_id"));
			conf->private_key_id = v ? pstrdup(v) : NULL;
			v = json_string_value(json_object_get(root, "token_uri"));
			conf->token_uri = pstrdup(v ? v : GCS_DEFAULT_TOKEN_URI);
			json_decref(root);
			st->credential_source = psprintf("the user mapping's service-account key (%s)",
											 conf->client_email);
		}
	}

	/*
	 * STORAGE_EMULATOR_HOST is the host's word on where GCS is: only a
	 * server that may use the host's credentials takes it, so that a
	 * non-superuser's server never sends its requests (and bearer tokens)
	 * where the host environment points.
	 */
	if (st->srv->endpoint)
		conf->base = pstrdup(st->srv->endpoint);
	else if (getenv("STORAGE_EMULATOR_HOST") && *getenv("STORAGE_EMULATOR_HOST") &&
			 sf_server_may_use_host_credentials(st->srv->serverid))
	{
		const char *h = getenv("STORAGE_EMULATOR_HOST");

		conf->base = strstr(h, "://") ? pstrdup(h) : psprintf("http://%s", h);
	}
	else
		conf->base = "https://storage.googleapis.com";
	if (conf->base[strlen(conf->base) - 1] == '/')
		conf->base[strlen(conf->base) - 1] = '\0';
	st->priv = conf;
}

static void
gcs_put(SfStorageWriter *w, const char *data, size_t len)
{
	GcsConf    *conf = (GcsConf *) w->st->priv;
	SfHttpRequest req;
	SfHttpResponse *resp;
	char	   *url = psprintf("%s/upload/storage/v1/b/%s/o?uploadType=media&name=%s",
							   conf->base, sf_http_url_encode(w->st->bucket, false),
							   sf_http_url_encode(w->key, false));

	gcs_init(w->st, &req, "POST", url, log_object(conf, w->st, w->key),
			 list_make1(psprintf("Content-Type: %s", w->content_type)));
	req.body = data ? data : "";
	req.body_len = len;
	resp = gcs_send(&req);
	gcs_check(&req, resp);
}

static void
gcs_mp_start(SfStorageWriter *w)
{
	GcsConf    *conf = (GcsConf *) w->st->priv;
	SfHttpRequest req;
	SfHttpResponse *resp;
	const char *loc;
	GcsUpload  *up;
	char	   *url = psprintf("%s/upload/storage/v1/b/%s/o?uploadType=resumable&name=%s",
							   conf->base, sf_http_url_encode(w->st->bucket, false),
							   sf_http_url_encode(w->key, false));

	gcs_init(w->st, &req, "POST", url, log_object(conf, w->st, w->key),
			 list_make2(psprintf("X-Upload-Content-Type: %s", w->content_type),
						"Content-Type: application/json; charset=UTF-8"));
	req.body = "{}";
	req.body_len = 2;
	resp = gcs_send(&req);
	gcs_check(&req, resp);
	loc = sf_http_header(resp, "location");
	if (loc == NULL || (strncmp(loc, "http://", 7) != 0 && strncmp(loc, "https://", 8) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("GCS request POST %s returned no resumable session", req.log_url)));

	/*
	 * Every chunk goes to the session URI with the bearer token.  GCS
	 * answers with a URI on the host the session was started on
	 * ("Location: https://storage.googleapis.com/upload/storage/v1/b/...
	 * &upload_id=...", https://cloud.google.com/storage/docs/performing-resumable-uploads):
	 * anything else (http:// under https://, another host or port, user
	 * information) would hand the token to someone else, so it must have
	 * the origin of the base URL the session was started on, which is
	 * https://storage.googleapis.com unless an endpoint option says
	 * otherwise.  The URI itself is never shown: it is a capability.
	 */
	if (!sf_http_same_origin(loc, conf->base))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("GCS request POST %s returned a resumable session on another origin",
						req.log_url),
				 errdetail("The session URI in the Location header does not have the scheme, host and port of %s; the upload was not sent there.",
						   conf->base),
				 errhint("If the server's endpoint option is right, the service at that endpoint is not GCS or is misconfigured.")));
	up = MemoryContextAllocZero(w->cxt, sizeof(GcsUpload));
	up->session_url = MemoryContextStrdup(w->cxt, loc);
	w->priv = up;
}

/* Bytes the session has persisted: from a 308's Range "bytes=0-N". */
static int64
persisted_from(SfHttpResponse *resp)
{
	const char *range = sf_http_header(resp, "range");
	const char *dash;
	char	   *end;
	long long	last;

	if (range == NULL || (dash = strchr(range, '-')) == NULL)
		return 0;
	/* a malformed or absurd value means nothing known to be persisted */
	errno = 0;
	last = strtoll(dash + 1, &end, 10);
	if (errno != 0 || end == dash + 1 || last < 0 || last >= PG_INT64_MAX)
		return 0;
	return (int64) last + 1;
}

/* State for re-sending a chunk from what the session persisted. */
typedef struct ChunkSend
{
	SfStorageWriter *w;
	const char *data;			/* the chunk */
	size_t		len;
	int64		start;			/* offset of data in the object */
	bool		last;
	bool		complete;		/* the session says the object is complete */
} ChunkSend;

/* Ask a resumable session how much it has (one attempt). */
static SfHttpResponse *
query_session(SfStorageWriter *w, ChunkSend *cs)
{
	GcsUpload  *up = (GcsUpload *) w->priv;
	GcsConf    *conf = (GcsConf *) w->st->priv;
	SfHttpRequest q;

	gcs_init(w->st, &q, "PUT", up->session_url, log_object(conf, w->st, w->key),
			 list_make1(cs->last ? psprintf("Content-Range: bytes */%lld",
											(long long) (cs->start + cs->len))
						: "Content-Range: bytes */*"));
	q.body = "";
	q.body_len = 0;
	q.max_attempts = 1;
	gcs_prepare(&q, 0, q.prepare_arg);
	return sf_http_perform(&q);
}

/*
 * Before each attempt of a chunk: on retries, ask the session what it
 * persisted and send only the rest of the chunk.
 */
static void
chunk_prepare(SfHttpRequest *req, int attempt, void *arg)
{
	ChunkSend  *cs = (ChunkSend *) arg;
	int64		from = cs->start;
	int64		end = cs->start + cs->len;	/* exclusive */
	char	   *range;

	if (attempt > 0)
	{
		SfHttpResponse *r = query_session(cs->w, cs);

		if (r->status == 308)
			from = Max(cs->start, Min(end, persisted_from(r)));
		else if (r->status == 200 || r->status == 201)
		{
			cs->complete = true;
			from = end;
		}
	}
	req->body = cs->data + (from - cs->start);
	req->body_len = (size_t) (end - from);
	if (from < end)
		range = psprintf("Content-Range: bytes %lld-%lld/%s", (long long) from,
						 (long long) end - 1,
						 cs->last ? psprintf("%lld", (long long) end) : "*");
	else
		range = psprintf("Content-Range: bytes */%lld", (long long) end);
	req->headers = list_make2(range, psprintf("Authorization: Bearer %s", get_token(cs->w->st)));
}

/* Fill *req with chunk data (len bytes, the last one or not) of w's upload. */
static ChunkSend *
build_chunk(SfStorageWriter *w, const char *data, size_t len, bool last,
			SfHttpRequest *req)
{
	GcsUpload  *up = (GcsUpload *) w->priv;
	GcsConf    *conf = (GcsConf *) w->st->priv;
	ChunkSend  *cs = palloc0(sizeof(ChunkSend));

	cs->w = w;
	cs->data = data;
	cs->len = len;
	cs->start = w->sent;
	cs->last = last;
	sf_http_init_request(req, "PUT", up->session_url);
	req->log_url = log_object(conf, w->st, w->key);
	req->prepare = chunk_prepare;
	req->prepare_arg = cs;
	sf_http_server_settings(req, w->st->srv);
	return cs;
}

/* Throw unless resp says the session has all of chunk cs. */
static void
check_chunk(SfStorageWriter *w, ChunkSend *cs, SfHttpRequest *req,
			SfHttpResponse *resp)
{
	if (!cs->last && resp->status == 308)
	{
		int64		persisted = persisted_from(resp);

		if (persisted != cs->start + (int64) cs->len)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("GCS resumable upload of \"%s\" persisted %lld bytes instead of %lld",
							sf_storage_uri(w->st, w->name), (long long) persisted,
							(long long) (cs->start + cs->len))));
		return;
	}
	if (cs->last && (resp->status == 200 || resp->status == 201))
		return;
	if (resp->status == 308)
		resp->status = 500;		/* a final chunk must complete the object */
	gcs_check(req, resp);
	ereport(ERROR,
			(errcode(ERRCODE_FDW_ERROR),
			 errmsg("GCS request PUT %s returned unexpected HTTP %ld", req->log_url, resp->status)));
}

static void
send_chunk(SfStorageWriter *w, const char *data, size_t len, bool last)
{
	SfHttpRequest req;
	ChunkSend  *cs = build_chunk(w, data, len, last, &req);

	check_chunk(w, cs, &req, sf_http_request(&req));
}

static void
gcs_mp_part(SfStorageWriter *w, const char *data, size_t len)
{
	/* parts are the full buffer, a multiple of 256 KiB, except the last */
	send_chunk(w, data, len, false);
}

/*
 * A full chunk as storage.c sends it, at once or in the background: the
 * request (retried from what the session persisted: chunk_prepare), and
 * what its answer means.  Chunks of a session go in order: storage.c
 * sends the next one only after this one is answered.
 */
static void *
gcs_mp_part_request(SfStorageWriter *w, const char *data, size_t len,
					SfHttpRequest *req)
{
	return build_chunk(w, data, len, false, req);
}

static void
gcs_mp_part_answer(SfStorageWriter *w, SfHttpRequest *req, SfHttpResponse *resp,
				   void *arg)
{
	check_chunk(w, (ChunkSend *) arg, req, resp);
}

static void
gcs_mp_complete(SfStorageWriter *w)
{
	/* whatever was sent, the last request names the total size */
	send_chunk(w, "", 0, true);
}

/*
 * storage.c sends every full buffer (part_size, a multiple of 256 KiB) with
 * mp_part while writing, and a shorter tail, if any, with mp_part at
 * finish.  A full buffer is a non-final chunk; a tail is the final chunk,
 * which completes the object.  With no tail, mp_complete sends an empty
 * final request naming the total size.
 */
static void
gcs_mp_part_or_tail(SfStorageWriter *w, const char *data, size_t len)
{
	if (len % GCS_CHUNK_UNIT == 0 && (size_t) len == w->st->part_size)
		gcs_mp_part(w, data, len);
	else
	{
		send_chunk(w, data, len, true);
		((GcsUpload *) w->priv)->session_url = NULL;	/* complete */
	}
}

static void
gcs_mp_complete_if_needed(SfStorageWriter *w)
{
	if (((GcsUpload *) w->priv)->session_url != NULL)
		gcs_mp_complete(w);
}

/* One attempt, no throw for remote problems (see sf_storage_abort). */
static void
gcs_mp_abort(SfStorageWriter *w)
{
	GcsUpload  *up = (GcsUpload *) w->priv;
	SfHttpRequest req;
	SfHttpResponse *resp;

	if (up == NULL || up->session_url == NULL)
		return;
	/* cancelling a resumable upload: DELETE on the session URI */
	sf_http_init_request(&req, "DELETE", up->session_url);
	req.log_url = log_object((GcsConf *) w->st->priv, w->st, w->key);
	sf_http_server_settings(&req, w->st->srv);
	req.timeout_ms = Min(req.timeout_ms, 30 * 1000);
	req.deadline = w->st->deadline;
	sf_http_apply_deadline(&req);
	resp = sf_http_perform(&req);
	/* 499 is GCS's answer to a cancelled session */
	if (resp->curl_error != 0 || (resp->status >= 300 && resp->status != 499 &&
								  resp->status != 404 && resp->status != 410))
		ereport(WARNING,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not cancel the resumable upload of \"%s\"",
						sf_storage_uri(w->st, w->name)),
				 resp->curl_error ? errdetail_internal("%s", resp->error_text)
				 : errdetail_internal("HTTP %ld", resp->status)));
}

static bool
gcs_read(SfStorage *st, const char *key, SfHttpWriteFn sink, void *arg)
{
	GcsConf    *conf = (GcsConf *) st->priv;
	SfHttpRequest req;
	SfHttpResponse *resp;

	gcs_init(st, &req, "GET", object_url(conf, st, key, "?alt=media"),
			 log_object(conf, st, key), NIL);
	req.write_fn = sink;
	req.write_arg = arg;
	resp = gcs_send(&req);
	if (resp->status == 404 && !bucket_missing(resp))
		return false;
	gcs_check(&req, resp);
	return true;
}

static bool
gcs_head(SfStorage *st, const char *key, int64 *size)
{
	GcsConf    *conf = (GcsConf *) st->priv;
	SfHttpRequest req;
	SfHttpResponse *resp;
	json_t	   *root;
	json_error_t jerr;
	const char *sz;

	gcs_init(st, &req, "GET", object_url(conf, st, key, NULL), log_object(conf, st, key), NIL);
	resp = gcs_send(&req);
	if (resp->status == 404 && !bucket_missing(resp))
		return false;
	gcs_check(&req, resp);
	root = json_loads(resp->body.data, 0, &jerr);
	sz = root ? json_string_value(json_object_get(root, "size")) : NULL;
	*size = sz ? strtoll(sz, NULL, 10) : -1;
	if (root)
		json_decref(root);
	return true;
}

static void
gcs_del(SfStorage *st, const char *key)
{
	GcsConf    *conf = (GcsConf *) st->priv;
	SfHttpRequest req;
	SfHttpResponse *resp;

	gcs_init(st, &req, "DELETE", object_url(conf, st, key, NULL), log_object(conf, st, key), NIL);
	resp = gcs_send(&req);
	if (resp->status == 404 && !bucket_missing(resp))
		return;
	gcs_check(&req, resp);
}

/*
 * objects.list page after page, within the bounds (storage.c); startOffset
 * is inclusive, so the name it names is left out.  A page token that comes
 * back unchanged would page forever.
 */
static List *
gcs_list(SfStorage *st, const char *keyprefix, SfListBounds *b)
{
	GcsConf    *conf = (GcsConf *) st->priv;
	List	   *out = NIL;
	char	   *token = NULL;

	for (;;)
	{
		SfHttpRequest req;
		SfHttpResponse *resp;
		json_t	   *root;
		json_error_t jerr;
		json_t	   *items;
		size_t		i;
		const char *next;
		char	   *url = psprintf("%s/storage/v1/b/%s/o?prefix=%s%s%s%s%s", conf->base,
								   sf_http_url_encode(st->bucket, false),
								   sf_http_url_encode(keyprefix, false),
								   token ? "&pageToken=" : "",
								   token ? sf_http_url_encode(token, false) : "",
								   b->start_after ? "&startOffset=" : "",
								   b->start_after ? sf_http_url_encode(b->start_after, false) : "");

		CHECK_FOR_INTERRUPTS();
		if (b->pages >= b->max_pages ||
			(b->deadline != 0 && GetCurrentTimestamp() >= b->deadline))
		{
			b->truncated = true;
			break;
		}
		b->pages++;
		gcs_init(st, &req, "GET", url,
				 psprintf("%s/storage/v1/b/%s/o", conf->base, st->bucket), NIL);
		resp = gcs_send(&req);
		gcs_check(&req, resp);
		root = json_loads(resp->body.data, 0, &jerr);
		if (root == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_ERROR),
					 errmsg("GCS request GET %s returned invalid JSON", req.log_url)));
		items = json_object_get(root, "items");
		for (i = 0; i < json_array_size(items); i++)
		{
			const char *n = json_string_value(json_object_get(json_array_get(items, i), "name"));

			if (n && !(b->start_after && strcmp(n, b->start_after) == 0))
				out = lappend(out, pstrdup(n));
		}
		next = json_string_value(json_object_get(root, "nextPageToken"));
		if (next && token && strcmp(next, token) == 0)
		{
			json_decref(root);
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("GCS request GET %s returned the same page token twice", req.log_url),
					 errdetail("objects.list answered nextPageToken without moving on; the listing stopped after %d pages.",
							   b->pages)));
		}
		token = next ? pstrdup(next) : NULL;
		json_decref(root);
		if (token == NULL)
			break;
	}
	return out;
}

const SfStorageOps sf_storage_gcs_ops = {
	.name = "GCS",
	.open = gcs_open,
	.put = gcs_put,
	.mp_start = gcs_mp_start,
	.mp_part = gcs_mp_part_or_tail,
	.mp_complete = gcs_mp_complete_if_needed,
	.mp_part_request = gcs_mp_part_request,
	.mp_part_answer = gcs_mp_part_answer,
	.mp_abort = gcs_mp_abort,
	.read = gcs_read,
	.head = gcs_head,
	.del = gcs_del,
	.list = gcs_list,
};
