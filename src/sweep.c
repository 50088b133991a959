/*-------------------------------------------------------------------------
 *
 * sweep.c
 *		Find and delete orphaned objects: files this database uploaded whose
 *		staging transaction never committed.
 *
 * flush.c uploads a file first and records it in the manifest
 * (sfexport.files) in the transaction that removes its rows from the
 * outbox.  A crash, an error or a promotion between the upload and that
 * commit leaves an object that no manifest row names.  No COPY ever names
 * it (load.c only loads files from the manifest), so it is never loaded;
 * its rows are still in the outbox and go into another file.  This file
 * removes such objects (README.md, "Delivery guarantees", 2: an upload
 * that never commits is an orphan no COPY names, and the worker deletes it).
 *
 * An object is an orphan when all of these hold:
 *	- its name has the form flush.c gives names,
 *	  <dboid>/<relid>/<UTC time>_<system identifier>_<timeline>_<random><ext>,
 *	  with this database's OID and this cluster's system identifier (a
 *	  standby promoted from this cluster has the same one; another cluster
 *	  sharing the location never matches);
 *	- the time in its name is older than sfexport.orphan_grace;
 *	- no row of sfexport.files has its name;
 *	- its server does not keep files (keep_files): files kept after loading
 *	  may outlive their manifest rows (sfexport.manifest_retention).
 *
 * Only the worker deletes, between its units of work: it is the only
 * process of this database that uploads files, so no staging transaction
 * can be in flight while it sweeps and the grace period only has to cover
 * other processes (an old primary still finishing an upload after a
 * promotion).  sfexport.orphans() lists the orphans of a server without
 * deleting anything, for the DBA.
 *
 * Multipart uploads that a crash left incomplete are not objects and are
 * not listed; an S3 lifecycle rule aborts them (README, "Storage").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "sfexport.h"

int			sfexport_orphan_grace_s = 3600;
int			sfexport_orphan_sweep_interval_s = 3600;

/* next time the worker sweeps; 0 = at its first housekeeping */
static TimestampTz next_sweep = 0;

void
sf_sweep_define_gucs(void)
{
	DefineCustomIntVariable("sfexport.orphan_grace",
							"Age below which an uploaded file that no manifest row names is not treated as an orphan.",
							"Counted from the time in the file's name, when its upload began.",
							&sfexport_orphan_grace_s,
							3600, 1, INT_MAX / 1000,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("sfexport.orphan_sweep_interval",
							"How often the worker deletes orphaned files from the stage (0 disables).",
							NULL,
							&sfexport_orphan_sweep_interval_s,
							3600, 0, INT_MAX / 1000,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);
}

/*
 * Parse a file name made by flush.c's new_file_name().  Returns false for
 * any other name.  *at is the time in the name; *sysid the system
 * identifier.
 */
bool
sf_parse_file_name(const char *name, Oid *dboid, TimestampTz *at, uint64 *sysid)
{
	unsigned int db,
				rel,
				tli,
				rnd;
	int			y,
				mo,
				d,
				h,
				mi,
				s,
				us;
	unsigned long long id;
	int			consumed = -1;
	struct pg_tm tm;

	if (sscanf(name, "%10u/%10u/%4d%2d%2dT%2d%2d%2d.%6dZ_%20llu_%10u_%8x%n",
			   &db, &rel, &y, &mo, &d, &h, &mi, &s, &us, &id, &tli, &rnd,
			   &consumed) != 12 || consumed < 0)
		return false;
	/* what follows is the extension: nothing, or ".csv..." */
	if (name[consumed] != '\0' && name[consumed] != '.')
		return false;
	if (strchr(name + consumed, '/') != NULL)
		return false;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y;
	tm.tm_mon = mo;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 ||
		us < 0 || us >= USECS_PER_SEC ||
		tm2timestamp(&tm, us, NULL, at) != 0)
		return false;
	*dboid = (Oid) db;
	*sysid = (uint64) id;
	return true;
}

