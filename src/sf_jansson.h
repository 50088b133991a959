/*-------------------------------------------------------------------------
 *
 * sf_jansson.h
 *		Include jansson next to PostgreSQL headers.
 *
 * jansson's json_object() clashes with the declaration of PostgreSQL's SQL
 * function json_object() in utils/fmgrprotos.h.  Files that use jansson
 * include this header right after postgres.h: it pulls in fmgrprotos.h with
 * the PostgreSQL name renamed (it is never called from C), then jansson.
 * It also declares the helpers of sf_jansson.c (protocols layer,
 * docs/ARCHITECTURE.md).
 *
 * The clash exists at run time too: the postgres executable exports a
 * json_object symbol, and a call to json_object() from the extension binds
 * to it (and crashes).  Create empty objects with json_pack("{}") instead.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_JANSSON_H
#define SF_JANSSON_H

#define json_object pg_sql_json_object_unused
#include "utils/fmgrprotos.h"
#undef json_object

#include <jansson.h>

extern json_t *sf_json_tracked(json_t *j);
extern char *sf_json_string(json_t *obj, const char *key);
extern char *sf_json_dumps(json_t *j);

#endif							/* SF_JANSSON_H */
