/*-------------------------------------------------------------------------
 *
 * glue_state.h
 *		The Glue sync's state and log tables (glue_state.c; pipeline layer
 *		in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_GLUE_STATE_H
#define SF_GLUE_STATE_H

#include "glue_plan.h"

typedef struct GlueState		/* a row of sfexport.glue_sync_state */
{
	char	   *glue_table;
	char	   *target_table;
	char	   *hash;			/* SHA-256 of the statement applied */
	char	   *shape_hash;		/* SHA-256 of it without the data columns; NULL = unknown */
	List	   *columns;		/* char *: the data column definitions */
	List	   *partitions;		/* char *: partition directories, sorted */
	bool		partitions_known;	/* false: synced before partitions were recorded */
	bool		seen;			/* for glue_sync: still in Glue */
} GlueState;

extern List *sf_glue_state_load(Oid serverid, const char *glue_db, const char *tdb,
								const char *tschema);
extern void sf_glue_state_save(Oid serverid, const char *glue_db, const char *tdb,
							   const char *tschema, GluePlan *plan, List *partitions,
							   bool partitions_known);
extern void sf_glue_state_delete(Oid serverid, const char *glue_db, const char *tdb,
								 const char *tschema, const char *glue_table);
extern void sf_glue_log_save(Oid serverid, const char *glue_db, const char *glue_table,
							 const char *action, const char *reason, bool periodic);
extern void sf_glue_log_forget(Oid serverid, const char *glue_db, const char *pattern,
							   List *reported);
extern void sf_glue_sync_record_failure(Oid serverid, const char *glue_db,
										const char *message);

#endif							/* SF_GLUE_STATE_H */
