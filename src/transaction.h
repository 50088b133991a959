/*-------------------------------------------------------------------------
 *
 * transaction.h
 *		Units of work in their own (sub)transaction, and the SPI connection
 *		(transaction.c; base layer in docs/ARCHITECTURE.md)
 *
 *-------------------------------------------------------------------------
 */
#ifndef SF_TRANSACTION_H
#define SF_TRANSACTION_H

extern bool sf_run_transaction(void (*fn) (void *arg), void *arg, char **message);
extern ErrorData *sf_run_subtransaction(void (*fn) (void *arg), void *arg);
extern void sf_spi_connect(void);

#endif							/* SF_TRANSACTION_H */
