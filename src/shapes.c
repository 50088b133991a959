/*-------------------------------------------------------------------------
 *
 * shapes.c
 *		The shape registry, sfexport.shapes: the target column names and
 *		types of every record shape rows were written with, and each
 *		column's type OID, typmod, typlen, typbyval and typalign.
 *
 * The insert path registers a shape before its first row (outbox.c); the
 * worker reads it to know which columns an old record holds after the
 * foreign table was altered (sf_shape_columns, flush.c), and to decode
 * binary payloads (sf_shape_layout, encode.c).  The table is written
 * through the table AM directly, like the outbox (tables.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "hashtab.h"
#include "shapes.h"
#include "tables.h"

/* sfexport.shapes columns */
#define Anum_shapes_relid		1
#define Anum_shapes_shape		2
#define Anum_shapes_columns		3
#define Anum_shapes_types		4
#define Anum_shapes_registered	5
#define Anum_shapes_type_oids	6
#define Anum_shapes_type_mods	7
#define Anum_shapes_type_lens	8
#define Anum_shapes_type_byvals	9
#define Anum_shapes_type_aligns	10
#define Natts_shapes			10

/*
 * Shapes this backend knows are registered, keyed by (shapes table, relid,
 * shape).  Forgotten whenever a (sub)transaction aborts, because the
 * registration may have been rolled back with it.
 */
typedef struct ShapeKey
{
	Oid			shapes_relid;
	Oid			relid;
	int64		shape;
} ShapeKey;

static HTAB *known_shapes = NULL;

static void
forget_shapes(void)
{
	if (known_shapes)
	{
		hash_destroy(known_shapes);
		known_shapes = NULL;
	}
}

static void
shapes_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		forget_shapes();
}

static void
shapes_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		forget_shapes();
}

/* Called once from _PG_init. */
void
sf_shapes_init(void)
{
	RegisterXactCallback(shapes_xact_callback, NULL);
	RegisterSubXactCallback(shapes_subxact_callback, NULL);
}

/*
 * Make sure shape of foreign table ftrelid is in sfexport.shapes, before
 * rows of it are written.  fill(arg, cols) gives its columns, called only
 * when the shape is new.  A duplicate registration by a concurrent session
 * is harmless: readers take any row of a (relid, shape) pair, and they are
 * all the same.
 */
void
sf_shape_register(Oid ftrelid, int64 shape, SfShapeColumnsFn fill, void *arg)
{
	Oid			shapes_oid = sf_shapes_relid();
	ShapeKey	key;
	bool		found;
	Relation	rel;
	ScanKeyData skey[2];
	TableScanDesc scan;
	Snapshot	snapshot;
	bool		exists;

	if (known_shapes == NULL)
		known_shapes = sf_hash_create("sfexport known shapes", 64, sizeof(ShapeKey),
									  sizeof(ShapeKey), TopMemoryContext);
	memset(&key, 0, sizeof(key));
	key.shapes_relid = shapes_oid;
	key.relid = ftrelid;
	key.shape = shape;
	hash_search(known_shapes, &key, HASH_FIND, &found);
	if (found)
		return;

	rel = sf_open_extension_table("shapes", sf_shapes_relid, RowExclusiveLock);
	sf_check_no_indexes(rel);

	ScanKeyInit(&skey[0], Anum_shapes_relid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ftrelid));
	ScanKeyInit(&skey[1], Anum_shapes_shape, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(shape));
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 2, skey);
	exists = heap_getnext(scan, ForwardScanDirection) != NULL;
	table_endscan(scan);
	UnregisterSnapshot(snapshot);

	if (!exists)
	{
		SfShapeColumns c;
		int			ncols;
		Datum		values[Natts_shapes];
		bool		nulls[Natts_shapes] = {false};
		HeapTuple	tup;

		fill(arg, &c);
		ncols = c.ncols;
		values[Anum_shapes_relid - 1] = ObjectIdGetDatum(ftrelid);
		values[Anum_shapes_shape - 1] = Int64GetDatum(shape);
		values[Anum_shapes_columns - 1] =
			PointerGetDatum(construct_array(c.names, ncols, TEXTOID, -1, false, TYPALIGN_INT));
		values[Anum_shapes_types - 1] =
			PointerGetDatum(construct_array(c.types, ncols, TEXTOID, -1, false, TYPALIGN_INT));
		values[Anum_shapes_registered - 1] = TimestampTzGetDatum(GetCurrentTimestamp());
		values[Anum_shapes_type_oids - 1] =
			PointerGetDatum(construct_array(c.oids, ncols, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
		values[Anum_shapes_type_mods - 1] =
			PointerGetDatum(construct_array(c.mods, ncols, INT4OID, sizeof(int32), true, TYPALIGN_INT));
		values[Anum_shapes_type_lens - 1] =
			PointerGetDatum(construct_array(c.lens, ncols, INT2OID, sizeof(int16), true, TYPALIGN_SHORT));
		values[Anum_shapes_type_byvals - 1] =
			PointerGetDatum(construct_array(c.byvals, ncols, BOOLOID, sizeof(bool), true, TYPALIGN_CHAR));
		values[Anum_shapes_type_aligns - 1] =
			PointerGetDatum(construct_array(c.aligns, ncols, CHAROID, sizeof(char), true, TYPALIGN_CHAR));
		tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
		simple_heap_insert(rel, tup);
		heap_freetuple(tup);
		/* make it visible to later commands of this transaction */
		CommandCounterIncrement();
	}
	table_close(rel, NoLock);

	hash_search(known_shapes, &key, HASH_ENTER, NULL);
}

/* Deconstruct a one-dimensional array column of a sfexport.shapes row. */
static Datum *
shape_array(HeapTuple tup, TupleDesc desc, int attnum, Oid elemtype, int *count)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, attnum, desc, &isnull);
	int16		typlen;
	bool		typbyval;
	char		typalign;
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (isnull)
		return NULL;
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(DatumGetArrayTypeP(d), elemtype, typlen, typbyval, typalign,
					  &elems, &nulls, &n);
	if (*count >= 0 && n != *count)
		return NULL;
	*count = n;
	for (int i = 0; i < n; i++)
		if (nulls[i])
			return NULL;
	return elems;
}

