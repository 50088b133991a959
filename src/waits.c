/*-------------------------------------------------------------------------
 *
 * waits.c
 *		The one way sfexport waits: on the process latch, honouring cancel,
 *		shutdown and postmaster death, under a wait event of its own
 *		(pg_stat_activity.wait_event); the wait events themselves (also for
 *		HTTP transfers, http.c); and the start of each round of the
 *		launcher's and the worker's main loops.
 *
 * Every wait sets WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH and checks
 * for interrupts after waking up, so a SIGTERM or a query cancel ends it at
 * once.  The latch is set for other reasons too: a worker's by every commit
 * that captured rows and by sfexport.flush(), the launcher's by CREATE
 * EXTENSION.  Each caller says whether such a wake-up ends its wait
 * (SF_WAIT_UNTIL_LATCH: the main loops, which then look at what woke them,
 * and the Snowflake and Glue pollers, which retry sooner) or not
 * (SF_WAIT_FULL_TIME: HTTP retry backoffs and lock retries, which only the
 * clock ends).  A wake-up waited through is consumed (the latch is reset):
 * the worker's loop reads what the latch stands for from shared memory
 * (shmem.c) before it sleeps, so none is lost.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "waits.h"

/*
 * The wait event to pass to WaitLatch for a kind of wait.  From PostgreSQL 17
 * on each has its own name in pg_stat_activity.wait_event (custom wait
 * events of type Extension, allocated in shared memory on first use and
 * cached per process); before 17 they are all "Extension".
 */
uint32
sf_wait_event(SfWaitEvent which)
{
	static const char *const names[] = {
		[SF_WAIT_LAUNCHER_MAIN] = "SfexportLauncherMain",
		[SF_WAIT_WORKER_MAIN] = "SfexportWorkerMain",
		[SF_WAIT_HTTP_TRANSFER] = "SfexportHttpTransfer",
		[SF_WAIT_HTTP_BACKOFF] = "SfexportHttpBackoff",
		[SF_WAIT_SNOWFLAKE_POLL] = "SfexportSnowflakePoll",
		[SF_WAIT_GLUE_BACKOFF] = "SfexportGlueBackoff",
		[SF_WAIT_TRUNCATE_LOCK] = "SfexportTruncateLock",
		[SF_WAIT_OUTBOX_SEGMENT] = "SfexportOutboxSegment",
		[SF_WAIT_FLUSH] = "SfexportFlushWait",
	};
	static uint32 ids[lengthof(names)];

	Assert(which >= 0 && which < lengthof(names));
	if (ids[which] == 0)
		ids[which] = WaitEventExtensionNew(names[which]);
	return ids[which];
}

/*
 * Wait ms milliseconds on the latch, as wait event which; with
 * SF_WAIT_UNTIL_LATCH a latch wake-up ends the wait early.  Cancel,
 * shutdown (CHECK_FOR_INTERRUPTS) and postmaster death end it always.
 */
void
sf_wait(long ms, SfWaitEvent which, SfWaitRule rule)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	long		left = ms;

	while (left > 0)
	{
		int			rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								   left, sf_wait_event(which));

		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (rule == SF_WAIT_UNTIL_LATCH)
			return;
		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), end);
	}
	CHECK_FOR_INTERRUPTS();
}

/*
 * The start of a round of a background process's main loop: interrupts
 * (SIGTERM ends the process here at the latest), a configuration reload
 * after SIGHUP, and the loop's memory context, reset and made current.
 */
void
sf_main_loop_round(MemoryContext loopcxt)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	MemoryContextReset(loopcxt);
	MemoryContextSwitchTo(loopcxt);
}
