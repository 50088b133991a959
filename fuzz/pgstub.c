/*-------------------------------------------------------------------------
 *
 * pgstub.c
 *		A stand-in for the parts of the PostgreSQL server runtime that the
 *		fuzzed parsers use, so that they run in a plain libFuzzer binary.
 *
 *	- Memory contexts: every palloc'd chunk is a malloc'd block linked into
 *	  its context; reset and delete free them (and run reset callbacks), so
 *	  AddressSanitizer sees use-after-reset and LeakSanitizer sees leaks of
 *	  anything NOT allocated with palloc (jansson objects, OpenSSL objects).
 *	  The context pointer sits right before each chunk, as PostgreSQL 15's
 *	  inline GetMemoryChunkContext() expects (from 16 on it is a server
 *	  function, which nothing here calls).
 *	- ereport: errstart/errfinish collect the error; ERROR longjmps to the
 *	  innermost PG_TRY (PG_exception_stack) exactly as the server does, so a
 *	  thrown error is a handled outcome of a fuzz iteration.  An ERROR
 *	  whose SQLSTATE is XX000 (no errcode, or elog) is treated as a bug and
 *	  aborts; FATAL and PANIC abort too.
 *	- Lists (pg_list.h), latches, the clock, interrupts: minimal versions.
 *
 * StringInfo, psprintf and snprintf come from libpgcommon/libpgport.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pgstub.h"
#include "sfexport.h"

/* ---------------------------------------------------------------------
 * Globals the server would define
 * ---------------------------------------------------------------------
 */
MemoryContext CurrentMemoryContext = NULL;
MemoryContext TopMemoryContext = NULL;
MemoryContext ErrorContext = NULL;
MemoryContext CacheMemoryContext = NULL;
MemoryContext TopTransactionContext = NULL;
MemoryContext CurTransactionContext = NULL;
sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;
volatile sig_atomic_t InterruptPending = false;
volatile sig_atomic_t QueryCancelPending = false;
volatile sig_atomic_t ProcDiePending = false;
volatile uint32 InterruptHoldoffCount = 0;
volatile uint32 QueryCancelHoldoffCount = 0;
volatile uint32 CritSectionCount = 0;
struct Latch *MyLatch = NULL;
int			MyProcPid = 1;
Oid			MyDatabaseId = InvalidOid;
int			work_mem = 4096;
int			maintenance_work_mem = 65536;
int64_t		fuzz_clock_us = 0;

void
fuzz_fail(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "\n==== fuzz invariant broken: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	abort();
}

/* ---------------------------------------------------------------------
 * Memory contexts
 * ---------------------------------------------------------------------
 */
typedef struct FuzzChunk
{
	struct FuzzChunk *prev;
	struct FuzzChunk *next;
	Size		size;
	MemoryContext cxt;			/* must be last: GetMemoryChunkContext */
} FuzzChunk;

typedef struct FuzzContext
{
	MemoryContextData hdr;
	FuzzChunk	chunks;			/* list head */
} FuzzContext;

#define CHUNK_OF(p) ((FuzzChunk *) ((char *) (p) - sizeof(FuzzChunk)))

static void
ensure_top(void)
{
	if (TopMemoryContext == NULL)
	{
		TopMemoryContext = AllocSetContextCreateInternal(NULL, "TopMemoryContext", 0, 0, 0);
		ErrorContext = AllocSetContextCreateInternal(TopMemoryContext, "ErrorContext", 0, 0, 0);
		CacheMemoryContext = AllocSetContextCreateInternal(TopMemoryContext, "CacheMemoryContext", 0, 0, 0);
		TopTransactionContext = AllocSetContextCreateInternal(TopMemoryContext, "TopTransactionContext", 0, 0, 0);
		CurTransactionContext = TopTransactionContext;
		CurrentMemoryContext = TopMemoryContext;
	}
}

