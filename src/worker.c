/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The per-database export worker: decides when each foreign table is
 *		flushed, stages its rows (flush.c), loads staged files (load.c) and
 *		cleans up, each unit of work in its own transaction.
 *
 * Scheduling.  A table is flushed when its oldest pending row is older than
 * its flush_interval, when a minute of its flush_at schedule (UTC) has come
 * since that row, when its pending rows are estimated to compress to its
 * file_size (file_size.c) or their bytes reach its flush_size, or when
 * sfexport.flush() asks.  Committing transactions that wrote to the outbox
 * wake the worker (shmem.c) and add to a byte counter, so the worker
 * learns about new rows without polling; it only scans the outbox when a
 * deadline passes or the counter says enough bytes may be pending.  With
 * nothing pending it makes no storage or Snowflake call at all.
 *
 * Following pg_cron: SIGHUP reloads the configuration, SIGTERM ends the
 * worker promptly (transfers check interrupts), postmaster death ends it,
 * activity is shown in pg_stat_activity, the worker exits when the
 * extension is dropped, and it never runs on a hot standby (the launcher
 * starts only once recovery has finished).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "elevated.h"
#include "file_size.h"
#include "flush.h"
#include "glue_periodic.h"
#include "hashtab.h"
#include "load.h"
#include "merge_apply.h"
#include "shmem.h"
#include "stream_load.h"
#include "sweep.h"
#include "transaction.h"
#include "waits.h"
#include "worker.h"

/* sfexport.snowpipe_poll_interval */
int			sfexport_snowpipe_poll_interval_ms = 10 * 1000;

