/*-------------------------------------------------------------------------
 *
 * jwt.h
 *		Snowflake key-pair authentication: keys, fingerprints, RS256 JWTs
 *		(jwt.c; protocols layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_JWT_H
#define SF_JWT_H

/* ----------------------------------------------------------------
 * jwt.c — Snowflake key-pair authentication: keys, fingerprints, JWTs
 *
 * Key material, passphrases and tokens never appear in messages.
 * ----------------------------------------------------------------
 */
extern void sf_jwt_check_private_key(const char *pem, const char *passphrase,
									 const char *option);
extern char *sf_jwt_public_key_fingerprint(const char *pem,
										   const char *passphrase,
										   const char *option);
extern char *sf_jwt_account_name(const char *account);
extern char *sf_jwt_make(const char *account, const char *user,
						 const char *pem, const char *passphrase,
						 const char *option, int64 iat, int lifetime_s);

#endif							/* SF_JWT_H */
