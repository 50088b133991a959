/*-------------------------------------------------------------------------
 *
 * flush.c
 *		Turn outbox rows into staged files and their manifest rows.
 *
 * Two ways, both within the caller's transaction (the caller commits):
 *
 *	- sf_flush_drain (the fast path): stage every due row of one outbox
 *	  segment, file after file, each file's manifest row (sfexport.files,
 *	  state 'staged') inserted after its upload completed, and empty the
 *	  segment with TRUNCATE.  See the function for the locking argument.
 *	- sf_flush_one_file (row by row): scan the rows of one (relid, shape)
 *	  in every segment visible to the snapshot, stream them into one file,
 *	  delete each row as it is written, insert the manifest row.  For what a
 *	  drain cannot take.
 *
 * Either way:
 *
 *	- a crash or error before the commit leaves the rows in the outbox and
 *	  no manifest row: the uploaded objects (if any) are orphans that no COPY
 *	  ever names, and the rows go into new files with new names later;
 *	- after the commit the rows are gone from the outbox and the files are
 *	  known: they become loadable only now (README, Delivery guarantees 2).
 *
 * Why segments and TRUNCATE: removing rows one by one cost a heap delete
 * and its WAL record per row, more than compressing the row (bench/flush).
 * A TRUNCATE costs the same for any number of rows.  A LIST-partitioned
 * outbox would do too, but needs a segment column in every row; inheritance
 * children give the same two heaps with the rows unchanged.  Rows are not
 * routed by SQL: the insert path opens a segment itself (outbox.c).
 *
 * Each payload becomes its CSV record here (sf_outbox_render, encode.c):
 * binary payloads are rendered with the shape's decoder, in a memory
 * context reset per row; CSV payloads pass through.
 *
 * Memory does not grow with the backlog: rows are streamed, a file ends
 * once its compressed size reaches max_file_size, and everything a file
 * needs lives in a memory context deleted when the file is done.
 *
 * File names are unique across tables, databases and clusters, sortable by
 * time, and never reused (file_names.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "compress.h"
#include "config.h"
#include "encode.h"
#include "file_names.h"
#include "file_size.h"
#include "flush.h"
#include "shapes.h"
#include "shmem.h"
#include "statements.h"
#include "storage.h"
#include "tables.h"
#include "transaction.h"
#include "waits.h"

/* State shared with the compressor's sink. */
typedef struct FlushSink
{
	SfStorageWriter *writer;
} FlushSink;

static void
flush_sink(const char *data, size_t len, void *arg)
{
	FlushSink  *sink = (FlushSink *) arg;

	sf_storage_write(sink->writer, data, len);
}

