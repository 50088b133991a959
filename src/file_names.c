/*-------------------------------------------------------------------------
 *
 * file_names.c
 *		The names of staged files: made when a file is staged (flush.c),
 *		read back to tell an orphan of this database and cluster (sweep.c).
 *
 * File names are unique across tables, databases and clusters, sortable by
 * time, and never reused:
 *	<dboid>/<relid>/<UTC time>_<system identifier>_<timeline>_<random><ext>
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "file_names.h"

/* A new, never reused object name for a file of relid. */
char *
sf_new_file_name(Oid relid, SfCompression compression)
{
	TimestampTz now = GetCurrentTimestamp();
	pg_time_t	t = timestamptz_to_time_t(now);
	struct pg_tm *tm = pg_gmtime(&t);
	uint32		rnd;
	char		ts[32];

	if (!pg_strong_random(&rnd, sizeof(rnd)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random file name suffix")));
	snprintf(ts, sizeof(ts), "%04d%02d%02dT%02d%02d%02d.%06dZ",
			 tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
			 tm->tm_hour, tm->tm_min, tm->tm_sec, (int) (now % USECS_PER_SEC));
	return psprintf("%u/%u/%s_" UINT64_FORMAT "_%u_%08x%s",
					MyDatabaseId, relid, ts, GetSystemIdentifier(),
					GetWALInsertionTimeLine(), rnd,
					sf_compression_extension(compression));
}

/*
 * Parse a file name made by sf_new_file_name().  Returns false for
 * any other name.  *at is the time in the name; *sysid the system
 * identifier.
 */
bool
sf_parse_file_name(const char *name, Oid *dboid, TimestampTz *at, uint64 *sysid)
{
	unsigned int db,
				rel,
				tli,
				rnd;
	int			y,
				mo,
				d,
				h,
				mi,
				s,
				us;
	unsigned long long id;
	int			consumed = -1;
	struct pg_tm tm;

	if (sscanf(name, "%10u/%10u/%4d%2d%2dT%2d%2d%2d.%6dZ_%20llu_%10u_%8x%n",
			   &db, &rel, &y, &mo, &d, &h, &mi, &s, &us, &id, &tli, &rnd,
			   &consumed) != 12 || consumed < 0)
		return false;
	/* what follows is the extension: nothing, or ".csv..." */
	if (name[consumed] != '\0' && name[consumed] != '.')
		return false;
	if (strchr(name + consumed, '/') != NULL)
		return false;

	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y;
	tm.tm_mon = mo;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 ||
		us < 0 || us >= USECS_PER_SEC ||
		tm2timestamp(&tm, us, NULL, at) != 0)
		return false;
	*dboid = (Oid) db;
	*sysid = (uint64) id;
	return true;
}
