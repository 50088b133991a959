/*-------------------------------------------------------------------------
 *
 * evolve.c
 *		Schema evolution before a load: the Snowflake target gains the
 *		columns a newer record shape brings, or the load fails if its
 *		columns cannot hold the records without loss.
 *
 * Before the worker loads files of a column shape into a target for the
 * first time (per backend), sf_evolve_target() reads the table with
 * DESCRIBE TABLE, adds the columns it lacks (ALTER TABLE ... ADD COLUMN IF
 * NOT EXISTS) and refuses a table whose existing columns cannot hold the
 * records without loss (see column_compatible()).  A refusal is an error of
 * that COPY only: the files stay staged with the error and are retried with
 * backoff; other targets load normally.  sfexport.setup_table()
 * (sql_setup.c) applies the same statements to an existing table.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "sfexport.h"

#include "config.h"
#include "evolve.h"
#include "snowflake.h"
#include "statements.h"

/*
 * The family of a Snowflake type as DESCRIBE TABLE prints it (NUMBER(38,0),
 * VARCHAR(16777216), TIMESTAMP_TZ(9), ...) or as we write it, and its
 * scale (-1 when the family has none).
 */
static const char *
type_family(const char *sftype, int *scale)
{
	char		word[64];
	int			n = 0;
	const char *paren;
	int			a = -1;
	int			b = -1;

	while (sftype[n] && sftype[n] != '(' && sftype[n] != ' ' && n < (int) sizeof(word) - 1)
	{
		word[n] = pg_ascii_toupper((unsigned char) sftype[n]);
		n++;
	}
	word[n] = '\0';
	paren = strchr(sftype, '(');
	if (paren)
		(void) sscanf(paren, "(%d,%d)", &a, &b);

	*scale = -1;
	if (strcmp(word, "NUMBER") == 0 || strcmp(word, "DECIMAL") == 0 ||
		strcmp(word, "NUMERIC") == 0)
	{
		*scale = b >= 0 ? b : 0;
		return "NUMBER";
	}
	if (strcmp(word, "INT") == 0 || strcmp(word, "INTEGER") == 0 ||
		strcmp(word, "BIGINT") == 0 || strcmp(word, "SMALLINT") == 0 ||
		strcmp(word, "TINYINT") == 0 || strcmp(word, "BYTEINT") == 0)
	{
		*scale = 0;
		return "NUMBER";
	}
	if (strcmp(word, "FLOAT") == 0 || strcmp(word, "FLOAT4") == 0 ||
		strcmp(word, "FLOAT8") == 0 || strcmp(word, "DOUBLE") == 0 ||
		strcmp(word, "REAL") == 0)
		return "FLOAT";
	if (strcmp(word, "VARCHAR") == 0 || strcmp(word, "CHAR") == 0 ||
		strcmp(word, "CHARACTER") == 0 || strcmp(word, "STRING") == 0 ||
		strcmp(word, "TEXT") == 0 || strcmp(word, "NCHAR") == 0 ||
		strcmp(word, "NVARCHAR") == 0)
		return "TEXT";
	if (strcmp(word, "BINARY") == 0 || strcmp(word, "VARBINARY") == 0)
		return "BINARY";
	if (strcmp(word, "TIME") == 0 || strncmp(word, "TIMESTAMP", 9) == 0 ||
		strcmp(word, "DATETIME") == 0)
	{
		*scale = a >= 0 ? a : 9;
		if (strcmp(word, "TIMESTAMP") == 0 || strcmp(word, "DATETIME") == 0)
			return "TIMESTAMP_NTZ"; /* Snowflake's default mapping */
		return pstrdup(word);
	}
	return pstrdup(word);		/* BOOLEAN, DATE, VARIANT, ARRAY, OBJECT, ... */
}

