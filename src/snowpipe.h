/*-------------------------------------------------------------------------
 *
 * snowpipe.h
 *		The Snowpipe REST API client: insertFiles, insertReport,
 *		loadHistoryScan (snowpipe.c; clients layer in
 *		docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_SNOWPIPE_H
#define SF_SNOWPIPE_H

#include "datatype/timestamp.h"
#include "nodes/pg_list.h"

#include "config.h"

typedef struct SfPipeFileReport
{
	char	   *path;			/* relative to the stage location */
	char	   *status;			/* LOADED, LOAD_FAILED, PARTIALLY_LOADED, LOAD_IN_PROGRESS */
	char	   *rows_parsed;
	char	   *rows_inserted;
	char	   *errors_seen;
	char	   *first_error;
	char	   *first_error_line;
	char	   *first_error_column;
} SfPipeFileReport;

extern void sf_snowpipe_insert_files(SfServerConfig *srv, SfUserConfig *usr,
									 const char *pipe, List *paths);
extern List *sf_snowpipe_insert_report(SfServerConfig *srv, SfUserConfig *usr,
									   const char *pipe, char **begin_mark);
extern List *sf_snowpipe_load_history(SfServerConfig *srv, SfUserConfig *usr,
									  const char *pipe, TimestampTz start,
									  TimestampTz end);

#endif							/* SF_SNOWPIPE_H */
