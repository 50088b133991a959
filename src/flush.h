/*-------------------------------------------------------------------------
 *
 * flush.h
 *		Outbox rows of one table and shape into staged files (flush.c;
 *		pipeline layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_FLUSH_H
#define SF_FLUSH_H

#include "datatype/timestamp.h"
#include "storage/block.h"
#include "utils/snapshot.h"

typedef struct SfFlushResult
{
	int			files;
	int64		rows;
	int64		bytes;			/* compressed bytes staged */
	bool		more;			/* rows left (file size limit reached) */
} SfFlushResult;

/* Where the row-by-row path stopped: segment and block. */
typedef struct SfOutboxPos
{
	int			seg;
	BlockNumber block;
} SfOutboxPos;

typedef struct SfShapeKey
{
	Oid			relid;
	int64		shape;
} SfShapeKey;

typedef struct SfDrainResult
{
	bool		locked;			/* got the segment; else nothing was done */
	bool		truncated;		/* emptied with TRUNCATE */
	int64		other_rows;		/* rows of shapes that were not due */
	SfFlushResult staged;
} SfDrainResult;

extern void sf_flush_one_file(Oid relid, int64 shape, SfOutboxPos *pos,
							  TimestampTz cutoff, SfFlushResult *res);
extern void sf_flush_drain(const SfShapeKey *due, int ndue, int seg,
						   SfDrainResult *res);

/* What the outbox holds of one table and shape (sf_flush_pending). */
typedef struct SfPendingShape
{
	Oid			relid;
	int64		shape;
	int64		rows;
	int64		bytes;			/* payload bytes, + 1 a row */
	TimestampTz oldest;			/* the smallest inserted_at */
} SfPendingShape;

extern SfPendingShape *sf_flush_pending(Snapshot snapshot, int *n);

#endif							/* SF_FLUSH_H */
