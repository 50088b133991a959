/*-------------------------------------------------------------------------
 *
 * setup.c
 *		Snowflake-side setup from SQL, and schema evolution before a load.
 *
 *	sfexport.setup_stage(server, dry_run)
 *		CREATE FILE FORMAT IF NOT EXISTS <db>.<schema>.<file_format>
 *		  <sf_csv_format_options()> COMPRESSION = AUTO
 *		CREATE STAGE IF NOT EXISTS <db>.<schema>.<stage> URL = '<location>'
 *		  [STORAGE_INTEGRATION = <i> | CREDENTIALS = (AWS_KEY_ID = ...)]
 *		  FILE_FORMAT = (FORMAT_NAME = '<file format>')
 *	sfexport.setup_table(foreign_table, dry_run)
 *		CREATE TABLE IF NOT EXISTS <target> (<column> <type>, ...)
 *		then (not in a dry run) the columns the table lacks are added
 *		for a table in load_mode 'snowpipe', also
 *		CREATE PIPE IF NOT EXISTS <db>.<schema>.<table>_SFEXPORT_PIPE_<shape>
 *		  AS <the worker's COPY without FILES> (snowpipe.c)
 *	sfexport.setup(server, dry_run)				(SQL, in the install script)
 *		both, for every foreign table of the server
 *
 * Statements run through the Snowflake SQL API as the user mapping of the
 * server's owner, the mapping the worker uses, so the stage reads the files
 * with the credentials that wrote them.  Only the server's owner or a
 * superuser may call them.  The text returned (and any error context) has
 * credential values replaced by '***' (sf_redact_sql).  Only keys of the
 * owner's user mapping ever go into CREATE STAGE ... CREDENTIALS: keys of
 * the database server's environment (aws_from_host) are refused, dry run
 * or not, so that the host's identity never reaches a statement.
 *
 * Idempotency: every CREATE is IF NOT EXISTS, never OR REPLACE.  Replacing
 * a table would drop its rows and its load metadata (and with it the
 * exactly-once guarantee for files not yet deleted); replacing a stage or
 * file format is harmless for load metadata (it belongs to the table) but
 * would silently change objects a user may have adjusted.  A changed
 * location or credentials therefore need DROP STAGE first (docs/setup.md).
 *
 * Schema evolution: before the worker loads files of a column shape into a
 * target for the first time (per backend), sf_setup_evolve() reads the
 * table with DESCRIBE TABLE, adds the columns it lacks (ALTER TABLE ... ADD
 * COLUMN IF NOT EXISTS) and refuses a table whose existing columns cannot
 * hold the records without loss (see column_compatible()).  A refusal is an
 * error of that COPY only: the files stay staged with the error and are
 * retried with backoff; other targets load normally.
 *
 * Every identifier goes through sf_quote_ident() and every literal through
 * sf_quote_literal(), so names from PostgreSQL or from options cannot
 * change a statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_type.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "sfexport.h"

/* Snowflake NUMBER holds at most 38 digits ("Numeric data types"). */
#define SF_NUMBER_MAX_PRECISION 38

/* One column of a target: Snowflake name, Snowflake type, PostgreSQL type. */
typedef struct SetupColumn
{
	char	   *name;
	char	   *sftype;
	char	   *pgtype;
} SetupColumn;

/* ---------------------------------------------------------------------
 * Type mapping
 * ---------------------------------------------------------------------
 */

/*
 * numeric(p,s) → NUMBER(p,s).  PostgreSQL 15 also allows a negative scale
 * (numeric(5,-2) rounds to hundreds: at most p - s digits, no fraction) and
 * a scale above the precision (numeric(2,5): |x| < 0.001); both fit a NUMBER
 * with adjusted precision.  Unconstrained numeric (any scale, NaN,
 * Infinity) and precisions above 38 have no lossless NUMBER: VARCHAR keeps
 * the exact text.
 */
