/*-------------------------------------------------------------------------
 *
 * launcher.h
 *		The launcher, which starts a worker per database (launcher.c;
 *		processes layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_LAUNCHER_H
#define SF_LAUNCHER_H

extern int	sfexport_launcher_naptime_s;	/* sfexport.launcher_naptime */

extern void sf_launcher_define_gucs(void);
extern void sf_launcher_register(void);
extern PGDLLEXPORT void sfexport_launcher_main(Datum arg);

#endif							/* SF_LAUNCHER_H */
