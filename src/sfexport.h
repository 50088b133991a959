/*-------------------------------------------------------------------------
 *
 * sfexport.h
 *		Internal declarations shared by the sfexport source files.
 *
 * One header for the whole extension, grouped by the file that exports each
 * declaration (as postgres_fdw does).  A newcomer looking for "who owns X"
 * should find the answer here.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SFEXPORT_H
#define SFEXPORT_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "nodes/execnodes.h"
#include "storage/block.h"
#include "utils/array.h"
#include "utils/relcache.h"

#include "compat.h"

#define SFEXPORT_VERSION "0.2.0"
#define SFEXPORT_SCHEMA "sfexport"
#define SFEXPORT_USER_AGENT "sfexport/" SFEXPORT_VERSION

/* ----------------------------------------------------------------
 * sfexport.c — module entry point and GUCs
 * ----------------------------------------------------------------
 */
extern int	sfexport_flush_interval_s;	/* sfexport.flush_interval */
extern int	sfexport_flush_size_kb; /* sfexport.flush_size */
extern int	sfexport_max_file_size_kb;	/* sfexport.max_file_size */
extern int	sfexport_max_workers;	/* sfexport.max_workers */
extern int	sfexport_batch_size;	/* sfexport.batch_size */
extern bool sfexport_capture_binary;	/* sfexport.capture_binary */
extern int	sfexport_jwt_lifetime_s;	/* sfexport.jwt_lifetime */

extern bool sfexport_preloaded;
extern void sfexport_require_preload(const char *what);

/* what a process waits for on its latch (pg_stat_activity.wait_event) */
typedef enum SfWaitEvent
{
	SF_WAIT_LAUNCHER_MAIN,		/* launcher between scans */
	SF_WAIT_WORKER_MAIN,		/* worker between rounds */
	SF_WAIT_HTTP_BACKOFF,		/* before retrying an HTTP request */
	SF_WAIT_SNOWFLAKE_POLL,		/* before polling a running statement */
	SF_WAIT_GLUE_BACKOFF		/* before retrying a throttled Glue call */
} SfWaitEvent;
extern uint32 sf_wait_event(SfWaitEvent which);

/* ----------------------------------------------------------------
 * options.c — option catalogue, validator, parsed configuration
 * ----------------------------------------------------------------
 */
typedef enum SfLocationKind
{
	SF_LOCATION_S3,
	SF_LOCATION_GCS,
	SF_LOCATION_FILE
} SfLocationKind;

typedef enum SfCompression
{
	SF_COMPRESSION_GZIP,
	SF_COMPRESSION_ZSTD,
	SF_COMPRESSION_NONE
} SfCompression;

/* Parsed storage location: s3://bucket/prefix/, gcs://bucket/prefix/, file:///dir/ */
typedef struct SfLocation
{
	SfLocationKind kind;
	char	   *bucket;			/* S3/GCS bucket; NULL for file */
	char	   *prefix;			/* object key prefix ("" or ending in '/'); dir for file */
} SfLocation;

/* How staged files are loaded: warehouse COPY or Snowpipe's REST API. */
typedef enum SfLoadMode
{
	SF_LOAD_COPY,
	SF_LOAD_SNOWPIPE
} SfLoadMode;

/* Server options (CREATE SERVER ... OPTIONS), with defaults applied. */
typedef struct SfServerConfig
{
	Oid			serverid;
	char	   *servername;
	char	   *account;
	char	   *url;			/* SQL API base URL, derived from account if not set */
	char	   *database;
	char	   *schema;
	char	   *warehouse;		/* NULL = user's default */
	char	   *role;			/* NULL = user's default */
	char	   *stage;
	char	   *location_text;
	SfLocation	location;
	char	   *region;
	char	   *endpoint;		/* storage endpoint override, NULL = cloud default */
	char	   *storage_integration;
	char	   *file_format;
	SfCompression compression;
	int			compression_level;	/* 0 = the default of the compression */
	char	   *ca_file;
	bool		keep_files;
	SfLoadMode	load_mode;		/* default for its tables */
	int			connect_timeout_ms;
	int			request_timeout_ms;
	int			statement_timeout_s;
	int			flush_interval_s;	/* -1 = not set here */
	int			flush_size_kb;	/* -1 = not set here */
	int			max_file_size_kb;	/* -1 = not set here */
	int			batch_size;		/* -1 = not set here */
	bool		upper_case_identifiers; /* upper-case names derived from
										 * PostgreSQL identifiers */
} SfServerConfig;

