/*-------------------------------------------------------------------------
 *
 * fuzz_s3.c
 *		libFuzzer harness: the S3 backend (src/storage_s3.c) fed with
 *		made-up replies: its XML scanner (error Code/Message, UploadId,
 *		ListObjectsV2 pages, entity decoding), s3_check's error mapping
 *		(through storage_common.c's sf_storage_http_error) and the multipart
 *		abort-on-error path.
 *
 * Input: the first byte picks the operation ('0'+n, n modulo 7: put,
 * multipart upload, read, head, delete, list, check), the rest is the
 * reply script (pgstub.h).  Every request is really signed (sigv4.c).
 *
 *-------------------------------------------------------------------------
 */
#include "storage_s3.c"

#include "pgstub.h"

static int	op;

/*
 * options.c is not part of the harness: the harness always gives keys, so
 * the real check (keys from the user mapping, or the host's for a
 * superuser's server) has nothing to refuse.
 */
void
sf_require_aws_credentials(SfServerConfig *srv, SfUserConfig *usr)
{
	if (usr->aws_access_key_id == NULL || usr->aws_secret_access_key == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("no AWS credentials for server \"%s\"", srv->servername)));
}

/*
 * aws_credentials.c is not part of the harness either (its chain reaches
 * the host and metadata services): the keys the harness gives, as the
 * chain's first step (the user mapping) returns them.
 */
const SfAwsCredentials *
sf_aws_credentials(SfServerConfig *srv, SfUserConfig *usr)
{
	static SfAwsCredentials cr;

	cr.access_key_id = usr->aws_access_key_id;
	cr.secret_access_key = usr->aws_secret_access_key;
	cr.session_token = usr->aws_session_token;
	cr.expiration = 0;
	cr.source = "the user mapping";
	cr.from_host = false;
	return &cr;
}

void
sf_aws_credentials_forget(SfServerConfig *srv, SfUserConfig *usr)
{
}

static bool
sink(const char *data, size_t len, void *arg)
{
	/* touch every byte handed over */
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
	srv.region = "eu-west-1";
	srv.endpoint = "http://127.0.0.1:9000";
	srv.connect_timeout_ms = 1000;
	srv.request_timeout_ms = 1000;
	usr.aws_access_key_id = "AKIDEXAMPLE";
	usr.aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	usr.aws_session_token = "session";
	st.ops = &sf_storage_s3_ops;
	st.srv = &srv;
	st.user = &usr;
	st.bucket = "bucket";
	st.prefix = "p/";
	st.part_size = 5 * 1024 * 1024;
	s3_open(&st);

	w.st = &st;
	w.name = "x.csv.gz";
	w.key = "p/x.csv.gz";
	w.content_type = "application/gzip";
	w.cxt = CurrentMemoryContext;
	w.partcxt = CurrentMemoryContext;

	switch (op)
	{
		case 0:
			s3_put(&w, "abc", 3);
			break;
		case 1:
			/* as storage.c drives it: abort (one attempt, no throw) on error */
			PG_TRY();
			{
				s3_mp_start(&w);
				w.nparts = 1;
				s3_mp_part(&w, "part1", 5);
				w.nparts = 2;
				s3_mp_part(&w, "part2", 5);
				s3_mp_complete(&w);
			}
			PG_CATCH();
			{
				HOLD_INTERRUPTS();
				s3_mp_abort(&w);
				RESUME_INTERRUPTS();
				PG_RE_THROW();
			}
			PG_END_TRY();
			break;
		case 2:
			(void) s3_read(&st, "p/x", sink, NULL);
			break;
		case 3:
			(void) s3_head(&st, "p/x", &size);
			break;
		case 4:
			s3_del(&st, "p/x");
			break;
		case 5:
			{
				SfListBounds b = {.max_pages = SF_LIST_MAX_PAGES};
				List	   *l = s3_list(&st, "p/", &b);
				ListCell   *lc;

				foreach(lc, l)
					(void) strlen((char *) lfirst(lc));
			}
			break;
		default:
			{
				SfHttpRequest req;
				SfHttpResponse *resp;

				sf_http_init_request(&req, "GET", "http://127.0.0.1:9000/bucket/p/x?list-type=2");
				resp = sf_http_perform(&req);
				if (resp->curl_error == 0)
					s3_check(&req, resp);
			}
			break;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	op = (data[0] - '0') % 7;
	if (op < 0)
		op += 7;
	fuzz_http_script(data + 1, size - 1);
	(void) fuzz_run(one, NULL);
	return 0;
}
