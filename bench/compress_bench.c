/*
 * bench/compress_bench.c: per-core speed and ratio of the compressors a
 * staged file could use, on CSV text of bench/flush's row shape (the input
 * file, made by bench/rows.py).  Built and run by bench/compress; see there.
 *
 *   compress_bench FILE REPEAT METHOD...
 *
 * METHOD is one of
 *   zlib:L[:rec]            zlib deflate, gzip wrapper, level L
 *   isal:L[:rec]            ISA-L isal_deflate, gzip wrapper, level L (0-3)
 *   libdeflate:L:BLOCK      libdeflate, one gzip member per BLOCK KB of input
 *   zstd:L:W:JOB[:rec]      zstd level L, ZSTD_c_nbWorkers W, ZSTD_c_jobSize
 *                           JOB KB (0: libzstd's default)
 * ":rec" feeds one call per record and one for its newline, as flush.c
 * feeds the compressor; otherwise the input goes in 128 KB pieces.
 *
 * For each method: the best of REPEAT runs of process CPU time (all
 * threads) and of wall time, the compressed size, and a check that the
 * output decompresses (zlib inflate, member after member; ZSTD_decompress)
 * to the input.  Prints one tab-separated line per method:
 *   method  cpu_s  caller_cpu_s  wall_s  in_MB  out_MB  ratio  MB/s-per-CPU-s
 *   MB/s-wall  state_KB
 * cpu_s counts every thread; caller_cpu_s only the thread that feeds the
 * compressor (with zstd worker threads, compression runs beside it: in the
 * worker, beside rendering rows).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <isa-l/igzip_lib.h>
#include <libdeflate.h>

#define OUT_CHUNK	(256 * 1024)
#define IN_PIECE	(128 * 1024)

static char *input;
static size_t input_len;
static char *output;			/* everything compressed, for the check */
static size_t output_len, output_cap;
static size_t state_bytes;		/* library state of the last run */

static void
die(const char *what)
{
	fprintf(stderr, "compress_bench: %s\n", what);
	exit(1);
}

static void
sink(const void *data, size_t len)
{
	if (output_len + len > output_cap)
	{
		output_cap = (output_len + len) * 2;
		output = realloc(output, output_cap);
		if (!output)
			die("out of memory");
	}
	memcpy(output + output_len, data, len);
	output_len += len;
}

static double
now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Call fn(piece, len) over the input: per record (and newline) or in pieces. */
typedef void (*feed_fn) (void *st, const char *p, size_t len);

static void
feed(void *st, feed_fn fn, int per_record)
{
	size_t		pos = 0;

	while (pos < input_len)
	{
		size_t		len;

		if (per_record)
		{
			const char *nl = memchr(input + pos, '\n', input_len - pos);

			len = nl ? (size_t) (nl - (input + pos)) : input_len - pos;
			fn(st, input + pos, len);
			if (nl)
				fn(st, "\n", 1);
			pos += len + (nl ? 1 : 0);
		}
		else
		{
			len = input_len - pos < IN_PIECE ? input_len - pos : IN_PIECE;
			fn(st, input + pos, len);
			pos += len;
		}
	}
}

/* ---- zlib ---- */
static char outbuf[OUT_CHUNK];

static void
zlib_run(z_stream *zs, const char *p, size_t len, int flush)
{
	zs->next_in = (Bytef *) p;
	zs->avail_in = len;
	do
	{
		zs->next_out = (Bytef *) outbuf;
		zs->avail_out = OUT_CHUNK;
		if (deflate(zs, flush) == Z_STREAM_ERROR)
			die("deflate");
		sink(outbuf, OUT_CHUNK - zs->avail_out);
	} while (zs->avail_out == 0);
}

static void
zlib_feed(void *st, const char *p, size_t len)
{
	zlib_run(st, p, len, Z_NO_FLUSH);
}

static void
run_zlib(int level, int rec)
{
	z_stream	zs = {0};

	if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		die("deflateInit2");
	feed(&zs, zlib_feed, rec);
	zlib_run(&zs, NULL, 0, Z_FINISH);
	state_bytes = 0;			/* zlib at windowBits 15, memLevel 8: about 268 KB */
	deflateEnd(&zs);
}

