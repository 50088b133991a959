/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The sfexport launcher: one per cluster, it starts the export workers.
 *
 * One launcher per cluster (a static background worker, started once
 * recovery has finished, so nothing runs on a hot standby) starts one
 * export worker per database.  It cannot see which databases have the
 * extension, so it starts a worker in every database that accepts
 * connections; a worker that finds no extension exits, and the launcher
 * tries that database again after sfexport.launcher_naptime, or at once
 * when CREATE EXTENSION sfexport wakes it.  At most sfexport.max_workers
 * databases are served at a time.  The state it shares with the workers
 * is shmem.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "fmgr.h"
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
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "elevated.h"
#include "hashtab.h"
#include "launcher.h"
#include "shmem.h"
#include "waits.h"

int			sfexport_launcher_naptime_s = 60;

/* From _PG_init: the launcher's GUC. */
void
sf_launcher_define_gucs(void)
{
	DefineCustomIntVariable("sfexport.launcher_naptime",
							"How often the launcher looks for databases that gained the extension.",
							"CREATE EXTENSION sfexport wakes the launcher at once; this is the "
							"fallback, and the delay before a stopped worker is restarted.",
							&sfexport_launcher_naptime_s,
							60, 1, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/* From _PG_init, when preloaded: the launcher background worker. */
void
sf_launcher_register(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* not on a hot standby: only once recovery has finished (promotion) */
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 10;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "sfexport");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "sfexport_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "sfexport launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "sfexport launcher");
	RegisterBackgroundWorker(&bgw);
}

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */

typedef struct DbState
{
	Oid			dboid;			/* hash key */
	BackgroundWorkerHandle *handle;
	TimestampTz last_start;
	bool		seen;			/* still exists (per scan) */
} DbState;

/* Databases that accept connections and are not templates. */
static List *
list_databases(void)
{
	List	   *result = NIL;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	MemoryContext resultcxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();	/* see sf_run_transaction() */
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
		{
			MemoryContext old = MemoryContextSwitchTo(resultcxt);

			result = lappend_oid(result, db->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return result;
}

static bool
start_worker(DbState *st)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "sfexport");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "sfexport_worker_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "sfexport worker for database %u", st->dboid);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "sfexport worker");
	bgw.bgw_main_arg = ObjectIdGetDatum(st->dboid);
	bgw.bgw_notify_pid = MyProcPid;

	st->last_start = GetCurrentTimestamp();
	if (!RegisterDynamicBackgroundWorker(&bgw, &st->handle))
	{
		st->handle = NULL;
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start an sfexport worker for database %u", st->dboid),
				 errhint("Raise max_worker_processes.")));
		return false;
	}
	return true;
}

static bool
worker_running(DbState *st)
{
	pid_t		pid;

	if (st->handle == NULL)
		return false;
	if (GetBackgroundWorkerPid(st->handle, &pid) == BGWH_STOPPED)
	{
		pfree(st->handle);
		st->handle = NULL;
		return false;
	}
	return true;
}

void
sfexport_launcher_main(Datum arg)
{
	HTAB	   *dbs;
	MemoryContext loopcxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* shared catalogs only */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("sfexport launcher");
	sf_lock_search_path();		/* it runs no SQL, but as a superuser (elevated.c) */

	sf_launcher_attach();

	dbs = sf_hash_create("sfexport launcher databases", 64, sizeof(Oid), sizeof(DbState),
						 TopMemoryContext);
	loopcxt = AllocSetContextCreate(TopMemoryContext, "sfexport launcher loop",
									ALLOCSET_DEFAULT_SIZES);

	ereport(LOG,
			(errmsg("sfexport launcher started")));

	for (;;)
	{
		List	   *dblist;
		ListCell   *lc;
		bool		rescan;
		int			running = 0;
		TimestampTz now;
		long		wait_ms = (long) sfexport_launcher_naptime_s * 1000L;
		HASH_SEQ_STATUS seq;
		DbState    *st;

		sf_main_loop_round(loopcxt);

		rescan = sf_launcher_take_rescan();

		pgstat_report_activity(STATE_RUNNING, "scanning databases");
		dblist = list_databases();
		now = GetCurrentTimestamp();

		hash_seq_init(&seq, dbs);
		while ((st = hash_seq_search(&seq)) != NULL)
		{
			st->seen = false;
			if (worker_running(st))
				running++;
		}

		foreach(lc, dblist)
		{
			Oid			dboid = lfirst_oid(lc);
			bool		found;
			TimestampTz next;

			st = hash_search(dbs, &dboid, HASH_ENTER, &found);
			if (!found)
			{
				st->handle = NULL;
				st->last_start = 0;
			}
			st->seen = true;
			if (worker_running(st))
				continue;
			next = TimestampTzPlusMilliseconds(st->last_start,
											   sfexport_launcher_naptime_s * 1000L);
			if ((rescan || st->last_start == 0 || now >= next) &&
				running < sfexport_max_workers)
			{
				if (start_worker(st))
					running++;
			}
			else if (now < next)
			{
				long		ms = (long) ((next - now) / 1000);

				wait_ms = Min(wait_ms, Max(ms, 100));
			}
		}

		/* forget dropped databases */
		hash_seq_init(&seq, dbs);
		while ((st = hash_seq_search(&seq)) != NULL)
		{
			if (!st->seen && !worker_running(st))
				hash_search(dbs, &st->dboid, HASH_REMOVE, NULL);
		}

		MemoryContextSwitchTo(TopMemoryContext);
		pgstat_report_activity(STATE_IDLE, NULL);

		sf_wait(wait_ms, SF_WAIT_LAUNCHER_MAIN, SF_WAIT_UNTIL_LATCH);
	}
}
