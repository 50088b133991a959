/*-------------------------------------------------------------------------
 *
 * outbox.c
 *		The outbox: a WAL-logged heap table, sfexport.outbox, into which the
 *		insert path writes one payload per captured row, inside the
 *		inserting transaction.  Rolled-back rows therefore never exist for
 *		the worker, and committed rows are as durable as any heap row.
 *
 * A payload is the row in binary form, which the worker renders to CSV, or
 * its CSV record made at INSERT where deferring is not safe; encode.c
 * (sf_encode_payload) decides per row and documents both formats.
 *
 * Rows are buffered per statement and written with table_multi_insert(),
 * as COPY does for heap tables, so the outbox costs little more than the
 * row itself.  The buffer is always written before the statement ends
 * (sf_outbox_end), so a later statement of the same transaction sees it.
 *
 * Also kept here: the shape registry, sfexport.shapes, which records the
 * target column names and types of every shape (see encode.c) that rows
 * were written with, and each column's type OID, typmod, typlen, typbyval
 * and typalign.  The worker reads it to know which columns an old record
 * holds after the foreign table was altered, and to decode binary payloads
 * (sf_shape_layout).
 *
 * Per-statement setup is cheap: the encoder of each foreign table and the
 * OIDs of the outbox and shapes tables are cached (with invalidation, see
 * "Caches and invalidation" in docs/ARCHITECTURE.md), and a shape already
 * registered in this backend is not looked up again.
 *
 * Segments.  sfexport.outbox is the parent of two segments, outbox_0 and
 * outbox_1, and holds no rows itself.  A statement writes into the segment
 * its database's worker calls current (launcher.c), or the other one if
 * the current one is locked (open_outbox_segment); a statement never waits
 * behind the worker.  The worker flips "current", waits for nothing, and
 * empties the old segment with a TRUNCATE once every row in it is staged
 * (flush.c); that replaces a heap delete, and its WAL, per row.
 *
 * Both tables are written through the table AM directly, without SQL, so
 * the inserting user needs no privilege on them (only INSERT on the foreign
 * table) and cannot read them.  Neither table may have indexes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "mb/pg_wchar.h"
#include "utils/timestamp.h"

#include "sfexport.h"

/* sfexport.outbox columns */
#define Anum_outbox_relid		1
#define Anum_outbox_shape		2
#define Anum_outbox_inserted_at	3
#define Anum_outbox_line		4
#define Natts_outbox			4

/* sfexport.shapes columns */
#define Anum_shapes_relid		1
#define Anum_shapes_shape		2
#define Anum_shapes_columns		3
#define Anum_shapes_types		4
#define Anum_shapes_registered	5
#define Anum_shapes_type_oids	6
#define Anum_shapes_type_mods	7
#define Anum_shapes_type_lens	8
#define Anum_shapes_type_byvals	9
#define Anum_shapes_type_aligns	10
#define Natts_shapes			10

/* Write the buffer at this many bytes of records even if not full. */
#define OUTBOX_BUFFER_BYTES		(64 * 1024)

struct SfOutboxWriter
{
	Oid			ftrelid;
	Relation	outbox;
	struct SfRelCacheData *cache;	/* pinned while the writer lives */
	SfRowEncoder *enc;
	int64		shape;
	bool		allow_binary;	/* sfexport.capture_binary at the start */
	TimestampTz inserted_at;
	int			executor_batch; /* the batch_size option, for the executor */
	int			batch;			/* rows per table_multi_insert */
	TupleTableSlot **slots;		/* grown on demand up to batch */
	int			nslots;			/* allocated entries of slots[] */
	int			nbuffered;
	Size		bufbytes;
	BulkInsertState bistate;	/* created once a statement fills a batch */
	MemoryContext bufcxt;		/* buffered records; reset after each write */
	StringInfoData line;
};

