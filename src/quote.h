/*-------------------------------------------------------------------------
 *
 * quote.h
 *		Quoting for generated Snowflake SQL (quote.c; protocols layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_QUOTE_H
#define SF_QUOTE_H

extern char *sf_quote_ident(const char *ident);
extern char *sf_quote_literal(const char *value);
extern char *sf_redact_sql(const char *sql);

#endif							/* SF_QUOTE_H */