/* From _PG_init: how often the worker polls Snowpipe's reports. */
void
sf_worker_define_gucs(void)
{
	DefineCustomIntVariable("sfexport.snowpipe_poll_interval",
							"How often the worker asks Snowpipe for the outcome of submitted files.",
							"insertReport keeps events for about 10 minutes.",
							&sfexport_snowpipe_poll_interval_ms,
							10 * 1000, 100, 600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

#define HOUSEKEEPING_MS		(10 * 1000)	/* retry loads, delete loaded files */
#define IDLE_REPLAN_MS		(60 * 60 * 1000)	/* re-plan even if never woken */

/* Pending rows of one (table, shape), from the outbox. */
typedef struct PendingShape
{
	Oid			relid;
	int64		shape;
	int64		rows;
	int64		bytes;
	TimestampTz oldest;
	bool		streaming;		/* load_mode streaming: batches, not files */
} PendingShape;

/* Per-table backoff after a failed flush. */
typedef struct TableBackoff
{
	Oid			relid;			/* hash key */
	int			failures;
	TimestampTz next_try;
} TableBackoff;

static HTAB *backoffs = NULL;

/* ---------------------------------------------------------------------
 * Planning: what is pending, what is due
 * ---------------------------------------------------------------------
 */
typedef struct SfPlan
{
	bool		flush_all;
	TimestampTz now;
	List	   *due;			/* PendingShape * to flush, in order */
	TimestampTz next_deadline;	/* earliest deadline of what is not due */
	int64		min_flush_bytes;	/* smallest due bytes of all tables */
	int64		left_bytes;		/* smallest due bytes minus pending bytes of
								 * the tables not due: plan again once this
								 * much more is committed */
	long		min_interval_ms;	/* smallest flush_interval of all tables */
	bool		extension_present;
	MemoryContext cxt;			/* where results go */
} SfPlan;

static bool
in_backoff(Oid relid, TimestampTz now, TimestampTz *until)
{
	TableBackoff *b;

	if (backoffs == NULL)
		return false;
	b = hash_search(backoffs, &relid, HASH_FIND, NULL);
	if (b == NULL || b->next_try <= now)
		return false;
	*until = b->next_try;
	return true;
}

static void
note_flush_result(Oid relid, bool ok)
{
	TableBackoff *b;
	bool		found;

	if (backoffs == NULL)
		backoffs = sf_hash_create("sfexport flush backoff", 32, sizeof(Oid),
								  sizeof(TableBackoff), TopMemoryContext);
	if (ok)
	{
		hash_search(backoffs, &relid, HASH_REMOVE, NULL);
		return;
	}
	b = hash_search(backoffs, &relid, HASH_ENTER, &found);
	if (!found)
		b->failures = 0;
	b->failures++;
	/* 5 s, 10 s, 20 s, ... up to 5 min */
	b->next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											  Min(5000L << Min(b->failures - 1, 6), 300000L));
}

/* Make staged files whose load failed loadable at once. */
static void
cut_load_backoffs_unit(void *arg)
{
	sf_spi_connect();
	if (SPI_execute("UPDATE sfexport.files SET next_attempt_at = NULL"
					" WHERE state = 'staged' AND next_attempt_at > pg_catalog.now()",
					false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update sfexport.files");
	SPI_finish();
}

/*
 * sfexport.flush() by a superuser or the database owner means "now":
 * whoever calls it has usually just fixed what made a flush or a load
 * fail, so the backoffs of both are forgotten (sql_worker.c says who may).
 * (Files Snowflake rejected stay failed: that takes sfexport.retry().)
 */
static void
cut_backoffs(void)
{
	if (backoffs != NULL)
	{
		hash_destroy(backoffs);
		backoffs = NULL;
	}
	(void) sf_run_transaction(cut_load_backoffs_unit, NULL, NULL);
}

/*
 * Drop outbox rows of tables that are no longer foreign tables.  Called
 * only when the plan found such rows, so that planning reads the outbox
 * once, not twice.
 */
static void
purge_orphans(void)
{
	int			rc = SPI_execute("DELETE FROM sfexport.outbox o"
								 " WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_foreign_table ft"
								 "                    WHERE ft.ftrelid = o.relid)",
								 false, 0);

	if (rc == SPI_OK_DELETE && SPI_processed > 0)
		ereport(WARNING,
				(errcode(ERRCODE_WARNING),
				 errmsg("discarded " UINT64_FORMAT " pending rows of dropped foreign tables",
						SPI_processed)));
}

/*
 * The smallest flush_interval and due bytes (sf_file_size_due_bytes) over
 * every sfexport foreign table of the database, pending or not.  Call
 * within SPI.
 */
static void
compute_triggers(long *min_interval_ms, int64 *min_flush_bytes)
{
	*min_interval_ms = sfexport_flush_interval_s * 1000L;
	*min_flush_bytes = PG_INT64_MAX / 2;
	sf_file_size_seed();		/* once: ratios of the manifest's newest files */
	if (SPI_execute("SELECT ft.ftrelid FROM pg_catalog.pg_foreign_table ft"
					"  JOIN pg_catalog.pg_foreign_server s ON s.oid = ft.ftserver"
					"  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw"
					" WHERE w.fdwname = 'sfexport'", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list sfexport foreign tables");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		SfTableConfig *cfg = sf_get_table_config(DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																				  SPI_tuptable->tupdesc,
																				  1, &isnull)));

		long		interval_ms = cfg->flush_interval_s * 1000L;

		/*
		 * flush_at: a first row committed from now on is due at the next
		 * scheduled minute (the main loop adds this to the commit time, so
		 * it plans at most the age of this value late: a second)
		 */
		if (cfg->has_flush_at)
		{
			TimestampTz now = GetCurrentTimestamp();
			TimestampTz next = sf_cron_next(&cfg->flush_at, now);

			if (next != 0)
				interval_ms = Min(interval_ms, (long) ((next - now) / 1000) + 1);
		}
		*min_interval_ms = Min(*min_interval_ms, interval_ms);
		*min_flush_bytes = Min(*min_flush_bytes, sf_file_size_due_bytes(cfg));
	}
}

typedef struct TriggerArgs
{
	long		min_interval_ms;
	int64		min_flush_bytes;
} TriggerArgs;

static void
triggers_unit(void *arg)
{
	TriggerArgs *t = (TriggerArgs *) arg;

	sf_spi_connect();
	compute_triggers(&t->min_interval_ms, &t->min_flush_bytes);
	SPI_finish();
}

static void
plan_unit(void *arg)
{
	SfPlan  *ps = (SfPlan *) arg;
	Oid			prev_relid = InvalidOid;
	int64		rel_bytes = 0;
	TimestampTz rel_oldest = 0;
	List	   *rel_shapes = NIL;
	SfPendingShape *pending;
	int			n;
	bool		orphans = false;

	ps->extension_present = OidIsValid(get_extension_oid("sfexport", true));
	if (!ps->extension_present)
		return;

	sf_spi_connect();
	compute_triggers(&ps->min_interval_ms, &ps->min_flush_bytes);

	pending = sf_flush_pending(GetActiveSnapshot(), &n);

	/* grouped by table; decide per table after its last shape */
	for (int i = 0; i <= n; i++)
	{
		PendingShape *p = NULL;

		if (i < n)
		{
			MemoryContext old = MemoryContextSwitchTo(ps->cxt);

			p = palloc0(sizeof(PendingShape));
			p->relid = pending[i].relid;
			p->shape = pending[i].shape;
			p->rows = pending[i].rows;
			p->bytes = pending[i].bytes;
			p->oldest = pending[i].oldest;
			MemoryContextSwitchTo(old);
		}

		if (p != NULL && !SearchSysCacheExists1(FOREIGNTABLEREL, ObjectIdGetDatum(p->relid)))
		{
			orphans = true;		/* a dropped table: purged below */
			continue;
		}
		if (OidIsValid(prev_relid) && (p == NULL || p->relid != prev_relid))
		{
			SfTableConfig *cfg = sf_get_table_config(prev_relid);
			TimestampTz deadline = sf_table_flush_deadline(cfg, rel_oldest);
			int64		flush_bytes = sf_file_size_due_bytes(cfg);
			TimestampTz until;

			if (cfg->load_mode == SF_LOAD_STREAMING)
			{
				ListCell   *sc;

				foreach(sc, rel_shapes)
					((PendingShape *) lfirst(sc))->streaming = true;
			}
			if (in_backoff(prev_relid, ps->now, &until))
				ps->next_deadline = Min(ps->next_deadline, until);
			else if (ps->flush_all || rel_bytes >= flush_bytes || ps->now >= deadline)
			{
				MemoryContext old = MemoryContextSwitchTo(ps->cxt);

				ps->due = list_concat(ps->due, rel_shapes);
				MemoryContextSwitchTo(old);
			}
			else
			{
				ps->next_deadline = Min(ps->next_deadline, deadline);
				ps->left_bytes = Min(ps->left_bytes, flush_bytes - rel_bytes);
			}
			rel_bytes = 0;
			rel_oldest = 0;
			rel_shapes = NIL;
		}
		if (p == NULL)
			break;
		{
			MemoryContext old = MemoryContextSwitchTo(ps->cxt);

			rel_shapes = lappend(rel_shapes, p);
			MemoryContextSwitchTo(old);
		}
		rel_bytes += p->bytes;
		rel_oldest = rel_oldest == 0 ? p->oldest : Min(rel_oldest, p->oldest);
		prev_relid = p->relid;
	}
	if (orphans)
		purge_orphans();
	SPI_finish();
}

/* ---------------------------------------------------------------------
 * Flushing one table and shape, file after file
 * ---------------------------------------------------------------------
 */
typedef struct FlushUnit
{
	PendingShape *p;
	SfOutboxPos pos;
	TimestampTz cutoff;
	SfFlushResult res;
} FlushUnit;

static void
flush_unit(void *arg)
{
	FlushUnit  *u = (FlushUnit *) arg;

	sf_flush_one_file(u->p->relid, u->p->shape, &u->pos, u->cutoff, &u->res);
}

/*
 * Stage, row by row, the pending rows of one shape that the drain left
 * (rows of transactions started after cutoff wait for the next drain);
 * returns files staged.
 */
static int
flush_shape(PendingShape *p, TimestampTz cutoff)
{
	FlushUnit	u;
	int			files = 0;

	memset(&u, 0, sizeof(u));
	u.p = p;
	u.cutoff = cutoff;
	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (!sf_run_transaction(flush_unit, &u, NULL))
		{
			note_flush_result(p->relid, false);
			break;
		}
		note_flush_result(p->relid, true);
		files += u.res.files;
		if (!u.res.more || u.res.files == 0)
			break;
	}
	return files;
}

