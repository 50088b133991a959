/*-------------------------------------------------------------------------
 *
 * hashtab.h
 *		Memory helpers: hash tables kept in a memory context (hashtab.c;
 *		base layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_HASHTAB_H
#define SF_HASHTAB_H

#include "utils/hsearch.h"
#include "utils/palloc.h"

extern HTAB *sf_hash_create(const char *name, long nelem, Size keysize,
							Size entrysize, MemoryContext cxt);

#endif							/* SF_HASHTAB_H */
