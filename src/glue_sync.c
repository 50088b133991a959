/*-------------------------------------------------------------------------
 *
 * glue_sync.c
 *		The Glue sync: mirror the tables of an AWS Glue database as
 *		Snowflake external tables, idempotently (sfexport.glue_sync(),
 *		sql_glue.c, and the worker's periodic sync, glue_periodic.c).  The
 *		Glue client is glue_client.c.
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
 * Idempotency: sfexport.glue_sync_state, which this file alone reads and
 * writes, remembers the SHA-256 of the statement applied per Glue table and
 * target; an unchanged table is not touched, a changed one is re-created
 * with CREATE OR REPLACE.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "glue_client.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation_d.h"
#include "catalog/pg_type_d.h"
#include "commands/defrem.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "sfexport.h"

#include "config.h"
#include "elevated.h"
#include "glue_sync.h"
#include "hive_types.h"
#include "quote.h"
#include "sigv4.h"
#include "snowflake.h"
#include "transaction.h"

typedef struct GlueState		/* a row of sfexport.glue_sync_state */
{
	char	   *glue_table;
	char	   *target_table;
	char	   *hash;			/* SHA-256 of the statement applied */
	bool		seen;			/* for glue_sync: still in Glue */
} GlueState;

/* What glue_sync decided for one Glue table. */
typedef struct GluePlan
{
	char	   *glue_table;
	char	   *target_table;	/* Snowflake name, unquoted */
	char	   *skip_reason;	/* non-NULL: skipped */
	char	   *statement;		/* CREATE OR REPLACE EXTERNAL TABLE ... */
	char	   *hash;
} GluePlan;

/* ---------------------------------------------------------------------
 * Planning one table
 * ---------------------------------------------------------------------
 */

typedef enum GlueFormat
{
	FMT_UNSUPPORTED,
	FMT_CSV,
	FMT_JSON,
	FMT_PARQUET,
	FMT_ORC,
	FMT_AVRO
} GlueFormat;

static bool
contains_ci(const char *s, const char *what)
{
	size_t		n = strlen(what);

	if (s == NULL)
		return false;
	for (; *s; s++)
		if (pg_strncasecmp(s, what, n) == 0)
			return true;
	return false;
}

/*
 * The data format: Parameters.classification (what Glue crawlers set), else
 * the SerDe library, else the InputFormat class.
 */
static GlueFormat
table_format(SfGlueTable *t, const char **shown)
{
	const char *c = t->classification;

	*shown = c;
	if (c)
	{
		if (pg_strcasecmp(c, "csv") == 0)
			return FMT_CSV;
		if (pg_strcasecmp(c, "json") == 0)
			return FMT_JSON;
		if (pg_strcasecmp(c, "parquet") == 0)
			return FMT_PARQUET;
		if (pg_strcasecmp(c, "orc") == 0)
			return FMT_ORC;
		if (pg_strcasecmp(c, "avro") == 0)
			return FMT_AVRO;
		return FMT_UNSUPPORTED;
	}
	*shown = t->serde ? t->serde : t->input_format;
	if (contains_ci(t->serde, "OpenCSVSerde") || contains_ci(t->serde, "LazySimpleSerDe"))
		return FMT_CSV;
	if (contains_ci(t->serde, "JsonSerDe"))
		return FMT_JSON;
	if (contains_ci(t->serde, "ParquetHiveSerDe"))
		return FMT_PARQUET;
	if (contains_ci(t->serde, "OrcSerde"))
		return FMT_ORC;
	if (contains_ci(t->serde, "AvroSerDe"))
		return FMT_AVRO;
	if (t->serde == NULL)
	{
		if (contains_ci(t->input_format, "MapredParquetInputFormat"))
			return FMT_PARQUET;
		if (contains_ci(t->input_format, "OrcInputFormat"))
			return FMT_ORC;
		if (contains_ci(t->input_format, "AvroContainerInputFormat"))
			return FMT_AVRO;
		if (contains_ci(t->input_format, "TextInputFormat"))
			return FMT_CSV;
	}
	return FMT_UNSUPPORTED;
}

static char *
upper_name(const char *name)
{
	char	   *u = pstrdup(name);

	for (char *c = u; *c; c++)
		*c = pg_ascii_toupper((unsigned char) *c);
	return u;
}

