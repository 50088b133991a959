/*-------------------------------------------------------------------------
 *
 * sfexport.c
 *		Module entry point: _PG_init, the sfexport.* GUCs, and the check that
 *		the library was loaded through shared_preload_libraries.
 *
 * Capture (the foreign-data wrapper and the outbox) works whether or not the
 * library is preloaded.  Only the background worker, which ships the outbox
 * to storage and Snowflake, needs shared_preload_libraries.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/wait_event.h"

#include "sfexport.h"

PG_MODULE_MAGIC_EXT(.name = "sfexport", .version = SFEXPORT_VERSION);

/* GUC storage; defaults documented in README.md */
int			sfexport_flush_interval_s = 600;
int			sfexport_snowpipe_poll_interval_ms = 10 * 1000;
int			sfexport_snowpipe_report_deadline_s = 300;
int			sfexport_flush_size_kb = 64 * 1024;
int			sfexport_max_file_size_kb = 200 * 1024;
int			sfexport_max_workers = 4;
int			sfexport_batch_size = 1000;
bool		sfexport_capture_binary = true;
int			sfexport_jwt_lifetime_s = 3540;

/* true when loaded by the postmaster from shared_preload_libraries */
bool		sfexport_preloaded = false;

void		_PG_init(void);

void
_PG_init(void)
{
	sfexport_preloaded = process_shared_preload_libraries_in_progress;

	DefineCustomIntVariable("sfexport.flush_interval",
							"Longest time rows wait in the outbox before a flush.",
							"Overridden per server or foreign table by the flush_interval option.",
							&sfexport_flush_interval_s,
							600, 1, 7 * 24 * 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sfexport.flush_size",
							"Pending bytes of one foreign table that trigger an early flush.",
							"Overridden per server or foreign table by the flush_size option.",
							&sfexport_flush_size_kb,
							64 * 1024, 1, INT_MAX / 2,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sfexport.max_file_size",
							"Largest compressed size of one staged file.",
							"Snowflake recommends files of about 100-250 MB compressed.",
							&sfexport_max_file_size_kb,
							200 * 1024, 1024, INT_MAX / 2,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sfexport.snowpipe_poll_interval",
							"How often the worker asks Snowpipe for the outcome of submitted files.",
							"insertReport keeps events for about 10 minutes.",
							&sfexport_snowpipe_poll_interval_ms,
							10 * 1000, 100, 600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sfexport.snowpipe_report_deadline",
							"Time after which a submitted file not seen in insertReport is looked up with loadHistoryScan.",
							"A file found nowhere is submitted again; Snowpipe skips a file it loaded.",
							&sfexport_snowpipe_report_deadline_s,
							300, 1, 7 * 24 * 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* a PGC_POSTMASTER variable can only be defined at server start */
	if (sfexport_preloaded)
		DefineCustomIntVariable("sfexport.max_workers",
								"Largest number of per-database export workers running at once.",
								NULL,
								&sfexport_max_workers,
								4, 1, 64,
								PGC_POSTMASTER,
								0,
								NULL, NULL, NULL);

	DefineCustomIntVariable("sfexport.batch_size",
							"Rows buffered per outbox write by INSERT and COPY.",
							"The rows are written before the statement ends either way. "
							"The batch_size option of a table or server is the separate "
							"executor batch size (ExecForeignBatchInsert).",
							&sfexport_batch_size,
							1000, 1, 10000,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("sfexport.capture_binary",
							 "Store captured rows in binary form where the worker can render them.",
							 "When on, rows whose column types the worker renders safely are stored "
							 "as binary tuples and turned into CSV by the worker; everything else, "
							 "and every row when off, is encoded to CSV at INSERT.",
							 &sfexport_capture_binary,
							 true,
							 PGC_USERSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("sfexport.jwt_lifetime",
							"Lifetime of the key-pair JWTs sent to Snowflake.",
							"Snowflake honours a token for at most one hour; tokens are "
							"renewed a few minutes before they expire.",
							&sfexport_jwt_lifetime_s,
							3540, 10, 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sfexport.launcher_naptime",
							"How often the launcher looks for databases that gained the extension.",
							"CREATE EXTENSION sfexport wakes the launcher at once; this is the "
							"fallback, and the delay before a stopped worker is restarted.",
							&sfexport_launcher_naptime_s,
							60, 1, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sfexport.manifest_retention",
							"How long rows of loaded files are kept in sfexport.files.",
							"0 keeps them forever.",
							&sfexport_manifest_retention_s,
							7 * 24 * 3600, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	sf_storage_define_gucs();
	sf_sweep_define_gucs();

	MarkGUCPrefixReserved("sfexport");

	sf_outbox_init();

	/* the launcher and its shared memory exist only when preloaded */
	if (sfexport_preloaded && !IsBinaryUpgrade)
	{
		sf_launcher_request_shmem();
		sf_launcher_register();
	}
}

/*
 * The wait event to pass to WaitLatch for a kind of wait.  From PostgreSQL 17
 * on each has its own name in pg_stat_activity.wait_event (custom wait
 * events of type Extension, allocated in shared memory on first use and
 * cached per process); before 17 they are all "Extension".
 */
uint32
sf_wait_event(SfWaitEvent which)
{
	static const char *const names[] = {
		[SF_WAIT_LAUNCHER_MAIN] = "SfexportLauncherMain",
		[SF_WAIT_WORKER_MAIN] = "SfexportWorkerMain",
		[SF_WAIT_HTTP_BACKOFF] = "SfexportHttpBackoff",
		[SF_WAIT_SNOWFLAKE_POLL] = "SfexportSnowflakePoll",
		[SF_WAIT_GLUE_BACKOFF] = "SfexportGlueBackoff",
	};
	static uint32 ids[lengthof(names)];

	Assert(which >= 0 && which < lengthof(names));
	if (ids[which] == 0)
		ids[which] = WaitEventExtensionNew(names[which]);
	return ids[which];
}

/*
 * Error out, with a hint, when something needs the background worker but the
 * library was not preloaded.
 */
void
sfexport_require_preload(const char *what)
{
	if (!sfexport_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s requires sfexport to be loaded through shared_preload_libraries",
						what),
				 errhint("Add sfexport to shared_preload_libraries in postgresql.conf and restart the server.")));
}
