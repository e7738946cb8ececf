/* alloc.c: every allocation of the library goes through here.
 *
 * In normal use these are malloc and friends.  Tests can make the k-th
 * allocation from now fail (bnf_alloc_fail_at) and count the blocks still live
 * (bnf_alloc_live), to prove that every failure path returns an error and
 * frees what it took.  The counters are atomic: kernels may run threads. */
#include "internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long live;          /* blocks allocated and not freed */
static atomic_long calls;         /* allocations made */
static atomic_long fail_at = -1;  /* the allocation number that fails; -1: none */

void bnf_alloc_fail_at(long k)
{
    atomic_store(&calls, 0);
    atomic_store(&fail_at, k);
}

long bnf_alloc_live(void) { return atomic_load(&live); }
long bnf_alloc_calls(void) { return atomic_load(&calls); }

static int must_fail(void)
{
    long n = atomic_fetch_add(&calls, 1);
    long k = atomic_load(&fail_at);
    return k >= 0 && n == k;
}

void *bnf_malloc(size_t n)
{
    void *p;
    if (must_fail())
        return NULL;
    p = malloc(n ? n : 1);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

void *bnf_calloc(size_t count, size_t size)
{
    void *p;
    if (must_fail())
        return NULL;
    p = calloc(count ? count : 1, size ? size : 1);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

void *bnf_realloc(void *old, size_t n)
{
    void *p;
    if (must_fail())
        return NULL;
    p = realloc(old, n ? n : 1);
    if (p && !old)
        atomic_fetch_add(&live, 1);
    return p;
}

void bnf_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub(&live, 1);
    free(p);
}

static void *pbc_alloc(void *data, size_t size)
{
    (void)data;
    return bnf_malloc(size);
}

static void pbc_free(void *data, void *p)
{
    (void)data;
    bnf_free(p);
}

ProtobufCAllocator bnf_pbc_allocator = {pbc_alloc, pbc_free, NULL};

void bnf_buffer_free(void *data)
{
    bnf_free(data);
}

char *bnf_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = bnf_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}
