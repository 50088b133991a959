/*-------------------------------------------------------------------------
 *
 * fuzz_encode.c
 *		libFuzzer harness: the row encoder's text rendering (src/encode.c):
 *		quoting of enclosed fields (append_enclosed), floats and UTC
 *		offsets.
 *
 * Property checked (not just "no crash"): a record built from arbitrary
 * field values with append_enclosed, separated by ',', reads back with an
 * independent reader of the file format the encoder declares
 * (FIELD_OPTIONALLY_ENCLOSED_BY = '"', ESCAPE = NONE, RECORD_DELIMITER
 * '\n' outside enclosures) into exactly the same values.  Floats must be
 * rendered so that strtod/strtof give back the same bits.
 *
 * Input: field values separated by NUL bytes (a text value never holds
 * NUL); the first 8 and 4 bytes are also read as a double and a float.
 *
 * The same input is also handed to sf_outbox_render() as an outbox
 * payload: a CSV payload (first byte 0x20 or above, or empty) must come back
 * unchanged, a JSON payload (0x02) as its line without that byte; an
 * unknown format byte, and a binary payload (0x01) whose time
 * zone name is unterminated or whose tuple is too short, must be refused
 * with ERRCODE_DATA_CORRUPTED before anything is decoded (these checks run
 * before the decoder reads the shape registry, which the harness has not).
 *
 *-------------------------------------------------------------------------
 */
#include "encode.c"

#include "pgstub.h"

static const uint8_t *in;
static size_t in_len;

/* Read one record back; returns the number of fields, fills starts/lens. */
static int
read_record(const char *s, int len, StringInfo *fields, int max)
{
	int			n = 0;
	int			i = 0;

	for (;;)
	{
		StringInfo	f;

		if (n >= max)
			fuzz_fail("too many fields read back");
		f = fields[n++];
		resetStringInfo(f);
		if (i >= len || s[i] != '"')
			fuzz_fail("field %d is not enclosed", n);
		i++;
		for (;;)
		{
			if (i >= len)
				fuzz_fail("unterminated enclosure in field %d", n);
			if (s[i] == '"')
			{
				if (i + 1 < len && s[i + 1] == '"')
				{
					appendStringInfoChar(f, '"');
					i += 2;
					continue;
				}
				i++;
				break;
			}
			appendStringInfoChar(f, s[i++]);
		}
		if (i == len)
			return n;
		if (s[i] != ',')
			fuzz_fail("garbage after the closing quote of field %d", n);
		i++;
	}
}

static void
one(void *arg)
{
	StringInfoData rec;
	StringInfo	back[64];
	const uint8_t *fstart[64];
	size_t		flen[64];
	int			nf = 0;
	const uint8_t *p = in;
	const uint8_t *end = in + in_len;
	int			nread;

	/* fields: split at NUL, at most 64 */
	while (nf < 64)
	{
		const uint8_t *z = memchr(p, 0, end - p);

		fstart[nf] = p;
		flen[nf] = (z ? z : end) - p;
		nf++;
		if (z == NULL)
			break;
		p = z + 1;
	}

	initStringInfo(&rec);
	for (int k = 0; k < nf; k++)
	{
		if (k > 0)
			appendStringInfoChar(&rec, ',');
		append_enclosed(&rec, (const char *) fstart[k], (int) flen[k]);
	}
	for (int k = 0; k < 64; k++)
		back[k] = makeStringInfo();
	nread = read_record(rec.data, rec.len, back, 64);
	if (nread != nf)
		fuzz_fail("wrote %d fields, read back %d", nf, nread);
	for (int k = 0; k < nf; k++)
		if ((size_t) back[k]->len != flen[k] ||
			memcmp(back[k]->data, fstart[k], flen[k]) != 0)
			fuzz_fail("field %d does not read back", k);

	/* floats: shortest exact form must round-trip */
	if (in_len >= 8)
	{
		double		d;
		float		f;
		StringInfoData s;

		memcpy(&d, in, sizeof(d));
		memcpy(&f, in, sizeof(f));
		initStringInfo(&s);
		append_double(&s, d);
		if (!isnan(d) && !isinf(d))
		{
			double		d2 = strtod(s.data, NULL);

			if (memcmp(&d, &d2, sizeof(d)) != 0 && !(d == 0 && d2 == 0))
				fuzz_fail("double %s does not read back", s.data);
		}
		resetStringInfo(&s);
		append_float(&s, f);
		if (!isnan(f) && !isinf(f))
		{
			float		f2 = strtof(s.data, NULL);

			if (memcmp(&f, &f2, sizeof(f)) != 0 && !(f == 0 && f2 == 0))
				fuzz_fail("float %s does not read back", s.data);
		}
		resetStringInfo(&s);
		/* offsets as timestamp2tm gives them: within +-16 h */
		append_offset(&s, (int) (((int32) (in[0] | in[1] << 8 | in[2] << 16)) % (16 * 3600)));
	}
}

