/*-------------------------------------------------------------------------
 *
 * track.c
 *		Tracked tables (sfexport.track, docs/tracking.md): what a change
 *		becomes in the outbox, and the Snowflake SQL that applies changes.
 *
 * A tracked table T has a changes foreign table C on an sfexport server:
 * columns _sf_op (I, U, D, T or S), _sf_seq (sfexport.track_seq), _sf_at
 * (the changing transaction's now()) and then T's columns by name; options
 * merge_into (the Snowflake table that mirrors T), merge_keys (T's key
 * columns) and, in history mode, merge_history (a Snowflake table every
 * change is appended to).  T's row and TRUNCATE triggers
 * (sql_track.c) write each change as a row of C through the outbox, in the
 * changing transaction, so C's rows travel like any foreign table's: staged
 * files, COPY into C's Snowflake table (the changes table), exactly once.
 * Then the worker (merge_apply.c) merges the changes table into the target
 * and deletes what it merged, in one Snowflake transaction.
 *
 * Why _sf_seq orders the changes of a key: a change takes its number from
 * the sequence after its row was written, while it holds the row's lock;
 * a later change of the same key must wait for that lock, so it takes a
 * larger number, whichever transaction commits first otherwise.  TRUNCATE
 * holds an ACCESS EXCLUSIVE lock, so changes before it have smaller numbers
 * and changes after it larger ones.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "commands/sequence.h"
#include "executor/tuptable.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "sfexport.h"

#include "config.h"
#include "outbox.h"
#include "quote.h"
#include "snowflake.h"
#include "statements.h"
#include "tables.h"
#include "track.h"

/* A capture in progress: the changes table and where its columns come from. */
struct SfTrackCapture
{
	Oid			changes_relid;
	TupleDesc	srcdesc;		/* the tuples given to sf_track_capture_put */
	int			natts;			/* of the changes table */
	TupleTableSlot *slot;		/* a change as a row of the changes table */
	AttrNumber *srcatt;			/* per changes column: source attnum, 0 = none */
	int			nkeys;
	AttrNumber *keyatt;			/* source attnums of the key columns */
};

/* The options of a changes foreign table; NULL if it is none. */
SfTrackInfo *
sf_track_info(Oid changes_relid, bool missing_ok)
{
	SfTrackInfo *info = palloc0(sizeof(SfTrackInfo));
	ListCell   *lc;
	char	   *keys = NULL;

	info->changes_relid = changes_relid;
	info->mirror = true;
	if (get_rel_relkind(changes_relid) == RELKIND_FOREIGN_TABLE)
	{
		foreach(lc, GetForeignTable(changes_relid)->options)
		{
			DefElem    *def = lfirst_node(DefElem, lc);

			if (strcmp(def->defname, "merge_into") == 0)
				info->merge_into = defGetString(def);
			else if (strcmp(def->defname, "merge_keys") == 0)
				keys = pstrdup(defGetString(def));
			else if (strcmp(def->defname, "merge_history") == 0)
				info->history = defGetString(def);
			else if (strcmp(def->defname, "merge_mirror") == 0)
				info->mirror = defGetBoolean(def);
		}
	}
	if (info->merge_into == NULL || keys == NULL ||
		!SplitIdentifierString(keys, ',', &info->keys) || info->keys == NIL)
	{
		if (missing_ok)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("\"%s\" is not the changes table of a tracked table",
						get_rel_name(changes_relid) ? get_rel_name(changes_relid) : "?"),
				 errdetail("A changes foreign table has the options merge_into and merge_keys (a list of column names)."),
				 errhint("Create it with sfexport.track().")));
	}
	return info;
}

/*
 * The changes foreign table of tracked table relid (named by its row
 * trigger's arguments: schema, name), or InvalidOid.
 */