/*
 * Can an existing Snowflake column of type existing hold, without loss, the
 * values we load as type mapped?  Same family with at least the scale
 * (fewer decimals or fractional-second digits would round silently), or a
 * VARCHAR or VARIANT column, which holds any value's text.  A shorter
 * length or smaller precision is allowed: an oversized value makes its file
 * fail visibly, it is never cut.
 */
static bool
column_compatible(const char *existing, const char *mapped)
{
	int			escale;
	int			mscale;
	const char *efam = type_family(existing, &escale);
	const char *mfam = type_family(mapped, &mscale);

	if (strcmp(efam, "TEXT") == 0 || strcmp(efam, "VARIANT") == 0)
		return true;
	if (strcmp(efam, mfam) != 0)
		return false;
	return escale >= mscale;
}

/*
 * Run one setup statement in Snowflake (query tag "sfexport setup"; shown
 * redacted in any error context).
 */
SfSnowflakeResult *
sf_run_setup_statement(SfServerConfig *srv, SfUserConfig *usr, const char *sql)
{
	SfStatement stmt;

	memset(&stmt, 0, sizeof(stmt));
	stmt.sql = sql;				/* shown redacted in any error context */
	stmt.query_tag = "sfexport setup";
	return sf_snowflake_run(srv, usr, &stmt);
}

/*
 * Statements that bring target's columns in line with cols: DESCRIBE TABLE,
 * then one ALTER TABLE ... ADD COLUMN IF NOT EXISTS per missing column.  A
 * column that exists with a type that cannot hold the records, or a NOT
 * NULL column without default that the records lack, is an error naming
 * the first problem (the manifest keeps only the message) and listing all.
 */
List *
sf_evolve_statements(SfServerConfig *srv, SfUserConfig *usr, const char *target,
				  int ncols, SfColumnDef *cols)
{
	SfSnowflakeResult *res;
	int			cname;
	int			ctype;
	int			cnull;
	int			cdefault;
	List	   *stmts = NIL;
	StringInfoData problems;
	char	   *first = NULL;
	int			nproblems = 0;

	res = sf_run_setup_statement(srv, usr, psprintf("DESCRIBE TABLE %s", target));
	cname = sf_result_column(res, "name");
	ctype = sf_result_column(res, "type");
	cnull = sf_result_column(res, "null?");
	cdefault = sf_result_column(res, "default");
	if (cname < 0 || ctype < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_ERROR),
				 errmsg("unexpected result of DESCRIBE TABLE %s", target),
				 errdetail("The result has no \"name\" or \"type\" column.")));

	initStringInfo(&problems);
	for (int i = 0; i < ncols; i++)
	{
		int64		row = -1;

		for (int64 r = 0; r < res->nrows; r++)
			if (res->rows[r][cname] && strcmp(res->rows[r][cname], cols[i].name) == 0)
			{
				row = r;
				break;
			}
		if (row < 0)
			stmts = lappend(stmts, sf_add_column_statement(target, cols[i].name,
														   cols[i].sftype));
		else if (res->rows[row][ctype] &&
				 !column_compatible(res->rows[row][ctype], cols[i].sftype))
		{
			char	   *p = psprintf("column \"%s\" is %s, which cannot hold %s values (loaded as %s) without loss",
									 cols[i].name, res->rows[row][ctype],
									 cols[i].pgtype, cols[i].sftype);

			appendStringInfo(&problems, "%s%s.", nproblems ? "\n" : "", p);
			if (first == NULL)
				first = p;
			nproblems++;
		}
	}

	/* a NOT NULL column without default that the records do not fill */
	for (int64 r = 0; cnull >= 0 && r < res->nrows; r++)
	{
		bool		found = false;
		const char *name = res->rows[r][cname];

		if (name == NULL || res->rows[r][cnull] == NULL ||
			pg_strcasecmp(res->rows[r][cnull], "N") != 0 ||
			(cdefault >= 0 && res->rows[r][cdefault] != NULL))
			continue;
		for (int i = 0; i < ncols && !found; i++)
			found = strcmp(name, cols[i].name) == 0;
		if (!found)
		{
			char	   *p = psprintf("column \"%s\" is NOT NULL without a default, and the records have no such column",
									 name);

			appendStringInfo(&problems, "%s%s.", nproblems ? "\n" : "", p);
			if (first == NULL)
				first = p;
			nproblems++;
		}
	}

	if (nproblems > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("Snowflake table %s does not match the foreign table: %s",
						target, first),
				 errdetail_internal("%s", problems.data),
				 errhint("Change the Snowflake column (for example to the type shown), or point the foreign table column elsewhere with the column_name option; staged files load once the table matches.")));
	return stmts;
}