/* User mapping options: credentials.  Never log or print these. */
typedef struct SfUserConfig
{
	char	   *user;
	char	   *private_key;	/* PEM text, from private_key or private_key_file */
	char	   *private_key_file;
	char	   *private_key_passphrase;
	char	   *token;
	char	   *token_type;		/* KEYPAIR_JWT, OAUTH or PROGRAMMATIC_ACCESS_TOKEN */
	char	   *aws_access_key_id;
	char	   *aws_secret_access_key;
	char	   *aws_session_token;
	char	   *gcs_credentials;	/* JSON text, from gcs_credentials or _file */
	char	   *gcs_credentials_file;
	Oid			serverid;
	Oid			userid;			/* whose mapping was asked for */
	bool		host_credentials_allowed;	/* sf_server_may_use_host_credentials() */
	bool		aws_from_host;	/* the AWS keys are the database server's own
								 * (environment): sign with them, never give
								 * them to Snowflake */
} SfUserConfig;

/* Foreign table options, merged with server options and GUC defaults. */
typedef struct SfTableConfig
{
	Oid			relid;
	Oid			serverid;
	char	   *table;			/* Snowflake target table */
	char	   *schema;			/* Snowflake schema; server's when not set */
	int			flush_interval_s;
	int			flush_size_kb;
	int			max_file_size_kb;
	int			batch_size;
	int			batch_size_option;	/* table or server option, -1 if unset */
	SfLoadMode	load_mode;		/* table option, else the server's */
} SfTableConfig;

extern SfServerConfig *sf_get_server_config(Oid serverid);
extern SfUserConfig *sf_get_user_config(Oid serverid, Oid userid);
extern bool sf_server_may_use_host_credentials(Oid serverid);
extern void sf_require_aws_credentials(SfServerConfig *srv, SfUserConfig *usr);
extern SfTableConfig *sf_get_table_config(Oid relid);
extern char *sf_column_target_name(Oid relid, AttrNumber attnum);
extern char *sf_identifier_case(bool upper, const char *name);
extern bool sf_parse_location(const char *text, SfLocation *loc, char **why);
extern const char *sf_compression_name(SfCompression c);
extern const char *sf_compression_extension(SfCompression c);

/* ----------------------------------------------------------------
 * encode.c — row encoder: one row to one CSV record (UTF-8, no newline),
 * or to a binary outbox payload that the worker renders to the same record
 * ----------------------------------------------------------------
 */
typedef struct SfRowEncoder SfRowEncoder;
typedef struct SfRowDecoder SfRowDecoder;

/* first byte of a binary outbox payload (a CSV payload never starts below 0x20) */
#define SF_PAYLOAD_BINARY		0x01
/* rows whose detoasted values exceed this are encoded to CSV at INSERT */
#define SF_DEFER_MAX_ROW_BYTES	(1024 * 1024)

extern SfRowEncoder *sf_encoder_create(Relation rel);
extern void sf_encode_row(SfRowEncoder *enc, TupleTableSlot *slot,
						  StringInfo out);
extern void sf_encode_payload(SfRowEncoder *enc, TupleTableSlot *slot,
							  bool allow_binary, StringInfo out);
extern bool sf_encoder_deferrable(SfRowEncoder *enc);
extern int	sf_encoder_ncolumns(SfRowEncoder *enc);
extern uint64 sf_encoder_shape(SfRowEncoder *enc);
extern void sf_encoder_shape_arrays(SfRowEncoder *enc, Datum *names,
									Datum *types);
extern void sf_encoder_layout_arrays(SfRowEncoder *enc, Datum *oids,
									 Datum *typmods, Datum *lens,
									 Datum *byvals, Datum *aligns);
extern SfRowDecoder *sf_decoder_create(Oid relid, int64 shape);
extern const char *sf_outbox_render(bytea *payload, SfRowDecoder *dec,
									StringInfo buf, int *len);
extern const char *sf_csv_format_options(void);

/* ----------------------------------------------------------------
 * outbox.c — the WAL-logged outbox written in the inserting transaction
 * ----------------------------------------------------------------
 */
typedef struct SfOutboxWriter SfOutboxWriter;

/* A shape's columns and their types as recorded in sfexport.shapes. */
typedef struct SfShapeLayout
{
	int			ncols;
	char	  **names;
	Oid		   *oids;			/* base type OIDs */
	int32	   *typmods;
	int16	   *lens;
	bool	   *byvals;
	char	   *aligns;
} SfShapeLayout;