Oid
sf_track_changes_of(Oid relid, bool missing_ok)
{
	Relation	trigrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			result = InvalidOid;

	ScanKeyInit(&key[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber,
				F_OIDEQ, ObjectIdGetDatum(relid));
	ScanKeyInit(&key[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum(SF_TRACK_TRIGGER));
	scan = systable_beginscan(trigrel, TriggerRelidNameIndexId, true, NULL, 2, key);
	if ((tup = systable_getnext(scan)) != NULL)
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);
		bool		isnull;
		Datum		args = heap_getattr(tup, Anum_pg_trigger_tgargs,
										RelationGetDescr(trigrel), &isnull);

		if (trig->tgnargs == 2 && !isnull)
		{
			bytea	   *b = DatumGetByteaPP(args);
			const char *nsp = VARDATA_ANY(b);
			const char *name = nsp + strlen(nsp) + 1;
			Oid			nspid = get_namespace_oid(nsp, true);

			if (OidIsValid(nspid))
				result = get_relname_relid(name, nspid);
		}
	}
	systable_endscan(scan);
	table_close(trigrel, AccessShareLock);
	if (!OidIsValid(result) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is not tracked", get_rel_name(relid) ? get_rel_name(relid) : "?"),
				 errdetail("A tracked table has the trigger %s naming its changes foreign table.",
						   SF_TRACK_TRIGGER),
				 errhint("Start tracking it with sfexport.track().")));
	return result;
}

/*
 * Prepare to capture changes of tuples described by srcdesc into
 * changes_relid, in the current memory context, which must outlive the
 * captures (sf_track_capture_put).  Checks that the owner of the tuples'
 * table may write the changes table and that the columns match, so a
 * capture is valid until either table, the changes table's options or its
 * privileges change, which is what the trigger's cached capture relies on
 * (sf_track_capture_row).
 */
SfTrackCapture *
sf_track_capture_begin(Oid changes_relid, TupleDesc srcdesc, Oid src_owner)
{
	SfTrackCapture *c = palloc0(sizeof(SfTrackCapture));
	SfTrackInfo *info = sf_track_info(changes_relid, false);
	Relation	rel = relation_open(changes_relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	ListCell   *lc;
	int			k = 0;

	/*
	 * The trigger's arguments name the changes table; anyone may write a
	 * trigger.  Rows reach the changes table's Snowflake tables only if the
	 * owner of the table they come from may INSERT into it (track() makes
	 * the owner of the tracked table the owner of its changes table), as
	 * for any INSERT into a foreign table.
	 */
	if (pg_class_aclcheck(changes_relid, src_owner, ACL_INSERT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to capture changes into \"%s\"", RelationGetRelationName(rel)),
				 errdetail("The owner of the tracked table (role %s) may not insert into this changes foreign table.",
						   GetUserNameFromId(src_owner, true) ? GetUserNameFromId(src_owner, true) : "?"),
				 errhint("Track tables with sfexport.track(), which creates their changes tables.")));

	c->changes_relid = changes_relid;
	c->srcdesc = CreateTupleDescCopy(srcdesc);
	c->natts = desc->natts;
	/* a copy is not reference-counted: the slot may outlive the transaction */
	c->slot = MakeSingleTupleTableSlot(CreateTupleDescCopy(desc), &TTSOpsVirtual);
	c->srcatt = palloc0(sizeof(AttrNumber) * Max(desc->natts, 1));

	if (desc->natts < SF_TRACK_META_COLUMNS ||
		strcmp(NameStr(TupleDescAttr(desc, 0)->attname), SF_TRACK_OP_COLUMN) != 0 ||
		TupleDescAttr(desc, 0)->atttypid != TEXTOID ||
		strcmp(NameStr(TupleDescAttr(desc, 1)->attname), SF_TRACK_SEQ_COLUMN) != 0 ||
		TupleDescAttr(desc, 1)->atttypid != INT8OID ||
		strcmp(NameStr(TupleDescAttr(desc, 2)->attname), SF_TRACK_AT_COLUMN) != 0 ||
		TupleDescAttr(desc, 2)->atttypid != TIMESTAMPTZOID)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("changes table \"%s\" does not begin with columns %s text, %s bigint, %s timestamptz",
						RelationGetRelationName(rel), SF_TRACK_OP_COLUMN, SF_TRACK_SEQ_COLUMN,
						SF_TRACK_AT_COLUMN),
				 errhint("Track the table again: sfexport.untrack(), then sfexport.track().")));

	/* every column of the changes table after the first two: by name */
	for (int i = SF_TRACK_META_COLUMNS; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		for (int j = 0; j < srcdesc->natts; j++)
		{
			Form_pg_attribute s = TupleDescAttr(srcdesc, j);

			if (!s->attisdropped && strcmp(NameStr(s->attname), NameStr(att->attname)) == 0)
			{
				/* the encoder reads the value with the changes column's type */
				if (s->atttypid != att->atttypid || s->atttypmod != att->atttypmod)
					ereport(ERROR,
							(errcode(ERRCODE_DATATYPE_MISMATCH),
							 errmsg("column \"%s\" of a tracked table has type %s, its changes table \"%s\" has %s",
									NameStr(s->attname),
									format_type_with_typemod(s->atttypid, s->atttypmod),
									RelationGetRelationName(rel),
									format_type_with_typemod(att->atttypid, att->atttypmod)),
							 errdetail("A change is written with the types of the changes foreign table; nothing was written."),
							 errhint("Change the column of the changes foreign table to the same type (ALTER FOREIGN TABLE ... ALTER COLUMN ... TYPE), and the Snowflake columns to match.")));
				c->srcatt[i] = j + 1;
			}
		}
	}

	/* ... and every column of the source must have its place there */
	for (int j = 0; j < srcdesc->natts; j++)
	{
		Form_pg_attribute s = TupleDescAttr(srcdesc, j);
		bool		found = false;

		if (s->attisdropped)
			continue;
		for (int i = SF_TRACK_META_COLUMNS; i < desc->natts && !found; i++)
			found = c->srcatt[i] == j + 1;
		if (!found)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("column \"%s\" of a tracked table is missing from its changes table \"%s\"",
							NameStr(s->attname), RelationGetRelationName(rel)),
					 errdetail("Every change carries the whole row, so the changes foreign table needs every column of the tracked table."),
					 errhint("Add it: ALTER FOREIGN TABLE %s ADD COLUMN %s %s, then sfexport.setup_table() on the tracked table.",
							 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
														RelationGetRelationName(rel)),
							 quote_identifier(NameStr(s->attname)),
							 format_type_with_typemod(s->atttypid, s->atttypmod))));
	}

	c->nkeys = list_length(info->keys);
	c->keyatt = palloc0(sizeof(AttrNumber) * c->nkeys);
	foreach(lc, info->keys)
	{
		const char *name = (const char *) lfirst(lc);

		for (int j = 0; j < srcdesc->natts; j++)
			if (!TupleDescAttr(srcdesc, j)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(srcdesc, j)->attname), name) == 0)
				c->keyatt[k] = j + 1;
		if (c->keyatt[k] == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("key column \"%s\" of changes table \"%s\" is not a column of the tracked table",
							name, RelationGetRelationName(rel)),
					 errhint("Track the table again: sfexport.untrack(), then sfexport.track().")));
		k++;
	}
	relation_close(rel, AccessShareLock);
	return c;
}

