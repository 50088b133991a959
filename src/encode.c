/*-------------------------------------------------------------------------
 *
 * encode.c
 *		The row encoder: turns one foreign-table row into one CSV record, in
 *		exactly the form later written to staged files and parsed by
 *		Snowflake's COPY with the file format from sf_csv_format_options().
 *
 * The encoding (also documented in README.md, "Row encoding"):
 *
 *	- fields separated by ',', records by '\n' (added by the file writer);
 *	- SQL NULL is an empty unenclosed field (EMPTY_FIELD_AS_NULL = TRUE);
 *	- text-like values are always enclosed in '"' with '"' doubled inside,
 *	  so an empty string is "" and commas, quotes, newlines and backslashes
 *	  pass through untouched (ESCAPE = NONE, ESCAPE_UNENCLOSED_FIELD = NONE:
 *	  Snowflake's default treats '\' in unenclosed fields as an escape);
 *	- values are rendered independently of the session's DateStyle,
 *	  IntervalStyle, extra_float_digits and bytea_output settings:
 *	  booleans true/false; floats shortest-exact, with NaN, inf, -inf;
 *	  dates YYYY-MM-DD; times HH:MM:SS[.ffffff]; timestamps
 *	  YYYY-MM-DD HH:MM:SS[.ffffff], timestamptz with the session's offset
 *	  as +HH:MM; intervals ISO 8601 (P1Y2M3DT4H5M6S); bytea as hex digits
 *	  (BINARY_FORMAT = HEX); arrays as JSON arrays; json and jsonb as their
 *	  JSON text; enums by label; domains as their base type;
 *	- the record is UTF-8; in a non-UTF-8 database it is converted, and in a
 *	  SQL_ASCII database it must already be valid UTF-8.
 *
 * Column lists are fixed per relation: every non-dropped attribute in
 * attribute-number order.  A "shape" hash of the target column names and
 * types identifies which columns a record holds, so that records written
 * before an ALTER FOREIGN TABLE can still be loaded with their own columns.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "sfexport.h"

/* How a column's values are rendered. */
typedef enum SfEncKind
{
	ENC_PLAIN,					/* output function, never needs enclosing */
	ENC_TEXT,					/* output function, always enclosed */
	ENC_BOOL,
	ENC_FLOAT4,
	ENC_FLOAT8,
	ENC_DATE,
	ENC_TIME,
	ENC_TIMETZ,
	ENC_TIMESTAMP,
	ENC_TIMESTAMPTZ,
	ENC_INTERVAL,
	ENC_BYTEA,
	ENC_ARRAY					/* rendered as JSON, enclosed */
} SfEncKind;

typedef struct SfColumnEncoder
{
	AttrNumber	attnum;
	Oid			basetype;
	SfEncKind	kind;
	FmgrInfo	outfunc;		/* for ENC_PLAIN and ENC_TEXT */
	char	   *target_name;
	char	   *type_name;
} SfColumnEncoder;

struct SfRowEncoder
{
	int			ncols;
	SfColumnEncoder *cols;
	uint64		shape;
	int			encoding;		/* database encoding */
	MemoryContext tmpcxt;		/* reset after every row */
	StringInfoData field;		/* scratch for one value, in tmpcxt */
};

static SfEncKind
kind_for_type(Oid basetype)
{
	switch (basetype)
	{
		case BOOLOID:
			return ENC_BOOL;
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case NUMERICOID:
		case UUIDOID:
			return ENC_PLAIN;
		case FLOAT4OID:
			return ENC_FLOAT4;
		case FLOAT8OID:
			return ENC_FLOAT8;
		case DATEOID:
			return ENC_DATE;
		case TIMEOID:
			return ENC_TIME;
		case TIMETZOID:
			return ENC_TIMETZ;
		case TIMESTAMPOID:
			return ENC_TIMESTAMP;
		case TIMESTAMPTZOID:
			return ENC_TIMESTAMPTZ;
		case INTERVALOID:
			return ENC_INTERVAL;
		case BYTEAOID:
			return ENC_BYTEA;
		default:
			if (OidIsValid(get_element_type(basetype)))
				return ENC_ARRAY;
			return ENC_TEXT;
	}
}

