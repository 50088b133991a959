/*-------------------------------------------------------------------------
 *
 * encode.h
 *		The row encoder: one row to one CSV record (UTF-8, no newline), or
 *		to a binary outbox payload the worker renders to the same record
 *		(encode.c; model layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_ENCODE_H
#define SF_ENCODE_H

#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "utils/relcache.h"

typedef struct SfRowEncoder SfRowEncoder;
typedef struct SfRowDecoder SfRowDecoder;

/* first byte of a binary outbox payload (a CSV payload never starts below 0x20) */
#define SF_PAYLOAD_BINARY		0x01
/*
 * first byte of a JSON outbox payload (file_format 'json'): the byte, then
 * the NDJSON line (UTF-8, no newline) the worker writes as it is
 */
#define SF_PAYLOAD_JSON			0x02
/* rows whose detoasted values exceed this are encoded to CSV at INSERT */
#define SF_DEFER_MAX_ROW_BYTES	(1024 * 1024)

extern SfRowEncoder *sf_encoder_create(Relation rel);
extern void sf_encode_row(SfRowEncoder *enc, TupleTableSlot *slot,
						  StringInfo out);
extern void sf_encode_payload(SfRowEncoder *enc, TupleTableSlot *slot,
							  bool allow_binary, StringInfo out);
extern bool sf_encoder_deferrable(SfRowEncoder *enc);
extern int	sf_encoder_ncolumns(SfRowEncoder *enc);
extern uint64 sf_encoder_shape(SfRowEncoder *enc);
extern void sf_encoder_shape_arrays(SfRowEncoder *enc, Datum *names,
									Datum *types);
extern void sf_encoder_layout_arrays(SfRowEncoder *enc, Datum *oids,
									 Datum *typmods, Datum *lens,
									 Datum *byvals, Datum *aligns);
extern SfRowDecoder *sf_decoder_create(Oid relid, int64 shape);
extern const char *sf_outbox_render(bytea *payload, SfRowDecoder *dec,
									StringInfo buf, int *len);
extern const char *sf_csv_format_options(void);
extern bool sf_payload_is_json(bytea *payload);

#endif							/* SF_ENCODE_H */
