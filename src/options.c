/*-------------------------------------------------------------------------
 *
 * options.c
 *		The option catalogue of the sfexport foreign-data wrapper and its
 *		checks, run by the validator (fdw.c) at CREATE/ALTER SERVER, USER
 *		MAPPING and FOREIGN TABLE.  config.c reads the options once set.
 *
 * Every option is listed once in sf_options[] with the catalog it belongs to
 * and the kind of value it takes (postgres_fdw style).  Values are parsed and
 * range-checked in the validator, so that a mistake is reported at DDL time
 * and not at the first flush.  Error messages never quote the value of an
 * option marked secret.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "sf_jansson.h"

#include "access/reloptions.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "catalog/pg_authid.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "config.h"
#include "cron.h"
#include "http.h"
#include "jwt.h"
#include "options.h"

/* What kind of value an option takes; decides how the validator parses it. */
typedef enum SfOptKind
{
	OPT_TEXT,					/* any non-empty text */
	OPT_ACCOUNT,				/* Snowflake account identifier */
	OPT_HTTP_URL,				/* http:// or https:// URL */
	OPT_LOCATION,				/* s3://, gcs:// or file:/// */
	OPT_REGION,					/* cloud region name */
	OPT_COMPRESSION,			/* gzip | zstd | none */
	OPT_LOAD_MODE,				/* copy | snowpipe | streaming */
	OPT_BOOL,
	OPT_DURATION_S,				/* GUC-style duration, stored in seconds */
	OPT_DURATION_MS,			/* GUC-style duration, stored in milliseconds */
	OPT_SIZE_KB,				/* GUC-style size, stored in kB */
	OPT_COUNT,					/* positive integer */
	OPT_PEM,					/* PEM-encoded private key text */
	OPT_SERVER_FILE,			/* absolute path of a file the server reads */
	OPT_SECRET_FILE,			/* same, holding a secret: owner-only mode */
	OPT_HEADER_TEXT,			/* text sent in an HTTP header: no control characters */
	OPT_TOKEN_TYPE,				/* OAUTH | PROGRAMMATIC_ACCESS_TOKEN | KEYPAIR_JWT */
	OPT_GCS_JSON,				/* service-account key JSON */
	OPT_GLUE_STAGE_MAP,			/* STAGE=s3://bucket/prefix/, ... (config.c) */
	OPT_GLUE_CATALOG_ID,		/* Glue CatalogIdString: 1..255, no control characters */
	OPT_AWS_ROLE_ARN,			/* arn:PARTITION:iam::ACCOUNT:role/NAME */
	OPT_AWS_EXTERNAL_ID,		/* STS ExternalId: 2-1224 of [\w+=,.@:/-] */
	OPT_CRON,					/* five-field cron schedule, UTC (cron.c) */
	OPT_STAGED_FORMAT			/* csv | json: how a table's rows are staged */
} SfOptKind;

typedef struct SfOption
{
	const char *name;
	Oid			context;		/* catalog the option belongs in */
	SfOptKind	kind;
	bool		secret;			/* never echo the value */
	int			min;			/* for numeric kinds, in stored units */
	int			max;
} SfOption;

#define DAY_S (24 * 3600)