/*
 * An s3:// location (also s3a://, s3n://) split into bucket and key prefix
 * ending in '/'.  False when it is not one.
 */
static bool
split_s3(const char *loc, char **bucket, char **key)
{
	const char *rest;
	const char *slash;

	if (loc == NULL)
		return false;
	if (strncmp(loc, "s3://", 5) == 0)
		rest = loc + 5;
	else if (strncmp(loc, "s3a://", 6) == 0 || strncmp(loc, "s3n://", 6) == 0)
		rest = loc + 6;
	else
		return false;
	slash = strchr(rest, '/');
	if (slash == NULL)
	{
		*bucket = pstrdup(rest);
		*key = pstrdup("");
	}
	else
	{
		*bucket = pnstrdup(rest, slash - rest);
		*key = pstrdup(slash + 1);
	}
	if (**bucket == '\0')
		return false;
	if (**key != '\0' && (*key)[strlen(*key) - 1] != '/')
		*key = psprintf("%s/", *key);
	return true;
}

/*
 * A path that can follow @stage/ unquoted: letters, digits and
 * "_-.=/" only, no empty or dot-dot segments.
 */
static bool
safe_stage_path(const char *p)
{
	for (const char *c = p; *c; c++)
		if (!(isalnum((unsigned char) *c) || strchr("_-.=/", *c) != NULL))
			return false;
	return strstr(p, "//") == NULL && strstr(p, "../") == NULL && p[0] != '/';
}

static int
count_segments(const char *p)
{
	int			n = 0;

	for (const char *c = p; *c; c++)
		if (*c == '/')
			n++;
	return n;					/* p is "" or ends in '/' */
}

/*
 * Hive's escaping of partition directory names (FileUtils.escapePathName,
 * also Spark's ExternalCatalogUtils): control characters 0x01-0x1F, 0x7F
 * and  " # % ' * / : = ? \ { [ ] ^  become %XX (upper-case hex; some Spark
 * versions write lower case); Hive on Windows also escapes space < > |.
 * unescapePathName turns any %XX back into its character.
 */
static bool
hive_needs_escape(unsigned char c)
{
	return (c >= 0x01 && c <= 0x1F) || c == 0x7F || strchr("\"#%'*/:=?\\{[]^", c) != NULL;
}

/* A partition key name as Hive writes it in a directory name. */
static char *
hive_escape_path_name(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const unsigned char *c = (const unsigned char *) s; *c; c++)
	{
		if (hive_needs_escape(*c))
			appendStringInfo(&buf, "%%%02X", *c);
		else
			appendStringInfoChar(&buf, (char) *c);
	}
	return buf.data;
}

/*
 * A Snowflake expression that undoes Hive's escaping of the string expr:
 * nested REPLACE(x, '%XX', CHR(n)) for every character Hive escapes (both
 * hex cases, and the Windows set), "%25" last so that an escaped "%"
 * followed by hex digits is not decoded twice.  Snowflake has no URL-decode
 * function; REPLACE and CHR are plain string functions.
 */
static char *
hive_unescape_sql(const char *expr)
{
	StringInfoData buf;
	StringInfoData tail;
	int			n = 0;

	initStringInfo(&buf);
	initStringInfo(&tail);
	for (int c = 1; c < 128; c++)
	{
		char		hex[3];

		if (c == '%' || !(hive_needs_escape((unsigned char) c) || strchr(" <>|", c)))
			continue;
		snprintf(hex, sizeof(hex), "%02X", c);
		appendStringInfo(&tail, ", '%%%s', CHR(%d))", hex, c);
		n++;
		if (hex[0] != pg_ascii_tolower(hex[0]) || hex[1] != pg_ascii_tolower(hex[1]))
		{
			appendStringInfo(&tail, ", '%%%c%c', CHR(%d))", pg_ascii_tolower(hex[0]),
							 pg_ascii_tolower(hex[1]), c);
			n++;
		}
	}
	appendStringInfoString(&tail, ", '%25', CHR(37))");
	n++;
	for (int i = 0; i < n; i++)
		appendStringInfoString(&buf, "REPLACE(");
	appendStringInfo(&buf, "%s%s", expr, tail.data);
	return buf.data;
}

