/*-------------------------------------------------------------------------
 *
 * options.h
 *		The option catalogue and its checks, for the validator (options.c;
 *		config layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_OPTIONS_H
#define SF_OPTIONS_H

#include "nodes/pg_list.h"

extern void sf_options_validate(List *options, Oid catalog);

#endif							/* SF_OPTIONS_H */
