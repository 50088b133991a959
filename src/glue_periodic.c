/*-------------------------------------------------------------------------
 *
 * glue_periodic.c
 *		The background worker's periodic Glue sync (glue_sync.c).
 *
 * The periodic sync runs on the worker's housekeeping pass: for each server
 * with glue_sync_interval and glue_databases, once the interval has elapsed,
 * each listed Glue database is synced in its own transaction with the user
 * mapping of the server's owner.  A database that fails (Glue unreachable,
 * a missing database, credentials refused) is recorded as failed in
 * sfexport.glue_sync_log, in a transaction of its own, and the next one is
 * synced regardless.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "glue_client.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_type_d.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "glue_periodic.h"
#include "glue_state.h"
#include "glue_sync.h"
#include "hashtab.h"
#include "transaction.h"

/* ---------------------------------------------------------------------
 * Periodic sync by the background worker
 * ---------------------------------------------------------------------
 */

typedef struct GlueDue
{
	Oid			serverid;		/* hash key */
	TimestampTz next_run;
} GlueDue;

static HTAB *glue_due = NULL;

typedef struct PeriodicWork
{
	List	   *servers;		/* Oid list of servers due now, in cxt */
	MemoryContext cxt;
} PeriodicWork;

typedef struct PeriodicCounts
{
	int			counts[9];		/* as names[] in count_action */
} PeriodicCounts;

static void
count_action(void *arg, const char *glue_table, const char *action,
			 const char *reason, const char *statement)
{
	PeriodicCounts *c = (PeriodicCounts *) arg;
	static const char *const names[] = {"created", "replaced", "unchanged", "dropped",
	"skipped", "altered", "refreshed", "repaired", "failed"};

	for (int i = 0; i < (int) lengthof(names); i++)
		if (strcmp(action, names[i]) == 0)
			c->counts[i]++;
	if ((strcmp(action, "skipped") == 0 || strcmp(action, "failed") == 0) && reason)
		ereport(DEBUG1,
				(errmsg_internal("sfexport glue sync skipped table \"%s\": %s",
								 sf_glue_shown_name(glue_table), reason)));
}

