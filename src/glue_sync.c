/*-------------------------------------------------------------------------
 *
 * glue_sync.c
 *		The Glue sync: mirror the tables of an AWS Glue database as
 *		Snowflake external tables, idempotently (sfexport.glue_sync(),
 *		sql_glue.c, and the worker's periodic sync, glue_periodic.c).  The
 *		Glue client is glue_client.c; what one table becomes is planned in
 *		glue_plan.c, and what was applied is remembered in glue_state.c.
 *
 * What a Glue table becomes (docs/glue.md has the user's view):
 *	- target: "<DB>"."<SCHEMA>"."<TABLE>" — explicit arguments, else the Glue
 *	  database name <database>__<schema>, else the server's database and
 *	  schema; names from Glue are upper-cased (Hive names are
 *	  case-insensitive and Glue stores them lower-case) and always quoted
 *	  with sf_quote_ident();
 *	- location: the table's s3:// location must lie below the location of a
 *	  stage (the server's stage over its location, or one from the
 *	  glue_stage_map option); LOCATION = @stage/<rest of the path>/;
 *	- columns: "<NAME>" <type> AS (<expr>::<type>) with the type from the
 *	  Hive type parser (hive_types.c); CSV columns are value:c1..cN by
 *	  position, JSON/Parquet/ORC/Avro columns GET_IGNORE_CASE(value,
 *	  '<name>') (Hive matches names case-insensitively; Glue stores them
 *	  lower-case), or value:"<key>" from the OpenX SerDe's mapping.<name>;
 *	- partition columns: computed from METADATA$FILENAME, which holds the
 *	  file's path relative to the stage ("Query metadata for staged files":
 *	  https://docs.snowflake.com/en/user-guide/querying-metadata), with
 *	  SPLIT_PART on "/" (and "=" for hive-style key=value directories; Hive
 *	  escapes "=" in partition values, FileUtils.escapePathName, and string
 *	  values are unescaped with REPLACE), listed in PARTITION BY (CREATE
 *	  EXTERNAL TABLE, "Partitioning parameters":
 *	  https://docs.snowflake.com/en/sql-reference/sql/create-external-table).
 *
 * Idempotency: sfexport.glue_sync_state, which glue_state.c alone reads and
 * writes, remembers per Glue table and target the SHA-256 of the statement
 * applied, its data columns, and the partition directories seen.  Each
 * sync then does the least that brings Snowflake in line (docs/glue.md,
 * "Keeping in step"):
 *	- same statement: nothing, or ALTER EXTERNAL TABLE ... REFRESH
 *	  '<directory>' for the partitions added or removed in Glue
 *	  (USER_SPECIFIED tables: ADD PARTITION / DROP PARTITION LOCATION);
 *	- only data columns dropped or appended: ALTER TABLE ... DROP COLUMN /
 *	  ADD COLUMN in place;
 *	- anything else: CREATE OR REPLACE ... COPY GRANTS (grants kept);
 *	- a table created earlier that SHOW EXTERNAL TABLES (once per sync)
 *	  does not list: created again ("repaired").
 * What each sync did goes to sfexport.glue_sync_log (the view
 * glue_sync_status), written like the state as the tables' owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "glue_client.h"

#include "catalog/pg_collation_d.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "sfexport.h"

#include "glue_plan.h"
#include "glue_state.h"
#include "glue_sync.h"
#include "quote.h"
#include "snowflake.h"
#include "transaction.h"

/* ---------------------------------------------------------------------
 * The sync
 * ---------------------------------------------------------------------
 */

#define GLUE_REFRESH_MAX 100	/* more changed partitions: one REFRESH of the whole location */
#define GLUE_SHOW_PAGE 10000	/* SHOW returns at most 10,000 rows; LIMIT ... FROM pages */

/*
 * Errors that stop the whole sync rather than one table: the remote side
 * unreachable, credentials refused, cancel and shutdown.  Anything else
 * (Snowflake refusing one statement, Glue refusing one table's partitions)
 * concerns that table only.
 */
static bool
stops_the_sync(ErrorData *edata)
{
	int			cls = ERRCODE_TO_CATEGORY(edata->sqlerrcode);

	return cls == ERRCODE_CONNECTION_EXCEPTION ||
		cls == ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION ||
		cls == ERRCODE_OPERATOR_INTERVENTION ||
		cls == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
		cls == ERRCODE_INSUFFICIENT_RESOURCES ||
		edata->sqlerrcode == ERRCODE_QUERY_CANCELED;
}