static char *
numeric_type(int32 typmod)
{
	int			p;
	int			s;

	if (typmod < (int32) VARHDRSZ)
		return "VARCHAR";
	p = ((typmod - VARHDRSZ) >> 16) & 0xffff;
	s = (((typmod - VARHDRSZ) & 0x7ff) ^ 1024) - 1024;	/* sign-extend 11 bits */
	if (s < 0)
	{
		p -= s;
		s = 0;
	}
	if (s > p)
		p = s;
	if (p > SF_NUMBER_MAX_PRECISION)
		return "VARCHAR";
	return psprintf("NUMBER(%d,%d)", p, s);
}

/*
 * The Snowflake column type for a PostgreSQL type and typmod: the mapping
 * documented in docs/setup.md.  It matches what the encoder (encode.c)
 * writes for the type, so a value loads without loss.  Domains map as their
 * base type (with the base typmod).
 */
char *
sf_setup_snowflake_type(Oid typid, int32 typmod)
{
	Oid			base = getBaseTypeAndTypmod(typid, &typmod);

	switch (base)
	{
		case BOOLOID:
			return "BOOLEAN";
		case INT2OID:
			return "NUMBER(5,0)";
		case INT4OID:
			return "NUMBER(10,0)";
		case INT8OID:
			return "NUMBER(19,0)";
		case OIDOID:
			return "NUMBER(10,0)";
		case NUMERICOID:
			return numeric_type(typmod);
		case FLOAT4OID:
		case FLOAT8OID:
			return "FLOAT";		/* 64-bit IEEE, with NaN and +-inf */
		case VARCHAROID:
			return typmod >= (int32) VARHDRSZ ?
				psprintf("VARCHAR(%d)", typmod - (int32) VARHDRSZ) : "VARCHAR";
		case BPCHAROID:
			return typmod >= (int32) VARHDRSZ ?
				psprintf("CHAR(%d)", typmod - (int32) VARHDRSZ) : "VARCHAR";
		case DATEOID:
			return "DATE";
		case TIMEOID:
			return psprintf("TIME(%d)", typmod >= 0 ? typmod : 6);
		case TIMESTAMPOID:
			return psprintf("TIMESTAMP_NTZ(%d)", typmod >= 0 ? typmod : 6);
		case TIMESTAMPTZOID:
			/* the encoder writes the inserting session's offset: kept */
			return psprintf("TIMESTAMP_TZ(%d)", typmod >= 0 ? typmod : 6);
		case UUIDOID:
			return "VARCHAR(36)";
		case JSONOID:
		case JSONBOID:
			return "VARIANT";	/* COPY applies PARSE_JSON (load.c) */
		case BYTEAOID:
			return "BINARY";
		default:
			if (OidIsValid(get_element_type(base)))
				return "ARRAY"; /* written as a JSON array, PARSE_JSON */

			/*
			 * text, name, timetz (Snowflake's TIME has no zone), interval
			 * (ISO 8601 text; Snowflake has no interval column type),
			 * enums (their label) and every other type: its text.
			 */
			return "VARCHAR";
	}
}

/*
 * The Snowflake type for a PostgreSQL type named as format_type prints it
 * (sfexport.shapes.types).  The worker resolves names in pg_catalog only
 * (elevated.c), so a type of another schema printed without it does not
 * resolve: such a type gets VARCHAR, which holds any text, and an array of
 * it ARRAY, as the encoder writes every array as a JSON array (load.c
 * applies PARSE_JSON to "[]" types).
 */
static char *
snowflake_type_for_name(const char *pgtype)
{
	Oid			typid;
	int32		typmod;
	ErrorSaveContext escontext = {T_ErrorSaveContext};
	size_t		len = strlen(pgtype);

	if (!parseTypeString(pgtype, &typid, &typmod, (Node *) &escontext))
		return len > 2 && strcmp(pgtype + len - 2, "[]") == 0 ? "ARRAY" : "VARCHAR";
	return sf_setup_snowflake_type(typid, typmod);
}

/* ---------------------------------------------------------------------
 * Comparing a mapped type with an existing Snowflake column
 * ---------------------------------------------------------------------
 */

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

/* ---------------------------------------------------------------------
 * Running statements
 * ---------------------------------------------------------------------
 */