#define SF_OUTBOX_SEGMENTS	2	/* sfexport.outbox_0, outbox_1 */
extern Oid	sf_outbox_relid(bool missing_ok);
extern Oid	sf_outbox_segment_relid(int seg, bool missing_ok);
extern SfShapeLayout *sf_shape_layout(Oid relid, int64 shape);
extern SfOutboxWriter *sf_outbox_begin(Relation ftrel);
extern void sf_outbox_put(SfOutboxWriter *w, TupleTableSlot *slot);
extern void sf_outbox_end(SfOutboxWriter *w);
extern int	sf_outbox_batch_size(SfOutboxWriter *w);
extern void sf_outbox_init(void);

/* ----------------------------------------------------------------
 * http.c — the only file that talks to libcurl
 *
 * Contract (shared by storage, Snowflake and Glue clients):
 *	- sf_http_perform() makes ONE attempt and never throws for transport
 *	  problems: it fills resp->curl_error / resp->error_text instead, so the
 *	  caller can decide to retry.  It does throw for cancel/shutdown
 *	  (CHECK_FOR_INTERRUPTS after an aborted transfer) and out-of-memory.
 *	- sf_http_request() wraps it with retries: transport errors, 429, 500,
 *	  502, 503, 504 are retried with exponential backoff and full jitter,
 *	  honouring Retry-After; other statuses are returned to the caller.
 *	  Before every attempt it calls req->prepare(req, attempt, arg) when
 *	  set, so a caller can re-sign or mark a retry (Snowflake's retry=true).
 *	  After the last attempt, a transport error is raised with
 *	  ERRCODE_CONNECTION_FAILURE naming method and redacted URL.
 *	- Every transfer: CURLOPT_NOSIGNAL, http/https only, connect and total
 *	  timeouts, TLS verification on (ca_file optional), proxy environment
 *	  honoured, progress callback checking interrupts.
 *	- Messages show req->log_url (or the URL without its query string),
 *	  never header values, bodies or query strings.
 *	- Callbacks (read_fn, write_fn) run inside libcurl: they must not throw
 *	  (no ereport, no palloc that can fail); set a flag and return 0/false.
 *	  A streamed body (read_fn) is retried only when prepare is set, since
 *	  prepare must rewind it.  Redirects are not followed.
 *	- With decode_content (the default) gzip/deflate responses are decoded
 *	  by libcurl; the content-encoding header is still listed in headers.
 * ----------------------------------------------------------------
 */
typedef struct SfHttpRequest SfHttpRequest;

/* Streaming request body: copy up to max bytes into buf, return count (0 = end). */
typedef size_t (*SfHttpReadFn) (char *buf, size_t max, void *arg);
/*
 * Streaming response body sink: return false to abort the transfer.  It
 * receives the body of 2xx responses only; other bodies are buffered in
 * resp->body so that the caller can read the error.
 */
typedef bool (*SfHttpWriteFn) (const char *data, size_t len, void *arg);
/* Called before each attempt (attempt = 0, 1, ...). */
typedef void (*SfHttpPrepareFn) (SfHttpRequest *req, int attempt, void *arg);

struct SfHttpRequest
{
	const char *method;			/* "GET", "PUT", "POST", "DELETE", "HEAD" */
	char	   *url;			/* full URL, may be replaced by prepare() */
	const char *log_url;		/* URL safe to show in messages, or NULL */
	List	   *headers;		/* char * "Name: value", replaceable by prepare() */
	const char *body;			/* in-memory request body, or NULL */
	size_t		body_len;
	SfHttpReadFn read_fn;		/* streaming body instead of body */
	void	   *read_arg;
	int64		read_len;		/* length of the streamed body, -1 = chunked */
	SfHttpWriteFn write_fn;		/* stream the response body instead of buffering */
	void	   *write_arg;
	SfHttpPrepareFn prepare;
	void	   *prepare_arg;
	int			connect_timeout_ms;
	int			timeout_ms;
	const char *ca_file;
	int			max_attempts;	/* sf_http_request: total attempts, >= 1 */
	size_t		max_response_bytes; /* buffered body limit, 0 = 64 MB */
	/* added after the first contract; sf_http_init_request sets defaults */
	bool		decode_content; /* ask for and undo gzip/deflate content
								 * encoding (default true); storage reads set
								 * false to get the stored bytes */
	int			backoff_base_ms;	/* first retry delay ceiling, default 250 */
	int			backoff_max_ms; /* largest retry delay ceiling, default 20 s */
	TimestampTz deadline;		/* 0, or sf_http_request gives up then: no
								 * retry after it, each attempt's timeout_ms
								 * cut to it (listings' time budget) */
	/* set by the transfer, kept across attempts (never reset by a retry) */
	bool		body_delivered; /* an attempt handed the whole request (and
								 * body) to the network: the server may
								 * have received it, even if it never
								 * answered */
};

