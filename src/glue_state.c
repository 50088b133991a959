/*-------------------------------------------------------------------------
 *
 * glue_state.c
 *		What the Glue sync applied and what it did: the tables
 *		sfexport.glue_sync_state and sfexport.glue_sync_log, which this
 *		file alone reads and writes (as their owner, elevated.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "glue_client.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "sfexport.h"

#include "elevated.h"
#include "glue_state.h"
#include "transaction.h"

/* ---------------------------------------------------------------------
 * Sync state (sfexport.glue_sync_state)
 *
 * Per server, Glue database, Glue table and target, the SHA-256 of the
 * CREATE EXTERNAL TABLE statement applied, so that an unchanged table is
 * not sent to Snowflake again.  The table is read and written through SPI
 * as its owner: callers of glue_sync need no privilege on it.  That is a
 * role switch, usually to a superuser, on behalf of any server owner: it
 * runs with the safe search_path, restricted (elevated.c), and the
 * statements are schema-qualified throughout.
 * ---------------------------------------------------------------------
 */

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
	Oid			owner = sf_extension_table_owner("glue_sync_state");
	Oid			types[12];
	Datum		values[12];
	char		nulls[12];
	MemoryContext caller = CurrentMemoryContext;
	volatile bool ok = false;
	int			rc;

	Assert(nargs <= 12);
	for (int i = 0; i < nargs; i++)
	{
		types[i] = TEXTOID;
		values[i] = args[i] ? CStringGetTextDatum(args[i]) : (Datum) 0;
		nulls[i] = args[i] ? ' ' : 'n';
	}
	sf_elevated_begin(&e, owner);
	PG_TRY();
	{
		sf_spi_connect();
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

/* A JSON array of strings (array_to_json of a text[]) as a List of char *. */
static List *
json_text_list(const char *text)
{
	json_t	   *arr;
	json_error_t jerr;
	size_t		i;
	json_t	   *v;
	List	   *out = NIL;

	if (text == NULL)
		return NIL;
	arr = json_loads(text, 0, &jerr);
	if (arr == NULL)
		return NIL;
	sf_json_tracked(arr);
	json_array_foreach(arr, i, v)
		if (json_is_string(v))
			out = lappend(out, pstrdup(json_string_value(v)));
	return out;
}

/* A List of char * as a JSON array text. */
static char *
list_json_text(List *l)
{
	json_t	   *arr = sf_json_tracked(json_array());
	ListCell   *lc;

	foreach(lc, l)
		json_array_append_new(arr, json_string((char *) lfirst(lc)));
	return sf_json_dumps(arr);
}

/* The rows of one server, Glue database and target, as GlueState *. */
List *
sf_glue_state_load(Oid serverid, const char *glue_db, const char *tdb, const char *tschema)
{
	const char *args[4] = {psprintf("%u", serverid), glue_db, tdb, tschema};
	List	   *rows = NIL;
	List	   *out = NIL;
	ListCell   *lc;
	MemoryContext caller = CurrentMemoryContext;

	state_exec("SELECT glue_table, target_table, definition_hash, shape_hash,"
			   " pg_catalog.array_to_json(columns)::pg_catalog.text,"
			   " pg_catalog.array_to_json(partitions)::pg_catalog.text"
			   " FROM sfexport.glue_sync_state"
			   " WHERE server OPERATOR(pg_catalog.=) $1::pg_catalog.oid"
			   "   AND glue_database OPERATOR(pg_catalog.=) $2"
			   "   AND target_database OPERATOR(pg_catalog.=) $3"
			   "   AND target_schema OPERATOR(pg_catalog.=) $4"
			   " ORDER BY glue_table",
			   4, args, &rows, 6);
	MemoryContextSwitchTo(caller);
	foreach(lc, rows)
	{
		char	  **row = (char **) lfirst(lc);
		GlueState  *st = palloc0(sizeof(GlueState));

		st->glue_table = row[0];
		st->target_table = row[1];
		st->hash = row[2];
		st->shape_hash = row[3];
		st->columns = json_text_list(row[4]);
		st->partitions = json_text_list(row[5]);
		st->partitions_known = row[5] != NULL;
		out = lappend(out, st);
	}
	return out;
}

/* Record (or update) what was applied for one Glue table and target. */
void
sf_glue_state_save(Oid serverid, const char *glue_db, const char *tdb, const char *tschema,
				GluePlan *plan, List *partitions, bool partitions_known)
{
	const char *args[10] = {psprintf("%u", serverid), glue_db, plan->glue_table, tdb,
		tschema, plan->target_table, plan->hash, plan->shape_hash,
		list_json_text(plan->columns),
	partitions_known ? list_json_text(partitions) : NULL};

	state_exec("INSERT INTO sfexport.glue_sync_state AS s (server, glue_database, glue_table,"
			   " target_database, target_schema, target_table, definition_hash, applied_at,"
			   " shape_hash, columns, partitions)"
			   " VALUES ($1::pg_catalog.oid, $2, $3, $4, $5, $6, $7, pg_catalog.now(), $8,"
			   " ARRAY(SELECT pg_catalog.json_array_elements_text($9::pg_catalog.json)),"
			   " CASE WHEN $10 IS NOT NULL THEN"
			   " ARRAY(SELECT pg_catalog.json_array_elements_text($10::pg_catalog.json)) END)"
			   " ON CONFLICT (server, glue_database, glue_table, target_database, target_schema)"
			   " DO UPDATE SET target_table = EXCLUDED.target_table,"
			   " definition_hash = EXCLUDED.definition_hash, applied_at = pg_catalog.now(),"
			   " shape_hash = EXCLUDED.shape_hash, columns = EXCLUDED.columns,"
			   " partitions = EXCLUDED.partitions",
			   10, args, NULL, 0);
}

/*
 * What one sync did to one Glue table, for the view glue_sync_status:
 * sfexport.glue_sync_log, one row per server, Glue database and table (""
 * for the Glue database as a whole, when reading it failed), written as the
 * table's owner like the state.  Reasons and errors hold Glue's and
 * Snowflake's messages and our own, never a credential.
 */
void
sf_glue_log_save(Oid serverid, const char *glue_db, const char *glue_table, const char *action,
			  const char *reason, bool periodic)
{
	const char *args[6] = {psprintf("%u", serverid), glue_db, glue_table ? glue_table : "",
	action, reason, periodic ? "true" : "false"};

	state_exec("INSERT INTO sfexport.glue_sync_log AS l (server, glue_database, glue_table,"
			   " synced_at, action, reason, periodic)"
			   " VALUES ($1::pg_catalog.oid, $2, $3, pg_catalog.now(), $4, $5, $6::pg_catalog.bool)"
			   " ON CONFLICT (server, glue_database, glue_table)"
			   " DO UPDATE SET synced_at = pg_catalog.now(), action = EXCLUDED.action,"
			   " reason = EXCLUDED.reason, periodic = EXCLUDED.periodic",
			   6, args, NULL, 0);
}

/*
 * After a sync of the tables matching pattern: the rows of the tables it
 * did not report (gone from Glue, never created) and of the database as a
 * whole (it was read) leave the log.
 */
void
sf_glue_log_forget(Oid serverid, const char *glue_db, const char *pattern, List *reported)
{
	const char *args[4] = {psprintf("%u", serverid), glue_db, pattern, list_json_text(reported)};

	state_exec("DELETE FROM sfexport.glue_sync_log"
			   " WHERE server OPERATOR(pg_catalog.=) $1::pg_catalog.oid"
			   "   AND glue_database OPERATOR(pg_catalog.=) $2"
			   "   AND (glue_table OPERATOR(pg_catalog.=) ''"
			   "        OR (pg_catalog.textlike(glue_table, $3)"
			   "            AND glue_table OPERATOR(pg_catalog.<>) ALL"
			   "                (ARRAY(SELECT pg_catalog.json_array_elements_text($4::pg_catalog.json)))))",
			   4, args, NULL, 0);
}

/*
 * The periodic sync could not sync a Glue database at all (Glue or
 * Snowflake unreachable, credentials refused, ...): say so in the log, in
 * the row of the database as a whole.  Runs in a transaction of its own
 * (glue_periodic.c).
 */
void
sf_glue_sync_record_failure(Oid serverid, const char *glue_db, const char *message)
{
	sf_glue_log_save(serverid, glue_db, "", "failed", message, true);
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
