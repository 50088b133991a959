/*-------------------------------------------------------------------------
 *
 * sweep.h
 *		Orphaned objects: uploads whose transaction never committed
 *		(sweep.c; pipeline layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_SWEEP_H
#define SF_SWEEP_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "storage.h"

typedef struct SfOrphan
{
	char	   *name;			/* below the server's location */
	TimestampTz at;				/* the time in its name */
} SfOrphan;

extern int	sfexport_orphan_grace_s;	/* sfexport.orphan_grace */
extern int	sfexport_orphan_sweep_interval_s;	/* sfexport.orphan_sweep_interval */
extern void sf_sweep_define_gucs(void);
extern List *sf_sweep_server(Oid serverid, int grace_s, bool delete,
							 SfListBounds *bounds, char **last);
extern void sf_sweep_periodic(void);	/* worker housekeeping, outside a transaction */

#endif							/* SF_SWEEP_H */
