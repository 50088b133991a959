/*-------------------------------------------------------------------------
 *
 * snowflake.h
 *		The Snowflake SQL API v2 client (snowflake.c) and the bearer token
 *		of a user mapping (snowflake_auth.c; clients layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_SNOWFLAKE_H
#define SF_SNOWFLAKE_H

#include "nodes/pg_list.h"

#include "config.h"

/* ----------------------------------------------------------------
 * snowflake_auth.c — the bearer token of a user mapping, cached
 * ----------------------------------------------------------------
 */
extern int	sfexport_jwt_lifetime_s;	/* sfexport.jwt_lifetime */
extern void sf_auth_define_gucs(void);
extern const char *sf_auth_token(SfServerConfig *srv, SfUserConfig *usr,
								 bool force_new);
extern void sf_auth_forget_all(void);

/* ----------------------------------------------------------------
 * snowflake.c — Snowflake SQL API v2 client
 * ----------------------------------------------------------------
 */

/* One statement to execute. */
typedef struct SfStatement
{
	const char *sql;			/* one statement, with ? bind markers */
	const char *log_sql;		/* as shown in messages; NULL = sf_redact_sql(sql) */
	int			nbinds;
	const char **bind_types;	/* Snowflake binding types (TEXT, FIXED, ...); NULL = all TEXT */
	const char **bind_values;	/* text values; a NULL entry binds SQL NULL */
	int			timeout_s;		/* 0 = the server's statement_timeout */
	const char *query_tag;		/* QUERY_TAG parameter, or NULL */
	bool	   *rejected;		/* if set: true when Snowflake answered that the
								 * statement failed (it ended, changing nothing) */
	int			multi_statements;	/* > 0: sql holds this many statements
									 * separated by ';' (MULTI_STATEMENT_COUNT);
									 * no binds then */
} SfStatement;

/* The result of a statement: every value as text (NULL for SQL NULL). */
typedef struct SfSnowflakeResult
{
	int			ncolumns;
	char	  **column_names;	/* as Snowflake returns them (COPY: upper case) */
	char	  **column_types;	/* Snowflake type names: fixed, text, ... */
	int64		nrows;			/* over all partitions */
	char	 ***rows;			/* rows[i][j] */
	char	   *statement_handle;
	char	   *sql_state;		/* "00000" on success */
	char	   *message;		/* e.g. "Statement executed successfully." */
} SfSnowflakeResult;

extern SfSnowflakeResult *sf_snowflake_run(SfServerConfig *srv, SfUserConfig *usr,
										   const SfStatement *stmt);
extern SfSnowflakeResult *sf_snowflake_execute(SfServerConfig *srv, SfUserConfig *usr,
											   const char *sql, int nbinds,
											   const char **bind_types,
											   const char **bind_values);
extern int	sf_result_column(SfSnowflakeResult *res, const char *name);
extern void sf_snowflake_request_id(char out[37]);
extern List *sf_snowflake_headers(SfServerConfig *srv, SfUserConfig *usr,
								  bool with_body);
extern char *sf_remote_text(const char *utf8);

#endif							/* SF_SNOWFLAKE_H */