/* Run one setup statement in Snowflake. */
static SfSnowflakeResult *
run_statement(SfServerConfig *srv, SfUserConfig *usr, const char *sql)
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
static List *
evolve_statements(SfServerConfig *srv, SfUserConfig *usr, const char *target,
				  int ncols, SetupColumn *cols)
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

	res = run_statement(srv, usr, psprintf("DESCRIBE TABLE %s", target));
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
			stmts = lappend(stmts,
							psprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s",
									 target, sf_quote_ident(cols[i].name),
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

/* ---------------------------------------------------------------------
 * Schema evolution in the worker
 * ---------------------------------------------------------------------
 */

/* (server, target, shape) combinations checked by this backend. */
static List *evolved_keys = NIL;

void
sf_setup_forget_evolved(void)
{
	list_free_deep(evolved_keys);
	evolved_keys = NIL;
}

/*
 * Before a COPY of files with these columns and PostgreSQL types into
 * target: add the columns the table lacks, or fail if its columns cannot
 * hold the records.  Runs once per server, target and shape in a backend
 * (sf_setup_forget_evolved() starts over, e.g. after a failed COPY).  A
 * missing table is an error here, as it would be for COPY.
 */
void
sf_setup_evolve(SfServerConfig *srv, SfUserConfig *usr, const char *target,
				ArrayType *columns, ArrayType *types)
{
	Datum	   *names;
	Datum	   *typs;
	int			ncols;
	int			ntypes;
	SetupColumn *cols;
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
	cols = palloc(sizeof(SetupColumn) * ncols);
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
		cols[i].sftype = snowflake_type_for_name(cols[i].pgtype);

	stmts = evolve_statements(srv, usr, target, ncols, cols);
	foreach(lc, stmts)
	{
		const char *sql = (const char *) lfirst(lc);

		(void) run_statement(srv, usr, sql);
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

/* ---------------------------------------------------------------------
 * SQL-callable setup functions
 * ---------------------------------------------------------------------
 */

/*
 * The sfexport server by name or of a foreign table, after checking that
 * the current user owns it (superusers pass).
 */
static void
check_setup_privilege(ForeignServer *server)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);

	if (strcmp(fdw->fdwname, "sfexport") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" does not use the sfexport foreign-data wrapper",
						server->servername)));
	if (!object_ownercheck(ForeignServerRelationId, server->serverid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set up Snowflake objects for server \"%s\"",
						server->servername),
				 errdetail("Setup functions run statements in Snowflake with the user mapping of the server's owner."),
				 errhint("Run it as the owner of server \"%s\" or as a superuser.",
						 server->servername)));
}

/* The stage URL for the server's location: bucket and prefix, or directory. */
static char *
stage_url(SfServerConfig *srv)
{
	switch (srv->location.kind)
	{
		case SF_LOCATION_S3:
			return psprintf("s3://%s/%s", srv->location.bucket, srv->location.prefix);
		case SF_LOCATION_GCS:
			return psprintf("gcs://%s/%s", srv->location.bucket, srv->location.prefix);
		case SF_LOCATION_FILE:
			/* understood by the Snowflake emulator only: local development */
			return psprintf("file://%s", srv->location.prefix);
	}
	return NULL;				/* keep compiler quiet */
}

/* The file format's qualified name, as an identifier. */
static char *
file_format_name(SfServerConfig *srv)
{
	return psprintf("%s.%s.%s", sf_quote_ident(srv->database),
					sf_quote_ident(srv->schema), sf_quote_ident(srv->file_format));
}

