/*-------------------------------------------------------------------------
 *
 * iso8601.c
 *		UTC times as AWS (STS, IMDS, ECS: "Expiration") and Google (IAM
 *		Credentials: "expireTime", RFC 3339) write them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "iso8601.h"

/*
 * YYYY-MM-DDTHH:MM:SS, optional fractional seconds, then Z, +00:00 or
 * nothing (UTC); any other offset is refused.
 */
bool
sf_parse_iso8601_utc(const char *s, time_t *out)
{
	struct tm	tm;
	int			n = 0;
	const char *rest;

	memset(&tm, 0, sizeof(tm));
	if (s == NULL ||
		sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
			   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 || n == 0)
		return false;
	rest = s + n;
	if (*rest == '.')
		while (isdigit((unsigned char) *++rest))
			;
	if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0 && *rest != '\0')
		return false;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = timegm(&tm);
	return *out != (time_t) -1;
}
