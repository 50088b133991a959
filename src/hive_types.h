/*-------------------------------------------------------------------------
 *
 * hive_types.h
 *		Hive type strings (Glue column types) to Snowflake types
 *		(hive_types.c; protocols layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_HIVE_TYPES_H
#define SF_HIVE_TYPES_H

typedef enum SfHiveKind
{
	SF_HIVE_PRIMITIVE,
	SF_HIVE_ARRAY,
	SF_HIVE_MAP,
	SF_HIVE_STRUCT,
	SF_HIVE_UNION
} SfHiveKind;

typedef struct SfHiveType
{
	SfHiveKind	kind;
	char	   *snowflake;		/* Snowflake type: VARCHAR, NUMBER(10,0), ARRAY ... */
} SfHiveType;

extern bool sf_hive_parse_type(const char *hive, SfHiveType *out, char **error);

#endif							/* SF_HIVE_TYPES_H */
