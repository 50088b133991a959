/*-------------------------------------------------------------------------
 *
 * merge_apply.c
 *		The worker's apply of tracked tables (docs/tracking.md): after the
 *		changes of a tracked table were loaded into its changes table in
 *		Snowflake (the ordinary COPY path, exactly once), merge them into the
 *		mirror and delete them, in one Snowflake transaction (track.c makes
 *		the request).
 *
 * Which changes may be merged now: only those numbered below every change
 * of the table that has not reached the changes table yet.  Two changes of
 * one key are numbered in the order they happened (track.c), but they may
 * be staged in different files, or the earlier one may still sit in the
 * outbox (a segment drained later, a file that failed): merging the later
 * one first, then the earlier one, would leave the older row.  So:
 *
 *	- a file of the changes table that is not loaded yet (staged, failed,
 *	  submitted) holds the apply of that table back entirely: its numbers
 *	  are unknown here (a failed file stops the mirror, visibly, rather
 *	  than letting it skip changes);
 *	- the rows still in the outbox give the bound: the smallest _sf_seq
 *	  among them (the second field of their CSV records, rendered first
 *	  where the row was captured in binary form).  Changes at or above it
 *	  stay in the changes table for a later round.
 *
 * A change committed later but numbered lower than the bound cannot
 * concern a key merged now: its key's later changes would have waited for
 * its commit.
 *
 * Exactly once: the merged changes are deleted in the transaction that
 * merged them, so a request repeated after a crash (at any point: before
 * Snowflake committed, or after it but before we knew) finds nothing of
 * them left; the SQL API's requestId retry returns the first answer.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "sfexport.h"

#include "config.h"
#include "evolve.h"
#include "merge_apply.h"
#include "snowflake.h"
#include "track.h"
#include "transaction.h"

/* What the worker remembers of a changes table between rounds. */
typedef struct ApplyState
{
	Oid			relid;
	int64		last_file;		/* newest loaded file at the last apply */
	bool		held_back;		/* the last apply left changes above a bound */
} ApplyState;

static List *apply_states = NIL;	/* ApplyState *, in TopMemoryContext */

static ApplyState *
apply_state(Oid relid)
{
	ListCell   *lc;
	ApplyState *st;
	MemoryContext old;

	foreach(lc, apply_states)
		if (((ApplyState *) lfirst(lc))->relid == relid)
			return (ApplyState *) lfirst(lc);
	old = MemoryContextSwitchTo(TopMemoryContext);
	st = palloc0(sizeof(ApplyState));
	st->relid = relid;
	st->last_file = -1;			/* unknown: apply once after a start */
	st->held_back = true;
	apply_states = lappend(apply_states, st);
	MemoryContextSwitchTo(old);
	return st;
}

typedef struct ListArgs
{
	MemoryContext cxt;
	List	   *relids;			/* Oid list */
} ListArgs;

