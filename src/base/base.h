/*
 * base/base.h: what every file of the library uses, with no knowledge of
 * models: allocation (with failure injection for tests), errors as values,
 * and a string map.
 */
#ifndef BNF_BASE_H
#define BNF_BASE_H

#include "bnfold.h"
#include "onnx-ml.pb-c.h"

#include <stdarg.h>
#include <stdint.h>

/* ---- allocation (alloc.c): every allocation of the library -------------------- */

void *bnf_malloc(size_t n);
void *bnf_calloc(size_t count, size_t size);
void *bnf_realloc(void *p, size_t n);
void bnf_free(void *p);
/* A copy of s, or NULL when out of memory. */
char *bnf_strdup(const char *s);
/* protobuf-c allocations through the above (free_unpacked with it). */
extern ProtobufCAllocator bnf_pbc_allocator;
/* Test hooks: make the k-th allocation from now fail (-1: none); blocks live;
 * allocations made since the last bnf_alloc_fail_at. */
void bnf_alloc_fail_at(long k);
long bnf_alloc_live(void);
long bnf_alloc_calls(void);

/* ---- errors (err.c) ------------------------------------------------------ */

/* Fills err (when not NULL) and returns code. */
bnf_status bnf_fail(bnf_err *err, bnf_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Puts "prefix: " before err's message (cutting its end if it must). */
void bnf_err_prefix(bnf_err *err, const char *prefix);

/* ---- paths (path.c) ------------------------------------------------------ */

/* realpath(path, NULL), in memory from bnf_malloc. */
char *bnf_realpath(const char *path);
/* The canonical folder of a file path (which need not exist itself). */
char *bnf_folder_of(const char *path);

/* ---- string map (strmap.c): string keys (borrowed) to intptr_t values -- */

typedef struct bnf_strmap bnf_strmap;
bnf_strmap *bnf_strmap_new(size_t expected);
void bnf_strmap_free(bnf_strmap *m);
/* Returns 0, or -1 when out of memory.  The key is borrowed, not copied. */
int bnf_strmap_put(bnf_strmap *m, const char *key, intptr_t value);
/* Returns 1 and sets *value when present, else 0. */
int bnf_strmap_get(const bnf_strmap *m, const char *key, intptr_t *value);
/* Adds delta to the value of key (0 when absent).  Returns 0 or -1. */
int bnf_strmap_add(bnf_strmap *m, const char *key, intptr_t delta);

#endif
