/*-------------------------------------------------------------------------
 *
 * cron.c
 *		Five-field cron schedules (the flush_at option): parsing, and the
 *		first matching minute after a time, evaluated in UTC.
 *
 * The accepted syntax is the one of Vixie cron as pg_cron parses it
 * (citusdata/pg_cron src/entry.c, from Vixie cron's load_entry):
 *
 *	  minute hour day-of-month month day-of-week
 *
 * each field a list "item[,item...]" of '*', N or N-M, the last two
 * optionally followed by "/step" ('*' with a step too; "N/step" alone is an
 * error, as in pg_cron).  Ranges: minute 0-59, hour 0-23, day of month
 * 1-31, month 1-12 or jan-dec, day of week 0-7 or sun-sat (0 and 7 are
 * Sunday); names are case-insensitive.  The shorthands @yearly (@annually),
 * @monthly, @weekly, @daily (@midnight) and @hourly are accepted; @reboot
 * and pg_cron's own extensions ("N seconds", '$' for the last day of the
 * month) are not.  As in cron, when both day fields are restricted (neither
 * starts with '*'), a day matches if either does; otherwise both must.
 *
 * Times are UTC: a schedule means the same instant on every server, and no
 * daylight-saving change skips or repeats a run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "datatype/timestamp.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "cron.h"

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const dow_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL
};

typedef struct CronField
{
	const char *name;
	int			low;
	int			high;
	const char *const *names;	/* names[i] stands for low + i */
} CronField;

static const CronField fields[5] = {
	{"minute", 0, 59, NULL},
	{"hour", 0, 23, NULL},
	{"day of month", 1, 31, NULL},
	{"month", 1, 12, month_names},
	{"day of week", 0, 7, dow_names},
};

/* A number or a name of field f at *p; advances *p.  false if neither. */
static bool
parse_value(const char **p, const CronField *f, int *value, bool names_ok)
{
	const char *s = *p;
	int			v = 0;
	int			len = 0;

	if (isdigit((unsigned char) *s))
	{
		while (isdigit((unsigned char) s[len]) && len < 3)
			v = v * 10 + (s[len++] - '0');
		if (isdigit((unsigned char) s[len]))
			return false;
		*value = v;
		*p = s + len;
		return true;
	}
	if (!names_ok || f->names == NULL)
		return false;
	for (int i = 0; f->names[i]; i++)
	{
		if (pg_strncasecmp(s, f->names[i], 3) == 0 && !isalnum((unsigned char) s[3]))
		{
			*value = f->low + i;
			*p = s + 3;
			return true;
		}
	}
	return false;
}

/*
 * One field, text between start and end, into *bits.  Returns NULL or the
 * error (palloc'd).
 */
static const char *
parse_field(const char *start, const char *end, const CronField *f, uint64 *bits)
{
	const char *p = start;
	char	   *text = pnstrdup(start, end - start);

	*bits = 0;
	for (;;)
	{
		int			a,
					b,
					step = 1;
		bool		star = false;
		bool		range = false;

		if (*p == '*')
		{
			a = f->low;
			b = f->high;
			star = true;
			p++;
		}
		else
		{
			if (!parse_value(&p, f, &a, true))
				return psprintf("the %s field \"%s\" has an item that is not '*', a number or a name", f->name, text);
			b = a;
			if (*p == '-')
			{
				range = true;
				p++;
				if (!parse_value(&p, f, &b, true))
					return psprintf("the %s field \"%s\" has a range without an end", f->name, text);
			}
			if (a < f->low || a > f->high || b < f->low || b > f->high)
				return psprintf("the %s field \"%s\" has a value outside %d-%d", f->name, text, f->low, f->high);
			if (b < a)
				return psprintf("the %s field \"%s\" has a range whose end is before its start", f->name, text);
		}
		if (*p == '/')
		{
			const char *q = p + 1;

			if (!star && !range)
				return psprintf("the %s field \"%s\" has a step after a single value (write N-M/step or */step)", f->name, text);
			if (!parse_value(&q, f, &step, false) || step <= 0)
				return psprintf("the %s field \"%s\" has a step that is not a positive number", f->name, text);
			p = q;
		}
		for (int v = a; v <= b; v += step)
			*bits |= UINT64CONST(1) << v;
		if (p == end)
			break;
		if (*p != ',')
			return psprintf("the %s field \"%s\" has \"%c\" where ',' or the end of the field was expected",
							f->name, text, *p);
		p++;
	}
	return NULL;
}

