/*-------------------------------------------------------------------------
 *
 * sql_storage.c
 *		SQL functions over a server's storage: sfexport.test_storage(),
 *		sfexport.orphans(), and the test surface's storage primitives
 *		(sfexport_test.storage_put, _get, _head, _delete, _list; see "Test
 *		surface" in docs/ARCHITECTURE.md).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_foreign_server.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "storage.h"
#include "sweep.h"
#include "transaction.h"

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

/* One probe step and what it found. */
typedef struct ProbeRun
{
	ProbeStep	step;
	SfStorage **st;
	const char *servername;
	const char *name;
	StringInfo	probe;
	bool		ok;
	char	   *detail;
} ProbeRun;

static void
probe_step(void *arg)
{
	ProbeRun   *p = (ProbeRun *) arg;

	switch (p->step)
	{
		case STEP_CONFIG:
			*p->st = storage_for_server(p->servername);
			p->detail = psprintf("%s storage at %s", sf_storage_kind(*p->st),
								 sf_storage_uri(*p->st, ""));
			if (sf_storage_credential_source(*p->st))
				p->detail = psprintf("%s, credentials from %s", p->detail,
									 sf_storage_credential_source(*p->st));
			break;
		case STEP_WRITE:
			put_chunks(*p->st, p->name, p->probe->data, p->probe->len, p->probe->len, false);
			p->detail = psprintf("wrote %d bytes to %s", p->probe->len,
								 sf_storage_uri(*p->st, p->name));
			break;
		case STEP_HEAD:
			{
				int64		size;

				if (!sf_storage_head(*p->st, p->name, &size))
				{
					p->ok = false;
					p->detail = "the probe object is not there after writing it";
				}
				else if (size != p->probe->len)
				{
					p->ok = false;
					p->detail = psprintf("the probe object has %lld bytes instead of %d",
										 (long long) size, p->probe->len);
				}
				else
					p->detail = psprintf("%lld bytes", (long long) size);
				break;
			}
		case STEP_READ:
			{
				StringInfoData back;

				if (!read_all(*p->st, p->name, &back, 1024 * 1024))
				{
					p->ok = false;
					p->detail = "the probe object could not be found when reading it back";
				}
				else if (back.len != p->probe->len || memcmp(back.data, p->probe->data, back.len) != 0)
				{
					p->ok = false;
					p->detail = psprintf("read back %d bytes that differ from the %d bytes written",
										 back.len, p->probe->len);
				}
				else
					p->detail = psprintf("read back %d identical bytes", back.len);
				break;
			}
		case STEP_DELETE:
			sf_storage_delete(*p->st, p->name);
			p->detail = "deleted the probe object";
			break;
		case STEP_GONE:
			{
				int64		size;

				if (sf_storage_head(*p->st, p->name, &size))
				{
					p->ok = false;
					p->detail = "the probe object is still there after deleting it";
				}
				else
					p->detail = "the probe object is gone";
				break;
			}
	}
}

/*
 * Run one probe step in a subtransaction, so that an error becomes a row
 * (with its message, detail and hint) instead of aborting the function.
 */
static bool
run_step(ReturnSetInfo *rsinfo, ProbeStep step, SfStorage **st,
		 const char *servername, const char *name, StringInfo probe)
{
	ProbeRun	p = {step, st, servername, name, probe, true, NULL};
	ErrorData  *edata = sf_run_subtransaction(probe_step, &p);

	if (edata)
	{
		StringInfoData d;

		initStringInfo(&d);
		appendStringInfo(&d, "%s (SQLSTATE %s)", edata->message,
						 unpack_sql_state(edata->sqlerrcode));
		if (edata->detail)
			appendStringInfo(&d, " %s", edata->detail);
		if (edata->hint)
			appendStringInfo(&d, " Hint: %s", edata->hint);
		p.detail = d.data;
		p.ok = false;
	}
	report_step(rsinfo, step_names[step], p.ok, p.detail);
	return p.ok;
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

/* ---------------------------------------------------------------------
 * SQL: sfexport.orphans(server) → (name, uploaded_at)
 * ---------------------------------------------------------------------
 */
PG_FUNCTION_INFO_V1(sfexport_orphans);

Datum
sfexport_orphans(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ForeignServer *server = GetForeignServerByName(NameStr(*PG_GETARG_NAME(0)), false);
	List	   *orphans;
	ListCell   *lc;

	/* listing uses the owner's credentials, so only the owner may */
	if (!has_privs_of_role(GetUserId(), server->owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be owner of server \"%s\" to list its orphaned files",
						server->servername),
				 errdetail("Listing the stage uses the credentials of the owner's user mapping.")));
	if (strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "sfexport") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not an sfexport server", server->servername)));

	InitMaterializedSRF(fcinfo, 0);
	if (sf_get_server_config(server->serverid)->keep_files)
		ereport(NOTICE,
				(errmsg("server \"%s\" keeps its files; they are never swept",
						server->servername)));
	orphans = sf_sweep_server(server->serverid, sfexport_orphan_grace_s, false, NULL, NULL);
	foreach(lc, orphans)
	{
		SfOrphan   *o = (SfOrphan *) lfirst(lc);
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(o->name);
		values[1] = TimestampTzGetDatum(o->at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
