/*-------------------------------------------------------------------------
 *
 * options.c
 *		The option catalogue of the sfexport foreign-data wrapper: the
 *		validator run at CREATE/ALTER SERVER, USER MAPPING, FOREIGN TABLE,
 *		and the functions that turn catalog options into parsed configuration.
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
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "sfexport.h"

/* What kind of value an option takes; decides how the validator parses it. */
typedef enum SfOptKind
{
	OPT_TEXT,					/* any non-empty text */
	OPT_ACCOUNT,				/* Snowflake account identifier */
	OPT_HTTP_URL,				/* http:// or https:// URL */
	OPT_LOCATION,				/* s3://, gcs:// or file:/// */
	OPT_REGION,					/* cloud region name */
	OPT_COMPRESSION,			/* gzip | zstd | none */
	OPT_LOAD_MODE,				/* copy | snowpipe */
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
	OPT_GLUE_STAGE_MAP			/* STAGE=s3://bucket/prefix/, ... (glue.c) */
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
	{"flush_interval", ForeignServerRelationId, OPT_DURATION_S, false, 1, 7 * DAY_S},
	{"flush_size", ForeignServerRelationId, OPT_SIZE_KB, false, 1, INT_MAX / 2},
	{"max_file_size", ForeignServerRelationId, OPT_SIZE_KB, false, 1024, INT_MAX / 2},
	{"batch_size", ForeignServerRelationId, OPT_COUNT, false, 1, 10000},
	/* server: AWS Glue sync (glue.c, docs/glue.md) */
	{"glue_region", ForeignServerRelationId, OPT_REGION},
	{"glue_endpoint", ForeignServerRelationId, OPT_HTTP_URL},
	{"glue_stage_map", ForeignServerRelationId, OPT_GLUE_STAGE_MAP},
	{"glue_databases", ForeignServerRelationId, OPT_TEXT},
	{"glue_sync_interval", ForeignServerRelationId, OPT_DURATION_S, false, 60, 7 * DAY_S},
	{"glue_drop_missing", ForeignServerRelationId, OPT_BOOL},
	/* server: names derived from PostgreSQL identifiers (see sf_identifier_case) */
	{"upper_case_identifiers", ForeignServerRelationId, OPT_BOOL},
	/* server: how staged files are loaded (load.c, snowpipe.c) */
	{"load_mode", ForeignServerRelationId, OPT_LOAD_MODE},

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

	/* foreign table */
	{"table", ForeignTableRelationId, OPT_TEXT},
	{"schema", ForeignTableRelationId, OPT_TEXT},
	{"flush_interval", ForeignTableRelationId, OPT_DURATION_S, false, 1, 7 * DAY_S},
	{"flush_size", ForeignTableRelationId, OPT_SIZE_KB, false, 1, INT_MAX / 2},
	{"max_file_size", ForeignTableRelationId, OPT_SIZE_KB, false, 1024, INT_MAX / 2},
	{"batch_size", ForeignTableRelationId, OPT_COUNT, false, 1, 10000},
	{"load_mode", ForeignTableRelationId, OPT_LOAD_MODE},

	/* column */
	{"column_name", AttributeRelationId, OPT_TEXT},

	{NULL}
};

/* Options that must be present on every server. */
static const char *const sf_required_server_options[] = {"account", "database", "location", NULL};

PG_FUNCTION_INFO_V1(sfexport_fdw_validator);

static char *read_secret_file(const char *path, const char *option);

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

