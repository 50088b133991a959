/*-------------------------------------------------------------------------
 *
 * compress.h
 *		Streaming gzip / zstd / none for staged files (compress.c;
 *		protocols layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_COMPRESS_H
#define SF_COMPRESS_H

typedef enum SfCompression
{
	SF_COMPRESSION_GZIP,
	SF_COMPRESSION_ZSTD,
	SF_COMPRESSION_NONE
} SfCompression;

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

#endif							/* SF_COMPRESS_H */
