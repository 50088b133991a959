/*-------------------------------------------------------------------------
 *
 * storage.c
 *		The object storage interface: backend choice by location scheme,
 *		streamed writers with bounded memory, reads, heads, deletes and
 *		listings, the common error reporting of the HTTP backends, and the
 *		SQL functions sfexport.test_storage() and sfexport_test.storage_*().
 *
 * A writer buffers at most sfexport.upload_part_size bytes.  When an object
 * ends before the buffer is full it is sent in one request (ops->put);
 * otherwise the backend's multipart/resumable protocol is started and every
 * full buffer is sent as one part (ops->mp_part), the rest at finish.  So
 * the single-request threshold equals the part size.
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

/* The full URI of an object, for messages: s3://bucket/prefix/name etc. */
char *
sf_storage_uri(SfStorage *st, const char *name)
{
	switch (st->srv->location.kind)
	{
		case SF_LOCATION_S3:
			return psprintf("s3://%s/%s%s", st->bucket, st->prefix, name);
		case SF_LOCATION_GCS:
			return psprintf("gcs://%s/%s%s", st->bucket, st->prefix, name);
		default:
			return psprintf("file://%s%s", st->prefix, name);
	}
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

/*
 * Report a failed HTTP response of a storage service.  code and message
 * are the service's own (S3 XML Code/Message, GCS JSON error), when known.
 */
void
sf_storage_http_error(const char *service, SfHttpRequest *req,
					  SfHttpResponse *resp, const char *code,
					  const char *message)
{
	const char *url = req->log_url ? req->log_url : pstrdup(req->url);
	char	   *q = strchr(url, '?');
	int			sqlstate;
	const char *hint = NULL;

	if (q && req->log_url == NULL)
		*q = '\0';
	if (resp->status == 401 || resp->status == 403)
	{
		sqlstate = ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
		if (code && (strcmp(code, "SignatureDoesNotMatch") == 0 ||
					 strcmp(code, "InvalidAccessKeyId") == 0))
			hint = "Check aws_access_key_id and aws_secret_access_key in the user mapping.";
		else
			hint = "Check the credentials in the user mapping and the permissions they grant on the bucket.";
	}
	else if (resp->status == 404)
		sqlstate = ERRCODE_UNDEFINED_OBJECT;
	else if (resp->status >= 500 || resp->status == 429)
		sqlstate = ERRCODE_CONNECTION_FAILURE;
	else
		sqlstate = ERRCODE_FDW_ERROR;

	ereport(ERROR,
			(errcode(sqlstate),
			 errmsg("%s request %s %s failed: HTTP %ld%s%s", service,
					req->method, url, resp->status,
					code ? " " : "", code ? code : ""),
			 message ? errdetail_internal("%s", message) : 0,
			 hint ? errhint("%s", hint) : 0));
}

/* ---------------------------------------------------------------------
 * SQL functions
 * ---------------------------------------------------------------------
 */

/* Storage of a server for the current user, checking USAGE on the server. */
static SfStorage *
storage_for_server(const char *servername)
{
	ForeignServer *server = GetForeignServerByName(servername, false);
	AclResult	aclresult;

	aclresult = object_aclcheck(ForeignServerRelationId, server->serverid, GetUserId(), ACL_USAGE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_SERVER, server->servername);
	return sf_storage_open(sf_get_server_config(server->serverid),
						   sf_get_user_config(server->serverid, GetUserId()));
}

/* A response sink collecting into a StringInfo; never throws. */
typedef struct CollectSink
{
	MemoryContext cxt;
	StringInfoData buf;
	size_t		limit;
	bool		failed;
} CollectSink;

static bool
collect_sink(const char *data, size_t len, void *arg)
{
	CollectSink *s = (CollectSink *) arg;

	if ((size_t) s->buf.len + len + 1 > s->limit)
	{
		s->failed = true;
		return false;
	}
	if ((size_t) s->buf.len + len + 1 > (size_t) s->buf.maxlen)
	{
		size_t		nl = Max((size_t) s->buf.maxlen * 2, (size_t) s->buf.len + len + 1);
		char	   *nb = MemoryContextAllocExtended(s->cxt, nl, MCXT_ALLOC_NO_OOM | MCXT_ALLOC_HUGE);

		if (nb == NULL)
		{
			s->failed = true;
			return false;
		}
		memcpy(nb, s->buf.data, s->buf.len);
		pfree(s->buf.data);
		s->buf.data = nb;
		s->buf.maxlen = (int) nl;
	}
	memcpy(s->buf.data + s->buf.len, data, len);
	s->buf.len += len;
	s->buf.data[s->buf.len] = '\0';
	return true;
}

/* Read a whole object into memory (at most limit bytes); false if absent. */
static bool
read_all(SfStorage *st, const char *name, StringInfo out, size_t limit)
{
	CollectSink s;
	bool		found;

	s.cxt = CurrentMemoryContext;
	initStringInfo(&s.buf);
	s.limit = limit;
	s.failed = false;
	found = sf_storage_read(st, name, collect_sink, &s);
	if (s.failed)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("object \"%s\" is larger than %zu bytes", sf_storage_uri(st, name), limit)));
	*out = s.buf;
	return found;
}

