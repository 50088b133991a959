/*-------------------------------------------------------------------------
 *
 * jwt.c
 *		Snowflake key-pair authentication: loading the private key of a user
 *		mapping, its public-key fingerprint and RS256 JSON Web Tokens (pure
 *		functions over OpenSSL; which token a mapping sends, and the cache
 *		of tokens, are snowflake_auth.c's).
 *
 * The rules come from Snowflake's "Using key-pair authentication" page of
 * the SQL API guide (docs.snowflake.com/en/developer-guide/sql-api/
 * authenticating) and from the official Python connector
 * (snowflake-connector-python, src/snowflake/connector/auth/keypair.py):
 *
 *	- iss = ACCOUNT.USER.SHA256:<fingerprint>, sub = ACCOUNT.USER, iat, exp;
 *	- ACCOUNT and USER are upper-cased;
 *	- ACCOUNT is the account identifier without region, cloud or other
 *	  domain parts: the text before the first "." -- or, for ".global"
 *	  names, the text before the first "-";
 *	- the fingerprint is standard base64 (with padding) of the SHA-256 of
 *	  the DER SubjectPublicKeyInfo, as DESC USER shows in RSA_PUBLIC_KEY_FP;
 *	- Snowflake honours a token for at most one hour after issue.
 *
 * Key material, passphrases and tokens never appear in any message: errors
 * say what is wrong with the key (not PEM, encrypted, wrong passphrase, not
 * RSA) and never quote it.  Every OpenSSL object is freed on error paths.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sf_jansson.h"

#include <time.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/base64.h"
#include "utils/memutils.h"

#include "sfexport.h"

#include "jwt.h"

/* What loading a private key found; each has its own message. */
typedef enum SfKeyStatus
{
	SF_KEY_OK,
	SF_KEY_NOT_PEM,				/* no private key could be parsed */
	SF_KEY_PUBLIC,				/* a public key was given instead */
	SF_KEY_NEED_PASSPHRASE,		/* encrypted, and no passphrase given */
	SF_KEY_BAD_PASSPHRASE,		/* encrypted, and the passphrase did not work */
	SF_KEY_NOT_RSA				/* parsed, but not an RSA key */
} SfKeyStatus;

/* State shared with the OpenSSL passphrase callback. */
typedef struct PassphraseState
{
	const char *passphrase;
	bool		asked;			/* OpenSSL needed a passphrase */
} PassphraseState;

/*
 * Passphrase callback for PEM_read_bio_PrivateKey.  Without it OpenSSL
 * would prompt on the terminal.  Records that a passphrase was needed.
 */
static int
passphrase_cb(char *buf, int size, int rwflag, void *u)
{
	PassphraseState *st = (PassphraseState *) u;
	size_t		len;

	st->asked = true;
	if (st->passphrase == NULL)
		return -1;
	len = strlen(st->passphrase);
	if (len > (size_t) size)
		return -1;
	memcpy(buf, st->passphrase, len);
	return (int) len;
}

/*
 * Parse a PEM private key (PKCS#8, encrypted PKCS#8, or traditional
 * PKCS#1).  Returns the key in *pkey (caller frees with EVP_PKEY_free) when
 * the status is SF_KEY_OK; for SF_KEY_NOT_RSA *keytype names the key type.
 * Never throws, so that callers can free what they hold before reporting.
 */
static SfKeyStatus
load_private_key(const char *pem, const char *passphrase, EVP_PKEY **pkey,
				 const char **keytype)
{
	BIO		   *bio;
	PassphraseState st;
	EVP_PKEY   *key;

	*pkey = NULL;
	*keytype = NULL;
	st.passphrase = (passphrase && passphrase[0]) ? passphrase : NULL;
	st.asked = false;

	ERR_clear_error();
	bio = BIO_new_mem_buf(pem, -1);
	if (bio == NULL)
		return SF_KEY_NOT_PEM;
	key = PEM_read_bio_PrivateKey(bio, NULL, passphrase_cb, &st);
	BIO_free(bio);
	ERR_clear_error();

	if (key == NULL)
	{
		bool		encrypted = strstr(pem, "ENCRYPTED") != NULL;

		if ((st.asked || encrypted) && st.passphrase == NULL)
			return SF_KEY_NEED_PASSPHRASE;
		if (st.asked)
			return SF_KEY_BAD_PASSPHRASE;
		if (strstr(pem, "PRIVATE KEY-----") == NULL &&
			strstr(pem, "PUBLIC KEY-----") != NULL)
			return SF_KEY_PUBLIC;
		return SF_KEY_NOT_PEM;
	}

	if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA)
	{
		int			nid = EVP_PKEY_base_id(key);

		*keytype = nid == EVP_PKEY_EC ? "EC" :
			nid != NID_undef ? OBJ_nid2sn(nid) : "unknown";
		EVP_PKEY_free(key);
		return SF_KEY_NOT_RSA;
	}
	*pkey = key;
	return SF_KEY_OK;
}