typedef struct DrainUnit
{
	SfShapeKey *due;
	int			ndue;
	int			seg;
	SfDrainResult res;
} DrainUnit;

static void
drain_unit(void *arg)
{
	DrainUnit  *d = (DrainUnit *) arg;

	sf_flush_drain(d->due, d->ndue, d->seg, &d->res);
}

/*
 * Stage everything due: first drain the segment inserters wrote into until
 * now (flush.c: one transaction, emptied with TRUNCATE when it holds only
 * due rows), then take what is left row by row.  Returns files staged.
 */
static int
flush_due(List *due)
{
	DrainUnit	d;
	TimestampTz cutoff;
	ListCell   *lc;
	int			files = 0;
	bool		drained;

	/* load_mode streaming: into batches for its channel (stream_load.c) */
	{
		List	   *files_due = NIL;
		Oid			last = InvalidOid;

		foreach(lc, due)
		{
			PendingShape *p = (PendingShape *) lfirst(lc);

			if (!p->streaming)
				files_due = lappend(files_due, p);
			else if (p->relid != last)
				files += sf_stream_collect(p->relid) > 0;
			last = p->relid;
		}
		due = files_due;
	}
	if (due == NIL)
		return files;
	memset(&d, 0, sizeof(d));
	d.due = palloc(sizeof(SfShapeKey) * list_length(due));
	foreach(lc, due)
	{
		PendingShape *p = (PendingShape *) lfirst(lc);

		d.due[d.ndue].relid = p->relid;
		d.due[d.ndue].shape = p->shape;
		d.ndue++;
	}

	/*
	 * New statements go to the other segment from now on; rows of
	 * transactions that start from now on wait for the next flush.
	 */
	d.seg = sf_worker_flip_segment();
	cutoff = GetCurrentTimestamp();
	drained = sf_run_transaction(drain_unit, &d, NULL) && d.res.locked;

	/*
	 * An empty old segment: the rows are in the other one (the worker
	 * restarted, and "current" with it).  Flip back and drain that one.
	 */
	if (drained && d.res.staged.rows == 0 && d.res.other_rows == 0)
	{
		d.seg = sf_worker_flip_segment();
		cutoff = GetCurrentTimestamp();
		drained = sf_run_transaction(drain_unit, &d, NULL) && d.res.locked;
	}
	if (!drained)
		elog(DEBUG1, "outbox segment %d not drained: %s", d.seg,
			 d.res.locked ? "error" : "a transaction that wrote into it is still open");
	if (drained)
	{
		files += d.res.staged.files;
		foreach(lc, due)
			note_flush_result(((PendingShape *) lfirst(lc))->relid, true);
		elog(DEBUG1, "drained outbox segment %d: %d files, " INT64_FORMAT " rows, " INT64_FORMAT " rows not due, %s",
			 d.seg, d.res.staged.files, d.res.staged.rows, d.res.other_rows,
			 d.res.truncated ? "truncated" : "rows deleted one by one");
	}

	/* what the drain did not take: the other segment, or all on failure */
	foreach(lc, due)
	{
		PendingShape *p = (PendingShape *) lfirst(lc);
		TimestampTz until;

		if (in_backoff(p->relid, GetCurrentTimestamp(), &until))
			continue;
		files += flush_shape(p, cutoff);
	}
	return files;
}

