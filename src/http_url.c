/*-------------------------------------------------------------------------
 *
 * http_url.c
 *		URL and header rules of the HTTP module, without transfers.
 *
 * Part of the HTTP module with http.c (which owns every transfer): the
 * percent-encoding of URL components, which header values may be sent,
 * and whether a URL a service handed back has the origin of the one we
 * called.  Kept apart from the transfers so that code which builds URLs
 * and headers (signing, the fuzz harnesses) needs no network.  These and
 * http.c are the only files that include libcurl.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "sfexport.h"

/*
 * Whether a text can be sent in an HTTP header line: no control characters
 * (below 0x20, or DEL), tab included.
 */
bool
sf_http_header_value_ok(const char *value)
{
	for (const unsigned char *c = (const unsigned char *) value; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

/*
 * Whether url has the same origin as base (RFC 6454: scheme, host and
 * port, default ports made explicit) and carries no user information.
 * Both are parsed with libcurl's URL parser, as libcurl will parse them to
 * connect.  For URLs a service hands back (a GCS resumable session in a
 * Location header) before sending credentials to them.
 */
bool
sf_http_same_origin(const char *url, const char *base)
{
	CURLU	   *u[2] = {curl_url(), curl_url()};
	const char *texts[2] = {url, base};
	char	   *parts[2][3] = {{NULL, NULL, NULL}, {NULL, NULL, NULL}};
	static const CURLUPart which[3] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
	bool		same = u[0] != NULL && u[1] != NULL;

	for (int i = 0; i < 2 && same; i++)
	{
		char	   *user = NULL;

		if (curl_url_set(u[i], CURLUPART_URL, texts[i], 0) != CURLUE_OK)
			same = false;
		for (int j = 0; j < 3 && same; j++)
			if (curl_url_get(u[i], which[j], &parts[i][j], CURLU_DEFAULT_PORT) != CURLUE_OK)
				same = false;
		if (same && curl_url_get(u[i], CURLUPART_USER, &user, 0) == CURLUE_OK)
			same = false;		/* user information: never ours */
		if (user)
			curl_free(user);
	}
	for (int j = 0; j < 3 && same; j++)
		same = pg_strcasecmp(parts[0][j], parts[1][j]) == 0;
	for (int i = 0; i < 2; i++)
	{
		for (int j = 0; j < 3; j++)
			if (parts[i][j])
				curl_free(parts[i][j]);
		if (u[i])
			curl_url_cleanup(u[i]);
	}
	return same;
}

/*
 * Percent-encode s the way AWS SigV4 requires (which is also RFC 3986 for
 * URL components): only A-Z a-z 0-9 - _ . ~ are left bare, and '/' when
 * keep_slash; everything else is %XX with upper-case hex, byte by byte
 * (UTF-8 stays UTF-8).
 */
char *
sf_http_url_encode(const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	StringInfoData out;

	initStringInfo(&out);
	for (const unsigned char *c = (const unsigned char *) s; *c; c++)
	{
		if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
			(*c >= '0' && *c <= '9') || *c == '-' || *c == '_' ||
			*c == '.' || *c == '~' || (keep_slash && *c == '/'))
			appendStringInfoChar(&out, (char) *c);
		else
		{
			appendStringInfoChar(&out, '%');
			appendStringInfoChar(&out, hex[*c >> 4]);
			appendStringInfoChar(&out, hex[*c & 0x0F]);
		}
	}
	return out.data;
}