static const SfOption sf_options[] = {
	/* server: Snowflake connection */
	{"account", ForeignServerRelationId, OPT_ACCOUNT},
	{"url", ForeignServerRelationId, OPT_HTTP_URL},
	{"database", ForeignServerRelationId, OPT_TEXT},
	{"schema", ForeignServerRelationId, OPT_TEXT},
	{"warehouse", ForeignServerRelationId, OPT_TEXT},
	{"role", ForeignServerRelationId, OPT_TEXT},
	{"stage", ForeignServerRelationId, OPT_TEXT},
	{"file_format", ForeignServerRelationId, OPT_TEXT},
	{"statement_timeout", ForeignServerRelationId, OPT_DURATION_S, false, 1, DAY_S},
	/* server: storage */
	{"location", ForeignServerRelationId, OPT_LOCATION},
	{"region", ForeignServerRelationId, OPT_REGION},
	{"endpoint", ForeignServerRelationId, OPT_HTTP_URL},
	{"storage_integration", ForeignServerRelationId, OPT_TEXT},
	{"compression", ForeignServerRelationId, OPT_COMPRESSION},
	{"compression_level", ForeignServerRelationId, OPT_COUNT, false, 1, 19},
	{"keep_files", ForeignServerRelationId, OPT_BOOL},
	{"ca_file", ForeignServerRelationId, OPT_SERVER_FILE},
	{"connect_timeout", ForeignServerRelationId, OPT_DURATION_MS, false, 100, 600 * 1000},
	{"request_timeout", ForeignServerRelationId, OPT_DURATION_MS, false, 100, 3600 * 1000},
	/* server defaults for the per-table flush settings */
	{"flush_interval", ForeignServerRelationId, OPT_DURATION_S, false, 1, SF_MAX_FLUSH_INTERVAL_S},
	{"flush_at", ForeignServerRelationId, OPT_CRON},
	{"flush_size", ForeignServerRelationId, OPT_SIZE_KB, false, 1, INT_MAX / 2},
	{"file_size", ForeignServerRelationId, OPT_SIZE_KB, false, 1, INT_MAX / 2},
	{"max_file_size", ForeignServerRelationId, OPT_SIZE_KB, false, 1024, INT_MAX / 2},
	{"batch_size", ForeignServerRelationId, OPT_COUNT, false, 1, 10000},
	/* server: AWS Glue sync (glue_sync.c, docs/glue.md) */
	{"glue_region", ForeignServerRelationId, OPT_REGION},
	{"glue_endpoint", ForeignServerRelationId, OPT_HTTP_URL},
	{"glue_stage_map", ForeignServerRelationId, OPT_GLUE_STAGE_MAP},
	{"glue_databases", ForeignServerRelationId, OPT_TEXT},
	{"glue_sync_interval", ForeignServerRelationId, OPT_DURATION_S, false, 60, 7 * DAY_S},
	{"glue_drop_missing", ForeignServerRelationId, OPT_BOOL},
	{"glue_catalog_id", ForeignServerRelationId, OPT_GLUE_CATALOG_ID},
	{"glue_auto_refresh", ForeignServerRelationId, OPT_BOOL},
	/* server: names derived from PostgreSQL identifiers (see sf_identifier_case) */
	{"upper_case_identifiers", ForeignServerRelationId, OPT_BOOL},
	/* server: how staged files are loaded (load.c, snowpipe.c) */
	{"load_mode", ForeignServerRelationId, OPT_LOAD_MODE},
	/* server: AWS credential chain (aws_credentials.c, docs/credentials.md) */
	{"aws_profile", ForeignServerRelationId, OPT_HEADER_TEXT},
	{"aws_role_arn", ForeignServerRelationId, OPT_AWS_ROLE_ARN},
	{"aws_external_id", ForeignServerRelationId, OPT_AWS_EXTERNAL_ID},
	{"sts_endpoint", ForeignServerRelationId, OPT_HTTP_URL},

	/* user mapping: credentials */
	{"user", UserMappingRelationId, OPT_TEXT},
	{"private_key", UserMappingRelationId, OPT_PEM, true},
	{"private_key_file", UserMappingRelationId, OPT_SECRET_FILE},
	{"private_key_passphrase", UserMappingRelationId, OPT_TEXT, true},
	{"token", UserMappingRelationId, OPT_HEADER_TEXT, true},
	{"token_type", UserMappingRelationId, OPT_TOKEN_TYPE},
	{"aws_access_key_id", UserMappingRelationId, OPT_HEADER_TEXT},
	{"aws_secret_access_key", UserMappingRelationId, OPT_HEADER_TEXT, true},
	{"aws_session_token", UserMappingRelationId, OPT_HEADER_TEXT, true},
	{"gcs_credentials", UserMappingRelationId, OPT_GCS_JSON, true},
	{"gcs_credentials_file", UserMappingRelationId, OPT_SECRET_FILE},
	{"aws_role_arn", UserMappingRelationId, OPT_AWS_ROLE_ARN},
	{"aws_external_id", UserMappingRelationId, OPT_AWS_EXTERNAL_ID},

	/* foreign table */
	{"table", ForeignTableRelationId, OPT_TEXT},
	{"schema", ForeignTableRelationId, OPT_TEXT},
	{"flush_interval", ForeignTableRelationId, OPT_DURATION_S, false, 1, SF_MAX_FLUSH_INTERVAL_S},
	{"flush_at", ForeignTableRelationId, OPT_CRON},
	{"flush_size", ForeignTableRelationId, OPT_SIZE_KB, false, 1, INT_MAX / 2},
	{"file_size", ForeignTableRelationId, OPT_SIZE_KB, false, 1, INT_MAX / 2},
	{"max_file_size", ForeignTableRelationId, OPT_SIZE_KB, false, 1024, INT_MAX / 2},
	{"batch_size", ForeignTableRelationId, OPT_COUNT, false, 1, 10000},
	{"load_mode", ForeignTableRelationId, OPT_LOAD_MODE},
	{"file_format", ForeignTableRelationId, OPT_STAGED_FORMAT},
	/* load_mode streaming: the pipe of the table's channel (stream_load.c) */
	{"streaming_pipe", ForeignTableRelationId, OPT_TEXT},
	/* foreign table: the changes of a tracked table (sfexport.track, docs/tracking.md) */
	{"merge_into", ForeignTableRelationId, OPT_TEXT},
	{"merge_keys", ForeignTableRelationId, OPT_TEXT},
	{"merge_history", ForeignTableRelationId, OPT_TEXT},
	{"merge_mirror", ForeignTableRelationId, OPT_BOOL},

	/* column */
	{"column_name", AttributeRelationId, OPT_TEXT},

	{NULL}
};

