/* strmap.c: an open-addressing hash map from borrowed C strings to intptr_t.
 * Keys are not copied: they must outlive the map (they point into the model). */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

struct bnf_strmap {
    const char **keys;
    intptr_t *values;
    size_t cap;   /* a power of two */
    size_t count;
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int alloc_slots(bnf_strmap *m, size_t cap)
{
    m->keys = bnf_calloc(cap, sizeof *m->keys);
    m->values = bnf_calloc(cap, sizeof *m->values);
    if (!m->keys || !m->values) {
        bnf_free(m->keys);
        bnf_free(m->values);
        return -1;
    }
    m->cap = cap;
    return 0;
}

bnf_strmap *bnf_strmap_new(size_t expected)
{
    bnf_strmap *m = bnf_calloc(1, sizeof *m);
    size_t cap = 16;
    if (!m)
        return NULL;
    while (cap < expected * 2)
        cap *= 2;
    if (alloc_slots(m, cap) != 0) {
        bnf_free(m);
        return NULL;
    }
    return m;
}

void bnf_strmap_free(bnf_strmap *m)
{
    if (!m)
        return;
    bnf_free(m->keys);
    bnf_free(m->values);
    bnf_free(m);
}

static size_t find(const bnf_strmap *m, const char *key)
{
    size_t i = (size_t)hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int grow(bnf_strmap *m)
{
    bnf_strmap old = *m;
    if (alloc_slots(m, old.cap * 2) != 0) {
        *m = old;
        return -1;
    }
    m->count = 0;
    for (size_t i = 0; i < old.cap; i++) {
        if (old.keys[i]) {
            size_t j = find(m, old.keys[i]);
            m->keys[j] = old.keys[i];
            m->values[j] = old.values[i];
            m->count++;
        }
    }
    bnf_free(old.keys);
    bnf_free(old.values);
    return 0;
}

int bnf_strmap_put(bnf_strmap *m, const char *key, intptr_t value)
{
    size_t i;
    if ((m->count + 1) * 2 > m->cap && grow(m) != 0)
        return -1;
    i = find(m, key);
    if (!m->keys[i]) {
        m->keys[i] = key;
        m->count++;
    }
    m->values[i] = value;
    return 0;
}

int bnf_strmap_get(const bnf_strmap *m, const char *key, intptr_t *value)
{
    size_t i = find(m, key);
    if (!m->keys[i])
        return 0;
    if (value)
        *value = m->values[i];
    return 1;
}

int bnf_strmap_add(bnf_strmap *m, const char *key, intptr_t delta)
{
    intptr_t v = 0;
    bnf_strmap_get(m, key, &v);
    return bnf_strmap_put(m, key, v + delta);
}
