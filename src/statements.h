/*-------------------------------------------------------------------------
 *
 * statements.h
 *		The Snowflake SQL sfexport generates (statements.c; model layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_STATEMENTS_H
#define SF_STATEMENTS_H

#include "nodes/pg_list.h"
#include "utils/array.h"

#include "config.h"

extern char *sf_target_name(SfServerConfig *srv, SfTableConfig *tbl);
extern void sf_split_target_name(const char *target, char *parts[3]);

/* One column of a target: Snowflake name, Snowflake type, PostgreSQL type. */
typedef struct SfColumnDef
{
	char	   *name;
	char	   *sftype;
	char	   *pgtype;
} SfColumnDef;

extern char *sf_snowflake_type(Oid typid, int32 typmod);
extern char *sf_snowflake_type_for_name(const char *pgtype);
extern List *sf_stage_statements(SfServerConfig *srv, SfUserConfig *usr);
extern char *sf_create_table_statement(const char *target, int ncols,
									   const SfColumnDef *cols);
extern char *sf_add_column_statement(const char *target, const char *column,
									 const char *sftype);
extern char *sf_pipe_sql_name(const char *target, int64 shape);
extern char *sf_pipe_rest_name(const char *target, int64 shape);
extern char *sf_copy_statement(SfServerConfig *srv, const char *target,
							   ArrayType *columns, ArrayType *types,
							   List *names, bool json);	/* NIL: no FILES clause (a pipe) */
extern bool sf_file_is_json(const char *name);
extern char *sf_pipe_statement(SfServerConfig *srv, const char *target, int64 shape,
							   ArrayType *columns, ArrayType *types, bool json);
extern char *sf_streaming_pipe_statement(SfServerConfig *srv, SfTableConfig *tbl,
										 const char *target, ArrayType *columns);

#endif							/* SF_STATEMENTS_H */