/* Bucket names: 3-63 characters of [a-z0-9.-_], starting and ending with a letter or digit. */
static bool
valid_bucket_name(const char *b, size_t len)
{
	if (len < 3 || len > 222)
		return false;
	if (!isalnum((unsigned char) b[0]) || !isalnum((unsigned char) b[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = b[i];

		if (!(islower(c) || isdigit(c) || c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

/*
 * Parse a storage location.  On failure returns false and sets *why to a
 * sentence for errdetail.  The prefix always ends in '/' unless empty.
 */
bool
sf_parse_location(const char *text, SfLocation *loc, char **why)
{
	const char *rest;
	const char *slash;
	size_t		blen;

	memset(loc, 0, sizeof(*loc));

	if (strncmp(text, "file://", 7) == 0)
	{
		rest = text + 7;
		if (rest[0] != '/')
		{
			*why = "A file location must be an absolute path, as in file:///var/lib/sfexport/.";
			return false;
		}
		if (strstr(rest, "/../") != NULL || strstr(rest, "/./") != NULL)
		{
			*why = "A file location must not contain \".\" or \"..\" segments.";
			return false;
		}
		loc->kind = SF_LOCATION_FILE;
		loc->bucket = NULL;
		loc->prefix = rest[strlen(rest) - 1] == '/' ? pstrdup(rest) : psprintf("%s/", rest);
		return true;
	}

	if (strncmp(text, "s3://", 5) == 0)
	{
		loc->kind = SF_LOCATION_S3;
		rest = text + 5;
	}
	else if (strncmp(text, "gcs://", 6) == 0)
	{
		loc->kind = SF_LOCATION_GCS;
		rest = text + 6;
	}
	else
	{
		*why = "The location must start with s3://, gcs:// or file:///.";
		return false;
	}

	slash = strchr(rest, '/');
	blen = slash ? (size_t) (slash - rest) : strlen(rest);
	if (!valid_bucket_name(rest, blen))
	{
		*why = "Bucket names are 3 to 63 lower-case letters, digits, dots, hyphens or underscores.";
		return false;
	}
	loc->bucket = pnstrdup(rest, blen);
	if (slash == NULL || slash[1] == '\0')
		loc->prefix = pstrdup("");
	else
	{
		const char *p = slash + 1;

		if (p[0] == '/' || strstr(p, "//") != NULL)
		{
			*why = "The prefix must not contain empty path segments (\"//\").";
			return false;
		}
		for (const char *c = p; *c; c++)
		{
			if ((unsigned char) *c < 0x20 || *c == 0x7f || *c == '\\')
			{
				*why = "The prefix must not contain control characters or backslashes.";
				return false;
			}
		}
		loc->prefix = p[strlen(p) - 1] == '/' ? pstrdup(p) : psprintf("%s/", p);
	}
	return true;
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
 * Whether a key or credential file keeps its secret from other local users.
 * PostgreSQL's rule for its own TLS key (check_ssl_key_file_permissions in
 * src/backend/libpq/be-secure-common.c), which is libpq's rule for
 * ~/.pgpass (passwordFromFile in src/interfaces/libpq/fe-connect.c: no
 * S_IRWXG | S_IRWXO bits) extended to root-owned files: a regular file,
 * owned by the database server's user with no group or world permissions
 * (0600 or less), or owned by root with at most group read (0640 or less).
 */
static bool
secret_file_mode_ok(const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return false;
	if (st->st_uid == geteuid())
		return (st->st_mode & (S_IRWXG | S_IRWXO)) == 0;
	if (st->st_uid == 0)
		return (st->st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) == 0;
	return false;
}

/* Report why secret_file_mode_ok() refused a file. */
static void
report_secret_file_mode(const char *path, const char *option, const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("file \"%s\" named by option \"%s\" is not a regular file",
						path, option)));
	if (st->st_uid != geteuid() && st->st_uid != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIG_FILE_ERROR),
				 errmsg("file \"%s\" named by option \"%s\" must be owned by the database server's user or root",
						path, option),
				 errdetail("Another user who owns a key or credential file can read and replace it."),
				 errhint("Give the file to the operating-system user the database server runs as, with mode 0600.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONFIG_FILE_ERROR),
			 errmsg("file \"%s\" named by option \"%s\" has group or world access",
					path, option),
			 errdetail("The file must have permissions u=rw (0600) or less if owned by the database server's user, or u=rw,g=r (0640) or less if owned by root."),
			 errhint("Restrict it to its owner: chmod 0600 %s", path)));
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
			if (strcmp(value, "copy") != 0 && strcmp(value, "snowpipe") != 0)
				report_bad_value(opt, value, NULL, "Valid values are copy and snowpipe.");
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
				if (stat(value, &st) == 0 && !secret_file_mode_ok(&st))
					report_secret_file_mode(value, opt->name, &st);
			}
			break;

		case OPT_HEADER_TEXT:
			if (!sf_http_header_value_ok(value))
				report_bad_value(opt, value,
								 "The value must not contain control characters such as carriage return or line feed: it is sent in an HTTP header.",
								 NULL);
			break;

		case OPT_TOKEN_TYPE:
			if (strcmp(value, "OAUTH") != 0 &&
				strcmp(value, "PROGRAMMATIC_ACCESS_TOKEN") != 0 &&
				strcmp(value, "KEYPAIR_JWT") != 0)
				report_bad_value(opt, value, NULL,
								 "Valid values are OAUTH, PROGRAMMATIC_ACCESS_TOKEN and KEYPAIR_JWT.");
			break;

		case OPT_GLUE_STAGE_MAP:
			{
				char	   *why = NULL;

				if (!sf_glue_parse_stage_map(value, "DB", "SCHEMA", NULL, &why))
					report_bad_value(opt, value, why,
									 "Example: glue_stage_map 'LAKE_STAGE=s3://lake/warehouse/, ANALYTICS.RAW.LOGS=s3://logs/'.");
				break;
			}

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
				if (!json_is_string(json_object_get(root, "client_email")))
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
		sf_jwt_check_private_key(read_secret_file(path, "private_key_file"),
								 passphrase, "private_key_file");
	}
}

/*
 * Validator for the sfexport foreign-data wrapper: checks every option given
 * to CREATE/ALTER SERVER, USER MAPPING, FOREIGN TABLE and column options.
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
Datum
sfexport_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *options = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			catalog = PG_GETARG_OID(1);
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

	PG_RETURN_VOID();
}

/* ---------------------------------------------------------------------
 * Parsed configuration for the rest of the extension
 * ---------------------------------------------------------------------
 */

static int
parse_unit_value(const char *value, int unit)
{
	int			v;

	if (!parse_int(value, &v, unit, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid stored option value \"%s\"", value)));
	return v;
}