typedef struct SfHttpResponse
{
	long		status;			/* HTTP status, 0 when no response */
	StringInfoData body;		/* buffered body (with write_fn: only non-2xx) */
	List	   *headers;		/* char * "name: value", names lower-cased */
	int			curl_error;		/* CURLcode of a failed transfer, 0 if none */
	char	   *error_text;		/* readable transport error, NULL if none */
	int			attempts;		/* attempts made by sf_http_request */
	int64		sink_bytes;		/* bytes given to write_fn (no retry once > 0) */
	long		proxy_status;	/* status of a refused proxy CONNECT, else 0 */
} SfHttpResponse;

extern void sf_http_init_request(SfHttpRequest *req, const char *method,
								 const char *url);
extern SfHttpResponse *sf_http_perform(SfHttpRequest *req);
extern SfHttpResponse *sf_http_request(SfHttpRequest *req);
extern void sf_http_apply_deadline(SfHttpRequest *req);
extern const char *sf_http_header(SfHttpResponse *resp, const char *name);
extern bool sf_http_header_value_ok(const char *value);
extern bool sf_http_same_origin(const char *url, const char *base);
extern char *sf_http_url_encode(const char *s, bool keep_slash);

/* ----------------------------------------------------------------
 * sigv4.c — AWS Signature Version 4 (pure functions, OpenSSL)
 * ----------------------------------------------------------------
 */
typedef struct SfSigV4Params
{
	const char *method;
	const char *path;			/* URI path as sent (percent-encoded) */
	const char *query;			/* query string as sent, without '?', or NULL */
	List	   *headers;		/* char * "Name: value" to sign, Host included */
	const char *payload_hash;	/* hex SHA-256 of the body, or UNSIGNED-PAYLOAD */
	const char *access_key_id;
	const char *secret_access_key;
	const char *region;
	const char *service;		/* "s3", "glue", ... */
	const char *amz_date;		/* YYYYMMDDTHHMMSSZ, also sent as X-Amz-Date */
	bool		s3_path_rules;	/* S3: path used as is; else normalized and
								 * encoded a second time */
} SfSigV4Params;

typedef struct SfSigV4Result
{
	char	   *canonical_request;
	char	   *string_to_sign;
	char	   *signed_headers;
	char	   *signature;		/* hex */
	char	   *authorization;	/* value of the Authorization header */
} SfSigV4Result;

extern void sf_sigv4_sign(const SfSigV4Params *p, SfSigV4Result *res);
/* How a service's requests are signed (S3, Glue): see sf_sigv4_request_headers. */
typedef struct SfAwsRequestSigning
{
	const char *host;			/* Host header value */
	const char *region;
	const char *service;		/* "s3", "glue" */
	bool		s3_path_rules;
	bool		content_sha256; /* send x-amz-content-sha256 (S3) */
	const char *access_key_id;
	const char *secret_access_key;
	const char *session_token;	/* NULL without session credentials */
} SfAwsRequestSigning;

extern List *sf_sigv4_request_headers(const SfAwsRequestSigning *s,
									  const char *method, const char *path,
									  const char *query, List *extra_headers,
									  const char *payload_hash,
									  const char *amz_date);
extern void sf_aws_split_endpoint(const char *endpoint, char **base, char **host);

extern void sf_sigv4_amz_date(time_t t, char *buf);	/* buf: 17 bytes */
extern char *sf_sha256_hex(const void *data, size_t len);

/* ----------------------------------------------------------------
 * jwt.c — Snowflake key-pair authentication: keys, JWTs, token cache
 *
 * Key material, passphrases and tokens never appear in messages.
 * ----------------------------------------------------------------
 */
extern void sf_jwt_check_private_key(const char *pem, const char *passphrase,
									 const char *option);
extern char *sf_jwt_public_key_fingerprint(const char *pem,
										   const char *passphrase,
										   const char *option);
extern char *sf_jwt_account_name(const char *account);
extern char *sf_jwt_make(const char *account, const char *user,
						 const char *pem, const char *passphrase,
						 const char *option, int64 iat, int lifetime_s);
extern const char *sf_auth_token(SfServerConfig *srv, SfUserConfig *usr,
								 bool force_new);
extern void sf_auth_forget_all(void);

/* ----------------------------------------------------------------
 * snowflake.c — Snowflake SQL API v2 client, quoting for generated SQL
 * ----------------------------------------------------------------
 */

