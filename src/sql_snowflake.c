/*-------------------------------------------------------------------------
 *
 * sql_snowflake.c
 *		SQL functions over the Snowflake SQL API client (snowflake.c):
 *		sfexport.test_connection(), public_key_fingerprint() and
 *		snowflake_query(), as the current user's mapping.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_foreign_server.h"
#include "catalog/pg_type.h"
#include "foreign/foreign.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "sfexport.h"

#include "config.h"
#include "jwt.h"
#include "snowflake.h"

/*
 * The configuration of a server by name and of the current user's mapping
 * on it, after checking USAGE on the server.
 */
static void
lookup_server(Name servername, SfServerConfig **srv, SfUserConfig **usr)
{
	ForeignServer *server = GetForeignServerByName(NameStr(*servername), false);
	AclResult	aclresult;

	aclresult = object_aclcheck(ForeignServerRelationId, server->serverid, GetUserId(), ACL_USAGE);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_FOREIGN_SERVER, server->servername);
	*srv = sf_get_server_config(server->serverid);
	*usr = sf_get_user_config(server->serverid, GetUserId());
}

PG_FUNCTION_INFO_V1(sfexport_test_connection);
PG_FUNCTION_INFO_V1(sfexport_public_key_fingerprint);
PG_FUNCTION_INFO_V1(sfexport_snowflake_query);

/*
 * sfexport.test_connection(server name): run a trivial statement as the
 * current user's mapping and report who and where Snowflake says we are.
 */
Datum
sfexport_test_connection(PG_FUNCTION_ARGS)
{
	SfServerConfig *srv;
	SfUserConfig *usr;
	SfSnowflakeResult *res;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5];

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	lookup_server(PG_GETARG_NAME(0), &srv, &usr);

	res = sf_snowflake_execute(srv, usr,
							   "SELECT CURRENT_ACCOUNT(), CURRENT_USER(), CURRENT_ROLE(), "
							   "CURRENT_WAREHOUSE(), CURRENT_VERSION()",
							   0, NULL, NULL);
	if (res->nrows != 1 || res->ncolumns != 5)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("invalid response from the Snowflake SQL API"),
				 errdetail("The test statement returned %lld rows of %d columns, not one row of 5.",
						   (long long) res->nrows, res->ncolumns)));
	for (int j = 0; j < 5; j++)
	{
		nulls[j] = res->rows[0][j] == NULL;
		values[j] = nulls[j] ? (Datum) 0 : CStringGetTextDatum(res->rows[0][j]);
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * sfexport.public_key_fingerprint(server name): the fingerprint of the
 * current user's private key, to compare with DESC USER's RSA_PUBLIC_KEY_FP.
 */
Datum
sfexport_public_key_fingerprint(PG_FUNCTION_ARGS)
{
	SfServerConfig *srv;
	SfUserConfig *usr;

	lookup_server(PG_GETARG_NAME(0), &srv, &usr);
	if (usr->private_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("the user mapping for server \"%s\" has no private key",
						srv->servername)));
	PG_RETURN_TEXT_P(cstring_to_text(
									 sf_jwt_public_key_fingerprint(usr->private_key,
																   usr->private_key_passphrase,
																   usr->private_key_file ? "private_key_file" : "private_key")));
}

/*
 * sfexport.snowflake_query(server name, statement text, binds text[]):
 * run a statement in Snowflake and return its rows as text arrays.  For
 * administrators (EXECUTE is revoked from PUBLIC): it runs any SQL as the
 * mapped Snowflake user.
 */
Datum
sfexport_snowflake_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SfServerConfig *srv;
	SfUserConfig *usr;
	SfStatement st;
	SfSnowflakeResult *res;
	const char **binds = NULL;
	int			nbinds = 0;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("server and statement must not be null")));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	lookup_server(PG_GETARG_NAME(0), &srv, &usr);

	if (!PG_ARGISNULL(2))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(2);
		Datum	   *elems;
		bool	   *elnulls;

		if (ARR_NDIM(arr) > 1)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("bind values must be a one-dimensional array")));
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &elnulls, &nbinds);
		binds = palloc(sizeof(char *) * Max(nbinds, 1));
		for (int i = 0; i < nbinds; i++)
			binds[i] = elnulls[i] ? NULL : TextDatumGetCString(elems[i]);
	}

	memset(&st, 0, sizeof(st));
	st.sql = text_to_cstring(PG_GETARG_TEXT_PP(1));
	st.nbinds = nbinds;
	st.bind_values = binds;
	res = sf_snowflake_run(srv, usr, &st);

	for (int64 i = 0; i < res->nrows; i++)
	{
		Datum	   *elems = palloc(sizeof(Datum) * Max(res->ncolumns, 1));
		bool	   *elnulls = palloc(sizeof(bool) * Max(res->ncolumns, 1));
		int			dims[1] = {res->ncolumns};
		int			lbs[1] = {1};
		Datum		value;
		bool		isnull = false;

		for (int j = 0; j < res->ncolumns; j++)
		{
			elnulls[j] = res->rows[i][j] == NULL;
			elems[j] = elnulls[j] ? (Datum) 0 : CStringGetTextDatum(res->rows[i][j]);
		}
		value = PointerGetDatum(construct_md_array(elems, elnulls, 1, dims, lbs,
												   TEXTOID, -1, false, TYPALIGN_INT));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}
