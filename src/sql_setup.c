/*-------------------------------------------------------------------------
 *
 * sql_setup.c
 *		Snowflake-side setup from SQL: sfexport.setup_stage() and
 *		sfexport.setup_table() (the statements are statements.c's, the
 *		columns an existing table lacks evolve.c's).
 *
 *	sfexport.setup_stage(server, dry_run)
 *		CREATE FILE FORMAT IF NOT EXISTS <db>.<schema>.<file_format>
 *		  <sf_csv_format_options()> COMPRESSION = AUTO
 *		CREATE STAGE IF NOT EXISTS <db>.<schema>.<stage> URL = '<location>'
 *		  [STORAGE_INTEGRATION = <i> | CREDENTIALS = (AWS_KEY_ID = ...)]
 *		  FILE_FORMAT = (FORMAT_NAME = '<file format>')
 *	sfexport.setup_table(foreign_table, dry_run)
 *		CREATE TABLE IF NOT EXISTS <target> (<column> <type>, ...)
 *		then (not in a dry run) the columns the table lacks are added
 *		for a table in load_mode 'snowpipe', also
 *		CREATE PIPE IF NOT EXISTS <db>.<schema>.<table>_SFEXPORT_PIPE_<shape>
 *		  AS <the worker's COPY without FILES> (statements.c)
 *	sfexport.setup(server, dry_run)				(SQL, in the install script)
 *		both, for every foreign table of the server
 *
 * Statements run through the Snowflake SQL API as the user mapping of the
 * server's owner, the mapping the worker uses, so the stage reads the files
 * with the credentials that wrote them.  Only the server's owner or a
 * superuser may call them.  The text returned (and any error context) has
 * credential values replaced by '***' (sf_redact_sql).  Only keys of the
 * owner's user mapping ever go into CREATE STAGE ... CREDENTIALS: keys of
 * the database server's environment (aws_from_host) are refused, dry run
 * or not, so that the host's identity never reaches a statement.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_type.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "parser/parse_type.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "sfexport.h"

#include "config.h"
#include "encode.h"
#include "evolve.h"
#include "quote.h"
#include "statements.h"
#include "track.h"

/*
 * The sfexport server by name or of a foreign table, after checking that
 * the current user owns it (superusers pass).
 */
static void
check_setup_privilege(ForeignServer *server)
{
	ForeignDataWrapper *fdw = GetForeignDataWrapper(server->fdwid);

	if (strcmp(fdw->fdwname, "sfexport") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" does not use the sfexport foreign-data wrapper",
						server->servername)));
	if (!object_ownercheck(ForeignServerRelationId, server->serverid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set up Snowflake objects for server \"%s\"",
						server->servername),
				 errdetail("Setup functions run statements in Snowflake with the user mapping of the server's owner."),
				 errhint("Run it as the owner of server \"%s\" or as a superuser.",
						 server->servername)));
}

/* The columns of a foreign table as Snowflake columns. */
static SfColumnDef *
table_columns(Oid relid, int *ncols)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	SfColumnDef *cols = palloc0(sizeof(SfColumnDef) * Max(desc->natts, 1));
	int			n = 0;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		cols[n].name = sf_column_target_name(relid, att->attnum);
		cols[n].pgtype = format_type_with_typemod(att->atttypid, att->atttypmod);
		cols[n].sftype = sf_snowflake_type(att->atttypid, att->atttypmod);
		n++;
	}
	relation_close(rel, AccessShareLock);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("foreign table \"%s\" has no columns", get_rel_name(relid)),
				 errhint("A Snowflake table needs at least one column.")));
	*ncols = n;
	return cols;
}

/* Return statements to the caller (redacted), running them unless dry_run. */
static void
emit(ReturnSetInfo *rsinfo, SfServerConfig *srv, SfUserConfig *usr,
	 const char *sql, bool dry_run)
{
	Datum		value;
	bool		isnull = false;

	if (!dry_run)
		(void) sf_run_setup_statement(srv, usr, sql);
	value = CStringGetTextDatum(sf_redact_sql(sql));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
}

PG_FUNCTION_INFO_V1(sfexport_setup_stage);
PG_FUNCTION_INFO_V1(sfexport_setup_table);

/*
 * sfexport.setup_stage(server name, dry_run boolean): the file format and
 * the stage of a server.
 */
Datum
sfexport_setup_stage(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ForeignServer *server = GetForeignServerByName(NameStr(*PG_GETARG_NAME(0)), false);
	bool		dry_run = PG_GETARG_BOOL(1);
	SfServerConfig *srv;
	SfUserConfig *usr;
	ListCell   *lc;

	check_setup_privilege(server);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	srv = sf_get_server_config(server->serverid);
	/* a dry run needs the mapping only for the keys of an S3 stage */
	usr = !dry_run || (srv->location.kind == SF_LOCATION_S3 && !srv->storage_integration) ?
		sf_get_worker_user_config(server->serverid) : NULL;

	foreach(lc, sf_stage_statements(srv, usr))
		emit(rsinfo, srv, usr, (const char *) lfirst(lc), dry_run);
	return (Datum) 0;
}

