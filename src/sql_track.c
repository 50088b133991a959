/*-------------------------------------------------------------------------
 *
 * sql_track.c
 *		What PostgreSQL calls for tracked tables (docs/tracking.md): the row
 *		and TRUNCATE triggers that capture changes (sfexport.track_row_trigger,
 *		sfexport.track_truncate_trigger) and one chunk of the initial snapshot
 *		(sfexport.snapshot_chunk).  sfexport.track(), untrack() and
 *		snapshot() are SQL (sfexport--0.2.0.sql).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "sfexport.h"

#include "track.h"
#include "transaction.h"

PG_FUNCTION_INFO_V1(sfexport_track_row);
PG_FUNCTION_INFO_V1(sfexport_track_truncate);
PG_FUNCTION_INFO_V1(sfexport_track_snapshot_chunk);

/*
 * The changes table of this trigger, named by its two arguments (schema,
 * name), looked up at its first call in the query and kept in fn_extra.
 * What a change needs besides is cached across statements
 * (sf_track_capture_row).
 */
static Oid
trigger_changes_table(FunctionCallInfo fcinfo, TriggerData *td)
{
	Trigger    *trig = td->tg_trigger;
	Oid			nspid;
	Oid			changes;

	if (fcinfo->flinfo->fn_extra)
		return *(Oid *) fcinfo->flinfo->fn_extra;
	if (trig->tgnargs != 2)
		ereport(ERROR,
				(errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
				 errmsg("trigger \"%s\" of table \"%s\" needs two arguments", trig->tgname,
						RelationGetRelationName(td->tg_relation)),
				 errdetail("The arguments are the schema and the name of the changes foreign table."),
				 errhint("Track the table again: sfexport.untrack(), then sfexport.track().")));
	nspid = get_namespace_oid(trig->tgargs[0], true);
	changes = OidIsValid(nspid) ? get_relname_relid(trig->tgargs[1], nspid) : InvalidOid;
	if (!OidIsValid(changes))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("changes table %s of tracked table \"%s\" does not exist",
						quote_qualified_identifier(trig->tgargs[0], trig->tgargs[1]),
						RelationGetRelationName(td->tg_relation)),
				 errdetail("The changes of a tracked table go through its changes foreign table; none was written."),
				 errhint("Stop tracking with sfexport.untrack(), or track it again.")));

	fcinfo->flinfo->fn_extra = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(Oid));
	*(Oid *) fcinfo->flinfo->fn_extra = changes;
	return changes;
}

static TriggerData *
check_trigger(FunctionCallInfo fcinfo, bool row)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event) ||
		(row ? !TRIGGER_FIRED_FOR_ROW(td->tg_event) : !TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s must be an AFTER %s trigger", row ? "sfexport.track_row_trigger" : "sfexport.track_truncate_trigger",
						row ? "INSERT OR UPDATE OR DELETE FOR EACH ROW" : "TRUNCATE"),
				 errhint("Use sfexport.track() to create the triggers.")));
	return td;
}

/* AFTER INSERT OR UPDATE OR DELETE FOR EACH ROW: the change into the outbox */
Datum
sfexport_track_row(PG_FUNCTION_ARGS)
{
	TriggerData *td = check_trigger(fcinfo, true);
	Oid			changes = trigger_changes_table(fcinfo, td);

	if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
		sf_track_capture_row(td->tg_relation, changes, SF_TRACK_INSERT, td->tg_trigtuple, NULL);
	else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
		sf_track_capture_row(td->tg_relation, changes, SF_TRACK_DELETE, td->tg_trigtuple, NULL);
	else
		sf_track_capture_row(td->tg_relation, changes, SF_TRACK_UPDATE, td->tg_trigtuple,
							 td->tg_newtuple);
	return PointerGetDatum(NULL);
}

/* AFTER TRUNCATE FOR EACH STATEMENT: one T change */
Datum
sfexport_track_truncate(PG_FUNCTION_ARGS)
{
	TriggerData *td = check_trigger(fcinfo, false);

	sf_track_capture_row(td->tg_relation, trigger_changes_table(fcinfo, td),
						 SF_TRACK_TRUNCATE, NULL, NULL);
	return PointerGetDatum(NULL);
}

/* The owner of relation relid. */
static Oid
rel_owner(Oid relid)
{
	HeapTuple	tp = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tp))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid),
				 errhint("Name an existing table.")));
	owner = ((Form_pg_class) GETSTRUCT(tp))->relowner;
	ReleaseSysCache(tp);
	return owner;
}

/*
 * sfexport.snapshot_chunk(tbl regclass, first_block bigint,
 * nblocks bigint) returns bigint: every row of tbl stored in blocks
 * [first_block, first_block + nblocks) becomes an S change (an upsert),
 * read FOR SHARE, in the caller's transaction; returns how many.
 *
 * Why this is consistent with the changes that run meanwhile (the table
 * is tracked, its triggers committed, before the first chunk): FOR SHARE
 * waits for a transaction that changed the row and reads its newest
 * version, and holds off later changes until this transaction ends, so
 * the S change of a row is numbered after every change it includes and
 * before every change it does not.  A row an UPDATE moves to a block
 * already read, or one inserted later, arrives through its trigger; a row
 * read twice is upserted twice with the same values.  See docs/tracking.md.
 * Runs as the caller, with the caller's privileges on tbl.
 */
Datum
sfexport_track_snapshot_chunk(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int64		first = PG_GETARG_INT64(1);
	int64		nblocks = PG_GETARG_INT64(2);
	Oid			changes = sf_track_changes_of(relid, false);
	char	   *relname = get_rel_name(relid);
	char	   *sql;
	SfTrackCapture *c = NULL;
	MemoryContext rowcxt;
	MemoryContext caller = CurrentMemoryContext;
	Portal		portal;
	int64		rows = 0;

	if (!has_privs_of_role(GetUserId(), rel_owner(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to snapshot table \"%s\"", relname),
				 errdetail("A snapshot writes every row of the table into its changes."),
				 errhint("Only the table's owner may run it.")));
	if (first < 0 || nblocks <= 0 || first > (int64) MaxBlockNumber)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid block range " INT64_FORMAT " + " INT64_FORMAT, first, nblocks),
				 errdetail("The first block must be between 0 and %u and the count positive.", MaxBlockNumber),
				 errhint("Call sfexport.snapshot(), which walks the table.")));
	sql = psprintf("SELECT * FROM ONLY %s WHERE ctid >= '(" INT64_FORMAT ",0)'::pg_catalog.tid"
				   " AND ctid < '(" INT64_FORMAT ",0)'::pg_catalog.tid FOR SHARE",
				   quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), relname),
				   first, Min(first + nblocks, (int64) MaxBlockNumber));

	rowcxt = AllocSetContextCreate(caller, "sfexport snapshot row", ALLOCSET_DEFAULT_SIZES);
	sf_spi_connect();
	portal = SPI_cursor_open_with_args(NULL, sql, 0, NULL, NULL, NULL, false, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		if (c == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(caller);

			c = sf_track_capture_begin(changes, SPI_tuptable->tupdesc, rel_owner(relid));
			MemoryContextSwitchTo(old);
		}
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(rowcxt);

			CHECK_FOR_INTERRUPTS();
			sf_track_capture_put(c, SF_TRACK_SNAPSHOT, SPI_tuptable->vals[i]);
			MemoryContextSwitchTo(old);
			MemoryContextReset(rowcxt);
			rows++;
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextDelete(rowcxt);
	PG_RETURN_INT64(rows);
}
