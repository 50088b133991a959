/*-------------------------------------------------------------------------
 *
 * fdw.c
 *		The sfexport foreign-data wrapper: its handler and its validator
 *		(the option rules are options.c's).  sfexport foreign tables
 *		are write-only: INSERT (single row, multi-row, INSERT ... SELECT,
 *		batched), COPY FROM and tuple routing into foreign partitions capture
 *		rows into the outbox (outbox.c); reading, updating, deleting and
 *		truncating are refused with a clear error.
 *
 * The insert path touches no network: it encodes and writes the row into
 * the outbox within the inserting transaction, and nothing else.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "executor/executor.h"
#include "foreign/fdwapi.h"
#include "nodes/nodes.h"
#include "nodes/pathnodes.h"
#include "parser/parsetree.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "sfexport.h"

#include "options.h"
#include "outbox.h"

PG_FUNCTION_INFO_V1(sfexport_fdw_handler);
PG_FUNCTION_INFO_V1(sfexport_fdw_validator);

/* Per-result-relation state: the outbox writer. */
typedef struct SfModifyState
{
	SfOutboxWriter *writer;
	int			batch_size;
} SfModifyState;

static void
report_write_only(Oid relid, const char *action)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("cannot %s foreign table \"%s\"", action, get_rel_name(relid)),
			 errdetail("sfexport foreign tables are write-only: rows inserted into them are exported to Snowflake."),
			 errhint("Query the table in Snowflake, or sfexport.status for rows not yet exported.")));
}

/*
 * Planning a scan of the foreign table happens for SELECT, UPDATE, DELETE and
 * any other read: refuse it here, before anything else runs.
 */
static void
sfGetForeignRelSize(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	const char *action = "read from";

	if (root->parse->commandType == CMD_UPDATE &&
		(Index) root->parse->resultRelation == baserel->relid)
		action = "update";
	else if (root->parse->commandType == CMD_DELETE &&
			 (Index) root->parse->resultRelation == baserel->relid)
		action = "delete from";
	else if (root->parse->commandType == CMD_MERGE &&
			 (Index) root->parse->resultRelation == baserel->relid)
		action = "merge into";
	report_write_only(foreigntableid, action);
}

static void
sfGetForeignPaths(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid)
{
	report_write_only(foreigntableid, "read from");
}

static ForeignScan *
sfGetForeignPlan(PlannerInfo *root, RelOptInfo *baserel, Oid foreigntableid,
				 ForeignPath *best_path, List *tlist, List *scan_clauses,
				 Plan *outer_plan)
{
	report_write_only(foreigntableid, "read from");
	return NULL;				/* keep compiler quiet */
}

static void
sfBeginForeignScan(ForeignScanState *node, int eflags)
{
	report_write_only(RelationGetRelid(node->ss.ss_currentRelation), "read from");
}

static TupleTableSlot *
sfIterateForeignScan(ForeignScanState *node)
{
	return NULL;
}

static void
sfReScanForeignScan(ForeignScanState *node)
{
}

static void
sfEndForeignScan(ForeignScanState *node)
{
}

/* Only INSERT is allowed. */
static int
sfIsForeignRelUpdatable(Relation rel)
{
	return (1 << CMD_INSERT);
}

static List *
sfPlanForeignModify(PlannerInfo *root, ModifyTable *plan,
					Index resultRelation, int subplan_index)
{
	if (plan->operation != CMD_INSERT)
	{
		RangeTblEntry *rte = planner_rt_fetch(resultRelation, root);

		report_write_only(rte->relid, "modify");
	}
	if (plan->onConflictAction != ONCONFLICT_NONE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("INSERT with ON CONFLICT is not supported on sfexport foreign tables"),
				 errdetail("Rows are appended to Snowflake; there is nothing to conflict with here.")));
	return NIL;
}

static SfModifyState *
begin_insert(ResultRelInfo *rinfo)
{
	SfModifyState *st = palloc0(sizeof(SfModifyState));

	st->writer = sf_outbox_begin(rinfo->ri_RelationDesc);
	st->batch_size = sf_outbox_batch_size(st->writer);
	return st;
}

static void
sfBeginForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
					 List *fdw_private, int subplan_index, int eflags)
{
	if (eflags & EXEC_FLAG_EXPLAIN_ONLY)
		return;
	rinfo->ri_FdwState = begin_insert(rinfo);
}