/*
 * Write one change into writer w as a row of the changes table: op, the
 * next number of sfexport.track_seq, the transaction's start, then tup's
 * columns (tup NULL: all NULL, for TRUNCATE).
 */
static void
put_change(SfTrackCapture *c, SfOutboxWriter *w, char op, HeapTuple tup)
{
	TupleTableSlot *slot = c->slot;
	char		opstr[2] = {op, '\0'};

	ExecClearTuple(slot);
	for (int i = 0; i < c->natts; i++)
	{
		slot->tts_isnull[i] = true;
		slot->tts_values[i] = (Datum) 0;
		if (i == 0)
		{
			slot->tts_values[i] = CStringGetTextDatum(opstr);
			slot->tts_isnull[i] = false;
		}
		else if (i == 1)
		{
			slot->tts_values[i] = Int64GetDatum(nextval_internal(sf_track_seq_relid(), false));
			slot->tts_isnull[i] = false;
		}
		else if (i == 2)
		{
			slot->tts_values[i] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
			slot->tts_isnull[i] = false;
		}
		else if (tup != NULL && c->srcatt[i] != 0)
			slot->tts_values[i] = heap_getattr(tup, c->srcatt[i], c->srcdesc,
											   &slot->tts_isnull[i]);
	}
	ExecStoreVirtualTuple(slot);
	sf_outbox_put(w, slot);
	ExecClearTuple(slot);
}

/* Open the changes table of c and a writer of its rows. */
static Relation
open_changes(SfTrackCapture *c, Oid changes_relid, SfOutboxWriter **w)
{
	Relation	rel = relation_open(changes_relid, RowExclusiveLock);

	if (c != NULL && RelationGetDescr(rel)->natts != c->natts)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("changes table \"%s\" changed during the statement",
						RelationGetRelationName(rel)),
				 errhint("Run the statement again.")));
	*w = sf_outbox_begin(rel);
	return rel;
}

