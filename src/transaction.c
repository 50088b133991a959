/*-------------------------------------------------------------------------
 *
 * transaction.c
 *		A unit of work in its own transaction (sf_run_transaction), for the
 *		background processes; a step that may fail on its own, in a
 *		subtransaction (sf_run_subtransaction); and the SPI connection every
 *		SQL-running module opens (sf_spi_connect).
 *
 * Every unit of work of the worker runs through sf_run_transaction(),
 * which turns an error into a WARNING and leaves the process running
 * (docs/ARCHITECTURE.md, "Transactions and crash points").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "transaction.h"

/*
 * Run fn(arg) in its own transaction.  On error: abort the transaction,
 * report the error as a WARNING (it goes to the server log), and return
 * false with *message set to its text (allocated in the caller's context).
 */
bool
sf_run_transaction(void (*fn) (void *arg), void *arg, char **message)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ErrorData  *volatile edata = NULL;

	/*
	 * now() is the start of the transaction, taken from the statement start
	 * timestamp, which only the client protocol sets: without this, every
	 * transaction of the worker would see the time the worker started (and
	 * a load backoff "until now() + 10 s" would never expire).
	 */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		fn(arg);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(oldcxt);

	if (edata == NULL)
		return true;
	if (message)
		*message = pstrdup(edata->message);
	edata->elevel = WARNING;
	ThrowErrorData(edata);
	return false;
}

/*
 * Run fn(arg) in an internal subtransaction, in the caller's memory context.
 * Returns NULL when it succeeded, else the error it raised (copied into the
 * caller's memory context) once the subtransaction is rolled back: the
 * caller decides whether that ends its work too (ReThrowError) or becomes
 * a result.
 */
ErrorData *
sf_run_subtransaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext oldcxt = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcxt);
		CurrentResourceOwner = oldowner;
	}
	PG_END_TRY();
	return edata;
}

/*
 * SPI_connect(), for the modules that run SQL.  It fails only on internal
 * errors (SPI_ERROR_CONNECT), hence the plain elog.
 */
void
sf_spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}
