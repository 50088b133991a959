/*-------------------------------------------------------------------------
 *
 * file_size.c
 *		When a table's pending rows make a staged file of the size Snowflake
 *		wants.
 *
 * Snowflake advises data files of "roughly 100-250 MB (or larger) in size
 * compressed" (Preparing your data files, docs.snowflake.com): each file
 * costs load overhead, and Snowpipe charges per file.  The outbox knows only
 * uncompressed payload bytes (the plan's sum of octet_length(line) + 1), and
 * how well rows compress depends on the table and the compression.  So the
 * worker remembers, per table and compression, the ratio of compressed file
 * bytes to outbox bytes of the files it staged recently (flush.c notes each
 * file), and a table is due once its pending outbox bytes times that ratio
 * reach file_size.  flush_interval still bounds how long a row waits, and
 * flush_size (off by default) still flushes on outbox bytes alone.
 *
 * The ratio is a decaying sum: each new file counts as much as all earlier
 * ones together, weighted by bytes, so a change in the data shows within
 * a file or two and a small file (a flush_interval flush of a few rows)
 * moves the estimate little.  Before the first file of a table since the
 * worker started a prior is used that overestimates the compressed size of
 * typical rows (bench/flush: gzip 0.19, zstd 0.13 of outbox bytes): the
 * first file then comes out smaller than file_size rather than over
 * max_file_size, which would split it into a full file and a small rest.
 *
 * The state is the worker's memory (a table's history is lost when the
 * worker restarts, which costs one smaller file); nothing here is read from
 * or written to the database.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sfexport.h"

#include "file_size.h"
#include "hashtab.h"

typedef struct RatioKey
{
	Oid			relid;
	int			compression;	/* SfCompression */
} RatioKey;

typedef struct RatioEntry
{
	RatioKey	key;			/* hash key */
	double		outbox_bytes;	/* decaying sums */
	double		file_bytes;
} RatioEntry;

static HTAB *ratios = NULL;

/* Compressed bytes per outbox byte assumed before a table's first file. */
static double
prior_ratio(SfCompression compression)
{
	switch (compression)
	{
		case SF_COMPRESSION_GZIP:
			return 0.40;
		case SF_COMPRESSION_ZSTD:
			return 0.30;
		case SF_COMPRESSION_NONE:
			break;
	}
	return 1.0;
}

/* flush.c: a file of relid was staged (or written, even if not committed). */
void
sf_file_size_note(Oid relid, SfCompression compression, int64 outbox_bytes,
				  int64 file_bytes)
{
	RatioKey	key;
	RatioEntry *e;
	bool		found;

	if (outbox_bytes <= 0 || file_bytes <= 0)
		return;
	if (ratios == NULL)
		ratios = sf_hash_create("sfexport compression ratios", 32, sizeof(RatioKey),
								sizeof(RatioEntry), TopMemoryContext);
	memset(&key, 0, sizeof(key));
	key.relid = relid;
	key.compression = (int) compression;
	e = hash_search(ratios, &key, HASH_ENTER, &found);
	if (!found)
		e->outbox_bytes = e->file_bytes = 0;
	e->outbox_bytes = e->outbox_bytes / 2 + (double) outbox_bytes;
	e->file_bytes = e->file_bytes / 2 + (double) file_bytes;
}

/* Compressed bytes per outbox byte of relid's recent files (or the prior). */
double
sf_file_size_ratio(Oid relid, SfCompression compression)
{
	RatioKey	key;
	RatioEntry *e = NULL;

	memset(&key, 0, sizeof(key));
	key.relid = relid;
	key.compression = (int) compression;
	if (ratios != NULL)
		e = hash_search(ratios, &key, HASH_FIND, NULL);
	if (e == NULL || e->outbox_bytes <= 0)
		return prior_ratio(compression);
	return e->file_bytes / e->outbox_bytes;
}

/*
 * Pending outbox bytes at which a table is due: those estimated to compress
 * to file_size (at most max_file_size, where flush.c ends a file anyway), or
 * flush_size if it is set and smaller.  Call within a transaction (reads the
 * server's options).
 */
int64
sf_file_size_due_bytes(const SfTableConfig *cfg)
{
	SfServerConfig *srv = sf_get_server_config(cfg->serverid);
	double		target = (double) Min(cfg->file_size_kb, cfg->max_file_size_kb) * 1024;
	double		ratio = Max(sf_file_size_ratio(cfg->relid, srv->compression), 0.001);
	double		due = target / ratio;
	int64		bytes = due >= (double) PG_INT64_MAX / 2 ? PG_INT64_MAX / 2 : Max((int64) due, 1);

	if (cfg->flush_size_kb > 0)
		bytes = Min(bytes, (int64) cfg->flush_size_kb * 1024);
	return bytes;
}
