/*-------------------------------------------------------------------------
 *
 * sf_jansson.c
 *		Small helpers around jansson for the clients that speak JSON: a
 *		value tied to a memory context, a string member, compact text.
 *
 * jansson allocates with malloc: a json_t that an error could leave behind
 * is tied to the current memory context (sf_json_tracked), so that the
 * context's reset or deletion frees it, on the error path too.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "sf_jansson.h"

#include "utils/memutils.h"

static void
json_release(void *arg)
{
	json_decref((json_t *) arg);
}

/*
 * Tie a jansson value to the current memory context (freed on reset,
 * deletion or error); returns it.  NULL is returned as is.
 */
json_t *
sf_json_tracked(json_t *j)
{
	MemoryContextCallback *cb;

	if (j == NULL)
		return NULL;
	cb = palloc(sizeof(MemoryContextCallback));
	cb->func = json_release;
	cb->arg = j;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return j;
}

/* A string member, copied; NULL when absent or not a string. */
char *
sf_json_string(json_t *obj, const char *key)
{
	json_t	   *v = obj ? json_object_get(obj, key) : NULL;

	return (v && json_is_string(v)) ? pstrdup(json_string_value(v)) : NULL;
}

/*
 * The compact JSON text of a value, palloc'd.  A NULL value (a json_pack
 * that could not allocate) and a failed json_dumps are out of memory.
 */
char *
sf_json_dumps(json_t *j)
{
	char	   *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	char	   *p;

	if (s == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	p = pstrdup(s);
	free(s);
	return p;
}