/* Options that must be present on every server. */
static const char *const sf_required_server_options[] = {"account", "database", "location", NULL};

static const SfOption *
find_option(const char *name, Oid context)
{
	for (const SfOption *opt = sf_options; opt->name; opt++)
		if (opt->context == context && strcmp(opt->name, name) == 0)
			return opt;
	return NULL;
}

static const char *
context_name(Oid context)
{
	switch (context)
	{
		case ForeignServerRelationId:
			return "a server";
		case UserMappingRelationId:
			return "a user mapping";
		case ForeignTableRelationId:
			return "a foreign table";
		case AttributeRelationId:
			return "a foreign table column";
		default:
			return "this object";
	}
}

/*
 * Complain about an option the wrapper does not know, listing the valid
 * names for the context (postgres_fdw style).
 */
static void
report_unknown_option(const char *name, Oid context)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (const SfOption *opt = sf_options; opt->name; opt++)
	{
		if (opt->context != context)
			continue;
		appendStringInfo(&buf, "%s%s", buf.len > 0 ? ", " : "", opt->name);
	}

	ereport(ERROR,
			(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
			 errmsg("invalid option \"%s\"", name),
			 buf.len > 0
			 ? errhint("Valid options in this context are: %s", buf.data)
			 : errhint("There are no valid options in this context.")));
}

/*
 * Report a malformed value.  For secret options the value is never shown,
 * nor a value with control characters (a line break would forge the next
 * log line).
 */
static void
report_bad_value(const SfOption *opt, const char *value, const char *detail,
				 const char *hint)
{
	if (opt->secret || !sf_http_header_value_ok(value))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\"", opt->name),
				 detail ? errdetail_internal("%s", detail) : 0,
				 hint ? errhint("%s", hint) : 0));
	else
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\": \"%s\"", opt->name, value),
				 detail ? errdetail_internal("%s", detail) : 0,
				 hint ? errhint("%s", hint) : 0));
}

