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

#include "commands/extension.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

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

typedef struct SeedCount
{
	RatioKey	key;			/* hash key */
	int			files;
} SeedCount;

static HTAB *ratios = NULL;
static bool seeded = false;

#define SEED_FILES		4		/* newest files per table read at start */
#define SEED_SCAN		1000	/* newest manifest rows looked at */

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

static RatioEntry *
ratio_entry(Oid relid, SfCompression compression, bool *found)
{
	RatioKey	key;

	if (ratios == NULL)
		ratios = sf_hash_create("sfexport compression ratios", 32, sizeof(RatioKey),
								sizeof(RatioEntry), TopMemoryContext);
	memset(&key, 0, sizeof(key));
	key.relid = relid;
	key.compression = (int) compression;
	return hash_search(ratios, &key, HASH_ENTER, found);
}

/* flush.c: a file of relid was staged (or written, even if not committed). */
void
sf_file_size_note(Oid relid, SfCompression compression, int64 outbox_bytes,
				  int64 file_bytes)
{
	RatioEntry *e;
	bool		found;

	if (outbox_bytes <= 0 || file_bytes <= 0)
		return;
	e = ratio_entry(relid, compression, &found);
	if (!found)
		e->outbox_bytes = e->file_bytes = 0;
	e->outbox_bytes = e->outbox_bytes / 2 + (double) outbox_bytes;
	e->file_bytes = e->file_bytes / 2 + (double) file_bytes;
}

/*
 * Once per worker: the ratios of the newest files in the manifest (see the
 * header).  Call within SPI, before reading an SPI result of the caller's
 * (this replaces SPI_tuptable).  The worker's search_path is pg_catalog
 * only (elevated.c); the query names everything with its schema anyway.
 */
void
sf_file_size_seed(void)
{
	static const SfCompression kinds[] = {SF_COMPRESSION_GZIP, SF_COMPRESSION_ZSTD,
	SF_COMPRESSION_NONE};
	HTAB	   *counts;

	if (seeded || !OidIsValid(get_extension_oid("sfexport", true)))
		return;
	seeded = true;				/* also if the query fails: then priors */
	if (SPI_execute("SELECT relid, compression, bytes, raw_bytes FROM sfexport.files"
					" WHERE raw_bytes OPERATOR(pg_catalog.>) 0 AND bytes OPERATOR(pg_catalog.>) 0"
					" ORDER BY file_id DESC LIMIT " CppAsString2(SEED_SCAN),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read sfexport.files");
	counts = sf_hash_create("sfexport ratio seed", 32, sizeof(RatioKey), sizeof(SeedCount),
							CurrentMemoryContext);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *name = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		int64		bytes = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		int64		raw = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));

		for (int k = 0; k < (int) lengthof(kinds); k++)
		{
			RatioKey	key;
			SeedCount  *seen;
			RatioEntry *e;
			bool		found;

			if (strcmp(name, sf_compression_name(kinds[k])) != 0)
				continue;
			memset(&key, 0, sizeof(key));
			key.relid = relid;
			key.compression = (int) kinds[k];
			seen = (SeedCount *) hash_search(counts, &key, HASH_ENTER, &found);
			if (!found)
				seen->files = 0;
			if (seen->files >= SEED_FILES)
				break;
			seen->files++;
			e = ratio_entry(relid, kinds[k], &found);
			if (!found)
				e->outbox_bytes = e->file_bytes = 0;
			e->outbox_bytes += (double) raw;
			e->file_bytes += (double) bytes;
		}
	}
	hash_destroy(counts);
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
		e = (RatioEntry *) hash_search(ratios, &key, HASH_FIND, NULL);
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