/*
 * The flush settings both servers and foreign tables may set: parse option
 * n into the matching field and return true, or return false for any other
 * option.
 */
static bool
parse_flush_setting(const char *n, const char *v, int *interval_s, int *size_kb,
					int *max_file_kb, int *batch)
{
	if (strcmp(n, "flush_interval") == 0)
		*interval_s = parse_unit_value(v, GUC_UNIT_S);
	else if (strcmp(n, "flush_size") == 0)
		*size_kb = parse_unit_value(v, GUC_UNIT_KB);
	else if (strcmp(n, "max_file_size") == 0)
		*max_file_kb = parse_unit_value(v, GUC_UNIT_KB);
	else if (strcmp(n, "batch_size") == 0)
		*batch = parse_unit_value(v, 0);
	else
		return false;
	return true;
}

static SfCompression
parse_compression(const char *value)
{
	if (strcmp(value, "zstd") == 0)
		return SF_COMPRESSION_ZSTD;
	if (strcmp(value, "none") == 0)
		return SF_COMPRESSION_NONE;
	return SF_COMPRESSION_GZIP;
}

const char *
sf_compression_name(SfCompression c)
{
	switch (c)
	{
		case SF_COMPRESSION_ZSTD:
			return "ZSTD";
		case SF_COMPRESSION_NONE:
			return "NONE";
		default:
			return "GZIP";
	}
}

const char *
sf_compression_extension(SfCompression c)
{
	switch (c)
	{
		case SF_COMPRESSION_ZSTD:
			return ".csv.zst";
		case SF_COMPRESSION_NONE:
			return ".csv";
		default:
			return ".csv.gz";
	}
}

/*
 * Read a whole key or credential file, for the *_file options of a user
 * mapping.  A file other local users can read is refused
 * (secret_file_mode_ok).
 */
