/*
 * direct-preload.so: an LD_PRELOAD shim that adds O_DIRECT when a program
 * opens a file whose name ends in ".meta".  bench/delta.sh runs
 * `dmrepl delta` on the cached metadata images under it to time the reads
 * as the replication path does them: `dmrepl delta --pool` reads the live
 * metadata device with O_DIRECT (lib/metasnap.c), while for an image file
 * it uses the page cache.  thin_delta always reads with O_DIRECT.
 *
 * Benchmark instrument only: built by bench/delta.sh, never installed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/types.h>

int openat(int dirfd, const char *path, int flags, ...);
int open(const char *path, int flags, ...);
int open64(const char *path, int flags, ...);
int openat64(int dirfd, const char *path, int flags, ...);

static int is_image(const char *path)
{
	size_t n = strlen(path);

	return n > 5 && strcmp(path + n - 5, ".meta") == 0;
}

static int real_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	static int (*fn)(int, const char *, int, ...);

	if (!fn)
		fn = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT,
								 "openat");
	if (is_image(path))
		flags |= O_DIRECT;
	return fn(dirfd, path, flags, mode);
}

/* The mode argument is there only with O_CREAT or O_TMPFILE. */
#define MODE_ARG(flags, mode)                                                  \
	do {                                                                   \
		va_list ap;                                                    \
		va_start(ap, flags);                                           \
		mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t)    \
						       : 0;                    \
		va_end(ap);                                                    \
	} while (0)

int openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode;

	MODE_ARG(flags, mode);
	return real_openat(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode;

	MODE_ARG(flags, mode);
	return real_openat(dirfd, path, flags, mode);
}

int open(const char *path, int flags, ...)
{
	mode_t mode;

	MODE_ARG(flags, mode);
	return real_openat(AT_FDCWD, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
	mode_t mode;

	MODE_ARG(flags, mode);
	return real_openat(AT_FDCWD, path, flags, mode);
}