/*
 * Report a key that could not be used.  "option" names where the key came
 * from (private_key or private_key_file).  The key is never quoted.
 */
static void
report_key_status(SfKeyStatus status, const char *option, const char *keytype)
{
	switch (status)
	{
		case SF_KEY_OK:
			return;
		case SF_KEY_NOT_PEM:
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("could not parse the private key given by option \"%s\"", option),
					 errdetail("The value is not a PEM-encoded private key."),
					 errhint("Give an RSA private key in PEM form, as written by \"openssl genpkey -algorithm RSA\" or \"openssl pkcs8 -topk8\".")));
			break;
		case SF_KEY_PUBLIC:
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("option \"%s\" gives a public key, not a private key", option),
					 errhint("Give the private key here; its public key is the one registered in Snowflake with ALTER USER ... SET RSA_PUBLIC_KEY.")));
			break;
		case SF_KEY_NEED_PASSPHRASE:
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("the private key given by option \"%s\" is encrypted", option),
					 errhint("Set option \"private_key_passphrase\" to the passphrase of the key.")));
			break;
		case SF_KEY_BAD_PASSPHRASE:
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("could not decrypt the private key given by option \"%s\"", option),
					 errdetail("The passphrase in option \"private_key_passphrase\" is wrong, or the key is damaged.")));
			break;
		case SF_KEY_NOT_RSA:
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("the private key given by option \"%s\" is not an RSA key", option),
					 errdetail("It is a key of type %s; Snowflake key-pair authentication accepts only RSA keys.",
							   keytype ? keytype : "unknown"),
					 errhint("Generate one with \"openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048\".")));
			break;
	}
}

/* Load a key or report why it cannot be used.  Caller frees the result. */
static EVP_PKEY *
load_private_key_or_error(const char *pem, const char *passphrase,
						  const char *option)
{
	EVP_PKEY   *pkey;
	const char *keytype;
	SfKeyStatus status;

	status = load_private_key(pem, passphrase, &pkey, &keytype);
	report_key_status(status, option, keytype);
	return pkey;
}

/*
 * Check that a private key can be used for Snowflake key-pair
 * authentication; errors out with a clear message if not.  Used by the
 * validator at CREATE/ALTER USER MAPPING.
 */
void
sf_jwt_check_private_key(const char *pem, const char *passphrase,
						 const char *option)
{
	EVP_PKEY   *pkey = load_private_key_or_error(pem, passphrase, option);

	EVP_PKEY_free(pkey);
}

/* Standard base64 with padding, palloc'd and NUL-terminated. */
static char *
base64_std(const unsigned char *data, int len)
{
	int			enclen = pg_b64_enc_len(len);
	char	   *out = palloc(enclen + 1);
	int			n = pg_b64_encode(data, len, out, enclen);

	if (n < 0)
		elog(ERROR, "base64 encoding failed");
	out[n] = '\0';
	return out;
}

/* base64url without padding (RFC 7515 section 2), palloc'd. */
static char *
base64_url(const unsigned char *data, int len)
{
	char	   *out = base64_std(data, len);
	char	   *w = out;

	for (char *c = out; *c; c++)
	{
		if (*c == '=')
			break;
		*w++ = *c == '+' ? '-' : *c == '/' ? '_' : *c;
	}
	*w = '\0';
	return out;
}

/*
 * "SHA256:<base64>" of the DER SubjectPublicKeyInfo of the key's public half.
 * Returns NULL (OpenSSL failure) without throwing.
 */
static char *
fingerprint_of(EVP_PKEY *pkey)
{
	unsigned char *der = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int			derlen;
	bool		ok;

	derlen = i2d_PUBKEY(pkey, &der);
	if (derlen <= 0)
		return NULL;
	ok = EVP_Digest(der, derlen, md, &mdlen, EVP_sha256(), NULL) == 1;
	OPENSSL_free(der);
	if (!ok)
		return NULL;
	return psprintf("SHA256:%s", base64_std(md, (int) mdlen));
}

