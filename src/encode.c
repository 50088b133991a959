/*-------------------------------------------------------------------------
 *
 * encode.c
 *		The row encoder: turns one foreign-table row into one CSV record, in
 *		exactly the form later written to staged files and parsed by
 *		Snowflake's COPY with the file format from sf_csv_format_options().
 *
 * Where a row's CSV record is made:
 *
 *	- at INSERT (sf_encode_row), for rows that cannot be deferred safely;
 *	- in the worker (sf_outbox_render, called by flush.c per row), for rows
 *	  the insert path stored in binary form (sf_encode_payload): the values
 *	  as a MinimalTuple of the columns' base types, detoasted, with the name
 *	  of the session's time zone.  Both paths run the same rendering code
 *	  (encode_values), and no rendering reads a session setting, so the
 *	  record is byte-identical either way.  Deferral needs every column type
 *	  to pass type_deferrable() (trusted built-ins, see there), a UTF8
 *	  database or all-ASCII renderings, a row of at most
 *	  SF_DEFER_MAX_ROW_BYTES and a nameable session time zone; otherwise the
 *	  record is made at INSERT, so that a value that cannot be rendered
 *	  fails the INSERT and never gets stuck in the outbox.
 *	- The worker decodes with the types recorded in sfexport.shapes and
 *	  checks them first (decoder_build): a type that is gone or changed is
 *	  an error (SQLSTATE 42804) and the rows stay in the outbox.
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
 *	  YYYY-MM-DD HH:MM:SS[.ffffff], timestamptz with the inserting
 *	  session's offset as +HH:MM (the worker uses the zone named in the
 *	  payload); intervals ISO 8601 (P1Y2M3DT4H5M6S); bytea as hex digits
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

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/tupdesc.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/shortest_dec.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "encode.h"
#include "shapes.h"

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
	int32		basetypmod;
	int16		typlen;			/* of basetype, recorded in the shape registry */
	bool		typbyval;
	char		typalign;
	SfEncKind	kind;
	bool		deferrable;		/* the worker may render it (see sf_type_deferrable) */
	bool		ascii;			/* its rendering is always plain ASCII */
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
	bool		defer;			/* rows may be stored in binary form */
	bool		json;			/* file_format 'json': NDJSON lines, not CSV */
	bool		json_document;	/* json: the single json/jsonb column is the line */
	bool		has_tstz;		/* a timestamptz column: the payload names the zone */
	TupleDesc	bindesc;		/* layout of binary payloads (base types) */
	Datum	   *values;			/* one row, in column order */
	bool	   *nulls;
	MemoryContext tmpcxt;		/* reset after every row */
	StringInfoData field;		/* scratch for one value, in tmpcxt */
};

/*
 * The worker's side: renders outbox payloads of one (foreign table, shape).
 * Built lazily from the shape registry on the first binary payload, so
 * that a backlog of CSV payloads never needs it.
 */
