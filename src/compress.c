/*-------------------------------------------------------------------------
 *
 * compress.c
 *		Streaming compression of staged files: gzip (zlib), zstd (libzstd)
 *		or none.  Bytes go in with sf_compress_write(); compressed bytes come
 *		out through a sink callback in chunks of at most SF_COMPRESS_CHUNK, so
 *		memory does not grow with the file.
 *
 * The output is what Snowflake's COMPRESSION = GZIP / ZSTD / NONE read: a
 * gzip member (RFC 1952, zlib's deflateInit2 with windowBits 15 + 16) or a
 * zstd frame.
 *
 * Levels: the server option compression_level (1-9 for gzip, 1-19 for
 * zstd), by default 1 for both.  Staging has to keep up with a PostgreSQL
 * that writes rows as fast as it can (bench/flush compares it with `COPY ...
 * | gzip -1`); level 1 costs about 15-25% larger files than zlib's default
 * level 6 and is three to four times faster, and Snowflake reads either.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <zlib.h>
#include <zstd.h>

#include "utils/memutils.h"

#include "sfexport.h"

#include "compress.h"

#define SF_COMPRESS_CHUNK	(256 * 1024)

struct SfCompressor
{
	SfCompression kind;
	SfCompressSink sink;
	void	   *sink_arg;
	char	   *out;			/* SF_COMPRESS_CHUNK bytes */
	int64		in_bytes;
	int64		out_bytes;
	bool		finished;
	z_stream	zs;
	ZSTD_CCtx  *zctx;
};

/* Free the library state however we leave (also on error). */
static void
compressor_reset_callback(void *arg)
{
	SfCompressor *c = (SfCompressor *) arg;

	if (c->kind == SF_COMPRESSION_GZIP)
		deflateEnd(&c->zs);
	else if (c->kind == SF_COMPRESSION_ZSTD && c->zctx)
	{
		ZSTD_freeCCtx(c->zctx);
		c->zctx = NULL;
	}
}

static void *
zlib_alloc(void *opaque, unsigned int items, unsigned int size)
{
	return MemoryContextAllocExtended((MemoryContext) opaque, (Size) items * size,
									  MCXT_ALLOC_NO_OOM);
}

static void
zlib_free(void *opaque, void *ptr)
{
	if (ptr)
		pfree(ptr);
}

static void
emit(SfCompressor *c, const char *data, size_t len)
{
	if (len == 0)
		return;
	c->out_bytes += len;
	c->sink(data, len, c->sink_arg);
}

/*
 * Start a compressed stream.  All state lives in the current memory context;
 * deleting or resetting it releases the library state too.
 */
SfCompressor *
sf_compress_begin(SfCompression kind, int level, SfCompressSink sink, void *sink_arg)
{
	SfCompressor *c = palloc0(sizeof(SfCompressor));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));

	c->kind = kind;
	c->sink = sink;
	c->sink_arg = sink_arg;
	c->out = palloc(SF_COMPRESS_CHUNK);

	if (kind == SF_COMPRESSION_GZIP)
	{
		c->zs.zalloc = zlib_alloc;
		c->zs.zfree = zlib_free;
		c->zs.opaque = CurrentMemoryContext;
		/* windowBits 15 + 16: write a gzip header and trailer */
		if (deflateInit2(&c->zs, level > 0 ? level : SF_GZIP_DEFAULT_LEVEL, Z_DEFLATED, 15 + 16, 8,
						 Z_DEFAULT_STRATEGY) != Z_OK)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not initialize gzip compression")));
	}
	else if (kind == SF_COMPRESSION_ZSTD)
	{
		c->zctx = ZSTD_createCCtx();
		if (c->zctx == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OUT_OF_MEMORY),
					 errmsg("could not initialize zstd compression")));
		ZSTD_CCtx_setParameter(c->zctx, ZSTD_c_compressionLevel,
							   level > 0 ? level : SF_ZSTD_DEFAULT_LEVEL);
		ZSTD_CCtx_setParameter(c->zctx, ZSTD_c_checksumFlag, 1);
	}

	cb->func = compressor_reset_callback;
	cb->arg = c;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return c;
}

static void
gzip_run(SfCompressor *c, const char *data, size_t len, int flush)
{
	c->zs.next_in = (Bytef *) data;
	c->zs.avail_in = len;
	do
	{
		int			rc;

		c->zs.next_out = (Bytef *) c->out;
		c->zs.avail_out = SF_COMPRESS_CHUNK;
		rc = deflate(&c->zs, flush);
		if (rc == Z_STREAM_ERROR)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("gzip compression failed")));
		emit(c, c->out, SF_COMPRESS_CHUNK - c->zs.avail_out);
	} while (c->zs.avail_out == 0 || (flush == Z_FINISH && c->zs.avail_in > 0));
}

static void
zstd_run(SfCompressor *c, const char *data, size_t len, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = {data, len, 0};

	for (;;)
	{
		ZSTD_outBuffer out = {c->out, SF_COMPRESS_CHUNK, 0};
		size_t		remaining = ZSTD_compressStream2(c->zctx, &out, &in, mode);

		if (ZSTD_isError(remaining))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("zstd compression failed: %s", ZSTD_getErrorName(remaining))));
		emit(c, c->out, out.pos);
		if (mode == ZSTD_e_end ? remaining == 0 : in.pos == in.size)
			break;
	}
}

/* Compress len bytes; compressed output may be emitted now or later. */
void
sf_compress_write(SfCompressor *c, const char *data, size_t len)
{
	Assert(!c->finished);
	c->in_bytes += len;
	switch (c->kind)
	{
		case SF_COMPRESSION_GZIP:
			gzip_run(c, data, len, Z_NO_FLUSH);
			break;
		case SF_COMPRESSION_ZSTD:
			zstd_run(c, data, len, ZSTD_e_continue);
			break;
		case SF_COMPRESSION_NONE:
			emit(c, data, len);
			break;
	}
}

/* End the stream: emits what is buffered and the trailer. */
void
sf_compress_finish(SfCompressor *c)
{
	if (c->finished)
		return;
	if (c->kind == SF_COMPRESSION_GZIP)
		gzip_run(c, NULL, 0, Z_FINISH);
	else if (c->kind == SF_COMPRESSION_ZSTD)
		zstd_run(c, NULL, 0, ZSTD_e_end);
	c->finished = true;
}

int64
sf_compress_in_bytes(SfCompressor *c)
{
	return c->in_bytes;
}

int64
sf_compress_out_bytes(SfCompressor *c)
{
	return c->out_bytes;
}
