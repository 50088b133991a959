/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		The sfexport launcher and the shared state of the export workers.
 *
 * One launcher per cluster (a static background worker, started once
 * recovery has finished, so nothing runs on a hot standby) starts one
 * export worker per database.  It cannot see which databases have the
 * extension, so it starts a worker in every database that accepts
 * connections; a worker that finds no extension exits, and the launcher
 * tries that database again after sfexport.launcher_naptime, or at once
 * when CREATE EXTENSION sfexport wakes it.  At most sfexport.max_workers
 * databases are served at a time.
 *
 * Shared memory holds one slot per running worker: its database, its latch
 * (set by committing transactions that wrote to the outbox, so that the
 * worker learns about new rows without polling), the number of outbox bytes
 * committed since it started, a flush request flag (sfexport.flush()) and
 * whether that request may cut the backoffs short, and the outbox segment
 * inserters of that database write into (outbox.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sfexport.h"

int			sfexport_launcher_naptime_s = 60;

typedef struct SfWorkerSlot
{
	Oid			dboid;			/* InvalidOid: free */
	pid_t		pid;
	Latch	   *latch;
	bool		flush_requested;
	bool		flush_cuts_backoffs;	/* asked by a privileged role */
	pg_atomic_uint64 committed_bytes;
	pg_atomic_uint32 segment;	/* the outbox segment inserters write into */
} SfWorkerSlot;

#define SF_FLUSH_PENDING 8

typedef struct SfFlushPending
{
	Oid			dboid;			/* InvalidOid: free */
	bool		cuts_backoffs;
} SfFlushPending;

typedef struct SfShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch;
	bool		rescan_requested;
	/* databases whose flush() found no worker: their next worker flushes */
	SfFlushPending flush_pending[SF_FLUSH_PENDING];
	int			nslots;
	SfWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} SfShared;

static SfShared *sf_shared = NULL;
static SfWorkerSlot *my_slot = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PG_FUNCTION_INFO_V1(sfexport_flush);
PG_FUNCTION_INFO_V1(sfexport_launcher_wakeup);

static Size
shared_size(void)
{
	return add_size(offsetof(SfShared, slots),
					mul_size(sizeof(SfWorkerSlot), sfexport_max_workers));
}

static void
sf_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("sfexport", 1);
}

