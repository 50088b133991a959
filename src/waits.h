/*-------------------------------------------------------------------------
 *
 * waits.h
 *		Waiting on the process latch, under a named wait event, and the
 *		round of a background process's main loop (waits.c; base layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_WAITS_H
#define SF_WAITS_H

#include "utils/palloc.h"

/* what a process waits for (pg_stat_activity.wait_event) */
typedef enum SfWaitEvent
{
	SF_WAIT_LAUNCHER_MAIN,		/* launcher between scans */
	SF_WAIT_WORKER_MAIN,		/* worker between rounds */
	SF_WAIT_HTTP_TRANSFER,		/* an HTTP request on the network */
	SF_WAIT_HTTP_BACKOFF,		/* before retrying an HTTP request */
	SF_WAIT_SNOWFLAKE_POLL,		/* before polling a running statement */
	SF_WAIT_GLUE_BACKOFF,		/* before retrying a throttled Glue call */
	SF_WAIT_TRUNCATE_LOCK,		/* before asking again for a drained
								 * segment's lock, for its TRUNCATE */
	SF_WAIT_OUTBOX_SEGMENT,		/* inserter: before trying the outbox
								 * segments again */
	SF_WAIT_FLUSH				/* sfexport.flush(wait => true): between
								 * looks at the outbox and the manifest */
} SfWaitEvent;

/* whether a latch wake-up ends a wait (sf_wait) */
typedef enum SfWaitRule
{
	SF_WAIT_UNTIL_LATCH,		/* the time or a wake-up, whichever comes first */
	SF_WAIT_FULL_TIME			/* the whole time: wake-ups are waited through */
} SfWaitRule;

extern uint32 sf_wait_event(SfWaitEvent which);
extern void sf_wait(long ms, SfWaitEvent which, SfWaitRule rule);
extern void sf_main_loop_round(MemoryContext loopcxt);

#endif							/* SF_WAITS_H */