struct SfRowDecoder
{
	Oid			relid;
	int64		shape;
	MemoryContext cxt;			/* where the decoder lives */
	SfRowEncoder *enc;			/* NULL until built */
	char	   *buf;			/* MAXALIGNed copy of one tuple */
	Size		bufsize;
	pg_tz	   *zone;			/* zone of the last payload that named one */
	char		zone_name[TZ_STRLEN_MAX + 1];
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
 * Whether values of base type typid may be stored in binary form and
 * rendered later by the worker, with a byte-identical result.  The rule:
 * only built-in types (fixed OIDs) whose rendering here
 *	- cannot fail for any value the type's input accepted,
 *	- reads no catalog state that can change after the INSERT (enum labels
 *	  can be renamed, so enums are excluded), and
 *	- does not depend on a session setting (array_to_json renders floats
 *	  with extra_float_digits, timestamptz with TimeZone, intervals with
 *	  IntervalStyle and bytea with bytea_output, so arrays of those are
 *	  excluded; scalar timestamptz is rendered at the session zone, which
 *	  the payload names).
 * Everything else (enums, user-defined and extension types, composite and
 * range types, other arrays) is encoded to CSV at INSERT, as before.
 */
static bool
type_deferrable(Oid basetype)
{
	Oid			elem;

	switch (basetype)
	{
		case BOOLOID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case NUMERICOID:
		case UUIDOID:
		case FLOAT4OID:
		case FLOAT8OID:
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
		case INTERVALOID:
		case BYTEAOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case JSONOID:
		case JSONBOID:
			return true;
		default:
			break;
	}
	elem = get_element_type(basetype);
	switch (elem)
	{
		case BOOLOID:
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case NUMERICOID:
		case UUIDOID:
		case DATEOID:
		case TIMESTAMPOID:
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
		case JSONOID:
		case JSONBOID:
			/* only the built-in array types, whose OIDs are fixed too */
			return basetype < FirstGenbkiObjectId;
		default:
			return false;
	}
}

/* Fill in how values of base type basetype are rendered. */
static void
init_column(SfColumnEncoder *col, Oid basetype, int32 basetypmod)
{
	Oid			outfn;
	bool		isvarlena;

	col->basetype = basetype;
	col->basetypmod = basetypmod;
	col->kind = kind_for_type(basetype);
	get_typlenbyvalalign(basetype, &col->typlen, &col->typbyval, &col->typalign);
	col->deferrable = type_deferrable(basetype);
	col->ascii = col->kind != ENC_TEXT && col->kind != ENC_ARRAY;
	getTypeOutputInfo(basetype, &outfn, &isvarlena);
	fmgr_info(outfn, &col->outfunc);
}

/* The descriptor of binary payloads, once the columns are known. */
static void
finish_encoder(SfRowEncoder *enc)
{
	bool		all_deferrable = true;
	bool		all_ascii = true;

	enc->bindesc = CreateTemplateTupleDesc(enc->ncols);
	for (int i = 0; i < enc->ncols; i++)
	{
		SfColumnEncoder *col = &enc->cols[i];

		TupleDescInitEntry(enc->bindesc, i + 1, NULL, col->basetype,
						   col->basetypmod, 0);
		all_deferrable &= col->deferrable;
		all_ascii &= col->ascii;
		if (col->kind == ENC_TIMESTAMPTZ)
			enc->has_tstz = true;
	}
	enc->values = palloc0(sizeof(Datum) * Max(enc->ncols, 1));
	enc->nulls = palloc0(sizeof(bool) * Max(enc->ncols, 1));

	/*
	 * In a UTF8 database every value renders to valid UTF-8.  Elsewhere the
	 * conversion (or, in SQL_ASCII, the UTF-8 check) can fail, and must fail
	 * at INSERT: only all-ASCII renderings are deferred there.
	 */
	enc->defer = enc->ncols > 0 && all_deferrable &&
		(enc->encoding == PG_UTF8 || all_ascii);
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
		int32		typmod = att->atttypmod;
		Oid			base;

		if (att->attisdropped)
			continue;
		col = &enc->cols[enc->ncols++];
		col->attnum = att->attnum;
		/* the base type, so that domains load like what they are made of */
		base = getBaseTypeAndTypmod(att->atttypid, &typmod);
		init_column(col, base, typmod);
		col->target_name = sf_column_target_name(RelationGetRelid(rel), att->attnum);
		col->type_name = format_type_with_typemod(base, typmod);

		/*
		 * name, type and type OID, separated by characters no identifier can
		 * hold: the OID because type names printed by format_type depend on
		 * the search_path, and binary payloads are decoded by OID.
		 */
		appendStringInfo(&shape, "%s%c%s%c%u%c", col->target_name, '\0',
						 col->type_name, '\0', base, '\0');
	}
	/*
	 * file_format 'json': another shape (its files are NDJSON, loaded with
	 * TYPE = JSON), never binary payloads (the line is made at INSERT)
	 */
	if (OidIsValid(RelationGetRelid(rel)) &&
		rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE &&
		sf_get_table_config(RelationGetRelid(rel))->json)
	{
		enc->json = true;
		enc->json_document = enc->ncols == 1 &&
			(enc->cols[0].basetype == JSONOID || enc->cols[0].basetype == JSONBOID);
		appendStringInfo(&shape, "%cjson", '\0');
	}
	enc->shape = hash_bytes_extended((const unsigned char *) shape.data,
									 shape.len, 0x5f0e);
	pfree(shape.data);
	finish_encoder(enc);
	if (enc->json)
		enc->defer = false;
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

bool
sf_encoder_deferrable(SfRowEncoder *enc)
{
	return enc->defer;
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

/*
 * Fill the type layout arrays (ncols Datums each) for the shape registry:
 * what the worker checks before it decodes a binary payload.
 */
void
sf_encoder_layout_arrays(SfRowEncoder *enc, Datum *oids, Datum *typmods,
						 Datum *lens, Datum *byvals, Datum *aligns)
{
	for (int i = 0; i < enc->ncols; i++)
	{
		oids[i] = ObjectIdGetDatum(enc->cols[i].basetype);
		typmods[i] = Int32GetDatum(enc->cols[i].basetypmod);
		lens[i] = Int16GetDatum(enc->cols[i].typlen);
		byvals[i] = BoolGetDatum(enc->cols[i].typbyval);
		aligns[i] = CharGetDatum(enc->cols[i].typalign);
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
	int			h = a / 3600;
	char		buf[16];
	int			n = 0;

	/* by hand, not appendStringInfo: once per timestamptz value rendered */
	buf[n++] = east < 0 ? '-' : '+';
	if (h >= 100)
		buf[n++] = '0' + h / 100 % 10;
	buf[n++] = '0' + h / 10 % 10;
	buf[n++] = '0' + h % 10;
	buf[n++] = ':';
	buf[n++] = '0' + (a / 60) % 60 / 10;
	buf[n++] = '0' + (a / 60) % 10;
	if (a % 60)
	{
		buf[n++] = ':';
		buf[n++] = '0' + (a % 60) / 10;
		buf[n++] = '0' + (a % 60) % 10;
	}
	appendBinaryStringInfo(out, buf, n);
}

/* Append a timestamp (with or without zone) in ISO form. */
static void
append_timestamp(StringInfo out, Timestamp ts, bool with_zone, pg_tz *zone)
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
	if (timestamp2tm(ts, with_zone ? &tz : NULL, &tm, &fsec, NULL,
					 with_zone ? zone : NULL) != 0)
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
render_value(SfRowEncoder *enc, SfColumnEncoder *col, Datum value, pg_tz *zone)
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
			append_timestamp(f, DatumGetTimestamp(value), false, NULL);
			return false;

		case ENC_TIMESTAMPTZ:
			append_timestamp(f, DatumGetTimestampTz(value), true, zone);
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
 * Append the CSV record of one row (values[i], nulls[i] in column order) to
 * out.  zone is the time zone timestamptz values are shown in (NULL: the
 * session's).  Temporary allocations are freed before returning.
 */
/*
 * Append a JSON text on one line: json's own text may hold line breaks
 * between tokens (inside strings they are escaped), which become spaces.
 */
static void
append_json_one_line(StringInfo out, const char *text, int len)
{
	int			start = out->len;

	appendBinaryStringInfo(out, text, len);
	for (int i = start; i < out->len; i++)
		if (out->data[i] == '\n' || out->data[i] == '\r')
			out->data[i] = ' ';
}

/*
 * Whether a column of this type renders as a JSON number (when finite).
 * Not int8 and numeric: many JSON readers parse numbers as doubles, which
 * round beyond 2^53; as strings they convert exactly into a NUMBER column.
 */
static bool
json_number_type(Oid type)
{
	return type == INT2OID || type == INT4OID || type == FLOAT4OID ||
		type == FLOAT8OID || type == OIDOID;
}

/*
 * One row as an NDJSON line (file_format 'json'): the document itself for a
 * table whose single column is json or jsonb (NULL: null), else an object
 * of the target column names: int2, int4, float and booleans as such,
 * json, jsonb and arrays as JSON, NULL as null, everything else (int8 and
 * numeric too) as a string of its CSV rendering (ISO 8601 times, hex
 * bytea, ...).
 */
static void
encode_json_values(SfRowEncoder *enc, Datum *values, bool *nulls, pg_tz *zone,
				   StringInfo out)
{
	if (enc->json_document)
	{
		if (nulls[0])
			appendStringInfoString(out, "null");
		else
		{
			(void) render_value(enc, &enc->cols[0], values[0], zone);
			append_json_one_line(out, enc->field.data, enc->field.len);
		}
		return;
	}
	appendStringInfoChar(out, '{');
	for (int i = 0; i < enc->ncols; i++)
	{
		SfColumnEncoder *col = &enc->cols[i];

		if (i > 0)
			appendStringInfoChar(out, ',');
		escape_json(out, col->target_name);
		appendStringInfoChar(out, ':');
		if (nulls[i])
		{
			appendStringInfoString(out, "null");
			continue;
		}
		(void) render_value(enc, col, values[i], zone);
		if (col->kind == ENC_BOOL || col->basetype == JSONOID ||
			col->basetype == JSONBOID || col->kind == ENC_ARRAY ||
			(json_number_type(col->basetype) &&
			 strspn(enc->field.data, "0123456789+-.eE") == (size_t) enc->field.len &&
			 enc->field.len > 0))
			append_json_one_line(out, enc->field.data, enc->field.len);
		else
			escape_json(out, enc->field.data);
	}
	appendStringInfoChar(out, '}');
}

static void
encode_values(SfRowEncoder *enc, Datum *values, bool *nulls, pg_tz *zone,
			  StringInfo out)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(enc->tmpcxt);
	int			start = out->len;

	/* scratch space lives only for this row: a huge value is not kept */
	initStringInfo(&enc->field);
	if (enc->json)
		encode_json_values(enc, values, nulls, zone, out);
	else
	{
		for (int i = 0; i < enc->ncols; i++)
		{
			SfColumnEncoder *col = &enc->cols[i];

			if (i > 0)
				appendStringInfoChar(out, ',');
			if (nulls[i])
				continue;			/* NULL: empty unenclosed field */
			if (render_value(enc, col, values[i], zone))
				append_enclosed(out, enc->field.data, enc->field.len);
			else
				appendBinaryStringInfo(out, enc->field.data, enc->field.len);
		}
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

/* Copy the row in slot into enc->values/nulls, in column order. */
static void
slot_to_values(SfRowEncoder *enc, TupleTableSlot *slot)
{
	slot_getallattrs(slot);
	for (int i = 0; i < enc->ncols; i++)
	{
		int			idx = enc->cols[i].attnum - 1;

		enc->values[i] = slot->tts_values[idx];
		enc->nulls[i] = slot->tts_isnull[idx];
	}
}

/*
 * Encode the row in slot as one CSV record (without the record delimiter),
 * appended to out.  Always rendered here and now, in the session's time zone.
 */
void
sf_encode_row(SfRowEncoder *enc, TupleTableSlot *slot, StringInfo out)
{
	slot_to_values(enc, slot);
	encode_values(enc, enc->values, enc->nulls, NULL, out);
}

/*
 * The name of the session's time zone, as pg_tzset() in another process
 * resolves it to the same zone; NULL if it cannot be named so (then rows
 * with timestamptz values are encoded at INSERT).  Cached per zone.
 */
static const char *
session_zone_name(void)
{
	static pg_tz *cached_zone = NULL;
	static bool cached_ok = false;
	static char cached_name[TZ_STRLEN_MAX + 1];

	if (session_timezone != cached_zone)
	{
		const char *name = session_timezone ? pg_get_timezone_name(session_timezone) : NULL;

		cached_ok = name != NULL && name[0] != '\0' &&
			strlen(name) <= TZ_STRLEN_MAX && pg_tzset(name) != NULL;
		if (cached_ok)
			strlcpy(cached_name, name, sizeof(cached_name));
		cached_zone = session_timezone;
	}
	return cached_ok ? cached_name : NULL;
}

/*
 * Encode the row in slot as an outbox payload, appended to out.
 *
 * Payload formats (the first byte tells them apart):
 *	- CSV: the record itself, exactly what sf_encode_row gives.  A record
 *	  is empty or begins with a printable ASCII byte (',', '"', a digit,
 *	  a sign or a letter), never with a byte below 0x20;
 *	- binary (SF_PAYLOAD_BINARY, 0x01): the byte 0x01, the name of the
 *	  inserting session's time zone and a NUL (an empty name when the
 *	  shape has no timestamptz column), then a MinimalTuple of the row's
 *	  columns in column order, as base types, from t_infomask2 on (its
 *	  t_len and padding are implied by the payload's length), every value
 *	  detoasted (no TOAST pointer; inline-compressed values stay
 *	  compressed).  The worker
 *	  renders it with sf_outbox_render().
 *
 * Binary is written when allow_binary, the encoder's columns are all
 * deferrable (type_deferrable; in a non-UTF8 database also all-ASCII), the
 * row's values add up to at most SF_DEFER_MAX_ROW_BYTES (detoasted) and the
 * session's time zone can be named; otherwise CSV, so that everything that
 * could fail to render fails here, at INSERT.
 */
void
sf_encode_payload(SfRowEncoder *enc, TupleTableSlot *slot, bool allow_binary,
				  StringInfo out)
{
	const char *zone = "";
	Size		raw = 0;
	MemoryContext oldcxt;
	MinimalTuple mt;

	if (enc->json)
	{
		appendStringInfoChar(out, SF_PAYLOAD_JSON);
		sf_encode_row(enc, slot, out);
		return;
	}
	if (!allow_binary || !enc->defer ||
		(enc->has_tstz && (zone = session_zone_name()) == NULL))
	{
		sf_encode_row(enc, slot, out);
		return;
	}

	slot_to_values(enc, slot);
	for (int i = 0; i < enc->ncols; i++)
	{
		if (enc->nulls[i])
			continue;
		if (enc->cols[i].typlen == -1)
			raw += toast_raw_datum_size(enc->values[i]);
		else
			raw += enc->cols[i].typlen;
	}
	if (raw > SF_DEFER_MAX_ROW_BYTES)
	{
		/* a huge row: rendering it could exceed what one allocation holds */
		encode_values(enc, enc->values, enc->nulls, NULL, out);
		return;
	}

	oldcxt = MemoryContextSwitchTo(enc->tmpcxt);
	for (int i = 0; i < enc->ncols; i++)
	{
		if (!enc->nulls[i] && enc->cols[i].typlen == -1 &&
			VARATT_IS_EXTENDED(DatumGetPointer(enc->values[i])) &&
			VARATT_IS_EXTERNAL(DatumGetPointer(enc->values[i])))
			enc->values[i] = PointerGetDatum(detoast_external_attr((struct varlena *)
																   DatumGetPointer(enc->values[i])));
	}
	mt = heap_form_minimal_tuple(enc->bindesc, enc->values, enc->nulls, 0);
	enlargeStringInfo(out, 1 + strlen(zone) + 1 + mt->t_len - MINIMAL_TUPLE_DATA_OFFSET);
	appendStringInfoChar(out, SF_PAYLOAD_BINARY);
	appendBinaryStringInfo(out, zone, strlen(zone) + 1);
	/* without t_len and padding: the payload's length gives it back */
	appendBinaryStringInfo(out, (char *) mt + MINIMAL_TUPLE_DATA_OFFSET,
						   mt->t_len - MINIMAL_TUPLE_DATA_OFFSET);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextReset(enc->tmpcxt);
}

static void render_binary(const char *p, int len, SfRowDecoder *dec, StringInfo out);

/*
 * A decoder for the payloads of (relid, shape), allocated in the current
 * memory context.  Nothing is looked up until a binary payload arrives.
 */
SfRowDecoder *
sf_decoder_create(Oid relid, int64 shape)
{
	SfRowDecoder *dec = palloc0(sizeof(SfRowDecoder));

	dec->relid = relid;
	dec->shape = shape;
	dec->cxt = CurrentMemoryContext;
	return dec;
}

/* "name" of a foreign table for messages, or its OID once it is gone */
static const char *
rel_label(Oid relid)
{
	char	   *name = OidIsValid(relid) ? get_rel_name(relid) : NULL;

	return name ? quote_identifier(name) : psprintf("%u", relid);
}

static void
payload_corrupt(SfRowDecoder *dec, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("corrupt outbox payload of foreign table %s shape " INT64_FORMAT ": %s",
					rel_label(dec->relid), dec->shape, what),
			 errhint("The rows stay in the outbox.  Remove the damaged row to let the others through.")));
}

/*
 * Build the decoder's encoder from the shape registry, after checking that
 * every recorded type still exists with the same storage layout and is one
 * the worker may render.
 */
static void
decoder_build(SfRowDecoder *dec)
{
	MemoryContext oldcxt = MemoryContextSwitchTo(dec->cxt);
	SfShapeLayout *lay = sf_shape_layout(dec->relid, dec->shape);
	SfRowEncoder *enc = palloc0(sizeof(SfRowEncoder));

	enc->cols = palloc0(sizeof(SfColumnEncoder) * Max(lay->ncols, 1));
	enc->encoding = GetDatabaseEncoding();
	enc->tmpcxt = AllocSetContextCreate(dec->cxt, "sfexport row decoder",
										ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < lay->ncols; i++)
	{
		SfColumnEncoder *col = &enc->cols[i];
		HeapTuple	tp = SearchSysCache1(TYPEOID, ObjectIdGetDatum(lay->oids[i]));
		Form_pg_type typ;

		if (!HeapTupleIsValid(tp))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("type %u of column \"%s\" of foreign table %s (shape " INT64_FORMAT ") no longer exists",
							lay->oids[i], lay->names[i], rel_label(dec->relid), dec->shape),
					 errdetail("Its rows were captured in binary form and cannot be rendered without it."),
					 errhint("The rows stay in the outbox; recreate the type, or remove the rows.")));
		typ = (Form_pg_type) GETSTRUCT(tp);
		if (typ->typlen != lay->lens[i] || typ->typbyval != lay->byvals[i] ||
			typ->typalign != lay->aligns[i] || !type_deferrable(lay->oids[i]))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("type %s of column \"%s\" of foreign table %s (shape " INT64_FORMAT ") changed since its rows were captured",
							NameStr(typ->typname), lay->names[i], rel_label(dec->relid), dec->shape),
					 errdetail("Captured with typlen %d, typbyval %d, typalign '%c'; now typlen %d, typbyval %d, typalign '%c'%s.",
							   lay->lens[i], lay->byvals[i], lay->aligns[i],
							   typ->typlen, typ->typbyval, typ->typalign,
							   type_deferrable(lay->oids[i]) ? "" : ", and not renderable by the worker"),
					 errhint("The rows stay in the outbox; they cannot be decoded safely.")));
		ReleaseSysCache(tp);
		init_column(col, lay->oids[i], lay->typmods[i]);
		col->attnum = i + 1;
		col->target_name = lay->names[i];
		enc->ncols++;
	}
	finish_encoder(enc);
	dec->enc = enc;
	MemoryContextSwitchTo(oldcxt);
}

