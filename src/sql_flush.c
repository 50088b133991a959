/*-------------------------------------------------------------------------
 *
 * sql_flush.c
 *		sfexport.flush(foreign_table, wait, timeout): ask this database's
 *		worker to flush now and, with wait => true, return only once every
 *		row committed before the call is loaded into Snowflake or sits in a
 *		file Snowflake rejected (reported, and the result is false).
 *
 * What "committed before the call" means: visible in the snapshot of the
 * calling statement.  The wait has two phases (docs/flush.md):
 *
 * 1. Staging: until no outbox row that snapshot sees is left.  The outbox
 *    segments are scanned directly (heap scan with a fresh snapshot, each
 *    row's xmin checked against the call's snapshot), and their lock is
 *    released right after the scan: a lock held until the caller's
 *    transaction ends would keep the worker from emptying the segment with
 *    TRUNCATE (flush.c).  A row leaves the outbox in the transaction that
 *    records its file in sfexport.files, so once the rows are gone their
 *    files are in the manifest, with file_id <= the largest one seen then.
 * 2. Loading: until no file of the table(s) with file_id <= that bound is
 *    'staged' or 'submitted'.
 *
 * The manifest is read as the owner of sfexport.files (elevated.c): the
 * caller learns counts and generated file names, nothing row-derived.
 * Between looks it sleeps on a condition variable the workers broadcast
 * after each round that staged or loaded (shmem.c), at most 20 ms at first,
 * then up to a second (its latch: cancel and shutdown honoured); the flush
 * request is repeated every few seconds (without cutting backoffs again) in
 * case the worker was starting.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "elevated.h"
#include "shmem.h"
#include "tables.h"
#include "transaction.h"
#include "waits.h"

PG_FUNCTION_INFO_V1(sfexport_flush_wait);

#define FLUSH_WAIT_MIN_MS		20
#define FLUSH_WAIT_MAX_MS		1000
#define FLUSH_REQUEST_EVERY_MS	5000
#define FLUSH_REPORT_FILES		10	/* failed file names listed at most */

/*
 * Whether some outbox row of relid (InvalidOid: of any table) was committed
 * before the call: visible now and to callsnap, and not the caller's own.
 */
