/*-------------------------------------------------------------------------
 *
 * glue_client.h
 *		The AWS Glue Data Catalog client (glue_client.c; clients layer in
 *		docs/ARCHITECTURE.md).  It includes sf_jansson.h, so a file
 *		includes it right after postgres.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_GLUE_CLIENT_H
#define SF_GLUE_CLIENT_H

#include "sf_jansson.h"

#include "nodes/pg_list.h"

#include "config.h"

typedef struct SfGlueClient SfGlueClient;

typedef struct SfGlueColumn
{
	char	   *name;
	char	   *type;
} SfGlueColumn;

/* A table of GetTables' TableList, as far as the sync reads it. */
typedef struct SfGlueTable
{
	char	   *name;
	char	   *table_type;
	char	   *location;
	char	   *classification;
	char	   *serde;
	char	   *input_format;
	char	   *field_delim;	/* SerDe field delimiter, NULL = default */
	json_t	   *serde_params;	/* SerdeInfo.Parameters (tied to the answer), or NULL */
	int			skip_header;
	List	   *columns;		/* SfGlueColumn * */
	List	   *partition_keys; /* SfGlueColumn * */
} SfGlueTable;

/*
 * called with each partition's location and its Values (a JSON array of
 * strings, or NULL); false stops the listing
 */
typedef bool (*SfGlueLocationFn) (void *arg, const char *location, json_t *values);

extern SfGlueClient *sf_glue_client(SfGlueConfig *conf, SfUserConfig *usr);
extern List *sf_glue_list_tables(SfGlueClient *gc, const char *database,
								 const char *pattern);
extern void sf_glue_partition_locations(SfGlueClient *gc, const char *glue_db,
										const char *table, SfGlueLocationFn fn,
										void *arg);
extern bool sf_glue_usable_name(const char *name);
extern char *sf_glue_shown_name(const char *name);	/* control characters as "?" */

#endif							/* SF_GLUE_CLIENT_H */