/* (server, target, shape) combinations checked by this backend. */
static List *evolved_keys = NIL;

/* Check every target again at its next load (after a failed COPY). */
void
sf_evolve_forget(void)
{
	list_free_deep(evolved_keys);
	evolved_keys = NIL;
}

/*
 * Before a COPY of files with these columns and PostgreSQL types into
 * target: add the columns the table lacks, or fail if its columns cannot
 * hold the records.  Runs once per server, target and shape in a backend
 * (sf_evolve_forget() starts over, e.g. after a failed COPY).  A
 * missing table is an error here, as it would be for COPY.
 */
void
sf_evolve_target(SfServerConfig *srv, SfUserConfig *usr, const char *target,
				ArrayType *columns, ArrayType *types)
{
	Datum	   *names;
	Datum	   *typs;
	int			ncols;
	int			ntypes;
	SfColumnDef *cols;
	StringInfoData key;
	ListCell   *lc;
	List	   *stmts;
	MemoryContext old;

	deconstruct_array(columns, TEXTOID, -1, false, TYPALIGN_INT, &names, NULL, &ncols);
	deconstruct_array(types, TEXTOID, -1, false, TYPALIGN_INT, &typs, NULL, &ntypes);
	if (ncols != ntypes)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("malformed column shape for %s", target)));

	initStringInfo(&key);
	appendStringInfo(&key, "%u", srv->serverid);
	appendStringInfoChar(&key, '\0');
	appendStringInfoString(&key, target);
	cols = palloc(sizeof(SfColumnDef) * ncols);
	for (int i = 0; i < ncols; i++)
	{
		cols[i].name = TextDatumGetCString(names[i]);
		cols[i].pgtype = TextDatumGetCString(typs[i]);
		appendStringInfoChar(&key, '\0');
		appendStringInfoString(&key, cols[i].name);
		appendStringInfoChar(&key, '\0');
		appendStringInfoString(&key, cols[i].pgtype);
	}
	/* keys hold NULs: compare as length-prefixed bytes */
	foreach(lc, evolved_keys)
	{
		bytea	   *k = (bytea *) lfirst(lc);

		if (VARSIZE(k) - VARHDRSZ == (Size) key.len &&
			memcmp(VARDATA(k), key.data, key.len) == 0)
			return;
	}

	for (int i = 0; i < ncols; i++)
		cols[i].sftype = sf_snowflake_type_for_name(cols[i].pgtype);

	stmts = sf_evolve_statements(srv, usr, target, ncols, cols);
	foreach(lc, stmts)
	{
		const char *sql = (const char *) lfirst(lc);

		(void) sf_run_setup_statement(srv, usr, sql);
		ereport(LOG,
				(errmsg("sfexport: added a column to Snowflake table %s", target),
				 errdetail_internal("%s", sql)));
	}

	old = MemoryContextSwitchTo(TopMemoryContext);
	{
		bytea	   *k = palloc(VARHDRSZ + key.len);

		SET_VARSIZE(k, VARHDRSZ + key.len);
		memcpy(VARDATA(k), key.data, key.len);
		evolved_keys = lappend(evolved_keys, k);
	}
	MemoryContextSwitchTo(old);
}