/* Write data in chunks of chunk bytes; abort instead of finishing if asked. */
static int64
put_chunks(SfStorage *st, const char *name, const char *data, size_t len,
		   int chunk, bool abort_at_end)
{
	SfStorageWriter *volatile w = sf_storage_begin_write(st, name, NULL);
	int64		total = 0;

	PG_TRY();
	{
		size_t		off = 0;

		while (off < len)
		{
			size_t		n = Min((size_t) chunk, len - off);

			sf_storage_write(w, data + off, n);
			off += n;
			CHECK_FOR_INTERRUPTS();
		}
		if (abort_at_end)
			sf_storage_abort(w);
		else
			total = sf_storage_finish(w);
	}
	PG_CATCH();
	{
		sf_storage_abort(w);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return total;
}

PG_FUNCTION_INFO_V1(sfexport_storage_put);
PG_FUNCTION_INFO_V1(sfexport_storage_get);
PG_FUNCTION_INFO_V1(sfexport_storage_head);
PG_FUNCTION_INFO_V1(sfexport_storage_delete);
PG_FUNCTION_INFO_V1(sfexport_storage_list);
PG_FUNCTION_INFO_V1(sfexport_test_storage);

/* sfexport_test.storage_put(server, name, data, chunk, abort) → bytes written */
Datum
sfexport_storage_put(PG_FUNCTION_ARGS)
{
	SfStorage  *st = storage_for_server(NameStr(*PG_GETARG_NAME(0)));
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	bytea	   *data = PG_GETARG_BYTEA_PP(2);
	int			chunk = PG_GETARG_INT32(3);

	if (chunk <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("chunk size must be positive")));
	PG_RETURN_INT64(put_chunks(st, name, VARDATA_ANY(data), VARSIZE_ANY_EXHDR(data),
							   chunk, PG_GETARG_BOOL(4)));
}

/* sfexport_test.storage_get(server, name) → bytea, NULL when absent */
Datum
sfexport_storage_get(PG_FUNCTION_ARGS)
{
	SfStorage  *st = storage_for_server(NameStr(*PG_GETARG_NAME(0)));
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	StringInfoData buf;
	bytea	   *res;

	if (!read_all(st, name, &buf, MaxAllocSize - VARHDRSZ - 1))
		PG_RETURN_NULL();
	res = palloc(VARHDRSZ + buf.len);
	SET_VARSIZE(res, VARHDRSZ + buf.len);
	memcpy(VARDATA(res), buf.data, buf.len);
	PG_RETURN_BYTEA_P(res);
}

/* sfexport_test.storage_head(server, name) → size, NULL when absent */
Datum
sfexport_storage_head(PG_FUNCTION_ARGS)
{
	SfStorage  *st = storage_for_server(NameStr(*PG_GETARG_NAME(0)));
	int64		size = 0;

	if (!sf_storage_head(st, text_to_cstring(PG_GETARG_TEXT_PP(1)), &size))
		PG_RETURN_NULL();
	PG_RETURN_INT64(size);
}

/* sfexport_test.storage_delete(server, name) */
Datum
sfexport_storage_delete(PG_FUNCTION_ARGS)
{
	SfStorage  *st = storage_for_server(NameStr(*PG_GETARG_NAME(0)));

	sf_storage_delete(st, text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}

/* sfexport_test.storage_list(server, prefix) → setof text */
Datum
sfexport_storage_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SfStorage  *st;
	List	   *names;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	st = storage_for_server(NameStr(*PG_GETARG_NAME(0)));
	names = sf_storage_list(st, text_to_cstring(PG_GETARG_TEXT_PP(1)));
	foreach(lc, names)
	{
		Datum		v = CStringGetTextDatum((char *) lfirst(lc));
		bool		n = false;

		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &v, &n);
	}
	return (Datum) 0;
}

/* One row of test_storage output. */
static void
report_step(ReturnSetInfo *rsinfo, const char *step, bool ok, const char *detail)
{
	Datum		v[3];
	bool		n[3] = {false, false, detail == NULL};

	v[0] = CStringGetTextDatum(step);
	v[1] = BoolGetDatum(ok);
	v[2] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
}