/*
 * The CSV record of one outbox payload (either format, see
 * sf_encode_payload), without the record delimiter: returns a pointer to it
 * and its length in *len.  A CSV payload is returned in place (no copy, so
 * a record as large as a bytea can hold still passes); a binary one is
 * rendered into buf (reset first).  Byte-identical to what sf_encode_row
 * gave at INSERT for the same row and session zone, whatever this process's
 * DateStyle, TimeZone, extra_float_digits, bytea_output or IntervalStyle:
 * no rendering reads them.
 */
const char *
sf_outbox_render(bytea *payload, SfRowDecoder *dec, StringInfo buf, int *len)
{
	const char *p = VARDATA_ANY(payload);
	int			plen = VARSIZE_ANY_EXHDR(payload);

	if (plen == 0 || (unsigned char) p[0] >= 0x20)
	{
		*len = plen;			/* a CSV record */
		return p;
	}
	if ((unsigned char) p[0] == SF_PAYLOAD_JSON)
	{
		*len = plen - 1;		/* an NDJSON line */
		return p + 1;
	}
	resetStringInfo(buf);
	render_binary(p, plen, dec, buf);
	*len = buf->len;
	return buf->data;
}

/* Append the record of a payload that is not CSV (see sf_outbox_render). */
static void
render_binary(const char *p, int len, SfRowDecoder *dec, StringInfo out)
{
	const char *nul;
	const char *zone;
	int			zlen;
	MinimalTuple mt;
	HeapTupleData htup;
	SfRowEncoder *enc;
	uint32		tlen;

	if ((unsigned char) p[0] != SF_PAYLOAD_BINARY)
		payload_corrupt(dec, psprintf("unknown format byte 0x%02x", (unsigned char) p[0]));
	p++;
	len--;

	/* the session's time zone */
	nul = memchr(p, '\0', Min(len, TZ_STRLEN_MAX + 1));
	if (nul == NULL)
		payload_corrupt(dec, "no time zone name");
	zlen = nul - p;
	zone = p;
	p += zlen + 1;
	len -= zlen + 1;
	if (len < (int) (SizeofMinimalTupleHeader - MINIMAL_TUPLE_DATA_OFFSET))
		payload_corrupt(dec, "tuple too short");

	if (dec->enc == NULL)
		decoder_build(dec);
	enc = dec->enc;
	if (zlen == 0 && enc->has_tstz)
		payload_corrupt(dec, "no time zone name for its timestamptz columns");
	if (zlen > 0 && (dec->zone == NULL || strcmp(dec->zone_name, zone) != 0))
	{
		dec->zone = pg_tzset(zone);
		if (dec->zone == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("time zone \"%s\" of captured rows of foreign table %s is not known",
							zone, rel_label(dec->relid)),
					 errhint("The rows stay in the outbox; check the server's time zone data.")));
		strlcpy(dec->zone_name, zone, sizeof(dec->zone_name));
	}

	/* the tuple, with its t_len in front again, in aligned memory */
	tlen = len + MINIMAL_TUPLE_DATA_OFFSET;
	if (dec->bufsize < tlen)
	{
		if (dec->buf)
			pfree(dec->buf);
		dec->bufsize = Max(tlen, 1024);
		dec->buf = MemoryContextAlloc(dec->cxt, dec->bufsize);
	}
	memcpy(dec->buf + MINIMAL_TUPLE_DATA_OFFSET, p, len);
	mt = (MinimalTuple) dec->buf;
	mt->t_len = tlen;
	if ((mt->t_infomask2 & HEAP_NATTS_MASK) != enc->ncols ||
		mt->t_hoff < offsetof(HeapTupleHeaderData, t_bits) ||
		(uint32) mt->t_hoff > tlen + MINIMAL_TUPLE_OFFSET)
		payload_corrupt(dec, "tuple header does not match the shape");

	htup.t_len = mt->t_len + MINIMAL_TUPLE_OFFSET;
	htup.t_data = (HeapTupleHeader) ((char *) mt - MINIMAL_TUPLE_OFFSET);
	ItemPointerSetInvalid(&htup.t_self);
	htup.t_tableOid = InvalidOid;
	heap_deform_tuple(&htup, enc->bindesc, enc->values, enc->nulls);
	encode_values(enc, enc->values, enc->nulls, zlen > 0 ? dec->zone : NULL, out);
}

/*
 * The CSV file format options the encoder relies on, for CREATE FILE FORMAT
 * and COPY.  Every option whose Snowflake default would misread a record is
 * stated explicitly (Snowflake docs, CREATE FILE FORMAT, format type
 * options for TYPE = CSV, e.g. ESCAPE_UNENCLOSED_FIELD and NULL_IF).
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

/* Whether an outbox payload is an NDJSON line (file_format 'json'). */
bool
sf_payload_is_json(bytea *payload)
{
	return VARSIZE_ANY_EXHDR(payload) > 0 &&
		(unsigned char) VARDATA_ANY(payload)[0] == SF_PAYLOAD_JSON;
}
