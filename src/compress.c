/*-------------------------------------------------------------------------
 *
 * compress.c
 *		Streaming compression of staged files: gzip (ISA-L's igzip, or zlib
 *		at the higher levels), zstd (libzstd) or none.  Bytes go in with
 *		sf_compress_write(); compressed bytes come out through a sink
 *		callback in chunks of at most SF_COMPRESS_CHUNK, so memory does not
 *		grow with the file.
 *
 * The output is what Snowflake's COMPRESSION = GZIP / ZSTD / NONE read: one
 * gzip member (RFC 1952) or one zstd frame, whichever library wrote it.
 * Snowflake's documentation does not say whether it reads a gzip file of
 * several members, so whole-buffer compressors that can only write one
 * member per buffer (libdeflate) are not used.
 *
 * What is used, from bench/compress (docs/performance.md has the figures:
 * CSV of bench/flush's row shape, per CPU second):
 *
 *	- gzip, compression_level 1-3: ISA-L's isal_deflate at its levels 1-3.
 *	  Level 1 compresses about four times as fast as zlib's level 1 and
 *	  makes slightly smaller files; levels 2 and 3 a little smaller still.
 *	  A helper thread of ours runs isal_deflate on one input block while
 *	  the caller renders and collects the next (IsalHelper below): the
 *	  same calls on the same blocks as without it, so the same bytes.
 *	- gzip, compression_level 4-9: zlib's deflate at that level (ISA-L has
 *	  no higher levels): smaller files, zlib's speed.
 *	- zstd, compression_level 1-19: that zstd level.  At levels 1-12 one
 *	  libzstd worker thread (ZSTD_c_nbWorkers) compresses beside the
 *	  worker, which meanwhile renders the next rows: the worker's own
 *	  thread spends a sixth to an eighth of the time on compression it
 *	  spent before.  A running job cannot be interrupted, and from level 13 on a
 *	  job takes 0.1 s to seconds (larger windows make jobs of 2-8 MB, and
 *	  these levels compress 1-15 MB/s), so there the worker compresses
 *	  itself, 128 KB per call.
 *
 * Records are a few hundred bytes; the libraries are fastest on large
 * pieces (ISA-L at half speed when fed record by record), so input is
 * collected into SF_COMPRESS_INPUT bytes before it goes to the library.
 *
 * libzstd's threads: PostgreSQL's signal handlers must only ever run on the
 * backend's own thread.  A thread inherits the signal mask of the thread
 * that creates it (POSIX pthread_create), and libzstd creates its workers
 * inside ZSTD_compressStream2(), so every call into libzstd with workers is
 * made with all signals blocked and the old mask restored afterwards: the
 * workers start with every signal blocked (SIGQUIT too, which a backend's
 * BlockSig leaves open), and a signal that arrives during the call waits
 * the few milliseconds until it returns.  The threads run libzstd's code
 * only (its own malloc'd memory, no PostgreSQL function); ZSTD_freeCCtx(),
 * from the memory context reset callback, joins them, also on error.
 * PostgreSQL itself runs libzstd with workers in a backend
 * (src/backend/backup/basebackup_zstd.c).
 *
 * The ISA-L helper follows the same rules: created with every signal
 * blocked, it runs isal_deflate only, on buffers the backend allocated
 * before and does not touch while a block is with the helper (the handoff
 * is a mutex and a condition variable); errors come back as return codes
 * that the backend reports.  A block takes well under a millisecond at
 * levels 1-3, so the backend's wait for it needs no interrupt check.  The
 * memory context reset callback stops and joins the thread before the
 * buffers are freed, also on error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>

#include <isa-l/igzip_lib.h>
#include <zlib.h>
/* ZSTD_getFrameProgression(), stable since libzstd 1.3.x */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "sfexport.h"

#include "compress.h"

#define SF_COMPRESS_CHUNK	(256 * 1024)	/* output handed to the sink */
#define SF_COMPRESS_INPUT	(128 * 1024)	/* input collected per library call */

/* gzip levels above this are zlib's */
#define SF_ISAL_MAX_LEVEL	ISAL_DEF_MAX_LEVEL

