/*-------------------------------------------------------------------------
 *
 * file_size.h
 *		Files of the size Snowflake wants: the compression ratio of recent
 *		files per table, and the pending outbox bytes that make a table due
 *		(file_size.c; pipeline layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_FILE_SIZE_H
#define SF_FILE_SIZE_H

#include "compress.h"
#include "config.h"

extern void sf_file_size_note(Oid relid, SfCompression compression,
							  int64 outbox_bytes, int64 file_bytes);
extern void sf_file_size_seed(void);
extern double sf_file_size_ratio(Oid relid, SfCompression compression);
extern int64 sf_file_size_due_bytes(const SfTableConfig *cfg);

#endif							/* SF_FILE_SIZE_H */
