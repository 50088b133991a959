/*-------------------------------------------------------------------------
 *
 * sfexport.c
 *		Module entry point: _PG_init.  Each module defines the sfexport.*
 *		GUCs that configure it (sf_<module>_define_gucs) and registers its
 *		own callbacks; this calls them, and starts the launcher when the
 *		library is preloaded (shmem.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "sfexport.h"

#include "config.h"
#include "launcher.h"
#include "load.h"
#include "outbox.h"
#include "shapes.h"
#include "shmem.h"
#include "snowflake.h"
#include "storage.h"
#include "stream_load.h"
#include "sweep.h"
#include "tables.h"
#include "worker.h"

PG_MODULE_MAGIC_EXT(.name = "sfexport", .version = SFEXPORT_VERSION);

void		_PG_init(void);

void
_PG_init(void)
{
	sf_shmem_init();

	/* every module defines the GUCs that configure it */
	sf_config_define_gucs();
	sf_auth_define_gucs();
	sf_outbox_define_gucs();
	sf_storage_define_gucs();
	sf_load_define_gucs();
	sf_sweep_define_gucs();
	sf_shmem_define_gucs();
	sf_launcher_define_gucs();
	sf_worker_define_gucs();
	sf_stream_define_gucs();

	MarkGUCPrefixReserved("sfexport");

	sf_tables_init();
	sf_shapes_init();
	sf_outbox_init();

	/* the launcher and its shared memory exist only when preloaded */
	if (sf_preloaded() && !IsBinaryUpgrade)
	{
		sf_shmem_request();
		sf_launcher_register();
	}
}
