/*-------------------------------------------------------------------------
 *
 * hive_types.c
 *		A recursive-descent parser for Hive type strings (the column types
 *		of the AWS Glue Data Catalog) and their Snowflake equivalents.
 *
 * Grammar (Hive Language Manual, "Data Types"; Hive's own parser is
 * TypeInfoUtils.TypeInfoParser, which Glue's type strings follow):
 *
 *	type	 := primitive | array | map | struct | union
 *	array	 := "array" "<" type ">"
 *	map		 := "map" "<" primitive "," type ">"
 *	struct	 := "struct" "<" field { "," field } ">"
 *	field	 := name ":" type
 *	union	 := "uniontype" "<" type { "," type } ">"
 *	primitive:= "string" | "varchar" "(" n ")" | "char" "(" n ")"
 *			  | "tinyint" | "smallint" | "int" | "integer" | "bigint"
 *			  | "float" | "double" [ "precision" ] | "boolean" | "date"
 *			  | "timestamp" | "binary"
 *			  | ("decimal" | "numeric") [ "(" p [ "," s ] ")" ]
 *	name	 := [A-Za-z0-9_]+ | "`" any characters, "``" for a backquote "`"
 *
 * Keywords are case-insensitive and blanks are allowed between tokens.
 * Anything else is an error naming the position, so a malformed or unknown
 * type never reaches generated SQL: the parser builds the Snowflake type
 * from what it recognised, it never copies input text.
 *
 * Mapping (Snowflake "Summary of data types"; Hive "Data Types"):
 *	string → VARCHAR, varchar(n) → VARCHAR(n), char(n) → CHAR(n),
 *	tinyint/smallint/int/bigint → NUMBER(3,0)/(5,0)/(10,0)/(19,0) (enough
 *	digits for the Hive range), float → FLOAT, double → DOUBLE,
 *	decimal(p,s) → NUMBER(p,s) (Hive's default is decimal(10,0)),
 *	boolean → BOOLEAN, date → DATE, timestamp → TIMESTAMP_NTZ (a Hive
 *	timestamp has no time zone), binary → BINARY, array<...> → ARRAY,
 *	map<...> and struct<...> → OBJECT, uniontype<...> → VARIANT.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "sfexport.h"

#define HIVE_MAX_DEPTH 64

typedef struct HiveParser
{
	const char *input;
	const char *p;				/* current position */
	int			depth;
	char	   *error;			/* first error, NULL if none */
} HiveParser;

static bool parse_type(HiveParser *hp, SfHiveType *out);

static void
skip_blanks(HiveParser *hp)
{
	while (*hp->p == ' ' || *hp->p == '\t' || *hp->p == '\n' || *hp->p == '\r')
		hp->p++;
}

/* Record an error at the current position; always returns false. */
static bool
fail(HiveParser *hp, const char *what)
{
	if (hp->error == NULL)
	{
		if (*hp->p == '\0')
			hp->error = psprintf("%s at end of type", what);
		else
			hp->error = psprintf("%s at position %d", what,
								 (int) (hp->p - hp->input) + 1);
	}
	return false;
}

/* A keyword: letters, digits and underscores, lower-cased; NULL if none. */
static char *
read_word(HiveParser *hp)
{
	const char *start;
	char	   *w;

	skip_blanks(hp);
	start = hp->p;
	while (isalnum((unsigned char) *hp->p) || *hp->p == '_')
		hp->p++;
	if (hp->p == start)
		return NULL;
	w = pnstrdup(start, hp->p - start);
	for (char *c = w; *c; c++)
		*c = pg_ascii_tolower((unsigned char) *c);
	return w;
}

static bool
accept(HiveParser *hp, char c)
{
	skip_blanks(hp);
	if (*hp->p != c)
		return false;
	hp->p++;
	return true;
}

static bool
expect(HiveParser *hp, char c)
{
	if (accept(hp, c))
		return true;
	return fail(hp, psprintf("expected \"%c\"", c));
}

/* A non-negative decimal integer of at most 9 digits. */
static bool
read_int(HiveParser *hp, int *v)
{
	int			n = 0;
	int			digits = 0;

	skip_blanks(hp);
	while (isdigit((unsigned char) *hp->p))
	{
		if (++digits > 9)
			return fail(hp, "number too large");
		n = n * 10 + (*hp->p - '0');
		hp->p++;
	}
	if (digits == 0)
		return fail(hp, "expected a number");
	*v = n;
	return true;
}