/* Record a staged file in the manifest. */
static void
insert_manifest_row(Oid relid, Oid serverid, const char *name, const char *target,
					int64 shape, Datum columns, Datum types,
					SfCompression compression, int64 rows, int64 bytes,
					int64 raw_bytes)
{
	Oid			argtypes[11] = {OIDOID, OIDOID, TEXTOID, TEXTOID, INT8OID,
	TEXTARRAYOID, TEXTARRAYOID, TEXTOID, INT8OID, INT8OID, INT8OID};
	Datum		values[11];

	values[0] = ObjectIdGetDatum(relid);
	values[1] = ObjectIdGetDatum(serverid);
	values[2] = CStringGetTextDatum(name);
	values[3] = CStringGetTextDatum(target);
	values[4] = Int64GetDatum(shape);
	values[5] = columns;
	values[6] = types;
	values[7] = CStringGetTextDatum(sf_compression_name(compression));
	values[8] = Int64GetDatum(rows);
	values[9] = Int64GetDatum(bytes);
	values[10] = Int64GetDatum(raw_bytes);

	if (SPI_execute_with_args("INSERT INTO sfexport.files"
							  " (relid, server, name, target, shape, columns, types,"
							  "  compression, rows, bytes, raw_bytes, state, staged_at)"
							  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
							  "  'staged', pg_catalog.now())",
							  11, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into sfexport.files");
}

/* ---------------------------------------------------------------------
 * One file being written: rows of one (relid, shape) into the compressor,
 * the compressor into a storage writer; at the end the manifest row.
 * ---------------------------------------------------------------------
 */
typedef struct FileStager
{
	Oid			relid;
	int64		shape;
	bool		ready;			/* configuration read */
	SfTableConfig *tbl;
	SfServerConfig *srv;
	SfStorage  *st;
	char	   *target;
	Datum		columns;
	Datum		types;
	SfRowDecoder *dec;			/* renders binary payloads (encode.c) */
	StringInfoData rec;			/* the record being rendered */
	int64		max_bytes;
	/* the file being written, all of it in filecxt */
	MemoryContext filecxt;
	char	   *name;
	FlushSink	sink;
	SfCompressor *comp;
	int64		rows;
	bool		json;			/* NDJSON lines (file_format 'json'), not CSV */
	int64		outbox_bytes;	/* as the plan counts them (file_size.c) */
} FileStager;

static void
stager_init(FileStager *fs, Oid relid, int64 shape)
{
	memset(fs, 0, sizeof(*fs));
	fs->relid = relid;
	fs->shape = shape;
}

/* Read the configuration on first use (within SPI). */
static void
stager_prepare(FileStager *fs)
{
	SfUserConfig *usr;

	if (fs->ready)
		return;
	fs->tbl = sf_get_table_config(fs->relid);
	fs->srv = sf_get_server_config(fs->tbl->serverid);
	usr = sf_get_worker_user_config(fs->tbl->serverid);
	fs->max_bytes = (int64) fs->tbl->max_file_size_kb * 1024;
	sf_shape_columns(fs->relid, fs->shape, &fs->columns, &fs->types);
	fs->dec = sf_decoder_create(fs->relid, fs->shape);
	initStringInfo(&fs->rec);
	fs->target = sf_target_name(fs->srv, fs->tbl);
	fs->st = sf_storage_open(fs->srv, usr);
	fs->ready = true;
}

/*
 * Append one record.  Returns true when the file has reached max_file_size:
 * the caller then finishes it (the next record starts another file).
 */
static bool
stager_add(FileStager *fs, const char *data, size_t len)
{
	if (fs->sink.writer == NULL)
	{
		MemoryContext old;

		stager_prepare(fs);
		fs->filecxt = AllocSetContextCreate(CurrentMemoryContext, "sfexport staged file",
											ALLOCSET_DEFAULT_SIZES);
		old = MemoryContextSwitchTo(fs->filecxt);
		fs->name = sf_new_file_name(fs->relid, fs->srv->compression);
		if (fs->json)
		{
			/* ".csv[.gz|.zst]" -> ".json[...]": load.c reads the format back */
			char	   *ext = strstr(fs->name, ".csv");

			if (ext != NULL)
				fs->name = psprintf("%.*s.json%s", (int) (ext - fs->name), fs->name, ext + 4);
		}
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("staging %s into %s", get_rel_name(fs->relid), fs->name));
		fs->sink.writer = sf_storage_begin_write(fs->st, fs->name,
												 fs->json ? "application/x-ndjson" : "text/csv");
		fs->comp = sf_compress_begin(fs->srv->compression, fs->srv->compression_level,
									 flush_sink, &fs->sink);
		MemoryContextSwitchTo(old);
	}
	sf_compress_write(fs->comp, data, len);
	sf_compress_write(fs->comp, "\n", 1);
	fs->rows++;
	return sf_compress_out_bytes(fs->comp) >= fs->max_bytes;
}

/* Complete the upload of the file being written and record it (staged). */
static void
stager_finish(FileStager *fs, SfFlushResult *res)
{
	int64		bytes;

	if (fs->sink.writer == NULL)
		return;
	sf_compress_finish(fs->comp);
	bytes = sf_storage_finish(fs->sink.writer);
	fs->sink.writer = NULL;
	insert_manifest_row(fs->relid, fs->tbl->serverid, fs->name, fs->target, fs->shape,
						fs->columns, fs->types, fs->srv->compression, fs->rows,
						bytes, sf_compress_in_bytes(fs->comp));
	sf_file_size_note(fs->relid, fs->srv->compression, fs->outbox_bytes, bytes);
	res->files++;
	res->rows += fs->rows;
	res->bytes += bytes;
	fs->rows = 0;
	fs->outbox_bytes = 0;
	fs->comp = NULL;
	MemoryContextDelete(fs->filecxt);
	fs->filecxt = NULL;
}

/* On error: abort an upload in progress (it never becomes an object). */
static void
stager_abort(FileStager *fs)
{
	if (fs->sink.writer)
		sf_storage_abort(fs->sink.writer);
	fs->sink.writer = NULL;
}

static void
stage_tuple(FileStager *fs, HeapTuple tup, TupleDesc desc, bool *full)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, Anum_outbox_line, desc, &isnull);
	bytea	   *line = DatumGetByteaPP(d);
	const char *record;
	int			reclen;

	stager_prepare(fs);
	/* the rows of one (table, shape) are all CSV or all JSON (encode.c) */
	if (fs->sink.writer == NULL)
		fs->json = sf_payload_is_json(line);
	record = sf_outbox_render(line, fs->dec, &fs->rec, &reclen);	/* payload -> CSV or NDJSON */
	*full = stager_add(fs, record, reclen);
	fs->outbox_bytes += VARSIZE_ANY_EXHDR(line) + 1;
	if ((Pointer) line != DatumGetPointer(d))
		pfree(line);
}