/* payload for render_one, built from the input (malloc'd, kept across runs) */
static char *pl;
static size_t pl_len;
static size_t pl_cap;

static void
pl_reset(void)
{
	pl_len = 0;
}

static void
pl_add(const void *data, size_t len)
{
	if (len == 0)
		return;
	if (pl_len + len > pl_cap)
	{
		pl_cap = (pl_len + len) * 2 + 64;
		pl = realloc(pl, pl_cap);
		if (pl == NULL)
			abort();
	}
	memcpy(pl + pl_len, data, len);
	pl_len += len;
}

static void
pl_add_byte(uint8_t c)
{
	pl_add(&c, 1);
}

static void
render_one(void *arg)
{
	bytea	   *b = palloc(VARHDRSZ + pl_len);
	SfRowDecoder *dec = sf_decoder_create(0, 0);
	StringInfoData buf;
	const char *rec;
	int			len;

	SET_VARSIZE(b, VARHDRSZ + pl_len);
	if (pl_len > 0)
		memcpy(VARDATA(b), pl, pl_len);
	initStringInfo(&buf);
	rec = sf_outbox_render(b, dec, &buf, &len);
	if (pl_len > 0 && pl[0] == SF_PAYLOAD_JSON)
	{
		/* an NDJSON line: the payload without its format byte */
		if ((size_t) len != pl_len - 1 || memcmp(rec, pl + 1, pl_len - 1) != 0)
			fuzz_fail("a JSON payload did not come back as its line");
	}
	else if ((size_t) len != pl_len || (pl_len > 0 && memcmp(rec, pl, pl_len) != 0))
		fuzz_fail("a CSV payload did not pass through unchanged");
}

/* Render the payload; expect it to pass (CSV) or to be refused as corrupt. */
static void
check_render(bool expect_ok)
{
	bool		ok = fuzz_run(render_one, NULL);

	if (ok != expect_ok)
		fuzz_fail("payload of %zu bytes (first 0x%02x): %s", pl_len,
				  pl_len ? (unsigned char) pl[0] : 0,
				  ok ? "accepted" : fuzz_last_error_message());
	if (!ok && fuzz_last_error_code() != ERRCODE_DATA_CORRUPTED)
		fuzz_fail("corrupt payload refused with the wrong SQLSTATE: %s",
				  fuzz_last_error_message());
}

static void
payloads(void)
{
	size_t		zlen;
	size_t		rest;

	/* as given: CSV, or an unknown format byte */
	pl_reset();
	pl_add(in, in_len);
	if (in_len == 0 || in[0] >= 0x20 || in[0] == SF_PAYLOAD_JSON)
		check_render(true);
	else if (in[0] != SF_PAYLOAD_BINARY)
		check_render(false);

	/* binary, time zone name without its NUL */
	pl_reset();
	pl_add_byte(SF_PAYLOAD_BINARY);
	for (size_t i = 0; i < in_len; i++)
		pl_add_byte(in[i] ? in[i] : 'x');
	check_render(false);

	/* binary, a zone name and a tuple shorter than its header */
	zlen = in_len > 0 ? in[0] % (TZ_STRLEN_MAX + 1) : 0;
	zlen = Min(zlen, in_len);
	rest = in_len - zlen;
	rest = Min(rest, SizeofMinimalTupleHeader - MINIMAL_TUPLE_DATA_OFFSET - 1);
	pl_reset();
	pl_add_byte(SF_PAYLOAD_BINARY);
	for (size_t i = 0; i < zlen; i++)
		pl_add_byte(in[i] ? in[i] : 'x');
	pl_add_byte(0);
	pl_add(in + zlen, rest);
	check_render(false);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	in = data;
	in_len = size;
	if (!fuzz_run(one, NULL))
		fuzz_fail("the encoder threw: %s", fuzz_last_error_message());
	payloads();
	return 0;
}