/* What partition_layout learns from the partitions seen so far. */
typedef struct LayoutScan
{
	MemoryContext cxt;			/* for the reason */
	SfGlueTable *t;
	const char *bucket;
	const char *key;
	List	   *esc_keys;		/* "k1=", "k2=", ... as Hive writes them */
	bool		first;
	bool		hive_layout;
	char	   *reason;
} LayoutScan;

/* One partition location (sf_glue_partition_locations); false: a reason found. */
static bool
layout_of_partition(void *arg, const char *loc)
{
	LayoutScan *ls = (LayoutScan *) arg;
	char	   *pb;
	char	   *pk;
	const char *rel;
	bool		hive;
	ListCell   *lc;

	if (!split_s3(loc, &pb, &pk) || strcmp(pb, ls->bucket) != 0 ||
		strncmp(pk, ls->key, strlen(ls->key)) != 0 ||
		count_segments(pk + strlen(ls->key)) < list_length(ls->t->partition_keys))
	{
		MemoryContext old = MemoryContextSwitchTo(ls->cxt);

		ls->reason = psprintf("partition location \"%s\" is not below the table location \"s3://%s/%s\"",
							  sf_glue_shown_name(loc), sf_glue_shown_name(ls->bucket),
							  sf_glue_shown_name(ls->key));
		MemoryContextSwitchTo(old);
		return false;
	}
	rel = pk + strlen(ls->key);
	hive = strncmp(rel, linitial(ls->esc_keys), strlen(linitial(ls->esc_keys))) == 0;
	if (!ls->first && hive != ls->hive_layout)
	{
		ls->reason = MemoryContextStrdup(ls->cxt,
										 "partitions mix hive-style (key=value) and plain directories");
		return false;
	}
	if (hive)
	{
		/* every key in its place: k1=../k2=../ */
		foreach(lc, ls->esc_keys)
		{
			const char *k = (const char *) lfirst(lc);

			if (strncmp(rel, k, strlen(k)) != 0)
			{
				MemoryContext old = MemoryContextSwitchTo(ls->cxt);

				ls->reason = psprintf("partition location \"%s\" does not have the partition keys in order as key=value directories",
									  sf_glue_shown_name(loc));
				MemoryContextSwitchTo(old);
				return false;
			}
			rel = strchr(rel, '/') + 1;
		}
	}
	ls->hive_layout = hive;
	ls->first = false;
	return true;
}

/*
 * The directory layout of a table's partitions, from the locations Glue
 * reports for them (every page, one page in memory at a time):
 * *hive_layout true for key=value directories, false for plain ones.  A
 * table without partitions yet is taken as hive style.  Returns NULL, or
 * why the table cannot be mirrored.
 */
static char *
partition_layout(SfGlueClient *gc, const char *glue_db, SfGlueTable *t, const char *bucket,
				 const char *key, bool *hive_layout)
{
	LayoutScan	ls;
	ListCell   *lc;

	memset(&ls, 0, sizeof(ls));
	ls.cxt = CurrentMemoryContext;
	ls.t = t;
	ls.bucket = bucket;
	ls.key = key;
	ls.first = true;
	ls.hive_layout = true;
	foreach(lc, t->partition_keys)
	{
		SfGlueColumn *k = (SfGlueColumn *) lfirst(lc);

		ls.esc_keys = lappend(ls.esc_keys,
							  psprintf("%s=", hive_escape_path_name(k->name ? k->name : "")));
	}
	sf_glue_partition_locations(gc, glue_db, t->name, layout_of_partition, &ls);
	*hive_layout = ls.hive_layout;
	return ls.reason;
}

/*
 * The expression that reads a column of a JSON, Parquet, ORC or Avro file.
 *
 * Glue (like Hive) stores column names in lower case, while the keys in
 * the files keep their case ("userId"), and Snowflake's value:"key" is
 * case-sensitive.  Hive's readers match names case-insensitively (the
 * OpenX JSON SerDe unless its SerDe parameter case.insensitive is false;
 * Hive's JsonSerDe, ParquetHiveSerDe, OrcSerde and AvroSerDe always), so:
 *	- SerDe parameter mapping.<column> (OpenX JSON SerDe: the key in the
 *	  file for a Glue column) gives the key exactly: value:"<key>";
 *	- case.insensitive = false: the Glue name is the key, exactly;
 *	- otherwise GET_IGNORE_CASE(value, '<name>'), which matches the key in
 *	  any case as Hive does (GET_IGNORE_CASE: "similar to GET but applies
 *	  case-insensitive matching to field names").
 */
