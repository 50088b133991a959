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
	char	   *shape_hash;		/* SHA-256 of it without the data columns; NULL = unknown */
	List	   *columns;		/* char *: the data column definitions */
	List	   *partitions;		/* char *: partition directories, sorted */
	bool		partitions_known;	/* false: synced before partitions were recorded */
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
	char	   *shape_hash;		/* hash of the statement without the data columns */
	List	   *columns;		/* char *: data column definitions, "NAME" type AS (expr) */
	List	   *partitions;		/* char *: partition directories below the location, sorted */
	char	   *table_sql;		/* "DB"."SCHEMA"."TABLE" */
	bool		user_specified; /* PARTITION_TYPE = USER_SPECIFIED: values from Glue */
	char	   *user_specified_why;	/* why the directories do not give the values */
	List	   *part_names;		/* char *: the partition columns' Snowflake names */
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
	List	   *dirs;			/* char * in cxt: each partition's directory below the table */
	List	   *entries;		/* char * in cxt: ["<directory>", "<value>", ...] JSON */
	char	   *user_reason;	/* in cxt: why the paths cannot give the values, or NULL */
	char	   *bad_values;		/* in cxt: a partition without one string value per key */
} LayoutScan;

/*
 * One partition (sf_glue_partition_locations); false: a reason found.  A
 * partition whose directory cannot give its values (layouts mixed, keys out
 * of order) does not stop the scan: the table then takes its partitions
 * from Glue's values (USER_SPECIFIED, ls->user_reason says why).
 */
static bool
layout_of_partition(void *arg, const char *loc, json_t *values)
{
	LayoutScan *ls = (LayoutScan *) arg;
	char	   *pb;
	char	   *pk;
	const char *rel;
	bool		hive;
	ListCell   *lc;
	json_t	   *entry;
	size_t		i;
	json_t	   *v;

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
	/* Glue's values of the partition, needed only for USER_SPECIFIED */
	rel = pk + strlen(ls->key);
	entry = sf_json_tracked(json_array());
	json_array_append_new(entry, json_string(rel));
	if (!json_is_array(values) || json_array_size(values) != (size_t) list_length(ls->t->partition_keys))
		values = NULL;
	json_array_foreach(values, i, v)
	{
		if (!json_is_string(v))
			values = NULL;
		else
			json_array_append(entry, v);
	}
	if (values == NULL && ls->bad_values == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(ls->cxt);

		ls->bad_values = psprintf("partition \"%s\" does not have one string value per partition key",
								  sf_glue_shown_name(loc));
		MemoryContextSwitchTo(old);
	}
	hive = strncmp(rel, linitial(ls->esc_keys), strlen(linitial(ls->esc_keys))) == 0;
	if (ls->user_reason == NULL && !ls->first && hive != ls->hive_layout)
		ls->user_reason = MemoryContextStrdup(ls->cxt,
											  "partitions mix hive-style (key=value) and plain directories");
	if (ls->user_reason == NULL && hive)
	{
		const char *r = rel;

		/* every key in its place: k1=../k2=../ */
		foreach(lc, ls->esc_keys)
		{
			const char *k = (const char *) lfirst(lc);

			if (strncmp(r, k, strlen(k)) != 0)
			{
				MemoryContext old = MemoryContextSwitchTo(ls->cxt);

				ls->user_reason = psprintf("partition location \"%s\" does not have the partition keys in order as key=value directories",
										   sf_glue_shown_name(loc));
				MemoryContextSwitchTo(old);
				break;
			}
			r = strchr(r, '/') + 1;
		}
	}
	if (ls->first)
		ls->hive_layout = hive;
	ls->first = false;
	{
		MemoryContext old = MemoryContextSwitchTo(ls->cxt);

		ls->dirs = lappend(ls->dirs, pstrdup(rel));
		ls->entries = lappend(ls->entries, sf_json_dumps(entry));
		MemoryContextSwitchTo(old);
	}
	return true;
}