static char *
read_secret_file(const char *path, const char *option)
{
	FILE	   *f;
	struct stat st;
	StringInfoData buf;
	char		chunk[4096];
	size_t		n;

	f = AllocateFile(path, "r");
	if (f == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\" named by option \"%s\": %m",
						path, option)));
	/* the file opened, not whatever the name points at by now */
	if (fstat(fileno(f), &st) != 0)
	{
		int			save_errno = errno;

		FreeFile(f);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\" named by option \"%s\": %m",
						path, option)));
	}
	if (!secret_file_mode_ok(&st))
	{
		FreeFile(f);
		report_secret_file_mode(path, option, &st);
	}
	initStringInfo(&buf);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
	{
		if (buf.len + n > 1024 * 1024)
		{
			FreeFile(f);
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("file \"%s\" named by option \"%s\" is larger than 1 MB",
							path, option)));
		}
		appendBinaryStringInfo(&buf, chunk, n);
	}
	FreeFile(f);
	return buf.data;
}

/*
 * The SQL API base URL for an account when no url option is given:
 * https://<account>.snowflakecomputing.com, with "_" written as "-" since
 * underscores are not valid in host names (Snowflake docs, "Account
 * identifiers", requirements for account identifiers).
 */
static char *
default_account_url(const char *account)
{
	char	   *host = pstrdup(account);

	for (char *c = host; *c; c++)
	{
		if (*c == '_')
			*c = '-';
		else
			*c = pg_ascii_tolower((unsigned char) *c);
	}
	return psprintf("https://%s.snowflakecomputing.com", host);
}

/*
 * Parsed server options with defaults.  Allocated in the current memory
 * context.
 */
SfServerConfig *
sf_get_server_config(Oid serverid)
{
	ForeignServer *server = GetForeignServer(serverid);
	SfServerConfig *cfg = palloc0(sizeof(SfServerConfig));
	ListCell   *lc;
	char	   *why;

	cfg->serverid = serverid;
	cfg->servername = pstrdup(server->servername);
	cfg->schema = "PUBLIC";
	cfg->stage = "SFEXPORT_STAGE";
	cfg->file_format = "SFEXPORT_CSV";
	cfg->compression = SF_COMPRESSION_GZIP;
	cfg->keep_files = false;
	cfg->load_mode = SF_LOAD_COPY;
	cfg->connect_timeout_ms = 10 * 1000;
	cfg->request_timeout_ms = 300 * 1000;
	cfg->statement_timeout_s = 3600;
	cfg->flush_interval_s = cfg->flush_size_kb = cfg->max_file_size_kb = cfg->batch_size = -1;

	foreach(lc, server->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);
		char	   *v = defGetString(def);
		const char *n = def->defname;

		if (strcmp(n, "account") == 0)
			cfg->account = v;
		else if (strcmp(n, "url") == 0)
			cfg->url = v;
		else if (strcmp(n, "database") == 0)
			cfg->database = v;
		else if (strcmp(n, "schema") == 0)
			cfg->schema = v;
		else if (strcmp(n, "warehouse") == 0)
			cfg->warehouse = v;
		else if (strcmp(n, "role") == 0)
			cfg->role = v;
		else if (strcmp(n, "stage") == 0)
			cfg->stage = v;
		else if (strcmp(n, "file_format") == 0)
			cfg->file_format = v;
		else if (strcmp(n, "statement_timeout") == 0)
			cfg->statement_timeout_s = parse_unit_value(v, GUC_UNIT_S);
		else if (strcmp(n, "location") == 0)
			cfg->location_text = v;
		else if (strcmp(n, "region") == 0)
			cfg->region = v;
		else if (strcmp(n, "endpoint") == 0)
			cfg->endpoint = v;
		else if (strcmp(n, "storage_integration") == 0)
			cfg->storage_integration = v;
		else if (strcmp(n, "compression") == 0)
			cfg->compression = parse_compression(v);
		else if (strcmp(n, "compression_level") == 0)
			cfg->compression_level = atoi(v);
		else if (strcmp(n, "keep_files") == 0)
			(void) parse_bool(v, &cfg->keep_files);
		else if (strcmp(n, "load_mode") == 0)
			cfg->load_mode = strcmp(v, "snowpipe") == 0 ? SF_LOAD_SNOWPIPE : SF_LOAD_COPY;
		else if (strcmp(n, "ca_file") == 0)
			cfg->ca_file = v;
		else if (strcmp(n, "connect_timeout") == 0)
			cfg->connect_timeout_ms = parse_unit_value(v, GUC_UNIT_MS);
		else if (strcmp(n, "request_timeout") == 0)
			cfg->request_timeout_ms = parse_unit_value(v, GUC_UNIT_MS);
		else if (parse_flush_setting(n, v, &cfg->flush_interval_s, &cfg->flush_size_kb,
									 &cfg->max_file_size_kb, &cfg->batch_size))
			continue;
		else if (strcmp(n, "upper_case_identifiers") == 0)
			(void) parse_bool(v, &cfg->upper_case_identifiers);
	}

	if (cfg->account == NULL || cfg->database == NULL || cfg->location_text == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("server \"%s\" lacks a required option", cfg->servername),
				 errhint("A sfexport server needs at least account, database and location.")));
	if (cfg->url == NULL)
		cfg->url = default_account_url(cfg->account);
	if (!sf_parse_location(cfg->location_text, &cfg->location, &why))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid location for server \"%s\"", cfg->servername),
				 errdetail_internal("%s", why)));
	return cfg;
}