/*
 * Shapes this backend knows are registered, keyed by (shapes table, relid,
 * shape).  Forgotten whenever a (sub)transaction aborts, because the
 * registration may have been rolled back with it.
 */
typedef struct ShapeKey
{
	Oid			shapes_relid;
	Oid			relid;
	int64		shape;
} ShapeKey;

static HTAB *known_shapes = NULL;

static void
forget_shapes(void)
{
	if (known_shapes)
	{
		hash_destroy(known_shapes);
		known_shapes = NULL;
	}
}

static void release_rel_cache_pins(void);

/* Outbox bytes written by the current transaction, for waking the worker. */
static uint64 xact_outbox_bytes = 0;

static void
outbox_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
			/* committed and visible: now the worker may see the rows */
			if (xact_outbox_bytes > 0)
				sf_notify_commit(xact_outbox_bytes);
			xact_outbox_bytes = 0;
			release_rel_cache_pins();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			forget_shapes();
			xact_outbox_bytes = 0;
			release_rel_cache_pins();
			break;
		case XACT_EVENT_PREPARE:
			/* COMMIT PREPARED runs elsewhere; the worker's timer finds the rows */
			xact_outbox_bytes = 0;
			break;
		default:
			break;
	}
}

static void
outbox_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		forget_shapes();
}

/*
 * Per-foreign-table state that is costly to build (the row encoder with its
 * output functions and column names, the batch size option), kept across
 * statements so that a single-row INSERT does not rebuild it.
 *
 * An invalidation can arrive in the middle of a statement (any lock
 * acquisition processes them, e.g. when autovacuum touched the outbox), so a
 * writer pins the entry it uses.  Invalidation detaches entries from the
 * hash table; a pinned one is freed when its writer unpins it, or at the end
 * of the transaction if the statement failed before unpinning.
 */
typedef struct SfRelCacheData
{
	Oid			relid;
	MemoryContext cxt;			/* holds this struct and the encoder */
	SfRowEncoder *enc;
	int			batch_option;	/* table or server batch_size, -1 if unset */
	int			pins;			/* writers using it now */
	bool		detached;		/* no longer in the hash table */
} SfRelCacheData;

typedef struct SfRelCacheEntry
{
	Oid			relid;			/* hash key */
	SfRelCacheData *data;
} SfRelCacheEntry;

static HTAB *rel_cache = NULL;
static List *detached_pinned = NIL;	/* detached while pinned (TopMemoryContext) */
static bool pinned_in_xact = false; /* a pin was taken since the last release */

static void
detach(SfRelCacheData *d)
{
	d->detached = true;
	if (d->pins == 0)
		MemoryContextDelete(d->cxt);
	else
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		detached_pinned = lappend(detached_pinned, d);
		MemoryContextSwitchTo(old);
	}
}

/* Drop the entry of relid, or every entry when relid is InvalidOid. */
static void
forget_rel_cache(Oid relid)
{
	HASH_SEQ_STATUS seq;
	SfRelCacheEntry *e;

	if (rel_cache == NULL)
		return;
	if (OidIsValid(relid))
	{
		e = hash_search(rel_cache, &relid, HASH_FIND, NULL);
		if (e)
		{
			detach(e->data);
			hash_search(rel_cache, &relid, HASH_REMOVE, NULL);
		}
		return;
	}
	hash_seq_init(&seq, rel_cache);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		detach(e->data);
		hash_search(rel_cache, &e->relid, HASH_REMOVE, NULL);
	}
}

/* At transaction end no writer is active: free what failed statements left pinned. */
static void
release_rel_cache_pins(void)
{
	ListCell   *lc;
	HASH_SEQ_STATUS seq;
	SfRelCacheEntry *e;

	if (!pinned_in_xact)
		return;					/* most transactions: nothing to do */
	pinned_in_xact = false;
	foreach(lc, detached_pinned)
		MemoryContextDelete(((SfRelCacheData *) lfirst(lc))->cxt);
	list_free(detached_pinned);
	detached_pinned = NIL;
	if (rel_cache == NULL)
		return;
	hash_seq_init(&seq, rel_cache);
	while ((e = hash_seq_search(&seq)) != NULL)
		e->data->pins = 0;
}

