/* fault_io.c: an LD_PRELOAD shim that makes file writes fail, for the CLI
 * tests of what a failed write leaves behind (nothing).
 *   BNFOLD_FAULT_WRITE=N   write() to a file fails with ENOSPC once N bytes went
 *   BNFOLD_FAULT_FSYNC=1   fsync() fails with EIO
 *   BNFOLD_FAULT_RENAME=1  rename() fails with EXDEV
 * Only descriptors above 2 are affected (stdout and stderr still work). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static long written;

ssize_t write(int fd, const void *buf, size_t n)
{
    static ssize_t (*real)(int, const void *, size_t);
    const char *limit = getenv("BNFOLD_FAULT_WRITE");
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (fd > 2 && limit) {
        long max = atol(limit);
        if (written >= max) {
            errno = ENOSPC;
            return -1;
        }
        if ((long)n > max - written)
            n = (size_t)(max - written);
        written += (long)n;
    }
    return real(fd, buf, n);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (getenv("BNFOLD_FAULT_FSYNC")) {
        errno = EIO;
        return -1;
    }
    return real(fd);
}

int rename(const char *from, const char *to)
{
    static int (*real)(const char *, const char *);
    if (!real)
        real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    if (getenv("BNFOLD_FAULT_RENAME")) {
        errno = EXDEV;
        return -1;
    }
    return real(from, to);
}
