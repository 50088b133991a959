/*-------------------------------------------------------------------------
 *
 * shmem.h
 *		The shared state of the launcher, the workers and the inserting
 *		backends (shmem.c; base layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_SHMEM_H
#define SF_SHMEM_H

#define SF_OUTBOX_SEGMENTS	2	/* sfexport.outbox_0, outbox_1 */

extern int	sfexport_max_workers;	/* sfexport.max_workers */

/* _PG_init */
extern void sf_shmem_init(void);
extern void sf_shmem_define_gucs(void);
extern void sf_shmem_request(void);
extern bool sf_preloaded(void);
extern void sf_require_preload(const char *what);

/* the worker */
extern bool sf_worker_claim_slot(Oid dboid);
extern bool sf_worker_take_flush_request(bool *cut_backoffs);
extern bool sf_worker_flush_pending(void);
extern uint64 sf_worker_committed_bytes(void);
extern int	sf_worker_flip_segment(void);

/* inserting backends */
extern int	sf_outbox_current_segment(void);
extern void sf_notify_commit(uint64 bytes);

/* SQL functions (sql_worker.c) */
extern bool sf_request_flush(bool cut_backoffs);
extern void sf_worker_broadcast_progress(void);
extern void sf_progress_wait_begin(void);
extern void sf_progress_wait(long ms, uint32 wait_event);
extern void sf_progress_wait_end(void);
extern void sf_request_rescan(void);

/* the launcher */
extern void sf_launcher_attach(void);
extern bool sf_launcher_take_rescan(void);

#endif							/* SF_SHMEM_H */