static char *
column_path(SfGlueTable *t, const char *name)
{
	char	   *mapkey = psprintf("mapping.%s", name);
	char	   *mapped = sf_json_string(t->serde_params, mapkey);
	char	   *ci = sf_json_string(t->serde_params, "case.insensitive");

	if (mapped && sf_glue_usable_name(mapped))
		return psprintf("value:%s", sf_quote_ident(mapped));
	if (ci && pg_strcasecmp(ci, "false") == 0)
		return psprintf("value:%s", sf_quote_ident(name));
	return psprintf("GET_IGNORE_CASE(value, %s)", sf_quote_literal(name));
}

/* The CSV field delimiter as a Snowflake string constant. */
static char *
csv_delimiter_sql(const char *delim, bool lazy_simple)
{
	if (delim == NULL || *delim == '\0')
		delim = lazy_simple ? "\001" : ",";	/* Hive LazySimpleSerDe: ^A */
	if (strlen(delim) == 1 && ((unsigned char) delim[0] < 0x20 || delim[0] == 0x7f))
		return psprintf("'\\%03o'", (unsigned char) delim[0]);	/* octal escape */
	return sf_quote_literal(delim);
}

static void
skip(GluePlan *plan, const char *fmt,...) pg_attribute_printf(2, 3);

static void
skip(GluePlan *plan, const char *fmt,...)
{
	va_list		ap;
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(ap, fmt);
		needed = appendStringInfoVA(&buf, fmt, ap);
		va_end(ap);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	plan->skip_reason = buf.data;
}

/*
 * Decide what a Glue table becomes: the CREATE OR REPLACE EXTERNAL TABLE
 * statement and its hash, or a reason to skip it.
 */