/* ---------------------------------------------------------------------
 * Main loop
 * ---------------------------------------------------------------------
 */
static char *my_dbname = NULL;	/* for messages; read in a transaction */

static void
check_extension_unit(void *arg)
{
	*(bool *) arg = OidIsValid(get_extension_oid("sfexport", true));
	if (my_dbname == NULL)
		my_dbname = MemoryContextStrdup(TopMemoryContext,
										get_database_name(MyDatabaseId));
}

void
sfexport_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	MemoryContext loopcxt;
	TimestampTz next_plan = 0;
	TimestampTz next_housekeeping = 0;
	TimestampTz next_stream;	/* streaming batches wait; 0 = none */
	uint64		bytes_at_plan;
	uint64		bytes_seen;
	int64		min_flush_bytes = PG_INT64_MAX / 2;	/* until triggers are read */
	int64		left_bytes = PG_INT64_MAX / 2;
	long		min_interval_ms = sfexport_flush_interval_s * 1000L;
	TimestampTz last_triggers = 0;
	bool		triggers_stale = false; /* rows came since the triggers were read */
	bool		present = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (!sf_worker_claim_slot(dboid))
		proc_exit(0);			/* served already, or no free slot */

	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname("sfexport worker");

	/*
	 * The worker is the bootstrap superuser: from here on its SQL resolves
	 * names in pg_catalog only, whatever the database's or role's settings
	 * say and whatever some role created in public (elevated.c).
	 */
	sf_lock_search_path();

	/*
	 * No JIT: the worker's queries are short aggregates, but over a large
	 * outbox their cost passes jit_above_cost, and compiling them would load
	 * LLVM into the worker (about 50 MB of resident memory, bench/flush) and
	 * spend more time compiling than the query takes.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	/* and no parallel query: one process, whose memory bench/flush measures */
	SetConfigOption("max_parallel_workers_per_gather", "0", PGC_USERSET, PGC_S_OVERRIDE);

	if (RecoveryInProgress())
		proc_exit(0);
	sf_run_transaction(check_extension_unit, &present, NULL);
	if (!present)
		proc_exit(0);			/* the launcher comes back later */

	ereport(LOG,
			(errmsg("sfexport worker started for database \"%s\"", my_dbname)));

	loopcxt = AllocSetContextCreate(TopMemoryContext, "sfexport worker loop",
									ALLOCSET_DEFAULT_SIZES);
	bytes_at_plan = bytes_seen = sf_worker_committed_bytes();
	next_stream = GetCurrentTimestamp();	/* batches left by a crash */

	for (;;)
	{
		TimestampTz now;
		bool		flush_all;
		bool		cut;
		uint64		committed;
		long		wait_ms;
		int			staged = 0;

		sf_main_loop_round(loopcxt);

		now = GetCurrentTimestamp();
		flush_all = sf_worker_take_flush_request(&cut);
		if (cut)
			cut_backoffs();
		committed = sf_worker_committed_bytes();

		/*
		 * New rows: plan no later than when the first of them can be due.
		 * Tables or their options may have changed since the last plan, so
		 * the triggers are read again: a catalog read, at most once a
		 * second, so rows that come sooner wait for the next read (the
		 * wait below ends for it), or an option changed just before them
		 * (flush_size, say) would go unseen until the next plan.
		 */
		if (committed != bytes_seen)
		{
			bytes_seen = committed;
			triggers_stale = true;
			next_plan = Min(next_plan, TimestampTzPlusMilliseconds(now, min_interval_ms));
		}
		if (triggers_stale && now >= TimestampTzPlusMilliseconds(last_triggers, 1000))
		{
			TriggerArgs t;

			/* a failed read is tried again a second later, like any */
			last_triggers = now;
			if (sf_run_transaction(triggers_unit, &t, NULL))
			{
				min_interval_ms = t.min_interval_ms;
				min_flush_bytes = t.min_flush_bytes;
				triggers_stale = false;
			}
			next_plan = Min(next_plan, TimestampTzPlusMilliseconds(now, min_interval_ms));
		}

		if (flush_all || now >= next_plan ||
			committed - bytes_at_plan >= (uint64) Min(min_flush_bytes, left_bytes))
		{
			SfPlan	ps;

			memset(&ps, 0, sizeof(ps));
			ps.flush_all = flush_all;
			ps.now = now;
			ps.next_deadline = TimestampTzPlusMilliseconds(now, IDLE_REPLAN_MS);
			ps.min_flush_bytes = ps.left_bytes = PG_INT64_MAX / 2;
			ps.min_interval_ms = sfexport_flush_interval_s * 1000L;
			ps.cxt = loopcxt;
			bytes_at_plan = committed;

			pgstat_report_activity(STATE_RUNNING, "planning flushes");
			if (!sf_run_transaction(plan_unit, &ps, NULL))
				ps.next_deadline = TimestampTzPlusMilliseconds(now, HOUSEKEEPING_MS);
			else if (!ps.extension_present)
			{
				ereport(LOG,
						(errmsg("sfexport worker exiting: the extension was dropped from database \"%s\"",
								my_dbname)));
				proc_exit(0);
			}
			next_plan = ps.next_deadline;
			min_flush_bytes = ps.min_flush_bytes;
			left_bytes = ps.left_bytes;
			min_interval_ms = ps.min_interval_ms;

			staged += flush_due(ps.due);
		}

		/* load_mode streaming: append batches, learn what is committed */
		if (staged > 0 || flush_all ||
			(next_stream != 0 && GetCurrentTimestamp() >= next_stream))
			next_stream = sf_stream_ship();

		if (flush_all || staged > 0 || now >= next_housekeeping)
		{
			sf_run_transaction(check_extension_unit, &present, NULL);
			if (!present)
			{
				ereport(LOG,
						(errmsg("sfexport worker exiting: the extension was dropped from database \"%s\"",
								my_dbname)));
				proc_exit(0);
			}
			sf_load_staged();
			sf_merge_apply();
			sf_delete_loaded_files();
			/* batches nobody woke the worker for (e.g. a retry) */
			if (next_stream == 0)
				next_stream = sf_stream_ship();
			sf_glue_periodic();
			sf_sweep_periodic();
			sf_worker_broadcast_progress();	/* sfexport.flush(wait => true) */
			/* files submitted to Snowpipe: poll its reports sooner */
			next_housekeeping = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															sf_pipe_files_pending ?
															Min(sfexport_snowpipe_poll_interval_ms,
																HOUSEKEEPING_MS) :
															HOUSEKEEPING_MS);
		}

		pgstat_report_activity(STATE_IDLE, NULL);
		now = GetCurrentTimestamp();
		{
			TimestampTz until = Min(next_plan, next_housekeeping);

			if (next_stream != 0)
				until = Min(until, next_stream);
			if (triggers_stale)
				until = Min(until, TimestampTzPlusMilliseconds(last_triggers, 1000));
			wait_ms = until > now ? (long) ((until - now) / 1000) : 0;
		}

		/*
		 * Code run in this iteration may have waited on MyLatch and reset
		 * it (lock waits, HTTP transfers), consuming a wakeup from
		 * sfexport.flush() or a commit: look at what the latch stands for.
		 */
		if (sf_worker_flush_pending() || sf_worker_committed_bytes() != bytes_seen)
			wait_ms = 0;
		if (wait_ms > 0)
			sf_wait(Max(wait_ms, 10), SF_WAIT_WORKER_MAIN, SF_WAIT_UNTIL_LATCH);
	}
}
