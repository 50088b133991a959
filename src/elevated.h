/*-------------------------------------------------------------------------
 *
 * elevated.h
 *		SQL run with more rights than the caller's: a locked search_path,
 *		the role switch of glue_sync's state (elevated.c; base layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_ELEVATED_H
#define SF_ELEVATED_H

#define SF_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

typedef struct SfElevated
{
	Oid			saved_user;
	int			saved_sec;
	int			nestlevel;		/* GUC nest level of the safe search_path */
} SfElevated;

extern void sf_lock_search_path(void);
extern void sf_elevated_begin(SfElevated *e, Oid role);
extern void sf_elevated_end(SfElevated *e, bool commit);
extern Oid	sf_extension_table_owner(const char *relname);

#endif							/* SF_ELEVATED_H */
