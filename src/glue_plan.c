/*-------------------------------------------------------------------------
 *
 * glue_plan.c
 *		What one AWS Glue table becomes in Snowflake: the CREATE OR REPLACE
 *		EXTERNAL TABLE statement (its location below a stage, its columns
 *		typed by hive_types.c, its partition columns from the file names)
 *		and the hashes the sync compares, or why the table is skipped.
 *		glue_sync.c runs the sync; its header comment has the rules.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "glue_client.h"

#include "sfexport.h"

#include "glue_plan.h"
#include "hive_types.h"
#include "quote.h"
#include "sigv4.h"

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

char *
sf_glue_upper_name(const char *name)
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

int
sf_glue_cmp_strings(const ListCell *a, const ListCell *b)
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
	list_sort(ls.dirs, sf_glue_cmp_strings);
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
 * The checks a data column and a partition key share, in this order: a
 * usable name, a Hive type that parses (and, for a partition key, is not
 * nested), a Snowflake name no other column has.  what names it in the
 * reason ("column", "partition key"), pos is its place among its kind.
 * Returns its Snowflake name, added to *seen, or NULL once plan is
 * skipped.
 */
static char *
checked_column(GluePlan *plan, const char *what, int pos, SfGlueColumn *c,
			   bool primitive_only, SfHiveType *ht, List **seen)
{
	char	   *error;
	char	   *colname;

	if (!sf_glue_usable_name(c->name))
	{
		skip(plan, "%s %d has a name that is empty, longer than %d bytes or has control characters",
			 what, pos, SF_GLUE_NAME_MAX);
		return NULL;
	}
	if (c->type == NULL || !sf_hive_parse_type(c->type, ht, &error))
	{
		skip(plan, "%s \"%s\" has a malformed type \"%s\": %s", what, sf_glue_shown_name(c->name),
			 sf_glue_shown_name(c->type), c->type ? error : "no type");
		return NULL;
	}
	if (primitive_only && ht->kind != SF_HIVE_PRIMITIVE)
	{
		skip(plan, "%s \"%s\" has the nested type \"%s\"", what, sf_glue_shown_name(c->name),
			 sf_glue_shown_name(c->type));
		return NULL;
	}
	colname = sf_glue_upper_name(c->name);
	if (list_member(*seen, makeString(colname)))
	{
		skip(plan, "two columns are both named \"%s\" in Snowflake", sf_glue_shown_name(colname));
		return NULL;
	}
	*seen = lappend(*seen, makeString(colname));
	return colname;
}

/*
 * Decide what a Glue table becomes: the CREATE OR REPLACE EXTERNAL TABLE
 * statement and its hash, or a reason to skip it.
 */
void
sf_glue_plan_table(SfGlueClient *gc, SfGlueConfig *conf, const char *glue_db, SfGlueTable *t,
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
	plan->target_table = sf_glue_upper_name(t->name);

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
		char	   *colname;
		const char *type;

		pos++;
		colname = checked_column(plan, "column", pos, c, false, &ht, &seen);
		if (colname == NULL)
			return;
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
		char	   *colname;
		char	   *segment;

		colname = checked_column(plan, "partition key", foreach_current_index(lc) + 1, c, true,
								 &ht, &seen);
		if (colname == NULL)
			return;
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
