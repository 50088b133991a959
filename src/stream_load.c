/*-------------------------------------------------------------------------
 *
 * stream_load.c
 *		load_mode 'streaming': outbox rows to Snowpipe Streaming channels,
 *		exactly once, with the channel's committed offset token as the mark.
 *
 * Two steps, each in its own transactions (the worker calls both):
 *
 *	- sf_stream_collect(relid): the table's committed outbox rows, in
 *	  insertion order, become NDJSON batches of at most
 *	  SF_STREAM_MAX_REQUEST_BYTES (the documented 4 MB request limit) in
 *	  sfexport.stream_batches, and leave the outbox, in one transaction.
 *	  A batch's batch_id (a sequence: increasing) is its offset token.
 *	  Each row is its CSV record (sf_outbox_render, as for files) read back
 *	  into a JSON object keyed by the Snowflake column names of its shape:
 *	  values as JSON strings (Snowflake takes strings for every scalar
 *	  type, "Table support and schema"), json, jsonb and arrays as JSON,
 *	  bytea as BASE64 for the default pipe (which always decodes BASE64)
 *	  and as hex for a named pipe (BINARY_INPUT_FORMAT's default), NULL as
 *	  null.
 *	- sf_stream_ship(): per channel with batches, open the channel once
 *	  per worker process (or again after any doubt), take the committed
 *	  offset token C from the reply: every batch up to C is committed
 *	  (deleted), every batch after it is sent again in order, each with the
 *	  continuation token of the previous reply.  Then bulk channel status
 *	  every sfexport.streaming_poll_interval while batches are in flight;
 *	  batches are deleted only once C covers them.
 *
 * Why exactly once: a batch's rows and offset token are fixed in
 * PostgreSQL before it is first sent; Snowflake commits a batch's rows and
 * its offset token together; reopening discards whatever it received and
 * did not commit.  So after a crash, a timeout, a lost reply, a 409 or a
 * stale continuation token the worker reopens, and C says exactly which
 * batches are in the table ("Named Channels and exactly-once delivery",
 * https://docs.snowflake.com/en/user-guide/snowpipe-streaming/snowpipe-streaming-channels).
 * Offset tokens do not deduplicate in Snowflake: the worker never sends a
 * batch whose id is at most C.  This rests on batch ids never going back:
 * a restore or failover that loses WAL of sfexport.stream_batches (and of
 * its sequence) could reuse ids that C already covers (docs/streaming.md).
 *
 * Rejected rows: Snowflake commits valid rows and counts the others
 * (ON_ERROR = CONTINUE is the only mode).  When a channel's error count
 * grew, the batch named by last_error_offset_upper_bound (or the last
 * batch committed since the previous look) stays, as state 'rejected' with
 * the count and Snowflake's (redacted) message, visible in
 * sfexport.stream_status, and sfexport.stream_retry() sends it again.
 *
 * Throttling (429 after the HTTP retries) and outages back off the channel
 * (1 s doubling to 60 s); rows wait in the outbox or in their batch.
 *
 * The channel of a table: SFEXPORT_<system identifier>_<database oid>_<table
 * oid> (upper case, as docs/streaming.md recommends; a standby promoted to
 * primary has the same system identifier, so it resumes the same channel),
 * on the pipe named by the table's streaming_pipe option, else the table's
 * default pipe "<TABLE>-STREAMING" (created by Snowflake at the first open).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sf_jansson.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "common/base64.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/itemptr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "compress.h"
#include "config.h"
#include "encode.h"
#include "shapes.h"
#include "snowflake.h"
#include "stream_load.h"
#include "streaming.h"
#include "transaction.h"

/* sfexport.streaming_poll_interval */
int			sfexport_streaming_poll_interval_ms = 1000;

#define BATCHES_PER_TRANSACTION	8
#define APPENDS_PER_ROUND		5	/* per round, rounds 500 ms apart at most */
#define BACKOFF_MIN_MS			1000
#define BACKOFF_MAX_MS			(60 * 1000)

