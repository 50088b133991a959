/*-------------------------------------------------------------------------
 *
 * merge_apply.h
 *		The worker's apply of tracked tables' changes in Snowflake
 *		(merge_apply.c; pipeline layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_MERGE_APPLY_H
#define SF_MERGE_APPLY_H

extern int	sf_merge_apply(void);

#endif							/* SF_MERGE_APPLY_H */