/* Is name recorded in the manifest?  In a transaction, SPI connected. */
static bool
in_manifest(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	if (SPI_execute_with_args("SELECT 1 FROM sfexport.files WHERE name = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.files");
	return SPI_processed > 0;
}

/*
 * The orphans of one server, optionally deleting them.  Runs in a
 * transaction; storage is accessed with the credentials of the server
 * owner's user mapping, as the worker does.  Returns a list of SfOrphan.
 */
List *
sf_sweep_server(Oid serverid, int grace_s, bool delete)
{
	SfServerConfig *srv = sf_get_server_config(serverid);
	SfStorage  *st;
	List	   *names;
	List	   *out = NIL;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz horizon = now - (int64) grace_s * USECS_PER_SEC;
	uint64		sysid = GetSystemIdentifier();

	if (srv->keep_files)
		return NIL;

	st = sf_storage_open(srv, sf_get_user_config(serverid, sf_worker_user(serverid)));
	names = sf_storage_list(st, psprintf("%u/", MyDatabaseId));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	foreach(lc, names)
	{
		const char *name = (const char *) lfirst(lc);
		Oid			dboid;
		TimestampTz at;
		uint64		id;
		SfOrphan   *o;

		CHECK_FOR_INTERRUPTS();
		if (!sf_parse_file_name(name, &dboid, &at, &id) ||
			dboid != MyDatabaseId || id != sysid || at > horizon ||
			in_manifest(name))
			continue;
		if (delete)
		{
			pgstat_report_activity(STATE_RUNNING,
								   psprintf("deleting orphaned file %s", name));
			sf_storage_delete(st, name);
		}
		o = palloc(sizeof(SfOrphan));
		o->name = pstrdup(name);
		o->at = at;
		out = lappend(out, o);
	}
	SPI_finish();
	return out;
}

/* ---------------------------------------------------------------------
 * The worker's periodic sweep
 * ---------------------------------------------------------------------
 */
typedef struct SweepWork
{
	MemoryContext cxt;
	List	   *servers;		/* OIDs of sfexport servers */
	Oid			serverid;		/* the server of sweep_unit */
	int			deleted;
} SweepWork;

static void
find_servers_unit(void *arg)
{
	SweepWork  *w = (SweepWork *) arg;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT s.oid FROM pg_catalog.pg_foreign_server s"
					" JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid = s.srvfdw"
					" WHERE w.fdwname = 'sfexport' ORDER BY s.oid",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_foreign_server");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			oid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));
		MemoryContext old = MemoryContextSwitchTo(w->cxt);

		w->servers = lappend_oid(w->servers, oid);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
}

static void
sweep_unit(void *arg)
{
	SweepWork  *w = (SweepWork *) arg;
	List	   *orphans = sf_sweep_server(w->serverid, sfexport_orphan_grace_s, true);

	w->deleted = list_length(orphans);
	if (orphans != NIL)
		ereport(LOG,
				(errmsg("sfexport deleted %d orphaned file(s) from the stage of server \"%s\"",
						list_length(orphans), GetForeignServer(w->serverid)->servername),
				 errdetail("First: %s. Their uploads never committed, so no COPY could name them.",
						   ((SfOrphan *) linitial(orphans))->name)));
}

/*
 * Worker housekeeping, outside a transaction: sweep every sfexport server
 * of this database once per sfexport.orphan_sweep_interval.  A server whose
 * storage fails is reported (WARNING) and tried again next time.
 */
void
sf_sweep_periodic(void)
{
	TimestampTz now = GetCurrentTimestamp();
	SweepWork	w;
	MemoryContext old;
	ListCell   *lc;

	if (sfexport_orphan_sweep_interval_s <= 0 || now < next_sweep)
		return;
	next_sweep = now + (int64) sfexport_orphan_sweep_interval_s * USECS_PER_SEC;

	memset(&w, 0, sizeof(w));
	w.cxt = AllocSetContextCreate(TopMemoryContext, "sfexport orphan sweep",
								  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(w.cxt);
	(void) sf_run_transaction(find_servers_unit, &w, NULL);
	foreach(lc, w.servers)
	{
		w.serverid = lfirst_oid(lc);
		(void) sf_run_transaction(sweep_unit, &w, NULL);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(w.cxt);
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
	orphans = sf_sweep_server(server->serverid, sfexport_orphan_grace_s, false);
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