/* Which sfexport servers have a glue_sync_interval and are due. */
static void
find_due_servers(void *arg)
{
	PeriodicWork *w = (PeriodicWork *) arg;
	Oid			fdwid = get_foreign_data_wrapper_oid("sfexport", true);
	TimestampTz now = GetCurrentTimestamp();
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	if (!OidIsValid(fdwid) || !OidIsValid(get_extension_oid("sfexport", true)))
		return;
	rel = table_open(ForeignServerRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_foreign_server fs = (Form_pg_foreign_server) GETSTRUCT(tup);
		ForeignServer *server;
		ListCell   *lc;
		int			interval = 0;
		bool		has_dbs = false;
		GlueDue    *due;
		bool		found;

		if (fs->srvfdw != fdwid)
			continue;
		server = GetForeignServer(fs->oid);
		foreach(lc, server->options)
		{
			DefElem    *def = lfirst_node(DefElem, lc);

			if (strcmp(def->defname, "glue_sync_interval") == 0)
				(void) parse_int(defGetString(def), &interval, GUC_UNIT_S, NULL);
			else if (strcmp(def->defname, "glue_databases") == 0)
				has_dbs = true;
		}
		if (interval <= 0 || !has_dbs)
			continue;
		due = hash_search(glue_due, &fs->oid, HASH_ENTER, &found);
		if (!found)
			due->next_run = 0;
		if (now < due->next_run)
			continue;
		due->next_run = TimestampTzPlusMilliseconds(now, (int64) interval * 1000);
		{
			MemoryContext old = MemoryContextSwitchTo(w->cxt);

			w->servers = lappend_oid(w->servers, fs->oid);
			MemoryContextSwitchTo(old);
		}
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

typedef struct PeriodicOne
{
	Oid			serverid;
	char	   *database;
} PeriodicOne;

/* One Glue database of one server, in its own transaction. */
static void
periodic_one(void *arg)
{
	PeriodicOne *p = (PeriodicOne *) arg;
	ForeignServer *server = GetForeignServer(p->serverid);
	SfGlueSyncArgs a;
	PeriodicCounts c;

	memset(&c, 0, sizeof(c));
	memset(&a, 0, sizeof(a));
	a.serverid = p->serverid;
	a.userid = sf_worker_user(p->serverid);
	a.glue_database = p->database;
	a.pattern = "%";
	a.drop_missing = sf_get_glue_config(p->serverid)->drop_missing;
	a.periodic = true;
	sf_glue_sync_run(&a, count_action, &c);
	ereport(LOG,
			(errmsg("sfexport glue sync of server \"%s\", AWS Glue database \"%s\": %d created, %d replaced, %d altered, %d refreshed, %d repaired, %d unchanged, %d dropped, %d skipped, %d failed",
					server->servername, sf_glue_shown_name(p->database), c.counts[0], c.counts[1],
					c.counts[5], c.counts[6], c.counts[7], c.counts[2], c.counts[3], c.counts[4],
					c.counts[8])));
}

typedef struct PeriodicFailure
{
	Oid			serverid;
	char	   *database;
	char	   *message;
} PeriodicFailure;

/* A Glue database that could not be synced, in the log (glue_sync_status). */
static void
record_failure(void *arg)
{
	PeriodicFailure *f = (PeriodicFailure *) arg;

	sf_glue_sync_record_failure(f->serverid, f->database, f->message);
}

typedef struct PeriodicDbs
{
	Oid			serverid;
	List	   *databases;
	MemoryContext cxt;
} PeriodicDbs;

static void
read_databases(void *arg)
{
	PeriodicDbs *d = (PeriodicDbs *) arg;
	List	   *databases = sf_get_glue_config(d->serverid)->databases;
	ListCell   *lc;
	MemoryContext old;

	/*
	 * The list outlives the transaction (the caller walks it afterwards):
	 * its cells and names go into d->cxt, not the transaction's context,
	 * which is gone after the commit (a use-after-free ASan found in 051).
	 */
	old = MemoryContextSwitchTo(d->cxt);
	foreach(lc, databases)
		d->databases = lappend(d->databases, pstrdup((char *) lfirst(lc)));
	MemoryContextSwitchTo(old);
}

/*
 * Called by the background worker on each housekeeping pass, outside a
 * transaction.  For every sfexport server with the glue_sync_interval and
 * glue_databases options whose interval has elapsed, syncs each listed
 * Glue database (pattern '%', drop_missing from glue_drop_missing) with the
 * server owner's user mapping, each in its own transaction; failures are
 * logged as warnings and retried at the next interval.
 */
void
sf_glue_periodic(void)
{
	PeriodicWork w;
	MemoryContext cxt;
	MemoryContext old;
	ListCell   *lc;

	if (glue_due == NULL)
		glue_due = sf_hash_create("sfexport glue sync schedule", 16, sizeof(Oid),
								  sizeof(GlueDue), TopMemoryContext);
	cxt = AllocSetContextCreate(TopMemoryContext, "sfexport glue periodic",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	memset(&w, 0, sizeof(w));
	w.cxt = cxt;
	(void) sf_run_transaction(find_due_servers, &w, NULL);
	foreach(lc, w.servers)
	{
		PeriodicDbs d;
		ListCell   *dc;

		memset(&d, 0, sizeof(d));
		d.serverid = lfirst_oid(lc);
		d.cxt = cxt;
		if (!sf_run_transaction(read_databases, &d, NULL))
			continue;
		foreach(dc, d.databases)
		{
			PeriodicOne p;
			PeriodicFailure f;

			p.serverid = d.serverid;
			p.database = (char *) lfirst(dc);
			pgstat_report_activity(STATE_RUNNING, "sfexport glue sync");
			/* one database failing (Glue down, ...) leaves the others alone */
			f.message = NULL;
			if (!sf_run_transaction(periodic_one, &p, &f.message))
			{
				f.serverid = p.serverid;
				f.database = p.database;
				(void) sf_run_transaction(record_failure, &f, NULL);
			}
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}
