/*-------------------------------------------------------------------------
 *
 * glue_periodic.h
 *		The worker's periodic Glue sync (glue_periodic.c; pipeline layer
 *		in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_GLUE_PERIODIC_H
#define SF_GLUE_PERIODIC_H

extern void sf_glue_periodic(void);	/* worker housekeeping, outside a transaction */

#endif							/* SF_GLUE_PERIODIC_H */