/*
 * Build the encoder for a foreign table.  Allocated in the current memory
 * context, which must live as long as the encoder is used.
 */
SfRowEncoder *
sf_encoder_create(Relation rel)
{
	TupleDesc	tupdesc = RelationGetDescr(rel);
	SfRowEncoder *enc = palloc0(sizeof(SfRowEncoder));
	StringInfoData shape;

	enc->cols = palloc0(sizeof(SfColumnEncoder) * tupdesc->natts);
	enc->encoding = GetDatabaseEncoding();
	enc->tmpcxt = AllocSetContextCreate(CurrentMemoryContext,
										"sfexport row encoder",
										ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&shape);

	for (int i = 0; i < tupdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(tupdesc, i);
		SfColumnEncoder *col;
		Oid			outfn;
		bool		isvarlena;

		if (att->attisdropped)
			continue;
		col = &enc->cols[enc->ncols++];
		col->attnum = att->attnum;
		col->basetype = getBaseType(att->atttypid);
		col->kind = kind_for_type(col->basetype);
		getTypeOutputInfo(col->basetype, &outfn, &isvarlena);
		fmgr_info(outfn, &col->outfunc);
		col->target_name = sf_column_target_name(RelationGetRelid(rel), att->attnum);
		/* the base type, so that domains load like what they are made of */
		{
			int32		typmod = att->atttypmod;
			Oid			base = getBaseTypeAndTypmod(att->atttypid, &typmod);

			col->type_name = format_type_with_typemod(base, typmod);
		}

		/* name and type, separated by characters no identifier can hold */
		appendStringInfo(&shape, "%s%c%s%c", col->target_name, '\0',
						 col->type_name, '\0');
	}
	enc->shape = hash_bytes_extended((const unsigned char *) shape.data,
									 shape.len, 0x5f0e);
	pfree(shape.data);
	return enc;
}

int
sf_encoder_ncolumns(SfRowEncoder *enc)
{
	return enc->ncols;
}

uint64
sf_encoder_shape(SfRowEncoder *enc)
{
	return enc->shape;
}

/* Fill names[] and types[] (ncols text Datums each) for the shape registry. */
void
sf_encoder_shape_arrays(SfRowEncoder *enc, Datum *names, Datum *types)
{
	for (int i = 0; i < enc->ncols; i++)
	{
		names[i] = CStringGetTextDatum(enc->cols[i].target_name);
		types[i] = CStringGetTextDatum(enc->cols[i].type_name);
	}
}

/* Append s enclosed in double quotes, doubling any quote inside. */
static void
append_enclosed(StringInfo out, const char *s, int len)
{
	const char *start = s;
	const char *end = s + len;

	appendStringInfoChar(out, '"');
	for (const char *p = s; p < end; p++)
	{
		if (*p == '"')
		{
			appendBinaryStringInfo(out, start, p - start + 1);
			start = p;			/* the quote is written again: doubled */
		}
	}
	appendBinaryStringInfo(out, start, end - start);
	appendStringInfoChar(out, '"');
}

/* Render a double exactly and independently of extra_float_digits. */
static void
append_double(StringInfo out, double v)
{
	char		buf[32];

	if (isnan(v))
		appendStringInfoString(out, "NaN");
	else if (isinf(v))
		appendStringInfoString(out, v > 0 ? "inf" : "-inf");
	else
	{
		int			n = double_to_shortest_decimal_buf(v, buf);

		appendBinaryStringInfo(out, buf, n);
	}
}

static void
append_float(StringInfo out, float v)
{
	char		buf[32];

	if (isnan(v))
		appendStringInfoString(out, "NaN");
	else if (isinf(v))
		appendStringInfoString(out, v > 0 ? "inf" : "-inf");
	else
	{
		int			n = float_to_shortest_decimal_buf(v, buf);

		appendBinaryStringInfo(out, buf, n);
	}
}

