/*-------------------------------------------------------------------------
 *
 * storage_local.c
 *		Local directory backend of the storage interface (file:///dir/),
 *		for development and the demo.
 *
 * An object is written to a temporary file in its final directory
 * (".<name>.sfexport-tmp-<pid>-<n>"), fsynced, renamed into place and the
 * directory fsynced, so that a reader (or a crash) sees either nothing or
 * the whole file.  Subdirectories named by the object are created as
 * needed.  Listings skip temporary files.  Only superusers can create a
 * server with a file:// location (options.c), since the files are written
 * by the database server with its own privileges.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/fd.h"

#include "sfexport.h"

#define TMP_MARK ".sfexport-tmp-"

typedef struct LocalFile
{
	int			fd;
	char	   *tmppath;
	char	   *path;
} LocalFile;

static void
local_open(SfStorage *st)
{
	struct stat sb;

	if (stat(st->prefix, &sb) != 0 || !S_ISDIR(sb.st_mode))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("directory \"%s\" of server \"%s\" does not exist",
						st->prefix, st->srv->servername),
				 errhint("Create the directory, writable by the database server's operating system user.")));
}

/* mkdir -p of the directories above path, below the location directory. */
static void
make_parents(SfStorage *st, const char *path)
{
	char	   *copy = pstrdup(path);
	size_t		base = strlen(st->prefix);

	for (char *c = copy + base; *c; c++)
	{
		if (*c != '/')
			continue;
		*c = '\0';
		if (mkdir(copy, S_IRWXU) != 0 && errno != EEXIST)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not create directory \"%s\": %m", copy)));
		*c = '/';
	}
	pfree(copy);
}

static void
fsync_dir_of(const char *path)
{
	char	   *dir = pstrdup(path);
	char	   *slash = strrchr(dir, '/');

	if (slash)
		*slash = '\0';
	fsync_fname(dir[0] ? dir : "/", true);
	pfree(dir);
}

static void
local_mp_start(SfStorageWriter *w)
{
	static int	counter = 0;
	MemoryContext old = MemoryContextSwitchTo(w->cxt);
	LocalFile  *f = palloc0(sizeof(LocalFile));
	char	   *slash;

	f->path = pstrdup(w->key);
	make_parents(w->st, f->path);
	slash = strrchr(f->path, '/');
	f->tmppath = psprintf("%.*s/.%s" TMP_MARK "%d-%d", (int) (slash - f->path), f->path,
						  slash + 1, MyProcPid, ++counter);
	f->fd = OpenTransientFile(f->tmppath, O_WRONLY | O_CREAT | O_EXCL | PG_BINARY);
	if (f->fd < 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not create file \"%s\": %m", f->tmppath)));
	w->priv = f;
	MemoryContextSwitchTo(old);
}

static void
local_mp_part(SfStorageWriter *w, const char *data, size_t len)
{
	LocalFile  *f = (LocalFile *) w->priv;

	while (len > 0)
	{
		ssize_t		n = write(f->fd, data, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			if (n == 0)
				errno = ENOSPC;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not write to file \"%s\": %m", f->tmppath)));
		}
		data += n;
		len -= n;
	}
}

static void
local_mp_complete(SfStorageWriter *w)
{
	LocalFile  *f = (LocalFile *) w->priv;

	if (pg_fsync(f->fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not fsync file \"%s\": %m", f->tmppath)));
	if (CloseTransientFile(f->fd) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not close file \"%s\": %m", f->tmppath)));
	f->fd = -1;
	if (rename(f->tmppath, f->path) != 0)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not rename file \"%s\" to \"%s\": %m", f->tmppath, f->path)));
	fsync_dir_of(f->path);
}

static void
local_mp_abort(SfStorageWriter *w)
{
	LocalFile  *f = (LocalFile *) w->priv;

	if (f == NULL)
		return;
	if (f->fd >= 0)
		CloseTransientFile(f->fd);
	f->fd = -1;
	if (unlink(f->tmppath) != 0 && errno != ENOENT)
		ereport(WARNING,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", f->tmppath)));
}

/* A small object: the same temp + fsync + rename path. */
static void
local_put(SfStorageWriter *w, const char *data, size_t len)
{
	local_mp_start(w);
	PG_TRY();
	{
		local_mp_part(w, data, len);
		local_mp_complete(w);
	}
	PG_CATCH();
	{
		local_mp_abort(w);
		PG_RE_THROW();
	}
	PG_END_TRY();
}

static bool
local_read(SfStorage *st, const char *key, SfHttpWriteFn sink, void *arg)
{
	int			fd = OpenTransientFile(key, O_RDONLY | PG_BINARY);
	char		buf[65536];
	ssize_t		n;

	if (fd < 0)
	{
		if (errno == ENOENT)
			return false;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open file \"%s\": %m", key)));
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0)
	{
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read file \"%s\": %m", key)));
		}
		if (!sink(buf, n, arg))
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("could not pass on the contents of file \"%s\"", key)));
		CHECK_FOR_INTERRUPTS();
	}
	CloseTransientFile(fd);
	return true;
}

static bool
local_head(SfStorage *st, const char *key, int64 *size)
{
	struct stat sb;

	if (stat(key, &sb) != 0)
	{
		if (errno == ENOENT)
			return false;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not stat file \"%s\": %m", key)));
	}
	*size = (int64) sb.st_size;
	return true;
}

static void
local_del(SfStorage *st, const char *key)
{
	if (unlink(key) != 0)
	{
		if (errno == ENOENT)
			return;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not remove file \"%s\": %m", key)));
	}
	fsync_dir_of(key);
}

static void
list_dir(const char *dir, const char *keyprefix, List **out)
{
	DIR		   *d = AllocateDir(dir);
	struct dirent *de;

	if (d == NULL && errno == ENOENT)
		return;
	while ((de = ReadDir(d, dir)) != NULL)
	{
		char	   *path;
		struct stat sb;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
			strstr(de->d_name, TMP_MARK) != NULL)
			continue;
		path = psprintf("%s/%s", dir, de->d_name);
		if (lstat(path, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode))
			list_dir(path, keyprefix, out);
		else if (S_ISREG(sb.st_mode) && strncmp(path, keyprefix, strlen(keyprefix)) == 0)
			*out = lappend(*out, path);
		CHECK_FOR_INTERRUPTS();
	}
	FreeDir(d);
}

/* One directory walk (a "page"); names after start_after only. */
static List *
local_list(SfStorage *st, const char *keyprefix, SfListBounds *b)
{
	List	   *out = NIL;
	List	   *kept = NIL;
	ListCell   *lc;
	char	   *root = pstrdup(st->prefix);

	/* walk from the location directory; keys are dir + relative name */
	if (strlen(root) > 1 && root[strlen(root) - 1] == '/')
		root[strlen(root) - 1] = '\0';
	b->pages++;
	list_dir(strcmp(root, "/") == 0 ? "" : root, keyprefix, &out);
	if (b->start_after == NULL)
		return out;
	foreach(lc, out)
		if (strcmp((char *) lfirst(lc), b->start_after) > 0)
			kept = lappend(kept, lfirst(lc));
	return kept;
}

const SfStorageOps sf_storage_local_ops = {
	.name = "local directory",
	.open = local_open,
	.put = local_put,
	.mp_start = local_mp_start,
	.mp_part = local_mp_part,
	.mp_complete = local_mp_complete,
	.mp_abort = local_mp_abort,
	.read = local_read,
	.head = local_head,
	.del = local_del,
	.list = local_list,
};
