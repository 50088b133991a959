/*-------------------------------------------------------------------------
 *
 * xml_scan.c
 *		A tag scanner for the flat XML answers of AWS services (S3, STS):
 *		the text of <Tag>...</Tag> with the XML entities undone.  Enough for
 *		answers without nesting of the same tag or attributes on the tags
 *		read; not an XML parser.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "xml_scan.h"

/* Undo the five predefined XML entities and numeric references. */
static char *
xml_unescape(const char *s, size_t len)
{
	StringInfoData out;

	initStringInfo(&out);
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] == '&')
		{
			const char *semi = memchr(s + i, ';', len - i);

			if (semi)
			{
				size_t		elen = semi - (s + i) + 1;

				if (strncmp(s + i, "&amp;", elen) == 0 && elen == 5)
					appendStringInfoChar(&out, '&');
				else if (elen == 4 && strncmp(s + i, "&lt;", 4) == 0)
					appendStringInfoChar(&out, '<');
				else if (elen == 4 && strncmp(s + i, "&gt;", 4) == 0)
					appendStringInfoChar(&out, '>');
				else if (elen == 6 && strncmp(s + i, "&quot;", 6) == 0)
					appendStringInfoChar(&out, '"');
				else if (elen == 6 && strncmp(s + i, "&apos;", 6) == 0)
					appendStringInfoChar(&out, '\'');
				else if (elen > 3 && s[i + 1] == '#')
				{
					long		cp = (s[i + 2] == 'x')
						? strtol(s + i + 3, NULL, 16) : strtol(s + i + 2, NULL, 10);

					if (cp > 0 && cp < 0x80)
						appendStringInfoChar(&out, (char) cp);
					else
						appendBinaryStringInfo(&out, s + i, elen);
				}
				else
					appendBinaryStringInfo(&out, s + i, elen);
				i += elen - 1;
				continue;
			}
		}
		appendStringInfoChar(&out, s[i]);
	}
	return out.data;
}

/* Text of the first <tag>...</tag> at or after *pos; advances *pos. */
char *
sf_xml_next(const char *doc, const char *tag, const char **pos)
{
	char	   *open = psprintf("<%s>", tag);
	char	   *close = psprintf("</%s>", tag);
	const char *start = strstr(*pos ? *pos : doc, open);
	const char *end;

	if (start == NULL)
		return NULL;
	start += strlen(open);
	end = strstr(start, close);
	if (end == NULL)
		return NULL;
	*pos = end + strlen(close);
	return xml_unescape(start, end - start);
}

char *
sf_xml_get(const char *doc, const char *tag)
{
	const char *pos = NULL;

	return doc ? sf_xml_next(doc, tag, &pos) : NULL;
}