/*
 * sfexport.setup_table(foreign_table regclass, dry_run boolean): the target
 * table of a foreign table; in a real run also the columns an existing
 * table lacks.
 */
Datum
sfexport_setup_table(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid = PG_GETARG_OID(0);
	bool		dry_run = PG_GETARG_BOOL(1);
	ForeignTable *ft;
	ForeignServer *server;
	SfServerConfig *srv;
	SfUserConfig *usr;
	SfTableConfig *tbl;
	SfColumnDef *cols;
	int			ncols;
	char	   *target;
	ListCell   *lc;
	Oid			tracked = InvalidOid;

	/* a tracked table: its changes table, then its mirror (docs/tracking.md) */
	if (get_rel_relkind(relid) == RELKIND_RELATION &&
		OidIsValid(sf_track_changes_of(relid, true)))
	{
		tracked = relid;
		relid = sf_track_changes_of(tracked, false);
	}
	if (get_rel_relkind(relid) != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a foreign table", get_rel_name(relid) ?
						get_rel_name(relid) : "?")));
	ft = GetForeignTable(relid);
	server = GetForeignServer(ft->serverid);
	check_setup_privilege(server);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	srv = sf_get_server_config(server->serverid);
	usr = dry_run ? NULL :
		sf_get_worker_user_config(server->serverid);
	tbl = sf_get_table_config(relid);
	target = sf_target_name(srv, tbl);
	cols = table_columns(relid, &ncols);

	emit(rsinfo, srv, usr, sf_track_info(relid, true) != NULL ?
		 sf_track_create_changes_statement(target, ncols, cols) :
		 sf_create_table_statement(target, ncols, cols), dry_run);

	/* an existing table: add what it lacks, refuse what cannot load */
	if (!dry_run)
		foreach(lc, sf_evolve_statements(srv, usr, target, ncols, cols))
			emit(rsinfo, srv, usr, (const char *) lfirst(lc), false);

	/* the mirror of a tracked table, with its primary key, and its history */
	if (OidIsValid(tracked))
	{
		char	   *mirror = sf_track_target_name(srv, relid);
		char	   *history = sf_track_history_name(srv, relid);

		if (sf_track_info(relid, false)->mirror)
		{
			emit(rsinfo, srv, usr, sf_track_create_target_statement(srv, relid), dry_run);
			if (!dry_run)
				foreach(lc, sf_evolve_statements(srv, usr, mirror, ncols - SF_TRACK_META_COLUMNS,
												 cols + SF_TRACK_META_COLUMNS))
					emit(rsinfo, srv, usr, (const char *) lfirst(lc), false);
		}

		/* the batch number every merge advances */
		foreach(lc, sf_track_watermark_statements(srv, relid))
			emit(rsinfo, srv, usr, (const char *) lfirst(lc), dry_run);

		/* history mode: every change, with the columns of the changes table */
		if (history)
		{
			emit(rsinfo, srv, usr, sf_create_table_statement(history, ncols, cols), dry_run);
			if (!dry_run)
				foreach(lc, sf_evolve_statements(srv, usr, history, ncols, cols))
					emit(rsinfo, srv, usr, (const char *) lfirst(lc), false);
		}
	}

	/*
	 * Snowpipe: the pipe of the table's current record shape; streaming:
	 * the pipe its streaming_pipe option names (else the default pipe,
	 * which Snowflake creates itself)
	 */
	if (tbl->load_mode == SF_LOAD_SNOWPIPE ||
		(tbl->load_mode == SF_LOAD_STREAMING && tbl->streaming_pipe))
	{
		Relation	rel = relation_open(relid, AccessShareLock);
		SfRowEncoder *enc = sf_encoder_create(rel);
		int			n = sf_encoder_ncolumns(enc);
		Datum	   *names = palloc(sizeof(Datum) * Max(n, 1));
		Datum	   *types = palloc(sizeof(Datum) * Max(n, 1));

		sf_encoder_shape_arrays(enc, names, types);
		if (tbl->load_mode == SF_LOAD_STREAMING)
			emit(rsinfo, srv, usr,
				 sf_streaming_pipe_statement(srv, tbl, target,
											 construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT)),
				 dry_run);
		else
			emit(rsinfo, srv, usr,
				 sf_pipe_statement(srv, target, (int64) sf_encoder_shape(enc),
								   construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT),
								   construct_array(types, n, TEXTOID, -1, false, TYPALIGN_INT),
								   tbl->json),
				 dry_run);
		relation_close(rel, AccessShareLock);
	}
	return (Datum) 0;
}