/* ---- ISA-L ---- */
static void
isal_run(struct isal_zstream *zs, const char *p, size_t len, int end)
{
	zs->next_in = (uint8_t *) p;
	zs->avail_in = len;
	zs->end_of_stream = end;
	do
	{
		zs->next_out = (uint8_t *) outbuf;
		zs->avail_out = OUT_CHUNK;
		if (isal_deflate(zs) != COMP_OK)
			die("isal_deflate");
		sink(outbuf, OUT_CHUNK - zs->avail_out);
	} while (zs->avail_in > 0 || zs->avail_out == 0 ||
			 (end && zs->internal_state.state != ZSTATE_END));
}

static void
isal_feed(void *st, const char *p, size_t len)
{
	isal_run(st, p, len, 0);
}

static void
run_isal(int level, int rec)
{
	static const uint32_t bufsize[] = {ISAL_DEF_LVL0_DEFAULT, ISAL_DEF_LVL1_DEFAULT,
	ISAL_DEF_LVL2_DEFAULT, ISAL_DEF_LVL3_DEFAULT};
	struct isal_zstream zs;
	uint8_t    *lvlbuf = malloc(bufsize[level] + 1);

	isal_deflate_init(&zs);
	zs.gzip_flag = IGZIP_GZIP;
	zs.level = level;
	zs.level_buf = lvlbuf;
	zs.level_buf_size = bufsize[level];
	feed(&zs, isal_feed, rec);
	isal_run(&zs, NULL, 0, 1);
	state_bytes = sizeof(zs) + bufsize[level];
	free(lvlbuf);
}

/* ---- libdeflate: whole-buffer members ---- */
typedef struct
{
	struct libdeflate_compressor *c;
	char	   *block;
	size_t		used, size;
	char	   *out;
	size_t		outsize;
} LdState;

static void
ld_emit(LdState *s)
{
	size_t		n;

	if (s->used == 0)
		return;
	n = libdeflate_gzip_compress(s->c, s->block, s->used, s->out, s->outsize);
	if (n == 0)
		die("libdeflate_gzip_compress");
	sink(s->out, n);
	s->used = 0;
}

static void
ld_feed(void *st, const char *p, size_t len)
{
	LdState    *s = st;

	while (len > 0)
	{
		size_t		n = s->size - s->used < len ? s->size - s->used : len;

		memcpy(s->block + s->used, p, n);
		s->used += n;
		p += n;
		len -= n;
		if (s->used == s->size)
			ld_emit(s);
	}
}

static void
run_libdeflate(int level, size_t block)
{
	LdState		s = {0};

	s.c = libdeflate_alloc_compressor(level);
	if (!s.c)
		die("libdeflate_alloc_compressor");
	s.size = block;
	s.block = malloc(block);
	s.outsize = libdeflate_gzip_compress_bound(s.c, block);
	s.out = malloc(s.outsize);
	feed(&s, ld_feed, 0);
	ld_emit(&s);
	state_bytes = block + s.outsize;	/* plus the compressor, not exposed */
	libdeflate_free_compressor(s.c);
	free(s.block);
	free(s.out);
}

/* ---- zstd ---- */
static void
zstd_run(ZSTD_CCtx *c, const char *p, size_t len, ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = {p, len, 0};

	for (;;)
	{
		ZSTD_outBuffer out = {outbuf, OUT_CHUNK, 0};
		size_t		rem = ZSTD_compressStream2(c, &out, &in, mode);

		if (ZSTD_isError(rem))
			die(ZSTD_getErrorName(rem));
		sink(outbuf, out.pos);
		if (mode == ZSTD_e_end ? rem == 0 : in.pos == in.size)
			break;
	}
}

static void
zstd_feed(void *st, const char *p, size_t len)
{
	zstd_run(st, p, len, ZSTD_e_continue);
}

