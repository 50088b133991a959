/*-------------------------------------------------------------------------
 *
 * sfexport.h
 *		The version and schema of the extension, and the PostgreSQL version
 *		differences (compat.h), for every source file (base layer in
 *		docs/ARCHITECTURE.md).  What each module offers is in its own
 *		header.
 *
 *-------------------------------------------------------------------------
 */
#ifndef SFEXPORT_H
#define SFEXPORT_H

#include "compat.h"

#define SFEXPORT_VERSION "0.2.0"
#define SFEXPORT_SCHEMA "sfexport"
#define SFEXPORT_USER_AGENT "sfexport/" SFEXPORT_VERSION

#endif							/* SFEXPORT_H */
