/*-------------------------------------------------------------------------
 *
 * glue_periodic.c
 *		The state of sfexport.glue_sync (sfexport.glue_sync_state) and the
 *		background worker's periodic Glue sync.
 *
 * glue_sync (glue.c) remembers, per server, Glue database, Glue table and
 * target, the SHA-256 of the CREATE EXTERNAL TABLE statement it applied, so
 * that an unchanged table is not sent to Snowflake again.  The table is read
 * and written through SPI as its owner: callers of glue_sync need no
 * privilege on it.  That is a role switch, usually to a superuser, on
 * behalf of any server owner: it runs with the safe search_path, restricted
 * (elevated.c), and the statements are schema-qualified throughout.
 *
 * The periodic sync runs on the worker's housekeeping pass: for each server
 * with glue_sync_interval and glue_databases, once the interval has elapsed,
 * each listed Glue database is synced in its own transaction with the user
 * mapping of the server's owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

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

/* ---------------------------------------------------------------------
 * Sync state (sfexport.glue_sync_state), read and written through SPI as
 * the table's owner: callers need not have privileges on it.
 * ---------------------------------------------------------------------
 */

static Oid
state_owner(void)
{
	Oid			relid = get_relname_relid("glue_sync_state",
										  get_namespace_oid(SFEXPORT_SCHEMA, false));
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table sfexport.glue_sync_state does not exist")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Run one statement with text parameters as the state table's owner, with
 * the safe search_path and SECURITY_RESTRICTED_OPERATION (elevated.c): the
 * caller of glue_sync chose its own search_path, and the owner is usually
 * a superuser.  The statements name everything with its schema as well.
 */
static void
state_exec(const char *sql, int nargs, const char **args, List **rows, int ncols)
{
	SfElevated	e;
	Oid			owner = state_owner();
	Oid			types[8];
	Datum		values[8];
	char		nulls[8];
	MemoryContext caller = CurrentMemoryContext;
	volatile bool ok = false;
	int			rc;

	Assert(nargs <= 8);
	for (int i = 0; i < nargs; i++)
	{
		types[i] = TEXTOID;
		values[i] = args[i] ? CStringGetTextDatum(args[i]) : (Datum) 0;
		nulls[i] = args[i] ? ' ' : 'n';
	}
	sf_elevated_begin(&e, owner);
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
		if (rc < 0)
			elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
		if (rows)
		{
			for (uint64 r = 0; r < SPI_processed; r++)
			{
				char	  **row = MemoryContextAllocZero(caller, sizeof(char *) * ncols);

				for (int j = 0; j < ncols; j++)
				{
					char	   *v = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, j + 1);

					row[j] = v ? MemoryContextStrdup(caller, v) : NULL;
				}
				/* the list must outlive SPI_finish too */
				{
					MemoryContext spi = MemoryContextSwitchTo(caller);

					*rows = lappend(*rows, row);
					MemoryContextSwitchTo(spi);
				}
			}
		}
		SPI_finish();
		ok = true;
	}
	PG_FINALLY();
	{
		sf_elevated_end(&e, ok);
	}
	PG_END_TRY();
}

/* The rows of one server, Glue database and target, as SfGlueState *. */
List *
sf_glue_state_load(Oid serverid, const char *glue_db, const char *tdb, const char *tschema)
{
	const char *args[4] = {psprintf("%u", serverid), glue_db, tdb, tschema};
	List	   *rows = NIL;
	List	   *out = NIL;
	ListCell   *lc;
	MemoryContext caller = CurrentMemoryContext;

	state_exec("SELECT glue_table, target_table, definition_hash FROM sfexport.glue_sync_state"
			   " WHERE server OPERATOR(pg_catalog.=) $1::pg_catalog.oid"
			   "   AND glue_database OPERATOR(pg_catalog.=) $2"
			   "   AND target_database OPERATOR(pg_catalog.=) $3"
			   "   AND target_schema OPERATOR(pg_catalog.=) $4"
			   " ORDER BY glue_table",
			   4, args, &rows, 3);
	MemoryContextSwitchTo(caller);
	foreach(lc, rows)
	{
		char	  **row = (char **) lfirst(lc);
		SfGlueState  *st = palloc0(sizeof(SfGlueState));

		st->glue_table = row[0];
		st->target_table = row[1];
		st->hash = row[2];
		out = lappend(out, st);
	}
	return out;
}

