/*-------------------------------------------------------------------------
 *
 * gcp_credentials.h
 *		Google access tokens without a key: the GCE metadata server and
 *		external accounts
 *		(gcp_credentials.c; clients layer in docs/ARCHITECTURE.md;
 *		docs/credentials.md section 6)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_GCP_CREDENTIALS_H
#define SF_GCP_CREDENTIALS_H

#include "config.h"

/* The metadata server's base URL, or NULL when it is not to be asked. */
extern char *sf_gcp_metadata_base(void);
/*
 * A current access token for scope from the metadata server (cached per
 * backend, renewed before it expires); *email: the service account.
 */
extern const char *sf_gcp_metadata_token(SfServerConfig *srv, const char *scope,
										 const char **email);
extern void sf_gcp_metadata_forget(void);
/*
 * A current access token from an external-account JSON (workload identity
 * federation); *principal: what to call it in messages.
 */
extern const char *sf_gcp_external_account_token(SfServerConfig *srv, const char *config,
												 const char *scope, const char **principal);
extern void sf_gcp_external_account_forget(void);

#endif							/* SF_GCP_CREDENTIALS_H */
