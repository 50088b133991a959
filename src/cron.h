/*-------------------------------------------------------------------------
 *
 * cron.h
 *		Five-field cron schedules: parsing and the next matching minute, in
 *		UTC (cron.c; protocols layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_CRON_H
#define SF_CRON_H

#include "datatype/timestamp.h"

/* A parsed schedule: one bit per allowed value of each field. */
typedef struct SfCron
{
	uint64		minutes;		/* bits 0..59 */
	uint32		hours;			/* bits 0..23 */
	uint32		doms;			/* bits 1..31 */
	uint32		months;			/* bits 1..12 */
	uint32		dows;			/* bits 0..6, 0 = Sunday */
	bool		dom_star;		/* day-of-month field was '*' (or '*' with a step) */
	bool		dow_star;		/* day-of-week field was '*' (or '*' with a step) */
} SfCron;

/* How far sf_cron_next looks: a schedule with no match in it never runs. */
#define SF_CRON_HORIZON_YEARS	9

extern bool sf_cron_parse(const char *text, SfCron *cron, const char **error);
extern TimestampTz sf_cron_next(const SfCron *cron, TimestampTz after);

#endif							/* SF_CRON_H */