static void
unpin(SfRelCacheData *d)
{
	if (--d->pins > 0 || !d->detached)
		return;
	detached_pinned = list_delete_ptr(detached_pinned, d);
	MemoryContextDelete(d->cxt);
}

/*
 * The OIDs of sfexport.outbox and sfexport.shapes, looked up once and kept
 * until an invalidation of either relation (DROP EXTENSION, a rewrite) or of
 * any namespace (ALTER SCHEMA ... RENAME): a statement then costs no
 * catalog lookup by name.
 */
static Oid	cached_outbox_relid = InvalidOid;
static Oid	cached_shapes_relid = InvalidOid;
static Oid	cached_segment_relids[SF_OUTBOX_SEGMENTS];

static void
forget_relids(void)
{
	cached_outbox_relid = InvalidOid;
	cached_shapes_relid = InvalidOid;
	for (int i = 0; i < SF_OUTBOX_SEGMENTS; i++)
		cached_segment_relids[i] = InvalidOid;
}

static void
rel_cache_relcache_callback(Datum arg, Oid relid)
{
	bool		ours = !OidIsValid(relid) || relid == cached_outbox_relid ||
		relid == cached_shapes_relid;

	forget_rel_cache(relid);
	for (int i = 0; i < SF_OUTBOX_SEGMENTS; i++)
		ours |= relid == cached_segment_relids[i];
	if (ours)
		forget_relids();
}

static void
rel_cache_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	forget_rel_cache(InvalidOid);
}

static void
relids_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	forget_relids();
}

