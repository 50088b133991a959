/*-------------------------------------------------------------------------
 *
 * load.c
 *		Load staged files into Snowflake and record what happened.
 *
 * Files in state 'staged' are loaded with
 *
 *	COPY INTO <target> (<columns>)
 *	  FROM (SELECT $1, PARSE_JSON($2), ... FROM @<stage>)
 *	  FILES = ('<name>', ...)				-- at most 1000, never a pattern
 *	  FILE_FORMAT = (FORMAT_NAME = '<file format>')
 *	  ON_ERROR = SKIP_FILE LOAD_UNCERTAIN_FILES = TRUE
 *
 * grouped by server, target and column shape.  ON_ERROR = SKIP_FILE makes
 * every file all-or-nothing: a file with a bad row is LOAD_FAILED, loads
 * nothing and blocks nothing else, and can be loaded again after the cause
 * is fixed (sfexport.retry) without duplicating anything.
 *
 * Each file's result row sets its manifest state ('loaded' or 'failed').
 * Snowflake's load metadata makes re-running COPY on a file it already
 * loaded harmless: such a file is skipped and absent from the result (or the
 * result is the single "Copy executed with 0 files processed." row).  So a
 * crash between a successful COPY and recording its result is resolved by
 * running the same COPY again and reading an absent file as "loaded before"
 * (Snowflake docs, COPY INTO <table>, FILES and load metadata; "Loading
 * data").  A COPY that fails as a whole (422: missing table, privileges,
 * ...) leaves its files 'staged' with the error and a backoff.
 *
 * Uncertain files (docs/reliability.md, "Files Snowflake may skip").  Load
 * metadata expires after 64 days, and COPY silently skips a file whose load
 * status it no longer knows: LAST_MODIFIED older than 64 days, the table's
 * first load older than 64 days, and no load of the file in the last 64
 * days ("COPY INTO <table>", LOAD_UNCERTAIN_FILES).  A file left staged or
 * failed that long would be absent from the result without having been
 * loaded.  So the manifest records, in in_doubt_since, when the first COPY
 * naming the file whose outcome is not known was sent (committed before the
 * COPY goes out; cleared when an outcome is recorded, when the attempt
 * failed before its COPY went out, or when Snowflake rejected the
 * statement, which then changed nothing).  Every COPY carries
 * LOAD_UNCERTAIN_FILES = TRUE, which loads such files and still skips any
 * file with unexpired load metadata.  That is safe for a file only while
 * every COPY that may have loaded it is younger than the metadata, which is
 * what in_doubt_since tells: NULL (none could have), or less than
 * SF_LOAD_METADATA_SAFE_DAYS ago.  Then "absent" still means "loaded
 * before".  A file whose doubt is older is not sent to COPY: Snowflake's
 * ACCOUNT_USAGE.LOAD_HISTORY (365 days) says whether that COPY loaded it
 * (resolve_doubt); if it did, the file is recorded as loaded, otherwise the
 * doubt is cleared and the next COPY loads it.
 *
 * Loaded files are then deleted from storage unless the server keeps them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "evolve.h"
#include "load.h"
#include "snowflake.h"
#include "snowpipe.h"
#include "statements.h"
#include "storage.h"
#include "transaction.h"

/* GUCs (README.md, Configuration) */
int			sfexport_manifest_retention_s = 7 * 24 * 3600;
int			sfexport_snowpipe_report_deadline_s = 300;