/* The changes foreign tables of this database (options merge_into). */
static void
list_unit(void *arg)
{
	ListArgs   *a = (ListArgs *) arg;

	sf_spi_connect();
	if (SPI_execute("SELECT ft.ftrelid"
					"  FROM pg_catalog.pg_foreign_table ft"
					"  JOIN pg_catalog.pg_foreign_server s ON s.oid OPERATOR(pg_catalog.=) ft.ftserver"
					"  JOIN pg_catalog.pg_foreign_data_wrapper w ON w.oid OPERATOR(pg_catalog.=) s.srvfdw"
					" WHERE w.fdwname OPERATOR(pg_catalog.=) 'sfexport'"
					"   AND EXISTS (SELECT 1 FROM pg_catalog.pg_options_to_table(ft.ftoptions) o"
					"                WHERE o.option_name OPERATOR(pg_catalog.=) 'merge_into')"
					" ORDER BY ft.ftrelid",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the changes tables");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 1, &isnull));
		MemoryContext old = MemoryContextSwitchTo(a->cxt);

		a->relids = lappend_oid(a->relids, relid);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
}

/* One value of a one-row, one-column query with an OID parameter; NULL if null. */
static char *
query_value(const char *sql, Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	if (SPI_execute_with_args(sql, 1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read the state of changes table %u", relid);
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

/* Apply one changes table, if anything may have arrived since the last time. */
static void
apply_unit(void *arg)
{
	ApplyState *st = (ApplyState *) arg;
	char	   *pending;
	char	   *newest;
	char	   *lowest;
	int64		last_file;
	int64		bound;
	SfServerConfig *srv;
	SfUserConfig *usr;
	SfStatement stmt;
	ArrayType  *columns;
	ArrayType  *types;
	char	   *history;
	SfSnowflakeResult *wm;
	int64		batch;
	int			n;

	if (get_rel_relkind(st->relid) != RELKIND_FOREIGN_TABLE ||
		sf_track_info(st->relid, true) == NULL)
		return;					/* dropped or untracked meanwhile */

	sf_spi_connect();
	pending = query_value("SELECT pg_catalog.count(*) FROM sfexport.files"
						  " WHERE relid OPERATOR(pg_catalog.=) $1"
						  "   AND state OPERATOR(pg_catalog.<>) 'loaded'", st->relid);
	newest = query_value("SELECT pg_catalog.max(file_id) FROM sfexport.files"
						 " WHERE relid OPERATOR(pg_catalog.=) $1", st->relid);
	last_file = newest ? pg_strtoint64(newest) : 0;
	if (strcmp(pending, "0") != 0 || (last_file == st->last_file && !st->held_back))
	{
		SPI_finish();
		return;
	}
	/*
	 * A record begins "<op>",<_sf_seq>, (CSV, text enclosed: encode.c); a
	 * payload in binary form (first byte 0x01, encode.c) is rendered to its
	 * record first, as the flush would.
	 */
	lowest = query_value("SELECT pg_catalog.min(pg_catalog.substring("
						 "         CASE WHEN pg_catalog.substring(line, 1, 1) OPERATOR(pg_catalog.=) '\\x22'::pg_catalog.bytea"
						 "              THEN pg_catalog.encode(pg_catalog.substring(line, 1, 32), 'escape')"
						 "              ELSE sfexport.outbox_record(relid, shape, line) END,"
						 "         '^\"[IUDTS]\",([0-9]+),')::pg_catalog.int8)"
						 "  FROM sfexport.outbox WHERE relid OPERATOR(pg_catalog.=) $1", st->relid);
	bound = lowest ? pg_strtoint64(lowest) : PG_INT64_MAX;
	SPI_finish();

	srv = sf_get_server_config(sf_get_table_config(st->relid)->serverid);
	usr = sf_get_worker_user_config(srv->serverid);
	/* columns added to the tracked table: to the mirror too, as before a COPY */
	if (sf_track_info(st->relid, false)->mirror)
	{
		sf_track_mirror_columns(st->relid, false, &columns, &types);
		sf_evolve_target(srv, usr, sf_track_target_name(srv, st->relid), columns, types);
	}
	if ((history = sf_track_history_name(srv, st->relid)) != NULL)
	{
		sf_track_mirror_columns(st->relid, true, &columns, &types);
		sf_evolve_target(srv, usr, history, columns, types);
	}

	/* the batch number this request advances (track.c: the fence) */
	wm = sf_snowflake_execute(srv, usr, sf_track_watermark_query(srv, st->relid), 0, NULL, NULL);
	if (wm->nrows != 1 || wm->ncolumns != 2 || wm->rows[0][0] == NULL ||
		strcmp(wm->rows[0][1], "1") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the batch number table of %s does not hold one row",
						get_rel_name(st->relid)),
				 errdetail("Each merge advances the one row of %s.",
						   sf_track_watermark_name(srv, st->relid)),
				 errhint("Run sfexport.setup_table() on the tracked table.")));
	batch = pg_strtoint64(wm->rows[0][0]);

	memset(&stmt, 0, sizeof(stmt));
	stmt.sql = sf_track_apply_sql(srv, st->relid, bound, batch, &n);
	stmt.multi_statements = n;
	stmt.query_tag = "sfexport merge";
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("merging the changes of %s", get_rel_name(st->relid)));
	(void) sf_snowflake_run(srv, usr, &stmt);

	st->last_file = last_file;
	st->held_back = lowest != NULL;
}

/*
 * Merge the loaded changes of every tracked table, one Snowflake request
 * and one local transaction per table.  Returns the number that failed
 * (each reported as a WARNING; tried again next round).
 */
int
sf_merge_apply(void)
{
	ListArgs	la;
	ListCell   *lc;
	int			failures = 0;

	la.cxt = CurrentMemoryContext;
	la.relids = NIL;
	if (!sf_run_transaction(list_unit, &la, NULL))
		return 1;
	foreach(lc, la.relids)
	{
		ApplyState *st = apply_state(lfirst_oid(lc));

		CHECK_FOR_INTERRUPTS();
		if (!sf_run_transaction(apply_unit, st, NULL))
		{
			failures++;
			sf_evolve_forget(); /* check the mirror again next time */
			st->held_back = true;	/* try again next round */
		}
	}
	return failures;
}
