/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		The shared state of the launcher, the export workers and the
 *		inserting backends, and whether the library was preloaded.
 *
 * Shared memory holds one slot per running worker: its database, its latch
 * (set by committing transactions that wrote to the outbox, so that the
 * worker learns about new rows without polling), the number of outbox bytes
 * committed since it started, a flush request flag (sfexport.flush()) and
 * whether that request may cut the backoffs short, and the outbox segment
 * inserters of that database write into (outbox.c).  Besides the slots: the
 * launcher's latch, its rescan request, and flush requests of databases
 * that have no worker yet.
 *
 * Capture (the foreign-data wrapper and the outbox) works whether or not the
 * library is preloaded.  Only the background processes, and this state,
 * need shared_preload_libraries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/guc.h"

#include "sfexport.h"

#include "shmem.h"

/* sfexport.max_workers; defaults documented in README.md */
int			sfexport_max_workers = 4;

/* true when loaded by the postmaster from shared_preload_libraries */
static bool preloaded = false;

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
	/* broadcast by workers after each round that staged or loaded */
	ConditionVariable progress_cv;
	/* databases whose flush() found no worker: their next worker flushes */
	SfFlushPending flush_pending[SF_FLUSH_PENDING];
	int			nslots;
	SfWorkerSlot slots[FLEXIBLE_ARRAY_MEMBER];
} SfShared;

static SfShared *sf_shared = NULL;
static SfWorkerSlot *my_slot = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * From _PG_init, first: whether the postmaster is loading the library
 * (shared_preload_libraries).  Backends forked from it inherit the answer.
 */
void
sf_shmem_init(void)
{
	preloaded = process_shared_preload_libraries_in_progress;
}

/* From _PG_init: sfexport.max_workers, which sizes the shared state. */
void
sf_shmem_define_gucs(void)
{
	/* a PGC_POSTMASTER variable can only be defined at server start */
	if (preloaded)
		DefineCustomIntVariable("sfexport.max_workers",
								"Largest number of per-database export workers running at once.",
								NULL,
								&sfexport_max_workers,
								4, 1, 64,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);
}

/* Whether the library was loaded through shared_preload_libraries. */
bool
sf_preloaded(void)
{
	return preloaded;
}

/*
 * Error out, with a hint, when something needs the background worker but the
 * library was not preloaded.
 */
void
sf_require_preload(const char *what)
{
	if (!preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s requires sfexport to be loaded through shared_preload_libraries",
						what),
				 errhint("Add sfexport to shared_preload_libraries in postgresql.conf and restart the server.")));
}

static Size
shared_size(void)
{
	return add_size(offsetof(SfShared, slots),
					mul_size(sizeof(SfWorkerSlot), sfexport_max_workers));
}

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("sfexport", 1);
}

static void
shmem_startup(void)
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
		ConditionVariableInit(&sf_shared->progress_cv);
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
sf_shmem_request(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;
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

/* ---------------------------------------------------------------------
 * Requests from SQL (sql_worker.c)
 * ---------------------------------------------------------------------
 */

/*
 * Ask this database's worker to flush and load everything pending now
 * (sfexport.flush()); cut: also without waiting out backoffs.  True when a
 * worker serves the database; else the request waits for the worker the
 * launcher starts next.
 */
bool
sf_request_flush(bool cut)
{
	bool		found = false;

	if (sf_shared == NULL)
		return false;

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
	return found;
}

/* Wake the launcher to look for databases at once. */
void
sf_request_rescan(void)
{
	if (sf_shared == NULL)
		return;
	LWLockAcquire(sf_shared->lock, LW_EXCLUSIVE);
	sf_shared->rescan_requested = true;
	if (sf_shared->launcher_latch)
		SetLatch(sf_shared->launcher_latch);
	LWLockRelease(sf_shared->lock);
}

/* ---------------------------------------------------------------------
 * The launcher
 * ---------------------------------------------------------------------
 */

/* In the launcher, once: flush() and CREATE EXTENSION wake it through its latch. */
void
sf_launcher_attach(void)
{
	LWLockAcquire(sf_shared->lock, LW_EXCLUSIVE);
	sf_shared->launcher_latch = MyLatch;
	LWLockRelease(sf_shared->lock);
}

/* In the launcher: was a rescan requested since the last call?  Clears it. */
bool
sf_launcher_take_rescan(void)
{
	bool		rescan;

	LWLockAcquire(sf_shared->lock, LW_EXCLUSIVE);
	rescan = sf_shared->rescan_requested;
	sf_shared->rescan_requested = false;
	LWLockRelease(sf_shared->lock);
	return rescan;
}

/* ---------------------------------------------------------------------
 * Progress: sfexport.flush(wait => true) waits for the workers' rounds
 * ---------------------------------------------------------------------
 */

/* Worker: a round staged or loaded files; wake whoever waits for that. */
void
sf_worker_broadcast_progress(void)
{
	if (sf_shared != NULL)
		ConditionVariableBroadcast(&sf_shared->progress_cv);
}

/*
 * Sleep until a worker's next round, or ms at most (cancel and shutdown
 * honoured: ConditionVariableTimedSleep checks interrupts).  Between
 * sf_progress_wait_begin and _end; an error ends the sleep too
 * (AbortTransaction cancels it).
 */
void
sf_progress_wait_begin(void)
{
	if (sf_shared != NULL)
		ConditionVariablePrepareToSleep(&sf_shared->progress_cv);
}

void
sf_progress_wait(long ms, uint32 wait_event)
{
	if (sf_shared != NULL)
		(void) ConditionVariableTimedSleep(&sf_shared->progress_cv, ms, wait_event);
}

void
sf_progress_wait_end(void)
{
	ConditionVariableCancelSleep();
}
