/*-------------------------------------------------------------------------
 *
 * tables.h
 *		The extension's tables: cached OIDs and checked opens (tables.c;
 *		model layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_TABLES_H
#define SF_TABLES_H

#include "storage/lockdefs.h"
#include "utils/relcache.h"

#include "shmem.h"

/* sfexport.outbox columns */
#define Anum_outbox_relid		1
#define Anum_outbox_shape		2
#define Anum_outbox_inserted_at	3
#define Anum_outbox_line		4
#define Natts_outbox			4

extern void sf_tables_init(void);
extern Oid	sf_outbox_relid(bool missing_ok);
extern Oid	sf_outbox_segment_relid(int seg, bool missing_ok);
extern Oid	sf_shapes_relid(void);
extern Oid	sf_track_seq_relid(void);
extern Relation sf_open_extension_table(const char *name, Oid (*lookup) (void),
										LOCKMODE lockmode);
extern Relation sf_open_locked_segment(Oid relid, int seg);
extern void sf_check_no_indexes(Relation rel);

#endif							/* SF_TABLES_H */
