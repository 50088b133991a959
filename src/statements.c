/*-------------------------------------------------------------------------
 *
 * statements.c
 *		The Snowflake SQL that sfexport generates, in one place: target and
 *		pipe names, the PostgreSQL → Snowflake type mapping, the setup DDL
 *		(file format, stage, table, added columns), COPY INTO for staged
 *		files and CREATE PIPE.
 *
 * Every identifier goes through sf_quote_ident() and every literal through
 * sf_quote_literal() (quote.c), so names from PostgreSQL or from options
 * cannot change a statement.  Building statements runs nothing: load.c,
 * evolve.c and sql_setup.c run them through the SQL API client.
 *
 * Setup statements are idempotent: every CREATE is IF NOT EXISTS, never OR
 * REPLACE.  Replacing a table would drop its rows and its load metadata
 * (and with it the exactly-once guarantee for files not yet deleted);
 * replacing a stage or file format is harmless for load metadata (it
 * belongs to the table) but would silently change objects a user may have
 * adjusted.  A changed location or credentials therefore need DROP STAGE
 * first (docs/setup.md).  Only keys of the owner's user mapping ever go
 * into CREATE STAGE ... CREDENTIALS: keys of the database server's
 * environment (aws_from_host) are refused, so that the host's identity
 * never reaches a statement.
 *
 * A target is written "DB"."SCHEMA"."TABLE" (sf_target_name) and stored so
 * in sfexport.files; sf_split_target_name() reads it back.
 *
 * Pipes (load_mode 'snowpipe', snowpipe.c): one pipe per target table and
 * record shape, since a pipe's COPY names its columns:
 * <table>_SFEXPORT_PIPE_<shape as 16 hex digits>, in the target's database
 * and schema.  A new shape gets a new pipe; the old one keeps its history
 * and still serves files of the old shape.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "parser/parse_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "sfexport.h"

#include "config.h"
#include "encode.h"
#include "quote.h"
#include "statements.h"

/* Snowflake NUMBER holds at most 38 digits ("Numeric data types"). */
#define SF_NUMBER_MAX_PRECISION 38

/* ---------------------------------------------------------------------
 * Names
 * ---------------------------------------------------------------------
 */

/*
 * The Snowflake name of a foreign table's target: "DB"."SCHEMA"."TABLE",
 * every part through the one quoting function.
 */
char *
sf_target_name(SfServerConfig *srv, SfTableConfig *tbl)
{
	return psprintf("%s.%s.%s", sf_quote_ident(srv->database),
					sf_quote_ident(tbl->schema), sf_quote_ident(tbl->table));
}

/*
 * The unquoted parts of a target as sf_target_name writes it,
 * "DB"."SCHEMA"."TABLE" (quotes inside a part doubled).
 */
void
sf_split_target_name(const char *target, char *parts[3])
{
	const char *p = target;

	for (int i = 0; i < 3; i++)
	{
		StringInfoData s;

		if (*p != '"')
			goto bad;
		p++;
		initStringInfo(&s);
		for (;;)
		{
			if (*p == '\0')
				goto bad;
			if (*p == '"' && p[1] == '"')
			{
				appendStringInfoChar(&s, '"');
				p += 2;
				continue;
			}
			if (*p == '"')
			{
				p++;
				break;
			}
			appendStringInfoChar(&s, *p++);
		}
		parts[i] = s.data;
		if (i < 2)
		{
			if (*p != '.')
				goto bad;
			p++;
		}
	}
	if (*p == '\0')
		return;
bad:
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("malformed Snowflake target name %s in sfexport.files", target)));
}

static char *
pipe_object_name(const char *table, int64 shape)
{
	return psprintf("%s_SFEXPORT_PIPE_%016llX", table, (unsigned long long) shape);
}

/* The pipe of a target and shape, quoted for SQL. */
char *
sf_pipe_sql_name(const char *target, int64 shape)
{
	char	   *parts[3];

	sf_split_target_name(target, parts);
	return psprintf("%s.%s.%s", sf_quote_ident(parts[0]), sf_quote_ident(parts[1]),
					sf_quote_ident(pipe_object_name(parts[2], shape)));
}

/* A part of a REST pipe name: as is when plain, else double-quoted. */
static void
append_rest_part(StringInfo s, const char *name)
{
	bool		plain = *name != '\0';

	for (const char *c = name; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
			  (*c >= '0' && *c <= '9') || *c == '_' || *c == '$'))
			plain = false;
	if (plain)
		appendStringInfoString(s, name);
	else
	{
		appendStringInfoChar(s, '"');
		for (const char *c = name; *c; c++)
		{
			if (*c == '"')
				appendStringInfoChar(s, '"');
			appendStringInfoChar(s, *c);
		}
		appendStringInfoChar(s, '"');
	}
}

