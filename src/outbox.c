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
 * Before the first row of a shape, the shape is registered in
 * sfexport.shapes (shapes.c), which the worker reads to know which columns
 * an old record holds and to decode binary payloads.
 *
 * Per-statement setup is cheap: the encoder of each foreign table and the
 * OIDs of the outbox and shapes tables (tables.c) are cached (with
 * invalidation, see "Caches and invalidation" in docs/ARCHITECTURE.md), and
 * a shape already registered in this backend is not looked up again
 * (shapes.c).
 *
 * Segments.  sfexport.outbox is the parent of two segments, outbox_0 and
 * outbox_1, and holds no rows itself.  A statement writes into the segment
 * its database's worker calls current (shmem.c), or the other one if
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
#include "utils/guc.h"
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

#include "config.h"
#include "encode.h"
#include "hashtab.h"
#include "outbox.h"
#include "shapes.h"
#include "shmem.h"
#include "tables.h"
#include "waits.h"

/* GUCs (README.md, Configuration) */
int			sfexport_batch_size = 1000;
bool		sfexport_capture_binary = true;

/* From _PG_init: how the insert path writes the outbox. */
void
sf_outbox_define_gucs(void)
{
	DefineCustomIntVariable("sfexport.batch_size",
							"Rows buffered per outbox write by INSERT and COPY.",
							"The rows are written before the statement ends either way. "
							"The batch_size option of a table or server is the separate "
							"executor batch size (ExecForeignBatchInsert).",
							&sfexport_batch_size,
							1000, 1, 10000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("sfexport.capture_binary",
							 "Store captured rows in binary form where the worker can render them.",
							 "When on, rows whose column types the worker renders safely are stored "
							 "as binary tuples and turned into CSV by the worker; everything else, "
							 "and every row when off, is encoded to CSV at INSERT.",
							 &sfexport_capture_binary,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);
}

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
	MemoryContext statecxt;		/* a caller's state (sf_outbox_cached_state) */
	void	   *state;
	Oid			state_relid;	/* the other relation the state depends on */
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

/*
 * Drop the entry of relid and every entry whose caller's state depends on
 * relid, or every entry when relid is InvalidOid.
 */
static void
forget_rel_cache(Oid relid)
{
	HASH_SEQ_STATUS seq;
	SfRelCacheEntry *e;

	if (rel_cache == NULL)
		return;
	hash_seq_init(&seq, rel_cache);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (OidIsValid(relid) && e->relid != relid &&
			(e->data->state == NULL || e->data->state_relid != relid))
			continue;
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

static void
rel_cache_relcache_callback(Datum arg, Oid relid)
{
	forget_rel_cache(relid);
}

static void
rel_cache_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	forget_rel_cache(InvalidOid);
}

/* The cached state of foreign table rel, built on first use, pinned. */
static SfRelCacheData *
rel_cache_pin(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	SfRelCacheEntry *e;
	bool		found;

	if (rel_cache == NULL)
		rel_cache = sf_hash_create("sfexport relation cache", 64, sizeof(Oid),
								   sizeof(SfRelCacheEntry), CacheMemoryContext);
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
	CacheRegisterRelcacheCallback(rel_cache_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(FOREIGNTABLEREL, rel_cache_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, rel_cache_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(TYPEOID, rel_cache_syscache_callback, (Datum) 0);
	/* a caller's state may hold a privilege check (sf_outbox_cached_state) */
	CacheRegisterSyscacheCallback(AUTHOID, rel_cache_syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, rel_cache_syscache_callback, (Datum) 0);
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
				(rel = sf_open_locked_segment(relid, seg)) != NULL)
				return rel;
		}
		sf_wait(1, SF_WAIT_OUTBOX_SEGMENT, SF_WAIT_FULL_TIME);
	}
	cur = sf_outbox_current_segment();
	LockRelationOid(sf_outbox_segment_relid(cur, false), RowExclusiveLock);
	rel = sf_open_locked_segment(sf_outbox_segment_relid(cur, false), cur);
	if (rel == NULL)
		rel = table_open(sf_outbox_segment_relid(cur, false), RowExclusiveLock);
	return rel;
}

/* The columns of the encoder's shape, for sf_shape_register. */
static void
encoder_shape_columns(void *arg, SfShapeColumns *c)
{
	SfRowEncoder *enc = (SfRowEncoder *) arg;
	int			n = sf_encoder_ncolumns(enc);

	c->ncols = n;
	c->names = palloc(sizeof(Datum) * Max(n, 1));
	c->types = palloc(sizeof(Datum) * Max(n, 1));
	c->oids = palloc(sizeof(Datum) * Max(n, 1));
	c->mods = palloc(sizeof(Datum) * Max(n, 1));
	c->lens = palloc(sizeof(Datum) * Max(n, 1));
	c->byvals = palloc(sizeof(Datum) * Max(n, 1));
	c->aligns = palloc(sizeof(Datum) * Max(n, 1));
	sf_encoder_shape_arrays(enc, c->names, c->types);
	sf_encoder_layout_arrays(enc, c->oids, c->mods, c->lens, c->byvals, c->aligns);
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
	sf_check_no_indexes(w->outbox);
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

	sf_shape_register(w->ftrelid, w->shape, encoder_shape_columns, w->enc);
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
 * State that the caller keeps with the cached state of the writer's foreign
 * table (ftrel), so that a statement does not rebuild it: built by
 * build(ftrel, arg) in a memory context of the cache entry when missing or
 * made for another relation than about, and valid while the writer lives.
 * It is dropped with the entry: on an invalidation of ftrel (any DDL, and
 * GRANT or REVOKE on it: they rewrite its pg_class row) or of about, of
 * foreign table or server options, types, roles or role memberships
 * (sf_outbox_init), so it may hold what those decide, privilege checks
 * included.
 */
void *
sf_outbox_cached_state(SfOutboxWriter *w, Relation ftrel, Oid about,
					   void *(*build) (Relation ftrel, void *arg), void *arg)
{
	SfRelCacheData *d = w->cache;
	MemoryContext oldcxt;

	if (d->state != NULL && d->state_relid == about)
		return d->state;
	if (d->statecxt == NULL)
		d->statecxt = AllocSetContextCreate(d->cxt, "sfexport relation cache state",
											ALLOCSET_SMALL_SIZES);
	d->state = NULL;
	MemoryContextReset(d->statecxt);
	oldcxt = MemoryContextSwitchTo(d->statecxt);
	d->state = build(ftrel, arg);
	MemoryContextSwitchTo(oldcxt);
	d->state_relid = about;
	return d->state;
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