/*
 * Run a Snowflake statement for one table.  Errors Snowflake reports for
 * the statement (SQL compilation errors, a name that exists as another kind
 * of object, ...) are caught and returned as a reason, so that one bad
 * table does not stop the others; connection, authentication and cancel
 * errors are thrown.
 */
typedef struct TableStatement
{
	SfServerConfig *srv;
	SfUserConfig *usr;
	const char *sql;
	SfSnowflakeResult *res;
} TableStatement;

static void
table_statement(void *arg)
{
	TableStatement *t = (TableStatement *) arg;
	SfStatement st;

	memset(&st, 0, sizeof(st));
	st.sql = t->sql;
	st.query_tag = "sfexport glue_sync";
	t->res = sf_snowflake_run(t->srv, t->usr, &st);
}

static char *
run_statement(SfServerConfig *srv, SfUserConfig *usr, const char *sql, SfSnowflakeResult **res)
{
	TableStatement t = {srv, usr, sql, NULL};
	ErrorData  *edata = sf_run_subtransaction(table_statement, &t);
	char	   *reason;

	if (res)
		*res = t.res;
	if (edata == NULL)
		return NULL;
	if (stops_the_sync(edata))
		ReThrowError(edata);
	reason = psprintf("Snowflake refused the statement (SQLSTATE %s): %s%s%s",
					  unpack_sql_state(edata->sqlerrcode), edata->message,
					  edata->detail ? " " : "", edata->detail ? edata->detail : "");
	FreeErrorData(edata);
	return reason;
}

static char *
run_table_statement(SfServerConfig *srv, SfUserConfig *usr, const char *sql)
{
	return run_statement(srv, usr, sql, NULL);
}

/*
 * The external tables of the target schema, as names (upper case as
 * Snowflake stores them), from SHOW TERSE EXTERNAL TABLES IN SCHEMA, once
 * per sync: which of the tables glue_sync created are gone (dropped by
 * hand, or with their schema).  SHOW returns at most 10,000 rows; larger
 * schemas are read in pages with LIMIT ... FROM '<last name>' ("SHOW
 * EXTERNAL TABLES": LIMIT rows [ FROM 'name_string' ]).  *known is false
 * when Snowflake refused the SHOW (a schema that does not exist, no
 * privilege on it): then nothing is taken as missing.
 */