void
sf_stream_define_gucs(void)
{
	DefineCustomIntVariable("sfexport.streaming_poll_interval",
							"How often the worker asks Snowpipe Streaming whether appended rows are committed.",
							"Rows leave sfexport.stream_batches once their channel has committed them.",
							&sfexport_streaming_poll_interval_ms,
							1000, 50, 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/* ---------------------------------------------------------------------
 * Outbox rows to NDJSON batches
 * ---------------------------------------------------------------------
 */
typedef struct ShapeCols
{
	int64		shape;
	SfRowDecoder *dec;
	int			ncols;
	char	  **names;
	char	  **types;
	struct ShapeCols *next;
} ShapeCols;

typedef struct Collector
{
	Oid			relid;
	SfTableConfig *tbl;
	SfServerConfig *srv;
	char	   *pipe;
	char	   *channel;
	bool		binary_base64;
	ShapeCols  *shapes;
	StringInfoData body;
	StringInfoData rec;
	int64		rows;			/* rows in body */
	/* rows of the batch, by segment */
	Oid			seg_oid[2];
	ItemPointerData *tids[2];
	int			ntids[2];
	int			maxtids[2];
	MemoryContext rowcxt;
	/* results */
	int64		total_rows;
	int			batches;
} Collector;

static char **
text_array(Datum arr, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **out;

	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, n);
	out = palloc(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		out[i] = nulls[i] ? "" : TextDatumGetCString(elems[i]);
	return out;
}

static ShapeCols *
shape_cols(Collector *c, int64 shape)
{
	ShapeCols  *sc;
	Datum		names;
	Datum		types;
	int			ntypes;

	for (sc = c->shapes; sc; sc = sc->next)
		if (sc->shape == shape)
			return sc;
	sc = palloc0(sizeof(ShapeCols));
	sc->shape = shape;
	sc->dec = sf_decoder_create(c->relid, shape);
	sf_shape_columns(c->relid, shape, &names, &types);
	sc->names = text_array(names, &sc->ncols);
	sc->types = text_array(types, &ntypes);
	if (ntypes != sc->ncols)
		elog(ERROR, "shape " INT64_FORMAT " of table %u has %d names and %d types",
			 shape, c->relid, sc->ncols, ntypes);
	sc->next = c->shapes;
	c->shapes = sc;
	return sc;
}

/* One CSV field's value as JSON (see the header comment). */
static json_t *
field_json(const char *type, const char *v, int len, bool binary_base64)
{
	size_t		tlen = strlen(type);

	if (strcmp(type, "json") == 0 || strcmp(type, "jsonb") == 0 ||
		(tlen > 2 && strcmp(type + tlen - 2, "[]") == 0))
	{
		json_error_t jerr;
		json_t	   *j = json_loadb(v, len, JSON_DECODE_ANY, &jerr);

		if (j)
			return j;
	}
	else if (strcmp(type, "bytea") == 0 && binary_base64)
	{
		int			rawlen = len / 2;
		char	   *raw = palloc(rawlen + 1);
		int			enclen = pg_b64_enc_len(rawlen);
		char	   *enc = palloc(enclen + 1);
		int			n;

		hex_decode(v, len, raw);
		n = pg_b64_encode((void *) raw, rawlen, enc, enclen);
		if (n >= 0)
			return json_stringn(enc, n);
	}
	else if (strncmp(type, "timestamp", 9) == 0 && len > 10 && v[10] == ' ')
	{
		/* ISO 8601's separator */
		char	   *iso = pnstrdup(v, len);

		iso[10] = 'T';
		return json_stringn(iso, len);
	}
	return json_stringn(v, len);
}

/*
 * A CSV record (encode.c: ',' separated, text-like fields enclosed in '"'
 * with '"' doubled, NULL an empty unenclosed field) as one NDJSON line.
 */
static void
record_to_json(Collector *c, ShapeCols *sc, const char *rec, int len)
{
	const char *p = rec;
	const char *end = rec + len;
	json_t	   *obj = json_pack("{}");
	StringInfoData f;
	char	   *line;

	initStringInfo(&f);
	for (int i = 0; i < sc->ncols; i++)
	{
		json_t	   *v;

		resetStringInfo(&f);
		if (p < end && *p == '"')
		{
			p++;
			while (p < end)
			{
				if (*p == '"')
				{
					if (p + 1 < end && p[1] == '"')
					{
						appendStringInfoChar(&f, '"');
						p += 2;
						continue;
					}
					p++;
					break;
				}
				appendStringInfoChar(&f, *p++);
			}
			v = field_json(sc->types[i], f.data, f.len, c->binary_base64);
		}
		else
		{
			const char *start = p;

			while (p < end && *p != ',')
				p++;
			v = p == start ? json_null() :
				field_json(sc->types[i], start, p - start, c->binary_base64);
		}
		if (p < end && *p == ',')
			p++;
		if (v == NULL || json_object_set_new(obj, sc->names[i], v) != 0)
		{
			json_decref(obj);
			ereport(ERROR,
					(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
					 errmsg("a row of table %u cannot be sent to Snowpipe Streaming", c->relid),
					 errdetail("Column \"%s\" is not valid UTF-8 JSON text.", sc->names[i]),
					 errhint("The rows stay in the outbox; change the table's load_mode to copy to load them as files.")));
		}
	}
	line = sf_json_dumps(obj);
	json_decref(obj);
	resetStringInfo(&c->rec);
	appendStringInfoString(&c->rec, line);
	appendStringInfoChar(&c->rec, '\n');
}

/* Store the batch in body and remove its rows from the outbox. */
static void
finish_batch(Collector *c)
{
	Oid			argtypes[9] = {OIDOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	INT8OID, INT8OID, BYTEAOID};
	Datum		values[9];
	bytea	   *body;

	if (c->rows == 0)
		return;
	body = palloc(VARHDRSZ + c->body.len);
	SET_VARSIZE(body, VARHDRSZ + c->body.len);
	memcpy(VARDATA(body), c->body.data, c->body.len);
	values[0] = ObjectIdGetDatum(c->relid);
	values[1] = ObjectIdGetDatum(c->tbl->serverid);
	values[2] = CStringGetTextDatum(c->srv->database);
	values[3] = CStringGetTextDatum(c->tbl->schema);
	values[4] = CStringGetTextDatum(c->pipe);
	values[5] = CStringGetTextDatum(c->channel);
	values[6] = Int64GetDatum(c->rows);
	values[7] = Int64GetDatum(c->body.len);
	values[8] = PointerGetDatum(body);
	if (SPI_execute_with_args("INSERT INTO sfexport.stream_batches"
							  " (relid, server, database_name, schema_name, pipe_name,"
							  "  channel_name, rows, bytes, body)"
							  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
							  9, argtypes, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not insert into sfexport.stream_batches");
	pfree(body);

	for (int s = 0; s < 2; s++)
	{
		Oid			dargtypes[2] = {OIDOID, TIDARRAYOID};
		Datum		dvalues[2];
		Datum	   *elems;

		if (c->ntids[s] == 0)
			continue;
		elems = palloc(sizeof(Datum) * c->ntids[s]);
		for (int i = 0; i < c->ntids[s]; i++)
			elems[i] = PointerGetDatum(&c->tids[s][i]);
		dvalues[0] = ObjectIdGetDatum(c->seg_oid[s]);
		dvalues[1] = PointerGetDatum(construct_array(elems, c->ntids[s], TIDOID,
													 sizeof(ItemPointerData), false,
													 TYPALIGN_SHORT));
		if (SPI_execute_with_args("DELETE FROM sfexport.outbox"
								  " WHERE tableoid OPERATOR(pg_catalog.=) $1"
								  "   AND ctid OPERATOR(pg_catalog.=) ANY ($2)",
								  2, dargtypes, dvalues, NULL, false, 0) != SPI_OK_DELETE ||
			SPI_processed != (uint64) c->ntids[s])
			elog(ERROR, "could not delete the rows of a batch from sfexport.outbox");
		pfree(elems);
		c->ntids[s] = 0;
	}
	c->total_rows += c->rows;
	c->batches++;
	c->rows = 0;
	resetStringInfo(&c->body);
}

static void
add_tid(Collector *c, Oid seg, ItemPointer tid)
{
	int			s;

	for (s = 0; s < 2; s++)
		if (c->seg_oid[s] == seg || c->seg_oid[s] == InvalidOid)
			break;
	if (s == 2)
		elog(ERROR, "sfexport.outbox has more than two segments");
	c->seg_oid[s] = seg;
	if (c->ntids[s] == c->maxtids[s])
	{
		c->maxtids[s] = Max(64, c->maxtids[s] * 2);
		c->tids[s] = c->tids[s] ? repalloc(c->tids[s], sizeof(ItemPointerData) * c->maxtids[s]) :
			palloc(sizeof(ItemPointerData) * c->maxtids[s]);
	}
	c->tids[s][c->ntids[s]++] = *tid;
}

typedef struct CollectArgs
{
	Oid			relid;
	int64		rows;
	bool		more;
} CollectArgs;

static void
collect_unit(void *arg)
{
	CollectArgs *a = (CollectArgs *) arg;
	Collector	c;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	Portal		cur;
	bool		full = false;

	memset(&c, 0, sizeof(c));
	a->rows = 0;
	a->more = false;
	sf_spi_connect();
	c.relid = a->relid;
	c.tbl = sf_get_table_config(a->relid);
	if (c.tbl->load_mode != SF_LOAD_STREAMING)
	{
		SPI_finish();
		return;
	}
	c.srv = sf_get_server_config(c.tbl->serverid);
	c.pipe = c.tbl->streaming_pipe ? c.tbl->streaming_pipe :
		psprintf("%s-STREAMING", c.tbl->table);
	c.binary_base64 = c.tbl->streaming_pipe == NULL;
	c.channel = psprintf("SFEXPORT_" UINT64_FORMAT "_%u_%u",
						 GetSystemIdentifier(), MyDatabaseId, a->relid);
	initStringInfo(&c.body);
	initStringInfo(&c.rec);
	c.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "sfexport stream row",
									 ALLOCSET_DEFAULT_SIZES);
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("batching rows of table %u for Snowpipe Streaming", a->relid));

	values[0] = ObjectIdGetDatum(a->relid);
	cur = SPI_cursor_open_with_args(NULL,
									"SELECT tableoid, ctid, shape, line FROM sfexport.outbox"
									" WHERE relid OPERATOR(pg_catalog.=) $1"
									" ORDER BY inserted_at, tableoid, ctid",
									1, argtypes, values, NULL, true, 0);
	while (!full)
	{
		SPITupleTable *tt;
		uint64		ntup;

		/* kept: the statements run below replace SPI_tuptable */
		SPI_cursor_fetch(cur, true, 1000);
		tt = SPI_tuptable;
		ntup = SPI_processed;
		if (ntup == 0)
			break;
		for (uint64 i = 0; i < ntup; i++)
		{
			HeapTuple	tup = tt->vals[i];
			TupleDesc	desc = tt->tupdesc;
			bool		isnull;
			Oid			seg = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
			ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 2, &isnull));
			int64		shape = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
			Datum		line = SPI_getbinval(tup, desc, 4, &isnull);
			ShapeCols  *sc;
			MemoryContext old;
			const char *rec;
			int			len;

			if (full)
			{
				a->more = true;
				break;
			}
			CHECK_FOR_INTERRUPTS();
			sc = shape_cols(&c, shape);
			old = MemoryContextSwitchTo(c.rowcxt);
			{
				StringInfoData buf;

				initStringInfo(&buf);
				rec = sf_outbox_render(DatumGetByteaPP(line), sc->dec, &buf, &len);
				record_to_json(&c, sc, rec, len);
			}
			MemoryContextSwitchTo(old);
			if (c.rows > 0 && c.body.len + c.rec.len > SF_STREAM_MAX_REQUEST_BYTES)
			{
				finish_batch(&c);
				if (c.batches >= BATCHES_PER_TRANSACTION)
				{
					full = true;
					a->more = true;
					MemoryContextReset(c.rowcxt);
					break;
				}
			}
			appendBinaryStringInfo(&c.body, c.rec.data, c.rec.len);
			c.rows++;
			add_tid(&c, seg, tid);
			MemoryContextReset(c.rowcxt);
		}
	}
	SPI_cursor_close(cur);
	finish_batch(&c);
	a->rows = c.total_rows;
	SPI_finish();
}