/* The cached state of foreign table rel, built on first use, pinned. */
static SfRelCacheData *
rel_cache_pin(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	SfRelCacheEntry *e;
	bool		found;

	if (rel_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(SfRelCacheEntry);
		ctl.hcxt = CacheMemoryContext;
		rel_cache = hash_create("sfexport relation cache", 64, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(rel_cache, &relid, HASH_FIND, &found);
	if (!found)
	{
		MemoryContext cxt = AllocSetContextCreate(CacheMemoryContext,
												  "sfexport relation cache entry",
												  ALLOCSET_SMALL_SIZES);
		MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
		SfRelCacheData *d = palloc0(sizeof(SfRelCacheData));

		d->relid = relid;
		d->cxt = cxt;
		PG_TRY();
		{
			d->enc = sf_encoder_create(rel);
			d->batch_option = sf_get_table_config(relid)->batch_size_option;
		}
		PG_CATCH();
		{
			MemoryContextSwitchTo(oldcxt);
			MemoryContextDelete(cxt);
			PG_RE_THROW();
		}
		PG_END_TRY();
		MemoryContextSwitchTo(oldcxt);

		/* building it may have processed invalidations: look again */
		e = hash_search(rel_cache, &relid, HASH_ENTER, &found);
		if (found)
			MemoryContextDelete(cxt);
		else
			e->data = d;
	}
	e->data->pins++;
	pinned_in_xact = true;
	return e->data;
}

/* Called once from _PG_init. */
void
sf_outbox_init(void)
{
	RegisterXactCallback(outbox_xact_callback, NULL);
	RegisterSubXactCallback(outbox_subxact_callback, NULL);
	CacheRegisterRelcacheCallback(rel_cache_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(FOREIGNTABLEREL, rel_cache_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, rel_cache_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, rel_cache_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, relids_syscache_callback, (Datum) 0);
}

static Oid
extension_table_relid(const char *name, bool missing_ok)
{
	Oid			nsp = get_namespace_oid(SFEXPORT_SCHEMA, true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;

	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table %s.%s does not exist", SFEXPORT_SCHEMA, name),
				 errhint("Run CREATE EXTENSION sfexport in this database.")));
	return relid;
}

Oid
sf_outbox_relid(bool missing_ok)
{
	if (!OidIsValid(cached_outbox_relid))
		cached_outbox_relid = extension_table_relid("outbox", missing_ok);
	return cached_outbox_relid;
}

static Oid
shapes_relid(void)
{
	if (!OidIsValid(cached_shapes_relid))
		cached_shapes_relid = extension_table_relid("shapes", false);
	return cached_shapes_relid;
}

/*
 * Open sfexport.<name> by its cached OID, checking that the OID still names
 * it (an invalidation not yet processed could leave a stale one); on a
 * mismatch look it up again.
 */
static Relation
open_extension_table(const char *name, Oid (*lookup) (void), LOCKMODE lockmode)
{
	Oid			relid = lookup();
	Relation	rel = try_table_open(relid, lockmode);

	if (rel == NULL ||
		strcmp(RelationGetRelationName(rel), name) != 0 ||
		get_namespace_oid(SFEXPORT_SCHEMA, true) != RelationGetNamespace(rel))
	{
		if (rel)
			table_close(rel, lockmode);
		forget_relids();
		relid = lookup();
		rel = table_open(relid, lockmode);
	}
	return rel;
}

/* sfexport.outbox_<seg>, a segment of the outbox (cached like the others). */
Oid
sf_outbox_segment_relid(int seg, bool missing_ok)
{
	char		name[NAMEDATALEN];

	Assert(seg >= 0 && seg < SF_OUTBOX_SEGMENTS);
	if (OidIsValid(cached_segment_relids[seg]))
		return cached_segment_relids[seg];
	snprintf(name, sizeof(name), "outbox_%d", seg);
	cached_segment_relids[seg] = extension_table_relid(name, missing_ok);
	return cached_segment_relids[seg];
}

/*
 * Open a segment already locked through a cached OID; NULL if the OID no
 * longer names it (the extension was dropped and created again and the
 * invalidation arrived with the lock): the caller looks it up again.
 */
static Relation
open_locked_segment(Oid relid, int seg)
{
	Relation	rel = try_table_open(relid, NoLock);
	char		name[NAMEDATALEN];

	snprintf(name, sizeof(name), "outbox_%d", seg);
	if (rel != NULL && strcmp(RelationGetRelationName(rel), name) == 0 &&
		get_namespace_oid(SFEXPORT_SCHEMA, true) == RelationGetNamespace(rel))
		return rel;
	if (rel)
		table_close(rel, NoLock);
	UnlockRelationOid(relid, RowExclusiveLock);
	forget_relids();
	return NULL;
}

/*
 * Lock and open the segment this statement writes into.
 *
 * The parent, sfexport.outbox, is locked as an INSERT through it would be,
 * so TRUNCATE sfexport.outbox and DDL on it still exclude writers.  Then a
 * segment: the current one if its RowExclusiveLock is free at once, else the
 * other one.  The worker holds ExclusiveLock on a segment it drains, and
 * takes it only after making the other segment current, so an inserter that
 * read a stale "current" finds the other segment free; any segment is valid
 * to insert into.  Only if both stay taken for a few rounds (a TRUNCATE of
 * the whole outbox, say) does the inserter wait, on the current segment.
 * A transaction that already wrote a segment gets its lock again at once.
 */
static Relation
open_outbox_segment(void)
{
	Relation	rel;
	int			cur;

	LockRelationOid(sf_outbox_relid(false), RowExclusiveLock);
	for (int round = 0; round < 3; round++)
	{
		cur = sf_outbox_current_segment();
		for (int k = 0; k < SF_OUTBOX_SEGMENTS; k++)
		{
			int			seg = (cur + k) % SF_OUTBOX_SEGMENTS;
			Oid			relid = sf_outbox_segment_relid(seg, false);

			if (ConditionalLockRelationOid(relid, RowExclusiveLock) &&
				(rel = open_locked_segment(relid, seg)) != NULL)
				return rel;
		}
		CHECK_FOR_INTERRUPTS();
		pg_usleep(1000L);
	}
	cur = sf_outbox_current_segment();
	LockRelationOid(sf_outbox_segment_relid(cur, false), RowExclusiveLock);
	rel = open_locked_segment(sf_outbox_segment_relid(cur, false), cur);
	if (rel == NULL)
		rel = table_open(sf_outbox_segment_relid(cur, false), RowExclusiveLock);
	return rel;
}

/* Refuse to write a table whose indexes we would not maintain. */
static void
check_no_indexes(Relation rel)
{
	if (rel->rd_rel->relhasindex)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s.%s\" must not have indexes",
						SFEXPORT_SCHEMA, RelationGetRelationName(rel)),
				 errhint("Drop the indexes created on it.")));
}