/* Record (or update) what was applied for one Glue table and target. */
void
sf_glue_state_save(Oid serverid, const char *glue_db, const char *tdb, const char *tschema,
				   const char *glue_table, const char *target_table, const char *hash)
{
	const char *args[7] = {psprintf("%u", serverid), glue_db, glue_table, tdb,
	tschema, target_table, hash};

	state_exec("INSERT INTO sfexport.glue_sync_state AS s (server, glue_database, glue_table,"
			   " target_database, target_schema, target_table, definition_hash, applied_at)"
			   " VALUES ($1::pg_catalog.oid, $2, $3, $4, $5, $6, $7, pg_catalog.now())"
			   " ON CONFLICT (server, glue_database, glue_table, target_database, target_schema)"
			   " DO UPDATE SET target_table = EXCLUDED.target_table,"
			   " definition_hash = EXCLUDED.definition_hash, applied_at = pg_catalog.now()",
			   7, args, NULL, 0);
}

/* Forget one Glue table of a target (its external table was dropped). */
void
sf_glue_state_delete(Oid serverid, const char *glue_db, const char *tdb, const char *tschema,
			 const char *glue_table)
{
	const char *args[5] = {psprintf("%u", serverid), glue_db, glue_table, tdb, tschema};

	state_exec("DELETE FROM sfexport.glue_sync_state"
			   " WHERE server OPERATOR(pg_catalog.=) $1::pg_catalog.oid"
			   "   AND glue_database OPERATOR(pg_catalog.=) $2"
			   "   AND glue_table OPERATOR(pg_catalog.=) $3"
			   "   AND target_database OPERATOR(pg_catalog.=) $4"
			   "   AND target_schema OPERATOR(pg_catalog.=) $5",
			   5, args, NULL, 0);
}

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
	int			counts[5];		/* created, replaced, unchanged, dropped, skipped */
} PeriodicCounts;

static void
count_action(void *arg, const char *glue_table, const char *action,
			 const char *reason, const char *statement)
{
	PeriodicCounts *c = (PeriodicCounts *) arg;
	static const char *const names[] = {"created", "replaced", "unchanged", "dropped", "skipped"};

	for (int i = 0; i < 5; i++)
		if (strcmp(action, names[i]) == 0)
			c->counts[i]++;
	if (strcmp(action, "skipped") == 0 && reason)
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
	List	   *databases;

	memset(&c, 0, sizeof(c));
	memset(&a, 0, sizeof(a));
	a.serverid = p->serverid;
	a.userid = server->owner;
	a.glue_database = p->database;
	a.pattern = "%";
	sf_glue_periodic_options(p->serverid, &databases, &a.drop_missing);
	sf_glue_sync_run(&a, count_action, &c);
	ereport(LOG,
			(errmsg("sfexport glue sync of server \"%s\", AWS Glue database \"%s\": %d created, %d replaced, %d unchanged, %d dropped, %d skipped",
					server->servername, sf_glue_shown_name(p->database), c.counts[0], c.counts[1],
					c.counts[2], c.counts[3], c.counts[4])));
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
	List	   *databases;
	bool		drop_missing;
	ListCell   *lc;
	MemoryContext old;

	sf_glue_periodic_options(d->serverid, &databases, &drop_missing);

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
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(GlueDue);
		glue_due = hash_create("sfexport glue sync schedule", 16, &ctl,
							   HASH_ELEM | HASH_BLOBS);
	}
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

			p.serverid = d.serverid;
			p.database = (char *) lfirst(dc);
			pgstat_report_activity(STATE_RUNNING, "sfexport glue sync");
			(void) sf_run_transaction(periodic_one, &p, NULL);
		}
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}
