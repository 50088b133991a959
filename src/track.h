/*-------------------------------------------------------------------------
 *
 * track.h
 *		Tracked tables: their changes captured into the outbox through the
 *		changes foreign table, and the Snowflake SQL that applies them
 *		(track.c; model layer in docs/ARCHITECTURE.md, docs/tracking.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_TRACK_H
#define SF_TRACK_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/relcache.h"

#include "config.h"
#include "statements.h"

/* the operations of a change (the first column of the changes table) */
#define SF_TRACK_INSERT		'I'
#define SF_TRACK_UPDATE		'U'
#define SF_TRACK_DELETE		'D'
#define SF_TRACK_TRUNCATE	'T'
#define SF_TRACK_SNAPSHOT	'S'

/* the leading columns of a changes foreign table, before the row's */
#define SF_TRACK_OP_COLUMN	"_sf_op"
#define SF_TRACK_SEQ_COLUMN "_sf_seq"
#define SF_TRACK_AT_COLUMN	"_sf_at"	/* the changing transaction's now() */
#define SF_TRACK_META_COLUMNS	3

/* the row trigger's name on a tracked table */
#define SF_TRACK_TRIGGER	"sfexport_track"

typedef struct SfTrackCapture SfTrackCapture;

/* What a changes foreign table's options say. */
typedef struct SfTrackInfo
{
	Oid			changes_relid;	/* the changes foreign table */
	char	   *merge_into;		/* Snowflake table the changes are merged into */
	List	   *keys;			/* char *: PostgreSQL names of the key columns */
	char	   *history;		/* Snowflake table every change is appended to, or NULL */
	bool		mirror;			/* merge into merge_into (false: history only) */
} SfTrackInfo;

extern SfTrackInfo *sf_track_info(Oid changes_relid, bool missing_ok);
extern Oid	sf_track_changes_of(Oid relid, bool missing_ok);
extern SfTrackCapture *sf_track_capture_begin(Oid changes_relid, TupleDesc srcdesc,
											  Oid src_owner);
extern void sf_track_capture_put(SfTrackCapture *c, char op, HeapTuple tup);
extern void sf_track_capture_row(Relation src, Oid changes_relid, char op,
								 HeapTuple tup, HeapTuple newtup);
extern bool sf_track_key_changed(SfTrackCapture *c, HeapTuple oldtup, HeapTuple newtup);
extern char *sf_track_watermark_name(SfServerConfig *srv, Oid changes_relid);
extern List *sf_track_watermark_statements(SfServerConfig *srv, Oid changes_relid);
extern char *sf_track_watermark_query(SfServerConfig *srv, Oid changes_relid);
extern char *sf_track_apply_sql(SfServerConfig *srv, Oid changes_relid,
								int64 bound, int64 batch, int *nstatements);
extern char *sf_track_target_name(SfServerConfig *srv, Oid changes_relid);
extern void sf_track_mirror_columns(Oid changes_relid, bool with_meta,
									ArrayType **columns, ArrayType **types);
extern char *sf_track_history_name(SfServerConfig *srv, Oid changes_relid);
extern char *sf_track_create_changes_statement(const char *target, int ncols,
											   const SfColumnDef *cols);
extern char *sf_track_create_target_statement(SfServerConfig *srv, Oid changes_relid);

#endif							/* SF_TRACK_H */
