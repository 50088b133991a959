/*-------------------------------------------------------------------------
 *
 * elevated.c
 *		What code that runs with more rights than its caller relies on: a
 *		search_path nobody else chose, and the role switch to the owner of
 *		an extension table.
 *
 * Two kinds of sfexport code run SQL with rights their caller lacks:
 *
 *	- the launcher and the export workers, which connect as the bootstrap
 *	  superuser.  They run with search_path = pg_catalog, pg_temp for their
 *	  whole life (sf_lock_search_path, right after connecting): a
 *	  process-level setting that ALTER DATABASE / ALTER ROLE ... SET, a
 *	  function's SET clause or a reload cannot change.  A function or
 *	  operator that some role created in public (public.make_interval(secs
 *	  int), an exact match where pg_catalog's needs a cast) is then never
 *	  found, whatever the SQL text says;
 *	- glue_sync's state (glue_periodic.c), read and written as the owner of
 *	  sfexport.glue_sync_state by any caller of glue_sync (sf_elevated_begin
 *	  / sf_elevated_end): the owner's rights, SECURITY_RESTRICTED_OPERATION,
 *	  and search_path = pg_catalog, pg_temp at a new GUC nest level, so that
 *	  the caller's search_path (say "public, pg_catalog" and a public.now())
 *	  is not the one the owner's statements resolve names in.
 *
 * The SQL texts such code runs are schema-qualified as well (functions,
 * casts, pg_catalog tables; OPERATOR(pg_catalog.=) where a caller's types
 * meet ours), so that they mean the same thing read anywhere.  This is the
 * rule of the PostgreSQL documentation for SECURITY DEFINER functions
 * ("Writing SECURITY DEFINER Functions Safely") applied to C code, and what
 * the server itself does around maintenance commands (RestrictSearchPath).
 *
 * What else of other roles' making the worker could run: type output
 * functions, when it renders binary rows (encode.c), are built in or a
 * superuser's (only superusers create base types; domains, enums, ranges
 * and composites output through built-in functions); no trigger, rule or
 * policy fires, as it writes only the extension's own tables, which only
 * their owner could give one; type names it reads (sfexport.shapes.types)
 * are parsed, never executed (statements.c).  The one SQL-level role switch is
 * glue_sync's state, and sfexport.orphans() reads the manifest the same way
 * (sweep.c: a server's owner may list its orphans without SELECT on
 * sfexport.files); the one SECURITY DEFINER function is sfexport.retry(),
 * with its own SET search_path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "sfexport.h"

#include "elevated.h"

/*
 * For the launcher and workers, right after connecting: search_path is
 * pg_catalog, pg_temp for the rest of the process.  PGC_S_OVERRIDE outranks
 * every other source (database and role settings applied while connecting,
 * SET, a function's SET clause), and it is the reset value too.
 */
void
sf_lock_search_path(void)
{
	SetConfigOption("search_path", SF_SAFE_SEARCH_PATH, PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * Switch to role (the owner of an extension table) for SQL run on behalf of
 * a caller who may not have its rights: SECURITY_RESTRICTED_OPERATION, and
 * search_path = pg_catalog, pg_temp at a new GUC nest level.  Always pair
 * with sf_elevated_end, also on error (PG_FINALLY).
 */
void
sf_elevated_begin(SfElevated *e, Oid role)
{
	GetUserIdAndSecContext(&e->saved_user, &e->saved_sec);
	SetUserIdAndSecContext(role, e->saved_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	e->nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", SF_SAFE_SEARCH_PATH,
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
}

/*
 * Back to the caller's role and search_path.  commit is false on the error
 * path (as for AtEOXact_GUC); the saved setting is restored either way.
 */
void
sf_elevated_end(SfElevated *e, bool commit)
{
	AtEOXact_GUC(commit, e->nestlevel);
	SetUserIdAndSecContext(e->saved_user, e->saved_sec);
}

/*
 * The owner of the extension table sfexport.<relname> (usually the
 * superuser who created the extension): whom sf_elevated_begin switches to
 * for statements on that table.
 */
Oid
sf_extension_table_owner(const char *relname)
{
	Oid			relid = get_relname_relid(relname,
										  get_namespace_oid(SFEXPORT_SCHEMA, false));
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table %s.%s does not exist", SFEXPORT_SCHEMA, relname)));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}