/*
 * libzstd worker threads per zstd stream, the input each compresses as one
 * job, and the highest level that uses them.  One worker keeps up with the
 * rendering (bench/compress); a second only adds memory.  1 MB jobs take
 * half the memory of libzstd's default at level 1 (4 window sizes) for the
 * same ratio, and at level 12 one takes about 40 ms.
 */
#define SF_ZSTD_WORKERS		1
#define SF_ZSTD_JOB_SIZE	(1024 * 1024)
#define SF_ZSTD_THREADS_MAX_LEVEL 12

/*
 * The ISA-L helper thread: one block of input at a time.  Fields below mu
 * are shared; the backend reads in, in_len and out only while busy is
 * false.
 */
typedef struct IsalHelper
{
	pthread_t	thread;
	bool		started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool		busy;			/* a block is with the helper */
	bool		quit;
	struct isal_zstream *zs;	/* the stream (touched by whoever has the block) */
	char	   *in;				/* the block */
	size_t		in_len;
	char	   *out;			/* its output, out_cap bytes */
	size_t		out_cap;
	size_t		out_len;
	int			rc;				/* isal_deflate's last result */
	bool		more;			/* out filled before the block was consumed */
} IsalHelper;

typedef enum SfCodec
{
	CODEC_NONE,
	CODEC_ISAL,
	CODEC_ZLIB,
	CODEC_ZSTD
} SfCodec;

struct SfCompressor
{
	SfCodec		codec;
	SfCompressSink sink;
	void	   *sink_arg;
	char	   *in;				/* SF_COMPRESS_INPUT bytes collected */
	size_t		in_len;
	char	   *out;			/* SF_COMPRESS_CHUNK bytes */
	int64		in_bytes;		/* written by the caller */
	int64		out_bytes;		/* emitted to the sink */
	/* for sf_compress_out_bytes(): the library's progress */
	int64		lib_in;			/* input handed to the library */
	int64		lib_consumed;	/* of which compressed (zstd's workers lag) */
	int64		lib_produced;	/* compressed bytes made, emitted or not */
	bool		finished;
	struct isal_zstream *isal;
	IsalHelper *helper;			/* NULL: ISA-L runs on the caller's thread */
	z_stream	zs;
	bool		zs_ready;
	ZSTD_CCtx  *zctx;
	bool		zstd_threads;	/* workers enabled: calls block signals */
};