/* "(n)" with lo <= n <= hi. */
static bool
read_length(HiveParser *hp, const char *type, int lo, int hi, int *n)
{
	const char *at;

	if (!expect(hp, '('))
		return false;
	skip_blanks(hp);
	at = hp->p;
	if (!read_int(hp, n))
		return false;
	if (*n < lo || *n > hi)
	{
		hp->p = at;
		return fail(hp, psprintf("%s length must be between %d and %d", type, lo, hi));
	}
	return expect(hp, ')');
}

/* A struct field name: plain, or backquoted with `` for a backquote. */
static char *
read_field_name(HiveParser *hp)
{
	StringInfoData buf;

	skip_blanks(hp);
	if (*hp->p != '`')
	{
		const char *start = hp->p;

		while (isalnum((unsigned char) *hp->p) || *hp->p == '_')
			hp->p++;
		if (hp->p == start)
		{
			fail(hp, "expected a field name");
			return NULL;
		}
		return pnstrdup(start, hp->p - start);
	}
	hp->p++;
	initStringInfo(&buf);
	for (;;)
	{
		if (*hp->p == '\0')
		{
			fail(hp, "unterminated quoted field name");
			return NULL;
		}
		if (*hp->p == '`')
		{
			if (hp->p[1] != '`')
				break;
			hp->p++;
		}
		appendStringInfoChar(&buf, *hp->p);
		hp->p++;
	}
	hp->p++;
	if (buf.len == 0)
	{
		fail(hp, "empty field name");
		return NULL;
	}
	return buf.data;
}

/* A primitive type whose keyword w was just read. */
static bool
parse_primitive(HiveParser *hp, const char *w, const char *at, SfHiveType *out)
{
	int			n;

	out->kind = SF_HIVE_PRIMITIVE;
	if (strcmp(w, "string") == 0)
		out->snowflake = "VARCHAR";
	else if (strcmp(w, "varchar") == 0)
	{
		if (!read_length(hp, "varchar", 1, 65535, &n))
			return false;
		out->snowflake = psprintf("VARCHAR(%d)", n);
	}
	else if (strcmp(w, "char") == 0)
	{
		if (!read_length(hp, "char", 1, 255, &n))
			return false;
		out->snowflake = psprintf("CHAR(%d)", n);
	}
	else if (strcmp(w, "tinyint") == 0)
		out->snowflake = "NUMBER(3,0)";
	else if (strcmp(w, "smallint") == 0)
		out->snowflake = "NUMBER(5,0)";
	else if (strcmp(w, "int") == 0 || strcmp(w, "integer") == 0)
		out->snowflake = "NUMBER(10,0)";
	else if (strcmp(w, "bigint") == 0)
		out->snowflake = "NUMBER(19,0)";
	else if (strcmp(w, "float") == 0)
		out->snowflake = "FLOAT";
	else if (strcmp(w, "double") == 0)
	{
		const char *save = hp->p;
		char	   *next = read_word(hp);

		if (next == NULL || strcmp(next, "precision") != 0)
			hp->p = save;
		out->snowflake = "DOUBLE";
	}
	else if (strcmp(w, "decimal") == 0 || strcmp(w, "numeric") == 0)
	{
		int			p = 10;
		int			s = 0;

		if (accept(hp, '('))
		{
			const char *pat;

			skip_blanks(hp);
			pat = hp->p;
			if (!read_int(hp, &p))
				return false;
			if (p < 1 || p > 38)
			{
				hp->p = pat;
				return fail(hp, "decimal precision must be between 1 and 38");
			}
			if (accept(hp, ','))
			{
				skip_blanks(hp);
				pat = hp->p;
				if (!read_int(hp, &s))
					return false;
				if (s > p)
				{
					hp->p = pat;
					return fail(hp, "decimal scale must not exceed the precision");
				}
			}
			if (!expect(hp, ')'))
				return false;
		}
		out->snowflake = psprintf("NUMBER(%d,%d)", p, s);
	}
	else if (strcmp(w, "boolean") == 0)
		out->snowflake = "BOOLEAN";
	else if (strcmp(w, "date") == 0)
		out->snowflake = "DATE";
	else if (strcmp(w, "timestamp") == 0)
		out->snowflake = "TIMESTAMP_NTZ";
	else if (strcmp(w, "binary") == 0)
		out->snowflake = "BINARY";
	else
	{
		hp->p = at;
		return fail(hp, psprintf("unknown type \"%s\"", w));
	}
	return true;
}