/* Whether the current user may name files the server reads. */
static void
check_server_file_privilege(const SfOption *opt)
{
	if (!superuser() && !has_privs_of_role(GetUserId(), ROLE_PG_READ_SERVER_FILES))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to set option \"%s\"", opt->name),
				 errdetail("The option names a file that the database server reads."),
				 errhint("Only superusers and members of pg_read_server_files may set it.")));
}

/*
 * Check one option value.  Errors out with a specific message when invalid.
 */
static void
validate_value(const SfOption *opt, const char *value)
{
	const char *hintmsg = NULL;
	int			ival;

	if (value[0] == '\0')
		report_bad_value(opt, value, "The value must not be empty.", NULL);

	switch (opt->kind)
	{
		case OPT_TEXT:
			break;

		case OPT_ACCOUNT:
			for (const char *c = value; *c; c++)
				if (!(isalnum((unsigned char) *c) || *c == '-' || *c == '_' || *c == '.'))
					report_bad_value(opt, value,
									 "An account identifier contains only letters, digits, \"-\", \"_\" and \".\".",
									 "Use the form orgname-accountname, or a locator such as xy12345.us-east-2.aws.");
			break;

		case OPT_HTTP_URL:
			if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
				report_bad_value(opt, value, "The URL must start with https:// or http://.", NULL);
			for (const char *c = value; *c; c++)
				if ((unsigned char) *c <= 0x20 || *c == 0x7f)
					report_bad_value(opt, value, "The URL must not contain spaces or control characters.", NULL);
			if (strchr(value, '@') != NULL)
				report_bad_value(opt, value,
								 "The URL must not contain user information; credentials belong in a user mapping.",
								 NULL);
			break;

		case OPT_LOCATION:
			{
				SfLocation	loc;
				char	   *why = NULL;

				if (!sf_parse_location(value, &loc, &why))
					report_bad_value(opt, value, why,
									 "Examples: s3://my-bucket/exports/, gcs://my-bucket/exports/, file:///var/lib/sfexport/.");
				if (loc.kind == SF_LOCATION_FILE && !superuser())
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("permission denied to use a file:// location"),
							 errdetail("A file location makes the database server write files on its own host."),
							 errhint("Only superusers may create servers with a file:// location.")));
				break;
			}

		case OPT_REGION:
			for (const char *c = value; *c; c++)
				if (!(islower((unsigned char) *c) || isdigit((unsigned char) *c) || *c == '-'))
					report_bad_value(opt, value,
									 "A region name contains only lower-case letters, digits and hyphens.",
									 "Example: us-east-1.");
			break;

		case OPT_COMPRESSION:
			if (strcmp(value, "gzip") != 0 && strcmp(value, "zstd") != 0 &&
				strcmp(value, "none") != 0)
				report_bad_value(opt, value, NULL, "Valid values are gzip, zstd and none.");
			break;

		case OPT_LOAD_MODE:
			if (strcmp(value, "copy") != 0 && strcmp(value, "snowpipe") != 0 &&
				strcmp(value, "streaming") != 0)
				report_bad_value(opt, value, NULL, "Valid values are copy, snowpipe and streaming.");
			break;

		case OPT_BOOL:
			{
				bool		b;

				if (!parse_bool(value, &b))
					report_bad_value(opt, value, NULL, "Valid values are true and false.");
				break;
			}

		case OPT_DURATION_S:
		case OPT_DURATION_MS:
		case OPT_SIZE_KB:
			{
				int			unit = opt->kind == OPT_DURATION_S ? GUC_UNIT_S :
					opt->kind == OPT_DURATION_MS ? GUC_UNIT_MS : GUC_UNIT_KB;

				if (!parse_int(value, &ival, unit, &hintmsg))
					report_bad_value(opt, value, NULL,
									 hintmsg ? hintmsg :
									 (opt->kind == OPT_SIZE_KB
									  ? "Give a size such as 64MB or 1GB."
									  : "Give a duration such as 30s, 10min or 1h."));
				if (ival < opt->min || ival > opt->max)
					report_bad_value(opt, value,
									 psprintf("The value must be between %d and %d %s.",
											  opt->min, opt->max,
											  opt->kind == OPT_DURATION_S ? "seconds" :
											  opt->kind == OPT_DURATION_MS ? "milliseconds" : "kB"),
									 NULL);
				break;
			}

		case OPT_COUNT:
			if (!parse_int(value, &ival, 0, &hintmsg) || ival < opt->min || ival > opt->max)
				report_bad_value(opt, value,
								 psprintf("The value must be an integer between %d and %d.",
										  opt->min, opt->max),
								 NULL);
			break;

		case OPT_PEM:
			if (strstr(value, "-----BEGIN ") == NULL || strstr(value, "-----END ") == NULL)
				report_bad_value(opt, value,
								 "The value is not PEM text.",
								 "Give the private key as PEM text, starting with -----BEGIN PRIVATE KEY----- or -----BEGIN ENCRYPTED PRIVATE KEY-----.");
			break;

		case OPT_SERVER_FILE:
		case OPT_SECRET_FILE:
			check_server_file_privilege(opt);
			if (!is_absolute_path(value))
				report_bad_value(opt, value, "The file name must be an absolute path.", NULL);
			if (opt->kind == OPT_SECRET_FILE)
			{
				struct stat st;

				/* a file that does not exist yet is checked when first read */
				if (stat(value, &st) == 0)
					sf_check_secret_file_mode(value, opt->name, &st);
			}
			break;

		case OPT_HEADER_TEXT:
			if (!sf_http_header_value_ok(value))
				report_bad_value(opt, value,
								 "The value must not contain control characters such as carriage return or line feed: it is sent in an HTTP header.",
								 NULL);
			break;

		case OPT_AWS_ROLE_ARN:
			if (!sf_aws_role_arn_ok(value))
				report_bad_value(opt, value,
								 "A role ARN has the form arn:aws:iam::ACCOUNT:role/NAME (20 to 2048 characters, no spaces).",
								 "Example: arn:aws:iam::123456789012:role/sfexport.");
			break;

		case OPT_AWS_EXTERNAL_ID:
			if (!sf_aws_external_id_ok(value))
				report_bad_value(opt, value,
								 "An external ID has 2 to 1224 characters among letters, digits and +=,.@:/-_ (AWS STS AssumeRole).",
								 NULL);
			break;

		case OPT_TOKEN_TYPE:
			if (strcmp(value, "OAUTH") != 0 &&
				strcmp(value, "PROGRAMMATIC_ACCESS_TOKEN") != 0 &&
				strcmp(value, "KEYPAIR_JWT") != 0)
				report_bad_value(opt, value, NULL,
								 "Valid values are OAUTH, PROGRAMMATIC_ACCESS_TOKEN and KEYPAIR_JWT.");
			break;

		case OPT_STAGED_FORMAT:
			if (strcmp(value, "csv") != 0 && strcmp(value, "json") != 0)
				report_bad_value(opt, value,
								 "A foreign table's rows are staged as CSV or as NDJSON.",
								 "Valid values are csv and json (docs/json.md).");
			break;

		case OPT_CRON:
			{
				SfCron		cron;
				const char *why = NULL;

				if (!sf_cron_parse(value, &cron, &why))
					report_bad_value(opt, value, psprintf("%s.", why),
									 "Give minute hour day-of-month month day-of-week in UTC, for example '0 3 * * *' for 03:00 UTC every day, or @daily.");
				if (sf_cron_next(&cron, GetCurrentTimestamp()) == 0)
					report_bad_value(opt, value,
									 psprintf("The schedule matches no minute in the next %d years.",
											  SF_CRON_HORIZON_YEARS),
									 "Check the day of month against the month (there is no February 30).");
				break;
			}

		case OPT_GLUE_STAGE_MAP:
			{
				char	   *why = NULL;

				if (!sf_glue_parse_stage_map(value, "DB", "SCHEMA", NULL, &why))
					report_bad_value(opt, value, why,
									 "Example: glue_stage_map 'LAKE_STAGE=s3://lake/warehouse/, ANALYTICS.RAW.LOGS=s3://logs/'.");
				break;
			}

		case OPT_GLUE_CATALOG_ID:
			/* CatalogIdString in the Glue API: 1 to 255 characters, single line */
			if (strlen(value) > SF_GLUE_NAME_MAX || !sf_http_header_value_ok(value))
				report_bad_value(opt, value,
								 "A Glue catalog ID has 1 to 255 characters and no control characters.",
								 "It is the AWS account ID that owns the catalog, e.g. glue_catalog_id '123456789012'.");
			break;

		case OPT_GCS_JSON:
			{
				json_error_t jerr;
				json_t	   *root = json_loads(value, 0, &jerr);
				const char *missing = NULL;

				if (root == NULL || !json_is_object(root))
				{
					if (root)
						json_decref(root);
					/* jerr.text may quote the input: do not pass it on */
					report_bad_value(opt, value,
									 "The value is not a JSON object.",
									 "Give the service-account key file downloaded from Google Cloud, as JSON text.");
				}
				if (json_is_string(json_object_get(root, "type")) &&
					strcmp(json_string_value(json_object_get(root, "type")), "external_account") == 0)
				{
					/* workload identity federation (gcp_credentials.c) */
					if (!json_is_string(json_object_get(root, "audience")))
						missing = "audience";
					else if (!json_is_string(json_object_get(root, "token_url")))
						missing = "token_url";
					else if (!json_is_string(json_object_get(root, "subject_token_type")))
						missing = "subject_token_type";
					else if (!json_is_object(json_object_get(root, "credential_source")))
						missing = "credential_source";
				}
				else if (!json_is_string(json_object_get(root, "client_email")))
					missing = "client_email";
				else if (!json_is_string(json_object_get(root, "private_key")))
					missing = "private_key";
				json_decref(root);
				if (missing)
					report_bad_value(opt, value,
									 psprintf("The service-account JSON has no string field \"%s\".", missing),
									 "Give the service-account key file downloaded from Google Cloud, as JSON text.");
				break;
			}
	}
}