static TupleTableSlot *
sfExecForeignInsert(EState *estate, ResultRelInfo *rinfo,
					TupleTableSlot *slot, TupleTableSlot *planSlot)
{
	SfModifyState *st = (SfModifyState *) rinfo->ri_FdwState;

	sf_outbox_put(st->writer, slot);
	return slot;
}

static TupleTableSlot **
sfExecForeignBatchInsert(EState *estate, ResultRelInfo *rinfo,
						 TupleTableSlot **slots, TupleTableSlot **planSlots,
						 int *numSlots)
{
	SfModifyState *st = (SfModifyState *) rinfo->ri_FdwState;

	for (int i = 0; i < *numSlots; i++)
		sf_outbox_put(st->writer, slots[i]);
	return slots;
}

/*
 * Rows per ExecForeignBatchInsert call.  The executor only batches when there
 * is no RETURNING and no row trigger; then we take the batch_size option.
 */
static int
sfGetForeignModifyBatchSize(ResultRelInfo *rinfo)
{
	SfModifyState *st = (SfModifyState *) rinfo->ri_FdwState;

	if (rinfo->ri_projectReturning != NULL ||
		(rinfo->ri_TrigDesc &&
		 (rinfo->ri_TrigDesc->trig_insert_before_row ||
		  rinfo->ri_TrigDesc->trig_insert_after_row)))
		return 1;
	if (st == NULL)
		return 1;				/* EXPLAIN only */
	return st->batch_size;
}

static void
sfEndForeignModify(EState *estate, ResultRelInfo *rinfo)
{
	SfModifyState *st = (SfModifyState *) rinfo->ri_FdwState;

	if (st)
		sf_outbox_end(st->writer);
	rinfo->ri_FdwState = NULL;
}

/* COPY FROM and tuple routing into a foreign partition. */
static void
sfBeginForeignInsert(ModifyTableState *mtstate, ResultRelInfo *rinfo)
{
	rinfo->ri_FdwState = begin_insert(rinfo);
}

static void
sfEndForeignInsert(EState *estate, ResultRelInfo *rinfo)
{
	sfEndForeignModify(estate, rinfo);
}

static void
sfExecForeignTruncate(List *rels, DropBehavior behavior, bool restart_seqs)
{
	report_write_only(RelationGetRelid((Relation) linitial(rels)), "truncate");
}

/* EXPLAIN of an INSERT says where the rows go. */
static void
sfExplainForeignModify(ModifyTableState *mtstate, ResultRelInfo *rinfo,
					   List *fdw_private, int subplan_index, ExplainState *es)
{
	ExplainPropertyText("Outbox", SFEXPORT_SCHEMA ".outbox", es);
}

Datum
sfexport_fdw_handler(PG_FUNCTION_ARGS)
{
	FdwRoutine *routine = makeNode(FdwRoutine);

	routine->GetForeignRelSize = sfGetForeignRelSize;
	routine->GetForeignPaths = sfGetForeignPaths;
	routine->GetForeignPlan = sfGetForeignPlan;
	routine->BeginForeignScan = sfBeginForeignScan;
	routine->IterateForeignScan = sfIterateForeignScan;
	routine->ReScanForeignScan = sfReScanForeignScan;
	routine->EndForeignScan = sfEndForeignScan;

	routine->IsForeignRelUpdatable = sfIsForeignRelUpdatable;
	routine->PlanForeignModify = sfPlanForeignModify;
	routine->BeginForeignModify = sfBeginForeignModify;
	routine->ExecForeignInsert = sfExecForeignInsert;
	routine->ExecForeignBatchInsert = sfExecForeignBatchInsert;
	routine->GetForeignModifyBatchSize = sfGetForeignModifyBatchSize;
	routine->EndForeignModify = sfEndForeignModify;
	routine->BeginForeignInsert = sfBeginForeignInsert;
	routine->EndForeignInsert = sfEndForeignInsert;
	routine->ExplainForeignModify = sfExplainForeignModify;

	routine->ExecForeignTruncate = sfExecForeignTruncate;

	PG_RETURN_POINTER(routine);
}

/*
 * The validator, called for CREATE/ALTER SERVER, USER MAPPING, FOREIGN
 * TABLE and column options: the option list and the catalog it is for
 * (options.c checks them).
 */
Datum
sfexport_fdw_validator(PG_FUNCTION_ARGS)
{
	sf_options_validate(untransformRelOptions(PG_GETARG_DATUM(0)), PG_GETARG_OID(1));
	PG_RETURN_VOID();
}