static void
close_changes(Relation rel, SfOutboxWriter *w)
{
	sf_outbox_end(w);
	relation_close(rel, NoLock);
}

/*
 * Write one change into the outbox as a row of the changes table (see
 * put_change).  Within the caller's transaction.
 */
void
sf_track_capture_put(SfTrackCapture *c, char op, HeapTuple tup)
{
	SfOutboxWriter *w;
	Relation	rel = open_changes(c, c->changes_relid, &w);

	put_change(c, w, op, tup);
	close_changes(rel, w);
}

/* What build_capture needs to know of the tracked table. */
typedef struct CaptureSource
{
	TupleDesc	desc;
	Oid			owner;
} CaptureSource;

static void *
build_capture(Relation changes, void *arg)
{
	CaptureSource *src = (CaptureSource *) arg;

	return sf_track_capture_begin(RelationGetRelid(changes), src->desc, src->owner);
}

/*
 * The changes of one row of tracked table src (or of its TRUNCATE: tup
 * NULL) into changes_relid, for its triggers: op I, D or T with tup; op
 * U with tup the old row and newtup the new one (preceded by a D of the old
 * row if the UPDATE changed the key).
 *
 * The capture (sf_track_capture_begin: options, privilege check, column
 * matching) is kept with the outbox's cache entry of the changes table
 * (sf_outbox_cached_state), so a statement that changes one row does not
 * rebuild it; it is rebuilt after DDL on either table, GRANT or REVOKE on
 * the changes table, role changes and option changes.
 */
void
sf_track_capture_row(Relation src, Oid changes_relid, char op, HeapTuple tup,
					 HeapTuple newtup)
{
	SfOutboxWriter *w;
	Relation	rel = open_changes(NULL, changes_relid, &w);
	CaptureSource arg = {RelationGetDescr(src), src->rd_rel->relowner};
	SfTrackCapture *c = sf_outbox_cached_state(w, rel, RelationGetRelid(src),
											   build_capture, &arg);

	if (c->natts != RelationGetDescr(rel)->natts ||
		c->srcdesc->natts != arg.desc->natts)
		elog(ERROR, "cached capture of \"%s\" does not match its tables",
			 RelationGetRelationName(rel));
	if (op == SF_TRACK_UPDATE)
	{
		/* a new key: the old one is gone */
		if (sf_track_key_changed(c, tup, newtup))
			put_change(c, w, SF_TRACK_DELETE, tup);
		tup = newtup;
	}
	put_change(c, w, op, tup);
	close_changes(rel, w);
}

/* Whether an UPDATE changed the key (then it is a DELETE and an INSERT). */
bool
sf_track_key_changed(SfTrackCapture *c, HeapTuple oldtup, HeapTuple newtup)
{
	for (int k = 0; k < c->nkeys; k++)
	{
		Form_pg_attribute att = TupleDescAttr(c->srcdesc, c->keyatt[k] - 1);
		bool		n1,
					n2;
		Datum		d1 = heap_getattr(oldtup, c->keyatt[k], c->srcdesc, &n1);
		Datum		d2 = heap_getattr(newtup, c->keyatt[k], c->srcdesc, &n2);

		if (n1 != n2 || (!n1 && !datumIsEqual(d1, d2, att->attbyval, att->attlen)))
			return true;
	}
	return false;
}

/* The Snowflake names of the changes table's columns, and their count. */
static char **
changes_columns(Oid changes_relid, int *ncols, AttrNumber **attnums)
{
	Relation	rel = relation_open(changes_relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	char	  **names = palloc(sizeof(char *) * Max(desc->natts, 1));
	int			n = 0;

	*attnums = palloc(sizeof(AttrNumber) * Max(desc->natts, 1));
	for (int i = 0; i < desc->natts; i++)
	{
		if (TupleDescAttr(desc, i)->attisdropped)
			continue;
		(*attnums)[n] = i + 1;
		names[n++] = sf_column_target_name(changes_relid, i + 1);
	}
	relation_close(rel, AccessShareLock);
	*ncols = n;
	return names;
}

/* The Snowflake names of the key columns. */
static char **
key_columns(SfTrackInfo *info, int *nkeys)
{
	char	  **keys = palloc(sizeof(char *) * Max(list_length(info->keys), 1));
	ListCell   *lc;
	int			n = 0;

	foreach(lc, info->keys)
	{
		AttrNumber	attnum = get_attnum(info->changes_relid, (const char *) lfirst(lc));

		if (attnum == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("key column \"%s\" is not a column of changes table \"%s\"",
							(const char *) lfirst(lc), get_rel_name(info->changes_relid)),
					 errhint("Track the table again: sfexport.untrack(), then sfexport.track().")));
		keys[n++] = sf_column_target_name(info->changes_relid, attnum);
	}
	*nkeys = n;
	return keys;
}

