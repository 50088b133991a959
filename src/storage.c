/*-------------------------------------------------------------------------
 *
 * storage.c
 *		The object storage interface: backend choice by location scheme,
 *		streamed writers with bounded memory, reads, heads, deletes and
 *		listings.  The backends are below it, and storage_common.c below
 *		them; the SQL functions are sql_storage.c's.
 *
 * A writer buffers at most sfexport.upload_part_size bytes.  When an object
 * ends before the buffer is full it is sent in one request (ops->put);
 * otherwise the backend's multipart/resumable protocol is started and every
 * full buffer is sent as one part (ops->mp_part), the rest at finish.  So
 * the single-request threshold equals the part size.  With a backend
 * that says how to send a part and read its answer (ops->mp_part_request,
 * ops->mp_part_answer: S3, GCS), a full part goes onto the network in the
 * background (http.h, sf_http_request_start) and the writer fills its
 * second buffer meanwhile, moves the transfer on at every write and waits
 * for it before the next part starts or the object completes.  Its retries
 * happen in that wait, as they would have in a part sent at once, and an
 * error there throws into the caller's PG_CATCH like any other, whose
 * sf_storage_abort cuts off a part still on the network first.
 *
 * An upload in progress (multipart / resumable) is aborted by the caller's
 * PG_CATCH on error (sf_storage_abort), and at the end of the process by
 * an exit callback (abort_uploads_at_exit): SIGTERM of the worker and
 * pg_terminate_backend() are FATAL errors, which leave the process without
 * unwinding to any PG_CATCH.  (SIGKILL and crashes leave them to the
 * bucket's lifecycle rule, README "Storage".)
 *
 * The backends are storage_s3.c, storage_gcs.c and storage_local.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_foreign_server.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "http.h"
#include "storage.h"
#include "storage_backend.h"

/* sfexport.upload_part_size, kB; S3 needs >= 5 MiB, GCS multiples of 256 KiB */
int			sfexport_upload_part_size_kb = 8 * 1024;

#define MIN_PART_KB (5 * 1024)
#define MAX_PART_KB (1024 * 1024)

void
sf_storage_define_gucs(void)
{
	DefineCustomIntVariable("sfexport.upload_part_size",
							"Size of one part of a multipart (S3) or resumable (GCS) upload.",
							"Objects smaller than this are sent with a single request.  "
							"It is also the memory a writer buffers.  Rounded down to a multiple of 256kB.",
							&sfexport_upload_part_size_kb,
							8 * 1024, MIN_PART_KB, MAX_PART_KB,
							PGC_SUSET,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
}

/*
 * Resolve the storage of a server for a user: backend by location scheme,
 * credentials checked by the backend.
 */
SfStorage *
sf_storage_open(SfServerConfig *srv, SfUserConfig *user)
{
	SfStorage  *st = palloc0(sizeof(SfStorage));

	st->srv = srv;
	st->user = user;
	st->bucket = srv->location.bucket;
	st->prefix = srv->location.prefix;
	st->part_size = ((size_t) sfexport_upload_part_size_kb / 256) * 256 * 1024;
	switch (srv->location.kind)
	{
		case SF_LOCATION_S3:
			st->ops = &sf_storage_s3_ops;
			break;
		case SF_LOCATION_GCS:
			st->ops = &sf_storage_gcs_ops;
			break;
		case SF_LOCATION_FILE:
			st->ops = &sf_storage_local_ops;
			break;
	}
	st->ops->open(st);
	return st;
}

/* What kind of storage: "S3", "GCS", "local directory". */
const char *
sf_storage_kind(SfStorage *st)
{
	return st->ops->name;
}

/* Where the storage's credentials come from ("user mapping", ...), or NULL. */
const char *
sf_storage_credential_source(SfStorage *st)
{
	return st->credential_source;
}

static char *
full_key(SfStorage *st, const char *name)
{
	if (name[0] == '\0' || name[0] == '/' || strstr(name, "//") ||
		strcmp(name, "..") == 0 || strncmp(name, "../", 3) == 0 ||
		strstr(name, "/../") || (strlen(name) >= 3 && strcmp(name + strlen(name) - 3, "/..") == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid object name \"%s\"", name),
				 errdetail("Object names are relative paths without empty or \"..\" segments.")));
	return psprintf("%s%s", st->prefix, name);
}

/* ---------------------------------------------------------------------
 * Uploads in progress, aborted when the process ends
 * ---------------------------------------------------------------------
 */
static List *open_uploads = NIL;	/* SfStorageWriter *, TopMemoryContext cells */
static bool exit_callback_registered = false;

/* The writer's memory goes away (finished, aborted, or its transaction's). */
static void
forget_upload(void *arg)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	open_uploads = list_delete_ptr(open_uploads, arg);
	MemoryContextSwitchTo(old);
}

/*
 * before_shmem_exit: abort every upload still in progress, one bounded
 * attempt each (3 s: a dead store must not hold a shutdown).  This runs
 * before the transaction is aborted (ShutdownPostgres was registered
 * earlier, so runs later), while the writers' memory is still there;
 * interrupts are held by proc_exit.
 */
