/*
 * sanitizer-shim.c - preloaded next to the sanitizer runtimes when the
 * stock (uninstrumented) postgres executable runs an sfexport built with
 * "make SANITIZE=asan" or "make SANITIZE=ubsan" (scripts/sanitize-wrap.sh).
 * It fixes two problems of that setup; neither changes what is checked.
 *
 * 1. ASan deadlocks postgres at startup (Debian 12, gcc 12 and clang 14
 *    runtimes).  A preloaded ASan runtime is not initialised first (only an
 *    instrumented executable's .preinit_array can do that): its constructor
 *    runs after those of postgres's libraries, so ASan initialises lazily
 *    on the first malloc(), which is inside libgpg-error's constructor, in
 *    bindtextdomain() while glibc holds _nl_state_lock for writing.  ASan's
 *    initialisation looks up the optional symbol "swift_demangle" with
 *    dlsym() and, when it is missing, clears the error with dlerror(), which
 *    translates the message with gettext and so takes and releases
 *    _nl_state_lock for reading inside the write lock.  That corrupts the
 *    lock's reader count, and the next bindtextdomain() (postgres's
 *    set_pglocale_pgservice()) waits forever.  Defining swift_demangle here
 *    makes that dlsym() succeed, so dlerror() has nothing to translate.
 *    ASan only calls it to demangle names in reports; NULL means "not a
 *    Swift name" and ASan falls back to its C++ demangler.
 *
 * 2. UBSan ignores UBSAN_OPTIONS in backends.  The standalone UBSan runtime
 *    initialises at its first report and reads its options from
 *    /proc/self/environ, the original environment block, which every
 *    backend overwrites with its ps display.  It would then report to
 *    stderr without a stack trace (still aborting the backend, as the build
 *    uses -fno-sanitize-recover).  The runtime asks the weak hook
 *    __ubsan_default_options for defaults first; this one answers from
 *    getenv(), i.e. the copy of the environment that postgres keeps intact,
 *    so the options apply in every process.  (This library must come before
 *    libubsan in LD_PRELOAD to win over libubsan's own weak definition.
 *    ASan needs no such hook: it initialises in the postmaster, before any
 *    ps display.)
 */
#include <stddef.h>
#include <stdlib.h>

char	   *swift_demangle(const char *mangled, size_t len, char *out,
						   size_t *outlen, unsigned flags);
const char *__ubsan_default_options(void);

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

const char *
__ubsan_default_options(void)
{
	const char *o = getenv("UBSAN_OPTIONS");

	return o ? o : "";
}