/* The quoted, qualified Snowflake name of the merge target. */
static char *
merge_target(SfServerConfig *srv, Oid changes_relid, SfTrackInfo *info)
{
	SfTableConfig tgt = *sf_get_table_config(changes_relid);

	tgt.table = info->merge_into;
	return sf_target_name(srv, &tgt);
}

/* The quoted, qualified Snowflake name of the history table, or NULL. */
char *
sf_track_history_name(SfServerConfig *srv, Oid changes_relid)
{
	SfTrackInfo *info = sf_track_info(changes_relid, false);
	SfTableConfig tgt;

	if (info->history == NULL)
		return NULL;
	tgt = *sf_get_table_config(changes_relid);
	tgt.table = info->history;
	return sf_target_name(srv, &tgt);
}

/*
 * The batch number of a changes table in Snowflake: the table
 * <changes>_applied, one row ("batch", "request"), that every apply
 * request advances (sf_track_apply_sql).
 */
char *
sf_track_watermark_name(SfServerConfig *srv, Oid changes_relid)
{
	SfTableConfig tgt = *sf_get_table_config(changes_relid);

	tgt.table = psprintf("%s%s", tgt.table,
						 sf_identifier_case(srv->upper_case_identifiers, "_applied"));
	return sf_target_name(srv, &tgt);
}

static char *
wm_column(SfServerConfig *srv, const char *name)
{
	return sf_quote_ident(sf_identifier_case(srv->upper_case_identifiers, name));
}

/* setup_table's statements for the batch number table (row 0 if empty). */
List *
sf_track_watermark_statements(SfServerConfig *srv, Oid changes_relid)
{
	char	   *wm = sf_track_watermark_name(srv, changes_relid);
	char	   *batch = wm_column(srv, "batch");
	char	   *request = wm_column(srv, "request");

	return list_make2(psprintf("CREATE TABLE IF NOT EXISTS %s (%s NUMBER(19,0), %s VARCHAR)",
							   wm, batch, request),
					  psprintf("INSERT INTO %s (%s, %s) SELECT 0, NULL WHERE NOT EXISTS (SELECT 1 FROM %s)",
							   wm, batch, request, wm));
}

/* The query that reads the batch number before a request. */
char *
sf_track_watermark_query(SfServerConfig *srv, Oid changes_relid)
{
	return psprintf("SELECT MAX(%s), COUNT(*) FROM %s", wm_column(srv, "batch"),
					sf_track_watermark_name(srv, changes_relid));
}

/* The quoted, qualified Snowflake name of a tracked table's mirror. */
char *
sf_track_target_name(SfServerConfig *srv, Oid changes_relid)
{
	return merge_target(srv, changes_relid, sf_track_info(changes_relid, false));
}

/*
 * The request that applies the changes numbered below bound, as one
 * Snowflake transaction (*nstatements statements):
 *
 *	BEGIN;
 *	advance the table's batch number from batch, or fail (the fence below);
 *	(unless history only) a TRUNCATE among them: delete every row of the
 *	  target; MERGE the last change of each key after the last TRUNCATE:
 *	  D deletes, anything else is an upsert of the whole row;
 *	(history mode) append them all to the history table;
 *	delete them from the changes table;
 *	COMMIT.
 *
 * Deleting the changes in the same transaction is what makes a repeated
 * request harmless: after a commit nothing below bound is left to merge,
 * after a failure nothing changed.  Changes at or above bound stay for a
 * later request (merge_apply.c says why some must wait).
 *
 * Snowflake's MERGE: docs.snowflake.com/en/sql-reference/sql/merge (a
 * target row joined by several source rows is an error unless they agree,
 * hence QUALIFY ROW_NUMBER() ... = 1: one source row per key);
 * QUALIFY: docs.snowflake.com/en/sql-reference/constructs/qualify.
 */
