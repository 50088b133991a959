/*-------------------------------------------------------------------------
 *
 * sql_worker.c
 *		SQL functions that talk to the background processes:
 *		sfexport.flush() and sfexport._launcher_wakeup() (shmem.c holds the
 *		requests).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_database.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"

#include "sfexport.h"

#include "shmem.h"

PG_FUNCTION_INFO_V1(sfexport_flush);
PG_FUNCTION_INFO_V1(sfexport_launcher_wakeup);

/*
 * Whether the current role may have sfexport.flush() cut the backoffs of
 * failed flushes and loads short: superusers and the owner of the database
 * (or a member of the owning role).  Anyone else's flush() is honoured
 * with the backoffs as they are: cutting them makes the worker run failing
 * COPYs again at once, and in a loop that keeps a warehouse busy (credits)
 * for everybody's tables.  A table's owner re-queues its own files with
 * sfexport.retry(), which also ends their load backoff.
 */
static bool
may_cut_backoffs(void)
{
	return object_ownercheck(DatabaseRelationId, MyDatabaseId, GetUserId());
}

/*
 * sfexport.flush(): ask this database's worker to flush and load everything
 * pending now, without waiting for flush_interval or flush_size; for a
 * privileged caller (may_cut_backoffs) also without waiting out backoffs.
 */
Datum
sfexport_flush(PG_FUNCTION_ARGS)
{
	sf_require_preload("sfexport.flush()");
	PG_RETURN_BOOL(sf_request_flush(may_cut_backoffs()));
}

/*
 * sfexport._launcher_wakeup(): called by CREATE EXTENSION so that the new
 * database gets its worker at once.  A no-op without shared_preload_libraries.
 */
Datum
sfexport_launcher_wakeup(PG_FUNCTION_ARGS)
{
	sf_request_rescan();
	PG_RETURN_VOID();
}