typedef enum ProbeStep
{
	STEP_CONFIG,
	STEP_WRITE,
	STEP_HEAD,
	STEP_READ,
	STEP_DELETE,
	STEP_GONE
} ProbeStep;

static const char *const step_names[] = {"configuration", "write", "stat", "read back", "delete", "verify deleted"};

/*
 * Run one probe step in a subtransaction, so that an error becomes a row
 * (with its message, detail and hint) instead of aborting the function.
 */
static bool
run_step(ReturnSetInfo *rsinfo, ProbeStep step, SfStorage **st,
		 const char *servername, const char *name, StringInfo probe)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	char	   *volatile detail = NULL;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		switch (step)
		{
			case STEP_CONFIG:
				*st = storage_for_server(servername);
				detail = psprintf("%s storage at %s", (*st)->ops->name,
								  sf_storage_uri(*st, ""));
				break;
			case STEP_WRITE:
				put_chunks(*st, name, probe->data, probe->len, probe->len, false);
				detail = psprintf("wrote %d bytes to %s", probe->len, sf_storage_uri(*st, name));
				break;
			case STEP_HEAD:
				{
					int64		size;

					if (!sf_storage_head(*st, name, &size))
					{
						ok = false;
						detail = "the probe object is not there after writing it";
					}
					else if (size != probe->len)
					{
						ok = false;
						detail = psprintf("the probe object has %lld bytes instead of %d",
										  (long long) size, probe->len);
					}
					else
						detail = psprintf("%lld bytes", (long long) size);
					break;
				}
			case STEP_READ:
				{
					StringInfoData back;

					if (!read_all(*st, name, &back, 1024 * 1024))
					{
						ok = false;
						detail = "the probe object could not be found when reading it back";
					}
					else if (back.len != probe->len || memcmp(back.data, probe->data, back.len) != 0)
					{
						ok = false;
						detail = psprintf("read back %d bytes that differ from the %d bytes written",
										  back.len, probe->len);
					}
					else
						detail = psprintf("read back %d identical bytes", back.len);
					break;
				}
			case STEP_DELETE:
				sf_storage_delete(*st, name);
				detail = "deleted the probe object";
				break;
			case STEP_GONE:
				{
					int64		size;

					if (sf_storage_head(*st, name, &size))
					{
						ok = false;
						detail = "the probe object is still there after deleting it";
					}
					else
						detail = "the probe object is gone";
					break;
				}
		}
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		StringInfoData d;

		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;

		initStringInfo(&d);
		appendStringInfo(&d, "%s (SQLSTATE %s)", edata->message,
						 unpack_sql_state(edata->sqlerrcode));
		if (edata->detail)
			appendStringInfo(&d, " %s", edata->detail);
		if (edata->hint)
			appendStringInfo(&d, " Hint: %s", edata->hint);
		detail = d.data;
		ok = false;
	}
	PG_END_TRY();

	report_step(rsinfo, step_names[step], ok, detail);
	return ok;
}

/*
 * sfexport.test_storage(server name) → setof (step, ok, detail)
 *
 * Writes a small probe object, checks its size, reads it back, deletes it
 * and checks that it is gone, with the current user's credentials.  Stops
 * at the first failing step (but still tries to delete a written probe).
 */
Datum
sfexport_test_storage(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *servername = pstrdup(NameStr(*PG_GETARG_NAME(0)));
	SfStorage  *st = NULL;
	StringInfoData probe;
	char	   *name;
	bool		written = false;

	InitMaterializedSRF(fcinfo, 0);

	name = psprintf("_sfexport_probe/%d-%lld.txt", MyProcPid,
					(long long) GetCurrentTimestamp());
	initStringInfo(&probe);
	appendStringInfo(&probe, "sfexport storage probe written by process %d at %s\n",
					 MyProcPid, timestamptz_to_str(GetCurrentTimestamp()));

	if (!run_step(rsinfo, STEP_CONFIG, &st, servername, name, &probe))
		return (Datum) 0;
	written = run_step(rsinfo, STEP_WRITE, &st, servername, name, &probe);
	if (written &&
		run_step(rsinfo, STEP_HEAD, &st, servername, name, &probe) &&
		run_step(rsinfo, STEP_READ, &st, servername, name, &probe) &&
		run_step(rsinfo, STEP_DELETE, &st, servername, name, &probe))
		run_step(rsinfo, STEP_GONE, &st, servername, name, &probe);
	else if (written)
		run_step(rsinfo, STEP_DELETE, &st, servername, name, &probe);
	return (Datum) 0;
}