/* ---------------------------------------------------------------------
 * The row-by-row path
 * ---------------------------------------------------------------------
 */

/*
 * Stage one file of (relid, shape) from every segment, starting at *pos,
 * deleting each row it writes.  Only rows whose inserting transaction
 * started before cutoff are taken (0: all): rows newer than a drain belong
 * to the next one.  Runs in the caller's transaction with an active
 * snapshot; the caller commits.  On return *pos is where the scan stopped
 * and res->more says whether rows may be left.
 *
 * This is the path for what a drain (below) could not take: rows a long
 * transaction was still writing into the segment being drained, rows of
 * tables that were not due, rows written into the current segment before
 * the flip by a transaction that started earlier.
 */
void
sf_flush_one_file(Oid relid, int64 shape, SfOutboxPos *pos, TimestampTz cutoff,
				  SfFlushResult *res)
{
	FileStager	fs;
	bool		full = false;

	memset(res, 0, sizeof(*res));
	sf_spi_connect();
	stager_init(&fs, relid, shape);
	LockRelationOid(sf_outbox_relid(false), RowExclusiveLock);

	PG_TRY();
	{
		for (; pos->seg < SF_OUTBOX_SEGMENTS && !full; pos->seg++, pos->block = 0)
		{
			Relation	outbox = table_open(sf_outbox_segment_relid(pos->seg, false),
											RowExclusiveLock);
			TupleDesc	desc = RelationGetDescr(outbox);
			BlockNumber nblocks = RelationGetNumberOfBlocks(outbox);
			ScanKeyData skey[2];
			TableScanDesc scan;
			HeapTuple	tup;

			if (pos->block >= nblocks)
			{
				table_close(outbox, NoLock);
				continue;
			}
			ScanKeyInit(&skey[0], Anum_outbox_relid, BTEqualStrategyNumber, F_OIDEQ,
						ObjectIdGetDatum(relid));
			ScanKeyInit(&skey[1], Anum_outbox_shape, BTEqualStrategyNumber, F_INT8EQ,
						Int64GetDatum(shape));
			scan = table_beginscan(outbox, GetActiveSnapshot(), 2, skey);
			heap_setscanlimits(scan, pos->block, nblocks - pos->block);
			while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
			{
				bool		isnull;

				CHECK_FOR_INTERRUPTS();
				if (cutoff != 0 &&
					DatumGetTimestampTz(heap_getattr(tup, Anum_outbox_inserted_at,
													 desc, &isnull)) >= cutoff)
					continue;
				stage_tuple(&fs, tup, desc, &full);
				simple_heap_delete(outbox, &tup->t_self);
				if (full)
				{
					pos->block = ItemPointerGetBlockNumber(&tup->t_self);
					break;
				}
			}
			table_endscan(scan);
			table_close(outbox, NoLock);
			if (full)
				break;			/* keep *pos */
		}
		res->more = full;
		stager_finish(&fs, res);
	}
	PG_CATCH();
	{
		stager_abort(&fs);
		PG_RE_THROW();
	}
	PG_END_TRY();
	SPI_finish();
}

/* ---------------------------------------------------------------------
 * Draining a segment
 * ---------------------------------------------------------------------
 */
static bool
shape_is_due(const SfShapeKey *due, int ndue, Oid relid, int64 shape)
{
	for (int i = 0; i < ndue; i++)
		if (due[i].relid == relid && due[i].shape == shape)
			return true;
	return false;
}

/*
 * AccessExclusiveLock on a drained segment, for its TRUNCATE, without ever
 * queueing for it: a queued request would make every new reader of the
 * outbox (sfexport.status) wait behind it.  A reader holds AccessShareLock
 * for the length of its query, so try again for a while before giving up
 * (and deleting the rows one by one instead).
 */
#define TRUNCATE_LOCK_TRIES		500		/* 500 x 20 ms = 10 s */

