/*-------------------------------------------------------------------------
 *
 * aws_credentials.h
 *		The AWS credential chain: user mapping, environment, web identity,
 *		shared files with a profile, container, instance metadata, and an
 *		optional role to assume on top (aws_credentials.c; clients layer in
 *		docs/ARCHITECTURE.md; docs/credentials.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_AWS_CREDENTIALS_H
#define SF_AWS_CREDENTIALS_H

#include <time.h>

#include "config.h"

/* Credentials to sign with.  Never log or print the keys. */
typedef struct SfAwsCredentials
{
	char	   *access_key_id;
	char	   *secret_access_key;
	char	   *session_token;	/* NULL for long-term keys */
	time_t		expiration;		/* 0: does not expire */
	char	   *source;			/* where they came from, for messages and
								 * test_storage: never a secret */
	bool		from_host;		/* any step used the host's credentials */
} SfAwsCredentials;

/*
 * Current credentials for requests of usr on srv: from the per-backend
 * cache while they are fresh, else from the chain (and renewed before they
 * expire).  Throws with the list of sources tried when none gives keys.
 * The result stays valid until the next call.
 */
extern const SfAwsCredentials *sf_aws_credentials(SfServerConfig *srv, SfUserConfig *usr);
/* Drop the cached credentials of usr on srv (a service said they expired). */
extern void sf_aws_credentials_forget(SfServerConfig *srv, SfUserConfig *usr);

#endif							/* SF_AWS_CREDENTIALS_H */