/* The pipe of a target and shape as the REST API names it: db.schema.pipe. */
char *
sf_pipe_rest_name(const char *target, int64 shape)
{
	char	   *parts[3];
	StringInfoData s;

	sf_split_target_name(target, parts);
	initStringInfo(&s);
	append_rest_part(&s, parts[0]);
	appendStringInfoChar(&s, '.');
	append_rest_part(&s, parts[1]);
	appendStringInfoChar(&s, '.');
	append_rest_part(&s, pipe_object_name(parts[2], shape));
	return s.data;
}

/* ---------------------------------------------------------------------
 * PostgreSQL → Snowflake column types (docs/setup.md)
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
sf_snowflake_type(Oid typid, int32 typmod)
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
char *
sf_snowflake_type_for_name(const char *pgtype)
{
	Oid			typid;
	int32		typmod;
	ErrorSaveContext escontext = {T_ErrorSaveContext};
	size_t		len = strlen(pgtype);

	if (!parseTypeString(pgtype, &typid, &typmod, (Node *) &escontext))
		return len > 2 && strcmp(pgtype + len - 2, "[]") == 0 ? "ARRAY" : "VARCHAR";
	return sf_snowflake_type(typid, typmod);
}

/* ---------------------------------------------------------------------
 * Setup: file format, stage, table, added columns
 * ---------------------------------------------------------------------
 */

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
List *
sf_stage_statements(SfServerConfig *srv, SfUserConfig *usr)
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
			else if (usr->aws_role_arn || srv->aws_role_arn)
				ereport(ERROR,
						(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
						 errmsg("no way for Snowflake to read %s with an assumed role", srv->location_text),
						 errdetail("Server \"%s\" assumes the role %s (aws_role_arn): its credentials are temporary, and the user mapping's keys are only what the role is assumed with.",
								   srv->servername, usr->aws_role_arn ? usr->aws_role_arn : srv->aws_role_arn),
						 errhint("Create a storage integration for that role in Snowflake and set it with ALTER SERVER %s OPTIONS (ADD storage_integration '...').",
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

/* CREATE TABLE IF NOT EXISTS <target> (<column> <type>, ...) */
char *
sf_create_table_statement(const char *target, int ncols, const SfColumnDef *cols)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE IF NOT EXISTS %s (", target);
	for (int i = 0; i < ncols; i++)
		appendStringInfo(&sql, "%s%s %s", i ? ", " : "",
						 sf_quote_ident(cols[i].name), cols[i].sftype);
	appendStringInfoChar(&sql, ')');
	return sql.data;
}

/* ALTER TABLE <target> ADD COLUMN IF NOT EXISTS <column> <type> */
char *
sf_add_column_statement(const char *target, const char *column, const char *sftype)
{
	return psprintf("ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s",
					target, sf_quote_ident(column), sftype);
}

/* ---------------------------------------------------------------------
 * Loading: COPY INTO, and the pipe that runs it
 * ---------------------------------------------------------------------
 */

/* Whether a PostgreSQL type (as format_type prints it) arrives as JSON text. */
static bool
is_json_type(const char *type)
{
	size_t		len = strlen(type);

	return strcmp(type, "json") == 0 || strcmp(type, "jsonb") == 0 ||
		(len > 2 && strcmp(type + len - 2, "[]") == 0);
}

/* Whether a staged file holds NDJSON (flush.c names them ".json..."). */
bool
sf_file_is_json(const char *name)
{
	const char *base = strrchr(name, '/');

	return strstr(base ? base : name, ".json") != NULL;
}

/*
 * The COPY statement for files of one target and shape.  Identifiers go
 * through sf_quote_ident, file names through sf_quote_literal.
 *
 * json (file_format 'json', NDJSON files): FILE_FORMAT = (TYPE = JSON).  A
 * table whose single column is json or jsonb has the document itself on
 * each line, loaded with SELECT $1 into that column (a VARIANT); any other
 * table has an object per line whose keys are the target column names,
 * loaded with MATCH_BY_COLUMN_NAME = CASE_SENSITIVE (our names are quoted,
 * so case-sensitive), which cannot be combined with a transformation
 * ("match_by_column_name is not supported with copy transform": Snowflake
 * behavior change bundle 2024_02, BCR-1514; COPY INTO <table>, copy options).
 */
char *
sf_copy_statement(SfServerConfig *srv, const char *target,
				  ArrayType *columns, ArrayType *types, List *names, bool json)
{
	bool		document;
	Datum	   *cols;
	Datum	   *typs;
	int			ncols;
	int			ntypes;
	StringInfoData sql;
	ListCell   *lc;

	deconstruct_array(columns, TEXTOID, -1, false, TYPALIGN_INT, &cols, NULL, &ncols);
	deconstruct_array(types, TEXTOID, -1, false, TYPALIGN_INT, &typs, NULL, &ntypes);
	if (ncols != ntypes || ncols == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("malformed column shape for %s", target)));

	initStringInfo(&sql);
	document = ncols == 1 && (strcmp(TextDatumGetCString(typs[0]), "json") == 0 ||
							  strcmp(TextDatumGetCString(typs[0]), "jsonb") == 0);
	if (json && !document)
		appendStringInfo(&sql, "COPY INTO %s FROM @%s.%s.%s FILES = (", target,
						 sf_quote_ident(srv->database), sf_quote_ident(srv->schema),
						 sf_quote_ident(srv->stage));
	else
	{
		appendStringInfo(&sql, "COPY INTO %s (", target);
		for (int i = 0; i < ncols; i++)
			appendStringInfo(&sql, "%s%s", i ? ", " : "",
							 sf_quote_ident(TextDatumGetCString(cols[i])));
		appendStringInfoString(&sql, ") FROM (SELECT ");
		for (int i = 0; i < ncols; i++)
		{
			if (json)
				appendStringInfoString(&sql, "$1");	/* the document */
			else if (is_json_type(TextDatumGetCString(typs[i])))
				appendStringInfo(&sql, "%sPARSE_JSON($%d)", i ? ", " : "", i + 1);
			else
				appendStringInfo(&sql, "%s$%d", i ? ", " : "", i + 1);
		}
		appendStringInfo(&sql, " FROM @%s.%s.%s) FILES = (",
						 sf_quote_ident(srv->database), sf_quote_ident(srv->schema),
						 sf_quote_ident(srv->stage));
	}
	foreach(lc, names)
		appendStringInfo(&sql, "%s%s", foreach_current_index(lc) ? ", " : "",
						 sf_quote_literal((const char *) lfirst(lc)));
	if (names == NIL)
	{
		/* a pipe's COPY: Snowpipe names the files (insertFiles) */
		sql.len -= strlen(" FILES = (");
		sql.data[sql.len] = '\0';
	}
	else
		appendStringInfoChar(&sql, ')');
	if (json)
		appendStringInfo(&sql, " FILE_FORMAT = (TYPE = JSON COMPRESSION = AUTO)%s ON_ERROR = SKIP_FILE",
						 document ? "" : " MATCH_BY_COLUMN_NAME = CASE_SENSITIVE");
	else
		appendStringInfo(&sql, " FILE_FORMAT = (FORMAT_NAME = %s) ON_ERROR = SKIP_FILE",
						 sf_quote_literal(file_format_name(srv)));
	/* not in a pipe's COPY, which does not support it (CREATE PIPE) */
	if (names != NIL)
		appendStringInfoString(&sql, " LOAD_UNCERTAIN_FILES = TRUE");
	return sql.data;
}

/*
 * CREATE PIPE IF NOT EXISTS <pipe> AS <the COPY of load.c without FILES>.
 * The COPY is the one COPY mode runs (same transformation, file format and
 * ON_ERROR = SKIP_FILE), so both modes load a file the same way.
 */
char *
sf_pipe_statement(SfServerConfig *srv, const char *target, int64 shape,
				  ArrayType *columns, ArrayType *types, bool json)
{
	return psprintf("CREATE PIPE IF NOT EXISTS %s AS %s",
					sf_pipe_sql_name(target, shape),
					sf_copy_statement(srv, target, columns, types, NIL, json));
}

/*
 * CREATE PIPE of the streaming pipe a foreign table names (load_mode
 * 'streaming', option streaming_pipe), in the target's database and
 * schema, in the form "CREATE PIPE" documents for Snowpipe Streaming
 * (https://docs.snowflake.com/en/sql-reference/sql/create-pipe): COPY INTO
 * <target> (<columns>) FROM (SELECT $1:"<column>", ... FROM
 * TABLE(DATA_SOURCE(TYPE => 'STREAMING'))).  The rows' JSON keys are the
 * Snowflake column names (stream_load.c), quoted in the paths to keep
 * their case.  IF NOT EXISTS: a pipe is never replaced under its channels.
 */
char *
sf_streaming_pipe_statement(SfServerConfig *srv, SfTableConfig *tbl, const char *target,
							ArrayType *columns)
{
	Datum	   *cols;
	int			ncols;
	StringInfoData list;
	StringInfoData select;

	deconstruct_array(columns, TEXTOID, -1, false, TYPALIGN_INT, &cols, NULL, &ncols);
	initStringInfo(&list);
	initStringInfo(&select);
	for (int i = 0; i < ncols; i++)
	{
		char	   *q = sf_quote_ident(TextDatumGetCString(cols[i]));

		appendStringInfo(&list, "%s%s", i ? ", " : "", q);
		appendStringInfo(&select, "%s$1:%s", i ? ", " : "", q);
	}
	return psprintf("CREATE PIPE IF NOT EXISTS %s.%s.%s AS COPY INTO %s (%s)"
					" FROM (SELECT %s FROM TABLE(DATA_SOURCE(TYPE => 'STREAMING')))",
					sf_quote_ident(srv->database), sf_quote_ident(tbl->schema),
					sf_quote_ident(tbl->streaming_pipe), target, list.data, select.data);
}