static void
run_zstd(int level, int workers, int job_kb, int rec)
{
	ZSTD_CCtx  *c = ZSTD_createCCtx();
	size_t		r;

	ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
	r = ZSTD_CCtx_setParameter(c, ZSTD_c_nbWorkers, workers);
	if (ZSTD_isError(r))
		die("this libzstd has no worker threads");
	if (job_kb)
		ZSTD_CCtx_setParameter(c, ZSTD_c_jobSize, job_kb * 1024);
	feed(c, zstd_feed, rec);
	zstd_run(c, NULL, 0, ZSTD_e_end);
	state_bytes = ZSTD_sizeof_CCtx(c);
	ZSTD_freeCCtx(c);
}

/* ---- check ---- */
static void
check(int is_zstd)
{
	char	   *back = malloc(input_len + 1);
	size_t		got = 0;

	if (is_zstd)
	{
		got = ZSTD_decompress(back, input_len + 1, output, output_len);
		if (ZSTD_isError(got))
			die(ZSTD_getErrorName(got));
	}
	else
	{
		z_stream	zs = {0};
		int			rc;

		inflateInit2(&zs, 15 + 16);
		zs.next_in = (Bytef *) output;
		zs.avail_in = output_len;
		for (;;)
		{
			zs.next_out = (Bytef *) back + got;
			zs.avail_out = input_len + 1 - got;
			rc = inflate(&zs, Z_NO_FLUSH);
			got = (char *) zs.next_out - back;
			if (rc == Z_STREAM_END && zs.avail_in > 0)
				inflateReset(&zs);	/* next member */
			else if (rc == Z_STREAM_END)
				break;
			else if (rc != Z_OK)
				die("output does not inflate");
		}
		inflateEnd(&zs);
	}
	if (got != input_len || memcmp(back, input, input_len) != 0)
		die("output does not decompress to the input");
	free(back);
}

int
main(int argc, char **argv)
{
	FILE	   *f;
	int			repeat;

	if (argc < 4)
		die("usage: compress_bench FILE REPEAT METHOD...");
	f = fopen(argv[1], "rb");
	if (!f)
		die("cannot open input");
	fseek(f, 0, SEEK_END);
	input_len = ftell(f);
	fseek(f, 0, SEEK_SET);
	input = malloc(input_len);
	if (fread(input, 1, input_len, f) != input_len)
		die("short read");
	fclose(f);
	repeat = atoi(argv[2]);

	for (int i = 3; i < argc; i++)
	{
		char		name[64];
		int			a = 0, b = 0, c = 0;
		double		best_cpu = 1e30, best_wall = 1e30, best_caller = 1e30;
		int			rec = strstr(argv[i], ":rec") != NULL;
		int			is_zstd = strncmp(argv[i], "zstd:", 5) == 0;

		snprintf(name, sizeof(name), "%s", argv[i]);
		for (int r = 0; r < repeat; r++)
		{
			double		c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
			double		t0 = now(CLOCK_THREAD_CPUTIME_ID);

			output_len = 0;
			if (sscanf(argv[i], "zlib:%d", &a) == 1)
				run_zlib(a, rec);
			else if (sscanf(argv[i], "isal:%d", &a) == 1)
				run_isal(a, rec);
			else if (sscanf(argv[i], "libdeflate:%d:%d", &a, &b) == 2)
				run_libdeflate(a, (size_t) b * 1024);
			else if (sscanf(argv[i], "zstd:%d:%d:%d", &a, &b, &c) == 3)
				run_zstd(a, b, c, rec);
			else
				die("unknown method");
			if (now(CLOCK_PROCESS_CPUTIME_ID) - c0 < best_cpu)
				best_cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
			if (now(CLOCK_THREAD_CPUTIME_ID) - t0 < best_caller)
				best_caller = now(CLOCK_THREAD_CPUTIME_ID) - t0;
			if (now(CLOCK_MONOTONIC) - w0 < best_wall)
				best_wall = now(CLOCK_MONOTONIC) - w0;
		}
		check(is_zstd);
		printf("%s\t%.3f\t%.3f\t%.3f\t%.1f\t%.1f\t%.3f\t%.0f\t%.0f\t%zu\n", name, best_cpu, best_caller, best_wall,
			   input_len / 1048576.0, output_len / 1048576.0, (double) output_len / input_len,
			   input_len / 1048576.0 / best_cpu, input_len / 1048576.0 / best_wall,
			   state_bytes / 1024);
		fflush(stdout);
	}
	return 0;
}
