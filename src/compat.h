/*-------------------------------------------------------------------------
 *
 * compat.h
 *		PostgreSQL version differences, in one place.
 *
 * sfexport is built and tested against PostgreSQL 15.  Anything that differs
 * between server versions is wrapped here, named after the newer API, so
 * that the rest of the code reads as if written for one version.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SFEXPORT_COMPAT_H
#define SFEXPORT_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "sfexport requires PostgreSQL 15 or later"
#endif

#include "utils/wait_event.h"

/*
 * 17 added custom wait events (WaitEventExtensionNew): a process waiting in
 * sfexport shows its own wait event name in pg_stat_activity.  Before 17
 * every extension wait is PG_WAIT_EXTENSION ("Extension").
 */
#if PG_VERSION_NUM < 170000
#define WaitEventExtensionNew(wait_event_name) ((void) (wait_event_name), PG_WAIT_EXTENSION)
#endif

#endif							/* SFEXPORT_COMPAT_H */
