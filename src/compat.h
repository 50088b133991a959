/*-------------------------------------------------------------------------
 *
 * compat.h
 *		PostgreSQL version differences, in one place.
 *
 * sfexport supports PostgreSQL 15, 16, 17 and 18 (README.md, "Supported
 * PostgreSQL versions").  Anything that differs between those server
 * versions is wrapped here, named after the newest API, so that the rest of
 * the code reads as if written for PostgreSQL 18 and no other file tests
 * PG_VERSION_NUM.  Each shim says in which release the API changed; the
 * release notes and the server source of that branch are the reference.
 *
 * This header is included by sfexport.h after postgres.h.  It includes the
 * server headers whose functions it replaces, so that a later #include of
 * one of them cannot redeclare a function under a shim's name.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SFEXPORT_COMPAT_H
#define SFEXPORT_COMPAT_H

#if PG_VERSION_NUM < 150000 || PG_VERSION_NUM >= 190000
#error "sfexport supports PostgreSQL 15, 16, 17 and 18 only: build it with the pg_config of one of those (make PG_CONFIG=/path/to/pg_config)"
#endif

#include "access/htup_details.h"
#include "common/base64.h"
#include "fmgr.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/wait_event.h"

/*
 * 16 replaced the per-catalog permission checks (pg_foreign_server_aclcheck,
 * pg_foreign_server_ownercheck, ...) by object_aclcheck and
 * object_ownercheck, which take the catalog's OID (src/include/utils/acl.h
 * of REL_16_STABLE).  15 has only the per-catalog ones.  The shims cover the
 * catalogs sfexport checks (foreign servers; the ownership of databases),
 * and their static assertions keep it so: classid is always a constant.
 */
#if PG_VERSION_NUM < 160000
#include "catalog/pg_database.h"
#include "catalog/pg_foreign_server.h"

#define object_aclcheck(classid, objectid, roleid, mode) \
	(StaticAssertExpr((classid) == ForeignServerRelationId, \
					  "the PostgreSQL 15 shim of object_aclcheck covers foreign servers only"), \
	 pg_foreign_server_aclcheck((objectid), (roleid), (mode)))
#define object_ownercheck(classid, objectid, roleid) \
	(StaticAssertExpr((classid) == ForeignServerRelationId || (classid) == DatabaseRelationId, \
					  "the PostgreSQL 15 shim of object_ownercheck covers foreign servers and databases only"), \
	 (classid) == DatabaseRelationId ? pg_database_ownercheck((objectid), (roleid)) \
	 : pg_foreign_server_ownercheck((objectid), (roleid)))
#endif

/*
 * 16 introduced soft errors (nodes/miscnodes.h): parseTypeString takes an
 * ErrorSaveContext instead of its "missing_ok" flag and returns false where
 * 15 set the type to InvalidOid.  On both, a type that does not exist is not
 * an error, and a name the parser rejects still raises one.
 */
#if PG_VERSION_NUM < 160000
typedef struct ErrorSaveContext
{
	NodeTag		type;
	bool		error_occurred;
	bool		details_wanted;
	ErrorData  *error_data;
} ErrorSaveContext;

/* 15 has no node tag for it; no 15 code looks at it */
#define T_ErrorSaveContext T_Invalid

static inline bool
sf_compat_parseTypeString(const char *str, Oid *typeid_p, int32 *typmod_p,
						  Node *escontext)
{
	parseTypeString(str, typeid_p, typmod_p, escontext != NULL);
	if (OidIsValid(*typeid_p))
		return true;
	if (escontext)
		((ErrorSaveContext *) escontext)->error_occurred = true;
	return false;
}
#define parseTypeString sf_compat_parseTypeString
#else
#include "nodes/miscnodes.h"
#endif

/*
 * 17 added custom wait events (WaitEventExtensionNew): a process waiting in
 * sfexport shows its own wait event name in pg_stat_activity.  Before 17
 * every extension wait is PG_WAIT_EXTENSION ("Extension").
 */
#if PG_VERSION_NUM < 170000
#define WaitEventExtensionNew(wait_event_name) ((void) (wait_event_name), PG_WAIT_EXTENSION)
#endif

/*
 * 18 split commands/explain.h: ExplainState is in commands/explain_state.h,
 * ExplainPropertyText and the other output functions in
 * commands/explain_format.h.
 */
#if PG_VERSION_NUM >= 180000
#include "commands/explain_format.h"
#include "commands/explain_state.h"
#else
#include "commands/explain.h"
#endif

/*
 * 18 gave heap_form_minimal_tuple an "extra" argument: bytes to allocate
 * after the tuple.  Before 18 there are none.
 */
#if PG_VERSION_NUM < 180000
#define heap_form_minimal_tuple(tupdesc, values, isnull, extra) \
	(StaticAssertExpr((extra) == 0, "no extra bytes before PostgreSQL 18"), \
	 heap_form_minimal_tuple((tupdesc), (values), (isnull)))
#endif

/*
 * 18 types the binary side of the base64 routines as uint8 (bytes) instead
 * of char.  (sfexport encodes only.)
 */
#if PG_VERSION_NUM < 180000
static inline int
sf_compat_pg_b64_encode(const uint8 *src, int len, char *dst, int dstlen)
{
	return pg_b64_encode((const char *) src, len, dst, dstlen);
}
#define pg_b64_encode sf_compat_pg_b64_encode
#endif

/*
 * 18 replaced pg_attribute_noreturn(), written after the declarator, by
 * pg_noreturn, written before the declaration (C11 _Noreturn).  GCC and
 * clang take the attribute in front as well.
 */
#if PG_VERSION_NUM < 180000
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * 18 added PG_MODULE_MAGIC_EXT: the magic block names the module and its
 * version (pg_get_loaded_modules()).  Before 18, the plain magic block.
 */
#if PG_VERSION_NUM < 180000
#define PG_MODULE_MAGIC_EXT(...) PG_MODULE_MAGIC
#endif

#endif							/* SFEXPORT_COMPAT_H */