/*
 * Make sure the shape of the rows about to be written is in sfexport.shapes.
 * A duplicate registration by a concurrent session is harmless: readers
 * take any row of a (relid, shape) pair, and they are all the same.
 */
static void
register_shape(Oid ftrelid, SfRowEncoder *enc)
{
	Oid			shapes_oid = shapes_relid();
	int64		shape = (int64) sf_encoder_shape(enc);
	ShapeKey	key;
	bool		found;
	Relation	rel;
	ScanKeyData skey[2];
	TableScanDesc scan;
	Snapshot	snapshot;
	bool		exists;

	if (known_shapes == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(ShapeKey);
		ctl.entrysize = sizeof(ShapeKey);
		ctl.hcxt = TopMemoryContext;
		known_shapes = hash_create("sfexport known shapes", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.shapes_relid = shapes_oid;
	key.relid = ftrelid;
	key.shape = shape;
	hash_search(known_shapes, &key, HASH_FIND, &found);
	if (found)
		return;

	rel = open_extension_table("shapes", shapes_relid, RowExclusiveLock);
	check_no_indexes(rel);

	ScanKeyInit(&skey[0], Anum_shapes_relid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ftrelid));
	ScanKeyInit(&skey[1], Anum_shapes_shape, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(shape));
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 2, skey);
	exists = heap_getnext(scan, ForwardScanDirection) != NULL;
	table_endscan(scan);
	UnregisterSnapshot(snapshot);

	if (!exists)
	{
		int			ncols = sf_encoder_ncolumns(enc);
		Datum	   *names = palloc(sizeof(Datum) * Max(ncols, 1));
		Datum	   *types = palloc(sizeof(Datum) * Max(ncols, 1));
		Datum	   *oids = palloc(sizeof(Datum) * Max(ncols, 1));
		Datum	   *mods = palloc(sizeof(Datum) * Max(ncols, 1));
		Datum	   *lens = palloc(sizeof(Datum) * Max(ncols, 1));
		Datum	   *byvals = palloc(sizeof(Datum) * Max(ncols, 1));
		Datum	   *aligns = palloc(sizeof(Datum) * Max(ncols, 1));
		Datum		values[Natts_shapes];
		bool		nulls[Natts_shapes] = {false};
		HeapTuple	tup;

		sf_encoder_shape_arrays(enc, names, types);
		sf_encoder_layout_arrays(enc, oids, mods, lens, byvals, aligns);
		values[Anum_shapes_relid - 1] = ObjectIdGetDatum(ftrelid);
		values[Anum_shapes_shape - 1] = Int64GetDatum(shape);
		values[Anum_shapes_columns - 1] =
			PointerGetDatum(construct_array(names, ncols, TEXTOID, -1, false, TYPALIGN_INT));
		values[Anum_shapes_types - 1] =
			PointerGetDatum(construct_array(types, ncols, TEXTOID, -1, false, TYPALIGN_INT));
		values[Anum_shapes_registered - 1] = TimestampTzGetDatum(GetCurrentTimestamp());
		values[Anum_shapes_type_oids - 1] =
			PointerGetDatum(construct_array(oids, ncols, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
		values[Anum_shapes_type_mods - 1] =
			PointerGetDatum(construct_array(mods, ncols, INT4OID, sizeof(int32), true, TYPALIGN_INT));
		values[Anum_shapes_type_lens - 1] =
			PointerGetDatum(construct_array(lens, ncols, INT2OID, sizeof(int16), true, TYPALIGN_SHORT));
		values[Anum_shapes_type_byvals - 1] =
			PointerGetDatum(construct_array(byvals, ncols, BOOLOID, sizeof(bool), true, TYPALIGN_CHAR));
		values[Anum_shapes_type_aligns - 1] =
			PointerGetDatum(construct_array(aligns, ncols, CHAROID, sizeof(char), true, TYPALIGN_CHAR));
		tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
		simple_heap_insert(rel, tup);
		heap_freetuple(tup);
		/* make it visible to later commands of this transaction */
		CommandCounterIncrement();
	}
	table_close(rel, NoLock);

	hash_search(known_shapes, &key, HASH_ENTER, NULL);
}

/* Deconstruct a one-dimensional array column of a sfexport.shapes row. */
static Datum *
shape_array(HeapTuple tup, TupleDesc desc, int attnum, Oid elemtype, int *count)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, attnum, desc, &isnull);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (isnull)
		return NULL;
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(DatumGetArrayTypeP(d), elemtype, typlen, typbyval, typalign,
					  &elems, &nulls, &n);
	if (*count >= 0 && n != *count)
		return NULL;
	*count = n;
	for (int i = 0; i < n; i++)
		if (nulls[i])
			return NULL;
	return elems;
}