/* Append a UTC offset given in seconds east of Greenwich, as +HH:MM[:SS]. */
static void
append_offset(StringInfo out, int east)
{
	int			a = east < 0 ? -east : east;

	appendStringInfo(out, "%c%02d:%02d", east < 0 ? '-' : '+', a / 3600, (a / 60) % 60);
	if (a % 60)
		appendStringInfo(out, ":%02d", a % 60);
}

/* Append a timestamp (with or without zone) in ISO form. */
static void
append_timestamp(StringInfo out, Timestamp ts, bool with_zone)
{
	struct pg_tm tm;
	fsec_t		fsec;
	int			tz = 0;
	char		buf[MAXDATELEN + 1];

	if (TIMESTAMP_NOT_FINITE(ts))
	{
		appendStringInfoString(out, TIMESTAMP_IS_NOBEGIN(ts) ? "-infinity" : "infinity");
		return;
	}
	if (timestamp2tm(ts, with_zone ? &tz : NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));

	/*
	 * Snowflake offsets are whole minutes; an offset with seconds (local mean
	 * time before 1900 in some zones) is written as UTC instead.
	 */
	if (with_zone && tz % 60 != 0)
	{
		tz = 0;
		if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
	}
	EncodeDateTime(&tm, fsec, false, 0, NULL, USE_ISO_DATES, buf);
	appendStringInfoString(out, buf);
	if (with_zone)
		append_offset(out, -tz);
}

/*
 * Render one non-null value into enc->field and report whether it must be
 * enclosed in quotes.
 */
