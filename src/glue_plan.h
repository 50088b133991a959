/*-------------------------------------------------------------------------
 *
 * glue_plan.h
 *		What one Glue table becomes in Snowflake (glue_plan.c; pipeline
 *		layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_GLUE_PLAN_H
#define SF_GLUE_PLAN_H

#include "glue_client.h"
#include "config.h"

/* What glue_sync decided for one Glue table. */
typedef struct GluePlan
{
	char	   *glue_table;
	char	   *target_table;	/* Snowflake name, unquoted */
	char	   *skip_reason;	/* non-NULL: skipped */
	char	   *statement;		/* CREATE OR REPLACE EXTERNAL TABLE ... */
	char	   *hash;
	char	   *shape_hash;		/* hash of the statement without the data columns */
	List	   *columns;		/* char *: data column definitions, "NAME" type AS (expr) */
	List	   *partitions;		/* char *: partition directories below the location, sorted */
	char	   *table_sql;		/* "DB"."SCHEMA"."TABLE" */
	bool		user_specified; /* PARTITION_TYPE = USER_SPECIFIED: values from Glue */
	char	   *user_specified_why;	/* why the directories do not give the values */
	List	   *part_names;		/* char *: the partition columns' Snowflake names */
} GluePlan;

extern void sf_glue_plan_table(SfGlueClient *gc, SfGlueConfig *conf, const char *glue_db,
							   SfGlueTable *t, const char *target_db,
							   const char *target_schema, GluePlan *plan);
extern char *sf_glue_upper_name(const char *name);
extern int	sf_glue_cmp_strings(const ListCell *a, const ListCell *b);

#endif							/* SF_GLUE_PLAN_H */