/* Look up a DefElem by name in a list, or NULL. */
static DefElem *
find_defelem(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, name) == 0)
			return def;
	}
	return NULL;
}

static void
check_exclusive(List *options, const char *a, const char *b)
{
	if (find_defelem(options, a) && find_defelem(options, b))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("options \"%s\" and \"%s\" cannot be used together", a, b),
				 errhint("Keep one of them.")));
}

static void
check_requires(List *options, const char *a, const char *b)
{
	if (find_defelem(options, a) && !find_defelem(options, b))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("option \"%s\" requires option \"%s\"", a, b)));
}

/*
 * Check the private key of a user mapping at CREATE/ALTER USER MAPPING, so
 * that a garbage PEM, a wrong passphrase or a non-RSA key is reported now and
 * not at the first flush.  A key file is checked when the server can read it
 * already; otherwise it is checked at first use.  The key is never quoted.
 */
static void
check_mapping_private_key(List *options)
{
	DefElem    *key = find_defelem(options, "private_key");
	DefElem    *file = find_defelem(options, "private_key_file");
	DefElem    *pass = find_defelem(options, "private_key_passphrase");
	const char *passphrase = pass ? defGetString(pass) : NULL;

	if (key)
		sf_jwt_check_private_key(defGetString(key), passphrase, "private_key");
	else if (file)
	{
		const char *path = defGetString(file);
		FILE	   *f = AllocateFile(path, "r");

		if (f == NULL)
		{
			ereport(WARNING,
					(errcode_for_file_access(),
					 errmsg("could not open file \"%s\" named by option \"private_key_file\": %m",
							path),
					 errdetail("The key will be checked when it is first used.")));
			return;
		}
		FreeFile(f);
		sf_jwt_check_private_key(sf_read_secret_file(path, "private_key_file"),
								 passphrase, "private_key_file");
	}
}

