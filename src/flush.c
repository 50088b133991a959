/*-------------------------------------------------------------------------
 *
 * flush.c
 *		Turn outbox rows of one foreign table and shape into one staged file.
 *
 * Within the caller's transaction: scan the outbox rows of (relid, shape)
 * visible to the snapshot, turn each payload into its CSV record
 * (sf_outbox_render, encode.c: binary payloads are rendered here, CSV ones
 * pass through), stream the records through the compressor
 * into a storage writer, delete each row as it is written, and after the
 * upload has completed insert the file's manifest row (sfexport.files,
 * state 'staged').  The caller commits.  So:
 *
 *	- a crash or error before the commit leaves the rows in the outbox and
 *	  no manifest row: the uploaded object (if any) is an orphan that no COPY
 *	  ever names, and the rows go into a new file with a new name later;
 *	- after the commit the rows are gone from the outbox and the file is
 *	  known: it becomes loadable only now (DESIGN.md, promise 2).
 *
 * Memory does not grow with the backlog: rows are streamed, and the file
 * ends once its compressed size reaches max_file_size; the caller then
 * starts another file (another transaction) from the block where this one
 * stopped.
 *
 * File names are unique across tables, databases and clusters, sortable by
 * time, and never reused:
 *	<dboid>/<relid>/<UTC time>_<system identifier>_<timeline>_<random><ext>
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sfexport.h"

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

/*
 * The Snowflake name of a foreign table's target: "DB"."SCHEMA"."TABLE",
 * every part through the one quoting function.
 */
char *
sf_target_name(SfServerConfig *srv, SfTableConfig *tbl)
{
	return psprintf("%s.%s.%s", sf_quote_ident(srv->database),
					sf_quote_ident(tbl->schema), sf_quote_ident(tbl->table));
}

/*
 * The role whose user mapping the worker uses for a server: the server's
 * owner (the mapping lookup falls back to PUBLIC).
 */
Oid
sf_worker_user(Oid serverid)
{
	return GetForeignServer(serverid)->owner;
}

/* A new, never reused object name for a file of relid. */
static char *
new_file_name(Oid relid, SfCompression compression)
{
	TimestampTz now = GetCurrentTimestamp();
	pg_time_t	t = timestamptz_to_time_t(now);
	struct pg_tm *tm = pg_gmtime(&t);
	uint32		rnd;
	char		ts[32];

	if (!pg_strong_random(&rnd, sizeof(rnd)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random file name suffix")));
	snprintf(ts, sizeof(ts), "%04d%02d%02dT%02d%02d%02d.%06dZ",
			 tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
			 tm->tm_hour, tm->tm_min, tm->tm_sec, (int) (now % USECS_PER_SEC));
	return psprintf("%u/%u/%s_" UINT64_FORMAT "_%u_%08x%s",
					MyDatabaseId, relid, ts, GetSystemIdentifier(),
					GetWALInsertionTimeLine(), rnd,
					sf_compression_extension(compression));
}

/* Columns and types of a shape, from sfexport.shapes. */
static void
lookup_shape(Oid relid, int64 shape, Datum *columns, Datum *types)
{
	Oid			argtypes[2] = {OIDOID, INT8OID};
	Datum		values[2] = {ObjectIdGetDatum(relid), Int64GetDatum(shape)};
	bool		isnull;

	if (SPI_execute_with_args("SELECT columns, types FROM sfexport.shapes"
							  " WHERE relid = $1 AND shape = $2 LIMIT 1",
							  2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.shapes");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("no column shape registered for foreign table %u shape " INT64_FORMAT,
						relid, shape),
				 errhint("Rows of this shape stay in the outbox; check sfexport.shapes.")));
	*columns = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull),
								 false, -1);
	*types = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 2, &isnull),
							   false, -1);
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
							  "  'staged', now())",
							  11, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into sfexport.files");
}

/*
 * Stage one file of (relid, shape), starting the outbox scan at
 * *start_block.  Runs in the caller's transaction with an active snapshot;
 * the caller commits.  On return *start_block is where the scan stopped.
 */
void
sf_flush_one_file(Oid relid, int64 shape, BlockNumber *start_block,
				  SfFlushResult *res)
{
	SfTableConfig *tbl = sf_get_table_config(relid);
	SfServerConfig *srv = sf_get_server_config(tbl->serverid);
	SfUserConfig *usr = sf_get_user_config(tbl->serverid, sf_worker_user(tbl->serverid));
	int64		max_bytes = (int64) tbl->max_file_size_kb * 1024;
	Relation	outbox;
	TableScanDesc scan;
	ScanKeyData skey[2];
	HeapTuple	tup;
	BlockNumber nblocks;
	SfStorage  *st;
	char	   *name;
	char	   *target;
	FlushSink	sink;
	SfCompressor *comp;
	Datum		columns;
	Datum		types;
	int64		rows = 0;
	TupleDesc	desc;
	SfRowDecoder *dec = sf_decoder_create(relid, shape);
	StringInfoData rec;

	memset(res, 0, sizeof(*res));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	lookup_shape(relid, shape, &columns, &types);

	target = sf_target_name(srv, tbl);
	name = new_file_name(relid, srv->compression);
	st = sf_storage_open(srv, usr);

	outbox = table_open(sf_outbox_relid(false), RowExclusiveLock);
	desc = RelationGetDescr(outbox);
	nblocks = RelationGetNumberOfBlocks(outbox);
	if (*start_block >= nblocks)
	{
		table_close(outbox, RowExclusiveLock);
		SPI_finish();
		return;
	}

	pgstat_report_activity(STATE_RUNNING,
						   psprintf("staging %s into %s", get_rel_name(relid), name));

	ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	ScanKeyInit(&skey[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(shape));
	scan = table_beginscan(outbox, GetActiveSnapshot(), 2, skey);
	heap_setscanlimits(scan, *start_block, nblocks - *start_block);

	sink.writer = NULL;
	comp = NULL;
	initStringInfo(&rec);
	PG_TRY();
	{
		while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			bool		isnull;
			Datum		d = heap_getattr(tup, 4, desc, &isnull);
			bytea	   *line = DatumGetByteaPP(d);
			const char *record;
			int			reclen;

			CHECK_FOR_INTERRUPTS();
			if (sink.writer == NULL)
			{
				sink.writer = sf_storage_begin_write(st, name, "text/csv");
				comp = sf_compress_begin(srv->compression, flush_sink, &sink);
			}
			record = sf_outbox_render(line, dec, &rec, &reclen);	/* payload -> CSV */
			sf_compress_write(comp, record, reclen);
			sf_compress_write(comp, "\n", 1);
			if ((Pointer) line != DatumGetPointer(d))
				pfree(line);
			simple_heap_delete(outbox, &tup->t_self);
			rows++;

			if (sf_compress_out_bytes(comp) >= max_bytes)
			{
				res->more = true;
				*start_block = ItemPointerGetBlockNumber(&tup->t_self);
				break;
			}
		}
		table_endscan(scan);

		if (rows > 0)
		{
			sf_compress_finish(comp);
			res->bytes = sf_storage_finish(sink.writer);
			sink.writer = NULL;
			insert_manifest_row(relid, tbl->serverid, name, target, shape,
								columns, types, srv->compression, rows,
								res->bytes, sf_compress_in_bytes(comp));
			res->files = 1;
			res->rows = rows;
		}
	}
	PG_CATCH();
	{
		if (sink.writer)
			sf_storage_abort(sink.writer);
		PG_RE_THROW();
	}
	PG_END_TRY();

	table_close(outbox, RowExclusiveLock);
	SPI_finish();
}
