/*-------------------------------------------------------------------------
 *
 * config.c
 *		Parsed configuration: what the options of a server, a user mapping
 *		and a foreign table mean once read (SfServerConfig, SfUserConfig,
 *		SfTableConfig), with their defaults, and the rules derived from them
 *		that more than one module needs.
 *
 * The options were validated when they were set (options.c); values are
 * parsed here again at every use, since ALTER changes them at any time.
 * Credential files named by *_file options are read here, with the mode
 * rule PostgreSQL applies to its own key files.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/pg_authid.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "sfexport.h"

#include "compress.h"
#include "config.h"
#include "cron.h"
#include "http.h"
#include "quote.h"

/* GUCs: the defaults of the flush settings (README.md, Configuration) */
int			sfexport_flush_interval_s = 600;
int			sfexport_flush_size_kb = 0;	/* 0: off, file_size decides */
int			sfexport_file_size_kb = 150 * 1024;
int			sfexport_max_file_size_kb = 200 * 1024;

/*
 * From _PG_init: the defaults of the options flush_interval, flush_size,
 * file_size and max_file_size.
 */
void
sf_config_define_gucs(void)
{
	DefineCustomIntVariable("sfexport.flush_interval",
							"Longest time rows wait in the outbox before a flush.",
							"Overridden per server or foreign table by the flush_interval option.",
							&sfexport_flush_interval_s,
							600, 1, SF_MAX_FLUSH_INTERVAL_S,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sfexport.flush_size",
							"Pending outbox bytes of one foreign table that trigger an early flush; 0 turns this trigger off.",
							"Overridden per server or foreign table by the flush_size option.  sfexport.file_size is the trigger on compressed bytes.",
							&sfexport_flush_size_kb,
							0, 0, INT_MAX / 2,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	/*
	 * Snowflake: "aim to produce data files roughly 100-250 MB (or larger)
	 * in size compressed" (Preparing your data files, docs.snowflake.com);
	 * 150 MB leaves room below max_file_size for an estimate that is low.
	 */
	DefineCustomIntVariable("sfexport.file_size",
							"Compressed size of the staged files the worker aims for.",
							"A table is flushed once its pending rows are estimated to compress to this size (file_size.c).  Overridden per server or foreign table by the file_size option.",
							&sfexport_file_size_kb,
							150 * 1024, 1, INT_MAX / 2,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("sfexport.max_file_size",
							"Largest compressed size of one staged file.",
							"Snowflake recommends files of about 100-250 MB compressed.",
							&sfexport_max_file_size_kb,
							200 * 1024, 1024, INT_MAX / 2,
							PGC_SIGHUP,
							GUC_UNIT_KB,
							NULL, NULL, NULL);
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
					int *file_kb, int *max_file_kb, int *batch)
{
	if (strcmp(n, "flush_interval") == 0)
		*interval_s = parse_unit_value(v, GUC_UNIT_S);
	else if (strcmp(n, "flush_size") == 0)
		*size_kb = parse_unit_value(v, GUC_UNIT_KB);
	else if (strcmp(n, "file_size") == 0)
		*file_kb = parse_unit_value(v, GUC_UNIT_KB);
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
 * Error out, saying why, unless a key or credential file that exists has
 * the mode secret_file_mode_ok() wants (for the validator, which checks a
 * file that is already there).
 */
void
sf_check_secret_file_mode(const char *path, const char *option, const struct stat *st)
{
	if (!secret_file_mode_ok(st))
		report_secret_file_mode(path, option, st);
}

/*
 * Read a whole key or credential file, for the *_file options of a user
 * mapping.  A file other local users can read is refused
 * (secret_file_mode_ok).
 */
char *
sf_read_secret_file(const char *path, const char *option)
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
	cfg->file_size_kb = -1;

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
		else if (strcmp(n, "aws_profile") == 0)
			cfg->aws_profile = v;
		else if (strcmp(n, "sts_endpoint") == 0)
			cfg->sts_endpoint = v;
		else if (strcmp(n, "aws_role_arn") == 0)
			cfg->aws_role_arn = v;
		else if (strcmp(n, "aws_external_id") == 0)
			cfg->aws_external_id = v;
		else if (strcmp(n, "storage_integration") == 0)
			cfg->storage_integration = v;
		else if (strcmp(n, "compression") == 0)
			cfg->compression = parse_compression(v);
		else if (strcmp(n, "compression_level") == 0)
			cfg->compression_level = atoi(v);
		else if (strcmp(n, "keep_files") == 0)
			(void) parse_bool(v, &cfg->keep_files);
		else if (strcmp(n, "load_mode") == 0)
			cfg->load_mode = sf_parse_load_mode(v);
		else if (strcmp(n, "ca_file") == 0)
			cfg->ca_file = v;
		else if (strcmp(n, "connect_timeout") == 0)
			cfg->connect_timeout_ms = parse_unit_value(v, GUC_UNIT_MS);
		else if (strcmp(n, "request_timeout") == 0)
			cfg->request_timeout_ms = parse_unit_value(v, GUC_UNIT_MS);
		else if (parse_flush_setting(n, v, &cfg->flush_interval_s, &cfg->flush_size_kb,
									 &cfg->file_size_kb, &cfg->max_file_size_kb,
									 &cfg->batch_size))
			continue;
		else if (strcmp(n, "flush_at") == 0)
			cfg->flush_at = v;
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
 * signatures (statements.c refuses to give them to Snowflake).
 */
SfUserConfig *
sf_get_user_config(Oid serverid, Oid userid)
{
	UserMapping *um = GetUserMapping(userid, serverid);
	SfUserConfig *cfg = palloc0(sizeof(SfUserConfig));
	ListCell   *lc;

	cfg->serverid = serverid;
	cfg->userid = userid;
	cfg->mapping_user = um->userid;
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
		else if (strcmp(n, "aws_role_arn") == 0)
			cfg->aws_role_arn = v;
		else if (strcmp(n, "aws_external_id") == 0)
			cfg->aws_external_id = v;
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
		cfg->private_key = sf_read_secret_file(cfg->private_key_file, "private_key_file");
	if (cfg->gcs_credentials_file && cfg->gcs_credentials == NULL)
		cfg->gcs_credentials = sf_read_secret_file(cfg->gcs_credentials_file, "gcs_credentials_file");
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
 * The forms STS accepts (botocore data/sts/2011-06-15/service-2.json:
 * arnType 20..2048 characters, externalIdType 2..1224 of [\w+=,.@:/-]*);
 * a role ARN is checked a little further, arn:PARTITION:iam::ACCOUNT:role/NAME.
 */
bool
sf_aws_role_arn_ok(const char *v)
{
	size_t		len = strlen(v);
	const char *p;

	if (len < 20 || len > 2048 || strncmp(v, "arn:", 4) != 0)
		return false;
	for (p = v; *p; p++)
		if ((unsigned char) *p <= ' ' || (unsigned char) *p >= 0x7f)
			return false;
	p = strstr(v, ":iam::");
	return p != NULL && strstr(p, ":role/") != NULL;
}

bool
sf_aws_external_id_ok(const char *v)
{
	size_t		len = strlen(v);

	if (len < 2 || len > 1224)
		return false;
	for (const char *p = v; *p; p++)
		if (!isalnum((unsigned char) *p) && strchr("_+=,.@:/-", *p) == NULL)
			return false;
	return true;
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
	const char *flush_at = NULL;

	cfg->relid = relid;
	cfg->serverid = ft->serverid;
	cfg->table = sf_identifier_case(srv->upper_case_identifiers, get_rel_name(relid));
	cfg->schema = srv->schema;
	cfg->load_mode = srv->load_mode;
	cfg->flush_interval_s = cfg->flush_size_kb = cfg->max_file_size_kb = cfg->batch_size = -1;
	cfg->file_size_kb = -1;

	foreach(lc, ft->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);
		char	   *v = defGetString(def);
		const char *n = def->defname;

		if (strcmp(n, "table") == 0)
			cfg->table = v;
		else if (strcmp(n, "schema") == 0)
			cfg->schema = v;
		else if (strcmp(n, "streaming_pipe") == 0)
			cfg->streaming_pipe = v;
		else if (strcmp(n, "load_mode") == 0)
			cfg->load_mode = sf_parse_load_mode(v);
		else if (parse_flush_setting(n, v, &cfg->flush_interval_s, &cfg->flush_size_kb,
									 &cfg->file_size_kb, &cfg->max_file_size_kb,
									 &cfg->batch_size))
			continue;
		else if (strcmp(n, "flush_at") == 0)
			flush_at = v;
		else if (strcmp(n, "file_format") == 0)
			cfg->json = strcmp(v, "json") == 0;
	}

	/*
	 * flush_at (the table's, else the server's): rows wait for the next
	 * scheduled minute, or flush_interval if set on the table or server
	 * (whichever comes first), else at most SF_MAX_FLUSH_INTERVAL_S; the
	 * GUC's default interval does not apply (docs/flush.md).
	 */
	if (flush_at == NULL)
		flush_at = srv->flush_at;
	if (flush_at != NULL)
	{
		const char *why;

		cfg->has_flush_at = sf_cron_parse(flush_at, &cfg->flush_at, &why);
		if (!cfg->has_flush_at)
			ereport(WARNING,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("ignoring the invalid flush_at of foreign table \"%s\"", get_rel_name(relid)),
					 errdetail("%s.", why),
					 errhint("Set a valid schedule with ALTER FOREIGN TABLE or ALTER SERVER.")));
	}
	if (cfg->has_flush_at && cfg->flush_interval_s < 0 && srv->flush_interval_s < 0)
		cfg->flush_interval_s = SF_MAX_FLUSH_INTERVAL_S;
	cfg->flush_interval_s = inherit(cfg->flush_interval_s,
									inherit(srv->flush_interval_s, sfexport_flush_interval_s));
	cfg->flush_size_kb = inherit(cfg->flush_size_kb,
								 inherit(srv->flush_size_kb, sfexport_flush_size_kb));
	cfg->file_size_kb = inherit(cfg->file_size_kb,
								inherit(srv->file_size_kb, sfexport_file_size_kb));
	cfg->max_file_size_kb = inherit(cfg->max_file_size_kb,
									inherit(srv->max_file_size_kb, sfexport_max_file_size_kb));
	/*
	 * The executor's batch size (ExecForeignBatchInsert); unrelated to
	 * sfexport.batch_size, the rows per outbox write (outbox.c).
	 */
	cfg->batch_size_option = inherit(cfg->batch_size, srv->batch_size);
	return cfg;
}

/* The value of a load_mode option (checked by the validator). */
SfLoadMode
sf_parse_load_mode(const char *value)
{
	if (strcmp(value, "snowpipe") == 0)
		return SF_LOAD_SNOWPIPE;
	if (strcmp(value, "streaming") == 0)
		return SF_LOAD_STREAMING;
	return SF_LOAD_COPY;
}

/*
 * When a table whose oldest pending row was written at oldest is due: after
 * its flush_interval, or at the first minute of its flush_at schedule after
 * that row, whichever comes first.  (flush_size may make it due earlier.)
 */
TimestampTz
sf_table_flush_deadline(const SfTableConfig *cfg, TimestampTz oldest)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(oldest, cfg->flush_interval_s * 1000L);

	if (cfg->has_flush_at)
	{
		TimestampTz next = sf_cron_next(&cfg->flush_at, oldest);

		if (next != 0 && next < deadline)
			deadline = next;
	}
	return deadline;
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

/*
 * The role whose user mapping the worker uses for a server: the server's
 * owner (the mapping lookup falls back to PUBLIC).  Setup and the orphan
 * listing use the same mapping, so that the stage reads the files with the
 * credentials that wrote them.
 */
Oid
sf_worker_user(Oid serverid)
{
	return GetForeignServer(serverid)->owner;
}

/* The credentials the worker uses for a server (sf_worker_user's mapping). */
SfUserConfig *
sf_get_worker_user_config(Oid serverid)
{
	return sf_get_user_config(serverid, sf_worker_user(serverid));
}

static bool
valid_stage_part(const char *s, size_t len)
{
	if (len == 0 || len > SF_GLUE_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(isalnum((unsigned char) s[i]) || s[i] == '_' || s[i] == '$'))
			return false;
	return true;
}

/*
 * Parse the glue_stage_map option: entries STAGE=s3://bucket/prefix/
 * separated by commas, STAGE being name or database.schema.name (letters,
 * digits, "_" and "$"; quoted as given, so case-sensitive).  An unqualified
 * stage is taken in the server's database and schema.  Returns false with
 * *why set to a sentence when malformed.  Entries (SfGlueStage *) go to
 * *entries when entries is not NULL (db and schema qualify bare names).
 */
bool
sf_glue_parse_stage_map(const char *value, const char *db, const char *schema,
						List **entries, char **why)
{
	char	   *copy = pstrdup(value);
	char	   *saveptr = NULL;
	int			n = 0;

	for (char *item = strtok_r(copy, ",", &saveptr); item;
		 item = strtok_r(NULL, ",", &saveptr))
	{
		char	   *eq;
		char	   *name;
		char	   *loc;
		SfLocation	l;
		char	   *lwhy = NULL;
		List	   *parts = NIL;
		char	   *dot;
		char	   *start;

		while (*item == ' ' || *item == '\t' || *item == '\n')
			item++;
		for (char *e = item + strlen(item); e > item && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'); e--)
			e[-1] = '\0';
		if (*item == '\0')
			continue;
		eq = strchr(item, '=');
		if (eq == NULL)
		{
			*why = psprintf("Entry \"%s\" is not of the form STAGE=s3://bucket/prefix/.", item);
			return false;
		}
		name = pnstrdup(item, eq - item);
		loc = eq + 1;
		for (char *e = name + strlen(name); e > name && e[-1] == ' '; e--)
			e[-1] = '\0';
		while (*loc == ' ')
			loc++;
		start = name;
		while ((dot = strchr(start, '.')) != NULL)
		{
			if (!valid_stage_part(start, dot - start))
				break;
			parts = lappend(parts, pnstrdup(start, dot - start));
			start = dot + 1;
		}
		if (dot != NULL || !valid_stage_part(start, strlen(start)) ||
			(list_length(parts) != 0 && list_length(parts) != 2))
		{
			*why = psprintf("Stage name \"%s\" must be NAME or DATABASE.SCHEMA.NAME, each part letters, digits, \"_\" or \"$\".", name);
			return false;
		}
		parts = lappend(parts, pstrdup(start));
		if (!sf_parse_location(loc, &l, &lwhy) || l.kind != SF_LOCATION_S3)
		{
			*why = psprintf("Location \"%s\" of stage \"%s\" is not an s3:// location%s%s",
							loc, name, lwhy ? ": " : ".", lwhy ? lwhy : "");
			return false;
		}
		if (entries)
		{
			SfGlueStage  *gs = palloc0(sizeof(SfGlueStage));

			if (list_length(parts) == 1)
				gs->stage_sql = psprintf("%s.%s.%s", sf_quote_ident(db),
										 sf_quote_ident(schema),
										 sf_quote_ident(linitial(parts)));
			else
				gs->stage_sql = psprintf("%s.%s.%s",
										 sf_quote_ident(linitial(parts)),
										 sf_quote_ident(lsecond(parts)),
										 sf_quote_ident(lthird(parts)));
			gs->bucket = l.bucket;
			gs->prefix = l.prefix;
			*entries = lappend(*entries, gs);
		}
		n++;
	}
	if (n == 0)
	{
		*why = "The map must name at least one stage.";
		return false;
	}
	return true;
}

/* The AWS Glue options of a server (glue_sync.c, docs/glue.md). */
SfGlueConfig *
sf_get_glue_config(Oid serverid)
{
	ForeignServer *server = GetForeignServer(serverid);
	SfGlueConfig *conf = palloc0(sizeof(SfGlueConfig));
	char	   *stage_map = NULL;
	ListCell   *lc;

	conf->srv = sf_get_server_config(serverid);
	foreach(lc, server->options)
	{
		DefElem    *def = lfirst_node(DefElem, lc);
		char	   *v = defGetString(def);

		if (strcmp(def->defname, "glue_region") == 0)
			conf->region = v;
		else if (strcmp(def->defname, "glue_endpoint") == 0)
			conf->endpoint = v;
		else if (strcmp(def->defname, "glue_sync_interval") == 0)
			(void) parse_int(v, &conf->sync_interval_s, GUC_UNIT_S, NULL);
		else if (strcmp(def->defname, "glue_databases") == 0)
		{
			char	   *saveptr = NULL;

			/* comma-separated Glue database names, blanks around ignored */
			for (char *item = strtok_r(pstrdup(v), ",", &saveptr); item;
				 item = strtok_r(NULL, ",", &saveptr))
			{
				char	   *end;

				while (*item == ' ')
					item++;
				end = item + strlen(item);
				while (end > item && end[-1] == ' ')
					*--end = '\0';
				if (*item)
					conf->databases = lappend(conf->databases, item);
			}
		}
		else if (strcmp(def->defname, "glue_drop_missing") == 0)
			(void) parse_bool(v, &conf->drop_missing);
		else if (strcmp(def->defname, "glue_catalog_id") == 0)
			conf->catalog_id = v;
		else if (strcmp(def->defname, "glue_auto_refresh") == 0)
			(void) parse_bool(v, &conf->auto_refresh);
		else if (strcmp(def->defname, "glue_stage_map") == 0)
			stage_map = v;
	}
	if (conf->region == NULL)
		conf->region = conf->srv->region ? conf->srv->region : "us-east-1";

	/* the server's own stage covers its location when that is on S3 */
	if (conf->srv->location.kind == SF_LOCATION_S3)
	{
		SfGlueStage  *gs = palloc0(sizeof(SfGlueStage));

		gs->stage_sql = psprintf("%s.%s.%s", sf_quote_ident(conf->srv->database),
								 sf_quote_ident(conf->srv->schema),
								 sf_quote_ident(conf->srv->stage));
		gs->bucket = conf->srv->location.bucket;
		gs->prefix = conf->srv->location.prefix;
		conf->stages = lappend(conf->stages, gs);
	}
	if (stage_map)
	{
		char	   *why = NULL;

		if (!sf_glue_parse_stage_map(stage_map, conf->srv->database,
									 conf->srv->schema, &conf->stages, &why))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid glue_stage_map for server \"%s\"", conf->srv->servername),
					 errdetail_internal("%s", why)));
	}
	return conf;
}
