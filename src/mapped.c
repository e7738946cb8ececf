/* mapped.c: tensor bytes that live in mapped files instead of the heap.
 *
 * A model file is mapped, not read, and its top graph's raw_data fields point
 * into the mapping (skeleton.c).  Tensors a fold writes are spilled to an
 * unnamed temporary file and mapped back.  Either way the bytes are the
 * kernel's page cache: the process holds only the pages it touches, and
 * bnf_mapped_release hands those back.  The writer (writer.c) asks where such
 * bytes lie in their file and copies them file to file, without touching them.
 *
 * Pointers into a region may sit in protobuf-c structures, which free every
 * bytes field they own: bnf_free leaves a pointer inside a region alone. */
#define _GNU_SOURCE /* O_TMPFILE */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Tensors smaller than this stay on the heap: a mapping costs a page and a
 * system call, and small tensors are not what fills memory. */
static uint64_t spill_min_bytes = 64 * 1024;
/* New tensors stay on the heap, whatever their size, until they hold this
 * much: a spill costs a copy through the page cache. */
static uint64_t heap_budget = 32ull * 1024 * 1024;

void bnf_mapped_test_limits(uint64_t budget, uint64_t spill_min)
{
    heap_budget = budget;
    spill_min_bytes = spill_min;
}

/* Whether a new tensor of len bytes may stay on the heap (and counts it). */
static int keep_on_heap(bnf_model *m, uint64_t len)
{
    if (len < spill_min_bytes)
        return 1;
    if (m->held + len <= heap_budget) {
        m->held += len;
        return 1;
    }
    return 0;
}

typedef struct region {
    const bnf_model *owner;
    uint8_t *base;
    size_t size;   /* mapped length */
    int fd;        /* the file, owned by the model; -1: a heap buffer */
    uint64_t off;  /* file offset of base */
} region;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static region *regions;
static size_t n_regions, cap_regions;
static atomic_size_t n_live; /* n_regions, read without the lock */

static int add_region(const bnf_model *owner, uint8_t *base, size_t size, int fd, uint64_t off)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (n_regions == cap_regions) {
        size_t cap = cap_regions ? 2 * cap_regions : 64;
        /* plain realloc: the registry is not part of any model's allocations */
        region *grown = realloc(regions, cap * sizeof *grown);
        if (!grown)
            rc = -1;
        else {
            regions = grown;
            cap_regions = cap;
        }
    }
    if (rc == 0) {
        regions[n_regions++] = (region){owner, base, size, fd, off};
        atomic_store(&n_live, n_regions);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

int bnf_mapped_owns(const void *p)
{
    const uint8_t *q = p;
    int found = 0;
    if (!p || atomic_load(&n_live) == 0)
        return 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_regions && !found; i++)
        found = q >= regions[i].base && q < regions[i].base + regions[i].size;
    pthread_mutex_unlock(&lock);
    return found;
}

