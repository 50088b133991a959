/*-------------------------------------------------------------------------
 *
 * iso8601.h
 *		UTC times as cloud APIs write them (iso8601.c; protocols layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_ISO8601_H
#define SF_ISO8601_H

#include <time.h>

/* 2026-01-01T01:00:00Z (fractional seconds, +00:00 accepted) -> time_t */
extern bool sf_parse_iso8601_utc(const char *s, time_t *out);

#endif							/* SF_ISO8601_H */