static List *
existing_tables(SfServerConfig *srv, SfUserConfig *usr, const char *tdb, const char *tschema,
				bool *known)
{
	List	   *names = NIL;
	char	   *from = NULL;

	for (;;)
	{
		SfSnowflakeResult *res = NULL;
		char	   *sql = psprintf("SHOW TERSE EXTERNAL TABLES IN SCHEMA %s.%s LIMIT %d%s%s",
								   sf_quote_ident(tdb), sf_quote_ident(tschema), GLUE_SHOW_PAGE,
								   from ? " FROM " : "", from ? sf_quote_literal(from) : "");
		char	   *reason = run_statement(srv, usr, sql, &res);
		int			col;

		*known = reason == NULL && res != NULL;
		if (!*known)
			return NIL;
		col = sf_result_column(res, "name");
		if (col < 0)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("unexpected answer from Snowflake to SHOW EXTERNAL TABLES"),
					 errdetail("The result has no column \"name\".")));
		for (int64 i = 0; i < res->nrows; i++)
			if (res->rows[i][col])
				names = lappend(names, res->rows[i][col]);
		if (res->nrows < GLUE_SHOW_PAGE || res->rows[res->nrows - 1][col] == NULL)
			return names;
		from = res->rows[res->nrows - 1][col];
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * The notification_channel of a new AUTO_REFRESH table (SHOW EXTERNAL
 * TABLES: "Amazon Resource Name of the Amazon SQS queue for the external
 * table"), where the S3 bucket's event notifications must go; NULL when
 * Snowflake does not say.  LIKE may match more names ("_" and "%" are
 * wildcards there): the row whose name is the table's is taken.
 */
static char *
notification_channel(SfServerConfig *srv, SfUserConfig *usr, const char *tdb,
					 const char *tschema, const char *table)
{
	SfSnowflakeResult *res = NULL;
	char	   *sql = psprintf("SHOW EXTERNAL TABLES LIKE %s IN SCHEMA %s.%s",
							   sf_quote_literal(table), sf_quote_ident(tdb),
							   sf_quote_ident(tschema));
	int			name;
	int			channel;

	if (run_statement(srv, usr, sql, &res) != NULL || res == NULL)
		return NULL;
	name = sf_result_column(res, "name");
	channel = sf_result_column(res, "notification_channel");
	if (name < 0 || channel < 0)
		return NULL;
	for (int64 i = 0; i < res->nrows; i++)
		if (res->rows[i][name] && strcmp(res->rows[i][name], table) == 0 &&
			res->rows[i][channel] && *res->rows[i][channel])
			return res->rows[i][channel];
	return NULL;
}

static bool
list_has_string(List *l, const char *s)
{
	ListCell   *lc;

	foreach(lc, l)
		if (strcmp((const char *) lfirst(lc), s) == 0)
			return true;
	return false;
}

/* A copy of l without the strings equal to s. */
static List *
list_without_string(List *l, const char *s)
{
	List	   *out = NIL;
	ListCell   *lc;

	foreach(lc, l)
		if (strcmp((const char *) lfirst(lc), s) != 0)
			out = lappend(out, lfirst(lc));
	return out;
}

/* The name at the start of a column definition ("NAME" type AS ...). */
static char *
definition_name(const char *def)
{
	StringInfoData buf;

	initStringInfo(&buf);
	if (*def != '"')
		return buf.data;
	for (const char *c = def + 1; *c; c++)
	{
		if (*c == '"')
		{
			if (c[1] != '"')
				break;
			c++;
		}
		appendStringInfoChar(&buf, *c);
	}
	return buf.data;
}

/*
 * The ALTER TABLE statements that turn the columns last applied into the
 * planned ones in place, or false when that takes CREATE OR REPLACE.  In
 * place: only columns dropped (the others in their order) and columns added
 * at the end, nothing else changed (same shape hash: partitions, location,
 * format).  External tables change columns with ALTER TABLE ... ADD COLUMN
 * <name> <type> AS (<expr>) and DROP COLUMN (ALTER TABLE, extTableColumnAction;
 * ALTER EXTERNAL TABLE has no column actions), with IF NOT EXISTS / IF
 * EXISTS: the state is written once all of them ran, so a sync that stopped
 * half-way repeats the ones done.  A column
 * whose type or expression changed is a drop and an add of the same name:
 * that would move it to the end, so it is replaced instead.
 */
static bool
in_place_changes(GlueState *prev, GluePlan *plan, List **stmts)
{
	ListCell   *lc;
	int			next = 0;
	List	   *dropped = NIL;

	if (prev->shape_hash == NULL || strcmp(prev->shape_hash, plan->shape_hash) != 0 ||
		prev->columns == NIL)
		return false;
	/* the kept columns, in order, are a prefix of the planned ones */
	foreach(lc, prev->columns)
	{
		char	   *def = (char *) lfirst(lc);

		if (next < list_length(plan->columns) &&
			strcmp(def, (char *) list_nth(plan->columns, next)) == 0)
			next++;
		else
			dropped = lappend(dropped, definition_name(def));
	}
	if (next == 0)
		return false;			/* keep at least one column */
	foreach(lc, dropped)
		*stmts = lappend(*stmts, psprintf("ALTER TABLE %s DROP COLUMN IF EXISTS %s", plan->table_sql,
										  sf_quote_ident((char *) lfirst(lc))));
	for (int i = next; i < list_length(plan->columns); i++)
	{
		char	   *def = (char *) list_nth(plan->columns, i);

		if (list_has_string(dropped, definition_name(def)))
			return false;		/* a changed column */
		*stmts = lappend(*stmts, psprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s",
										  plan->table_sql, def));
	}
	return *stmts != NIL;
}

static char *user_partition_statement(GluePlan *plan, const char *entry, bool add);

/*
 * One statement that brings a table's partitions in line: a REFRESH
 * (entry NULL: idempotent, tried again as a whole if one fails), or the ADD
 * or DROP PARTITION of one USER_SPECIFIED entry (recorded one by one, so
 * that a sync that stops half-way does not add a partition twice).
 */
typedef struct PartStep
{
	char	   *sql;
	const char *entry;
	bool		add;
} PartStep;