static void
plan_table(SfGlueClient *gc, SfGlueConfig *conf, const char *glue_db, SfGlueTable *t,
		   const char *target_db, const char *target_schema, GluePlan *plan)
{
	const char *shown_format;
	GlueFormat	fmt = table_format(t, &shown_format);
	char	   *bucket;
	char	   *key;
	SfGlueStage  *stage = NULL;
	char	   *relpath = NULL;
	StringInfoData sql;
	StringInfoData pby;
	List	   *seen = NIL;
	ListCell   *lc;
	int			pos = 0;
	int			depth;
	bool		hive_layout = true;
	const char *ff;

	memset(plan, 0, sizeof(*plan));
	plan->glue_table = t->name;
	if (!sf_glue_usable_name(t->name))
	{
		skip(plan, "the table name is empty, longer than %d bytes or has control characters",
			 SF_GLUE_NAME_MAX);
		return;
	}
	plan->target_table = upper_name(t->name);

	if (t->table_type && (strcmp(t->table_type, "VIRTUAL_VIEW") == 0 ||
						  strcmp(t->table_type, "GOVERNED") == 0))
	{
		skip(plan, "table type %s is not supported", sf_glue_shown_name(t->table_type));
		return;
	}
	if (fmt == FMT_UNSUPPORTED)
	{
		skip(plan, "unsupported format \"%s\" (supported: csv, json, parquet, orc, avro)",
			 shown_format ? sf_glue_shown_name(shown_format) : "unknown");
		return;
	}
	if (!split_s3(t->location, &bucket, &key))
	{
		skip(plan, "location \"%s\" is not an s3:// location", sf_glue_shown_name(t->location));
		return;
	}
	/* the stage with the longest prefix that covers the location */
	foreach(lc, conf->stages)
	{
		SfGlueStage  *gs = (SfGlueStage *) lfirst(lc);

		if (strcmp(gs->bucket, bucket) == 0 &&
			strncmp(key, gs->prefix, strlen(gs->prefix)) == 0 &&
			(stage == NULL || strlen(gs->prefix) > strlen(stage->prefix)))
			stage = gs;
	}
	if (stage == NULL)
	{
		skip(plan, "no stage covers location \"%s\" (add one to the glue_stage_map option of server \"%s\")",
			 sf_glue_shown_name(t->location), conf->srv->servername);
		return;
	}
	relpath = key + strlen(stage->prefix);
	if (!safe_stage_path(relpath))
	{
		skip(plan, "location \"%s\" has characters that cannot follow a stage name (allowed: letters, digits, \"_-.=/\")",
			 sf_glue_shown_name(t->location));
		return;
	}
	if (t->columns == NIL)
	{
		skip(plan, "the table has no columns");
		return;
	}

	/* partition layout: look at where Glue says the partitions are */
	if (t->partition_keys != NIL)
	{
		char	   *why = partition_layout(gc, glue_db, t, bucket, key, &hive_layout);

		if (why)
		{
			skip(plan, "%s", why);
			return;
		}
	}

	/* the statement */
	initStringInfo(&sql);
	initStringInfo(&pby);
	appendStringInfo(&sql, "CREATE OR REPLACE EXTERNAL TABLE %s.%s.%s (",
					 sf_quote_ident(target_db), sf_quote_ident(target_schema),
					 sf_quote_ident(plan->target_table));
	foreach(lc, t->columns)
	{
		SfGlueColumn *c = (SfGlueColumn *) lfirst(lc);
		SfHiveType ht;
		char	   *error;
		char	   *colname;
		const char *type;

		pos++;
		if (!sf_glue_usable_name(c->name))
		{
			skip(plan, "column %d has a name that is empty, longer than %d bytes or has control characters",
				 pos, SF_GLUE_NAME_MAX);
			return;
		}
		if (c->type == NULL || !sf_hive_parse_type(c->type, &ht, &error))
		{
			skip(plan, "column \"%s\" has a malformed type \"%s\": %s", sf_glue_shown_name(c->name),
				 sf_glue_shown_name(c->type), c->type ? error : "no type");
			return;
		}
		colname = upper_name(c->name);
		if (list_member(seen, makeString(colname)))
		{
			skip(plan, "two columns are both named \"%s\" in Snowflake", sf_glue_shown_name(colname));
			return;
		}
		seen = lappend(seen, makeString(colname));
		/* CSV holds nested values as text in Hive's own delimited form */
		type = (fmt == FMT_CSV && ht.kind != SF_HIVE_PRIMITIVE) ? "VARCHAR" : ht.snowflake;
		if (fmt == FMT_CSV)
			appendStringInfo(&sql, "%s\n  %s %s AS (value:c%d::%s)", pos > 1 ? "," : "",
							 sf_quote_ident(colname), type, pos, type);
		else
			appendStringInfo(&sql, "%s\n  %s %s AS (%s::%s)", pos > 1 ? "," : "",
							 sf_quote_ident(colname), type, column_path(t, c->name), type);
	}

	depth = count_segments(relpath);
	foreach(lc, t->partition_keys)
	{
		SfGlueColumn *c = (SfGlueColumn *) lfirst(lc);
		int			part = depth + foreach_current_index(lc) + 1;
		SfHiveType ht;
		char	   *error;
		char	   *colname;
		char	   *segment;

		if (!sf_glue_usable_name(c->name))
		{
			skip(plan, "partition key %d has a name that is empty, longer than %d bytes or has control characters",
				 foreach_current_index(lc) + 1, SF_GLUE_NAME_MAX);
			return;
		}
		if (c->type == NULL || !sf_hive_parse_type(c->type, &ht, &error))
		{
			skip(plan, "partition key \"%s\" has a malformed type \"%s\": %s", sf_glue_shown_name(c->name),
				 sf_glue_shown_name(c->type), c->type ? error : "no type");
			return;
		}
		if (ht.kind != SF_HIVE_PRIMITIVE)
		{
			skip(plan, "partition key \"%s\" has the nested type \"%s\"", sf_glue_shown_name(c->name),
				 sf_glue_shown_name(c->type));
			return;
		}
		colname = upper_name(c->name);
		if (list_member(seen, makeString(colname)))
		{
			skip(plan, "two columns are both named \"%s\" in Snowflake", sf_glue_shown_name(colname));
			return;
		}
		seen = lappend(seen, makeString(colname));
		segment = psprintf("SPLIT_PART(METADATA$FILENAME, '/', %d)", part);
		if (hive_layout)
			segment = psprintf("SPLIT_PART(%s, '=', 2)", segment);
		/*
		 * key=value directories are Hive's: values that can hold characters
		 * Hive escapes are unescaped.  Plain directories were not written by
		 * Hive's escaping, and are taken as they are.
		 */
		if (hive_layout &&
			(strncmp(ht.snowflake, "VARCHAR", 7) == 0 || strncmp(ht.snowflake, "CHAR", 4) == 0 ||
			 strncmp(ht.snowflake, "TIMESTAMP", 9) == 0))
			segment = hive_unescape_sql(segment);
		appendStringInfo(&sql, ",\n  %s %s AS (%s::%s)", sf_quote_ident(colname),
						 ht.snowflake, segment, ht.snowflake);
		appendStringInfo(&pby, "%s%s", pby.len ? ", " : "", sf_quote_ident(colname));
	}
	appendStringInfoString(&sql, "\n)");
	if (pby.len > 0)
		appendStringInfo(&sql, "\nPARTITION BY (%s)", pby.data);
	appendStringInfo(&sql, "\nLOCATION = @%s/%s", stage->stage_sql, relpath);
	appendStringInfoString(&sql, "\nAUTO_REFRESH = FALSE");
	switch (fmt)
	{
		case FMT_CSV:
			ff = psprintf("TYPE = CSV FIELD_DELIMITER = %s SKIP_HEADER = %d%s",
						  csv_delimiter_sql(t->field_delim, !contains_ci(t->serde, "OpenCSVSerde")),
						  t->skip_header,
						  contains_ci(t->serde, "OpenCSVSerde") ? " FIELD_OPTIONALLY_ENCLOSED_BY = '\"'" : "");
			break;
		case FMT_JSON:
			ff = "TYPE = JSON";
			break;
		case FMT_PARQUET:
			ff = "TYPE = PARQUET";
			break;
		case FMT_ORC:
			ff = "TYPE = ORC";
			break;
		default:
			ff = "TYPE = AVRO";
			break;
	}
	appendStringInfo(&sql, "\nFILE_FORMAT = (%s)", ff);
	plan->statement = sql.data;
	plan->hash = sf_sha256_hex(sql.data, sql.len);
}

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
	Oid			types[8];
	Datum		values[8];
	char		nulls[8];
	MemoryContext caller = CurrentMemoryContext;
	volatile bool ok = false;
	int			rc;

	Assert(nargs <= 8);
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

