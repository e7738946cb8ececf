/* mapped.c: tensor bytes that live in mapped files instead of the heap.
 *
 * A model file is mapped, not read, and its top graph's raw_data fields point
 * into the mapping (skeleton.c).  Tensors a fold writes are spilled to an
 * unnamed temporary file and mapped back.  Either way the bytes are the
 * kernel's page cache: the process holds only the pages it touches, and
 * bnf_mapped_release hands those back.  The writer (writer.c) asks where such
 * bytes lie in their file and copies them file to file, without touching them.
 *
 * The regions belong to the model (m->regions): pointers into them sit in its
 * protobuf-c structures, which free every bytes field they own, so a model's
 * structures are freed with its own allocator (bnf_model_alloc), which leaves
 * a pointer inside one of its regions, or its lender's, alone.  No global
 * state: models on different threads do not meet here. */
#define _GNU_SOURCE /* O_TMPFILE */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Tensors smaller than this stay on the heap: a mapping costs a page and a
 * system call, and small tensors are not what fills memory. */
static uint64_t spill_min_bytes = 64 * 1024;
/* New tensors stay on the heap, whatever their size, until they hold this
 * much: a spill costs a copy through the page cache (about 10 ms for resnet50's
 * 90 MB of folded weights), memory held until the write costs more: the
 * verified fold's runs need it (32 MiB here made resnet50's verified fold
 * 110 MB at its peak instead of 80, and no faster). */
static uint64_t heap_budget = 4ull * 1024 * 1024;

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

/* A mapped file region, or a heap buffer the model's structures point into. */
struct bnf_region {
    uint8_t *base;
    size_t size;   /* mapped length */
    int fd;        /* the file, owned by the model; -1: a heap buffer */
    uint64_t off;  /* file offset of base */
};

static int add_region(bnf_model *m, uint8_t *base, size_t size, int fd, uint64_t off)
{
    if (m->n_regions == m->cap_regions) {
        size_t cap = m->cap_regions ? 2 * m->cap_regions : 8;
        bnf_region *grown = bnf_realloc(m->regions, cap * sizeof *grown);
        if (!grown)
            return -1;
        m->regions = grown;
        m->cap_regions = cap;
    }
    m->regions[m->n_regions++] = (bnf_region){base, size, fd, off};
    return 0;
}

/* The region of m (or of the model m borrows its weights from) that holds
 * [p, p + len), or NULL. */
static const bnf_region *region_of(const bnf_model *m, const void *p, size_t len)
{
    const uint8_t *q = p;
    for (; m; m = m->lender)
        for (size_t i = 0; i < m->n_regions; i++) {
            const bnf_region *r = &m->regions[i];
            if (q >= r->base && q < r->base + r->size && len <= (size_t)(r->base + r->size - q))
                return r;
        }
    return NULL;
}

int bnf_mapped_owns(const bnf_model *m, const void *p)
{
    return p && region_of(m, p, 1) != NULL;
}

int bnf_mapped_where(const bnf_model *m, const void *p, size_t len, int *fd, uint64_t *off)
{
    const bnf_region *r = p ? region_of(m, p, len) : NULL;
    if (!r || r->fd < 0)
        return 0;
    *fd = r->fd;
    *off = r->off + (uint64_t)((const uint8_t *)p - r->base);
    return 1;
}

/* The model's allocator: its structures' bytes in a region are not freed. */
static void *model_alloc(void *data, size_t size)
{
    (void)data;
    return bnf_malloc(size);
}

static void model_free(void *data, void *p)
{
    if (!bnf_mapped_owns(data, p))
        bnf_free(p);
}

void bnf_model_alloc_init(bnf_model *m)
{
    m->alloc.alloc = model_alloc;
    m->alloc.free = model_free;
    m->alloc.allocator_data = m;
}

ProtobufCAllocator *bnf_model_alloc(const bnf_model *m)
{
    return (ProtobufCAllocator *)&m->alloc;
}

void bnf_mapped_release(const bnf_model *m)
{
    for (size_t i = 0; i < m->n_regions; i++)
        if (m->regions[i].fd >= 0)
            madvise(m->regions[i].base, m->regions[i].size, MADV_DONTNEED);
}

void bnf_pages_release(void *p, size_t len)
{
    madvise(p, len, MADV_DONTNEED);
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

void bnf_pages_prefetch(const void *p, size_t len)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p / page * page, hi = (uintptr_t)p + len;
    /* one call maps the pages a loop would fault in one by one; an older
     * kernel says EINVAL and the loop faults them in as before */
    if (len)
        madvise((void *)lo, hi - lo, MADV_POPULATE_READ);
}