static PartStep *
part_step(char *sql, const char *entry, bool add)
{
	PartStep   *ps = palloc0(sizeof(PartStep));

	ps->sql = sql;
	ps->entry = entry;
	ps->add = add;
	return ps;
}

/* What is only in old and only in new, two sorted lists of strings (a merge). */
static void
diff_sorted(List *old, List *cur, List **removed, List **added)
{
	int			i = 0;
	int			j = 0;

	*removed = NIL;
	*added = NIL;
	while (i < list_length(old) || j < list_length(cur))
	{
		int			c = i >= list_length(old) ? 1 : j >= list_length(cur) ? -1 :
			strcmp(list_nth(old, i), list_nth(cur, j));

		if (c == 0)
		{
			i++;
			j++;
		}
		else if (c < 0)
			*removed = lappend(*removed, list_nth(old, i++));
		else
			*added = lappend(*added, list_nth(cur, j++));
	}
}

/*
 * USER_SPECIFIED: the partitions gone or changed since the last sync are
 * dropped, then the new or changed ones added (from nothing: all added).
 */
static List *
user_partition_changes(List *prev, GluePlan *plan, char **summary)
{
	List	   *removed;
	List	   *added;
	List	   *drops = NIL;
	List	   *adds = NIL;
	ListCell   *lc;

	diff_sorted(prev, plan->partitions, &removed, &added);
	foreach(lc, removed)
		drops = lappend(drops, part_step(user_partition_statement(plan, (char *) lfirst(lc), false),
										 (char *) lfirst(lc), false));
	foreach(lc, added)
		adds = lappend(adds, part_step(user_partition_statement(plan, (char *) lfirst(lc), true),
									   (char *) lfirst(lc), true));
	if (drops != NIL || adds != NIL)
		*summary = psprintf("partitions: %d added, %d removed (USER_SPECIFIED, values from AWS Glue: %s)",
							list_length(adds), list_length(drops), plan->user_specified_why);
	return list_concat(drops, adds);
}

/*
 * The REFRESH statements for the partitions that changed since the last
 * sync: ALTER EXTERNAL TABLE ... REFRESH '<directory>' for each directory
 * added or removed ("Optionally specify a relative path to refresh the
 * metadata for a specific subset of the data files": new files in the path
 * are registered, files no longer there are removed), or one REFRESH of the
 * whole location for more than GLUE_REFRESH_MAX changes or when the last
 * sync did not record partitions.  With AUTO_REFRESH = TRUE Snowflake
 * follows the event notifications and nothing is sent.  *summary says what
 * changed (NULL: nothing).
 */
static List *
refresh_statements(GlueState *prev, GluePlan *plan, bool auto_refresh, char **summary)
{
	List	   *changed;
	List	   *gone;
	List	   *arrived;
	int			added;
	int			removed;

	*summary = NULL;
	if (plan->user_specified)
		return user_partition_changes(prev->partitions_known ? prev->partitions : NIL,
									  plan, summary);
	if (!prev->partitions_known)
	{
		if (plan->partitions == NIL)
			return NIL;
		*summary = "partitions not recorded by the last sync: refreshed the whole location";
		if (auto_refresh)
			return NIL;
		return list_make1(part_step(psprintf("ALTER EXTERNAL TABLE %s REFRESH", plan->table_sql),
									NULL, false));
	}
	diff_sorted(prev->partitions, plan->partitions, &gone, &arrived);
	removed = list_length(gone);
	added = list_length(arrived);
	changed = list_concat(gone, arrived);
	if (changed == NIL)
		return NIL;
	*summary = psprintf("partitions: %d added, %d removed%s", added, removed,
						auto_refresh ? " (AUTO_REFRESH = TRUE: left to Snowflake)" :
						list_length(changed) > GLUE_REFRESH_MAX ? " (refreshed the whole location)" : "");
	if (auto_refresh)
		return NIL;
	if (list_length(changed) > GLUE_REFRESH_MAX)
		return list_make1(part_step(psprintf("ALTER EXTERNAL TABLE %s REFRESH", plan->table_sql),
									NULL, false));
	{
		List	   *steps = NIL;
		ListCell   *lc;

		foreach(lc, changed)
			steps = lappend(steps, part_step(psprintf("ALTER EXTERNAL TABLE %s REFRESH %s",
													  plan->table_sql,
													  sf_quote_literal((char *) lfirst(lc))),
											 NULL, false));
		return steps;
	}
}