/*
 * May this server use credentials of the database server's host: today the
 * AWS_* environment variables of the postmaster (sf_get_user_config) and
 * STORAGE_EMULATOR_HOST (storage_gcs.c); tomorrow any other host-level
 * source (the AWS default credential chain, instance or GCE metadata).
 * Every such fallback asks here, and nowhere else.
 *
 * Only a server owned by a superuser may.  The owner of a server chooses
 * where its requests go (url, endpoint, glue_endpoint, location), and a
 * non-superuser who could combine an endpoint of their choosing with the
 * host's identity would receive requests signed with it, or the keys
 * themselves in a CREATE STAGE.  Asked at every use, not at DDL time:
 * ownership changes (ALTER SERVER ... OWNER TO) and roles lose SUPERUSER.
 * The event trigger sfexport_ddl_check (sql/sfexport--0.2.0.sql) makes
 * sure only a superuser alters a superuser's server or gives one to a
 * superuser, so the destination of a server allowed here was chosen by a
 * superuser.
 */
bool
sf_server_may_use_host_credentials(Oid serverid)
{
	return superuser_arg(GetForeignServer(serverid)->owner);
}

/*
 * A credential option read at use must still be fit for an HTTP header:
 * the validator refuses control characters, but mappings made before it
 * did (sfexport 0.1.0) are used as they are stored.
 */
static void
check_stored_header_value(const char *option, const char *value, Oid serverid)
{
	if (value && !sf_http_header_value_ok(value))
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("invalid value for option \"%s\" in a user mapping for server \"%s\"",
						option, GetForeignServer(serverid)->servername),
				 errdetail("The value contains control characters such as carriage return or line feed; it is sent in an HTTP header."),
				 errhint("Set it again with ALTER USER MAPPING ... OPTIONS (SET %s '...').",
						 option)));
}

/*
 * Credentials from the user mapping of userid (or PUBLIC) on the server.
 * Files named by *_file options are read here.  AWS keys fall back to the
 * postmaster's AWS_* environment variables only for a server that may use
 * the host's credentials (sf_server_may_use_host_credentials); such keys
 * are marked aws_from_host and never leave the extension but as SigV4
 * signatures (setup.c refuses to give them to Snowflake).
 */