/*
 * Move the committed outbox rows of a table in load_mode streaming into
 * batches; returns the rows moved.  An error (a row that cannot be
 * rendered) leaves the rows in the outbox and is logged.
 */
int64
sf_stream_collect(Oid relid)
{
	CollectArgs a;
	int64		rows = 0;

	a.relid = relid;
	do
	{
		CHECK_FOR_INTERRUPTS();
		if (!sf_run_transaction(collect_unit, &a, NULL))
			break;
		rows += a.rows;
	} while (a.more);
	return rows;
}

/* ---------------------------------------------------------------------
 * Batches to channels
 * ---------------------------------------------------------------------
 */
typedef struct ChannelState
{
	Oid			serverid;
	char	   *database;
	char	   *schema;
	char	   *pipe;
	char	   *channel;
	char	   *continuation;	/* NULL: (re)open before appending */
	int64		committed;		/* last committed offset token seen */
	int64		appended;		/* last batch appended since the open */
	TimestampTz next_poll;
	TimestampTz not_before;		/* backoff */
	int			backoff_ms;
	int			reopen_ms;		/* wait before the next reopen after an append
								 * that asked for one: 0, 100 ms, doubling */
	struct ChannelState *next;
} ChannelState;

static ChannelState *channels = NULL;

static ChannelState *
channel_state(Oid serverid, const char *db, const char *schema, const char *pipe,
			  const char *channel)
{
	ChannelState *cs;
	MemoryContext old;

	for (cs = channels; cs; cs = cs->next)
		if (cs->serverid == serverid && strcmp(cs->database, db) == 0 &&
			strcmp(cs->schema, schema) == 0 && strcmp(cs->pipe, pipe) == 0 &&
			strcmp(cs->channel, channel) == 0)
			return cs;
	old = MemoryContextSwitchTo(TopMemoryContext);
	cs = palloc0(sizeof(ChannelState));
	cs->serverid = serverid;
	cs->database = pstrdup(db);
	cs->schema = pstrdup(schema);
	cs->pipe = pstrdup(pipe);
	cs->channel = pstrdup(channel);
	cs->next = channels;
	channels = cs;
	MemoryContextSwitchTo(old);
	return cs;
}