/*
 * USER_SPECIFIED partitions: ALTER EXTERNAL TABLE ... ADD PARTITION
 * ("K1" = 'v1', ...) LOCATION '<directory>' ("Adding a partition also adds
 * any new or updated files in the location to the external table
 * metadata"), or DROP PARTITION LOCATION '<directory>' ("Dropping a
 * partition also removes any files in the location"); the location is
 * relative to the table's.  entry is ["<directory>", "<value>", ...].
 */
static char *
user_partition_statement(GluePlan *plan, const char *entry, bool add)
{
	json_error_t jerr;
	json_t	   *arr = json_loads(entry, 0, &jerr);
	StringInfoData buf;
	size_t		i;
	json_t	   *v;

	if (arr == NULL || !json_is_array(arr) || json_array_size(arr) < 1)
		elog(ERROR, "invalid partition entry in sfexport.glue_sync_state");
	sf_json_tracked(arr);
	initStringInfo(&buf);
	if (!add)
	{
		appendStringInfo(&buf, "ALTER EXTERNAL TABLE %s DROP PARTITION LOCATION %s", plan->table_sql,
						 sf_quote_literal(json_string_value(json_array_get(arr, 0))));
		return buf.data;
	}
	appendStringInfo(&buf, "ALTER EXTERNAL TABLE %s ADD PARTITION (", plan->table_sql);
	json_array_foreach(arr, i, v)
	{
		if (i == 0)
			continue;
		if (i > (size_t) list_length(plan->part_names))
			break;
		appendStringInfo(&buf, "%s%s = %s", i > 1 ? ", " : "",
						 sf_quote_ident((char *) list_nth(plan->part_names, i - 1)),
						 sf_quote_literal(json_string_value(v) ? json_string_value(v) : ""));
	}
	appendStringInfo(&buf, ") LOCATION %s",
					 sf_quote_literal(json_string_value(json_array_get(arr, 0))));
	return buf.data;
}

static char *
join_statements(List *stmts)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, stmts)
		appendStringInfo(&buf, "%s%s", buf.len ? ";\n" : "", (char *) lfirst(lc));
	return buf.data;
}

static int
cmp_plan_names(const ListCell *a, const ListCell *b)
{
	return strcmp(((SfGlueTable *) lfirst(a))->name ? ((SfGlueTable *) lfirst(a))->name : "",
				  ((SfGlueTable *) lfirst(b))->name ? ((SfGlueTable *) lfirst(b))->name : "");
}

/*
 * The target database and schema: explicit, else <database>__<schema> from
 * the Glue database name (upper-cased), else the server's.
 */
static void
resolve_target(SfGlueSyncArgs *a, SfServerConfig *srv, char **tdb, char **tschema)
{
	const char *sep = strstr(a->glue_database, "__");

	*tdb = a->target_database;
	*tschema = a->target_schema;
	if (sep && sep != a->glue_database && sep[2] != '\0')
	{
		if (*tdb == NULL)
			*tdb = sf_glue_upper_name(pnstrdup(a->glue_database, sep - a->glue_database));
		if (*tschema == NULL)
			*tschema = sf_glue_upper_name(sep + 2);
	}
	if (*tdb == NULL)
		*tdb = srv->database;
	if (*tschema == NULL)
		*tschema = srv->schema;
	if (!sf_glue_usable_name(*tdb) || !sf_glue_usable_name(*tschema))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid target database or schema for AWS Glue database \"%s\"",
						sf_glue_shown_name(a->glue_database)),
				 errdetail("Names must be 1 to %d bytes without control characters.", SF_GLUE_NAME_MAX)));
}

/* One sync: where its rows go (the caller, and the log unless dry run). */
typedef struct SyncOut
{
	SfGlueSyncArgs *a;
	SfGlueEmitFn emit;
	void	   *emit_arg;
	List	   *reported;		/* char *: the Glue tables reported */
} SyncOut;

static void
report(SyncOut *o, const char *glue_table, const char *action, const char *reason,
	   const char *statement)
{
	o->emit(o->emit_arg, glue_table, action, reason, statement);
	if (!o->a->dry_run && glue_table)
	{
		sf_glue_log_save(o->a->serverid, o->a->glue_database, glue_table, action, reason,
					  o->a->periodic);
		o->reported = lappend(o->reported, pstrdup(glue_table));
	}
}