/* From _PG_init: how long loaded files are remembered, and when Snowpipe's load history is asked. */
void
sf_load_define_gucs(void)
{
	DefineCustomIntVariable("sfexport.snowpipe_report_deadline",
							"Time after which a submitted file not seen in insertReport is looked up with loadHistoryScan.",
							"A file found nowhere is submitted again; Snowpipe skips a file it loaded.",
							&sfexport_snowpipe_report_deadline_s,
							300, 1, 7 * 24 * 3600,
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
}

#define MAX_FILES_PER_COPY	1000	/* Snowflake's limit for FILES = (...) */

/*
 * Load metadata expires after 64 days (Snowflake docs, "Loading data",
 * "Loading older files"); a COPY that may have loaded a file longer ago
 * than this (a margin for clocks) is checked in the load history instead.
 */
#define SF_LOAD_METADATA_SAFE_DAYS	60
/* ACCOUNT_USAGE.LOAD_HISTORY keeps 365 days (Snowflake docs, "LOAD_HISTORY view") */
#define SF_LOAD_HISTORY_DAYS		360

/* One staged file, copied out of SPI memory. */
typedef struct StagedFile
{
	int64		file_id;
	char	   *name;
	int64		rows;
	TimestampTz in_doubt_since; /* before this attempt; 0: no COPY may have loaded it */
} StagedFile;

/* Files loaded by one COPY statement. */
typedef struct CopyBatch
{
	Oid			serverid;
	char	   *target;
	int64		shape;
	Datum		columns;		/* text[] */
	Datum		types;			/* text[] */
	bool		snowpipe;		/* submit to the pipe instead of COPY */
	bool		doubt;			/* files whose doubt is too old: resolve_doubt */
	bool		copy_sent;		/* this attempt's COPY went out (it may have run) */
	bool		rejected;		/* Snowflake rejected the COPY: it changed nothing */
	List	   *files;			/* StagedFile * */
} CopyBatch;

bool		sf_pipe_files_pending = false;

/* The load mode of a foreign table (its server's when the table is gone). */
static bool
table_uses_snowpipe(Oid relid, Oid server)
{
	if (get_rel_relkind(relid) == RELKIND_FOREIGN_TABLE)
		return sf_get_table_config(relid)->load_mode == SF_LOAD_SNOWPIPE;
	return sf_get_server_config(server)->load_mode == SF_LOAD_SNOWPIPE;
}

/*
 * Staged files due for loading, grouped into COPY (or insertFiles) batches
 * (worker memory).  A file's path is fixed at its first attempt (load_via,
 * committed with this transaction, before any call to Snowflake): COPY's
 * load metadata belongs to the table and Snowpipe's to the pipe, neither
 * sees the other, so a file that one of them may have loaded must never be
 * handed to the other (a crash after a COPY, then ALTER ... load_mode).
 * For COPY, the same commit starts the file's doubt (in_doubt_since) unless
 * an earlier COPY's already runs; files whose doubt is too old for load
 * metadata go into batches of their own (doubt) that resolve_doubt checks
 * in the load history instead of running a COPY.
 */
static List *
collect_batches(MemoryContext cxt)
{
	List	   *batches = NIL;
	CopyBatch  *cur = NULL;
	ListCell   *lc;

	TimestampTz doubt_horizon = GetCurrentTimestamp() -
		(int64) SF_LOAD_METADATA_SAFE_DAYS * USECS_PER_DAY;

	if (SPI_execute("SELECT file_id, server, target, columns, types, name, rows, shape,"
					"       relid, load_via, in_doubt_since"
					"  FROM sfexport.files"
					" WHERE state = 'staged'"
					"   AND (next_attempt_at IS NULL OR next_attempt_at <= pg_catalog.now())"
					" ORDER BY server, target, shape, file_id",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.files");

	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Oid			server = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		char	   *target = SPI_getvalue(tup, desc, 3);
		Datum		columns = SPI_getbinval(tup, desc, 4, &isnull);
		Datum		types = SPI_getbinval(tup, desc, 5, &isnull);
		int64		shape = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
		Oid			relid = DatumGetObjectId(SPI_getbinval(tup, desc, 9, &isnull));
		char	   *via = SPI_getvalue(tup, desc, 10);
		Datum		doubt_d = SPI_getbinval(tup, desc, 11, &isnull);
		TimestampTz in_doubt_since = isnull ? 0 : DatumGetTimestampTz(doubt_d);
		bool		snowpipe;
		bool		doubt;
		MemoryContext old;
		StagedFile *f;

		snowpipe = via ? strcmp(via, "snowpipe") == 0 : table_uses_snowpipe(relid, server);
		doubt = !snowpipe && in_doubt_since != 0 && in_doubt_since < doubt_horizon;
		old = MemoryContextSwitchTo(cxt);

		/* the shape hash stands for the column names and types */
		if (cur == NULL || cur->serverid != server || strcmp(cur->target, target) != 0 ||
			cur->shape != shape || cur->snowpipe != snowpipe || cur->doubt != doubt ||
			list_length(cur->files) >= MAX_FILES_PER_COPY)
		{
			/* look for an open batch of the same key (modes may alternate) */
			cur = NULL;
			foreach(lc, batches)
			{
				CopyBatch  *b = (CopyBatch *) lfirst(lc);

				if (b->serverid == server && strcmp(b->target, target) == 0 &&
					b->shape == shape && b->snowpipe == snowpipe && b->doubt == doubt &&
					list_length(b->files) < MAX_FILES_PER_COPY)
					cur = b;
			}
		}
		if (cur == NULL)
		{
			cur = palloc0(sizeof(CopyBatch));
			cur->serverid = server;
			cur->shape = shape;
			cur->snowpipe = snowpipe;
			cur->doubt = doubt;
			cur->target = pstrdup(target);
			cur->columns = datumCopy(columns, false, -1);
			cur->types = datumCopy(types, false, -1);
			batches = lappend(batches, cur);
		}
		f = palloc(sizeof(StagedFile));
		f->file_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		f->name = pstrdup(SPI_getvalue(tup, desc, 6));
		f->rows = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
		f->in_doubt_since = in_doubt_since;
		cur->files = lappend(cur->files, f);
		MemoryContextSwitchTo(old);
	}

	/*
	 * Pin every collected file to its path; for a COPY, its doubt begins
	 * now unless an earlier COPY's does (the COPY is sent after this
	 * commits, so a crash in between leaves a doubt no COPY made: harmless).
	 */
	foreach(lc, batches)
	{
		CopyBatch  *b = (CopyBatch *) lfirst(lc);
		ListCell   *fc;

		if (b->doubt)
			continue;			/* pinned to COPY already, not copied now */
		foreach(fc, b->files)
		{
			Oid			argtypes[2] = {INT8OID, TEXTOID};
			Datum		values[2];

			values[0] = Int64GetDatum(((StagedFile *) lfirst(fc))->file_id);
			values[1] = CStringGetTextDatum(b->snowpipe ? "snowpipe" : "copy");
			if (SPI_execute_with_args("UPDATE sfexport.files"
									  " SET load_via = coalesce(load_via, $2),"
									  "     in_doubt_since = CASE WHEN $2 = 'copy'"
									  "       THEN coalesce(in_doubt_since, pg_catalog.now())"
									  "       ELSE in_doubt_since END"
									  " WHERE file_id = $1 AND (load_via IS NULL"
									  "   OR ($2 = 'copy' AND in_doubt_since IS NULL))",
									  2, argtypes, values, NULL, false, 0) < 0)
				elog(ERROR, "could not update sfexport.files");
		}
	}
	return batches;
}

/* A COPY result cell by column name, or NULL. */
static char *
cell(SfSnowflakeResult *res, int64 row, const char *column)
{
	int			c = sf_result_column(res, column);

	return c < 0 ? NULL : res->rows[row][c];
}

/* Record one file's outcome. */
static void
record_file(int64 file_id, const char *state, const char *rows_parsed,
			const char *rows_loaded, const char *errors_seen,
			const char *first_error, const char *first_error_line,
			const char *first_error_column)
{
	Oid			argtypes[8] = {INT8OID, TEXTOID, INT8OID, INT8OID, INT8OID,
	TEXTOID, INT8OID, TEXTOID};
	Datum		values[8];
	char		nulls[8] = "        ";
	const char *texts[8] = {NULL, state, rows_parsed, rows_loaded, errors_seen,
	first_error, first_error_line, first_error_column};

	values[0] = Int64GetDatum(file_id);
	for (int i = 1; i < 8; i++)
	{
		if (texts[i] == NULL)
		{
			nulls[i] = 'n';
			values[i] = (Datum) 0;
		}
		else if (argtypes[i] == INT8OID)
			values[i] = DirectFunctionCall1(int8in, CStringGetDatum(texts[i]));
		else
			values[i] = CStringGetTextDatum(texts[i]);
	}
	if (SPI_execute_with_args("UPDATE sfexport.files SET state = $2,"
							  " rows_parsed = $3, rows_loaded = $4, errors_seen = $5,"
							  " first_error = $6, first_error_line = $7,"
							  " first_error_column = $8, last_error = NULL, in_doubt_since = NULL,"
							  " attempts = attempts + 1, last_attempt_at = pg_catalog.now(),"
							  " next_attempt_at = NULL,"
							  " loaded_at = CASE WHEN $2 = 'loaded' THEN pg_catalog.now() END"
							  " WHERE file_id = $1",
							  8, argtypes, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update sfexport.files");
}

/* Does the COPY result's FILE value name this staged file? */
static bool
same_file(const char *result_file, const char *name)
{
	size_t		rl = strlen(result_file);
	size_t		nl = strlen(name);

	if (strcmp(result_file, name) == 0)
		return true;
	/* external stages report the full URL: s3://bucket/prefix/<name> */
	return rl > nl && result_file[rl - nl - 1] == '/' &&
		strcmp(result_file + rl - nl, name) == 0;
}

/* Run one COPY and record every file's outcome; in a transaction. */
static void
load_batch(CopyBatch *b)
{
	SfServerConfig *srv = sf_get_server_config(b->serverid);
	SfUserConfig *usr = sf_get_worker_user_config(b->serverid);
	List	   *names = NIL;
	ListCell   *lc;
	SfStatement stmt;
	SfSnowflakeResult *res;
	int			status_col;

	b->copy_sent = false;
	b->rejected = false;
	foreach(lc, b->files)
		names = lappend(names, ((StagedFile *) lfirst(lc))->name);

	/* add columns a newer shape brings (once per shape; evolve.c) */
	sf_evolve_target(srv, usr, b->target, DatumGetArrayTypeP(b->columns),
					DatumGetArrayTypeP(b->types));
	memset(&stmt, 0, sizeof(stmt));
	stmt.sql = sf_copy_statement(srv, b->target, DatumGetArrayTypeP(b->columns),
								 DatumGetArrayTypeP(b->types), names,
								 names != NIL && sf_file_is_json((const char *) linitial(names)));
	stmt.query_tag = "sfexport";
	stmt.rejected = &b->rejected;

	pgstat_report_activity(STATE_RUNNING,
						   psprintf("loading %d files into %s", list_length(b->files), b->target));
	b->copy_sent = true;
	res = sf_snowflake_run(srv, usr, &stmt);
	status_col = sf_result_column(res, "status");

	sf_spi_connect();
	foreach(lc, b->files)
	{
		StagedFile *f = (StagedFile *) lfirst(lc);
		int64		row = -1;

		if (sf_result_column(res, "file") >= 0)
		{
			for (int64 r = 0; r < res->nrows; r++)
			{
				char	   *file = cell(res, r, "file");

				if (file && same_file(file, f->name))
				{
					row = r;
					break;
				}
			}
		}

		if (row < 0)
		{
			/*
			 * Not processed: Snowflake's load metadata says it was loaded
			 * before.  With LOAD_UNCERTAIN_FILES = TRUE nothing else makes
			 * COPY skip a file it was named (an uncertain one is loaded),
			 * and every COPY that may have loaded this one is young enough
			 * for its metadata to be there (collect_batches).
			 */
			char	   *rows = psprintf(INT64_FORMAT, f->rows);

			record_file(f->file_id, "loaded", rows, rows, "0", NULL, NULL, NULL);
		}
		else
		{
			char	   *status = status_col >= 0 ? res->rows[row][status_col] : NULL;
			const char *state;

			if (status && pg_strcasecmp(status, "LOADED") == 0)
				state = "loaded";
			else if (status && pg_strcasecmp(status, "PARTIALLY_LOADED") == 0)
				state = "partially_loaded";
			else
				state = "failed";
			record_file(f->file_id, state,
						cell(res, row, "rows_parsed"), cell(res, row, "rows_loaded"),
						cell(res, row, "errors_seen"), cell(res, row, "first_error"),
						cell(res, row, "first_error_line"),
						cell(res, row, "first_error_column_name"));
			if (strcmp(state, "loaded") != 0)
				ereport(WARNING,
						(errcode(ERRCODE_DATA_EXCEPTION),
						 errmsg("Snowflake did not load staged file \"%s\" into %s",
								f->name, b->target),
						 errdetail_internal("%s", cell(res, row, "first_error") ?
											cell(res, row, "first_error") : "no error given"),
						 errhint("Fix the cause, then call sfexport.retry().")));
		}
	}
	SPI_finish();
}

/*
 * After a failed COPY statement: keep the files staged, note error and
 * backoff.  When the COPY never went out (an earlier step failed), or
 * Snowflake rejected it (it ran, failed, and changed nothing), the doubt
 * this attempt began ends with it; a doubt from an earlier COPY stays (that
 * one may have loaded the file).
 */
static void
note_batch_error(CopyBatch *b, const char *message)
{
	ListCell   *lc;
	Oid			argtypes[3] = {INT8OID, TEXTOID, BOOLOID};

	sf_spi_connect();
	foreach(lc, b->files)
	{
		StagedFile *f = (StagedFile *) lfirst(lc);
		bool		ends_doubt = !b->doubt && f->in_doubt_since == 0 &&
			(b->rejected || !b->copy_sent);
		Datum		values[3];

		values[0] = Int64GetDatum(f->file_id);
		values[1] = CStringGetTextDatum(message);
		values[2] = BoolGetDatum(ends_doubt);

		/* backoff doubles per attempt: 10 s, 20 s, ... up to 10 min */
		SPI_execute_with_args("UPDATE sfexport.files SET last_error = $2,"
							  " attempts = attempts + 1, last_attempt_at = pg_catalog.now(),"
							  " next_attempt_at = pg_catalog.now() + LEAST(interval '10 min',"
							  "   interval '10 s' * pg_catalog.power(2::double precision, LEAST(attempts, 6))),"
							  " in_doubt_since = CASE WHEN $3 THEN NULL ELSE in_doubt_since END"
							  " WHERE file_id = $1",
							  3, argtypes, values, NULL, false, 0);
	}
	SPI_finish();
}

/*
 * Files whose doubt is older than their load metadata can be: did the COPY
 * that may have loaded them do so?  Snowflake's load history
 * (SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY: one row per file of every COPY
 * INTO <table> that ran to completion, for 365 days; Snowflake docs,
 * "LOAD_HISTORY view") answers.  Loaded: recorded as loaded, no COPY.
 * Not loaded: the doubt is cleared, and the next pass loads the file with
 * LOAD_UNCERTAIN_FILES = TRUE (any load younger than 64 days would still
 * be in the load metadata and skip it).  The view's latency (up to hours)
 * does not matter: the COPY in question ran weeks ago.  In a transaction;
 * an error (no access to the SNOWFLAKE database) leaves the files staged
 * with the error and a backoff.
 */
static void
resolve_doubt(CopyBatch *b)
{
	SfServerConfig *srv = sf_get_server_config(b->serverid);
	SfUserConfig *usr = sf_get_worker_user_config(b->serverid);
	TimestampTz horizon = GetCurrentTimestamp() - (int64) SF_LOAD_HISTORY_DAYS * USECS_PER_DAY;
	char	   *parts[3];
	ListCell   *lc;

	sf_split_target_name(b->target, parts);
	sf_spi_connect();
	foreach(lc, b->files)
	{
		StagedFile *f = (StagedFile *) lfirst(lc);
		SfStatement stmt;
		SfSnowflakeResult *res;
		const char *binds[4];
		int64		found = -1;
		int			status_col;

		CHECK_FOR_INTERRUPTS();
		if (f->in_doubt_since < horizon)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot tell whether Snowflake loaded staged file \"%s\" into %s",
							f->name, b->target),
					 errdetail("A COPY naming the file may have loaded it on %s, longer ago than Snowflake keeps load metadata or load history.",
							   timestamptz_to_str(f->in_doubt_since)),
					 errhint("Look for the file in Snowflake; then set its state in sfexport.files to 'loaded', or clear its in_doubt_since to load it (docs/reliability.md).")));

		memset(&stmt, 0, sizeof(stmt));
		stmt.sql = "SELECT FILE_NAME, STATUS, ROW_COUNT, ROW_PARSED"
			" FROM SNOWFLAKE.ACCOUNT_USAGE.LOAD_HISTORY"
			" WHERE CATALOG_NAME = ? AND SCHEMA_NAME = ? AND TABLE_NAME = ?"
			" AND FILE_NAME LIKE ?";
		binds[0] = parts[0];
		binds[1] = parts[1];
		binds[2] = parts[2];
		binds[3] = psprintf("%%%s", f->name);	/* '_' matches itself too */
		stmt.nbinds = 4;
		stmt.bind_values = binds;
		stmt.query_tag = "sfexport";
		pgstat_report_activity(STATE_RUNNING,
							   psprintf("looking up staged file %s in the load history", f->name));
		res = sf_snowflake_run(srv, usr, &stmt);
		status_col = sf_result_column(res, "STATUS");
		for (int64 r = 0; r < res->nrows && status_col >= 0; r++)
		{
			char	   *file = cell(res, r, "FILE_NAME");
			char	   *status = res->rows[r][status_col];

			/* LOADED, LOAD FAILED or PARTIALLY LOADED */
			if (file && status && same_file(file, f->name) &&
				(pg_strcasecmp(status, "LOADED") == 0 ||
				 pg_strcasecmp(status, "PARTIALLY LOADED") == 0))
				found = r;
		}
		if (found >= 0)
		{
			bool		partly = pg_strcasecmp(res->rows[found][status_col], "LOADED") != 0;

			ereport(LOG,
					(errmsg("staged file \"%s\" was loaded into %s by an earlier COPY, as Snowflake's load history shows",
							f->name, b->target)));
			record_file(f->file_id, partly ? "partially_loaded" : "loaded",
						cell(res, found, "ROW_PARSED"), cell(res, found, "ROW_COUNT"),
						"0", NULL, NULL, NULL);
		}
		else
		{
			Oid			argtypes[1] = {INT8OID};
			Datum		values[1] = {Int64GetDatum(f->file_id)};

			ereport(LOG,
					(errmsg("staged file \"%s\" is not in Snowflake's load history of %s: loading it",
							f->name, b->target),
					 errdetail("The COPY that named it on %s did not load it.",
							   timestamptz_to_str(f->in_doubt_since))));
			if (SPI_execute_with_args("UPDATE sfexport.files SET in_doubt_since = NULL,"
									  " next_attempt_at = NULL, last_error = NULL"
									  " WHERE file_id = $1",
									  1, argtypes, values, NULL, false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not update sfexport.files");
		}
	}
	SPI_finish();
}

/* ---------------------------------------------------------------------
 * Snowpipe (load_mode 'snowpipe'; snowpipe.c has the REST client)
 *
 *	staged --insertFiles--> submitted --insertReport / loadHistoryScan-->
 *	loaded | failed | partially_loaded
 *
 * insertFiles runs before the transaction that marks the files 'submitted'
 * commits: a crash in between leaves them 'staged' and they are submitted
 * again, which Snowpipe's per-pipe load history makes harmless (it skips a
 * file name it loaded).  A submitted file is looked up in insertReport each
 * housekeeping pass (sfexport.snowpipe_poll_interval), from the pipe's
 * mark in sfexport.pipe_reports, which survives a worker restart; one not
 * reported within sfexport.snowpipe_report_deadline (e.g. a report that
 * expired while no worker ran: reports live ~10 minutes) is looked up in the pipe's
 * load history (loadHistoryScan) since it was staged, and when found
 * nowhere, submitted again.
 * ---------------------------------------------------------------------
 */

/* Pipes this process created (CREATE PIPE IF NOT EXISTS). */
static List *pipes_created = NIL;	/* char *, TopMemoryContext */

/* Make sure the pipe of a target and shape exists (once per process). */
static void
ensure_pipe(SfServerConfig *srv, SfUserConfig *usr, CopyBatch *b, const char *pipe)
{
	ListCell   *lc;
	SfStatement stmt;
	MemoryContext old;

	foreach(lc, pipes_created)
		if (strcmp((char *) lfirst(lc), pipe) == 0)
			return;
	memset(&stmt, 0, sizeof(stmt));
	stmt.sql = sf_pipe_statement(srv, b->target, b->shape, DatumGetArrayTypeP(b->columns),
								 DatumGetArrayTypeP(b->types),
								 b->files != NIL &&
								 sf_file_is_json(((StagedFile *) linitial(b->files))->name));
	stmt.query_tag = "sfexport";
	(void) sf_snowflake_run(srv, usr, &stmt);
	old = MemoryContextSwitchTo(TopMemoryContext);
	pipes_created = lappend(pipes_created, pstrdup(pipe));
	MemoryContextSwitchTo(old);
}

/* Submit a batch of staged files to its pipe; in a transaction. */
static void
submit_batch(CopyBatch *b)
{
	SfServerConfig *srv = sf_get_server_config(b->serverid);
	SfUserConfig *usr = sf_get_worker_user_config(b->serverid);
	char	   *pipe = sf_pipe_rest_name(b->target, b->shape);
	List	   *names = NIL;
	ListCell   *lc;

	foreach(lc, b->files)
		names = lappend(names, ((StagedFile *) lfirst(lc))->name);

	sf_evolve_target(srv, usr, b->target, DatumGetArrayTypeP(b->columns),
					DatumGetArrayTypeP(b->types));
	ensure_pipe(srv, usr, b, pipe);
	pgstat_report_activity(STATE_RUNNING,
						   psprintf("submitting %d files to pipe %s", list_length(b->files), pipe));
	sf_snowpipe_insert_files(srv, usr, pipe, names);

	sf_spi_connect();
	foreach(lc, b->files)
	{
		Oid			argtypes[2] = {INT8OID, TEXTOID};
		Datum		values[2] = {Int64GetDatum(((StagedFile *) lfirst(lc))->file_id),
		CStringGetTextDatum(pipe)};

		if (SPI_execute_with_args("UPDATE sfexport.files SET state = 'submitted', pipe = $2,"
								  " submitted_at = pg_catalog.now(), last_error = NULL,"
								  " attempts = attempts + 1, last_attempt_at = pg_catalog.now(),"
								  " next_attempt_at = NULL"
								  " WHERE file_id = $1 AND state = 'staged'",
								  2, argtypes, values, NULL, false, 0) < 0)
			elog(ERROR, "could not update sfexport.files");
	}
	SPI_finish();
	sf_pipe_files_pending = true;
}

static void
submit_unit(void *arg)
{
	submit_batch((CopyBatch *) arg);
}

/*
 * Record the final outcomes in a report for files still 'submitted' to this
 * pipe; returns the file_ids recorded.  In an SPI connection.
 */
static List *
record_reports(const char *pipe, List *reports)
{
	ListCell   *lc;
	List	   *done = NIL;

	foreach(lc, reports)
	{
		SfPipeFileReport *r = (SfPipeFileReport *) lfirst(lc);
		const char *state;
		Oid			argtypes[2] = {TEXTOID, TEXTOID};
		Datum		values[2] = {CStringGetTextDatum(pipe), CStringGetTextDatum(r->path)};
		char	   *name;
		int64		file_id;
		bool		isnull;

		if (r->status == NULL)
			continue;
		if (pg_strcasecmp(r->status, "LOADED") == 0)
			state = "loaded";
		else if (pg_strcasecmp(r->status, "LOAD_FAILED") == 0)
			state = "failed";
		else if (pg_strcasecmp(r->status, "PARTIALLY_LOADED") == 0)
			state = "partially_loaded";
		else
			continue;			/* LOAD_IN_PROGRESS */

		/* the path is relative to the stage location; a name ends it */
		if (SPI_execute_with_args("SELECT file_id, name FROM sfexport.files"
								  " WHERE state = 'submitted' AND pipe = $1"
								  "   AND (name = $2 OR $2 LIKE '%/' || name)",
								  2, argtypes, values, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read sfexport.files");
		if (SPI_processed == 0)
			continue;
		file_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		if (!same_file(r->path, name))
			continue;
		record_file(file_id, state, r->rows_parsed, r->rows_inserted,
					r->errors_seen ? r->errors_seen : "0", r->first_error,
					r->first_error_line, r->first_error_column);
		done = lappend(done, (void *) name);
		if (strcmp(state, "loaded") != 0)
			ereport(WARNING,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("Snowpipe did not load staged file \"%s\" (pipe %s)", name, pipe),
					 errdetail_internal("%s", r->first_error ? r->first_error : "no error given"),
					 errhint("Fix the cause, then call sfexport.retry(); the file is then loaded with COPY.")));
	}
	return done;
}

/* One pipe with submitted files. */
typedef struct PipeWork
{
	Oid			serverid;
	char	   *pipe;
} PipeWork;

static void
pipes_unit(void *arg)
{
	List	  **out = (List **) arg;
	MemoryContext cxt = (MemoryContext) linitial(*out);

	*out = NIL;
	sf_spi_connect();
	if (SPI_execute("SELECT DISTINCT server, pipe FROM sfexport.files"
					" WHERE state = 'submitted' ORDER BY 1, 2", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.files");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		MemoryContext old = MemoryContextSwitchTo(cxt);
		PipeWork   *w = palloc0(sizeof(PipeWork));

		w->serverid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
													 SPI_tuptable->tupdesc, 1, &isnull));
		w->pipe = pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		*out = lappend(*out, w);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
}

/*
 * insertReport for one pipe from its mark in sfexport.pipe_reports; records
 * the outcomes and the new mark (nextBeginMark) in the same transaction, so
 * that the mark never runs ahead of what was recorded and a restarted
 * worker goes on from there.  Without a mark (a pipe never read) the report
 * holds what Snowpipe still keeps (about 10 minutes); older outcomes are
 * found by the deadline and loadHistoryScan (overdue_unit).  beginMark is a
 * hint: an event seen twice is harmless, as only 'submitted' files change.
 */
static void
report_unit(void *arg)
{
	PipeWork   *w = (PipeWork *) arg;
	SfServerConfig *srv = sf_get_server_config(w->serverid);
	SfUserConfig *usr = sf_get_worker_user_config(w->serverid);
	Oid			argtypes[3] = {OIDOID, TEXTOID, TEXTOID};
	Datum		values[3] = {ObjectIdGetDatum(w->serverid), CStringGetTextDatum(w->pipe), (Datum) 0};
	char		nulls[3] = {' ', ' ', 'n'};
	char	   *mark = NULL;
	List	   *reports;

	sf_spi_connect();
	if (SPI_execute_with_args("SELECT begin_mark FROM sfexport.pipe_reports"
							  " WHERE server = $1 AND pipe = $2 FOR UPDATE",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.pipe_reports");
	if (SPI_processed > 0)
		mark = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

	pgstat_report_activity(STATE_RUNNING, psprintf("reading the load report of pipe %s", w->pipe));
	reports = sf_snowpipe_insert_report(srv, usr, w->pipe, &mark);
	(void) record_reports(w->pipe, reports);

	if (mark)
	{
		values[2] = CStringGetTextDatum(mark);
		nulls[2] = ' ';
	}
	if (SPI_execute_with_args("INSERT INTO sfexport.pipe_reports AS p"
							  " (server, pipe, begin_mark, read_at) VALUES ($1, $2, $3, pg_catalog.now())"
							  " ON CONFLICT (server, pipe) DO UPDATE"
							  " SET begin_mark = coalesce(EXCLUDED.begin_mark, p.begin_mark),"
							  "     read_at = EXCLUDED.read_at",
							  3, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not update sfexport.pipe_reports");
	SPI_finish();
}

/*
 * Files of a pipe submitted longer ago than the deadline: look them up in
 * the pipe's load history since they were staged; submit again the ones
 * found nowhere (Snowpipe skips a file it already loaded).
 */
static void
overdue_unit(void *arg)
{
	PipeWork   *w = (PipeWork *) arg;
	SfServerConfig *srv = sf_get_server_config(w->serverid);
	SfUserConfig *usr = sf_get_worker_user_config(w->serverid);
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		values[2] = {CStringGetTextDatum(w->pipe),
	Int32GetDatum(sfexport_snowpipe_report_deadline_s)};
	List	   *names = NIL;
	List	   *done;
	List	   *again = NIL;
	TimestampTz since = 0;
	ListCell   *lc;
	SPITupleTable *tt;

	sf_spi_connect();
	if (SPI_execute_with_args("SELECT name, staged_at FROM sfexport.files"
							  " WHERE state = 'submitted' AND pipe = $1"
							  "   AND submitted_at < pg_catalog.now() - pg_catalog.make_interval(secs => $2)"
							  " ORDER BY file_id LIMIT 1000 FOR UPDATE",
							  2, argtypes, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.files");
	tt = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		TimestampTz t = DatumGetTimestampTz(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));

		names = lappend(names, SPI_getvalue(tt->vals[i], tt->tupdesc, 1));
		since = since == 0 ? t : Min(since, t);
	}
	if (names == NIL)
	{
		SPI_finish();
		return;
	}

	pgstat_report_activity(STATE_RUNNING, psprintf("reading the load history of pipe %s", w->pipe));
	/* a minute of margin for clock differences */
	done = record_reports(w->pipe,
						  sf_snowpipe_load_history(srv, usr, w->pipe,
												   since - 60 * USECS_PER_SEC,
												   GetCurrentTimestamp() + 60 * USECS_PER_SEC));
	foreach(lc, names)
	{
		char	   *name = (char *) lfirst(lc);
		bool		found = false;
		ListCell   *dc;

		foreach(dc, done)
			if (strcmp((char *) lfirst(dc), name) == 0)
				found = true;
		if (!found)
			again = lappend(again, name);
	}
	if (again != NIL)
	{
		ereport(LOG,
				(errmsg("submitting %d files to pipe %s again: Snowpipe has not reported them",
						list_length(again), w->pipe)));
		sf_snowpipe_insert_files(srv, usr, w->pipe, again);
		foreach(lc, again)
		{
			Oid			at[1] = {TEXTOID};
			Datum		av[1] = {CStringGetTextDatum((char *) lfirst(lc))};

			SPI_execute_with_args("UPDATE sfexport.files SET submitted_at = pg_catalog.now(),"
								  " attempts = attempts + 1, last_attempt_at = pg_catalog.now()"
								  " WHERE name = $1 AND state = 'submitted'",
								  1, at, av, NULL, false, 0);
		}
	}
	SPI_finish();
}

/* Read reports of every pipe with submitted files. */
static void
poll_pipes(void)
{
	List	   *work = list_make1(CurrentMemoryContext);
	ListCell   *lc;

	sf_pipe_files_pending = false;
	if (!sf_run_transaction(pipes_unit, &work, NULL))
		return;
	foreach(lc, work)
	{
		PipeWork   *w = (PipeWork *) lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		sf_pipe_files_pending = true;
		(void) sf_run_transaction(report_unit, w, NULL);
		(void) sf_run_transaction(overdue_unit, w, NULL);
	}
}

/* Units of work, each run in its own transaction by sf_run_transaction. */
typedef struct CollectArgs
{
	MemoryContext cxt;
	List	   *batches;
} CollectArgs;

static void
collect_unit(void *arg)
{
	CollectArgs *a = (CollectArgs *) arg;

	sf_spi_connect();
	a->batches = collect_batches(a->cxt);
	SPI_finish();
}

static void
load_unit(void *arg)
{
	CopyBatch  *b = (CopyBatch *) arg;

	if (b->doubt)
		resolve_doubt(b);
	else
		load_batch(b);
}

typedef struct NoteArgs
{
	CopyBatch  *batch;
	const char *message;
} NoteArgs;

static void
note_unit(void *arg)
{
	NoteArgs   *a = (NoteArgs *) arg;

	note_batch_error(a->batch, a->message);
}

/*
 * Load every staged file that is due, one transaction per COPY statement.
 * Returns the number of COPY statements that failed.
 */
int
sf_load_staged(void)
{
	CollectArgs ca;
	ListCell   *lc;
	int			failures = 0;

	poll_pipes();

	ca.cxt = CurrentMemoryContext;
	ca.batches = NIL;
	if (!sf_run_transaction(collect_unit, &ca, NULL))
		return 1;

	foreach(lc, ca.batches)
	{
		CopyBatch  *b = (CopyBatch *) lfirst(lc);
		char	   *message = NULL;

		CHECK_FOR_INTERRUPTS();
		if (!sf_run_transaction(b->snowpipe ? submit_unit : load_unit, b, &message))
		{
			NoteArgs	na = {b, message};

			failures++;
			sf_evolve_forget();	/* check the table again next time */
			list_free_deep(pipes_created);	/* and the pipe */
			pipes_created = NIL;
			(void) sf_run_transaction(note_unit, &na, NULL);
		}
	}
	return failures;
}

/*
 * Delete loaded files from storage (unless the server keeps them) and
 * forget manifest rows older than sfexport.manifest_retention.
 */
static void
delete_unit(void *arg)
{
	int		   *deleted = (int *) arg;
	Oid			last_server = InvalidOid;
	SfStorage  *st = NULL;
	bool		keep = false;
	SPITupleTable *tt;
	uint64		n;

	sf_spi_connect();

	if (SPI_execute("SELECT file_id, server, name FROM sfexport.files"
					" WHERE state = 'loaded' AND deleted_at IS NULL AND NOT kept"
					" ORDER BY server, file_id LIMIT 1000 FOR UPDATE",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.files");
	tt = SPI_tuptable;
	n = SPI_processed;

	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int64		file_id = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		Oid			server = DatumGetObjectId(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		char	   *name = SPI_getvalue(tt->vals[i], tt->tupdesc, 3);
		Oid			argtypes[1] = {INT8OID};
		Datum		values[1] = {Int64GetDatum(file_id)};

		CHECK_FOR_INTERRUPTS();
		if (server != last_server)
		{
			SfServerConfig *srv = sf_get_server_config(server);

			keep = srv->keep_files;
			st = keep ? NULL :
				sf_storage_open(srv, sf_get_worker_user_config(server));
			last_server = server;
		}
		if (keep)
		{
			SPI_execute_with_args("UPDATE sfexport.files SET kept = true WHERE file_id = $1",
								  1, argtypes, values, NULL, false, 0);
			continue;
		}
		pgstat_report_activity(STATE_RUNNING, psprintf("deleting loaded file %s", name));
		sf_storage_delete(st, name);
		SPI_execute_with_args("UPDATE sfexport.files SET deleted_at = pg_catalog.now() WHERE file_id = $1",
							  1, argtypes, values, NULL, false, 0);
		(*deleted)++;
	}

	if (sfexport_manifest_retention_s > 0)
	{
		Oid			argtypes[1] = {INT4OID};
		Datum		values[1] = {Int32GetDatum(sfexport_manifest_retention_s)};

		SPI_execute_with_args("DELETE FROM sfexport.files WHERE state = 'loaded'"
							  " AND loaded_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1)",
							  1, argtypes, values, NULL, false, 0);
	}
	SPI_finish();
}

int
sf_delete_loaded_files(void)
{
	int			deleted = 0;

	(void) sf_run_transaction(delete_unit, &deleted, NULL);
	return deleted;
}
