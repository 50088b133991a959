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
 *	- its name has the form staged files get (file_names.c),
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
 * not listed: an error aborts them (flush.c), the end of the process too
 * (storage.c's exit callback), and after a SIGKILL or a crash an S3
 * lifecycle rule does (README, "Storage").
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
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "elevated.h"
#include "file_names.h"
#include "hashtab.h"
#include "storage.h"
#include "sweep.h"
#include "transaction.h"

int			sfexport_orphan_grace_s = 3600;
int			sfexport_orphan_sweep_interval_s = 3600;

/* next time the worker looks for servers to sweep; 0 = at its first housekeeping */
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
 * Is name recorded in the manifest?  In a transaction, SPI connected.
 * Read as the owner of sfexport.files (elevated.c): sfexport.orphans()
 * runs as the server's owner, who need not be allowed to read the
 * manifest of the whole database (README, Security).
 */
static bool
in_manifest(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	SfElevated	e;
	int			rc;

	sf_elevated_begin(&e, sf_extension_table_owner("files"));
	PG_TRY();
	{
		rc = SPI_execute_with_args("SELECT 1 FROM sfexport.files"
								   " WHERE name OPERATOR(pg_catalog.=) $1",
								   1, argtypes, values, NULL, true, 1);
	}
	PG_CATCH();
	{
		sf_elevated_end(&e, false);
		PG_RE_THROW();
	}
	PG_END_TRY();
	sf_elevated_end(&e, true);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.files");
	return SPI_processed > 0;
}

/*
 * The orphans of one server, optionally deleting them.  Runs in a
 * transaction; storage is accessed with the credentials of the server
 * owner's user mapping, as the worker does.  Returns a list of SfOrphan.
 * With bounds, the listing stays within them (and says whether it stopped
 * early, and where: the last name listed, in *last); without, the default
 * bounds of an interactive listing apply.
 */
List *
sf_sweep_server(Oid serverid, int grace_s, bool delete, SfListBounds *bounds, char **last)
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

	st = sf_storage_open(srv, sf_get_worker_user_config(serverid));
	if (bounds)
		names = sf_storage_list_bounded(st, psprintf("%u/", MyDatabaseId), bounds);
	else
		names = sf_storage_list(st, psprintf("%u/", MyDatabaseId));
	if (last)
		*last = names != NIL ? pstrdup((char *) llast(names)) : NULL;

	sf_spi_connect();
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
 *
 * Every server on its own schedule, within bounds, so that one server's
 * storage (down, slow, or paging without end) never holds back the others
 * or the worker's loads: a listing reads at most SF_LIST_MAX_PAGES pages in
 * at most SWEEP_SERVER_BUDGET_S seconds (every request, retries included,
 * ends by then); a listing stopped by a bound goes on from its last name
 * at the server's next turn, which comes sooner (SWEEP_PASS_BUDGET_S); a
 * server that fails is tried again after orphan_sweep_interval, doubled
 * per failure up to SWEEP_MAX_BACKOFF times; and a pass ends after
 * SWEEP_PASS_BUDGET_S, servers due longest first, the rest keeping their
 * turn for the next housekeeping pass.  A turn is counted from the end of
 * the server's last sweep with the interval as it is now (a changed
 * sfexport.orphan_sweep_interval applies at once); the servers the worker
 * finds at its first pass are swept then, one created later after an
 * interval, as when the worker swept all servers at once.
 * ---------------------------------------------------------------------
 */
#define SWEEP_SERVER_BUDGET_S	30
#define SWEEP_PASS_BUDGET_S		60
#define SWEEP_MAX_BACKOFF		8	/* times orphan_sweep_interval */

typedef struct SweepState
{
	Oid			serverid;		/* hash key */
	TimestampTz last;			/* end of its last sweep (0: never, due now) */
	int			failures;		/* in a row */
	char	   *resume;			/* listing stopped early: go on after this name
								 * (TopMemoryContext), or NULL */
	bool		seen;			/* still a server (per pass) */
} SweepState;

static HTAB *sweep_states = NULL;
static bool swept_once = false; /* the worker's first pass is done */

typedef struct SweepWork
{
	MemoryContext cxt;
	List	   *servers;		/* OIDs of sfexport servers */
	SweepState *state;			/* the server of sweep_unit */
	int			deleted;
	bool		truncated;
	char	   *last;			/* last name listed (cxt) */
} SweepWork;