/* CREATE FILE FORMAT and CREATE STAGE for a server. */
static List *
stage_statements(SfServerConfig *srv, SfUserConfig *usr)
{
	StringInfoData stage;
	char	   *ff = file_format_name(srv);

	initStringInfo(&stage);
	appendStringInfo(&stage, "CREATE STAGE IF NOT EXISTS %s.%s.%s URL = %s",
					 sf_quote_ident(srv->database), sf_quote_ident(srv->schema),
					 sf_quote_ident(srv->stage), sf_quote_literal(stage_url(srv)));

	switch (srv->location.kind)
	{
		case SF_LOCATION_S3:
			if (srv->storage_integration)
				appendStringInfo(&stage, " STORAGE_INTEGRATION = %s",
								 sf_quote_ident(srv->storage_integration));
			else if (usr->aws_from_host)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
						 errmsg("the database server's own AWS credentials cannot be given to Snowflake"),
						 errdetail("Server \"%s\" has no storage_integration option, and the user mapping of its owner has no AWS keys: the only keys are those of the database server's environment, which sfexport uses to sign its own requests and never writes into a statement.",
								   srv->servername),
						 errhint("Create a storage integration in Snowflake and set it with ALTER SERVER %s OPTIONS (ADD storage_integration '...'), or give aws_access_key_id and aws_secret_access_key for Snowflake in the owner's user mapping.",
								 quote_identifier(srv->servername))));
			else if (usr->aws_access_key_id && usr->aws_secret_access_key)
			{
				appendStringInfo(&stage, " CREDENTIALS = (AWS_KEY_ID = %s AWS_SECRET_KEY = %s",
								 sf_quote_literal(usr->aws_access_key_id),
								 sf_quote_literal(usr->aws_secret_access_key));
				if (usr->aws_session_token)
					appendStringInfo(&stage, " AWS_TOKEN = %s",
									 sf_quote_literal(usr->aws_session_token));
				appendStringInfoChar(&stage, ')');
			}
			else
				ereport(ERROR,
						(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
						 errmsg("no way for Snowflake to read %s", srv->location_text),
						 errdetail("Server \"%s\" has no storage_integration option, and the user mapping of its owner has no AWS keys.",
								   srv->servername),
						 errhint("Create a storage integration in Snowflake and set it with ALTER SERVER %s OPTIONS (ADD storage_integration '...'), or give aws_access_key_id and aws_secret_access_key in the owner's user mapping.",
								 quote_identifier(srv->servername))));
			break;

		case SF_LOCATION_GCS:
			if (srv->storage_integration == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
						 errmsg("a Google Cloud Storage stage needs a Snowflake storage integration"),
						 errdetail("Snowflake does not accept credentials for GCS stages; server \"%s\" has no storage_integration option.",
								   srv->servername),
						 errhint("In Snowflake: CREATE STORAGE INTEGRATION SFEXPORT_GCS TYPE = EXTERNAL_STAGE STORAGE_PROVIDER = 'GCS' ENABLED = TRUE STORAGE_ALLOWED_LOCATIONS = ('%s'); DESC STORAGE INTEGRATION SFEXPORT_GCS shows the service account to give read access to the bucket. Then: ALTER SERVER %s OPTIONS (ADD storage_integration 'SFEXPORT_GCS').",
								 stage_url(srv), quote_identifier(srv->servername))));
			appendStringInfo(&stage, " STORAGE_INTEGRATION = %s",
							 sf_quote_ident(srv->storage_integration));
			break;

		case SF_LOCATION_FILE:
			break;
	}
	appendStringInfo(&stage, " FILE_FORMAT = (FORMAT_NAME = %s)", sf_quote_literal(ff));

	return list_make2(psprintf("CREATE FILE FORMAT IF NOT EXISTS %s %s COMPRESSION = AUTO",
							   ff, sf_csv_format_options()),
					  stage.data);
}

/* The columns of a foreign table as Snowflake columns. */
static SetupColumn *
table_columns(Oid relid, int *ncols)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	SetupColumn *cols = palloc0(sizeof(SetupColumn) * Max(desc->natts, 1));
	int			n = 0;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		cols[n].name = sf_column_target_name(relid, att->attnum);
		cols[n].pgtype = format_type_with_typemod(att->atttypid, att->atttypmod);
		cols[n].sftype = sf_setup_snowflake_type(att->atttypid, att->atttypmod);
		n++;
	}
	relation_close(rel, AccessShareLock);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("foreign table \"%s\" has no columns", get_rel_name(relid)),
				 errhint("A Snowflake table needs at least one column.")));
	*ncols = n;
	return cols;
}

