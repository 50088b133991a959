/*-------------------------------------------------------------------------
 *
 * quote.c
 *		Quoting for the Snowflake SQL sfexport generates, and the redacted
 *		form of a statement that may be shown in messages.
 *
 * Every identifier in generated Snowflake SQL goes through sf_quote_ident()
 * and every literal through sf_quote_literal(), so that no name (from
 * users, from options or from Glue) can change a statement.  Pure
 * functions over strings: no client, no catalog.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "sfexport.h"

#include "quote.h"

/*
 * Quote an identifier for Snowflake SQL: always double-quoted, embedded
 * double quotes doubled.  The one function every generated statement uses
 * for names, so that no name (from users or from Glue) can inject SQL.
 * Quoted identifiers are case-sensitive in Snowflake: "events" and EVENTS
 * are different tables.
 */
char *
sf_quote_ident(const char *ident)
{
	StringInfoData buf;

	if (ident == NULL || ident[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("Snowflake identifiers must not be empty")));
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '"');
	for (const char *c = ident; *c; c++)
	{
		if (*c == '"')
			appendStringInfoChar(&buf, '"');
		appendStringInfoChar(&buf, *c);
	}
	appendStringInfoChar(&buf, '"');
	return buf.data;
}

/*
 * Quote a string literal for Snowflake SQL: single quotes doubled, and
 * backslashes doubled too, since Snowflake interprets backslash escape
 * sequences in single-quoted string constants ("String & binary data
 * types", Escape sequences).  For the rare literal that cannot be a bind
 * variable (e.g. in DDL); values go through bindings.
 */
char *
sf_quote_literal(const char *value)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '\'');
	for (const char *c = value; *c; c++)
	{
		if (*c == '\'' || *c == '\\')
			appendStringInfoChar(&buf, *c);
		appendStringInfoChar(&buf, *c);
	}
	appendStringInfoChar(&buf, '\'');
	return buf.data;
}

/* Option names whose literal values are credentials in Snowflake DDL. */
static const char *const secret_keywords[] = {
	"AWS_KEY_ID", "AWS_SECRET_KEY", "AWS_TOKEN", "AZURE_SAS_TOKEN",
	"MASTER_KEY", "PASSWORD", "PRIVATE_KEY", "TOKEN", NULL
};

static bool
is_secret_keyword(const char *word, size_t len)
{
	for (const char *const *k = secret_keywords; *k; k++)
		if (strlen(*k) == len && pg_strncasecmp(*k, word, len) == 0)
			return true;
	return false;
}

/*
 * The statement as it may be shown in messages: the literal after each
 * credential option (AWS_SECRET_KEY = '...', etc.) is replaced by '***'.
 */
char *
sf_redact_sql(const char *sql)
{
	StringInfoData out;
	const char *p = sql;
	bool		mask_next = false;

	initStringInfo(&out);
	while (*p)
	{
		if (isalpha((unsigned char) *p) || *p == '_')
		{
			const char *start = p;

			while (isalnum((unsigned char) *p) || *p == '_' || *p == '$')
				p++;
			appendBinaryStringInfo(&out, start, p - start);
			mask_next = is_secret_keyword(start, p - start);
		}
		else if (*p == '"')
		{
			/*
			 * A quoted identifier: copy it whole ("" inside), so that a quote
			 * or keyword in a name cannot shift what is taken for a literal.
			 */
			const char *start = p++;

			while (*p)
			{
				if (*p == '"' && p[1] == '"')
					p += 2;
				else if (*p++ == '"')
					break;
			}
			appendBinaryStringInfo(&out, start, p - start);
			mask_next = false;
		}
		else if (*p == '\'')
		{
			/* a literal: find its end, honouring '' and backslash escapes */
			const char *start = p++;

			while (*p)
			{
				if (*p == '\\' && p[1])
					p += 2;
				else if (*p == '\'' && p[1] == '\'')
					p += 2;
				else if (*p == '\'')
				{
					p++;
					break;
				}
				else
					p++;
			}
			if (mask_next)
				appendStringInfoString(&out, "'***'");
			else
				appendBinaryStringInfo(&out, start, p - start);
			mask_next = false;
		}
		else
		{
			/* "=" and blanks between a keyword and its value keep the mark */
			if (!(*p == '=' || isspace((unsigned char) *p)))
				mask_next = false;
			appendStringInfoChar(&out, *p);
			p++;
		}
	}
	return out.data;
}
