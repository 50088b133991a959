/*-------------------------------------------------------------------------
 *
 * load.h
 *		COPY INTO for staged files, per-file results, cleanup (load.c;
 *		pipeline layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_LOAD_H
#define SF_LOAD_H

extern int	sfexport_manifest_retention_s;	/* sfexport.manifest_retention */
extern int	sfexport_snowpipe_report_deadline_s;	/* sfexport.snowpipe_report_deadline */
extern void sf_load_define_gucs(void);
extern int	sf_load_staged(void);
extern int	sf_delete_loaded_files(void);
extern bool sf_pipe_files_pending;	/* files wait for a Snowpipe report */

#endif							/* SF_LOAD_H */