/*
 * The validator of the sfexport foreign-data wrapper (fdw.c): checks every
 * option given to CREATE/ALTER SERVER, USER MAPPING, FOREIGN TABLE and
 * column options (options is the list, catalog the catalog it is for).
 * For ALTER the list is the complete resulting option set, so required
 * options and combinations are checked here too.
 *
 * Who may set what is decided here only where the option alone tells
 * (file:// locations, *_file options: the current user is all it needs).
 * Which Snowflake table a foreign table loads into (its name, table, schema,
 * column_name), and who may alter a superuser's server, depend on the
 * server and its owner, which a validator is not given (PostgreSQL passes
 * the option list and the catalog only, and a rename changes the default
 * target without calling it): the event trigger sfexport_ddl_check
 * (sql/sfexport--0.2.0.sql) checks those at the end of each command.
 */
void
sf_options_validate(List *options, Oid catalog)
{
	ListCell   *lc;

	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);
		const SfOption *opt = find_option(def->defname, catalog);

		if (catalog == ForeignDataWrapperRelationId)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\"", def->defname),
					 errhint("The sfexport wrapper takes no options; set them on %s instead.",
							 "the server, user mapping or foreign table")));
		if (opt == NULL)
			report_unknown_option(def->defname, catalog);
		validate_value(opt, defGetString(def));
	}

	if (catalog == ForeignServerRelationId)
	{
		for (const char *const *req = sf_required_server_options; *req; req++)
			if (!find_defelem(options, *req))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
						 errmsg("option \"%s\" is required for %s", *req,
								context_name(catalog)),
						 errhint("A sfexport server needs at least account, database and location.")));
	}
	if (catalog == ForeignServerRelationId)
	{
		DefElem    *level = find_defelem(options, "compression_level");
		DefElem    *comp = find_defelem(options, "compression");
		const char *kind = comp ? defGetString(comp) : "gzip";

		if (level && strcmp(kind, "none") == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("option \"compression_level\" cannot be used with compression none"),
					 errhint("Drop compression_level, or choose compression gzip or zstd.")));
		if (level && strcmp(kind, "gzip") == 0 && atoi(defGetString(level)) > 9)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid value for option \"compression_level\": \"%s\"",
							defGetString(level)),
					 errdetail("gzip levels are 1 (fastest) to 9 (smallest)."),
					 errhint("Levels up to 19 are for compression zstd.")));
	}
	else if (catalog == UserMappingRelationId)
	{
		check_exclusive(options, "private_key", "private_key_file");
		check_exclusive(options, "gcs_credentials", "gcs_credentials_file");
		check_exclusive(options, "token", "private_key");
		check_exclusive(options, "token", "private_key_file");
		check_requires(options, "private_key_passphrase", "user");
		check_requires(options, "private_key", "user");
		check_requires(options, "private_key_file", "user");
		check_requires(options, "aws_secret_access_key", "aws_access_key_id");
		check_requires(options, "aws_access_key_id", "aws_secret_access_key");
		check_requires(options, "aws_session_token", "aws_access_key_id");

		if (find_defelem(options, "private_key_passphrase") &&
			!find_defelem(options, "private_key") &&
			!find_defelem(options, "private_key_file"))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
					 errmsg("option \"private_key_passphrase\" requires option \"private_key\" or \"private_key_file\"")));
		check_mapping_private_key(options);
		{
			DefElem    *tt = find_defelem(options, "token_type");

			if (tt && strcmp(defGetString(tt), "KEYPAIR_JWT") != 0 &&
				!find_defelem(options, "token"))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
						 errmsg("option \"token_type\" %s requires option \"token\"",
								defGetString(tt))));
			if (tt && strcmp(defGetString(tt), "KEYPAIR_JWT") == 0 &&
				find_defelem(options, "token"))
				ereport(ERROR,
						(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
						 errmsg("option \"token\" cannot be used with token_type KEYPAIR_JWT"),
						 errhint("Key-pair JWTs are made from private_key; give token_type OAUTH or PROGRAMMATIC_ACCESS_TOKEN for a token.")));
		}
	}

}