int bnf_mapped_where(const void *p, size_t len, int *fd, uint64_t *off)
{
    const uint8_t *q = p;
    int found = 0;
    if (!p || atomic_load(&n_live) == 0)
        return 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_regions && !found; i++) {
        const region *r = &regions[i];
        if (r->fd >= 0 && q >= r->base && q < r->base + r->size &&
            len <= (size_t)(r->base + r->size - q)) {
            *fd = r->fd;
            *off = r->off + (uint64_t)(q - r->base);
            found = 1;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

void bnf_mapped_release(const bnf_model *m)
{
    if (atomic_load(&n_live) == 0)
        return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_regions; i++)
        if (regions[i].owner == m && regions[i].fd >= 0)
            madvise(regions[i].base, regions[i].size, MADV_DONTNEED);
    pthread_mutex_unlock(&lock);
}

void bnf_mapped_release_range(const void *p, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p / (uintptr_t)page * (uintptr_t)page;
    uintptr_t hi = ((uintptr_t)p + len + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    int fd;
    uint64_t off;
    /* neighbouring bytes in the same pages are in the same file: they are read
     * again from the page cache should anyone need them */
    if (len && bnf_mapped_where(p, len, &fd, &off))
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void bnf_mapped_drop(const bnf_model *m)
{
    size_t k = 0;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_regions; i++) {
        if (regions[i].owner == m) {
            if (regions[i].fd >= 0)
                munmap(regions[i].base, regions[i].size);
        } else
            regions[k++] = regions[i];
    }
    n_regions = k;
    atomic_store(&n_live, n_regions);
    if (!n_regions) {
        free(regions);
        regions = NULL;
        cap_regions = 0;
    }
    pthread_mutex_unlock(&lock);
}

uint8_t *bnf_mapped_file(const bnf_model *m, int fd, size_t size)
{
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (add_region(m, p, size, fd, 0) != 0) {
        munmap(p, size);
        errno = ENOMEM;
        return NULL;
    }
    return p;
}

int bnf_mapped_heap(const bnf_model *m, uint8_t *base, size_t size)
{
    return add_region(m, base, size, -1, 0);
}

/* The spill file: unnamed, in the model's folder (usually where the output
 * goes), else in $TMPDIR or /tmp.  -1 when none can be made. */
static int open_spill(const bnf_model *m)
{
#ifdef O_TMPFILE
    const char *tmpdir = getenv("TMPDIR");
    const char *dirs[3] = {m->dir, tmpdir && *tmpdir ? tmpdir : NULL, "/tmp"};
    for (size_t i = 0; i < 3; i++) {
        int fd;
        if (!dirs[i])
            continue;
        fd = open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd >= 0)
            return fd;
    }
#else
    (void)m;
#endif
    return -1;
}

void bnf_mapped_spill(bnf_model *m, Onnx__TensorProto *t)
{
    long page = sysconf(_SC_PAGESIZE);
    size_t len = t->raw_data.len;
    uint64_t off;
    void *p;

    if (!t->has_raw_data || bnf_mapped_owns(t->raw_data.data) || keep_on_heap(m, len))
        return;
    if (m->spill_fd < 0 && !m->spill_failed && (m->spill_fd = open_spill(m)) < 0)
        m->spill_failed = 1;
    if (m->spill_fd < 0)
        return; /* it stays on the heap: correct, only bigger */
    off = (m->spill_end + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    for (size_t done = 0; done < len;) {
        ssize_t w = pwrite(m->spill_fd, t->raw_data.data + done, len - done, (off_t)(off + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* disk full, say: keep it on the heap */
        done += (size_t)w;
    }
    p = mmap(NULL, len, PROT_READ, MAP_SHARED, m->spill_fd, (off_t)off);
    if (p == MAP_FAILED)
        return;
    if (add_region(m, p, len, m->spill_fd, off) != 0) {
        munmap(p, len);
        return;
    }
    m->spill_end = off + len;
    bnf_free(t->raw_data.data);
    t->raw_data.data = p;
}

void bnf_spill_begin(bnf_model *m, uint64_t len, bnf_spill_writer *w)
{
    long page = sysconf(_SC_PAGESIZE);
    int heap;
    memset(w, 0, sizeof *w);
    heap = keep_on_heap(m, len);
    w->m = m;
    w->len = len;
    if (!heap && m->spill_fd < 0 && !m->spill_failed && (m->spill_fd = open_spill(m)) < 0)
        m->spill_failed = 1;
    if (!heap && m->spill_fd >= 0) {
        w->off = (m->spill_end + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
        return;
    }
    if (len > SIZE_MAX - 1 || !(w->heap = bnf_malloc(len ? (size_t)len : 1)))
        w->failed = 1;
}

void bnf_spill_write(bnf_spill_writer *w, const void *p, size_t n)
{
    const uint8_t *q = p;
    if (w->failed || n > w->len - w->at) {
        w->failed = 1;
        return;
    }
    if (w->heap) {
        memcpy(w->heap + w->at, q, n);
        w->at += n;
        return;
    }
    while (n) {
        ssize_t k = pwrite(w->m->spill_fd, q, n, (off_t)(w->off + w->at));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            w->failed = 1;
            return;
        }
        q += k;
        n -= (size_t)k;
        w->at += (uint64_t)k;
    }
}

uint8_t *bnf_spill_end(bnf_spill_writer *w)
{
    void *p;
    if (w->failed || w->at != w->len) {
        bnf_free(w->heap);
        return NULL;
    }
    if (w->heap)
        return w->heap;
    p = mmap(NULL, (size_t)w->len, PROT_READ, MAP_SHARED, w->m->spill_fd, (off_t)w->off);
    if (p == MAP_FAILED)
        return NULL;
    if (add_region(w->m, p, (size_t)w->len, w->m->spill_fd, w->off) != 0) {
        munmap(p, (size_t)w->len);
        return NULL;
    }
    w->m->spill_end = w->off + w->len;
    return p;
}
