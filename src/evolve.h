/*-------------------------------------------------------------------------
 *
 * evolve.h
 *		The columns a Snowflake target gains before a load (evolve.c;
 *		pipeline layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_EVOLVE_H
#define SF_EVOLVE_H

#include "nodes/pg_list.h"
#include "utils/array.h"

#include "config.h"
#include "snowflake.h"
#include "statements.h"

extern SfSnowflakeResult *sf_run_setup_statement(SfServerConfig *srv, SfUserConfig *usr,
												 const char *sql);
extern List *sf_evolve_statements(SfServerConfig *srv, SfUserConfig *usr,
								  const char *target, int ncols, SfColumnDef *cols);
extern void sf_evolve_target(SfServerConfig *srv, SfUserConfig *usr,
							 const char *target, ArrayType *columns,
							 ArrayType *types);
extern void sf_evolve_forget(void);

#endif							/* SF_EVOLVE_H */