static void
forget_continuation(ChannelState *cs)
{
	if (cs->continuation)
		pfree(cs->continuation);
	cs->continuation = NULL;
}

static int64
token_value(const char *token)
{
	char	   *end;
	long long	v;

	if (token == NULL || *token == '\0')
		return 0;
	errno = 0;
	v = strtoll(token, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0)
		return -1;
	return (int64) v;
}

/* The channel key as SPI arguments $1..$5. */
static void
key_args(ChannelState *cs, Oid *types, Datum *values)
{
	types[0] = OIDOID;
	values[0] = ObjectIdGetDatum(cs->serverid);
	for (int i = 1; i < 5; i++)
		types[i] = TEXTOID;
	values[1] = CStringGetTextDatum(cs->database);
	values[2] = CStringGetTextDatum(cs->schema);
	values[3] = CStringGetTextDatum(cs->pipe);
	values[4] = CStringGetTextDatum(cs->channel);
}

#define KEY_WHERE " server OPERATOR(pg_catalog.=) $1" \
	" AND database_name OPERATOR(pg_catalog.=) $2" \
	" AND schema_name OPERATOR(pg_catalog.=) $3" \
	" AND pipe_name OPERATOR(pg_catalog.=) $4" \
	" AND channel_name OPERATOR(pg_catalog.=) $5"

