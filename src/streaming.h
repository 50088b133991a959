/*-------------------------------------------------------------------------
 *
 * streaming.h
 *		The Snowpipe Streaming REST API client (high-performance
 *		architecture): host discovery, scoped token, open channel, append
 *		rows, bulk channel status (streaming.c; clients layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_STREAMING_H
#define SF_STREAMING_H

#include "config.h"

/* largest append body sent (the documented limit is 4 MB on the wire) */
#define SF_STREAM_MAX_REQUEST_BYTES	(4 * 1000 * 1000)

/* A named channel: the path parts of the REST API. */
typedef struct SfStreamChannel
{
	const char *database;
	const char *schema;
	const char *pipe;
	const char *channel;
} SfStreamChannel;

/* What Snowflake says about a channel (open reply or bulk status). */
typedef struct SfStreamStatus
{
	bool		found;			/* bulk status: the channel has an entry */
	bool		valid;			/* channel_status_code SUCCESS or ACTIVE */
	char	   *status_code;
	char	   *committed_token;	/* last_committed_offset_token, NULL = none */
	int64		rows_inserted;
	int64		rows_errors;	/* rows_error_count (or rows_errors) */
	char	   *last_error_offset;	/* last_error_offset_upper_bound */
	char	   *last_error_message;
} SfStreamStatus;

typedef enum SfStreamAppendResult
{
	SF_STREAM_APPENDED,			/* received (not yet committed) */
	SF_STREAM_THROTTLED,		/* 429 after the retries: slow down */
	SF_STREAM_TOO_LARGE,		/* 413: this body can never be appended */
	SF_STREAM_REOPEN			/* stale token, invalid channel, unknown
								 * outcome: reopen and resume from the
								 * committed offset token */
} SfStreamAppendResult;

extern char *sf_stream_open(SfServerConfig *srv, SfUserConfig *usr,
							const SfStreamChannel *ch, SfStreamStatus *st);
extern SfStreamAppendResult sf_stream_append(SfServerConfig *srv, SfUserConfig *usr,
											 const SfStreamChannel *ch,
											 const char *continuation,
											 const char *body, size_t len,
											 const char *content_encoding,
											 const char *offset_token,
											 char **next_continuation,
											 int *retry_after_ms);
extern void sf_stream_status(SfServerConfig *srv, SfUserConfig *usr,
							 const SfStreamChannel *ch, SfStreamStatus *st);
extern void sf_stream_forget_hosts(void);

#endif							/* SF_STREAMING_H */