/*
 * The recorded columns and types of (relid, shape), for decoding binary
 * payloads (encode.c).  Allocated in the current memory context.
 */
SfShapeLayout *
sf_shape_layout(Oid relid, int64 shape)
{
	Relation	rel = open_extension_table("shapes", shapes_relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	ScanKeyData skey[2];
	TableScanDesc scan;
	Snapshot	snapshot;
	HeapTuple	tup;
	SfShapeLayout *lay = palloc0(sizeof(SfShapeLayout));
	Datum	   *names;
	Datum	   *oids = NULL;
	Datum	   *mods = NULL;
	Datum	   *lens = NULL;
	Datum	   *byvals = NULL;
	Datum	   *aligns = NULL;

	ScanKeyInit(&skey[0], Anum_shapes_relid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&skey[1], Anum_shapes_shape, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(shape));
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 2, skey);
	tup = heap_getnext(scan, ForwardScanDirection);
	if (tup == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("no column shape registered for foreign table %u shape " INT64_FORMAT,
						relid, shape),
				 errhint("Rows of this shape stay in the outbox; check sfexport.shapes.")));

	lay->ncols = -1;
	names = shape_array(tup, desc, Anum_shapes_columns, TEXTOID, &lay->ncols);
	if (names)
	{
		oids = shape_array(tup, desc, Anum_shapes_type_oids, OIDOID, &lay->ncols);
		mods = shape_array(tup, desc, Anum_shapes_type_mods, INT4OID, &lay->ncols);
		lens = shape_array(tup, desc, Anum_shapes_type_lens, INT2OID, &lay->ncols);
		byvals = shape_array(tup, desc, Anum_shapes_type_byvals, BOOLOID, &lay->ncols);
		aligns = shape_array(tup, desc, Anum_shapes_type_aligns, CHAROID, &lay->ncols);
	}
	if (!names || !oids || !mods || !lens || !byvals || !aligns)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the registered shape " INT64_FORMAT " of foreign table %u lacks its type layout",
						shape, relid),
				 errdetail("sfexport.shapes must hold one type OID, typmod, typlen, typbyval and typalign per column."),
				 errhint("Rows of this shape stay in the outbox; check sfexport.shapes.")));

	lay->names = palloc(sizeof(char *) * Max(lay->ncols, 1));
	lay->oids = palloc(sizeof(Oid) * Max(lay->ncols, 1));
	lay->typmods = palloc(sizeof(int32) * Max(lay->ncols, 1));
	lay->lens = palloc(sizeof(int16) * Max(lay->ncols, 1));
	lay->byvals = palloc(sizeof(bool) * Max(lay->ncols, 1));
	lay->aligns = palloc(sizeof(char) * Max(lay->ncols, 1));
	for (int i = 0; i < lay->ncols; i++)
	{
		lay->names[i] = TextDatumGetCString(names[i]);
		lay->oids[i] = DatumGetObjectId(oids[i]);
		lay->typmods[i] = DatumGetInt32(mods[i]);
		lay->lens[i] = DatumGetInt16(lens[i]);
		lay->byvals[i] = DatumGetBool(byvals[i]);
		lay->aligns[i] = DatumGetChar(aligns[i]);
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return lay;
}