/*
 * The recorded columns and types of (relid, shape), for decoding binary
 * payloads (encode.c).  Allocated in the current memory context.
 */
SfShapeLayout *
sf_shape_layout(Oid relid, int64 shape)
{
	Relation	rel = sf_open_extension_table("shapes", sf_shapes_relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	ScanKeyData skey[2];
	TableScanDesc scan;
	Snapshot	snapshot;
	HeapTuple	tup;
	SfShapeLayout *lay = palloc0(sizeof(SfShapeLayout));
	Datum	   *names;
	Datum	   *oids = NULL;
	Datum	   *mods = NULL;
	Datum	   *lens = NULL;
	Datum	   *byvals = NULL;
	Datum	   *aligns = NULL;

	ScanKeyInit(&skey[0], Anum_shapes_relid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&skey[1], Anum_shapes_shape, BTEqualStrategyNumber, F_INT8EQ,
				Int64GetDatum(shape));
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 2, skey);
	tup = heap_getnext(scan, ForwardScanDirection);
	if (tup == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("no column shape registered for foreign table %u shape " INT64_FORMAT,
						relid, shape),
				 errhint("Rows of this shape stay in the outbox; check sfexport.shapes.")));

	lay->ncols = -1;
	names = shape_array(tup, desc, Anum_shapes_columns, TEXTOID, &lay->ncols);
	if (names)
	{
		oids = shape_array(tup, desc, Anum_shapes_type_oids, OIDOID, &lay->ncols);
		mods = shape_array(tup, desc, Anum_shapes_type_mods, INT4OID, &lay->ncols);
		lens = shape_array(tup, desc, Anum_shapes_type_lens, INT2OID, &lay->ncols);
		byvals = shape_array(tup, desc, Anum_shapes_type_byvals, BOOLOID, &lay->ncols);
		aligns = shape_array(tup, desc, Anum_shapes_type_aligns, CHAROID, &lay->ncols);
	}
	if (!names || !oids || !mods || !lens || !byvals || !aligns)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the registered shape " INT64_FORMAT " of foreign table %u lacks its type layout",
						shape, relid),
				 errdetail("sfexport.shapes must hold one type OID, typmod, typlen, typbyval and typalign per column."),
				 errhint("Rows of this shape stay in the outbox; check sfexport.shapes.")));

	lay->names = palloc(sizeof(char *) * Max(lay->ncols, 1));
	lay->oids = palloc(sizeof(Oid) * Max(lay->ncols, 1));
	lay->typmods = palloc(sizeof(int32) * Max(lay->ncols, 1));
	lay->lens = palloc(sizeof(int16) * Max(lay->ncols, 1));
	lay->byvals = palloc(sizeof(bool) * Max(lay->ncols, 1));
	lay->aligns = palloc(sizeof(char) * Max(lay->ncols, 1));
	for (int i = 0; i < lay->ncols; i++)
	{
		lay->names[i] = TextDatumGetCString(names[i]);
		lay->oids[i] = DatumGetObjectId(oids[i]);
		lay->typmods[i] = DatumGetInt32(mods[i]);
		lay->lens[i] = DatumGetInt16(lens[i]);
		lay->byvals[i] = DatumGetBool(byvals[i]);
		lay->aligns[i] = DatumGetChar(aligns[i]);
	}
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return lay;
}

/*
 * The columns and types (text[], as the manifest records them) of a shape,
 * from sfexport.shapes; with SPI connected, the results in the upper
 * executor context (SPI_datumTransfer).
 */
void
sf_shape_columns(Oid relid, int64 shape, Datum *columns, Datum *types)
{
	Oid			argtypes[2] = {OIDOID, INT8OID};
	Datum		values[2] = {ObjectIdGetDatum(relid), Int64GetDatum(shape)};
	bool		isnull;

	if (SPI_execute_with_args("SELECT columns, types FROM sfexport.shapes"
							  " WHERE relid = $1 AND shape = $2 LIMIT 1",
							  2, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.shapes");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("no column shape registered for foreign table %u shape " INT64_FORMAT,
						relid, shape),
				 errhint("Rows of this shape stay in the outbox; check sfexport.shapes.")));
	*columns = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
											   SPI_tuptable->tupdesc, 1, &isnull),
								 false, -1);
	*types = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0],
											 SPI_tuptable->tupdesc, 2, &isnull),
							   false, -1);
}
