/*
 * sanitizer-canary.c - two deliberate bugs, to show that a sanitizer run
 * catches what it should: "scripts/sanitize-tests.sh asan|ubsan selftest"
 * compiles this file into its private copy of sfexport.so (never into a
 * normal build) and expects the run to fail with the matching report.
 *
 * The bug fires when the library is loaded into a process that has
 * SFEXPORT_SANITIZER_CANARY set: "asan" writes one byte past a malloc'd
 * block, "ubsan" shifts an int by 40, "leak" loses a malloc'd block (for
 * SFEXPORT_LEAKS=1).
 */
#include <stdlib.h>
#include <string.h>

static void sfexport_sanitizer_canary(void) __attribute__((constructor));
static void *volatile canary_block;

static void
sfexport_sanitizer_canary(void)
{
	const char *what = getenv("SFEXPORT_SANITIZER_CANARY");

	if (what == NULL)
		return;
	if (strcmp(what, "asan") == 0)
	{
		/* called through a volatile pointer: not folded away as dead */
		void	   *(*volatile set) (void *, int, size_t) = memset;
		char	   *p = malloc(8);

		set(p, 1, 9);
		free(p);
	}
	else if (strcmp(what, "ubsan") == 0)
	{
		volatile int one = 1;
		volatile int shift = 40;
		volatile int r;

		r = one << shift;
		(void) r;
	}
	else if (strcmp(what, "leak") == 0)
	{
		canary_block = malloc(64);
		canary_block = NULL;
	}
}
