/*-------------------------------------------------------------------------
 *
 * storage_backend.h
 *		What a storage backend implements and shares (storage_s3.c,
 *		storage_gcs.c, storage_local.c, storage_common.c; clients layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_STORAGE_BACKEND_H
#define SF_STORAGE_BACKEND_H

#include "lib/stringinfo.h"
#include "utils/palloc.h"

#include "http.h"
#include "storage.h"

/* Internal to storage*.c: what a backend implements. Keys are full keys. */
typedef struct SfStorageOps
{
	const char *name;			/* "S3", "GCS", "local directory" */
	void		(*open) (SfStorage *st);	/* check config, set st->priv */
	void		(*put) (SfStorageWriter *w, const char *data, size_t len);
	void		(*mp_start) (SfStorageWriter *w);
	void		(*mp_part) (SfStorageWriter *w, const char *data, size_t len);
	/*
	 * Optional, both or none: the request of full part w->nparts (built in
	 * the current memory context; data stays untouched until it is
	 * answered), and what its final answer means (throw, or keep what
	 * the completion needs).  With them, storage.c sends a full part in
	 * the background while the next one is written.
	 */
	void	   *(*mp_part_request) (SfStorageWriter *w, const char *data, size_t len,
									SfHttpRequest *req);
	void		(*mp_part_answer) (SfStorageWriter *w, SfHttpRequest *req,
								   SfHttpResponse *resp, void *arg);
	void		(*mp_complete) (SfStorageWriter *w);
	void		(*mp_abort) (SfStorageWriter *w);	/* one attempt, no remote throw */
	bool		(*read) (SfStorage *st, const char *key, SfHttpWriteFn sink, void *arg);
	bool		(*head) (SfStorage *st, const char *key, int64 *size);
	void		(*del) (SfStorage *st, const char *key);
	/* b->start_after is a full key here; set b->truncated, b->pages */
	List	   *(*list) (SfStorage *st, const char *keyprefix, SfListBounds *b);
} SfStorageOps;

struct SfStorage
{
	const SfStorageOps *ops;
	SfServerConfig *srv;
	SfUserConfig *user;
	char	   *bucket;			/* NULL for a local directory */
	char	   *prefix;			/* key prefix, or the directory */
	size_t		part_size;		/* bytes per part/chunk */
	TimestampTz deadline;		/* 0, or requests give up then (SfHttpRequest) */
	void	   *priv;			/* backend state */
	char	   *credential_source;	/* where its credentials come from (set
									 * by open; NULL: none needed) */
};

struct SfStorageWriter
{
	SfStorage  *st;
	char	   *name;			/* as given */
	char	   *key;			/* prefix + name */
	char	   *content_type;
	MemoryContext cxt;			/* the writer and its buffer */
	MemoryContext partcxt;		/* reset after every part */
	StringInfoData buf;			/* bytes not yet sent, < part_size */
	char	   *spare;			/* the other buffer: the part on the network,
								 * or NULL */
	/* the part on the network (mp_part_request), if any */
	MemoryContext pendcxt;		/* its request, response and state */
	SfHttpPending *pending;
	SfHttpRequest *pendreq;
	void	   *pendarg;		/* from mp_part_request */
	int64		total;			/* bytes given to sf_storage_write */
	int64		sent;			/* bytes sent in finished parts */
	int			nparts;
	bool		multipart;
	bool		done;			/* finished or aborted */
	void	   *priv;			/* backend state */
};

extern const SfStorageOps sf_storage_s3_ops;
extern const SfStorageOps sf_storage_gcs_ops;
extern const SfStorageOps sf_storage_local_ops;
extern void sf_storage_http_error(const char *service, SfHttpRequest *req,
								  SfHttpResponse *resp, const char *code,
								  const char *message);

#endif							/* SF_STORAGE_BACKEND_H */
