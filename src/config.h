/*-------------------------------------------------------------------------
 *
 * config.h
 *		Parsed configuration: what the options of a server, a user mapping
 *		and a foreign table mean once read (config.c; config layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_CONFIG_H
#define SF_CONFIG_H

#include <sys/stat.h>

#include "access/attnum.h"
#include "nodes/pg_list.h"

#include "compress.h"
#include "cron.h"
#include "http.h"

typedef enum SfLocationKind
{
	SF_LOCATION_S3,
	SF_LOCATION_GCS,
	SF_LOCATION_FILE
} SfLocationKind;

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
	SF_LOAD_SNOWPIPE,
	SF_LOAD_STREAMING			/* Snowpipe Streaming: rows, no files (stream_load.c) */
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
	int			file_size_kb;	/* -1 = not set here */
	int			max_file_size_kb;	/* -1 = not set here */
	int			batch_size;		/* -1 = not set here */
	char	   *flush_at;		/* cron schedule (cron.c), NULL = not set */
	bool		upper_case_identifiers; /* upper-case names derived from
										 * PostgreSQL identifiers */
	/* AWS credential chain (aws_credentials.c) */
	char	   *aws_profile;	/* profile of the shared files, NULL = default */
	char	   *aws_role_arn;	/* role to assume, NULL = none */
	char	   *aws_external_id;
	char	   *sts_endpoint;	/* STS endpoint override, NULL = the default */
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
	Oid			mapping_user;	/* the mapping's own user, InvalidOid for
								 * PUBLIC (made by the server's owner) */
	bool		host_credentials_allowed;	/* sf_server_may_use_host_credentials() */
	char	   *aws_role_arn;	/* role to assume (else the server's) */
	char	   *aws_external_id;
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
	int			flush_size_kb;	/* 0 = off */
	int			file_size_kb;	/* compressed size aimed for (file_size.c) */
	int			max_file_size_kb;
	int			batch_size;		/* the table's batch_size option, -1 if unset */
	int			batch_size_option;	/* table or server option, -1 if unset */
	SfLoadMode	load_mode;		/* table option, else the server's */
	bool		json;			/* file_format 'json': staged as NDJSON */
	bool		has_flush_at;	/* flush_at set on the table or its server */
	SfCron		flush_at;		/* its schedule (UTC) */
	char	   *streaming_pipe; /* streaming: the pipe, NULL = the table's
								 * default pipe <table>-STREAMING */
} SfTableConfig;

/* longest flush_interval, and a flush_at table's wait without one */
#define SF_MAX_FLUSH_INTERVAL_S	(31 * 24 * 3600)

/* A stage and the s3:// location it covers (glue_stage_map). */
typedef struct SfGlueStage
{
	char	   *stage_sql;		/* quoted, qualified stage name */
	char	   *bucket;
	char	   *prefix;			/* "" or ending in '/' */
} SfGlueStage;

/* The Glue options of a server (besides the Snowflake and storage ones). */
typedef struct SfGlueConfig
{
	SfServerConfig *srv;
	char	   *region;
	char	   *endpoint;		/* NULL = https://glue.<region>.amazonaws.com */
	int			sync_interval_s;	/* 0 = no periodic sync */
	List	   *databases;		/* char *: Glue databases of the periodic sync */
	bool		drop_missing;	/* periodic sync drops tables gone from Glue */
	char	   *catalog_id;		/* CatalogId of every request; NULL = the caller's account */
	bool		auto_refresh;	/* external tables with AUTO_REFRESH = TRUE */
	List	   *stages;			/* SfGlueStage * */
} SfGlueConfig;

#define SF_GLUE_NAME_MAX 255	/* Glue names, and the stages of glue_stage_map */

/* the defaults of the flush settings */
extern int	sfexport_flush_interval_s;	/* sfexport.flush_interval */
extern int	sfexport_flush_size_kb; /* sfexport.flush_size */
extern int	sfexport_file_size_kb;	/* sfexport.file_size */
extern int	sfexport_max_file_size_kb;	/* sfexport.max_file_size */
extern void sf_config_define_gucs(void);

/* parsed options */
extern SfServerConfig *sf_get_server_config(Oid serverid);
extern SfUserConfig *sf_get_user_config(Oid serverid, Oid userid);
extern SfTableConfig *sf_get_table_config(Oid relid);
extern TimestampTz sf_table_flush_deadline(const SfTableConfig *cfg, TimestampTz oldest);
extern SfGlueConfig *sf_get_glue_config(Oid serverid);
extern bool sf_parse_location(const char *text, SfLocation *loc, char **why);
extern bool sf_glue_parse_stage_map(const char *value, const char *db,
									const char *schema, List **entries,
									char **why);
extern const char *sf_compression_name(SfCompression c);
extern const char *sf_compression_extension(SfCompression c);

/* credentials */
extern bool sf_server_may_use_host_credentials(Oid serverid);
extern bool sf_aws_role_arn_ok(const char *v);
extern bool sf_aws_external_id_ok(const char *v);
extern Oid	sf_worker_user(Oid serverid);
extern SfUserConfig *sf_get_worker_user_config(Oid serverid);
extern void sf_check_secret_file_mode(const char *path, const char *option,
									  const struct stat *st);
extern char *sf_read_secret_file(const char *path, const char *option);

/* names derived from PostgreSQL identifiers */
extern char *sf_identifier_case(bool upper, const char *name);
extern SfLoadMode sf_parse_load_mode(const char *value);
extern char *sf_column_target_name(Oid relid, AttrNumber attnum);

/*
 * A request to a service the server names gets the server's transfer
 * settings: connect_timeout, request_timeout and ca_file.
 */
static inline void
sf_http_server_settings(SfHttpRequest *req, const SfServerConfig *srv)
{
	req->connect_timeout_ms = srv->connect_timeout_ms;
	req->timeout_ms = srv->request_timeout_ms;
	req->ca_file = srv->ca_file;
}

#endif							/* SF_CONFIG_H */
