/*-------------------------------------------------------------------------
 *
 * transaction.c
 *		A unit of work in its own transaction (sf_run_transaction), for the
 *		background processes, and the SPI connection every SQL-running
 *		module opens (sf_spi_connect).
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
 * SPI_connect(), for the modules that run SQL.  It fails only on internal
 * errors (SPI_ERROR_CONNECT), hence the plain elog.
 */
void
sf_spi_connect(void)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}