/*
 * The public-key fingerprint of a private key, "SHA256:<base64>", as
 * Snowflake shows it in DESC USER (RSA_PUBLIC_KEY_FP).  Not a secret.
 */
char *
sf_jwt_public_key_fingerprint(const char *pem, const char *passphrase,
							  const char *option)
{
	EVP_PKEY   *volatile pkey = load_private_key_or_error(pem, passphrase, option);
	char	   *fp = NULL;

	PG_TRY();
	{
		fp = fingerprint_of(pkey);
	}
	PG_FINALLY();
	{
		EVP_PKEY_free(pkey);
	}
	PG_END_TRY();

	if (fp == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute the public-key fingerprint of the private key")));
	return fp;
}

/*
 * The account name used in JWT claims: upper-cased, without region, cloud
 * or domain parts.  snowflake-connector-python (auth/keypair.py, prepare())
 * keeps the text before the first "-" for ".global" names and the text
 * before the first "." otherwise; "orgname-accountname" stays whole.
 */
char *
sf_jwt_account_name(const char *account)
{
	const char *end;
	char	   *out;

	if (strstr(account, ".global") != NULL)
		end = strchr(account, '-');
	else
		end = strchr(account, '.');
	out = end ? pnstrdup(account, end - account) : pstrdup(account);
	for (char *c = out; *c; c++)
		*c = pg_ascii_toupper((unsigned char) *c);
	return out;
}

/* Upper-case a user name for the claims (ASCII only, as the connectors do). */
static char *
upper_user(const char *user)
{
	char	   *out = pstrdup(user);

	for (char *c = out; *c; c++)
		*c = pg_ascii_toupper((unsigned char) *c);
	return out;
}

/*
 * Compact JSON text of a jansson value, palloc'd; the value is freed with
 * the current memory context.
 */
static char *
json_text(json_t *value)
{
	return sf_json_dumps(sf_json_tracked(value));
}

/*
 * Sign header.payload with RS256 (RSASSA-PKCS1-v1_5 with SHA-256).  Returns
 * the signature, or NULL on an OpenSSL failure; never throws.
 */
static unsigned char *
rs256_sign(EVP_PKEY *pkey, const char *input, size_t *siglen,
		   unsigned char *sigbuf, size_t sigbuflen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool		ok;

	if (ctx == NULL)
		return NULL;
	*siglen = sigbuflen;
	ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1 &&
		EVP_DigestSign(ctx, sigbuf, siglen, (const unsigned char *) input,
					   strlen(input)) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok ? sigbuf : NULL;
}

/*
 * Make a key-pair JWT for account and user, issued at iat and valid for
 * lifetime_s seconds.  "option" names where the key came from, for errors.
 * The result is palloc'd in the current context; it is a credential.
 */
char *
sf_jwt_make(const char *account, const char *user, const char *pem,
			const char *passphrase, const char *option, int64 iat,
			int lifetime_s)
{
	EVP_PKEY   *volatile pkey = load_private_key_or_error(pem, passphrase, option);
	char	   *volatile jwt = NULL;
	bool		volatile sign_failed = false;

	PG_TRY();
	{
		char	   *acct = sf_jwt_account_name(account);
		char	   *usr = upper_user(user);
		char	   *fp = fingerprint_of(pkey);
		char	   *header;
		char	   *claims;
		char	   *input;
		size_t		sigbuflen = (size_t) EVP_PKEY_get_size(pkey);
		unsigned char *sigbuf = palloc(sigbuflen);
		size_t		siglen;

		if (fp == NULL)
			sign_failed = true;
		else
		{
			header = json_text(json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT"));
			claims = json_text(json_pack("{s:s, s:s, s:I, s:I}",
										 "iss", psprintf("%s.%s.%s", acct, usr, fp),
										 "sub", psprintf("%s.%s", acct, usr),
										 "iat", (json_int_t) iat,
										 "exp", (json_int_t) (iat + lifetime_s)));
			input = psprintf("%s.%s",
							 base64_url((unsigned char *) header, strlen(header)),
							 base64_url((unsigned char *) claims, strlen(claims)));
			if (rs256_sign(pkey, input, &siglen, sigbuf, sigbuflen) == NULL)
				sign_failed = true;
			else
				jwt = psprintf("%s.%s", input, base64_url(sigbuf, (int) siglen));
		}
	}
	PG_FINALLY();
	{
		EVP_PKEY_free(pkey);
	}
	PG_END_TRY();

	if (sign_failed)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not sign the Snowflake key-pair token")));
	return jwt;
}
