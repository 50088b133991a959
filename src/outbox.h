/*-------------------------------------------------------------------------
 *
 * outbox.h
 *		The WAL-logged outbox written in the inserting transaction
 *		(outbox.c; model layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_OUTBOX_H
#define SF_OUTBOX_H

#include "executor/tuptable.h"
#include "utils/relcache.h"

typedef struct SfOutboxWriter SfOutboxWriter;

extern int	sfexport_batch_size;	/* sfexport.batch_size */
extern bool sfexport_capture_binary;	/* sfexport.capture_binary */
extern void sf_outbox_define_gucs(void);
extern SfOutboxWriter *sf_outbox_begin(Relation ftrel);
extern void sf_outbox_put(SfOutboxWriter *w, TupleTableSlot *slot);
extern void *sf_outbox_cached_state(SfOutboxWriter *w, Relation ftrel, Oid about,
									void *(*build) (Relation ftrel, void *arg),
									void *arg);
extern void sf_outbox_end(SfOutboxWriter *w);
extern int	sf_outbox_batch_size(SfOutboxWriter *w);
extern void sf_outbox_init(void);

#endif							/* SF_OUTBOX_H */