static bool
lock_for_truncate(Oid segrelid)
{
	for (int i = 0; i < TRUNCATE_LOCK_TRIES; i++)
	{
		if (ConditionalLockRelationOid(segrelid, AccessExclusiveLock))
			return true;
		sf_wait(20, SF_WAIT_TRUNCATE_LOCK, SF_WAIT_FULL_TIME);
	}
	return false;
}

/*
 * Stage every row of the due shapes found in outbox segment seg, and remove
 * them, in the caller's transaction; the caller commits.  The caller has
 * made the other segment current first (sf_worker_flip_segment), so new
 * statements write elsewhere.
 *
 * 1. ConditionalLockRelationOid(segment, ExclusiveLock): granted only when
 *    no transaction that wrote into the segment is still open (they hold
 *    RowExclusiveLock until they end), and from then on no one can write
 *    into it; readers (sfexport.status) are not blocked.  Not granted: return
 *    with res->locked false and the caller takes the row-by-row path.  We
 *    never wait, so neither do inserters queue behind us.
 * 2. A snapshot taken after the lock: every transaction that wrote into the
 *    segment has ended, so it sees all their committed rows.
 * 3. One pass per due shape, streaming its rows into files of at most
 *    max_file_size, each recorded in the manifest in this transaction.  The
 *    first pass also counts rows of shapes that are not due.
 * 4. Removal.  If every row of the segment was staged and an
 *    AccessExclusiveLock can be had without queueing (lock_for_truncate:
 *    readers hold AccessShareLock while their query runs), TRUNCATE the
 *    segment: one WAL record and a new relfilenode instead of a heap delete
 *    and a WAL record per row.  Else delete the staged rows one by one (the
 *    lock and the snapshot guarantee that the rows deleted are exactly the
 *    rows staged).
 *
 * TRUNCATE is transactional: a crash or an error before the commit keeps
 * the segment's rows and leaves the manifest without the new files, whose
 * objects are orphans no COPY names; after the commit the rows are gone and
 * the files known.  The same exactly-once argument as row by row (see the
 * header), just for several files at once.  AccessExclusiveLock is taken
 * right before the commit, so a reader of sfexport.status waits at most for
 * the TRUNCATE and the commit, never for an upload.  (Inserters never wait:
 * they take the other segment.)
 */
void
sf_flush_drain(const SfShapeKey *due, int ndue, int seg, SfDrainResult *res)
{
	Oid			segrelid;
	Relation	outbox;
	TupleDesc	desc;
	Snapshot	snapshot;
	FileStager	fs;

	memset(res, 0, sizeof(*res));
	LockRelationOid(sf_outbox_relid(false), RowExclusiveLock);
	segrelid = sf_outbox_segment_relid(seg, false);
	if (!ConditionalLockRelationOid(segrelid, ExclusiveLock))
		return;
	res->locked = true;

	snapshot = RegisterSnapshot(GetLatestSnapshot());
	outbox = table_open(segrelid, NoLock);
	desc = RelationGetDescr(outbox);
	if (RelationGetNumberOfBlocks(outbox) == 0)
	{
		table_close(outbox, NoLock);
		UnregisterSnapshot(snapshot);
		return;
	}
	sf_spi_connect();
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("draining outbox segment %s", RelationGetRelationName(outbox)));

	memset(&fs, 0, sizeof(fs));
	PG_TRY();
	{
		for (int i = 0; i < ndue; i++)
		{
			TableScanDesc scan;
			HeapTuple	tup;

			stager_init(&fs, due[i].relid, due[i].shape);
			scan = table_beginscan(outbox, snapshot, 0, NULL);
			while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
			{
				bool		isnull;
				Oid			relid;
				int64		shape;
				bool		full;

				CHECK_FOR_INTERRUPTS();
				relid = DatumGetObjectId(heap_getattr(tup, Anum_outbox_relid, desc, &isnull));
				shape = DatumGetInt64(heap_getattr(tup, Anum_outbox_shape, desc, &isnull));
				if (relid == due[i].relid && shape == due[i].shape)
				{
					stage_tuple(&fs, tup, desc, &full);
					if (full)
						stager_finish(&fs, &res->staged);
				}
				else if (i == 0 && !shape_is_due(due, ndue, relid, shape))
					res->other_rows++;
			}
			table_endscan(scan);
			stager_finish(&fs, &res->staged);
		}
	}
	PG_CATCH();
	{
		stager_abort(&fs);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (res->other_rows == 0 && lock_for_truncate(segrelid))
	{
		char	   *sql = psprintf("TRUNCATE %s.%s", SFEXPORT_SCHEMA,
								   RelationGetRelationName(outbox));

		table_close(outbox, NoLock);
		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "could not truncate outbox segment %d", seg);
		res->truncated = true;
	}
	else if (res->staged.rows == 0)
		table_close(outbox, NoLock);	/* nothing of ours to remove */
	else
	{
		TableScanDesc scan = table_beginscan(outbox, snapshot, 0, NULL);
		HeapTuple	tup;

		while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;

			CHECK_FOR_INTERRUPTS();
			if (shape_is_due(due, ndue,
							 DatumGetObjectId(heap_getattr(tup, Anum_outbox_relid, desc, &isnull)),
							 DatumGetInt64(heap_getattr(tup, Anum_outbox_shape, desc, &isnull))))
				simple_heap_delete(outbox, &tup->t_self);
		}
		table_endscan(scan);
		table_close(outbox, NoLock);
	}
	UnregisterSnapshot(snapshot);
	SPI_finish();
}

