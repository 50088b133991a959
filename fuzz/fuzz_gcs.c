/*-------------------------------------------------------------------------
 *
 * fuzz_gcs.c
 *		libFuzzer harness: the GCS backend (src/storage_gcs.c) fed with
 *		made-up service-account keys and replies: the credentials JSON
 *		(gcs_open), the OAuth token reply (get_token), JSON error bodies
 *		(gcs_check), resumable-upload Range headers (persisted_from), object
 *		metadata and listing pages.
 *
 * Input: the first byte picks the operation ('0'+n, n modulo 8: open with
 * the rest as credentials JSON, token, put, resumable upload, read, head,
 * delete, list); for 1..7 the rest is the reply script (pgstub.h) and the
 * credentials are a valid key made by build.sh (gcs_key.pem next to the
 * binary, or $FUZZ_GCS_KEY), so that the JWT assertion is really signed.
 *
 *-------------------------------------------------------------------------
 */
#include "storage_gcs.c"

#include <libgen.h>

#include "pgstub.h"

static int	op;
static const uint8_t *rest;
static size_t rest_len;
static char *creds_json;		/* malloc'd, valid credentials */
static char chunk[256 * 1024];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *path = getenv("FUZZ_GCS_KEY");
	char		buf[4096];
	char	   *dir;
	FILE	   *f;
	size_t		n;
	json_t	   *j;

	if (path == NULL)
	{
		dir = strdup((*argv)[0]);
		snprintf(buf, sizeof(buf), "%s/gcs_key.pem", dirname(dir));
		free(dir);
		path = buf;
	}
	f = fopen(path, "r");
	if (f == NULL)
		fuzz_fail("cannot read the test key %s (made by fuzz/build.sh)", path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	j = json_pack("{s:s, s:s, s:s, s:s}", "type", "service_account",
				  "client_email", "fuzz@example.iam.gserviceaccount.com",
				  "private_key", buf, "token_uri", "http://127.0.0.1:1/token");
	creds_json = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return 0;
}

/*
 * gcp_credentials.c is not part of the harness (metadata server, token
 * exchange): the harness's server always has a key JSON, so a 401 has only
 * the key's own token to drop; the caches of the others are empty.
 */
void
sf_gcp_metadata_forget(void)
{
}

void
sf_gcp_external_account_forget(void)
{
}

static bool
sink(const char *data, size_t len, void *arg)
{
	volatile char c = 0;

	for (size_t i = 0; i < len; i++)
		c ^= data[i];
	return true;
}

static void
one(void *arg)
{
	SfServerConfig srv;
	SfUserConfig usr;
	SfStorage	st;
	SfStorageWriter w;
	int64		size;

	memset(&srv, 0, sizeof(srv));
	memset(&usr, 0, sizeof(usr));
	memset(&st, 0, sizeof(st));
	memset(&w, 0, sizeof(w));
	srv.servername = "fuzz";
	srv.endpoint = "http://127.0.0.1:4443/";
	srv.connect_timeout_ms = 1000;
	srv.request_timeout_ms = 1000;
	usr.gcs_credentials = op == 0 ? pnstrdup((const char *) rest, rest_len) : creds_json;
	st.ops = &sf_storage_gcs_ops;
	st.srv = &srv;
	st.user = &usr;
	st.bucket = "bucket";
	st.prefix = "p/";
	st.part_size = sizeof(chunk);
	forget_token();
	gcs_open(&st);

	w.st = &st;
	w.name = "x.csv.gz";
	w.key = "p/x.csv.gz";
	w.content_type = "application/gzip";
	w.cxt = CurrentMemoryContext;
	w.partcxt = CurrentMemoryContext;

	switch (op)
	{
		case 0:
			break;
		case 1:
			(void) strlen(get_token(&st));
			break;
		case 2:
			gcs_put(&w, "abc", 3);
			break;
		case 3:
			PG_TRY();
			{
				gcs_mp_start(&w);
				w.nparts = 1;
				gcs_mp_part_or_tail(&w, chunk, sizeof(chunk));
				w.sent += sizeof(chunk);
				w.nparts = 2;
				gcs_mp_part_or_tail(&w, "tail", 4);
				w.sent += 4;
				gcs_mp_complete_if_needed(&w);
			}
			PG_CATCH();
			{
				HOLD_INTERRUPTS();
				gcs_mp_abort(&w);
				RESUME_INTERRUPTS();
				PG_RE_THROW();
			}
			PG_END_TRY();
			break;
		case 4:
			(void) gcs_read(&st, "p/x", sink, NULL);
			break;
		case 5:
			(void) gcs_head(&st, "p/x", &size);
			break;
		case 6:
			gcs_del(&st, "p/x");
			break;
		default:
			{
				SfListBounds b = {.max_pages = SF_LIST_MAX_PAGES};
				List	   *l = gcs_list(&st, "p/", &b);
				ListCell   *lc;

				foreach(lc, l)
					(void) strlen((char *) lfirst(lc));
			}
			break;
	}
	forget_token();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	op = (data[0] - '0') % 8;
	if (op < 0)
		op += 8;
	rest = data + 1;
	rest_len = size - 1;
	fuzz_http_script(op == 0 ? NULL : rest, op == 0 ? 0 : rest_len);
	(void) fuzz_run(one, NULL);
	return 0;
}