SfUserConfig *
sf_get_user_config(Oid serverid, Oid userid)
{
	UserMapping *um = GetUserMapping(userid, serverid);
	SfUserConfig *cfg = palloc0(sizeof(SfUserConfig));
	ListCell   *lc;

	cfg->serverid = serverid;
	cfg->userid = userid;
	foreach(lc, um->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);
		char	   *v = defGetString(def);
		const char *n = def->defname;

		if (strcmp(n, "user") == 0)
			cfg->user = v;
		else if (strcmp(n, "private_key") == 0)
			cfg->private_key = v;
		else if (strcmp(n, "private_key_file") == 0)
			cfg->private_key_file = v;
		else if (strcmp(n, "private_key_passphrase") == 0)
			cfg->private_key_passphrase = v;
		else if (strcmp(n, "token") == 0)
			cfg->token = v;
		else if (strcmp(n, "token_type") == 0)
			cfg->token_type = v;
		else if (strcmp(n, "aws_access_key_id") == 0)
			cfg->aws_access_key_id = v;
		else if (strcmp(n, "aws_secret_access_key") == 0)
			cfg->aws_secret_access_key = v;
		else if (strcmp(n, "aws_session_token") == 0)
			cfg->aws_session_token = v;
		else if (strcmp(n, "gcs_credentials") == 0)
			cfg->gcs_credentials = v;
		else if (strcmp(n, "gcs_credentials_file") == 0)
			cfg->gcs_credentials_file = v;
	}
	check_stored_header_value("token", cfg->token, serverid);
	check_stored_header_value("aws_access_key_id", cfg->aws_access_key_id, serverid);
	check_stored_header_value("aws_secret_access_key", cfg->aws_secret_access_key, serverid);
	check_stored_header_value("aws_session_token", cfg->aws_session_token, serverid);

	if (cfg->private_key_file && cfg->private_key == NULL)
		cfg->private_key = read_secret_file(cfg->private_key_file, "private_key_file");
	if (cfg->gcs_credentials_file && cfg->gcs_credentials == NULL)
		cfg->gcs_credentials = read_secret_file(cfg->gcs_credentials_file, "gcs_credentials_file");
	if (cfg->token_type == NULL)
		cfg->token_type = cfg->token ? "OAUTH" : "KEYPAIR_JWT";

	cfg->host_credentials_allowed = sf_server_may_use_host_credentials(serverid);
	if (cfg->aws_access_key_id == NULL && cfg->host_credentials_allowed)
	{
		const char *id = getenv("AWS_ACCESS_KEY_ID");
		const char *secret = getenv("AWS_SECRET_ACCESS_KEY");
		const char *token = getenv("AWS_SESSION_TOKEN");

		if (id && *id && secret && *secret)
		{
			if (!sf_http_header_value_ok(id) || !sf_http_header_value_ok(secret) ||
				(token && !sf_http_header_value_ok(token)))
				ereport(ERROR,
						(errcode(ERRCODE_CONFIG_FILE_ERROR),
						 errmsg("the AWS credentials in the database server's environment contain control characters"),
						 errhint("Check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN in the environment the server was started with.")));
			cfg->aws_access_key_id = pstrdup(id);
			cfg->aws_secret_access_key = pstrdup(secret);
			cfg->aws_session_token = (token && *token) ? pstrdup(token) : NULL;
			cfg->aws_from_host = true;
		}
	}
	return cfg;
}

/*
 * Error out unless usr has AWS keys, from its user mapping or, for a
 * server that may use them, the host (S3 storage, Glue).  The message is
 * the same whether or not the host has keys: it tells nobody what the
 * database server's environment holds.
 */
void
sf_require_aws_credentials(SfServerConfig *srv, SfUserConfig *usr)
{
	char	   *role;

	if (usr->aws_access_key_id != NULL && usr->aws_secret_access_key != NULL)
		return;
	role = OidIsValid(usr->userid) ? GetUserNameFromId(usr->userid, true) : NULL;
	if (usr->host_credentials_allowed)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
				 errmsg("no AWS credentials for server \"%s\"", srv->servername),
				 errdetail("Neither the user mapping nor the database server's environment gives an access key."),
				 errhint("Set aws_access_key_id and aws_secret_access_key in the user mapping, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the database server's environment.")));
	ereport(ERROR,
			(errcode(ERRCODE_FDW_OPTION_NAME_NOT_FOUND),
			 errmsg("no AWS credentials for server \"%s\"", srv->servername),
			 errdetail("The user mapping gives no access key, and only servers owned by a superuser may use the database server's own AWS credentials."),
			 errhint("Set aws_access_key_id and aws_secret_access_key in the user mapping for %s on server %s (CREATE or ALTER USER MAPPING ... OPTIONS (aws_access_key_id '...', aws_secret_access_key '...')).",
					 role ? quote_identifier(role) : "the role", quote_identifier(srv->servername))));
}