/* ---------------------------------------------------------------------
 * What is pending: the worker's plan
 * ---------------------------------------------------------------------
 */
static int
pending_cmp(const void *a, const void *b)
{
	const SfPendingShape *x = (const SfPendingShape *) a;
	const SfPendingShape *y = (const SfPendingShape *) b;

	if (x->relid != y->relid)
		return x->relid < y->relid ? -1 : 1;
	if (x->oldest != y->oldest)
		return x->oldest < y->oldest ? -1 : 1;
	return x->shape < y->shape ? -1 : (x->shape > y->shape ? 1 : 0);
}

/*
 * The rows of every (table, shape) in the outbox segments that snapshot
 * sees: how many, their payload bytes (each + 1, as a record and its line
 * end), and the oldest inserted_at; sorted by table, then oldest first.
 * Sets *n; the array is palloc'd in the current memory context.
 *
 * The same figures as SELECT relid, shape, count(*), sum(octet_length(line)
 * + 1), min(inserted_at) FROM sfexport.outbox GROUP BY relid, shape, by a
 * heap scan of the segments (the parent holds no rows, and neither flush
 * path reads it): that query's hashed aggregate cost a third of a
 * microsecond a row before every drain, about 15% of staging a backlog
 * (docs/performance.md).  A payload's size is read from its varlena header
 * (toast_raw_datum_size), never detoasted.
 */
SfPendingShape *
sf_flush_pending(Snapshot snapshot, int *n)
{
	int			cap = 8;
	int			used = 0;
	SfPendingShape *out = palloc(sizeof(SfPendingShape) * cap);

	LockRelationOid(sf_outbox_relid(false), AccessShareLock);
	for (int seg = 0; seg < SF_OUTBOX_SEGMENTS; seg++)
	{
		Relation	rel = table_open(sf_outbox_segment_relid(seg, false), AccessShareLock);
		TupleDesc	desc = RelationGetDescr(rel);
		TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
		HeapTuple	tup;
		int			last = -1;	/* the entry of the row before */

		while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;
			Oid			relid = DatumGetObjectId(heap_getattr(tup, Anum_outbox_relid, desc, &isnull));
			int64		shape = DatumGetInt64(heap_getattr(tup, Anum_outbox_shape, desc, &isnull));
			TimestampTz at = DatumGetTimestampTz(heap_getattr(tup, Anum_outbox_inserted_at, desc, &isnull));
			Datum		line = heap_getattr(tup, Anum_outbox_line, desc, &isnull);
			int64		bytes = isnull ? 0 : (int64) (toast_raw_datum_size(line) - VARHDRSZ);
			SfPendingShape *p;

			CHECK_FOR_INTERRUPTS();
			/* rows come in runs of one table and shape: try the last first */
			if (last < 0 || out[last].relid != relid || out[last].shape != shape)
			{
				for (last = 0; last < used; last++)
					if (out[last].relid == relid && out[last].shape == shape)
						break;
				if (last == used)
				{
					if (used == cap)
					{
						cap *= 2;
						out = repalloc(out, sizeof(SfPendingShape) * cap);
					}
					memset(&out[used], 0, sizeof(SfPendingShape));
					out[used].relid = relid;
					out[used].shape = shape;
					out[used].oldest = at;
					used++;
				}
			}
			p = &out[last];
			p->rows++;
			p->bytes += bytes + 1;
			if (at < p->oldest)
				p->oldest = at;
		}
		table_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	qsort(out, used, sizeof(SfPendingShape), pending_cmp);
	*n = used;
	return out;
}