char *
sf_track_apply_sql(SfServerConfig *srv, Oid changes_relid, int64 bound, int64 batch,
				   int *nstatements)
{
	SfTrackInfo *info = sf_track_info(changes_relid, false);
	char	   *changes = sf_target_name(srv, sf_get_table_config(changes_relid));
	char	   *target = merge_target(srv, changes_relid, info);
	AttrNumber *attnums;
	int			ncols,
				nkeys;
	char	  **cols = changes_columns(changes_relid, &ncols, &attnums);
	char	  **keys = key_columns(info, &nkeys);
	char	   *op = sf_quote_ident(cols[0]);
	char	   *seq = sf_quote_ident(cols[1]);
	char	   *below = psprintf("%s < " INT64_FORMAT, seq, bound);
	char	   *last_truncate;
	char		request[37];
	char	   *wm = sf_track_watermark_name(srv, changes_relid);
	StringInfoData sql;

	last_truncate = psprintf("(SELECT COALESCE(MAX(%s), -1) FROM %s WHERE %s = 'T' AND %s)",
							 seq, changes, op, below);

	initStringInfo(&sql);
	appendStringInfoString(&sql, "BEGIN TRANSACTION;\n");

	/*
	 * The fence: advance the batch number from the one read before this
	 * request, marked with this request's own token; if another request
	 * advanced it meanwhile (one a killed worker sent, still running),
	 * nothing carries the token, the division fails, the request stops and
	 * its open transaction is rolled back.
	 */
	sf_snowflake_request_id(request);
	appendStringInfo(&sql, "UPDATE %s SET %s = " INT64_FORMAT ", %s = %s WHERE %s = " INT64_FORMAT ";\n",
					 wm, wm_column(srv, "batch"), batch + 1, wm_column(srv, "request"),
					 sf_quote_literal(request), wm_column(srv, "batch"), batch);
	appendStringInfo(&sql, "SELECT 1 / (SELECT COUNT(*) FROM %s WHERE %s = %s);\n",
					 wm, wm_column(srv, "request"), sf_quote_literal(request));
	*nstatements = 5;
	if (info->mirror)			/* else history only */
	{
		appendStringInfo(&sql, "DELETE FROM %s WHERE EXISTS (SELECT 1 FROM %s WHERE %s = 'T' AND %s);\n",
						 target, changes, op, below);

		appendStringInfo(&sql, "MERGE INTO %s AS t USING (SELECT ", target);
		for (int i = 0; i < ncols; i++)
			appendStringInfo(&sql, "%s%s", i ? ", " : "", sf_quote_ident(cols[i]));
		appendStringInfo(&sql, " FROM %s WHERE %s AND %s <> 'T' AND %s > %s QUALIFY ROW_NUMBER() OVER (PARTITION BY ",
						 changes, below, op, seq, last_truncate);
		for (int k = 0; k < nkeys; k++)
			appendStringInfo(&sql, "%s%s", k ? ", " : "", sf_quote_ident(keys[k]));
		appendStringInfo(&sql, " ORDER BY %s DESC) = 1) AS c ON ", seq);
		for (int k = 0; k < nkeys; k++)
			appendStringInfo(&sql, "%st.%s = c.%s", k ? " AND " : "",
							 sf_quote_ident(keys[k]), sf_quote_ident(keys[k]));
		appendStringInfo(&sql, " WHEN MATCHED AND c.%s = 'D' THEN DELETE WHEN MATCHED THEN UPDATE SET ", op);
		for (int i = SF_TRACK_META_COLUMNS; i < ncols; i++)
			appendStringInfo(&sql, "%s%s = c.%s", i > SF_TRACK_META_COLUMNS ? ", " : "",
							 sf_quote_ident(cols[i]), sf_quote_ident(cols[i]));
		appendStringInfo(&sql, " WHEN NOT MATCHED AND c.%s <> 'D' THEN INSERT (", op);
		for (int i = SF_TRACK_META_COLUMNS; i < ncols; i++)
			appendStringInfo(&sql, "%s%s", i > SF_TRACK_META_COLUMNS ? ", " : "",
							 sf_quote_ident(cols[i]));
		appendStringInfoString(&sql, ") VALUES (");
		for (int i = SF_TRACK_META_COLUMNS; i < ncols; i++)
			appendStringInfo(&sql, "%sc.%s", i > SF_TRACK_META_COLUMNS ? ", " : "",
							 sf_quote_ident(cols[i]));
		appendStringInfoString(&sql, ");\n");
		*nstatements += 2;
	}

	if (info->history)
	{
		/* history mode: every change, in the same transaction */
		char	   *list;
		StringInfoData l;

		initStringInfo(&l);
		for (int i = 0; i < ncols; i++)
			appendStringInfo(&l, "%s%s", i ? ", " : "", sf_quote_ident(cols[i]));
		list = l.data;
		appendStringInfo(&sql, "INSERT INTO %s (%s) SELECT %s FROM %s WHERE %s;\n",
						 sf_track_history_name(srv, changes_relid), list, list, changes, below);
		(*nstatements)++;
	}
	appendStringInfo(&sql, "DELETE FROM %s WHERE %s;\n", changes, below);
	appendStringInfoString(&sql, "COMMIT");
	return sql.data;
}

