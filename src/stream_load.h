/*-------------------------------------------------------------------------
 *
 * stream_load.h
 *		load_mode 'streaming': outbox rows into batches, batches into
 *		Snowpipe Streaming channels (stream_load.c; pipeline layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_STREAM_LOAD_H
#define SF_STREAM_LOAD_H

#include "datatype/timestamp.h"

extern int	sfexport_streaming_poll_interval_ms;	/* sfexport.streaming_poll_interval */
extern void sf_stream_define_gucs(void);
extern int64 sf_stream_collect(Oid relid);
extern TimestampTz sf_stream_ship(void);

#endif							/* SF_STREAM_LOAD_H */
