/*-------------------------------------------------------------------------
 *
 * file_names.h
 *		The names of staged files (file_names.c; model layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_FILE_NAMES_H
#define SF_FILE_NAMES_H

#include "datatype/timestamp.h"

#include "compress.h"

extern char *sf_new_file_name(Oid relid, SfCompression compression);
extern bool sf_parse_file_name(const char *name, Oid *dboid, TimestampTz *at,
							   uint64 *sysid);

#endif							/* SF_FILE_NAMES_H */
