/*-------------------------------------------------------------------------
 *
 * statements.c
 *		The Snowflake SQL that sfexport generates, in one place: target and
 *		pipe names, COPY INTO for staged files, CREATE PIPE.
 *
 * Every identifier goes through sf_quote_ident() and every literal through
 * sf_quote_literal() (quote.c).  Building statements runs nothing: load.c,
 * setup and the evolve step run them through the SQL API client.
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
#include "utils/array.h"
#include "utils/builtins.h"

#include "sfexport.h"

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

/* Whether a PostgreSQL type (as format_type prints it) arrives as JSON text. */
static bool
is_json_type(const char *type)
{
	size_t		len = strlen(type);

	return strcmp(type, "json") == 0 || strcmp(type, "jsonb") == 0 ||
		(len > 2 && strcmp(type + len - 2, "[]") == 0);
}

/*
 * The COPY statement for files of one target and shape.  Identifiers go
 * through sf_quote_ident, file names through sf_quote_literal.
 */
char *
sf_copy_statement(SfServerConfig *srv, const char *target,
				  ArrayType *columns, ArrayType *types, List *names)
{
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
	appendStringInfo(&sql, "COPY INTO %s (", target);
	for (int i = 0; i < ncols; i++)
		appendStringInfo(&sql, "%s%s", i ? ", " : "",
						 sf_quote_ident(TextDatumGetCString(cols[i])));
	appendStringInfoString(&sql, ") FROM (SELECT ");
	for (int i = 0; i < ncols; i++)
	{
		if (is_json_type(TextDatumGetCString(typs[i])))
			appendStringInfo(&sql, "%sPARSE_JSON($%d)", i ? ", " : "", i + 1);
		else
			appendStringInfo(&sql, "%s$%d", i ? ", " : "", i + 1);
	}
	appendStringInfo(&sql, " FROM @%s.%s.%s) FILES = (",
					 sf_quote_ident(srv->database), sf_quote_ident(srv->schema),
					 sf_quote_ident(srv->stage));
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
	appendStringInfo(&sql, " FILE_FORMAT = (FORMAT_NAME = %s) ON_ERROR = SKIP_FILE",
					 sf_quote_literal(psprintf("%s.%s.%s",
											   sf_quote_ident(srv->database),
											   sf_quote_ident(srv->schema),
											   sf_quote_ident(srv->file_format))));
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
				  ArrayType *columns, ArrayType *types)
{
	return psprintf("CREATE PIPE IF NOT EXISTS %s AS %s",
					sf_pipe_sql_name(target, shape),
					sf_copy_statement(srv, target, columns, types, NIL));
}