MemoryContext
AllocSetContextCreateInternal(MemoryContext parent, const char *name,
							  Size minContextSize, Size initBlockSize,
							  Size maxBlockSize)
{
	FuzzContext *c = calloc(1, sizeof(FuzzContext));

	if (c == NULL)
		fuzz_fail("out of memory");
	c->hdr.type = T_AllocSetContext;
	c->hdr.isReset = true;
	c->hdr.name = name;
	c->hdr.parent = parent;
	c->chunks.next = c->chunks.prev = &c->chunks;
	if (parent)
	{
		c->hdr.nextchild = parent->firstchild;
		if (parent->firstchild)
			parent->firstchild->prevchild = &c->hdr;
		parent->firstchild = &c->hdr;
	}
	return &c->hdr;
}

MemoryContext
GenerationContextCreate(MemoryContext parent, const char *name,
						Size minContextSize, Size initBlockSize,
						Size maxBlockSize)
{
	return AllocSetContextCreateInternal(parent, name, 0, 0, 0);
}

static void
run_callbacks(MemoryContext context)
{
	MemoryContextCallback *cb;

	while ((cb = context->reset_cbs) != NULL)
	{
		context->reset_cbs = cb->next;
		cb->func(cb->arg);
	}
}

static void
free_chunks(MemoryContext context)
{
	FuzzContext *c = (FuzzContext *) context;
	FuzzChunk  *ch = c->chunks.next;

	while (ch != &c->chunks)
	{
		FuzzChunk  *next = ch->next;

		free(ch);
		ch = next;
	}
	c->chunks.next = c->chunks.prev = &c->chunks;
	context->isReset = true;
	context->mem_allocated = 0;
}

void
MemoryContextDeleteChildren(MemoryContext context)
{
	while (context->firstchild)
		MemoryContextDelete(context->firstchild);
}

void
MemoryContextReset(MemoryContext context)
{
	MemoryContextDeleteChildren(context);
	run_callbacks(context);
	free_chunks(context);
}

void
MemoryContextResetOnly(MemoryContext context)
{
	run_callbacks(context);
	free_chunks(context);
}

void
MemoryContextDelete(MemoryContext context)
{
	MemoryContextDeleteChildren(context);
	run_callbacks(context);
	free_chunks(context);
	if (context->parent)
	{
		if (context->prevchild)
			context->prevchild->nextchild = context->nextchild;
		else
			context->parent->firstchild = context->nextchild;
		if (context->nextchild)
			context->nextchild->prevchild = context->prevchild;
	}
	if (CurrentMemoryContext == context)
		CurrentMemoryContext = context->parent;
	free(context);
}

void
MemoryContextSetParent(MemoryContext context, MemoryContext new_parent)
{
	if (context->parent)
	{
		if (context->prevchild)
			context->prevchild->nextchild = context->nextchild;
		else
			context->parent->firstchild = context->nextchild;
		if (context->nextchild)
			context->nextchild->prevchild = context->prevchild;
	}
	context->parent = new_parent;
	context->prevchild = NULL;
	context->nextchild = NULL;
	if (new_parent)
	{
		context->nextchild = new_parent->firstchild;
		if (new_parent->firstchild)
			new_parent->firstchild->prevchild = context;
		new_parent->firstchild = context;
	}
}

void
MemoryContextSetIdentifier(MemoryContext context, const char *id)
{
	context->ident = id;
}

void
MemoryContextRegisterResetCallback(MemoryContext context,
								   MemoryContextCallback *cb)
{
	cb->next = context->reset_cbs;
	context->reset_cbs = cb;
}