static bool
parse_type(HiveParser *hp, SfHiveType *out)
{
	const char *at;
	char	   *w;

	check_stack_depth();
	if (++hp->depth > HIVE_MAX_DEPTH)
		return fail(hp, psprintf("types nested deeper than %d levels", HIVE_MAX_DEPTH));
	memset(out, 0, sizeof(*out));
	skip_blanks(hp);
	at = hp->p;
	w = read_word(hp);
	if (w == NULL)
		return fail(hp, "expected a type name");

	if (strcmp(w, "array") == 0)
	{
		SfHiveType elem;

		if (!expect(hp, '<') || !parse_type(hp, &elem) || !expect(hp, '>'))
			return false;
		out->kind = SF_HIVE_ARRAY;
		out->snowflake = "ARRAY";
	}
	else if (strcmp(w, "map") == 0)
	{
		SfHiveType key;
		SfHiveType value;
		const char *kat;

		if (!expect(hp, '<'))
			return false;
		skip_blanks(hp);
		kat = hp->p;
		if (!parse_type(hp, &key))
			return false;
		if (key.kind != SF_HIVE_PRIMITIVE)
		{
			hp->p = kat;
			return fail(hp, "map keys must have a primitive type");
		}
		if (!expect(hp, ',') || !parse_type(hp, &value) || !expect(hp, '>'))
			return false;
		out->kind = SF_HIVE_MAP;
		out->snowflake = "OBJECT";
	}
	else if (strcmp(w, "struct") == 0)
	{
		if (!expect(hp, '<'))
			return false;
		do
		{
			SfHiveType ft;
			char	   *name = read_field_name(hp);

			if (name == NULL || !expect(hp, ':') || !parse_type(hp, &ft))
				return false;
		} while (accept(hp, ','));
		if (!expect(hp, '>'))
			return false;
		out->kind = SF_HIVE_STRUCT;
		out->snowflake = "OBJECT";
	}
	else if (strcmp(w, "uniontype") == 0)
	{
		if (!expect(hp, '<'))
			return false;
		do
		{
			SfHiveType alt;

			if (!parse_type(hp, &alt))
				return false;
		} while (accept(hp, ','));
		if (!expect(hp, '>'))
			return false;
		out->kind = SF_HIVE_UNION;
		out->snowflake = "VARIANT";
	}
	else if (!parse_primitive(hp, w, at, out))
		return false;

	hp->depth--;
	return true;
}

/*
 * Parse a Hive type string.  On success fills *out and returns true; on
 * failure returns false with *error set to a sentence-fragment such as
 * "unknown type \"strin\" at position 7".  Never throws for bad input.
 */
bool
sf_hive_parse_type(const char *hive, SfHiveType *out, char **error)
{
	HiveParser	hp;

	memset(&hp, 0, sizeof(hp));
	hp.input = hive;
	hp.p = hive;
	*error = NULL;
	if (!parse_type(&hp, out))
	{
		*error = hp.error;
		return false;
	}
	skip_blanks(&hp);
	if (*hp.p != '\0')
	{
		fail(&hp, "unexpected text after the type");
		*error = hp.error;
		return false;
	}
	return true;
}

PG_FUNCTION_INFO_V1(sfexport_hive_to_snowflake);

/*
 * sfexport_test.hive_to_snowflake(hive_type text) → text: the Snowflake type
 * glue_sync uses for a Hive type string; an error (22P02) for a malformed
 * one.  For the tests (the test-only extension sfexport_test).
 */
Datum
sfexport_hive_to_snowflake(PG_FUNCTION_ARGS)
{
	char	   *hive = text_to_cstring(PG_GETARG_TEXT_PP(0));
	SfHiveType t;
	char	   *error;

	if (!sf_hive_parse_type(hive, &t, &error))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid Hive type \"%s\": %s", hive, error)));
	PG_RETURN_TEXT_P(cstring_to_text(t.snowflake));
}