/* Merge a "not set" (-1) value with a fallback. */
static inline int
inherit(int v, int fallback)
{
	return v >= 0 ? v : fallback;
}

/*
 * Foreign table options merged with its server's options and the GUCs.
 */
SfTableConfig *
sf_get_table_config(Oid relid)
{
	ForeignTable *ft = GetForeignTable(relid);
	SfServerConfig *srv = sf_get_server_config(ft->serverid);
	SfTableConfig *cfg = palloc0(sizeof(SfTableConfig));
	ListCell   *lc;

	cfg->relid = relid;
	cfg->serverid = ft->serverid;
	cfg->table = sf_identifier_case(srv->upper_case_identifiers, get_rel_name(relid));
	cfg->schema = srv->schema;
	cfg->load_mode = srv->load_mode;
	cfg->flush_interval_s = cfg->flush_size_kb = cfg->max_file_size_kb = cfg->batch_size = -1;

	foreach(lc, ft->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);
		char	   *v = defGetString(def);
		const char *n = def->defname;

		if (strcmp(n, "table") == 0)
			cfg->table = v;
		else if (strcmp(n, "schema") == 0)
			cfg->schema = v;
		else if (strcmp(n, "load_mode") == 0)
			cfg->load_mode = strcmp(v, "snowpipe") == 0 ? SF_LOAD_SNOWPIPE : SF_LOAD_COPY;
		else if (parse_flush_setting(n, v, &cfg->flush_interval_s, &cfg->flush_size_kb,
									 &cfg->max_file_size_kb, &cfg->batch_size))
			continue;
	}

	cfg->flush_interval_s = inherit(cfg->flush_interval_s,
									inherit(srv->flush_interval_s, sfexport_flush_interval_s));
	cfg->flush_size_kb = inherit(cfg->flush_size_kb,
								 inherit(srv->flush_size_kb, sfexport_flush_size_kb));
	cfg->max_file_size_kb = inherit(cfg->max_file_size_kb,
									inherit(srv->max_file_size_kb, sfexport_max_file_size_kb));
	cfg->batch_size_option = inherit(cfg->batch_size, srv->batch_size);
	cfg->batch_size = inherit(cfg->batch_size_option, sfexport_batch_size);
	return cfg;
}

/*
 * A Snowflake name derived from a PostgreSQL identifier (the default table
 * name, default column names).  With the server option
 * upper_case_identifiers, ASCII letters are upper-cased, as Snowflake does
 * for unquoted identifiers, so that users can write the names without
 * quotes in Snowflake.  Names given explicitly (table, column_name options)
 * never go through here: they are used exactly as given.
 */
char *
sf_identifier_case(bool upper, const char *name)
{
	char	   *res = pstrdup(name);

	if (upper)
		for (char *c = res; *c; c++)
			if (*c >= 'a' && *c <= 'z')
				*c = *c - 'a' + 'A';
	return res;
}

/*
 * The Snowflake column name for a foreign table column: its column_name
 * option, else the PostgreSQL attribute name (upper-cased when the server
 * says upper_case_identifiers).  The one place column names are derived:
 * the encoder's shape, the worker's COPY and setup_table all use it.
 */
char *
sf_column_target_name(Oid relid, AttrNumber attnum)
{
	List	   *options = GetForeignColumnOptions(relid, attnum);
	ListCell   *lc;
	ForeignServer *server;
	bool		upper = false;

	foreach(lc, options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "column_name") == 0)
			return defGetString(def);
	}

	server = GetForeignServer(GetForeignTable(relid)->serverid);
	foreach(lc, server->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);

		if (strcmp(def->defname, "upper_case_identifiers") == 0)
			(void) parse_bool(defGetString(def), &upper);
	}
	return sf_identifier_case(upper, get_attname(relid, attnum, false));
}