/* The rows of one server, Glue database and target, as GlueState *. */
static List *
glue_state_load(Oid serverid, const char *glue_db, const char *tdb, const char *tschema)
{
	const char *args[4] = {psprintf("%u", serverid), glue_db, tdb, tschema};
	List	   *rows = NIL;
	List	   *out = NIL;
	ListCell   *lc;
	MemoryContext caller = CurrentMemoryContext;

	state_exec("SELECT glue_table, target_table, definition_hash FROM sfexport.glue_sync_state"
			   " WHERE server OPERATOR(pg_catalog.=) $1::pg_catalog.oid"
			   "   AND glue_database OPERATOR(pg_catalog.=) $2"
			   "   AND target_database OPERATOR(pg_catalog.=) $3"
			   "   AND target_schema OPERATOR(pg_catalog.=) $4"
			   " ORDER BY glue_table",
			   4, args, &rows, 3);
	MemoryContextSwitchTo(caller);
	foreach(lc, rows)
	{
		char	  **row = (char **) lfirst(lc);
		GlueState  *st = palloc0(sizeof(GlueState));

		st->glue_table = row[0];
		st->target_table = row[1];
		st->hash = row[2];
		out = lappend(out, st);
	}
	return out;
}

/* Record (or update) what was applied for one Glue table and target. */
static void
glue_state_save(Oid serverid, const char *glue_db, const char *tdb, const char *tschema,
				   const char *glue_table, const char *target_table, const char *hash)
{
	const char *args[7] = {psprintf("%u", serverid), glue_db, glue_table, tdb,
	tschema, target_table, hash};

	state_exec("INSERT INTO sfexport.glue_sync_state AS s (server, glue_database, glue_table,"
			   " target_database, target_schema, target_table, definition_hash, applied_at)"
			   " VALUES ($1::pg_catalog.oid, $2, $3, $4, $5, $6, $7, pg_catalog.now())"
			   " ON CONFLICT (server, glue_database, glue_table, target_database, target_schema)"
			   " DO UPDATE SET target_table = EXCLUDED.target_table,"
			   " definition_hash = EXCLUDED.definition_hash, applied_at = pg_catalog.now()",
			   7, args, NULL, 0);
}

