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

#endif							/* SFEXPORT_COMPAT_H */