/* Free the library state however we leave (also on error). */
static void
compressor_reset_callback(void *arg)
{
	SfCompressor *c = (SfCompressor *) arg;

	if (c->helper && c->helper->started)
	{
		IsalHelper *h = c->helper;

		pthread_mutex_lock(&h->mu);
		h->quit = true;
		pthread_cond_broadcast(&h->cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->thread, NULL);	/* after the block it may be on */
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		h->started = false;
	}
	if (c->zs_ready)
	{
		deflateEnd(&c->zs);
		c->zs_ready = false;
	}
	if (c->zctx)
	{
		ZSTD_freeCCtx(c->zctx); /* joins its worker threads */
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

static void
isal_begin(SfCompressor *c, int level)
{
	static const uint32 level_buf_size[SF_ISAL_MAX_LEVEL + 1] = {
		ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
		ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT
	};

	c->isal = palloc(sizeof(struct isal_zstream));
	isal_deflate_init(c->isal);
	c->isal->gzip_flag = IGZIP_GZIP;	/* gzip header and trailer */
	c->isal->level = level;
	c->isal->level_buf_size = level_buf_size[level];
	c->isal->level_buf = level_buf_size[level] ? palloc(level_buf_size[level]) : NULL;
}

/*
 * The helper's loop: wait for a block, compress it into out, hand it back.
 * Runs ISA-L only (no PostgreSQL function, no allocation).
 */
static void *
isal_helper_main(void *arg)
{
	IsalHelper *h = (IsalHelper *) arg;

	pthread_mutex_lock(&h->mu);
	for (;;)
	{
		struct isal_zstream *zs;

		while (!h->busy && !h->quit)
			pthread_cond_wait(&h->cv, &h->mu);
		if (h->quit)
			break;
		pthread_mutex_unlock(&h->mu);

		zs = h->zs;
		zs->next_in = (uint8_t *) h->in;
		zs->avail_in = h->in_len;
		zs->end_of_stream = 0;
		h->out_len = 0;
		h->more = false;
		for (;;)
		{
			zs->next_out = (uint8_t *) h->out + h->out_len;
			zs->avail_out = h->out_cap - h->out_len;
			h->rc = isal_deflate(zs);
			h->out_len = h->out_cap - zs->avail_out;
			if (h->rc != COMP_OK || (zs->avail_in == 0 && zs->avail_out > 0))
				break;
			if (zs->avail_out == 0)
			{
				h->more = true; /* the backend goes on from here */
				break;
			}
		}

		pthread_mutex_lock(&h->mu);
		h->busy = false;
		pthread_cond_broadcast(&h->cv);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/*
 * Start the helper, with every signal blocked so that it inherits that
 * mask; without it (no thread could be made) ISA-L runs on our thread.
 */
static void
isal_helper_start(SfCompressor *c)
{
	IsalHelper *h = palloc0(sizeof(IsalHelper));
	sigset_t	all,
				old;
	int			rc;

	h->zs = c->isal;
	h->in = palloc(SF_COMPRESS_INPUT);
	h->out_cap = SF_COMPRESS_CHUNK;
	h->out = palloc(h->out_cap);
	if (pthread_mutex_init(&h->mu, NULL) != 0)
		return;
	if (pthread_cond_init(&h->cv, NULL) != 0)
	{
		pthread_mutex_destroy(&h->mu);
		return;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&h->thread, NULL, isal_helper_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
	{
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		return;
	}
	h->started = true;
	c->helper = h;
}

static void
zlib_begin(SfCompressor *c, int level)
{
	c->zs.zalloc = zlib_alloc;
	c->zs.zfree = zlib_free;
	c->zs.opaque = CurrentMemoryContext;
	/* windowBits 15 + 16: write a gzip header and trailer */
	if (deflateInit2(&c->zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not initialize gzip compression")));
	c->zs_ready = true;
}

static void
zstd_begin(SfCompressor *c, int level)
{
	c->zctx = ZSTD_createCCtx();
	if (c->zctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not initialize zstd compression")));
	ZSTD_CCtx_setParameter(c->zctx, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(c->zctx, ZSTD_c_checksumFlag, 1);
	/* a libzstd built without threads refuses: then it compresses inline */
	if (level <= SF_ZSTD_THREADS_MAX_LEVEL &&
		!ZSTD_isError(ZSTD_CCtx_setParameter(c->zctx, ZSTD_c_nbWorkers, SF_ZSTD_WORKERS)))
	{
		c->zstd_threads = true;
		ZSTD_CCtx_setParameter(c->zctx, ZSTD_c_jobSize, SF_ZSTD_JOB_SIZE);
	}
}

/*
 * Start a compressed stream.  level 0 means the default of the compression
 * (SF_GZIP_DEFAULT_LEVEL, SF_ZSTD_DEFAULT_LEVEL); the option validator
 * keeps it within 1-9 for gzip and 1-19 for zstd.  All state lives in the
 * current memory context; deleting or resetting it releases the library
 * state too.
 */
SfCompressor *
sf_compress_begin(SfCompression kind, int level, SfCompressSink sink, void *sink_arg)
{
	SfCompressor *c = palloc0(sizeof(SfCompressor));
	MemoryContextCallback *cb = palloc0(sizeof(MemoryContextCallback));

	c->sink = sink;
	c->sink_arg = sink_arg;
	cb->func = compressor_reset_callback;
	cb->arg = c;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);

	switch (kind)
	{
		case SF_COMPRESSION_GZIP:
			level = level > 0 ? Min(level, 9) : SF_GZIP_DEFAULT_LEVEL;
			if (level <= SF_ISAL_MAX_LEVEL)
			{
				c->codec = CODEC_ISAL;
				isal_begin(c, level);
				isal_helper_start(c);
			}
			else
			{
				c->codec = CODEC_ZLIB;
				zlib_begin(c, level);
			}
			break;
		case SF_COMPRESSION_ZSTD:
			c->codec = CODEC_ZSTD;
			zstd_begin(c, level > 0 ? Min(level, ZSTD_maxCLevel()) : SF_ZSTD_DEFAULT_LEVEL);
			break;
		case SF_COMPRESSION_NONE:
			c->codec = CODEC_NONE;
			return c;
	}
	c->in = palloc(SF_COMPRESS_INPUT);
	c->out = palloc(SF_COMPRESS_CHUNK);
	return c;
}

static void
isal_report(int rc)
{
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("gzip compression failed"),
			 errdetail_internal("isal_deflate returned %d.", rc)));
}

/* One isal_deflate call into c->out, whose output goes on (emit). */
static void
isal_step(SfCompressor *c, struct isal_zstream *zs)
{
	int			rc;

	zs->next_out = (uint8_t *) c->out;
	zs->avail_out = SF_COMPRESS_CHUNK;
	rc = isal_deflate(zs);
	if (rc != COMP_OK)
		isal_report(rc);
	emit(c, c->out, SF_COMPRESS_CHUNK - zs->avail_out);
}

/*
 * Take back the block the helper has (if any): wait for it, emit its
 * output, and finish the block here if its output did not fit.
 */
static void
isal_helper_collect(SfCompressor *c)
{
	IsalHelper *h = c->helper;
	struct isal_zstream *zs = c->isal;

	pthread_mutex_lock(&h->mu);
	while (h->busy)
		pthread_cond_wait(&h->cv, &h->mu);
	pthread_mutex_unlock(&h->mu);
	if (h->rc != COMP_OK)
		isal_report(h->rc);
	emit(c, h->out, h->out_len);
	h->out_len = 0;
	while (h->more)
	{
		isal_step(c, zs);
		if (zs->avail_in == 0 && zs->avail_out > 0)
			h->more = false;
	}
	c->lib_consumed = c->lib_in;
	c->lib_produced = c->out_bytes;
}

/*
 * Give the helper the block in c->in (it swaps with the helper's buffer),
 * after taking back the one before.  The caller goes on filling c->in.
 */
static void
isal_helper_submit(SfCompressor *c)
{
	IsalHelper *h = c->helper;
	char	   *tmp;

	isal_helper_collect(c);
	tmp = h->in;
	h->in = c->in;
	h->in_len = c->in_len;
	c->in = tmp;
	c->in_len = 0;
	c->lib_in += h->in_len;
	pthread_mutex_lock(&h->mu);
	h->busy = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* ISA-L: compress len bytes; with end, finish the member (the trailer). */
static void
isal_run(SfCompressor *c, const char *data, size_t len, bool end)
{
	struct isal_zstream *zs = c->isal;

	if (c->helper)
		isal_helper_collect(c); /* the stream's blocks stay in order */
	zs->next_in = (uint8_t *) data;
	zs->avail_in = len;
	zs->end_of_stream = end ? 1 : 0;
	for (;;)
	{
		isal_step(c, zs);
		if (end ? zs->internal_state.state == ZSTATE_END
			: zs->avail_in == 0 && zs->avail_out > 0)
			break;
	}
	c->lib_consumed = c->lib_in;
	c->lib_produced = c->out_bytes;
}

/* zlib: compress len bytes; with end, finish the member (Z_FINISH). */
static void
zlib_run(SfCompressor *c, const char *data, size_t len, bool end)
{
	int			flush = end ? Z_FINISH : Z_NO_FLUSH;

	c->zs.next_in = (Bytef *) data;
	c->zs.avail_in = len;
	for (;;)
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
		if (end ? rc == Z_STREAM_END : c->zs.avail_in == 0 && c->zs.avail_out > 0)
			break;
	}
	c->lib_consumed = c->lib_in;
	c->lib_produced = c->out_bytes;
}

/*
 * One ZSTD_compressStream2() call; with worker threads, with all signals
 * blocked, so that the threads libzstd may create in it never run
 * PostgreSQL's signal handlers (see the file header).
 */
static size_t
zstd_call(SfCompressor *c, ZSTD_outBuffer *out, ZSTD_inBuffer *in, ZSTD_EndDirective mode)
{
	sigset_t	all,
				old;
	size_t		rc;

	if (!c->zstd_threads)
		return ZSTD_compressStream2(c->zctx, out, in, mode);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = ZSTD_compressStream2(c->zctx, out, in, mode);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

/* zstd: compress len bytes; with end, finish the frame. */
static void
zstd_run(SfCompressor *c, const char *data, size_t len, bool end)
{
	ZSTD_EndDirective mode = end ? ZSTD_e_end : ZSTD_e_continue;
	ZSTD_inBuffer in = {data, len, 0};
	ZSTD_frameProgression fp;

	for (;;)
	{
		ZSTD_outBuffer out = {c->out, SF_COMPRESS_CHUNK, 0};
		size_t		remaining = zstd_call(c, &out, &in, mode);

		if (ZSTD_isError(remaining))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("zstd compression failed"),
					 errdetail_internal("%s", ZSTD_getErrorName(remaining))));
		emit(c, c->out, out.pos);
		if (end ? remaining == 0 : in.pos == in.size)
			break;
		/* with workers, a call returns once a part of a job is done */
		CHECK_FOR_INTERRUPTS();
	}
	fp = ZSTD_getFrameProgression(c->zctx);
	c->lib_consumed = fp.consumed;
	c->lib_produced = fp.produced;
}

/* Hand len bytes to the library; with end, finish the stream. */
static void
compress_run(SfCompressor *c, const char *data, size_t len, bool end)
{
	c->lib_in += len;
	switch (c->codec)
	{
		case CODEC_ISAL:
			isal_run(c, data, len, end);
			break;
		case CODEC_ZLIB:
			zlib_run(c, data, len, end);
			break;
		case CODEC_ZSTD:
			zstd_run(c, data, len, end);
			break;
		case CODEC_NONE:
			Assert(false);
			break;
	}
}

/* Compress len bytes; compressed output may be emitted now or later. */
void
sf_compress_write(SfCompressor *c, const char *data, size_t len)
{
	Assert(!c->finished);
	c->in_bytes += len;
	if (c->codec == CODEC_NONE)
	{
		emit(c, data, len);
		return;
	}
	if (c->in_len + len <= SF_COMPRESS_INPUT)
	{
		memcpy(c->in + c->in_len, data, len);
		c->in_len += len;
		return;
	}
	if (c->in_len > 0 && c->helper && len < SF_COMPRESS_INPUT)
		isal_helper_submit(c);	/* compressed while the caller goes on */
	else if (c->in_len > 0)
	{
		compress_run(c, c->in, c->in_len, false);
		c->in_len = 0;
	}
	if (len >= SF_COMPRESS_INPUT)
		compress_run(c, data, len, false);
	else
	{
		memcpy(c->in, data, len);
		c->in_len = len;
	}
}

/* End the stream: emits what is buffered and the trailer. */
void
sf_compress_finish(SfCompressor *c)
{
	if (c->finished)
		return;
	if (c->codec != CODEC_NONE)
	{
		compress_run(c, c->in, c->in_len, true);
		c->in_len = 0;
	}
	c->finished = true;
}

int64
sf_compress_in_bytes(SfCompressor *c)
{
	return c->in_bytes;
}

/*
 * The compressed size of everything written so far: exact after
 * sf_compress_finish(); before, what the library made, plus the input it
 * has not compressed yet (ours not yet handed over, zstd's workers' backlog
 * of up to a few MB) at the ratio seen so far.  The caller ends a file when
 * this reaches max_file_size (at least 1 MB), so a file overshoots it by
 * little.  Before anything has been compressed the ratio is unknown: a zstd
 * worker starts on a job only once SF_ZSTD_JOB_SIZE bytes are there, so
 * that much input counts as nothing yet and the rest as uncompressed.
 */
int64
sf_compress_out_bytes(SfCompressor *c)
{
	int64		pending;

	if (c->finished || c->codec == CODEC_NONE)
		return c->out_bytes;
	pending = c->in_bytes - c->lib_consumed;
	if (c->lib_consumed == 0)
		return c->lib_produced + Max(pending - SF_ZSTD_JOB_SIZE, 0);
	return c->lib_produced + (int64) ((double) pending * c->lib_produced / c->lib_consumed);
}
