/*-------------------------------------------------------------------------
 *
 * sql_glue.c
 *		sfexport.glue_sync(): the Glue sync from SQL (glue_sync.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "glue_client.h"

#include "catalog/pg_foreign_server.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"

#include "sfexport.h"

#include "config.h"
#include "glue_sync.h"

static void
emit_tuple(void *arg, const char *glue_table, const char *action,
		   const char *reason, const char *statement)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};

	values[0] = CStringGetTextDatum(glue_table ? glue_table : "");
	values[1] = CStringGetTextDatum(action);
	nulls[2] = reason == NULL;
	values[2] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
	nulls[3] = statement == NULL;
	values[3] = statement ? CStringGetTextDatum(statement) : (Datum) 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

PG_FUNCTION_INFO_V1(sfexport_glue_sync);

/*
 * sfexport.glue_sync(server name, glue_database text, table_pattern text,
 *					  dry_run boolean, drop_missing boolean,
 *					  target_database text, target_schema text)
 *	→ SETOF (glue_table, action, reason, statement)
 *
 * Only the server's owner (or a superuser) may run it: it creates and drops
 * Snowflake objects with the server's credentials.
 */
Datum
sfexport_glue_sync(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SfGlueSyncArgs a;
	ForeignServer *server;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("server, glue_database, table_pattern, dry_run and drop_missing must not be null")));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);

	server = GetForeignServerByName(NameStr(*PG_GETARG_NAME(0)), false);
	if (!object_ownercheck(ForeignServerRelationId, server->serverid, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to run glue_sync on server \"%s\"", server->servername),
				 errdetail("glue_sync creates and drops Snowflake objects with the server's settings."),
				 errhint("Only the owner of the server or a superuser may run it.")));
	if (strcmp(GetForeignDataWrapper(server->fdwid)->fdwname, "sfexport") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" is not an sfexport server", server->servername)));

	memset(&a, 0, sizeof(a));
	a.serverid = server->serverid;
	a.userid = GetUserId();
	a.glue_database = text_to_cstring(PG_GETARG_TEXT_PP(1));
	a.pattern = text_to_cstring(PG_GETARG_TEXT_PP(2));
	a.dry_run = PG_GETARG_BOOL(3);
	a.drop_missing = PG_GETARG_BOOL(4);
	a.target_database = PG_ARGISNULL(5) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(5));
	a.target_schema = PG_ARGISNULL(6) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(6));
	if (!sf_glue_usable_name(a.glue_database))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid AWS Glue database name"),
				 errdetail("Names are 1 to %d bytes without control characters.", SF_GLUE_NAME_MAX)));

	sf_glue_sync_run(&a, emit_tuple, rsinfo);
	return (Datum) 0;
}
