/*-------------------------------------------------------------------------
 *
 * hashtab.c
 *		Memory helpers shared by the modules.
 *
 * The backends' and workers' caches (the encoder cache, known shapes,
 * backoffs, schedules) are dynahash tables keyed by a fixed-size blob (an
 * OID or a small struct) and kept in a memory context that outlives one
 * statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "hashtab.h"

/*
 * A hash table of entries of entrysize bytes keyed by their first keysize
 * bytes (compared as bytes), allocated below cxt.
 */
HTAB *
sf_hash_create(const char *name, long nelem, Size keysize, Size entrysize,
			   MemoryContext cxt)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = cxt;
	return hash_create(name, nelem, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}