/* Planning one table in a subtransaction: Glue may refuse its partitions. */
typedef struct PlanCall
{
	SfGlueClient *gc;
	SfGlueConfig *conf;
	const char *glue_db;
	SfGlueTable *t;
	const char *tdb;
	const char *tschema;
	GluePlan   *plan;
} PlanCall;

static void
plan_call(void *arg)
{
	PlanCall   *p = (PlanCall *) arg;

	sf_glue_plan_table(p->gc, p->conf, p->glue_db, p->t, p->tdb, p->tschema, p->plan);
}

/*
 * The sync itself; emits one row per Glue table (and per table gone from
 * Glue).  Also run by the worker's periodic sync (glue_periodic.c).
 */
void
sf_glue_sync_run(SfGlueSyncArgs *a, SfGlueEmitFn emit, void *emit_arg)
{
	SfGlueConfig *conf = sf_get_glue_config(a->serverid);
	SfUserConfig *usr = sf_get_user_config(a->serverid, a->userid);
	SfGlueClient *gc = sf_glue_client(conf, usr);
	SyncOut		out = {a, emit, emit_arg, NIL};
	char	   *tdb;
	char	   *tschema;
	List	   *tables;
	List	   *state;
	List	   *existing = NIL;
	bool		existing_known = false;
	ListCell   *lc;

	resolve_target(a, conf->srv, &tdb, &tschema);
	tables = sf_glue_list_tables(gc, a->glue_database, a->pattern);
	list_sort(tables, cmp_plan_names);
	state = sf_glue_state_load(a->serverid, a->glue_database, tdb, tschema);
	/* drift: which of the tables created earlier still exist (one SHOW) */
	if (state != NIL)
		existing = existing_tables(conf->srv, usr, tdb, tschema, &existing_known);

	foreach(lc, tables)
	{
		SfGlueTable  *t = (SfGlueTable *) lfirst(lc);
		GluePlan	plan;
		GlueState  *prev = NULL;
		ListCell   *sc;
		const char *action;
		char	   *reason = NULL;
		char	   *summary = NULL;
		List	   *stmts = NIL;	/* the table's definition: CREATE, or ALTER TABLE */
		List	   *steps = NIL;	/* then its partitions: PartStep * */
		List	   *applied;		/* the partitions in Snowflake after stmts */
		bool		applied_known;
		List	   *shown;
		bool		missing;
		PlanCall	pc = {gc, conf, a->glue_database, t, tdb, tschema, &plan};
		ErrorData  *edata;

		CHECK_FOR_INTERRUPTS();
		foreach(sc, state)
		{
			GlueState  *s = (GlueState *) lfirst(sc);

			if (t->name && strcmp(s->glue_table, t->name) == 0)
			{
				prev = s;
				s->seen = true;
			}
		}
		edata = sf_run_subtransaction(plan_call, &pc);
		if (edata)
		{
			if (stops_the_sync(edata))
				ReThrowError(edata);
			report(&out, t->name, "failed", psprintf("reading the table from AWS Glue failed: %s",
													 edata->message), NULL);
			FreeErrorData(edata);
			continue;
		}
		if (plan.skip_reason)
		{
			report(&out, t->name, "skipped", plan.skip_reason, NULL);
			continue;
		}
		missing = prev && existing_known && !list_has_string(existing, plan.target_table);
		if (prev && !missing &&
			(strcmp(prev->hash, plan.hash) == 0 || in_place_changes(prev, &plan, &stmts)))
		{
			/* the table stays: columns changed in place, partitions refreshed */
			action = stmts ? "altered" : "unchanged";
			steps = refresh_statements(prev, &plan, conf->auto_refresh, &summary);
			if (stmts == NIL && steps == NIL && summary == NULL)
			{
				report(&out, t->name, "unchanged", NULL, NULL);
				continue;
			}
			if (stmts == NIL && steps != NIL)
				action = "refreshed";
			applied = prev->partitions;
			applied_known = prev->partitions_known;
		}
		else
		{
			action = prev == NULL ? "created" : missing ? "repaired" : "replaced";
			/*
			 * COPY GRANTS: the replaced table's grants stay (CREATE EXTERNAL
			 * TABLE: "[ COPY GRANTS ]" after FILE_FORMAT); also when repairing,
			 * in case the table came back since the SHOW.
			 */
			stmts = list_make1(prev != NULL
							   ? psprintf("%s\nCOPY GRANTS", plan.statement) : plan.statement);
			/*
			 * CREATE registers every file below the location; a
			 * USER_SPECIFIED table has no partitions yet: add them all.
			 */
			applied = plan.user_specified ? NIL : plan.partitions;
			applied_known = true;
			if (plan.user_specified)
				steps = user_partition_changes(NIL, &plan, &summary);
			if (missing)
				summary = psprintf("the external table %s was missing in Snowflake: created again",
								   plan.table_sql);
		}
		shown = list_copy(stmts);
		foreach(sc, steps)
			shown = lappend(shown, ((PartStep *) lfirst(sc))->sql);
		if (a->dry_run)
		{
			report(&out, t->name, action, summary, shown ? join_statements(shown) : NULL);
			continue;
		}
		foreach(sc, stmts)
		{
			reason = run_table_statement(conf->srv, usr, (char *) lfirst(sc));
			if (reason)
				break;
		}
		if (reason)
		{
			report(&out, t->name, "skipped", reason, join_statements(shown));
			continue;
		}
		/* the definition is in place: record it before the partitions */
		if (stmts != NIL)
			sf_glue_state_save(a->serverid, a->glue_database, tdb, tschema, &plan,
							applied, applied_known);
		foreach(sc, steps)
		{
			PartStep   *ps = (PartStep *) lfirst(sc);

			reason = run_table_statement(conf->srv, usr, ps->sql);
			if (reason)
				break;
			/* USER_SPECIFIED: what is added or dropped is recorded as it goes */
			if (ps->entry)
				applied = ps->add ? lappend(list_copy(applied), (char *) ps->entry) :
					list_without_string(applied, ps->entry);
		}
		if (reason)
		{
			if (plan.user_specified)
			{
				list_sort(applied, sf_glue_cmp_strings);
				sf_glue_state_save(a->serverid, a->glue_database, tdb, tschema, &plan,
								applied, applied_known);
			}
			report(&out, t->name, "skipped", reason, join_statements(shown));
			continue;
		}
		sf_glue_state_save(a->serverid, a->glue_database, tdb, tschema, &plan,
						plan.partitions, true);
		/* a new AUTO_REFRESH table: say where the S3 events must go */
		if (conf->auto_refresh && !plan.user_specified && steps == NIL &&
			strcmp(action, "altered") != 0 && strcmp(action, "unchanged") != 0)
		{
			char	   *ch = notification_channel(conf->srv, usr, tdb, tschema, plan.target_table);

			if (ch)
				summary = psprintf("%s%sAUTO_REFRESH = TRUE: send the S3 event notifications of the table's location to %s",
								   summary ? summary : "", summary ? "; " : "", ch);
		}
		report(&out, t->name, action, summary, shown ? join_statements(shown) : NULL);
	}

	/* tables we created earlier that Glue no longer has */
	foreach(lc, state)
	{
		GlueState  *s = (GlueState *) lfirst(lc);
		char	   *sql;
		char	   *reason;

		if (s->seen ||
			!DatumGetBool(DirectFunctionCall2Coll(textlike, C_COLLATION_OID,
												  CStringGetTextDatum(s->glue_table),
												  CStringGetTextDatum(a->pattern))))
			continue;
		sql = psprintf("DROP EXTERNAL TABLE IF EXISTS %s.%s.%s", sf_quote_ident(tdb),
					   sf_quote_ident(tschema), sf_quote_ident(s->target_table));
		if (!a->drop_missing)
		{
			report(&out, s->glue_table, "skipped",
				   "the table is no longer in AWS Glue; pass drop_missing => true to drop its external table",
				   NULL);
			continue;
		}
		if (a->dry_run)
		{
			report(&out, s->glue_table, "dropped", NULL, sql);
			continue;
		}
		reason = run_table_statement(conf->srv, usr, sql);
		if (reason)
		{
			report(&out, s->glue_table, "skipped", reason, sql);
			continue;
		}
		sf_glue_state_delete(a->serverid, a->glue_database, tdb, tschema, s->glue_table);
		report(&out, s->glue_table, "dropped", NULL, sql);
	}
	if (!a->dry_run)
		sf_glue_log_forget(a->serverid, a->glue_database, a->pattern, out.reported);
}