/*
 * Start writing rows of foreign table ftrel to the outbox.  Called from
 * BeginForeignModify / BeginForeignInsert; everything lives in the current
 * (per-query) memory context.
 */
SfOutboxWriter *
sf_outbox_begin(Relation ftrel)
{
	SfOutboxWriter *w = palloc0(sizeof(SfOutboxWriter));
	SfRelCacheData *entry = rel_cache_pin(ftrel);

	w->ftrelid = RelationGetRelid(ftrel);
	w->outbox = open_outbox_segment();
	check_no_indexes(w->outbox);
	w->cache = entry;
	w->enc = entry->enc;
	w->shape = (int64) sf_encoder_shape(w->enc);
	w->allow_binary = sfexport_capture_binary;
	w->inserted_at = GetCurrentTransactionStartTimestamp();
	w->batch = sfexport_batch_size;
	w->executor_batch = entry->batch_option > 0 ? entry->batch_option : 1;
	w->nslots = Min(8, w->batch);
	w->slots = palloc0(sizeof(TupleTableSlot *) * w->nslots);
	w->bufcxt = AllocSetContextCreate(CurrentMemoryContext,
									  "sfexport outbox buffer",
									  ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&w->line);

	register_shape(w->ftrelid, w->enc);
	return w;
}

/* Write the buffered records with one table_multi_insert call. */
static void
outbox_write_buffer(SfOutboxWriter *w)
{
	MemoryContext oldcxt;

	if (w->nbuffered == 0)
		return;

	oldcxt = MemoryContextSwitchTo(w->bufcxt);
	table_multi_insert(w->outbox, w->slots, w->nbuffered,
					   GetCurrentCommandId(true), 0, w->bistate);
	MemoryContextSwitchTo(oldcxt);

	for (int i = 0; i < w->nbuffered; i++)
		ExecClearTuple(w->slots[i]);
	w->nbuffered = 0;
	w->bufbytes = 0;
	MemoryContextReset(w->bufcxt);
}