/*
 * What a channel status says: batches up to the committed offset token
 * are in the table (deleted; the one with new row errors kept as
 * 'rejected'), and the channel's row in sfexport.stream_channels.
 */
static void
reconcile(ChannelState *cs, SfStreamStatus *st)
{
	Oid			types[10];
	Datum		values[10];
	char		nulls[10];
	int64		committed = token_value(st->committed_token);
	int64		prev_errors = -1;

	if (committed < 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("channel %s has an offset token sfexport did not write", cs->channel),
				 errdetail("Its last committed offset token is not a batch number."),
				 errhint("Another client uses this channel: give it a channel of its own, or drop the channel in Snowflake.")));

	key_args(cs, types, values);
	memset(nulls, ' ', sizeof(nulls));
	if (SPI_execute_with_args("SELECT rows_errors FROM sfexport.stream_channels WHERE" KEY_WHERE
							  " FOR UPDATE", 5, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.stream_channels");
	if (SPI_processed == 1)
	{
		bool		isnull;

		prev_errors = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
												  SPI_tuptable->tupdesc, 1, &isnull));
	}

	/* new row errors: the batch they are in stays, as rejected */
	if (prev_errors >= 0 && st->rows_errors > prev_errors)
	{
		int64		upper = token_value(st->last_error_offset);

		types[5] = INT8OID;
		values[5] = Int64GetDatum(committed);
		types[6] = INT8OID;
		values[6] = Int64GetDatum(upper);
		types[7] = INT8OID;
		values[7] = Int64GetDatum(st->rows_errors - prev_errors);
		types[8] = TEXTOID;
		values[8] = st->last_error_message ? CStringGetTextDatum(st->last_error_message) : (Datum) 0;
		nulls[8] = st->last_error_message ? ' ' : 'n';
		if (SPI_execute_with_args("UPDATE sfexport.stream_batches"
								  "   SET state = 'rejected',"
								  "       rows_rejected = LEAST(rows, $8),"
								  "       error = $9, rejected_at = pg_catalog.now()"
								  " WHERE batch_id OPERATOR(pg_catalog.=) ("
								  "  SELECT coalesce(pg_catalog.max(batch_id) FILTER"
								  "           (WHERE batch_id OPERATOR(pg_catalog.=) $7),"
								  "         pg_catalog.max(batch_id))"
								  "    FROM sfexport.stream_batches WHERE" KEY_WHERE
								  "     AND state OPERATOR(pg_catalog.=) 'pending'"
								  "     AND batch_id OPERATOR(pg_catalog.<=) $6)",
								  9, types, values, nulls, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update sfexport.stream_batches");
		if (SPI_processed > 0)
			ereport(WARNING,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("Snowflake rejected " INT64_FORMAT " rows of channel %s",
							st->rows_errors - prev_errors, cs->channel),
					 errdetail("Their batch is kept in sfexport.stream_batches as rejected; sfexport.stream_status shows the error."),
					 errhint("Fix the cause, then call sfexport.stream_retry().")));
	}

	types[5] = INT8OID;
	values[5] = Int64GetDatum(committed);
	if (SPI_execute_with_args("DELETE FROM sfexport.stream_batches WHERE" KEY_WHERE
							  " AND state OPERATOR(pg_catalog.=) 'pending'"
							  " AND batch_id OPERATOR(pg_catalog.<=) $6",
							  6, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not delete from sfexport.stream_batches");

	nulls[5] = st->committed_token ? ' ' : 'n';
	types[5] = TEXTOID;
	values[5] = st->committed_token ? CStringGetTextDatum(st->committed_token) : (Datum) 0;
	types[6] = INT8OID;
	values[6] = Int64GetDatum(st->rows_inserted);
	types[7] = INT8OID;
	values[7] = Int64GetDatum(st->rows_errors);
	types[8] = TEXTOID;
	nulls[8] = st->status_code ? ' ' : 'n';
	values[8] = st->status_code ? CStringGetTextDatum(st->status_code) : (Datum) 0;
	if (SPI_execute_with_args("INSERT INTO sfexport.stream_channels AS c"
							  " (server, database_name, schema_name, pipe_name, channel_name,"
							  "  committed_token, rows_inserted, rows_errors, status_code, seen_at)"
							  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, pg_catalog.now())"
							  " ON CONFLICT (server, database_name, schema_name, pipe_name, channel_name)"
							  " DO UPDATE SET committed_token = excluded.committed_token,"
							  "   rows_inserted = excluded.rows_inserted,"
							  "   rows_errors = excluded.rows_errors,"
							  "   status_code = excluded.status_code, seen_at = excluded.seen_at",
							  9, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write sfexport.stream_channels");

	cs->committed = Max(cs->committed, committed);
	if (cs->appended < cs->committed)
		cs->appended = cs->committed;
}

static void
wire_sink(const char *data, size_t len, void *arg)
{
	appendBinaryStringInfo((StringInfo) arg, data, len);
}

/* A batch Snowflake can never take (a row above the request limit). */
static void
reject_too_large(int64 id, int64 bytes)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];

	values[0] = Int64GetDatum(id);
	values[1] = CStringGetTextDatum(psprintf("the batch is " INT64_FORMAT " bytes, above the 4 MB request limit of Snowpipe Streaming (a row too large to stream)",
											 bytes));
	if (SPI_execute_with_args("UPDATE sfexport.stream_batches"
							  "   SET state = 'rejected', rows_rejected = rows, error = $2,"
							  "       rejected_at = pg_catalog.now()"
							  " WHERE batch_id OPERATOR(pg_catalog.=) $1",
							  2, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update sfexport.stream_batches");
	ereport(WARNING,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("batch " INT64_FORMAT " cannot be sent to Snowpipe Streaming", id),
			 errdetail("It is " INT64_FORMAT " bytes; a request may carry at most 4 MB.", bytes),
			 errhint("Its rows stay in sfexport.stream_batches as rejected; load such rows with load_mode copy.")));
}

typedef struct ShipArgs
{
	ChannelState *cs;
	TimestampTz wake;			/* when this channel needs the worker again */
} ShipArgs;

static void
ship_unit(void *arg)
{
	ShipArgs   *a = (ShipArgs *) arg;
	ChannelState *cs = a->cs;
	SfServerConfig *srv;
	SfUserConfig *usr;
	SfStreamChannel ch = {cs->database, cs->schema, cs->pipe, cs->channel};
	SfStreamStatus st;
	Oid			types[6];
	Datum		values[6];
	TimestampTz now = GetCurrentTimestamp();
	uint64		n;
	SPITupleTable *tt;
	bool		more;

	a->wake = 0;
	sf_spi_connect();
	srv = sf_get_server_config(cs->serverid);
	usr = sf_get_worker_user_config(cs->serverid);

	if (cs->continuation == NULL)
	{
		char	   *cont;

		pgstat_report_activity(STATE_RUNNING, psprintf("opening channel %s", cs->channel));
		cont = sf_stream_open(srv, usr, &ch, &st);
		cs->appended = 0;
		cs->committed = 0;
		reconcile(cs, &st);
		cs->continuation = MemoryContextStrdup(TopMemoryContext, cont);
	}
	else if (cs->appended > cs->committed && now >= cs->next_poll)
	{
		sf_stream_status(srv, usr, &ch, &st);
		if (st.found)
			reconcile(cs, &st);
		if (!st.found || !st.valid)
		{
			/* gone or invalidated: reopen (what was not committed is resent) */
			forget_continuation(cs);
			cs->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), cs->reopen_ms);
			cs->reopen_ms = Min(Max(cs->reopen_ms * 2, 100), BACKOFF_MAX_MS);
			a->wake = cs->not_before;
			SPI_finish();
			return;
		}
		cs->next_poll = TimestampTzPlusMilliseconds(now, sfexport_streaming_poll_interval_ms);
	}

	key_args(cs, types, values);
	types[5] = INT8OID;
	values[5] = Int64GetDatum(cs->appended);
	if (SPI_execute_with_args("SELECT batch_id, body FROM sfexport.stream_batches WHERE" KEY_WHERE
							  " AND state OPERATOR(pg_catalog.=) 'pending'"
							  " AND batch_id OPERATOR(pg_catalog.>) $6"
							  " ORDER BY batch_id",
							  6, types, values, NULL, true, APPENDS_PER_ROUND + 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.stream_batches");
	n = SPI_processed;
	tt = SPI_tuptable;
	more = n > APPENDS_PER_ROUND;
	for (uint64 i = 0; i < Min(n, APPENDS_PER_ROUND); i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		bytea	   *body = DatumGetByteaPP(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		char		token[24];
		char	   *next;
		int			retry_after_ms;
		SfStreamAppendResult r;

		snprintf(token, sizeof(token), "%020lld", (long long) id);
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("appending batch " INT64_FORMAT " to channel %s", id, cs->channel));
		if (VARSIZE_ANY_EXHDR(body) > SF_STREAM_MAX_REQUEST_BYTES)
			r = SF_STREAM_TOO_LARGE;	/* one row above the limit */
		else if (srv->compression == SF_COMPRESSION_NONE)
			r = sf_stream_append(srv, usr, &ch, cs->continuation, VARDATA_ANY(body),
								 VARSIZE_ANY_EXHDR(body), NULL, token, &next, &retry_after_ms);
		else
		{
			/* the server's compression, as for staged files */
			StringInfoData wire;
			SfCompressor *comp;

			initStringInfo(&wire);
			comp = sf_compress_begin(srv->compression, srv->compression_level,
									 wire_sink, &wire);
			sf_compress_write(comp, VARDATA_ANY(body), VARSIZE_ANY_EXHDR(body));
			sf_compress_finish(comp);
			r = sf_stream_append(srv, usr, &ch, cs->continuation, wire.data, wire.len,
								 srv->compression == SF_COMPRESSION_ZSTD ? "zstd" : "gzip",
								 token, &next, &retry_after_ms);
			pfree(wire.data);
		}
		if (r == SF_STREAM_TOO_LARGE)
		{
			/* never sendable: kept as rejected, the channel goes on */
			reject_too_large(id, VARSIZE_ANY_EXHDR(body));
			continue;
		}
		if (r == SF_STREAM_APPENDED)
		{
			cs->reopen_ms = 0;
			forget_continuation(cs);
			cs->continuation = MemoryContextStrdup(TopMemoryContext, next);
			if (cs->appended <= cs->committed)
				cs->next_poll = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															sfexport_streaming_poll_interval_ms);
			cs->appended = id;
			continue;
		}
		if (r == SF_STREAM_THROTTLED)
		{
			cs->backoff_ms = Min(Max(cs->backoff_ms * 2, BACKOFF_MIN_MS), BACKOFF_MAX_MS);
			cs->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														 Max(cs->backoff_ms, retry_after_ms));
			ereport(LOG,
					(errmsg("Snowpipe Streaming throttles channel %s: waiting %d ms",
							cs->channel, Max(cs->backoff_ms, retry_after_ms))));
			a->wake = cs->not_before;
			SPI_finish();
			return;
		}
		/*
		 * Unknown outcome, stale token, invalid channel: reopen, at once the
		 * first time, then backing off (a channel Snowflake keeps
		 * invalidating must not be reopened in a tight loop).
		 */
		forget_continuation(cs);
		cs->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), cs->reopen_ms);
		cs->reopen_ms = Min(Max(cs->reopen_ms * 2, 100), BACKOFF_MAX_MS);
		a->wake = cs->not_before;
		SPI_finish();
		return;
	}
	cs->backoff_ms = 0;
	/* five appends per half second: the documented 10 requests/s per channel */
	if (more)
		a->wake = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 500);
	else if (cs->appended > cs->committed)
		a->wake = cs->next_poll;
	SPI_finish();
}