static int
cmp_strings(const ListCell *a, const ListCell *b)
{
	return strcmp((const char *) lfirst(a), (const char *) lfirst(b));
}

/*
 * The directory layout of a table's partitions, from the locations Glue
 * reports for them (every page, one page in memory at a time):
 * *hive_layout true for key=value directories, false for plain ones.  A
 * table without partitions yet is taken as hive style.  When the
 * directories cannot give the values (layouts mixed, keys out of order),
 * *user_specified is set: the table takes each partition's values from
 * Glue (PARTITION_TYPE = USER_SPECIFIED, ALTER EXTERNAL TABLE ... ADD
 * PARTITION).  *dirs gets what the next sync compares with, sorted: the
 * partitions' directories below the table location, or for USER_SPECIFIED
 * ["<directory>", "<value>", ...] as JSON text.  Returns NULL, or why the
 * table cannot be mirrored.
 */
static char *
partition_layout(SfGlueClient *gc, const char *glue_db, SfGlueTable *t, const char *bucket,
				 const char *key, bool *hive_layout, char **user_specified, List **dirs)
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
	*user_specified = ls.user_reason;
	if (ls.reason == NULL && ls.user_reason && ls.bad_values)
		ls.reason = psprintf("%s, and %s", ls.user_reason, ls.bad_values);
	if (ls.user_reason)
		ls.dirs = ls.entries;
	/* sorted and without duplicates, to compare with the last sync's */
	list_sort(ls.dirs, cmp_strings);
	*dirs = NIL;
	foreach(lc, ls.dirs)
		if (*dirs == NIL || strcmp(llast(*dirs), lfirst(lc)) != 0)
			*dirs = lappend(*dirs, lfirst(lc));
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
	StringInfoData head;
	StringInfoData tail;
	List	   *pcols = NIL;
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
		char	   *why = partition_layout(gc, glue_db, t, bucket, key, &hive_layout,
											   &plan->user_specified_why, &plan->partitions);

		plan->user_specified = plan->user_specified_why != NULL;

		if (why)
		{
			skip(plan, "%s", why);
			return;
		}
	}

	/*
	 * The statement: head, the data columns, the partition columns, the
	 * rest.  The data columns are kept apart (plan->columns) so that a later
	 * sync can tell a change Snowflake applies in place (columns added or
	 * dropped, nothing else) from one that needs CREATE OR REPLACE.
	 */
	initStringInfo(&sql);
	initStringInfo(&pby);
	initStringInfo(&head);
	initStringInfo(&tail);
	plan->table_sql = psprintf("%s.%s.%s", sf_quote_ident(target_db),
							   sf_quote_ident(target_schema), sf_quote_ident(plan->target_table));
	appendStringInfo(&head, "CREATE OR REPLACE EXTERNAL TABLE %s (", plan->table_sql);
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
			plan->columns = lappend(plan->columns,
									psprintf("%s %s AS (value:c%d::%s)",
											 sf_quote_ident(colname), type, pos, type));
		else
			plan->columns = lappend(plan->columns,
									psprintf("%s %s AS (%s::%s)", sf_quote_ident(colname),
											 type, column_path(t, c->name), type));
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
		plan->part_names = lappend(plan->part_names, colname);
		if (plan->user_specified)
		{
			/*
			 * USER_SPECIFIED: the values ADD PARTITION gave, as JSON in
			 * METADATA$EXTERNAL_TABLE_PARTITION ("Partitions added and
			 * removed manually": part_col AS (PARSE_JSON(
			 * METADATA$EXTERNAL_TABLE_PARTITION):COL::type)), whose names
			 * may have 32 characters at most.
			 */
			if (strlen(colname) > 32)
			{
				skip(plan, "partition key \"%s\" is longer than the 32 characters of a user-specified partition column, and the partition directories do not give the values",
					 sf_glue_shown_name(c->name));
				return;
			}
			pcols = lappend(pcols, psprintf("%s %s AS (PARSE_JSON(METADATA$EXTERNAL_TABLE_PARTITION):%s::%s)",
											sf_quote_ident(colname), ht.snowflake,
											sf_quote_ident(colname), ht.snowflake));
			appendStringInfo(&pby, "%s%s", pby.len ? ", " : "", sf_quote_ident(colname));
			continue;
		}
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
		pcols = lappend(pcols, psprintf("%s %s AS (%s::%s)", sf_quote_ident(colname),
										ht.snowflake, segment, ht.snowflake));
		appendStringInfo(&pby, "%s%s", pby.len ? ", " : "", sf_quote_ident(colname));
	}
	foreach(lc, pcols)
		appendStringInfo(&tail, ",\n  %s", (char *) lfirst(lc));
	appendStringInfoString(&tail, "\n)");
	if (pby.len > 0)
		appendStringInfo(&tail, "\nPARTITION BY (%s)", pby.data);
	appendStringInfo(&tail, "\nLOCATION = @%s/%s", stage->stage_sql, relpath);
	if (plan->user_specified)
		appendStringInfoString(&tail, "\nPARTITION_TYPE = USER_SPECIFIED");

	/*
	 * AUTO_REFRESH = TRUE (glue_auto_refresh): Snowflake refreshes the
	 * metadata from the S3 event notifications the user routes to the
	 * table's notification_channel (SHOW EXTERNAL TABLES); an S3 location
	 * needs no INTEGRATION, which CREATE EXTERNAL TABLE requires for GCS and
	 * Azure only ("Refresh external tables automatically for Amazon S3").
	 */
	if (!plan->user_specified)	/* ADD PARTITION registers its files */
		appendStringInfoString(&tail, conf->auto_refresh ? "\nAUTO_REFRESH = TRUE" : "\nAUTO_REFRESH = FALSE");
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
	appendStringInfo(&tail, "\nFILE_FORMAT = (%s)", ff);

	/* the same text as before the columns were kept apart: the same hash */
	appendStringInfoString(&sql, head.data);
	foreach(lc, plan->columns)
		appendStringInfo(&sql, "%s\n  %s", foreach_current_index(lc) > 0 ? "," : "",
						 (char *) lfirst(lc));
	appendStringInfoString(&sql, tail.data);
	plan->statement = sql.data;
	plan->hash = sf_sha256_hex(sql.data, sql.len);
	appendStringInfoString(&head, tail.data);
	plan->shape_hash = sf_sha256_hex(head.data, head.len);
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
static List *
glue_state_load(Oid serverid, const char *glue_db, const char *tdb, const char *tschema)
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
static void
glue_state_save(Oid serverid, const char *glue_db, const char *tdb, const char *tschema,
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
static void
glue_log_save(Oid serverid, const char *glue_db, const char *glue_table, const char *action,
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
static void
glue_log_forget(Oid serverid, const char *glue_db, const char *pattern, List *reported)
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
	glue_log_save(serverid, glue_db, "", "failed", message, true);
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
		glue_log_save(o->a->serverid, o->a->glue_database, glue_table, action, reason,
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

	plan_table(p->gc, p->conf, p->glue_db, p->t, p->tdb, p->tschema, p->plan);
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
	state = glue_state_load(a->serverid, a->glue_database, tdb, tschema);
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
			glue_state_save(a->serverid, a->glue_database, tdb, tschema, &plan,
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
				list_sort(applied, cmp_strings);
				glue_state_save(a->serverid, a->glue_database, tdb, tschema, &plan,
								applied, applied_known);
			}
			report(&out, t->name, "skipped", reason, join_statements(shown));
			continue;
		}
		glue_state_save(a->serverid, a->glue_database, tdb, tschema, &plan,
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
		glue_state_delete(a->serverid, a->glue_database, tdb, tschema, s->glue_table);
		report(&out, s->glue_table, "dropped", NULL, sql);
	}
	if (!a->dry_run)
		glue_log_forget(a->serverid, a->glue_database, a->pattern, out.reported);
}