static void
find_servers_unit(void *arg)
{
	SweepWork  *w = (SweepWork *) arg;

	sf_spi_connect();
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
	SfListBounds b;
	List	   *orphans;
	char	   *last = NULL;

	memset(&b, 0, sizeof(b));
	b.deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
											 SWEEP_SERVER_BUDGET_S * 1000L);
	b.start_after = w->state->resume;
	orphans = sf_sweep_server(w->state->serverid, sfexport_orphan_grace_s, true, &b, &last);
	w->deleted = list_length(orphans);
	w->truncated = b.truncated;
	w->last = last ? MemoryContextStrdup(w->cxt, last) : NULL;
	if (orphans != NIL)
		ereport(LOG,
				(errmsg("sfexport deleted %d orphaned file(s) from the stage of server \"%s\"",
						list_length(orphans), GetForeignServer(w->state->serverid)->servername),
				 errdetail("First: %s. Their uploads never committed, so no COPY could name them.",
						   ((SfOrphan *) linitial(orphans))->name)));
	if (b.truncated)
		ereport(LOG,
				(errmsg("sfexport orphan sweep of server \"%s\" stopped after %d listing requests",
						GetForeignServer(w->state->serverid)->servername, b.pages),
				 errdetail("A sweep lists at most %d pages in %d seconds per server; the next one goes on after \"%s\".",
						   SF_LIST_MAX_PAGES, SWEEP_SERVER_BUDGET_S, last ? last : "")));
}

/* When a server's turn comes, with the interval as it is now. */
static TimestampTz
turn_of(SweepState *s, int64 interval)
{
	if (s->last == 0)
		return 0;
	if (s->failures > 0)
		return s->last + interval * Min(1 << Min(s->failures - 1, 10), SWEEP_MAX_BACKOFF);
	if (s->resume)
		return s->last + Min(interval, (int64) SWEEP_PASS_BUDGET_S * USECS_PER_SEC);
	return s->last + interval;
}

static int64 sort_interval;		/* for cmp_turn */

static int
cmp_turn(const ListCell *a, const ListCell *b)
{
	TimestampTz x = turn_of((SweepState *) lfirst(a), sort_interval);
	TimestampTz y = turn_of((SweepState *) lfirst(b), sort_interval);

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * Worker housekeeping, outside a transaction: sweep the sfexport servers of
 * this database whose turn has come (see above).  A server whose storage
 * fails is reported (WARNING) and backs off.
 */
void
sf_sweep_periodic(void)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz pass_end = TimestampTzPlusMilliseconds(now, SWEEP_PASS_BUDGET_S * 1000L);
	int64		interval = (int64) sfexport_orphan_sweep_interval_s * USECS_PER_SEC;
	SweepWork	w;
	MemoryContext old;
	ListCell   *lc;
	List	   *due = NIL;
	HASH_SEQ_STATUS seq;
	SweepState *s;

	if (sfexport_orphan_sweep_interval_s <= 0 || now < next_sweep)
		return;
	/* look for servers at most once a housekeeping pass */
	next_sweep = TimestampTzPlusMilliseconds(now, 1000);

	if (sweep_states == NULL)
		sweep_states = sf_hash_create("sfexport orphan sweep", 16, sizeof(Oid),
									  sizeof(SweepState), TopMemoryContext);
	memset(&w, 0, sizeof(w));
	w.cxt = AllocSetContextCreate(TopMemoryContext, "sfexport orphan sweep",
								  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(w.cxt);
	if (!sf_run_transaction(find_servers_unit, &w, NULL))
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(w.cxt);
		return;
	}

	hash_seq_init(&seq, sweep_states);
	while ((s = hash_seq_search(&seq)) != NULL)
		s->seen = false;
	foreach(lc, w.servers)
	{
		Oid			serverid = lfirst_oid(lc);
		bool		found;

		s = hash_search(sweep_states, &serverid, HASH_ENTER, &found);
		if (!found)
		{
			s->last = swept_once ? now : 0;
			s->failures = 0;
			s->resume = NULL;
		}
		s->seen = true;
		if (turn_of(s, interval) <= now)
			due = lappend(due, s);
	}
	swept_once = true;
	/* forget dropped servers */
	hash_seq_init(&seq, sweep_states);
	while ((s = hash_seq_search(&seq)) != NULL)
	{
		if (!s->seen)
		{
			if (s->resume)
				pfree(s->resume);
			hash_search(sweep_states, &s->serverid, HASH_REMOVE, NULL);
		}
	}

	sort_interval = interval;
	list_sort(due, cmp_turn);
	foreach(lc, due)
	{
		s = (SweepState *) lfirst(lc);
		if (GetCurrentTimestamp() >= pass_end)
			break;				/* the others keep their turn */
		CHECK_FOR_INTERRUPTS();
		w.state = s;
		w.truncated = false;
		w.last = NULL;
		if (sf_run_transaction(sweep_unit, &w, NULL))
		{
			s->failures = 0;
			if (s->resume)
				pfree(s->resume);
			s->resume = NULL;
			/* more names: go on from the last one soon (turn_of) */
			if (w.truncated && w.last)
				s->resume = MemoryContextStrdup(TopMemoryContext, w.last);
		}
		else
			s->failures++;
		s->last = GetCurrentTimestamp();
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(w.cxt);
}