/* Return statements to the caller (redacted), running them unless dry_run. */
static void
emit(ReturnSetInfo *rsinfo, SfServerConfig *srv, SfUserConfig *usr,
	 const char *sql, bool dry_run)
{
	Datum		value;
	bool		isnull = false;

	if (!dry_run)
		(void) run_statement(srv, usr, sql);
	value = CStringGetTextDatum(sf_redact_sql(sql));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
}

PG_FUNCTION_INFO_V1(sfexport_setup_stage);
PG_FUNCTION_INFO_V1(sfexport_setup_table);

/*
 * sfexport.setup_stage(server name, dry_run boolean): the file format and
 * the stage of a server.
 */
Datum
sfexport_setup_stage(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ForeignServer *server = GetForeignServerByName(NameStr(*PG_GETARG_NAME(0)), false);
	bool		dry_run = PG_GETARG_BOOL(1);
	SfServerConfig *srv;
	SfUserConfig *usr;
	ListCell   *lc;

	check_setup_privilege(server);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	srv = sf_get_server_config(server->serverid);
	/* a dry run needs the mapping only for the keys of an S3 stage */
	usr = !dry_run || (srv->location.kind == SF_LOCATION_S3 && !srv->storage_integration) ?
		sf_get_user_config(server->serverid, sf_worker_user(server->serverid)) : NULL;

	foreach(lc, stage_statements(srv, usr))
		emit(rsinfo, srv, usr, (const char *) lfirst(lc), dry_run);
	return (Datum) 0;
}

/*
 * sfexport.setup_table(foreign_table regclass, dry_run boolean): the target
 * table of a foreign table; in a real run also the columns an existing
 * table lacks.
 */
Datum
sfexport_setup_table(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid = PG_GETARG_OID(0);
	bool		dry_run = PG_GETARG_BOOL(1);
	ForeignTable *ft;
	ForeignServer *server;
	SfServerConfig *srv;
	SfUserConfig *usr;
	SfTableConfig *tbl;
	SetupColumn *cols;
	int			ncols;
	char	   *target;
	StringInfoData sql;
	ListCell   *lc;

	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a foreign table", get_rel_name(relid) ?
						get_rel_name(relid) : "?")));
	ft = GetForeignTable(relid);
	server = GetForeignServer(ft->serverid);
	check_setup_privilege(server);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	srv = sf_get_server_config(server->serverid);
	usr = dry_run ? NULL :
		sf_get_user_config(server->serverid, sf_worker_user(server->serverid));
	tbl = sf_get_table_config(relid);
	target = sf_target_name(srv, tbl);
	cols = table_columns(relid, &ncols);

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE IF NOT EXISTS %s (", target);
	for (int i = 0; i < ncols; i++)
		appendStringInfo(&sql, "%s%s %s", i ? ", " : "",
						 sf_quote_ident(cols[i].name), cols[i].sftype);
	appendStringInfoChar(&sql, ')');
	emit(rsinfo, srv, usr, sql.data, dry_run);

	/* an existing table: add what it lacks, refuse what cannot load */
	if (!dry_run)
		foreach(lc, evolve_statements(srv, usr, target, ncols, cols))
			emit(rsinfo, srv, usr, (const char *) lfirst(lc), false);

	/* Snowpipe: the pipe of the table's current record shape */
	if (tbl->load_mode == SF_LOAD_SNOWPIPE)
	{
		Relation	rel = relation_open(relid, AccessShareLock);
		SfRowEncoder *enc = sf_encoder_create(rel);
		int			n = sf_encoder_ncolumns(enc);
		Datum	   *names = palloc(sizeof(Datum) * Max(n, 1));
		Datum	   *types = palloc(sizeof(Datum) * Max(n, 1));

		sf_encoder_shape_arrays(enc, names, types);
		emit(rsinfo, srv, usr,
			 sf_pipe_statement(srv, target, (int64) sf_encoder_shape(enc),
							   construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT),
							   construct_array(types, n, TEXTOID, -1, false, TYPALIGN_INT)),
			 dry_run);
		relation_close(rel, AccessShareLock);
	}
	return (Datum) 0;
}
