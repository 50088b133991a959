/*-------------------------------------------------------------------------
 *
 * fuzz_sigv4.c
 *		libFuzzer harness: the SigV4 canonicalizer and signer
 *		(src/sigv4.c, sf_sigv4_sign) with arbitrary method, path, query and
 *		headers, both with S3 path rules and with the normalizing,
 *		double-encoding rules of other services.
 *
 * Input lines: method, path, query, then headers "Name:value" (one per
 * line; names that are not HTTP tokens are skipped).  Checked: no crash; the canonical request has the documented
 * six parts; the signature is 64 lower-case hex digits; the signed-header
 * list is lower-case, sorted and names only given headers; signing twice
 * gives the same signature.
 *
 *-------------------------------------------------------------------------
 */
#include "sigv4.c"

#include "pgstub.h"

static const uint8_t *in;
static size_t in_len;

static void
one(void *arg)
{
	char	   *text = pnstrdup((const char *) in, in_len);
	char	   *line[3] = {"", "", ""};
	List	   *headers = NIL;
	char	   *p = text;
	SfSigV4Params prm;
	SfSigV4Result r1;
	SfSigV4Result r2;
	int			nl = 0;
	int			parts = 1;

	for (int i = 0; i < 3 && p; i++)
	{
		char	   *e = strchr(p, '\n');

		line[i] = p;
		if (e)
			*e = '\0';
		p = e ? e + 1 : NULL;
	}
	while (p && *p)
	{
		char	   *e = strchr(p, '\n');

		if (e)
			*e = '\0';
		/*
		 * sfexport signs only headers it builds: names are HTTP tokens
		 * (RFC 9110 tchar), so ';' (the SignedHeaders separator) and
		 * blanks never occur in them.
		 */
		if (strchr(p, ':') && strchr(p, ':') > p &&
			strspn(p, "!#$%&'*+-.^_`|~0123456789"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") ==
			(size_t) (strchr(p, ':') - p))
			headers = lappend(headers, p);
		p = e ? e + 1 : NULL;
	}
	if (headers == NIL)
		headers = lappend(headers, "Host:example.amazonaws.com");

	memset(&prm, 0, sizeof(prm));
	prm.method = line[0][0] ? line[0] : "GET";
	prm.path = line[1][0] ? line[1] : "/";
	prm.query = line[2][0] ? line[2] : NULL;
	prm.headers = headers;
	prm.payload_hash = "UNSIGNED-PAYLOAD";
	prm.access_key_id = "AKIDEXAMPLE";
	prm.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	prm.region = "us-east-1";
	prm.service = in_len > 0 && (in[in_len - 1] & 1) ? "s3" : "service";
	prm.amz_date = "20150830T123600Z";
	prm.s3_path_rules = strcmp(prm.service, "s3") == 0;

	sf_sigv4_sign(&prm, &r1);
	sf_sigv4_sign(&prm, &r2);

	if (strlen(r1.signature) != 64 || strspn(r1.signature, "0123456789abcdef") != 64)
		fuzz_fail("signature is not 64 hex digits: %s", r1.signature);
	if (strcmp(r1.signature, r2.signature) != 0)
		fuzz_fail("signing is not deterministic");
	for (const char *c = r1.canonical_request; *c; c++)
		if (*c == '\n')
			nl++;
	/* method, path, query, headers (one line each, then a blank), signed, hash */
	if (nl < 5)
		fuzz_fail("canonical request has %d newlines", nl);
	for (const char *c = r1.signed_headers; *c; c++)
	{
		if (*c == ';')
			parts++;
		else if (*c >= 'A' && *c <= 'Z')
			fuzz_fail("signed header list is not lower-case: %s", r1.signed_headers);
	}
	{
		/* sorted, and every name appears among the given headers */
		char	   *list = pstrdup(r1.signed_headers);
		char	   *prev = NULL;

		for (char *tok = strtok(list, ";"); tok; tok = strtok(NULL, ";"))
		{
			bool		found = false;
			ListCell   *lc;

			if (prev && strcmp(prev, tok) >= 0)
				fuzz_fail("signed headers not sorted or repeated: %s", r1.signed_headers);
			prev = tok;
			foreach(lc, headers)
			{
				const char *h = lfirst(lc);
				const char *colon = strchr(h, ':');
				char	   *name = pnstrdup(h, colon - h);
				char	   *trimmed = name;

				for (char *c = name; *c; c++)
					*c = pg_tolower((unsigned char) *c);
				while (*trimmed == ' ' || *trimmed == '\t')
					trimmed++;
				for (char *e = trimmed + strlen(trimmed); e > trimmed && (e[-1] == ' ' || e[-1] == '\t'); e--)
					e[-1] = '\0';
				if (strcmp(trimmed, tok) == 0 || strcmp(name, tok) == 0)
					found = true;
			}
			if (!found)
				fuzz_fail("signed header \"%s\" was not given", tok);
		}
	}
	if (strstr(r1.authorization, r1.signature) == NULL)
		fuzz_fail("Authorization lacks the signature");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	in = data;
	in_len = size;
	(void) fuzz_run(one, NULL);
	return 0;
}