/* Encode the row in slot and add it to the outbox. */
void
sf_outbox_put(SfOutboxWriter *w, TupleTableSlot *slot)
{
	TupleTableSlot *out;
	bytea	   *line;

	resetStringInfo(&w->line);
	sf_encode_payload(w->enc, slot, w->allow_binary, &w->line);

	if (w->nbuffered == w->nslots)
	{
		int			n = Min(w->nslots * 2, w->batch);

		w->slots = repalloc(w->slots, sizeof(TupleTableSlot *) * n);
		memset(w->slots + w->nslots, 0, sizeof(TupleTableSlot *) * (n - w->nslots));
		w->nslots = n;
	}
	if (w->slots[w->nbuffered] == NULL)
		w->slots[w->nbuffered] = table_slot_create(w->outbox, NULL);
	out = w->slots[w->nbuffered];
	ExecClearTuple(out);

	line = (bytea *) MemoryContextAlloc(w->bufcxt, VARHDRSZ + w->line.len);
	SET_VARSIZE(line, VARHDRSZ + w->line.len);
	memcpy(VARDATA(line), w->line.data, w->line.len);

	out->tts_values[Anum_outbox_relid - 1] = ObjectIdGetDatum(w->ftrelid);
	out->tts_values[Anum_outbox_shape - 1] = Int64GetDatum(w->shape);
	out->tts_values[Anum_outbox_inserted_at - 1] = TimestampTzGetDatum(w->inserted_at);
	out->tts_values[Anum_outbox_line - 1] = PointerGetDatum(line);
	memset(out->tts_isnull, 0, sizeof(bool) * Natts_outbox);
	ExecStoreVirtualTuple(out);

	w->nbuffered++;
	w->bufbytes += w->line.len;
	xact_outbox_bytes += w->line.len + 1;
	if (w->nbuffered >= w->batch || w->bufbytes >= OUTBOX_BUFFER_BYTES)
	{
		/* a statement writing many rows: use a bulk-insert buffer ring */
		if (w->bistate == NULL && w->nbuffered >= w->batch)
			w->bistate = GetBulkInsertState();
		outbox_write_buffer(w);
	}
}

/*
 * Rows per ExecForeignBatchInsert call: the batch_size option of the table
 * or server, 1 when unset (as in postgres_fdw).  Independent of it, the
 * writer buffers sfexport.batch_size rows per outbox write.
 */
int
sf_outbox_batch_size(SfOutboxWriter *w)
{
	return w->executor_batch;
}

/* Write what is buffered and release the writer's resources. */
void
sf_outbox_end(SfOutboxWriter *w)
{
	outbox_write_buffer(w);
	if (w->bistate)
	{
		FreeBulkInsertState(w->bistate);
		w->bistate = NULL;
	}
	for (int i = 0; i < w->nslots; i++)
		if (w->slots[i])
			ExecDropSingleTupleTableSlot(w->slots[i]);
	table_close(w->outbox, NoLock);
	MemoryContextDelete(w->bufcxt);
	unpin(w->cache);
	w->cache = NULL;
	w->enc = NULL;
}

/*
 * sfexport.outbox_record(relid, shape, line): the CSV record an outbox row
 * stands for, as the worker writes it to a staged file (without the
 * newline), in the database encoding.  Superuser only (the install script
 * revokes it from PUBLIC), like reading the outbox itself.
 */
typedef struct OutboxRecordCache
{
	Oid			relid;
	int64		shape;
	SfRowDecoder *dec;
} OutboxRecordCache;

PG_FUNCTION_INFO_V1(sf_outbox_record);

Datum
sf_outbox_record(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int64		shape = PG_GETARG_INT64(1);
	bytea	   *line = PG_GETARG_BYTEA_PP(2);
	OutboxRecordCache *c = (OutboxRecordCache *) fcinfo->flinfo->fn_extra;
	StringInfoData buf;
	const char *record;
	int			len;
	char	   *conv;

	if (c == NULL || c->relid != relid || c->shape != shape)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (c == NULL)
			c = palloc0(sizeof(OutboxRecordCache));
		c->relid = relid;
		c->shape = shape;
		c->dec = sf_decoder_create(relid, shape);	/* the old one is left to fn_mcxt */
		fcinfo->flinfo->fn_extra = c;
		MemoryContextSwitchTo(old);
	}
	initStringInfo(&buf);
	record = sf_outbox_render(line, c->dec, &buf, &len);
	conv = pg_any_to_server(record, len, PG_UTF8);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(conv, conv == record ? len : (int) strlen(conv)));
}