static void
abort_uploads_at_exit(int code, Datum arg)
{
	while (open_uploads != NIL)
	{
		SfStorageWriter *w = (SfStorageWriter *) linitial(open_uploads);
		char	   *uri = NULL;

		PG_TRY();
		{
			uri = sf_storage_uri(w->st, w->name);
			w->st->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 3000);
			sf_storage_abort(w);	/* deletes w->cxt: forget_upload */
			ereport(LOG,
					(errmsg("aborted the upload of \"%s\" as the process ends", uri)));
		}
		PG_CATCH();
		{
			FlushErrorState();
			forget_upload(w);
		}
		PG_END_TRY();
	}
}

/* A multipart / resumable upload has started: abort it if the process ends. */
static void
track_upload(SfStorageWriter *w)
{
	MemoryContextCallback *cb = MemoryContextAlloc(w->cxt, sizeof(MemoryContextCallback));
	MemoryContext old;

	if (!exit_callback_registered)
	{
		before_shmem_exit(abort_uploads_at_exit, (Datum) 0);
		exit_callback_registered = true;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	open_uploads = lappend(open_uploads, w);
	MemoryContextSwitchTo(old);
	cb->func = forget_upload;
	cb->arg = w;
	MemoryContextRegisterResetCallback(w->cxt, cb);
}

/*
 * Start writing an object.  Nothing is visible until sf_storage_finish().
 */
SfStorageWriter *
sf_storage_begin_write(SfStorage *st, const char *name, const char *content_type)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext,
											  "sfexport storage writer",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	SfStorageWriter *w = palloc0(sizeof(SfStorageWriter));

	w->st = st;
	w->cxt = cxt;
	w->partcxt = AllocSetContextCreate(cxt, "sfexport storage part",
									   ALLOCSET_DEFAULT_SIZES);
	w->name = pstrdup(name);
	w->key = full_key(st, name);
	w->content_type = pstrdup(content_type ? content_type : "application/octet-stream");
	/* the buffer is allocated once, at its full size */
	w->buf.data = MemoryContextAllocHuge(cxt, st->part_size + 1);
	w->buf.maxlen = (int) st->part_size + 1;
	w->buf.len = 0;
	w->buf.data[0] = '\0';
	MemoryContextSwitchTo(old);
	return w;
}

