/*-------------------------------------------------------------------------
 *
 * memory.h
 *		Memory helpers: hash tables kept in a memory context (memory.c;
 *		base layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_MEMORY_H
#define SF_MEMORY_H

#include "utils/hsearch.h"
#include "utils/palloc.h"

extern HTAB *sf_hash_create(const char *name, long nelem, Size keysize,
							Size entrysize, MemoryContext cxt);

#endif							/* SF_MEMORY_H */