/* One statement to execute. */
typedef struct SfStatement
{
	const char *sql;			/* one statement, with ? bind markers */
	const char *log_sql;		/* as shown in messages; NULL = sf_redact_sql(sql) */
	int			nbinds;
	const char **bind_types;	/* Snowflake binding types (TEXT, FIXED, ...); NULL = all TEXT */
	const char **bind_values;	/* text values; a NULL entry binds SQL NULL */
	int			timeout_s;		/* 0 = the server's statement_timeout */
	const char *query_tag;		/* QUERY_TAG parameter, or NULL */
	bool	   *rejected;		/* if set: true when Snowflake answered that the
								 * statement failed (it ended, changing nothing) */
} SfStatement;

/* The result of a statement: every value as text (NULL for SQL NULL). */
typedef struct SfSnowflakeResult
{
	int			ncolumns;
	char	  **column_names;	/* as Snowflake returns them (COPY: upper case) */
	char	  **column_types;	/* Snowflake type names: fixed, text, ... */
	int64		nrows;			/* over all partitions */
	char	 ***rows;			/* rows[i][j] */
	char	   *statement_handle;
	char	   *sql_state;		/* "00000" on success */
	char	   *message;		/* e.g. "Statement executed successfully." */
} SfSnowflakeResult;

extern SfSnowflakeResult *sf_snowflake_run(SfServerConfig *srv, SfUserConfig *usr,
										   const SfStatement *stmt);
extern SfSnowflakeResult *sf_snowflake_execute(SfServerConfig *srv, SfUserConfig *usr,
											   const char *sql, int nbinds,
											   const char **bind_types,
											   const char **bind_values);
extern int	sf_result_column(SfSnowflakeResult *res, const char *name);
extern char *sf_remote_text(const char *utf8);
extern char *sf_quote_ident(const char *ident);
extern char *sf_quote_literal(const char *value);
extern char *sf_redact_sql(const char *sql);

/* ----------------------------------------------------------------
 * compress.c — streaming gzip / zstd / none for staged files
 * ----------------------------------------------------------------
 */
typedef struct SfCompressor SfCompressor;
typedef void (*SfCompressSink) (const char *data, size_t len, void *arg);

#define SF_GZIP_DEFAULT_LEVEL	1
#define SF_ZSTD_DEFAULT_LEVEL	1
extern SfCompressor *sf_compress_begin(SfCompression kind, int level,
									   SfCompressSink sink, void *sink_arg);
extern void sf_compress_write(SfCompressor *c, const char *data, size_t len);
extern void sf_compress_finish(SfCompressor *c);
extern int64 sf_compress_in_bytes(SfCompressor *c);
/* exact after sf_compress_finish(); before, with an estimate for buffered input */
extern int64 sf_compress_out_bytes(SfCompressor *c);

/* ----------------------------------------------------------------
 * launcher.c — shared memory, the launcher, per-database worker slots,
 * and waking workers at commit
 * ----------------------------------------------------------------
 */
extern int	sfexport_launcher_naptime_s;	/* sfexport.launcher_naptime */

extern void sf_launcher_register(void);
extern void sf_launcher_request_shmem(void);
extern bool sf_worker_claim_slot(Oid dboid);
extern bool sf_worker_take_flush_request(bool *cut_backoffs);
extern uint64 sf_worker_committed_bytes(void);
extern void sf_notify_commit(uint64 bytes);
extern int	sf_outbox_current_segment(void);
extern int	sf_worker_flip_segment(void);
extern bool sf_worker_flush_pending(void);
extern PGDLLEXPORT void sfexport_launcher_main(Datum arg);

/* ----------------------------------------------------------------
 * worker.c — the per-database export worker: scheduling loop
 * ----------------------------------------------------------------
 */
extern int	sfexport_manifest_retention_s;	/* sfexport.manifest_retention */
extern PGDLLEXPORT void sfexport_worker_main(Datum arg);
extern bool sf_run_transaction(void (*fn) (void *arg), void *arg, char **message);

/* ----------------------------------------------------------------
 * flush.c — outbox rows of one table and shape into staged files
 * ----------------------------------------------------------------
 */
typedef struct SfFlushResult
{
	int			files;
	int64		rows;
	int64		bytes;			/* compressed bytes staged */
	bool		more;			/* rows left (file size limit reached) */
} SfFlushResult;

/* Where the row-by-row path stopped: segment and block. */
typedef struct SfOutboxPos
{
	int			seg;
	BlockNumber block;
} SfOutboxPos;