/*
 * The mirror's columns (with_meta: the history table's, _sf_op, _sf_seq and
 * _sf_at first) as a load's manifest has them (Snowflake names, PostgreSQL
 * type names), for schema evolution before a merge (evolve.c).
 */
void
sf_track_mirror_columns(Oid changes_relid, bool with_meta, ArrayType **columns,
						ArrayType **types)
{
	Relation	rel = relation_open(changes_relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	Datum	   *names = palloc(sizeof(Datum) * Max(desc->natts, 1));
	Datum	   *typs = palloc(sizeof(Datum) * Max(desc->natts, 1));
	int			n = 0;

	for (int i = with_meta ? 0 : SF_TRACK_META_COLUMNS; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		names[n] = CStringGetTextDatum(sf_column_target_name(changes_relid, att->attnum));
		typs[n] = CStringGetTextDatum(format_type_with_typemod(att->atttypid, att->atttypmod));
		n++;
	}
	relation_close(rel, AccessShareLock);
	*columns = construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT);
	*types = construct_array(typs, n, TEXTOID, -1, false, TYPALIGN_INT);
}

/*
 * CREATE TRANSIENT TABLE IF NOT EXISTS for a changes table: its rows live
 * from a COPY to the next merge, so Snowflake's Fail-safe days of a
 * permanent table would only cost storage
 * (docs.snowflake.com/en/user-guide/tables-temp-transient).
 */
char *
sf_track_create_changes_statement(const char *target, int ncols, const SfColumnDef *cols)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TRANSIENT TABLE IF NOT EXISTS %s (", target);
	for (int i = 0; i < ncols; i++)
		appendStringInfo(&sql, "%s%s %s", i ? ", " : "",
						 sf_quote_ident(cols[i].name), cols[i].sftype);
	appendStringInfoChar(&sql, ')');
	return sql.data;
}

/*
 * CREATE TABLE IF NOT EXISTS for the mirror of a tracked table: its
 * columns (not _sf_op, _sf_seq) with the primary key declared.  Snowflake
 * does not enforce it (it implies NOT NULL); it documents the key for
 * readers and tools.
 */
char *
sf_track_create_target_statement(SfServerConfig *srv, Oid changes_relid)
{
	SfTrackInfo *info = sf_track_info(changes_relid, false);
	AttrNumber *attnums;
	int			ncols,
				nkeys;
	char	  **cols = changes_columns(changes_relid, &ncols, &attnums);
	char	  **keys = key_columns(info, &nkeys);
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE IF NOT EXISTS %s (",
					 merge_target(srv, changes_relid, info));
	for (int i = SF_TRACK_META_COLUMNS; i < ncols; i++)
	{
		Form_pg_attribute att;
		HeapTuple	tp = SearchSysCache2(ATTNUM, ObjectIdGetDatum(changes_relid),
										 Int16GetDatum(attnums[i]));

		if (!HeapTupleIsValid(tp))
			elog(ERROR, "cache lookup failed for attribute %d of relation %u",
				 attnums[i], changes_relid);
		att = (Form_pg_attribute) GETSTRUCT(tp);
		appendStringInfo(&sql, "%s%s %s", i > SF_TRACK_META_COLUMNS ? ", " : "",
						 sf_quote_ident(cols[i]),
						 sf_snowflake_type(att->atttypid, att->atttypmod));
		ReleaseSysCache(tp);
	}
	appendStringInfoString(&sql, ", PRIMARY KEY (");
	for (int k = 0; k < nkeys; k++)
		appendStringInfo(&sql, "%s%s", k ? ", " : "", sf_quote_ident(keys[k]));
	appendStringInfoString(&sql, "))");
	return sql.data;
}
