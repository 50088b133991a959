/*-------------------------------------------------------------------------
 *
 * storage.h
 *		The object storage interface (storage.c, storage_common.c; clients
 *		layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_STORAGE_H
#define SF_STORAGE_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "config.h"
#include "http.h"

/* ----------------------------------------------------------------
 * storage.c — object storage interface (backends: storage_s3.c,
 * storage_gcs.c, storage_local.c), chosen by the server's location scheme
 *
 * Object names are relative to the location's prefix.  A writer streams one
 * object with bounded memory: bytes are buffered up to the part size
 * (sfexport.upload_part_size); an object that ends before the buffer fills
 * is sent with one request (S3 PUT, GCS media upload), a larger one as an
 * S3 multipart upload or a GCS resumable upload.  S3 parts overlap: a full
 * part goes onto the network in the background (http.h,
 * sf_http_request_start) while the next is written into a second buffer,
 * and is waited for at the next part's boundary (at most one part in
 * flight, so two buffers); GCS sends one chunk at a time.  A
 * local directory is written through a temporary file that is fsynced and
 * renamed into place.  The object is visible only after sf_storage_finish().
 *
 * Errors are thrown (ERRCODE_CONNECTION_FAILURE for transport problems and
 * 5xx after retries, ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION for 401 and
 * 403, ERRCODE_UNDEFINED_OBJECT for a missing bucket or directory), naming
 * the request and the service's own error code and message.
 *
 * sf_storage_abort() may be called from a PG_CATCH block: it holds
 * interrupts, makes a single attempt to abort the multipart/resumable upload
 * (or removes the temporary file), logs a WARNING if that fails and never
 * throws for remote problems.
 * ----------------------------------------------------------------
 */
typedef struct SfStorage SfStorage;
typedef struct SfStorageWriter SfStorageWriter;

extern int	sfexport_upload_part_size_kb;	/* sfexport.upload_part_size */

extern void sf_storage_define_gucs(void);
extern SfStorage *sf_storage_open(SfServerConfig *srv, SfUserConfig *user);
extern const char *sf_storage_kind(SfStorage *st);
extern const char *sf_storage_credential_source(SfStorage *st);
extern char *sf_storage_uri(SfStorage *st, const char *name);
extern SfStorageWriter *sf_storage_begin_write(SfStorage *st, const char *name,
											   const char *content_type);
extern void sf_storage_write(SfStorageWriter *w, const void *data, size_t len);
extern int64 sf_storage_finish(SfStorageWriter *w);	/* returns bytes written */
extern void sf_storage_abort(SfStorageWriter *w);
extern bool sf_storage_read(SfStorage *st, const char *name,
							SfHttpWriteFn sink, void *arg);	/* false: no such object */
extern bool sf_storage_head(SfStorage *st, const char *name, int64 *size);
extern void sf_storage_delete(SfStorage *st, const char *name);	/* absent is fine */
extern List *sf_storage_list(SfStorage *st, const char *prefix);	/* names, sorted */

/*
 * Bounds of one listing (sf_storage_list_bounded): a listing stops after
 * max_pages requests or at deadline, whatever the store answers, so that an
 * endpoint that pages forever (IsTruncated=true without end) or crawls can
 * neither exhaust the worker's memory nor hold it.
 */
#define SF_LIST_MAX_PAGES	100		/* S3, GCS: up to 1000 names per page */
#define SF_LIST_MAX_SECONDS 120
typedef struct SfListBounds
{
	int			max_pages;		/* requests at most (0: SF_LIST_MAX_PAGES) */
	TimestampTz deadline;		/* no request starts after it (0: none) */
	const char *start_after;	/* a name: list only the names after it, or NULL */
	bool		truncated;		/* out: stopped at a bound; more names may follow */
	int			pages;			/* out: requests made */
} SfListBounds;
extern List *sf_storage_list_bounded(SfStorage *st, const char *prefix, SfListBounds *b);

#endif							/* SF_STORAGE_H */