typedef struct SfShapeKey
{
	Oid			relid;
	int64		shape;
} SfShapeKey;

typedef struct SfDrainResult
{
	bool		locked;			/* got the segment; else nothing was done */
	bool		truncated;		/* emptied with TRUNCATE */
	int64		other_rows;		/* rows of shapes that were not due */
	SfFlushResult staged;
} SfDrainResult;

extern void sf_flush_one_file(Oid relid, int64 shape, SfOutboxPos *pos,
							  TimestampTz cutoff, SfFlushResult *res);
extern void sf_flush_drain(const SfShapeKey *due, int ndue, int seg,
						   SfDrainResult *res);
extern char *sf_target_name(SfServerConfig *srv, SfTableConfig *tbl);
extern Oid	sf_worker_user(Oid serverid);

/* ----------------------------------------------------------------
 * load.c — COPY INTO for staged files, per-file results, cleanup
 * ----------------------------------------------------------------
 */
extern int	sf_load_staged(void);
extern int	sf_delete_loaded_files(void);
extern char *sf_copy_statement(SfServerConfig *srv, const char *target,
							   ArrayType *columns, ArrayType *types,
							   List *names);	/* NIL: no FILES clause (a pipe) */
extern bool sf_pipe_files_pending;	/* files wait for a Snowpipe report */

/* ----------------------------------------------------------------
 * snowpipe.c — Snowpipe REST API (insertFiles, insertReport,
 * loadHistoryScan) and the pipe of a target and shape
 * ----------------------------------------------------------------
 */
typedef struct SfPipeFileReport
{
	char	   *path;			/* relative to the stage location */
	char	   *status;			/* LOADED, LOAD_FAILED, PARTIALLY_LOADED, LOAD_IN_PROGRESS */
	char	   *rows_parsed;
	char	   *rows_inserted;
	char	   *errors_seen;
	char	   *first_error;
	char	   *first_error_line;
	char	   *first_error_column;
} SfPipeFileReport;

extern int	sfexport_snowpipe_poll_interval_ms; /* sfexport.snowpipe_poll_interval */
extern int	sfexport_snowpipe_report_deadline_s;	/* sfexport.snowpipe_report_deadline */
extern char *sf_pipe_sql_name(const char *target, int64 shape);
extern char *sf_pipe_rest_name(const char *target, int64 shape);
extern char *sf_pipe_statement(SfServerConfig *srv, const char *target, int64 shape,
							   ArrayType *columns, ArrayType *types);
extern void sf_snowpipe_insert_files(SfServerConfig *srv, SfUserConfig *usr,
									 const char *pipe, List *paths);
extern List *sf_snowpipe_insert_report(SfServerConfig *srv, SfUserConfig *usr,
									   const char *pipe, char **begin_mark);
extern List *sf_snowpipe_load_history(SfServerConfig *srv, SfUserConfig *usr,
									  const char *pipe, TimestampTz start,
									  TimestampTz end);

/* ----------------------------------------------------------------
 * setup.c — Snowflake-side setup (file format, stage, target tables),
 * the PostgreSQL → Snowflake type mapping, and schema evolution at load
 * ----------------------------------------------------------------
 */
extern char *sf_setup_snowflake_type(Oid typid, int32 typmod);
extern void sf_setup_evolve(SfServerConfig *srv, SfUserConfig *usr,
							const char *target, ArrayType *columns,
							ArrayType *types);
extern void sf_setup_forget_evolved(void);

/* ----------------------------------------------------------------
 * storage.c — object storage interface (backends: storage_s3.c,
 * storage_gcs.c, storage_local.c), chosen by the server's location scheme
 *
 * Object names are relative to the location's prefix.  A writer streams one
 * object with bounded memory: bytes are buffered up to the part size
 * (sfexport.upload_part_size); an object that ends before the buffer fills
 * is sent with one request (S3 PUT, GCS media upload), a larger one as an
 * S3 multipart upload or a GCS resumable upload, one part at a time.  A
 * local directory is written through a temporary file that is fsynced and
 * renamed into place.  The object is visible only after sf_storage_finish().
 *
 * Errors are thrown (ERRCODE_CONNECTION_FAILURE for transport problems and
 * 5xx after retries, ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION for 401 and
 * 403, ERRCODE_UNDEFINED_OBJECT for a missing bucket or directory), naming
 * the request and the service's own error code and message.
 *
 * sf_storage_abort() may be called from a PG_CATCH block: it holds
 * interrupts, makes a single attempt to abort the multipart/resumable upload
 * (or removes the temporary file), logs a WARNING if that fails and never
 * throws for remote problems.
 * ----------------------------------------------------------------
 */