void bnf_mapped_release_range(const bnf_model *m, const void *p, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p / (uintptr_t)page * (uintptr_t)page;
    uintptr_t hi = ((uintptr_t)p + len + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    int fd;
    uint64_t off;
    /* neighbouring bytes in the same pages are in the same file: they are read
     * again from the page cache should anyone need them */
    if (len && bnf_mapped_where(m, p, len, &fd, &off))
        madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

void bnf_mapped_drop(bnf_model *m)
{
    for (size_t i = 0; i < m->n_regions; i++)
        if (m->regions[i].fd >= 0)
            munmap(m->regions[i].base, m->regions[i].size);
    bnf_free(m->regions);
    m->regions = NULL;
    m->n_regions = m->cap_regions = 0;
}

uint8_t *bnf_mapped_file(bnf_model *m, int fd, size_t size)
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

int bnf_mapped_heap(bnf_model *m, uint8_t *base, size_t size)
{
    return add_region(m, base, size, -1, 0);
}

/* Writes n bytes at offset off of fd: 0, or -1 (disk full, say). */
static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t k = pwrite(fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
        off += (uint64_t)k;
    }
    return 0;
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

    if (!t->has_raw_data || bnf_mapped_owns(m, t->raw_data.data) || keep_on_heap(m, len))
        return;
    if (m->spill_fd < 0 && !m->spill_failed && (m->spill_fd = open_spill(m)) < 0)
        m->spill_failed = 1;
    if (m->spill_fd < 0)
        return; /* it stays on the heap: correct, only bigger */
    off = (m->spill_end + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
    if (pwrite_all(m->spill_fd, t->raw_data.data, len, off) != 0)
        return; /* disk full, say: it stays on the heap */
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

/* The background writer: buffers filled by the caller are written to the
 * spill file by a thread of its own, so that computing the next piece and
 * writing the last one overlap. */
struct bnf_spill_thread {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int fd, external;
    uint64_t base;          /* file offset of the tensor */
    uint8_t *buf[2];
    size_t fill[2];         /* bytes to write; 0: free */
    uint64_t pos[2];        /* their place in the tensor */
    int stop, failed;
};

static void *spill_thread_main(void *arg)
{
    struct bnf_spill_thread *t = arg;
    int next = 0;
    uint64_t kicked = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!t->fill[next] && !t->stop)
            pthread_cond_wait(&t->cv, &t->mu);
        if (!t->fill[next])
            break; /* stopped with nothing left */
        pthread_mutex_unlock(&t->mu);
        {
            uint64_t at = t->base + t->pos[next] + t->fill[next];
            int failed = pwrite_all(t->fd, t->buf[next], t->fill[next],
                                    t->base + t->pos[next]) != 0;
            if (t->external && at - t->base - kicked >= (8u << 20)) {
                /* this file may well become the output's data file: start its
                 * disk writing now, so that the final fsync has little to do */
                sync_file_range(t->fd, (off64_t)(t->base + kicked),
                                (off64_t)(at - t->base - kicked), SYNC_FILE_RANGE_WRITE);
                kicked = at - t->base;
            }
            pthread_mutex_lock(&t->mu);
            t->failed |= failed;
            t->fill[next] = 0;
            pthread_cond_broadcast(&t->cv);
        }
        next ^= 1;
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

#define SPILL_PIECE (1u << 20) /* bytes lent at a time */

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
        struct bnf_spill_thread *t = bnf_calloc(1, sizeof *t);
        w->off = (m->spill_end + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page;
        if (!t || !(t->buf[0] = bnf_malloc(SPILL_PIECE)) || !(t->buf[1] = bnf_malloc(SPILL_PIECE))) {
            if (t) {
                bnf_free(t->buf[0]);
                bnf_free(t);
            }
            w->failed = 1;
            return;
        }
        t->fd = m->spill_fd;
        t->external = m->external;
        t->base = w->off;
        pthread_mutex_init(&t->mu, NULL);
        pthread_cond_init(&t->cv, NULL);
        w->writer = t;
        /* no thread to be had: the pieces are written as they come */
        w->threaded = pthread_create(&t->thread, NULL, spill_thread_main, t) == 0;
        return;
    }
    if (len > SIZE_MAX - 1 || !(w->heap = bnf_malloc(len ? (size_t)len : 1)))
        w->failed = 1;
}

uint8_t *bnf_spill_next(bnf_spill_writer *w, size_t *cap)
{
    struct bnf_spill_thread *t = w->writer;
    if (w->failed)
        return NULL;
    if (w->heap) {
        *cap = (size_t)(w->len - w->at);
        return w->heap + w->at;
    }
    *cap = SPILL_PIECE;
    if (w->threaded) { /* wait until the writer is done with this buffer */
        pthread_mutex_lock(&t->mu);
        while (t->fill[w->cur] && !t->failed)
            pthread_cond_wait(&t->cv, &t->mu);
        w->failed |= t->failed;
        pthread_mutex_unlock(&t->mu);
    }
    return w->failed ? NULL : t->buf[w->cur];
}

void bnf_spill_put(bnf_spill_writer *w, size_t n)
{
    struct bnf_spill_thread *t = w->writer;
    if (w->failed || n > w->len - w->at) {
        w->failed = 1;
        return;
    }
    if (w->heap) {
        w->at += n;
        return;
    }
    if (w->threaded) {
        pthread_mutex_lock(&t->mu);
        t->pos[w->cur] = w->at;
        t->fill[w->cur] = n;
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        w->cur ^= 1;
    } else if (pwrite_all(t->fd, t->buf[w->cur], n, w->off + w->at) != 0) {
        w->failed = 1;
        return;
    }
    w->at += n;
}

/* Waits for the writer to finish and frees it. */
static void spill_stop(bnf_spill_writer *w)
{
    struct bnf_spill_thread *t = w->writer;
    if (!t)
        return;
    if (w->threaded) {
        pthread_mutex_lock(&t->mu);
        t->stop = 1;
        pthread_cond_broadcast(&t->cv);
        pthread_mutex_unlock(&t->mu);
        pthread_join(t->thread, NULL);
        w->failed |= t->failed;
    }
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    bnf_free(t->buf[0]);
    bnf_free(t->buf[1]);
    bnf_free(t);
    w->writer = NULL;
}

void bnf_spill_abort(bnf_spill_writer *w)
{
    spill_stop(w);
    bnf_free(w->heap);
    w->heap = NULL;
}

uint8_t *bnf_spill_end(bnf_spill_writer *w)
{
    void *p;
    uint8_t *heap = w->heap;
    spill_stop(w);
    w->heap = NULL;
    if (w->failed || w->at != w->len) {
        bnf_free(heap);
        return NULL;
    }
    if (heap)
        return heap;
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