static bool
outbox_rows_before(Oid relid, Snapshot callsnap)
{
	bool		found = false;

	for (int seg = 0; seg < SF_OUTBOX_SEGMENTS && !found; seg++)
	{
		Relation	rel = table_open(sf_outbox_segment_relid(seg, false), AccessShareLock);
		Snapshot	now = RegisterSnapshot(GetLatestSnapshot());
		TableScanDesc scan = table_beginscan(rel, now, 0, NULL);
		HeapTuple	tup;

		while (!found && (tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			TransactionId xmin = HeapTupleHeaderGetXmin(tup->t_data);
			bool		isnull;

			if (OidIsValid(relid) &&
				DatumGetObjectId(heap_getattr(tup, Anum_outbox_relid,
											  RelationGetDescr(rel), &isnull)) != relid)
				continue;
			if (TransactionIdIsCurrentTransactionId(xmin))
				continue;		/* the caller's own, not committed yet */
			if (!XidInMVCCSnapshot(xmin, callsnap))
				found = true;
			CHECK_FOR_INTERRUPTS();
		}
		table_endscan(scan);
		UnregisterSnapshot(now);
		/* released now, not at the end of the caller's transaction */
		table_close(rel, AccessShareLock);
	}
	return found;
}

/* Run a manifest query as the owner of sfexport.files; SPI is connected. */
static void
manifest_query(const char *sql, int nargs, Oid *types, Datum *values)
{
	SfElevated	e;

	sf_elevated_begin(&e, sf_extension_table_owner("files"));
	PG_TRY();
	{
		if (SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read sfexport.files");
	}
	PG_CATCH();
	{
		sf_elevated_end(&e, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	sf_elevated_end(&e, true);
}

static int64
spi_int8(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

#define FILES_OF(relarg) \
	" AND (" relarg " OPERATOR(pg_catalog.=) 0::pg_catalog.oid" \
	"      OR relid OPERATOR(pg_catalog.=) " relarg ")"

/*
 * sfexport.flush(foreign_table regclass DEFAULT NULL, wait boolean DEFAULT
 * false, timeout interval DEFAULT '10 minutes').  Without wait: ask the
 * worker and return whether a worker took the request (as flush() does).
 * With wait: true once everything committed before the call is loaded,
 * false if some of it is in files Snowflake rejected (a WARNING names
 * them); an error after timeout.
 */
Datum
sfexport_flush_wait(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_ARGISNULL(0) ? InvalidOid : PG_GETARG_OID(0);
	bool		wait = PG_ARGISNULL(1) ? false : PG_GETARG_BOOL(1);
	Interval   *timeout = PG_ARGISNULL(2) ? NULL : PG_GETARG_INTERVAL_P(2);
	bool		cut = object_ownercheck(DatabaseRelationId, MyDatabaseId, GetUserId());
	bool		taken;
	Snapshot	callsnap;
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz deadline = 0;
	TimestampTz last_request;
	int64		max_before;		/* largest file_id at the call */
	int64		bound = -1;		/* phase 2: largest file_id holding our rows */
	int64		stream_bound = -1;	/* and largest stream batch (streaming) */
	int64		left_batches = 0;
	Datum	   *pending_ids;
	int			npending;
	long		nap = FLUSH_WAIT_MIN_MS;
	int64		left_files = 0;
	int64		retried_files = 0;
	int			failed = 0;
	Oid			argtypes[3] = {OIDOID, INT8OID, INT8ARRAYOID};
	Datum		args[3];
	ArrayType  *pending_arr;

	sf_require_preload("sfexport.flush()");

	if (OidIsValid(relid) && get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a foreign table", get_rel_name(relid) ? get_rel_name(relid) : "?"),
				 errdetail("sfexport.flush() flushes the rows of sfexport foreign tables."),
				 errhint("Name an sfexport foreign table, or none for all of them.")));

	taken = sf_request_flush(cut);
	if (!wait)
		PG_RETURN_BOOL(taken);

	if (timeout != NULL)
	{
		int64		us = timeout->time +
			(int64) timeout->day * USECS_PER_DAY +
			(int64) timeout->month * DAYS_PER_MONTH * USECS_PER_DAY;

		if (us <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("timeout of sfexport.flush() must be positive"),
					 errdetail("The timeout given is zero or negative."),
					 errhint("Pass a positive interval such as '5 minutes', or NULL to wait without limit.")));
		deadline = start + us;
	}
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("sfexport.flush(wait => true) cannot wait on a hot standby"),
				 errdetail("The export worker runs only on the primary."),
				 errhint("Call it on the primary server.")));
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("sfexport.flush(wait => true) cannot wait in a %s transaction",
						IsolationIsSerializable() ? "SERIALIZABLE" : "REPEATABLE READ"),
				 errdetail("The wait must see the worker's progress, which a transaction snapshot hides."),
				 errhint("Call it in a READ COMMITTED transaction, for example on its own.")));

	callsnap = RegisterSnapshot(GetActiveSnapshot());
	last_request = start;

	sf_spi_connect();
	args[0] = ObjectIdGetDatum(relid);

	/* the files pending at the call hold rows committed before it too */
	manifest_query("SELECT file_id FROM sfexport.files"
				   " WHERE state OPERATOR(pg_catalog.=) ANY ('{staged,submitted}'::pg_catalog.text[])"
				   FILES_OF("$1"), 1, argtypes, args);
	npending = (int) SPI_processed;
	pending_ids = palloc(sizeof(Datum) * Max(npending, 1));
	for (int i = 0; i < npending; i++)
		pending_ids[i] = Int64GetDatum(spi_int8(i, 1));
	pending_arr = construct_array(pending_ids, npending, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	manifest_query("SELECT pg_catalog.max(file_id) FROM sfexport.files", 0, NULL, NULL);
	max_before = spi_int8(0, 1);

	sf_progress_wait_begin();
	for (;;)
	{
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (bound < 0 && !outbox_rows_before(relid, callsnap))
		{
			/* every row is in the manifest now, in a file up to here */
			manifest_query("SELECT pg_catalog.max(file_id) FROM sfexport.files", 0, NULL, NULL);
			bound = spi_int8(0, 1);
			SPI_freetuptable(SPI_tuptable);
			/* load_mode streaming: the rows left in batches up to here */
			manifest_query("SELECT pg_catalog.max(batch_id) FROM sfexport.stream_batches", 0, NULL, NULL);
			stream_bound = spi_int8(0, 1);
			SPI_freetuptable(SPI_tuptable);
		}
		if (bound >= 0)
		{
			/*
			 * A streaming table's rows leave the outbox into
			 * sfexport.stream_batches, deleted once the channel's committed
			 * offset token covers them (stream_load.c): wait for those
			 * numbered up to the bound, except rejected ones (reported
			 * below).
			 */
			args[1] = Int64GetDatum(stream_bound);
			manifest_query("SELECT pg_catalog.count(*) FROM sfexport.stream_batches"
						   " WHERE batch_id OPERATOR(pg_catalog.<=) $2"
						   "   AND state OPERATOR(pg_catalog.=) 'pending'"
						   FILES_OF("$1"), 2, argtypes, args);
			left_batches = spi_int8(0, 1);
			SPI_freetuptable(SPI_tuptable);
		}
		if (bound >= 0 && left_batches == 0)
		{
			args[1] = Int64GetDatum(bound);
			manifest_query("SELECT pg_catalog.count(*),"
						   "       pg_catalog.count(*) FILTER (WHERE attempts OPERATOR(pg_catalog.>) 0)"
						   "  FROM sfexport.files"
						   " WHERE file_id OPERATOR(pg_catalog.<=) $2"
						   "   AND state OPERATOR(pg_catalog.=) ANY ('{staged,submitted}'::pg_catalog.text[])"
						   FILES_OF("$1"), 2, argtypes, args);
			left_files = spi_int8(0, 1);
			retried_files = spi_int8(0, 2);
			SPI_freetuptable(SPI_tuptable);	/* a long wait stays small */
			if (left_files == 0)
				break;
		}

		now = GetCurrentTimestamp();
		if (deadline != 0 && now >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("sfexport.flush() timed out before the rows committed before it were loaded"),
					 bound < 0
					 ? errdetail("Some of the rows are not staged yet.")
					 : left_batches > 0
					 ? errdetail("%lld streaming batches are not committed by their channel yet.",
								 (long long) left_batches)
					 : errdetail("%lld staged files are not loaded yet, %lld of them after failed load attempts.",
								 (long long) left_files, (long long) retried_files),
					 errhint("Look at sfexport.status (pending_rows, staged_files, last_error) and the server log; call again with a longer timeout.")));
		if (TimestampDifferenceExceeds(last_request, now, FLUSH_REQUEST_EVERY_MS))
		{
			(void) sf_request_flush(false);
			last_request = now;
		}
		if (deadline != 0)
			nap = Min(nap, Max(1, TimestampDifferenceMilliseconds(now, deadline)));
		sf_progress_wait(nap, sf_wait_event(SF_WAIT_FLUSH));
		nap = Min(nap * 2, FLUSH_WAIT_MAX_MS);
	}

	sf_progress_wait_end();

	/* what of it Snowflake rejected: files new since the call, or pending at it */
	args[1] = Int64GetDatum(bound);
	args[2] = PointerGetDatum(pending_arr);
	argtypes[1] = INT8OID;
	{
		Oid			types[4] = {OIDOID, INT8OID, INT8ARRAYOID, INT8OID};
		Datum		vals[4] = {args[0], args[1], args[2], Int64GetDatum(max_before)};

		manifest_query("SELECT relid::pg_catalog.regclass::pg_catalog.text, name, rows"
					   "  FROM sfexport.files"
					   " WHERE file_id OPERATOR(pg_catalog.<=) $2"
					   "   AND (file_id OPERATOR(pg_catalog.>) $4"
					   "        OR file_id OPERATOR(pg_catalog.=) ANY ($3))"
					   "   AND state OPERATOR(pg_catalog.=) ANY ('{failed,partially_loaded}'::pg_catalog.text[])"
					   FILES_OF("$1")
					   " ORDER BY file_id", 4, types, vals);
	}
	failed = (int) SPI_processed;
	if (failed > 0)
	{
		StringInfoData names;
		int64		rows = 0;

		initStringInfo(&names);
		for (int i = 0; i < failed; i++)
		{
			rows += spi_int8(i, 3);
			if (i < FLUSH_REPORT_FILES)
				appendStringInfo(&names, "%s%s (%s)", i > 0 ? ", " : "",
								 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2),
								 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		}
		if (failed > FLUSH_REPORT_FILES)
			appendStringInfo(&names, " and %d more", failed - FLUSH_REPORT_FILES);
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("%d files holding " INT64_FORMAT " rows committed before sfexport.flush() failed to load",
						failed, rows),
				 errdetail("Failed files: %s.", names.data),
				 errhint("Their errors are in sfexport.status (last_error) and sfexport.files; fix the cause and call sfexport.retry().")));
	}
	/* streaming: batches of ours Snowflake rejected rows of during the wait */
	{
		Oid			types[3] = {OIDOID, INT8OID, TIMESTAMPTZOID};
		Datum		vals[3] = {args[0], Int64GetDatum(stream_bound), TimestampTzGetDatum(start)};
		int64		batches;
		int64		rows;

		manifest_query("SELECT pg_catalog.count(*), pg_catalog.sum(rows_rejected)::pg_catalog.int8"
					   "  FROM sfexport.stream_batches"
					   " WHERE batch_id OPERATOR(pg_catalog.<=) $2"
					   "   AND state OPERATOR(pg_catalog.=) 'rejected'"
					   "   AND rejected_at OPERATOR(pg_catalog.>=) $3"
					   FILES_OF("$1"), 3, types, vals);
		batches = spi_int8(0, 1);
		rows = spi_int8(0, 2);
		if (batches > 0)
		{
			failed += (int) batches;
			ereport(WARNING,
					(errcode(ERRCODE_WARNING),
					 errmsg("Snowflake rejected " INT64_FORMAT " rows of " INT64_FORMAT " streaming batches committed before sfexport.flush()",
							rows, batches),
					 errdetail("The batches stay in sfexport.stream_batches as rejected, with Snowflake's error."),
					 errhint("See sfexport.stream_status; fix the cause and call sfexport.stream_retry().")));
		}
	}
	SPI_finish();
	UnregisterSnapshot(callsnap);
	PG_RETURN_BOOL(failed == 0);
}

PG_FUNCTION_INFO_V1(sfexport_next_flush_at);

/*
 * sfexport.next_flush_at(foreign_table, oldest): when the worker flushes
 * the table if its oldest pending row was written at oldest: after its
 * flush_interval or at the next minute of its flush_at schedule, whichever
 * comes first (config.c).  flush_size or flush() may make it sooner.
 */
Datum
sfexport_next_flush_at(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	TimestampTz oldest = PG_GETARG_TIMESTAMPTZ(1);
	ForeignTable *ft;

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE ||
		strcmp(GetForeignDataWrapper(GetForeignServer((ft = GetForeignTable(relid))->serverid)->fdwid)->fdwname,
			   "sfexport") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("relation with OID %u is not an sfexport foreign table", relid),
				 errdetail("Only sfexport foreign tables have a flush schedule."),
				 errhint("Name a foreign table of an sfexport server.")));
	if (TIMESTAMP_NOT_FINITE(oldest))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(sf_table_flush_deadline(sf_get_table_config(relid), oldest));
}
