/*-------------------------------------------------------------------------
 *
 * pgstub.h
 *		What the fuzz harnesses share: the stand-in for the server runtime
 *		(pgstub.c: memory contexts, ereport, lists) and the scripted HTTP
 *		layer (fake_http.c).
 *
 * Harnesses are compiled against the PostgreSQL server headers, exactly as
 * the extension is, but linked into a plain executable: pgstub.c provides
 * the few server facilities the parsers use, libpgcommon/libpgport provide
 * StringInfo, psprintf and snprintf, and build.sh generates an aborting
 * stub for every other server symbol a harness happens to reference (so
 * reaching one is reported as a crash naming it).
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_FUZZ_PGSTUB_H
#define SF_FUZZ_PGSTUB_H

#include <stddef.h>
#include <stdint.h>

/*
 * Run fn(arg) as one fuzz iteration: in a fresh memory context that is
 * deleted afterwards, inside PG_TRY.  An ereport(ERROR) is a handled
 * outcome; returns true when fn returned normally.  An ERROR without a
 * specific SQLSTATE (XX000, e.g. elog) aborts: every error a user can
 * provoke must carry an errcode (STYLE.md).
 */
extern bool fuzz_run(void (*fn) (void *), void *arg);

/* Message and SQLSTATE of the last error fuzz_run caught. */
extern const char *fuzz_last_error_message(void);
extern int	fuzz_last_error_code(void);

/* Report a broken invariant: prints and aborts (libFuzzer records a crash). */
extern void fuzz_fail(const char *fmt,...) __attribute__((noreturn, format(printf, 1, 2)));

/* Let the fake clock run: seconds returned by GetCurrentTimestamp advance. */
extern int64_t fuzz_clock_us;

/* ---- fake_http.c: scripted responses ----
 *
 * The fuzz input is a sequence of responses separated by a line "~~~".
 * Each response starts with an optional status line of three digits (200
 * when absent), then optional header lines "@name: value", then the body.
 * sf_http_request()/sf_http_perform() hand them out in order; when they
 * run out, the request fails as a transport error would
 * (ERRCODE_CONNECTION_FAILURE).
 */
extern void fuzz_http_script(const uint8_t *data, size_t size);
extern int	fuzz_http_requests(void);	/* requests served so far */

#endif