typedef struct SfStorage SfStorage;
typedef struct SfStorageWriter SfStorageWriter;

extern int	sfexport_upload_part_size_kb;	/* sfexport.upload_part_size */

extern void sf_storage_define_gucs(void);
extern SfStorage *sf_storage_open(SfServerConfig *srv, SfUserConfig *user);
extern char *sf_storage_uri(SfStorage *st, const char *name);
extern SfStorageWriter *sf_storage_begin_write(SfStorage *st, const char *name,
											   const char *content_type);
extern void sf_storage_write(SfStorageWriter *w, const void *data, size_t len);
extern int64 sf_storage_finish(SfStorageWriter *w);	/* returns bytes written */
extern void sf_storage_abort(SfStorageWriter *w);
extern bool sf_storage_read(SfStorage *st, const char *name,
							SfHttpWriteFn sink, void *arg);	/* false: no such object */
extern bool sf_storage_head(SfStorage *st, const char *name, int64 *size);
extern void sf_storage_delete(SfStorage *st, const char *name);	/* absent is fine */
extern List *sf_storage_list(SfStorage *st, const char *prefix);	/* names, sorted */

/*
 * Bounds of one listing (sf_storage_list_bounded): a listing stops after
 * max_pages requests or at deadline, whatever the store answers, so that an
 * endpoint that pages forever (IsTruncated=true without end) or crawls can
 * neither exhaust the worker's memory nor hold it.
 */
#define SF_LIST_MAX_PAGES	100		/* S3, GCS: up to 1000 names per page */
#define SF_LIST_MAX_SECONDS 120
typedef struct SfListBounds
{
	int			max_pages;		/* requests at most (0: SF_LIST_MAX_PAGES) */
	TimestampTz deadline;		/* no request starts after it (0: none) */
	const char *start_after;	/* a name: list only the names after it, or NULL */
	bool		truncated;		/* out: stopped at a bound; more names may follow */
	int			pages;			/* out: requests made */
} SfListBounds;
extern List *sf_storage_list_bounded(SfStorage *st, const char *prefix, SfListBounds *b);

/* Internal to storage*.c: what a backend implements. Keys are full keys. */
typedef struct SfStorageOps
{
	const char *name;			/* "S3", "GCS", "local directory" */
	void		(*open) (SfStorage *st);	/* check config, set st->priv */
	void		(*put) (SfStorageWriter *w, const char *data, size_t len);
	void		(*mp_start) (SfStorageWriter *w);
	void		(*mp_part) (SfStorageWriter *w, const char *data, size_t len);
	void		(*mp_complete) (SfStorageWriter *w);
	void		(*mp_abort) (SfStorageWriter *w);	/* one attempt, no remote throw */
	bool		(*read) (SfStorage *st, const char *key, SfHttpWriteFn sink, void *arg);
	bool		(*head) (SfStorage *st, const char *key, int64 *size);
	void		(*del) (SfStorage *st, const char *key);
	/* b->start_after is a full key here; set b->truncated, b->pages */
	List	   *(*list) (SfStorage *st, const char *keyprefix, SfListBounds *b);
} SfStorageOps;

struct SfStorage
{
	const SfStorageOps *ops;
	SfServerConfig *srv;
	SfUserConfig *user;
	char	   *bucket;			/* NULL for a local directory */
	char	   *prefix;			/* key prefix, or the directory */
	size_t		part_size;		/* bytes per part/chunk */
	TimestampTz deadline;		/* 0, or requests give up then (SfHttpRequest) */
	void	   *priv;			/* backend state */
};

struct SfStorageWriter
{
	SfStorage  *st;
	char	   *name;			/* as given */
	char	   *key;			/* prefix + name */
	char	   *content_type;
	MemoryContext cxt;			/* the writer and its buffer */
	MemoryContext partcxt;		/* reset after every part */
	StringInfoData buf;			/* bytes not yet sent, < part_size */
	int64		total;			/* bytes given to sf_storage_write */
	int64		sent;			/* bytes sent in finished parts */
	int			nparts;
	bool		multipart;
	bool		done;			/* finished or aborted */
	void	   *priv;			/* backend state */
};

extern const SfStorageOps sf_storage_s3_ops;
extern const SfStorageOps sf_storage_gcs_ops;
extern const SfStorageOps sf_storage_local_ops;
extern void sf_storage_http_error(const char *service, SfHttpRequest *req,
								  SfHttpResponse *resp, const char *code,
								  const char *message);

