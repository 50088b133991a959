/*-------------------------------------------------------------------------
 *
 * snowflake_auth.c
 *		The bearer token a user mapping sends to Snowflake's REST APIs (SQL
 *		API, Snowpipe): its configured token, or a key-pair JWT (jwt.c)
 *		made from its private key and cached per backend until shortly
 *		before it expires.
 *
 * Tokens never appear in any message; a cached token is wiped when it is
 * replaced.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include <openssl/evp.h>

#include "utils/guc.h"
#include "utils/memutils.h"

#include "sfexport.h"

#include "config.h"
#include "jwt.h"
#include "snowflake.h"

int			sfexport_jwt_lifetime_s = 3540;	/* sfexport.jwt_lifetime */

/* From _PG_init: the lifetime of the key-pair tokens made here. */
void
sf_auth_define_gucs(void)
{
	DefineCustomIntVariable("sfexport.jwt_lifetime",
							"Lifetime of the key-pair JWTs sent to Snowflake.",
							"Snowflake honours a token for at most one hour; tokens are "
							"renewed a few minutes before they expire.",
							&sfexport_jwt_lifetime_s,
							3540, 10, 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* Tokens of this backend, one per (server, user, key). */
#define SF_TOKEN_CACHE_SIZE 8

typedef struct SfTokenCacheEntry
{
	bool		used;
	Oid			serverid;
	unsigned char keyid[32];	/* SHA-256 over account, user, key, passphrase */
	char	   *token;			/* in TopMemoryContext */
	int64		issued_at;
	int64		expires_at;
	int64		last_used;
} SfTokenCacheEntry;

static SfTokenCacheEntry token_cache[SF_TOKEN_CACHE_SIZE];

/* Identify a (server, account, user, key) combination without keeping the key. */
static void
compute_keyid(SfServerConfig *srv, SfUserConfig *usr, unsigned char *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	const char *parts[4];
	unsigned int len = 0;
	bool		ok;

	parts[0] = srv->account;
	parts[1] = usr->user ? usr->user : "";
	parts[2] = usr->private_key ? usr->private_key : "";
	parts[3] = usr->private_key_passphrase ? usr->private_key_passphrase : "";

	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
	for (int i = 0; ok && i < 4; i++)
		ok = EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1) == 1;
	ok = ok && EVP_DigestFinal_ex(ctx, out, &len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok || len != 32)
		elog(ERROR, "could not hash the key identity");
}

static void
forget_entry(SfTokenCacheEntry *e)
{
	if (e->token)
	{
		explicit_bzero(e->token, strlen(e->token));
		pfree(e->token);
	}
	memset(e, 0, sizeof(*e));
}

/*
 * Seconds before expiry at which a cached token is replaced: a token is
 * renewed early so that a statement (and its polling) never starts with a
 * token about to lapse.
 */
static int
renew_margin(int lifetime_s)
{
	return Min(300, lifetime_s / 4);
}

/*
 * The bearer token for requests to the server's SQL API as the mapped
 * user.  For OAUTH and PROGRAMMATIC_ACCESS_TOKEN mappings this is the
 * configured token.  For key-pair mappings a JWT is made and cached in
 * backend memory until shortly before it expires; force_new discards the
 * cached token first (after Snowflake answered 401).
 */
const char *
sf_auth_token(SfServerConfig *srv, SfUserConfig *usr, bool force_new)
{
	unsigned char keyid[32];
	int64		now = (int64) time(NULL);
	int			lifetime = sfexport_jwt_lifetime_s;
	SfTokenCacheEntry *slot = NULL;
	char	   *jwt;

	if (strcmp(usr->token_type, "KEYPAIR_JWT") != 0)
	{
		if (usr->token == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("user mapping for server \"%s\" has token_type %s but no token",
							srv->servername, usr->token_type)));
		return usr->token;
	}
	if (usr->user == NULL || usr->private_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("user mapping for server \"%s\" has no Snowflake credentials",
						srv->servername),
				 errhint("Set options \"user\" and \"private_key\" (or \"private_key_file\"), or \"token\" with \"token_type\".")));

	compute_keyid(srv, usr, keyid);
	for (int i = 0; i < SF_TOKEN_CACHE_SIZE; i++)
	{
		SfTokenCacheEntry *e = &token_cache[i];

		if (e->used && e->serverid == srv->serverid &&
			memcmp(e->keyid, keyid, sizeof(keyid)) == 0)
		{
			if (!force_new && now >= e->issued_at &&
				now < e->expires_at - renew_margin((int) (e->expires_at - e->issued_at)))
			{
				e->last_used = now;
				return e->token;
			}
			forget_entry(e);
			slot = e;
			break;
		}
	}
	if (slot == NULL)
	{
		/* a free slot, else the least recently used one */
		for (int i = 0; i < SF_TOKEN_CACHE_SIZE; i++)
		{
			SfTokenCacheEntry *e = &token_cache[i];

			if (!e->used)
			{
				slot = e;
				break;
			}
			if (slot == NULL || e->last_used < slot->last_used)
				slot = e;
		}
		forget_entry(slot);
	}

	jwt = sf_jwt_make(srv->account, usr->user, usr->private_key,
					  usr->private_key_passphrase,
					  usr->private_key_file ? "private_key_file" : "private_key",
					  now, lifetime);
	ereport(DEBUG1,
			(errmsg_internal("sfexport: new key-pair token for user \"%s\" of server \"%s\", valid for %d s",
							 usr->user, srv->servername, lifetime)));
	slot->token = MemoryContextStrdup(TopMemoryContext, jwt);
	explicit_bzero(jwt, strlen(jwt));
	pfree(jwt);
	slot->used = true;
	slot->serverid = srv->serverid;
	memcpy(slot->keyid, keyid, sizeof(keyid));
	slot->issued_at = now;
	slot->expires_at = now + lifetime;
	slot->last_used = now;
	return slot->token;
}

/* Drop every cached token of this backend. */
void
sf_auth_forget_all(void)
{
	for (int i = 0; i < SF_TOKEN_CACHE_SIZE; i++)
		forget_entry(&token_cache[i]);
}
