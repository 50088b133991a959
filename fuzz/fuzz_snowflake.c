/*-------------------------------------------------------------------------
 *
 * fuzz_snowflake.c
 *		libFuzzer harness: the Snowflake SQL API client (src/snowflake.c)
 *		fed with made-up replies.
 *
 * The input is a script of HTTP responses (pgstub.h) that the fake http
 * layer hands out in order: the submit answer (200/202/408/422/401/429/
 * 5xx/anything), the polls, the result partitions.  sf_snowflake_run()
 * goes through its real retry, token renewal, polling, cancel and result
 * paths.  Outcomes: a result (checked for consistency: every row has
 * ncolumns values, every string readable) or an ERROR with a specific
 * SQLSTATE.  Crashes, sanitizer reports, leaks (e.g. a json_t not freed on
 * an error path) and XX000 errors are findings.
 *
 * snowflake.c is included so that its static functions are reachable;
 * the key-pair token functions of jwt.c are replaced by constants.
 *
 *-------------------------------------------------------------------------
 */
#include "snowflake.c"

#include "pgstub.h"

const char *
sf_auth_token(SfServerConfig *srv, SfUserConfig *usr, bool force_new)
{
	return "fuzz-token";
}

char *
sf_jwt_public_key_fingerprint(const char *pem, const char *passphrase,
							  const char *option)
{
	return pstrdup("SHA256:fuzz");
}

char *
sf_jwt_account_name(const char *account)
{
	return pstrdup("FUZZ");
}

static const char *token_type;

static void
one(void *arg)
{
	SfServerConfig srv;
	SfUserConfig usr;
	SfStatement st;
	SfSnowflakeResult *res;
	const char *binds[2] = {"a'b", NULL};

	memset(&srv, 0, sizeof(srv));
	memset(&usr, 0, sizeof(usr));
	memset(&st, 0, sizeof(st));
	srv.servername = "fuzz";
	srv.account = "fuzz-account";
	srv.url = "http://127.0.0.1:1/";
	srv.database = "DB";
	srv.schema = "PUBLIC";
	srv.warehouse = "WH";
	srv.statement_timeout_s = 30;
	srv.connect_timeout_ms = 1000;
	srv.request_timeout_ms = 1000;
	usr.user = "FUZZ";
	usr.token_type = (char *) token_type;
	st.sql = "COPY INTO \"T\" FROM @\"S\" FILES = ('a.csv.gz') CREDENTIALS = (AWS_SECRET_KEY = 'x')";
	st.nbinds = 2;
	st.bind_values = binds;

	res = sf_snowflake_run(&srv, &usr, &st);

	/* a result must be self-consistent */
	if (res->ncolumns < 0 || res->nrows < 0)
		fuzz_fail("negative result size");
	for (int j = 0; j < res->ncolumns; j++)
		if (res->column_names[j] == NULL || res->column_types[j] == NULL)
			fuzz_fail("column %d has no name or type", j);
		else
			(void) (strlen(res->column_names[j]) + strlen(res->column_types[j]));
	for (int64 i = 0; i < res->nrows; i++)
	{
		if (res->rows[i] == NULL)
			fuzz_fail("row %lld missing", (long long) i);
		for (int j = 0; j < res->ncolumns; j++)
			if (res->rows[i][j])
				(void) strlen(res->rows[i][j]);
	}
	(void) sf_result_column(res, "status");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* the last byte picks the credential kind: key pair renews on 401, tokens do not */
	token_type = (size > 0 && (data[size - 1] & 1)) ? "OAUTH" : "KEYPAIR_JWT";
	fuzz_http_script(data, size);
	(void) fuzz_run(one, NULL);
	return 0;
}