/* Forget one Glue table of a target (its external table was dropped). */
static void
glue_state_delete(Oid serverid, const char *glue_db, const char *tdb, const char *tschema,
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

/* ---------------------------------------------------------------------
 * The sync
 * ---------------------------------------------------------------------
 */

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
} TableStatement;

static void
table_statement(void *arg)
{
	TableStatement *t = (TableStatement *) arg;
	SfStatement st;

	memset(&st, 0, sizeof(st));
	st.sql = t->sql;
	st.query_tag = "sfexport glue_sync";
	(void) sf_snowflake_run(t->srv, t->usr, &st);
}

static char *
run_table_statement(SfServerConfig *srv, SfUserConfig *usr, const char *sql)
{
	TableStatement t = {srv, usr, sql};
	ErrorData  *edata = sf_run_subtransaction(table_statement, &t);
	int			cls;
	char	   *reason;

	if (edata == NULL)
		return NULL;
	cls = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
	if (cls == ERRCODE_CONNECTION_EXCEPTION ||
		cls == ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION ||
		cls == ERRCODE_OPERATOR_INTERVENTION ||
		cls == ERRCODE_PROGRAM_LIMIT_EXCEEDED ||
		cls == ERRCODE_INSUFFICIENT_RESOURCES ||
		edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		ReThrowError(edata);
	reason = psprintf("Snowflake refused the statement (SQLSTATE %s): %s%s%s",
					  unpack_sql_state(edata->sqlerrcode), edata->message,
					  edata->detail ? " " : "", edata->detail ? edata->detail : "");
	FreeErrorData(edata);
	return reason;
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
			*tdb = upper_name(pnstrdup(a->glue_database, sep - a->glue_database));
		if (*tschema == NULL)
			*tschema = upper_name(sep + 2);
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
	char	   *tdb;
	char	   *tschema;
	List	   *tables;
	List	   *state;
	ListCell   *lc;

	resolve_target(a, conf->srv, &tdb, &tschema);
	tables = sf_glue_list_tables(gc, a->glue_database, a->pattern);
	list_sort(tables, cmp_plan_names);
	state = glue_state_load(a->serverid, a->glue_database, tdb, tschema);

	foreach(lc, tables)
	{
		SfGlueTable  *t = (SfGlueTable *) lfirst(lc);
		GluePlan	plan;
		GlueState  *prev = NULL;
		ListCell   *sc;
		const char *action;
		char	   *reason;

		CHECK_FOR_INTERRUPTS();
		plan_table(gc, conf, a->glue_database, t, tdb, tschema, &plan);
		foreach(sc, state)
		{
			GlueState  *s = (GlueState *) lfirst(sc);

			if (t->name && strcmp(s->glue_table, t->name) == 0)
			{
				prev = s;
				s->seen = true;
			}
		}
		if (plan.skip_reason)
		{
			emit(emit_arg, t->name, "skipped", plan.skip_reason, NULL);
			continue;
		}
		if (prev && strcmp(prev->hash, plan.hash) == 0)
		{
			emit(emit_arg, t->name, "unchanged", NULL, NULL);
			continue;
		}
		action = prev ? "replaced" : "created";
		if (a->dry_run)
		{
			emit(emit_arg, t->name, action, NULL, plan.statement);
			continue;
		}
		reason = run_table_statement(conf->srv, usr, plan.statement);
		if (reason)
		{
			emit(emit_arg, t->name, "skipped", reason, plan.statement);
			continue;
		}
		glue_state_save(a->serverid, a->glue_database, tdb, tschema, plan.glue_table,
						   plan.target_table, plan.hash);
		emit(emit_arg, t->name, action, NULL, plan.statement);
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
			emit(emit_arg, s->glue_table, "skipped",
				 "the table is no longer in AWS Glue; pass drop_missing => true to drop its external table",
				 NULL);
			continue;
		}
		if (a->dry_run)
		{
			emit(emit_arg, s->glue_table, "dropped", NULL, sql);
			continue;
		}
		reason = run_table_statement(conf->srv, usr, sql);
		if (reason)
		{
			emit(emit_arg, s->glue_table, "skipped", reason, sql);
			continue;
		}
		glue_state_delete(a->serverid, a->glue_database, tdb, tschema, s->glue_table);
		emit(emit_arg, s->glue_table, "dropped", NULL, sql);
	}
}