/* Start the full part in data on the network and return (see above). */
static void
start_part(SfStorageWriter *w, const char *data, size_t len)
{
	MemoryContext old;

	w->pendcxt = AllocSetContextCreate(w->cxt, "sfexport storage part on the network",
									   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(w->pendcxt);
	w->pendreq = palloc(sizeof(SfHttpRequest));
	w->pendarg = w->st->ops->mp_part_request(w, data, len, w->pendreq);
	w->pending = sf_http_request_start(w->pendreq);
	MemoryContextSwitchTo(old);
}

/* Wait for the part on the network, if any, and take its answer. */
static void
wait_part(SfStorageWriter *w)
{
	SfHttpPending *p = w->pending;
	MemoryContext old;

	if (p == NULL)
		return;
	w->pending = NULL;			/* on error, sf_storage_abort drops pendcxt */
	old = MemoryContextSwitchTo(w->pendcxt);
	w->st->ops->mp_part_answer(w, w->pendreq, sf_http_request_finish(p), w->pendarg);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(w->pendcxt);
	w->pendcxt = NULL;
}

/* Cut off the part on the network, if any: deleting its memory does. */
static void
cancel_part(SfStorageWriter *w)
{
	if (w->pendcxt)
		MemoryContextDelete(w->pendcxt);
	w->pendcxt = NULL;
	w->pending = NULL;
}

/* Send the full buffer as the next part, starting the upload if needed. */
static void
flush_part(SfStorageWriter *w)
{
	MemoryContext old = MemoryContextSwitchTo(w->partcxt);

	if (!w->multipart)
	{
		w->st->ops->mp_start(w);
		w->multipart = true;
		track_upload(w);
	}
	w->nparts++;
	/* one part on the network at a time: the one before is done first */
	wait_part(w);
	/* another writer's part may be on the network: then this one waits */
	if (w->st->ops->mp_part_request && !sf_http_request_busy())
	{
		char	   *full = w->buf.data;

		start_part(w, full, w->buf.len);
		/* the next part is written into the other buffer meanwhile */
		if (w->spare == NULL)
			w->spare = MemoryContextAllocHuge(w->cxt, w->st->part_size + 1);
		w->buf.data = w->spare;
		w->spare = full;
	}
	else
		w->st->ops->mp_part(w, w->buf.data, w->buf.len);
	w->sent += w->buf.len;
	w->buf.len = 0;
	MemoryContextSwitchTo(old);
	MemoryContextReset(w->partcxt);
}

/* Append bytes to the object; sends a part each time the buffer fills. */
void
sf_storage_write(SfStorageWriter *w, const void *data, size_t len)
{
	const char *p = (const char *) data;

	if (w->done)
		elog(ERROR, "sfexport: write to a finished storage writer");
	while (len > 0)
	{
		size_t		room = w->st->part_size - w->buf.len;
		size_t		n = Min(room, len);

		memcpy(w->buf.data + w->buf.len, p, n);
		w->buf.len += n;
		w->total += n;
		p += n;
		len -= n;
		if ((size_t) w->buf.len == w->st->part_size)
			flush_part(w);
	}
	/* let the part on the network move on while this one is written */
	if (w->pending)
		sf_http_request_progress(w->pending);
}

/*
 * Complete the object: single request when it never reached a part,
 * otherwise the last part and the completion.  Frees the writer.
 */
int64
sf_storage_finish(SfStorageWriter *w)
{
	MemoryContext old;
	int64		total = w->total;

	if (w->done)
		elog(ERROR, "sfexport: storage writer finished twice");
	old = MemoryContextSwitchTo(w->partcxt);
	if (!w->multipart)
		w->st->ops->put(w, w->buf.data, w->buf.len);
	else
	{
		wait_part(w);
		if (w->buf.len > 0)
		{
			w->nparts++;
			w->st->ops->mp_part(w, w->buf.data, w->buf.len);
			w->sent += w->buf.len;
			w->buf.len = 0;
		}
		w->st->ops->mp_complete(w);
	}
	MemoryContextSwitchTo(old);
	w->done = true;
	MemoryContextDelete(w->cxt);
	return total;
}

/*
 * Give up on an object.  Safe in PG_CATCH: holds interrupts, one attempt,
 * failures are logged as WARNING.  Frees the writer.
 */
void
sf_storage_abort(SfStorageWriter *w)
{
	MemoryContext old;

	if (w == NULL || w->done)
		return;
	w->done = true;
	HOLD_INTERRUPTS();
	old = MemoryContextSwitchTo(w->partcxt);
	cancel_part(w);
	if (w->multipart)
		w->st->ops->mp_abort(w);
	MemoryContextSwitchTo(old);
	RESUME_INTERRUPTS();
	MemoryContextDelete(w->cxt);
}

bool
sf_storage_read(SfStorage *st, const char *name, SfHttpWriteFn sink, void *arg)
{
	return st->ops->read(st, full_key(st, name), sink, arg);
}

bool
sf_storage_head(SfStorage *st, const char *name, int64 *size)
{
	return st->ops->head(st, full_key(st, name), size);
}

void
sf_storage_delete(SfStorage *st, const char *name)
{
	st->ops->del(st, full_key(st, name));
}

static int
cmp_cstr(const ListCell *a, const ListCell *b)
{
	return strcmp((const char *) lfirst(a), (const char *) lfirst(b));
}

/*
 * Names (relative to the location prefix) that start with prefix and come
 * after b->start_after (if set), sorted, within b's bounds: at most
 * b->max_pages requests, none started after b->deadline, and no request
 * (with its retries) running past it.  b->truncated says the listing
 * stopped at a bound; listing again from the last name returned goes on.
 */
List *
sf_storage_list_bounded(SfStorage *st, const char *prefix, SfListBounds *b)
{
	SfListBounds full = *b;		/* the backend's view: full keys */
	List	   *keys;
	List	   *out = NIL;
	ListCell   *lc;
	size_t		plen = strlen(st->prefix);

	if (full.max_pages <= 0)
		full.max_pages = SF_LIST_MAX_PAGES;
	full.truncated = false;
	full.pages = 0;
	if (b->start_after)
		full.start_after = psprintf("%s%s", st->prefix, b->start_after);
	/* every request of the listing, retries included, ends by the deadline */
	st->deadline = b->deadline;
	keys = st->ops->list(st, psprintf("%s%s", st->prefix, prefix ? prefix : ""), &full);
	st->deadline = 0;
	b->truncated = full.truncated;
	b->pages = full.pages;
	foreach(lc, keys)
	{
		char	   *k = (char *) lfirst(lc);

		if (strncmp(k, st->prefix, plen) == 0)
			out = lappend(out, pstrdup(k + plen));
	}
	list_sort(out, cmp_cstr);
	return out;
}

/*
 * The names below prefix, sorted, for interactive callers: within the
 * default bounds (SF_LIST_MAX_PAGES, SF_LIST_MAX_SECONDS); a WARNING says
 * when the listing stopped early.
 */
List *
sf_storage_list(SfStorage *st, const char *prefix)
{
	SfListBounds b;
	List	   *out;

	memset(&b, 0, sizeof(b));
	b.deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											 SF_LIST_MAX_SECONDS * 1000L);
	out = sf_storage_list_bounded(st, prefix, &b);
	if (b.truncated)
		ereport(WARNING,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("listing of %s stopped after %d requests",
						sf_storage_uri(st, prefix ? prefix : ""), b.pages),
				 errdetail("A listing reads at most %d pages and runs at most %d seconds; names after \"%s\" were not listed.",
						   SF_LIST_MAX_PAGES, SF_LIST_MAX_SECONDS,
						   out != NIL ? (char *) llast(out) : "")));
	return out;
}