static void
sf_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	sf_shared = ShmemInitStruct("sfexport", shared_size(), &found);
	if (!found)
	{
		memset(sf_shared, 0, shared_size());
		sf_shared->lock = &(GetNamedLWLockTranche("sfexport"))->lock;
		sf_shared->nslots = sfexport_max_workers;
		for (int i = 0; i < sf_shared->nslots; i++)
		{
			pg_atomic_init_u64(&sf_shared->slots[i].committed_bytes, 0);
			pg_atomic_init_u32(&sf_shared->slots[i].segment, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/* From _PG_init, when preloaded: shared memory hooks. */
void
sf_launcher_request_shmem(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = sf_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = sf_shmem_startup;
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
 * Worker slots
 * ---------------------------------------------------------------------
 */

static void
release_slot(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	LWLockAcquire(sf_shared->lock, LW_EXCLUSIVE);
	my_slot->dboid = InvalidOid;
	my_slot->pid = 0;
	my_slot->latch = NULL;
	my_slot->flush_requested = false;
	my_slot->flush_cuts_backoffs = false;
	LWLockRelease(sf_shared->lock);
	my_slot = NULL;
}

/*
 * Claim the slot of database dboid for this worker.  False when another
 * worker already serves it or all slots are taken.
 */
bool
sf_worker_claim_slot(Oid dboid)
{
	SfWorkerSlot *free_slot = NULL;

	LWLockAcquire(sf_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < sf_shared->nslots; i++)
	{
		SfWorkerSlot *s = &sf_shared->slots[i];

		if (s->dboid == dboid)
		{
			LWLockRelease(sf_shared->lock);
			return false;
		}
		if (s->dboid == InvalidOid && free_slot == NULL)
			free_slot = s;
	}
	if (free_slot)
	{
		free_slot->dboid = dboid;
		free_slot->pid = MyProcPid;
		free_slot->latch = MyLatch;
		free_slot->flush_requested = false;
		free_slot->flush_cuts_backoffs = false;
		for (int i = 0; i < SF_FLUSH_PENDING; i++)
		{
			if (sf_shared->flush_pending[i].dboid == dboid)
			{
				free_slot->flush_requested = true;
				free_slot->flush_cuts_backoffs = sf_shared->flush_pending[i].cuts_backoffs;
				sf_shared->flush_pending[i].dboid = InvalidOid;
				sf_shared->flush_pending[i].cuts_backoffs = false;
			}
		}
		pg_atomic_write_u64(&free_slot->committed_bytes, 0);
		pg_atomic_write_u32(&free_slot->segment, 0);
		my_slot = free_slot;
	}
	LWLockRelease(sf_shared->lock);
	if (my_slot)
		before_shmem_exit(release_slot, (Datum) 0);
	return my_slot != NULL;
}

/*
 * In the worker: was a flush requested since the last call?  Clears it.
 * *cut_backoffs: whether a role that may cut the backoffs short asked.
 */
bool
sf_worker_take_flush_request(bool *cut_backoffs)
{
	bool		requested;

	LWLockAcquire(sf_shared->lock, LW_EXCLUSIVE);
	requested = my_slot->flush_requested;
	*cut_backoffs = requested && my_slot->flush_cuts_backoffs;
	my_slot->flush_requested = false;
	my_slot->flush_cuts_backoffs = false;
	LWLockRelease(sf_shared->lock);
	return requested;
}

/* In the worker: is a flush requested?  Does not clear it. */
bool
sf_worker_flush_pending(void)
{
	bool		requested;

	LWLockAcquire(sf_shared->lock, LW_SHARED);
	requested = my_slot->flush_requested;
	LWLockRelease(sf_shared->lock);
	return requested;
}

/* In the worker: outbox bytes committed in this database so far. */
uint64
sf_worker_committed_bytes(void)
{
	return pg_atomic_read_u64(&my_slot->committed_bytes);
}

/*
 * The outbox segment this database's inserters should write into: what the
 * worker last set, 0 when no worker serves the database.  Any segment is
 * valid to insert into (outbox.c), so a stale answer is harmless.
 */
int
sf_outbox_current_segment(void)
{
	int			seg = 0;

	if (sf_shared == NULL)
		return 0;
	LWLockAcquire(sf_shared->lock, LW_SHARED);
	for (int i = 0; i < sf_shared->nslots; i++)
	{
		SfWorkerSlot *s = &sf_shared->slots[i];

		if (s->dboid == MyDatabaseId)
		{
			seg = (int) pg_atomic_read_u32(&s->segment) % SF_OUTBOX_SEGMENTS;
			break;
		}
	}
	LWLockRelease(sf_shared->lock);
	return seg;
}

/*
 * In the worker: make the next segment current for new inserts and return
 * the one that was current, which the worker then tries to drain.
 */
int
sf_worker_flip_segment(void)
{
	uint32		old = pg_atomic_read_u32(&my_slot->segment) % SF_OUTBOX_SEGMENTS;

	pg_atomic_write_u32(&my_slot->segment, (old + 1) % SF_OUTBOX_SEGMENTS);
	return (int) old;
}

/*
 * Called after a transaction that wrote bytes to the outbox has committed:
 * count them and wake this database's worker.  Does nothing when the
 * library was not preloaded (no shared memory, no worker).
 */
void
sf_notify_commit(uint64 bytes)
{
	if (sf_shared == NULL)
		return;
	LWLockAcquire(sf_shared->lock, LW_SHARED);
	for (int i = 0; i < sf_shared->nslots; i++)
	{
		SfWorkerSlot *s = &sf_shared->slots[i];

		if (s->dboid == MyDatabaseId && s->latch)
		{
			pg_atomic_fetch_add_u64(&s->committed_bytes, bytes);
			SetLatch(s->latch);
			break;
		}
	}
	LWLockRelease(sf_shared->lock);
}

/*
 * Whether the current role may have sfexport.flush() cut the backoffs of
 * failed flushes and loads short: superusers and the owner of the database
 * (or a member of the owning role).  Anyone else's flush() is honoured
 * with the backoffs as they are: cutting them makes the worker run failing
 * COPYs again at once, and in a loop that keeps a warehouse busy (credits)
 * for everybody's tables.  A table's owner re-queues its own files with
 * sfexport.retry(), which also ends their load backoff.
 */
static bool
may_cut_backoffs(void)
{
	return object_ownercheck(DatabaseRelationId, MyDatabaseId, GetUserId());
}

/*
 * sfexport.flush(): ask this database's worker to flush and load everything
 * pending now, without waiting for flush_interval or flush_size; for a
 * privileged caller (may_cut_backoffs) also without waiting out backoffs.
 */
Datum
sfexport_flush(PG_FUNCTION_ARGS)
{
	bool		found = false;
	bool		cut;

	sfexport_require_preload("sfexport.flush()");
	if (sf_shared == NULL)
		PG_RETURN_BOOL(false);
	cut = may_cut_backoffs();

	LWLockAcquire(sf_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < sf_shared->nslots; i++)
	{
		SfWorkerSlot *s = &sf_shared->slots[i];

		if (s->dboid == MyDatabaseId && s->latch)
		{
			s->flush_requested = true;
			s->flush_cuts_backoffs |= cut;
			SetLatch(s->latch);
			found = true;
			break;
		}
	}
	if (!found)
	{
		/*
		 * No worker yet (it starts when the launcher sees the database):
		 * leave the request for it.  With more databases than places
		 * waiting at once, the oldest request is forgotten.
		 */
		int			i;

		for (i = 0; i < SF_FLUSH_PENDING - 1; i++)
			if (sf_shared->flush_pending[i].dboid == MyDatabaseId ||
				sf_shared->flush_pending[i].dboid == InvalidOid)
				break;
		if (sf_shared->flush_pending[i].dboid != MyDatabaseId)
		{
			memmove(&sf_shared->flush_pending[1], &sf_shared->flush_pending[0],
					sizeof(SfFlushPending) * i);
			sf_shared->flush_pending[0].dboid = MyDatabaseId;
			sf_shared->flush_pending[0].cuts_backoffs = cut;
		}
		else
			sf_shared->flush_pending[i].cuts_backoffs |= cut;
		sf_shared->rescan_requested = true;
		if (sf_shared->launcher_latch)
			SetLatch(sf_shared->launcher_latch);
	}
	LWLockRelease(sf_shared->lock);
	PG_RETURN_BOOL(found);
}

/*
 * sfexport._launcher_wakeup(): called by CREATE EXTENSION so that the new
 * database gets its worker at once.  A no-op without shared_preload_libraries.
 */
Datum
sfexport_launcher_wakeup(PG_FUNCTION_ARGS)
{
	if (sf_shared != NULL)
	{
		LWLockAcquire(sf_shared->lock, LW_EXCLUSIVE);
		sf_shared->rescan_requested = true;
		if (sf_shared->launcher_latch)
			SetLatch(sf_shared->launcher_latch);
		LWLockRelease(sf_shared->lock);
	}
	PG_RETURN_VOID();
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
	HASHCTL		ctl;
	MemoryContext loopcxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	/* shared catalogs only */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	pgstat_report_appname("sfexport launcher");
	sf_lock_search_path();		/* it runs no SQL, but as a superuser (elevated.c) */

	LWLockAcquire(sf_shared->lock, LW_EXCLUSIVE);
	sf_shared->launcher_latch = MyLatch;
	LWLockRelease(sf_shared->lock);

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(DbState);
	ctl.hcxt = TopMemoryContext;
	dbs = hash_create("sfexport launcher databases", 64, &ctl,
					  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
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

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		MemoryContextReset(loopcxt);
		MemoryContextSwitchTo(loopcxt);

		LWLockAcquire(sf_shared->lock, LW_EXCLUSIVE);
		rescan = sf_shared->rescan_requested;
		sf_shared->rescan_requested = false;
		LWLockRelease(sf_shared->lock);

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

		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 wait_ms, sf_wait_event(SF_WAIT_LAUNCHER_MAIN));
		ResetLatch(MyLatch);
	}
}