typedef struct ListArgs
{
	MemoryContext cxt;
	List	   *channels;		/* ChannelState * */
} ListArgs;

static void
list_unit(void *arg)
{
	ListArgs   *a = (ListArgs *) arg;

	sf_spi_connect();
	if (SPI_execute("SELECT DISTINCT server, database_name, schema_name, pipe_name, channel_name"
					"  FROM sfexport.stream_batches"
					" WHERE state OPERATOR(pg_catalog.=) 'pending'", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.stream_batches");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		ChannelState *cs;
		MemoryContext old;

		cs = channel_state(DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull)),
						   SPI_getvalue(tup, desc, 2), SPI_getvalue(tup, desc, 3),
						   SPI_getvalue(tup, desc, 4), SPI_getvalue(tup, desc, 5));
		old = MemoryContextSwitchTo(a->cxt);
		a->channels = lappend(a->channels, cs);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
}

/*
 * Send what waits in sfexport.stream_batches and learn what was committed.
 * Returns when the worker should call again (0: nothing waits).
 */
TimestampTz
sf_stream_ship(void)
{
	ListArgs	la;
	ListCell   *lc;
	TimestampTz wake = 0;

	la.cxt = CurrentMemoryContext;
	la.channels = NIL;
	if (!sf_run_transaction(list_unit, &la, NULL))
		return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), BACKOFF_MAX_MS);
	foreach(lc, la.channels)
	{
		ChannelState *cs = (ChannelState *) lfirst(lc);
		ShipArgs	sa;
		TimestampTz now = GetCurrentTimestamp();

		CHECK_FOR_INTERRUPTS();
		sa.cs = cs;
		sa.wake = 0;
		if (now < cs->not_before)
			sa.wake = cs->not_before;
		else if (!sf_run_transaction(ship_unit, &sa, NULL))
		{
			/* an error (logged): reopen after a backoff */
			forget_continuation(cs);
			cs->backoff_ms = Min(Max(cs->backoff_ms * 2, BACKOFF_MIN_MS), BACKOFF_MAX_MS);
			cs->not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), cs->backoff_ms);
			sa.wake = cs->not_before;
		}
		if (sa.wake != 0)
			wake = wake == 0 ? sa.wake : Min(wake, sa.wake);
	}
	return wake;
}
