/*-------------------------------------------------------------------------
 *
 * worker.h
 *		The per-database export worker (worker.c; processes layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_WORKER_H
#define SF_WORKER_H

extern int	sfexport_snowpipe_poll_interval_ms; /* sfexport.snowpipe_poll_interval */
extern void sf_worker_define_gucs(void);
extern PGDLLEXPORT void sfexport_worker_main(Datum arg);

#endif							/* SF_WORKER_H */