static bool
render_value(SfRowEncoder *enc, SfColumnEncoder *col, Datum value)
{
	StringInfo	f = &enc->field;
	char		buf[MAXDATELEN + 1];

	resetStringInfo(f);
	switch (col->kind)
	{
		case ENC_BOOL:
			appendStringInfoString(f, DatumGetBool(value) ? "true" : "false");
			return false;

		case ENC_FLOAT4:
			append_float(f, DatumGetFloat4(value));
			return false;

		case ENC_FLOAT8:
			append_double(f, DatumGetFloat8(value));
			return false;

		case ENC_DATE:
			{
				DateADT		d = DatumGetDateADT(value);
				struct pg_tm tm;

				if (DATE_NOT_FINITE(d))
				{
					appendStringInfoString(f, DATE_IS_NOBEGIN(d) ? "-infinity" : "infinity");
					return false;
				}
				j2date(d + POSTGRES_EPOCH_JDATE, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
				EncodeDateOnly(&tm, USE_ISO_DATES, buf);
				appendStringInfoString(f, buf);
				return false;
			}

		case ENC_TIME:
			{
				struct pg_tm tm;
				fsec_t		fsec;

				time2tm(DatumGetTimeADT(value), &tm, &fsec);
				EncodeTimeOnly(&tm, fsec, false, 0, USE_ISO_DATES, buf);
				appendStringInfoString(f, buf);
				return false;
			}

		case ENC_TIMETZ:
			{
				struct pg_tm tm;
				fsec_t		fsec;
				int			tz;

				timetz2tm(DatumGetTimeTzADTP(value), &tm, &fsec, &tz);
				EncodeTimeOnly(&tm, fsec, false, 0, USE_ISO_DATES, buf);
				appendStringInfoString(f, buf);
				append_offset(f, -tz);
				return false;
			}

		case ENC_TIMESTAMP:
			append_timestamp(f, DatumGetTimestamp(value), false);
			return false;

		case ENC_TIMESTAMPTZ:
			append_timestamp(f, DatumGetTimestampTz(value), true);
			return false;

		case ENC_INTERVAL:
			{
				struct pg_itm itm;

				interval2itm(*DatumGetIntervalP(value), &itm);
				EncodeInterval(&itm, INTSTYLE_ISO_8601, buf);
				appendStringInfoString(f, buf);
				return false;
			}

		case ENC_BYTEA:
			{
				bytea	   *b = DatumGetByteaPP(value);
				int			len = VARSIZE_ANY_EXHDR(b);

				enlargeStringInfo(f, len * 2 + 1);
				f->len = hex_encode(VARDATA_ANY(b), len, f->data);
				f->data[f->len] = '\0';
				/* an empty value must be enclosed, or it would read as NULL */
				return len == 0;
			}

		case ENC_ARRAY:
			{
				text	   *t = DatumGetTextPP(DirectFunctionCall1(array_to_json, value));

				appendBinaryStringInfo(f, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				return true;
			}

		case ENC_PLAIN:
			appendStringInfoString(f, OutputFunctionCall(&col->outfunc, value));
			return false;

		case ENC_TEXT:
			appendStringInfoString(f, OutputFunctionCall(&col->outfunc, value));
			return true;
	}
	return true;
}

/*
 * Encode the row in slot as one CSV record (without the record delimiter),
 * appended to out.  Temporary allocations are freed before returning.
 */
void
sf_encode_row(SfRowEncoder *enc, TupleTableSlot *slot, StringInfo out)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(enc->tmpcxt);
	int			start = out->len;

	/* scratch space lives only for this row: a huge value is not kept */
	initStringInfo(&enc->field);
	slot_getallattrs(slot);
	for (int i = 0; i < enc->ncols; i++)
	{
		SfColumnEncoder *col = &enc->cols[i];
		int			idx = col->attnum - 1;

		if (i > 0)
			appendStringInfoChar(out, ',');
		if (slot->tts_isnull[idx])
			continue;			/* NULL: empty unenclosed field */
		if (render_value(enc, col, slot->tts_values[idx]))
			append_enclosed(out, enc->field.data, enc->field.len);
		else
			appendBinaryStringInfo(out, enc->field.data, enc->field.len);
	}

	/* Snowflake reads UTF-8 (the file format says ENCODING = 'UTF8'). */
	if (enc->encoding == PG_SQL_ASCII)
	{
		if (!pg_verify_mbstr(PG_UTF8, out->data + start, out->len - start, true))
			ereport(ERROR,
					(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
					 errmsg("row contains bytes that are not valid UTF-8"),
					 errdetail("The database encoding is SQL_ASCII and staged files must be UTF-8."),
					 errhint("Store UTF-8 text only, or use a UTF8 database.")));
	}
	else if (enc->encoding != PG_UTF8)
	{
		char	   *conv = pg_server_to_any(out->data + start, out->len - start, PG_UTF8);

		if (conv != out->data + start)
		{
			out->len = start;
			out->data[start] = '\0';
			appendStringInfoString(out, conv);
		}
	}

	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(enc->tmpcxt);
}

/*
 * The CSV file format options the encoder relies on, for CREATE FILE FORMAT
 * and COPY.  Every option whose Snowflake default would misread a record is
 * stated explicitly (shared/REFERENCE.md, "CSV format defaults that bite").
 * COMPRESSION is added by the caller.
 */
const char *
sf_csv_format_options(void)
{
	return "TYPE = CSV"
		" FIELD_DELIMITER = ','"
		" RECORD_DELIMITER = '\\n'"
		" SKIP_HEADER = 0"
		" FIELD_OPTIONALLY_ENCLOSED_BY = '\"'"
		" ESCAPE = NONE"
		" ESCAPE_UNENCLOSED_FIELD = NONE"
		" NULL_IF = ()"
		" EMPTY_FIELD_AS_NULL = TRUE"
		" ERROR_ON_COLUMN_COUNT_MISMATCH = TRUE"
		" TRIM_SPACE = FALSE"
		" BINARY_FORMAT = HEX"
		" DATE_FORMAT = 'YYYY-MM-DD'"
		" TIME_FORMAT = AUTO"
		" TIMESTAMP_FORMAT = AUTO"
		" ENCODING = 'UTF8'";
}
