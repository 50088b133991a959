/*-------------------------------------------------------------------------
 *
 * sql_outbox.c
 *		sfexport.outbox_record(relid, shape, line): the CSV record an outbox
 *		row stands for, rendered as the worker would (encode.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "sfexport.h"

#include "encode.h"

/*
 * sfexport.outbox_record(relid, shape, line): the CSV record an outbox row
 * stands for, as the worker writes it to a staged file (without the
 * newline), in the database encoding.  Superuser only (the install script
 * revokes it from PUBLIC), like reading the outbox itself.
 */
typedef struct OutboxRecordCache
{
	Oid			relid;
	int64		shape;
	SfRowDecoder *dec;
} OutboxRecordCache;

PG_FUNCTION_INFO_V1(sf_outbox_record);

Datum
sf_outbox_record(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	int64		shape = PG_GETARG_INT64(1);
	bytea	   *line = PG_GETARG_BYTEA_PP(2);
	OutboxRecordCache *c = (OutboxRecordCache *) fcinfo->flinfo->fn_extra;
	StringInfoData buf;
	const char *record;
	int			len;
	char	   *conv;

	if (c == NULL || c->relid != relid || c->shape != shape)
	{
		MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

		if (c == NULL)
			c = palloc0(sizeof(OutboxRecordCache));
		c->relid = relid;
		c->shape = shape;
		c->dec = sf_decoder_create(relid, shape);	/* the old one is left to fn_mcxt */
		fcinfo->flinfo->fn_extra = c;
		MemoryContextSwitchTo(old);
	}
	initStringInfo(&buf);
	record = sf_outbox_render(line, c->dec, &buf, &len);
	conv = pg_any_to_server(record, len, PG_UTF8);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(conv, conv == record ? len : (int) strlen(conv)));
}
