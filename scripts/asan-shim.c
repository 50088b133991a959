/*
 * asan-shim.c - preloaded next to the AddressSanitizer runtime when the
 * stock (uninstrumented) postgres executable runs an sfexport built with
 * "make SANITIZE=1" (scripts/sanitize-wrap.sh).
 *
 * Why: a preloaded ASan runtime is not initialised first (only an
 * instrumented executable's .preinit_array can do that).  Its own
 * constructor runs after those of postgres's libraries, so ASan initialises
 * lazily on the first malloc(): on Debian 12 that is inside
 * libgpg-error's constructor, in bindtextdomain() while glibc holds
 * _nl_state_lock for writing.  ASan's initialisation looks up the optional
 * symbol "swift_demangle" with dlsym() and, when it is missing, clears the
 * error with dlerror(), which translates the message with gettext and so
 * takes and releases _nl_state_lock for reading inside the write lock.  That
 * corrupts the lock's reader count, and the next bindtextdomain()
 * (postgres's set_pglocale_pgservice()) waits forever.
 *
 * Defining swift_demangle makes that dlsym() succeed, so dlerror() has no
 * message to translate.  ASan only calls it to demangle names in reports;
 * returning NULL means "not a Swift name" and ASan falls back to its C++
 * demangler.
 */
#include <stddef.h>

char	   *swift_demangle(const char *mangled, size_t len, char *out,
						   size_t *outlen, unsigned flags);

char *
swift_demangle(const char *mangled, size_t len, char *out, size_t *outlen,
			   unsigned flags)
{
	(void) mangled;
	(void) len;
	(void) out;
	(void) outlen;
	(void) flags;
	return NULL;
}
