/*-------------------------------------------------------------------------
 *
 * tables.c
 *		The extension's own tables as the C code reaches them: the OIDs of
 *		sfexport.outbox, its segments, sfexport.shapes and the sequence
 *		sfexport.track_seq, cached with invalidation, and opened only once
 *		their name is checked.
 *
 * The insert path writes these tables through the table AM, without SQL
 * (outbox.c, shapes.c), so a statement must not pay a catalog lookup by
 * name: the OIDs are looked up once and kept until an invalidation of one
 * of the relations (DROP EXTENSION, a rewrite) or of any namespace (ALTER
 * SCHEMA ... RENAME) ("Caches and invalidation" in docs/ARCHITECTURE.md).
 * Neither table may have indexes: nothing maintains them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "storage/lmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "sfexport.h"

#include "shmem.h"
#include "tables.h"

static Oid	cached_outbox_relid = InvalidOid;
static Oid	cached_shapes_relid = InvalidOid;
static Oid	cached_track_seq_relid = InvalidOid;
static Oid	cached_schema_oid = InvalidOid;
static Oid	cached_segment_relids[SF_OUTBOX_SEGMENTS];

static void
forget_relids(void)
{
	cached_outbox_relid = InvalidOid;
	cached_shapes_relid = InvalidOid;
	cached_track_seq_relid = InvalidOid;
	cached_schema_oid = InvalidOid;
	for (int i = 0; i < SF_OUTBOX_SEGMENTS; i++)
		cached_segment_relids[i] = InvalidOid;
}

static void
relids_relcache_callback(Datum arg, Oid relid)
{
	bool		ours = !OidIsValid(relid) || relid == cached_outbox_relid ||
		relid == cached_shapes_relid || relid == cached_track_seq_relid;

	for (int i = 0; i < SF_OUTBOX_SEGMENTS; i++)
		ours |= relid == cached_segment_relids[i];
	if (ours)
		forget_relids();
}

static void
relids_syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	forget_relids();
}

/* Called once from _PG_init. */
void
sf_tables_init(void)
{
	CacheRegisterRelcacheCallback(relids_relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(NAMESPACEOID, relids_syscache_callback, (Datum) 0);
}

/* The OID of schema sfexport (cached like the tables'), or InvalidOid. */
static Oid
schema_oid(void)
{
	if (!OidIsValid(cached_schema_oid))
		cached_schema_oid = get_namespace_oid(SFEXPORT_SCHEMA, true);
	return cached_schema_oid;
}

static Oid
extension_table_relid(const char *name, bool missing_ok)
{
	Oid			nsp = schema_oid();
	Oid			relid = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;

	if (!OidIsValid(relid) && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table %s.%s does not exist", SFEXPORT_SCHEMA, name),
				 errhint("Run CREATE EXTENSION sfexport in this database.")));
	return relid;
}

Oid
sf_outbox_relid(bool missing_ok)
{
	if (!OidIsValid(cached_outbox_relid))
		cached_outbox_relid = extension_table_relid("outbox", missing_ok);
	return cached_outbox_relid;
}

Oid
sf_shapes_relid(void)
{
	if (!OidIsValid(cached_shapes_relid))
		cached_shapes_relid = extension_table_relid("shapes", false);
	return cached_shapes_relid;
}

/* sfexport.track_seq, which numbers the changes of tracked tables (track.c) */
Oid
sf_track_seq_relid(void)
{
	if (!OidIsValid(cached_track_seq_relid))
		cached_track_seq_relid = extension_table_relid("track_seq", false);
	return cached_track_seq_relid;
}

/*
 * Open sfexport.<name> by its cached OID, checking that the OID still names
 * it (an invalidation not yet processed could leave a stale one); on a
 * mismatch look it up again.
 */
Relation
sf_open_extension_table(const char *name, Oid (*lookup) (void), LOCKMODE lockmode)
{
	Oid			relid = lookup();
	Relation	rel = try_table_open(relid, lockmode);

	if (rel == NULL ||
		strcmp(RelationGetRelationName(rel), name) != 0 ||
		schema_oid() != RelationGetNamespace(rel))
	{
		if (rel)
			table_close(rel, lockmode);
		forget_relids();
		relid = lookup();
		rel = table_open(relid, lockmode);
	}
	return rel;
}

/* sfexport.outbox_<seg>, a segment of the outbox (cached like the others). */
Oid
sf_outbox_segment_relid(int seg, bool missing_ok)
{
	char		name[NAMEDATALEN];

	Assert(seg >= 0 && seg < SF_OUTBOX_SEGMENTS);
	if (OidIsValid(cached_segment_relids[seg]))
		return cached_segment_relids[seg];
	snprintf(name, sizeof(name), "outbox_%d", seg);
	cached_segment_relids[seg] = extension_table_relid(name, missing_ok);
	return cached_segment_relids[seg];
}

/*
 * Open a segment already locked through a cached OID; NULL if the OID no
 * longer names it (the extension was dropped and created again and the
 * invalidation arrived with the lock): the caller looks it up again.
 */
Relation
sf_open_locked_segment(Oid relid, int seg)
{
	Relation	rel = try_table_open(relid, NoLock);
	const char *name = rel ? RelationGetRelationName(rel) : NULL;

	StaticAssertStmt(SF_OUTBOX_SEGMENTS <= 10, "segment names have one digit");
	/* "outbox_<seg>": once per statement, so without snprintf */
	if (rel != NULL && strncmp(name, "outbox_", 7) == 0 &&
		name[7] == '0' + seg && name[8] == '\0' &&
		schema_oid() == RelationGetNamespace(rel))
		return rel;
	if (rel)
		table_close(rel, NoLock);
	UnlockRelationOid(relid, RowExclusiveLock);
	forget_relids();
	return NULL;
}

/* Refuse to write a table whose indexes we would not maintain. */
void
sf_check_no_indexes(Relation rel)
{
	if (rel->rd_rel->relhasindex)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s.%s\" must not have indexes",
						SFEXPORT_SCHEMA, RelationGetRelationName(rel)),
				 errhint("Drop the indexes created on it.")));
}