/*
 * Parse a schedule.  On error returns false with *error a sentence (palloc'd)
 * saying what is wrong.
 */
bool
sf_cron_parse(const char *text, SfCron *cron, const char **error)
{
	const char *p = text;
	const char *starts[5];
	const char *ends[5];
	uint64		bits[5];
	int			n = 0;

	memset(cron, 0, sizeof(*cron));
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '@')
	{
		static const struct
		{
			const char *name;
			const char *fields;
		}			shorthands[] = {
			{"yearly", "0 0 1 1 *"}, {"annually", "0 0 1 1 *"},
			{"monthly", "0 0 1 * *"}, {"weekly", "0 0 * * 0"},
			{"daily", "0 0 * * *"}, {"midnight", "0 0 * * *"},
			{"hourly", "0 * * * *"},
		};
		char	   *word = pstrdup(p + 1);
		char	   *w = word + strlen(word);

		while (w > word && (w[-1] == ' ' || w[-1] == '\t'))
			*--w = '\0';
		for (size_t i = 0; i < lengthof(shorthands); i++)
			if (pg_strcasecmp(word, shorthands[i].name) == 0)
				return sf_cron_parse(shorthands[i].fields, cron, error);
		*error = psprintf("\"@%s\" is not a schedule shorthand (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)",
						  word);
		return false;
	}
	while (*p)
	{
		if (n == 5)
		{
			*error = "a schedule has five fields (minute hour day-of-month month day-of-week), this one more";
			return false;
		}
		starts[n] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		ends[n++] = p;
		while (*p == ' ' || *p == '\t')
			p++;
	}
	if (n != 5)
	{
		*error = psprintf("a schedule has five fields (minute hour day-of-month month day-of-week), this one %d", n);
		return false;
	}
	for (int i = 0; i < 5; i++)
	{
		const char *err = parse_field(starts[i], ends[i], &fields[i], &bits[i]);

		if (err)
		{
			*error = err;
			return false;
		}
	}
	cron->minutes = bits[0];
	cron->hours = (uint32) bits[1];
	cron->doms = (uint32) bits[2];
	cron->months = (uint32) bits[3];
	/* 7 is Sunday too */
	cron->dows = (uint32) ((bits[4] | (bits[4] >> 7)) & 0x7f);
	cron->dom_star = *starts[2] == '*';
	cron->dow_star = *starts[4] == '*';
	return true;
}

/* Whether the day y-m-d (UTC) is one the schedule runs on. */
static bool
day_matches(const SfCron *cron, int y, int m, int d)
{
	bool		dom = (cron->doms >> d) & 1;
	bool		dow = (cron->dows >> j2day(date2j(y, m, d))) & 1;

	if (cron->dom_star || cron->dow_star)
		return dom && dow;
	return dom || dow;
}

/*
 * The first minute strictly after "after" that the schedule matches, in
 * UTC; 0 if none comes within SF_CRON_HORIZON_YEARS (e.g. February 30).
 */
TimestampTz
sf_cron_next(const SfCron *cron, TimestampTz after)
{
	const int64 minute = USECS_PER_MINUTE;
	TimestampTz t = after - (after % minute + (after % minute < 0 ? minute : 0)) + minute;
	TimestampTz horizon = after + (int64) SF_CRON_HORIZON_YEARS * 366 * USECS_PER_DAY;

	while (t <= horizon)
	{
		struct pg_tm tm;
		fsec_t		fsec;

		if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
			return 0;
		if (!((cron->months >> tm.tm_mon) & 1))
		{
			/* the first minute of the next month */
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
			if (++tm.tm_mon > 12)
			{
				tm.tm_mon = 1;
				tm.tm_year++;
			}
			if (tm2timestamp(&tm, 0, NULL, &t) != 0)
				return 0;
			continue;
		}
		if (!day_matches(cron, tm.tm_year, tm.tm_mon, tm.tm_mday))
		{
			t += USECS_PER_DAY - (int64) (tm.tm_hour * 60 + tm.tm_min) * minute;
			continue;
		}
		if (!((cron->hours >> tm.tm_hour) & 1))
		{
			t += (int64) (60 - tm.tm_min) * minute;
			continue;
		}
		if (!((cron->minutes >> tm.tm_min) & 1))
		{
			t += minute;
			continue;
		}
		return t;
	}
	return 0;
}