/* ----------------------------------------------------------------
 * hive_types.c — Hive type strings (Glue column types) to Snowflake types
 * ----------------------------------------------------------------
 */
typedef enum SfHiveKind
{
	SF_HIVE_PRIMITIVE,
	SF_HIVE_ARRAY,
	SF_HIVE_MAP,
	SF_HIVE_STRUCT,
	SF_HIVE_UNION
} SfHiveKind;

typedef struct SfHiveType
{
	SfHiveKind	kind;
	char	   *snowflake;		/* Snowflake type: VARCHAR, NUMBER(10,0), ARRAY ... */
} SfHiveType;

extern bool sf_hive_parse_type(const char *hive, SfHiveType *out, char **error);

/* ----------------------------------------------------------------
 * glue.c — AWS Glue Data Catalog client and glue_sync (external tables)
 * ----------------------------------------------------------------
 */
typedef struct SfGlueSyncArgs
{
	Oid			serverid;
	Oid			userid;			/* whose user mapping */
	char	   *glue_database;
	char	   *pattern;		/* LIKE pattern */
	bool		dry_run;
	bool		drop_missing;
	char	   *target_database;	/* NULL = derived */
	char	   *target_schema;
} SfGlueSyncArgs;

/* called once per Glue table (and per table gone from Glue) */
typedef void (*SfGlueEmitFn) (void *arg, const char *glue_table, const char *action,
							  const char *reason, const char *statement);

extern bool sf_glue_parse_stage_map(const char *value, const char *db,
									const char *schema, List **entries,
									char **why);
extern void sf_glue_sync_run(SfGlueSyncArgs *a, SfGlueEmitFn emit, void *emit_arg);
extern void sf_glue_periodic_options(Oid serverid, List **databases, bool *drop_missing);
extern char *sf_glue_shown_name(const char *name);	/* control characters as "?" */

/* ----------------------------------------------------------------
 * glue_periodic.c — glue_sync's state (sfexport.glue_sync_state) and the
 * worker's periodic Glue sync
 * ----------------------------------------------------------------
 */
typedef struct SfGlueState		/* a row of sfexport.glue_sync_state */
{
	char	   *glue_table;
	char	   *target_table;
	char	   *hash;			/* SHA-256 of the statement applied */
	bool		seen;			/* for glue_sync: still in Glue */
} SfGlueState;

extern List *sf_glue_state_load(Oid serverid, const char *glue_db, const char *tdb,
								const char *tschema);
extern void sf_glue_state_save(Oid serverid, const char *glue_db, const char *tdb,
							   const char *tschema, const char *glue_table,
							   const char *target_table, const char *hash);
extern void sf_glue_state_delete(Oid serverid, const char *glue_db, const char *tdb,
								 const char *tschema, const char *glue_table);
extern void sf_glue_periodic(void);	/* worker housekeeping, outside a transaction */

/* ----------------------------------------------------------------
 * elevated.c — SQL run with more rights than the caller's: a locked
 * search_path for the launcher and workers, the role switch of glue_sync
 * ----------------------------------------------------------------
 */
#define SF_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

typedef struct SfElevated
{
	Oid			saved_user;
	int			saved_sec;
	int			nestlevel;		/* GUC nest level of the safe search_path */
} SfElevated;

extern void sf_lock_search_path(void);
extern void sf_elevated_begin(SfElevated *e, Oid role);
extern void sf_elevated_end(SfElevated *e, bool commit);

/* ----------------------------------------------------------------
 * sweep.c — orphaned objects (uploads whose transaction never committed)
 * ----------------------------------------------------------------
 */
typedef struct SfOrphan
{
	char	   *name;			/* below the server's location */
	TimestampTz at;				/* the time in its name */
} SfOrphan;

extern int	sfexport_orphan_grace_s;	/* sfexport.orphan_grace */
extern int	sfexport_orphan_sweep_interval_s;	/* sfexport.orphan_sweep_interval */
extern void sf_sweep_define_gucs(void);
extern bool sf_parse_file_name(const char *name, Oid *dboid, TimestampTz *at,
							   uint64 *sysid);
extern List *sf_sweep_server(Oid serverid, int grace_s, bool delete,
							 SfListBounds *bounds, char **last);
extern void sf_sweep_periodic(void);	/* worker housekeeping, outside a transaction */

/* ----------------------------------------------------------------
 * fdw.c — foreign-data wrapper handler (write-only foreign tables)
 * ----------------------------------------------------------------
 */
/* (SQL-callable only: sfexport_fdw_handler) */

#endif							/* SFEXPORT_H */