static void *
chunk_alloc(MemoryContext context, Size size, int flags)
{
	FuzzContext *c = (FuzzContext *) context;
	FuzzChunk  *ch;

	if (context == NULL)
		fuzz_fail("palloc with no current memory context");
	if (!(flags & MCXT_ALLOC_HUGE) && !AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	if (!AllocHugeSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	ch = malloc(sizeof(FuzzChunk) + size + 1);
	if (ch == NULL)
	{
		if (flags & MCXT_ALLOC_NO_OOM)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	ch->size = size;
	ch->cxt = context;
	ch->next = c->chunks.next;
	ch->prev = &c->chunks;
	c->chunks.next->prev = ch;
	c->chunks.next = ch;
	context->isReset = false;
	if (flags & MCXT_ALLOC_ZERO)
		memset(ch + 1, 0, size);
	return ch + 1;
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, 0);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocZeroAligned(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocExtended(MemoryContext context, Size size, int flags)
{
	return chunk_alloc(context, size, flags);
}

void *
MemoryContextAllocHuge(MemoryContext context, Size size)
{
	return chunk_alloc(context, size, MCXT_ALLOC_HUGE);
}

void *
palloc(Size size)
{
	return chunk_alloc(CurrentMemoryContext, size, 0);
}

void *
palloc0(Size size)
{
	return chunk_alloc(CurrentMemoryContext, size, MCXT_ALLOC_ZERO);
}

void *
palloc_extended(Size size, int flags)
{
	return chunk_alloc(CurrentMemoryContext, size, flags);
}

void
pfree(void *pointer)
{
	FuzzChunk  *ch = CHUNK_OF(pointer);

	ch->prev->next = ch->next;
	ch->next->prev = ch->prev;
	free(ch);
}

static void *
chunk_realloc(void *pointer, Size size, int flags)
{
	FuzzChunk  *old = CHUNK_OF(pointer);
	void	   *p = chunk_alloc(old->cxt, size, flags);

	memcpy(p, pointer, Min(size, old->size));
	pfree(pointer);
	return p;
}

void *
repalloc(void *pointer, Size size)
{
	return chunk_realloc(pointer, size, 0);
}

void *
repalloc_huge(void *pointer, Size size)
{
	return chunk_realloc(pointer, size, MCXT_ALLOC_HUGE);
}

Size
GetMemoryChunkSpace(void *pointer)
{
	return CHUNK_OF(pointer)->size + sizeof(FuzzChunk);
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	size_t		len = strlen(string) + 1;
	char	   *p = MemoryContextAlloc(context, len);

	memcpy(p, string, len);
	return p;
}

char *
pstrdup(const char *in)
{
	return MemoryContextStrdup(CurrentMemoryContext, in);
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *p;

	len = strnlen(in, len);
	p = palloc(len + 1);
	memcpy(p, in, len);
	p[len] = '\0';
	return p;
}

char *
pchomp(const char *in)
{
	size_t		n = strlen(in);

	while (n > 0 && in[n - 1] == '\n')
		n--;
	return pnstrdup(in, n);
}

/* ---------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------
 */
#define ERRSTACK 8
static ErrorData errstack[ERRSTACK];
static int	errdepth = -1;
static int	recursion = 0;
static char last_message[1024];
static int	last_code;

static ErrorData *
cur(void)
{
	if (errdepth < 0)
		fuzz_fail("error function called outside ereport");
	return &errstack[errdepth];
}

bool
errstart(int elevel, const char *domain)
{
	ErrorData  *e;

	ensure_top();
	if (++errdepth >= ERRSTACK)
		fuzz_fail("ereport recursion too deep");
	e = &errstack[errdepth];
	memset(e, 0, sizeof(*e));
	e->elevel = elevel;
	e->domain = domain;
	e->sqlerrcode = elevel >= ERROR ? ERRCODE_INTERNAL_ERROR
		: elevel >= WARNING ? ERRCODE_WARNING : ERRCODE_SUCCESSFUL_COMPLETION;
	e->assoc_context = ErrorContext;
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

static char *
vfmt(const char *fmt, va_list ap)
{
	MemoryContext old = MemoryContextSwitchTo(ErrorContext);
	size_t		len = 128;
	char	   *buf;

	for (;;)
	{
		va_list		copy;
		size_t		need;

		buf = palloc(len);
		va_copy(copy, ap);
		need = pvsnprintf(buf, len, fmt, copy);
		va_end(copy);
		if (need < len)
			break;
		pfree(buf);
		len = need + 1;
	}
	MemoryContextSwitchTo(old);
	return buf;
}

#define FMT_INTO(field) \
	do { \
		va_list ap; \
		va_start(ap, fmt); \
		cur()->field = vfmt(fmt, ap); \
		va_end(ap); \
	} while (0)

int
errcode(int sqlerrcode)
{
	cur()->sqlerrcode = sqlerrcode;
	return 0;
}

int
errcode_for_file_access(void)
{
	cur()->sqlerrcode = ERRCODE_IO_ERROR;
	return 0;
}

int
errmsg(const char *fmt,...)
{
	FMT_INTO(message);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	FMT_INTO(message);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	FMT_INTO(detail);
	return 0;
}

int
errdetail_internal(const char *fmt,...)
{
	FMT_INTO(detail);
	return 0;
}

int
errdetail_log(const char *fmt,...)
{
	FMT_INTO(detail_log);
	return 0;
}

int
errhint(const char *fmt,...)
{
	FMT_INTO(hint);
	return 0;
}

int
errcontext_msg(const char *fmt,...)
{
	ErrorData  *e = cur();
	va_list		ap;
	char	   *s;

	va_start(ap, fmt);
	s = vfmt(fmt, ap);
	va_end(ap);
	if (e->context)
	{
		MemoryContext old = MemoryContextSwitchTo(ErrorContext);

		e->context = psprintf("%s\n%s", e->context, s);
		MemoryContextSwitchTo(old);
	}
	else
		e->context = s;
	return 0;
}

int
set_errcontext_domain(const char *domain)
{
	cur()->context_domain = domain;
	return 0;
}

int
errhidestmt(bool hide_stmt)
{
	return 0;
}

int
errhidecontext(bool hide_ctx)
{
	return 0;
}

int
geterrcode(void)
{
	return cur()->sqlerrcode;
}

pg_noreturn static void throw_current(void);

static void
throw_current(void)
{
	if (PG_exception_stack == NULL)
		fuzz_fail("uncaught ERROR: %s", cur()->message ? cur()->message : "(no message)");
	siglongjmp(*PG_exception_stack, 1);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	ErrorData  *e = cur();
	ErrorContextCallback *ec;

	e->filename = filename;
	e->lineno = lineno;
	e->funcname = funcname;
	/* error context callbacks run as in the server (they may format too) */
	if (recursion == 0)
	{
		recursion++;
		for (ec = error_context_stack; ec != NULL; ec = ec->previous)
			ec->callback(ec->arg);
		recursion--;
	}
	if (e->elevel > ERROR)
		fuzz_fail("%s at %s:%d: %s", e->elevel == FATAL ? "FATAL" : "PANIC",
				  filename, lineno, e->message ? e->message : "");
	if (e->elevel == ERROR)
	{
		if (e->sqlerrcode == ERRCODE_INTERNAL_ERROR)
			fuzz_fail("ERROR without a specific SQLSTATE (XX000) at %s:%d (%s): %s",
					  filename, lineno, funcname, e->message ? e->message : "");
		throw_current();
	}
	/* WARNING and below: formatted (so their arguments are exercised), dropped */
	errdepth--;
	if (errdepth < 0)
		MemoryContextReset(ErrorContext);
}

ErrorData *
CopyErrorData(void)
{
	ErrorData  *e = cur();
	ErrorData  *n = palloc(sizeof(ErrorData));

	memcpy(n, e, sizeof(ErrorData));
#define DUP(f) n->f = e->f ? pstrdup(e->f) : NULL
	DUP(message);
	DUP(detail);
	DUP(detail_log);
	DUP(hint);
	DUP(context);
#undef DUP
	n->backtrace = NULL;
	n->schema_name = n->table_name = n->column_name = NULL;
	n->datatype_name = n->constraint_name = n->internalquery = NULL;
	n->assoc_context = CurrentMemoryContext;
	return n;
}

void
FreeErrorData(ErrorData *edata)
{
	if (edata->message)
		pfree(edata->message);
	if (edata->detail)
		pfree(edata->detail);
	if (edata->detail_log)
		pfree(edata->detail_log);
	if (edata->hint)
		pfree(edata->hint);
	if (edata->context)
		pfree(edata->context);
	pfree(edata);
}

void
FlushErrorState(void)
{
	errdepth = -1;
	MemoryContextReset(ErrorContext);
}

void
ReThrowError(ErrorData *edata)
{
	ErrorData  *e;
	MemoryContext old;

	if (++errdepth >= ERRSTACK)
		fuzz_fail("ereport recursion too deep");
	e = &errstack[errdepth];
	memcpy(e, edata, sizeof(ErrorData));
	old = MemoryContextSwitchTo(ErrorContext);
#define DUP(f) e->f = edata->f ? pstrdup(edata->f) : NULL
	DUP(message);
	DUP(detail);
	DUP(detail_log);
	DUP(hint);
	DUP(context);
#undef DUP
	MemoryContextSwitchTo(old);
	throw_current();
}

void
pg_re_throw(void)
{
	throw_current();
}

/* SQLSTATE text of an error code (the server's fuzz_sql_state). */
static char *
fuzz_sql_state(int sql_state)
{
	static char buf[6];

	for (int i = 0; i < 5; i++)
	{
		buf[i] = PGUNSIXBIT(sql_state);
		sql_state >>= 6;
	}
	buf[5] = '\0';
	return buf;
}

/* ---------------------------------------------------------------------
 * The iteration wrapper
 * ---------------------------------------------------------------------
 */
bool
fuzz_run(void (*fn) (void *), void *arg)
{
	MemoryContext cxt;
	volatile bool ok = true;

	ensure_top();
	cxt = AllocSetContextCreate(TopMemoryContext, "fuzz iteration",
								ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(cxt);
	last_message[0] = '\0';
	last_code = 0;
	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		ErrorData  *e = cur();

		ok = false;
		snprintf(last_message, sizeof(last_message), "%s",
				 e->message ? e->message : "");
		last_code = e->sqlerrcode;
		FlushErrorState();
	}
	PG_END_TRY();
	if (errdepth != -1)
		fuzz_fail("error state left behind (%d)", errdepth);
	if (getenv("FUZZ_VERBOSE"))
	{
		if (ok)
			fprintf(stderr, "outcome: ok\n");
		else
			fprintf(stderr, "outcome: ERROR %s: %s\n", fuzz_sql_state(last_code), last_message);
	}
	error_context_stack = NULL;
	MemoryContextSwitchTo(TopMemoryContext);
	MemoryContextDelete(cxt);
	MemoryContextReset(TopTransactionContext);
	return ok;
}

const char *
fuzz_last_error_message(void)
{
	return last_message;
}

int
fuzz_last_error_code(void)
{
	return last_code;
}

/* ---------------------------------------------------------------------
 * Lists (pg_list.h, array-based as in PostgreSQL 13+)
 * ---------------------------------------------------------------------
 */
static List *
new_list(NodeTag type, int n)
{
	int			cap = Max(n, 4);
	List	   *l = palloc(offsetof(List, initial_elements) + cap * sizeof(ListCell));

	l->type = type;
	l->length = n;
	l->max_length = cap;
	l->elements = l->initial_elements;
	return l;
}

static void
grow(List *l)
{
	int			cap = l->max_length * 2;

	if (l->elements == l->initial_elements)
	{
		ListCell   *e = MemoryContextAlloc(CHUNK_OF(l)->cxt, cap * sizeof(ListCell));

		memcpy(e, l->elements, l->length * sizeof(ListCell));
		l->elements = e;
	}
	else
		l->elements = repalloc(l->elements, cap * sizeof(ListCell));
	l->max_length = cap;
}

List *
list_make1_impl(NodeTag t, ListCell datum1)
{
	List	   *l = new_list(t, 1);

	l->elements[0] = datum1;
	return l;
}

List *
list_make2_impl(NodeTag t, ListCell datum1, ListCell datum2)
{
	List	   *l = new_list(t, 2);

	l->elements[0] = datum1;
	l->elements[1] = datum2;
	return l;
}

List *
list_make3_impl(NodeTag t, ListCell datum1, ListCell datum2, ListCell datum3)
{
	List	   *l = new_list(t, 3);

	l->elements[0] = datum1;
	l->elements[1] = datum2;
	l->elements[2] = datum3;
	return l;
}

List *
lappend(List *list, void *datum)
{
	if (list == NIL)
		list = new_list(T_List, 0);
	if (list->length >= list->max_length)
		grow(list);
	list->elements[list->length++].ptr_value = datum;
	return list;
}

List *
lcons(void *datum, List *list)
{
	if (list == NIL)
		list = new_list(T_List, 0);
	if (list->length >= list->max_length)
		grow(list);
	memmove(list->elements + 1, list->elements, list->length * sizeof(ListCell));
	list->elements[0].ptr_value = datum;
	list->length++;
	return list;
}

List *
list_copy(const List *list)
{
	List	   *l;

	if (list == NIL)
		return NIL;
	l = new_list(list->type, list->length);
	memcpy(l->elements, list->elements, list->length * sizeof(ListCell));
	return l;
}

List *
list_concat(List *list1, const List *list2)
{
	if (list2 == NIL)
		return list1;
	if (list1 == NIL)
		return list_copy(list2);
	for (int i = 0; i < list2->length; i++)
		list1 = lappend(list1, list2->elements[i].ptr_value);
	return list1;
}

List *
list_delete_last(List *list)
{
	if (list == NIL)
		return NIL;
	if (list->length <= 1)
	{
		list_free(list);
		return NIL;
	}
	list->length--;
	return list;
}

void
list_sort(List *list, list_sort_comparator cmp)
{
	if (list != NIL && list->length > 1)
		qsort(list->elements, list->length, sizeof(ListCell),
			  (int (*) (const void *, const void *)) cmp);
}

void
list_free(List *list)
{
	if (list == NIL)
		return;
	if (list->elements != list->initial_elements)
		pfree(list->elements);
	pfree(list);
}

void
list_free_deep(List *list)
{
	if (list == NIL)
		return;
	for (int i = 0; i < list->length; i++)
		pfree(list->elements[i].ptr_value);
	list_free(list);
}

/* ---------------------------------------------------------------------
 * Latches, clock, interrupts, encodings
 * ---------------------------------------------------------------------
 */
int
WaitLatch(Latch *latch, int wakeEvents, long timeout, uint32 wait_event_info)
{
	fuzz_clock_us += timeout * 1000;
	return WL_TIMEOUT;
}

void
ResetLatch(Latch *latch)
{
}

/*
 * The server's custom wait events (PostgreSQL 17 on; compat.h makes it a
 * constant before), which waits.c's sf_wait_event asks for.
 */
#ifndef WaitEventExtensionNew
uint32
WaitEventExtensionNew(const char *wait_event_name)
{
	return PG_WAIT_EXTENSION;
}
#endif

void
SetLatch(Latch *latch)
{
}

TimestampTz
GetCurrentTimestamp(void)
{
	/* each look at the clock lets a second pass, so deadlines are reachable */
	fuzz_clock_us += USECS_PER_SEC;
	return (TimestampTz) fuzz_clock_us;
}

void
ProcessInterrupts(void)
{
	InterruptPending = false;
}

int
GetDatabaseEncoding(void)
{
	return PG_UTF8;
}

bool
pg_verify_mbstr(int encoding, const char *mbstr, int len, bool noError)
{
	int			ok = pg_encoding_verifymbstr(encoding, mbstr, len);

	if (ok != len && !noError)
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("invalid byte sequence")));
	return ok == len;
}

/*
 * Exit callbacks: snowflake.c registers one while a statement is in flight
 * (to cancel it if the process ends).  The harness never ends a process in
 * the middle, so registering and unregistering are no-ops.
 */
void
before_shmem_exit(pg_on_exit_callback function, Datum arg)
{
}

void
cancel_before_shmem_exit(pg_on_exit_callback function, Datum arg)
{
}
