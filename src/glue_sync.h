/*-------------------------------------------------------------------------
 *
 * glue_sync.h
 *		The Glue sync: AWS Glue tables as Snowflake external tables
 *		(glue_sync.c; pipeline layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_GLUE_SYNC_H
#define SF_GLUE_SYNC_H

typedef struct SfGlueSyncArgs
{
	Oid			serverid;
	Oid			userid;			/* whose user mapping */
	char	   *glue_database;
	char	   *pattern;		/* LIKE pattern */
	bool		dry_run;
	bool		drop_missing;
	char	   *target_database;	/* NULL = derived */
	char	   *target_schema;
	bool		periodic;		/* run by the worker (recorded in the log) */
} SfGlueSyncArgs;

/* called once per Glue table (and per table gone from Glue) */
typedef void (*SfGlueEmitFn) (void *arg, const char *glue_table, const char *action,
							  const char *reason, const char *statement);

extern void sf_glue_sync_run(SfGlueSyncArgs *a, SfGlueEmitFn emit, void *emit_arg);

#endif							/* SF_GLUE_SYNC_H */
