/* discover.c: the models a run over many PATHs checks.  A PATH that is a
 * folder is searched recursively for files named *.onnx (symbolic links to
 * files are taken, links to folders are not followed, so no walk can loop);
 * any other PATH is taken as a model as it is (the loader then says what is
 * wrong with it: missing, unreadable, not a model).  Files of other names
 * beside the models, external data among them, are not models.  --exclude
 * GLOBs prune the search inside folders; a PATH named on the command line is
 * always taken.  The list comes back sorted by path (bytewise), each file
 * once. */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Folders deeper than this are reported, not entered (bind mounts can loop). */
#define MAX_DEPTH 128

typedef struct {
    bnf_found_list *out;
    size_t cap;
    const bnf_find_options *o;
    int has_skip;
    dev_t skip_dev;
    ino_t skip_ino;
} finder;

static int ends_with_onnx(const char *name)
{
    size_t n = strlen(name);
    return n > 5 && strcmp(name + n - 5, ".onnx") == 0;
}

/* A GLOB with a '/' is matched against the whole path, '*' crossing '/'; one
 * without against the file or folder name alone. */
static int excluded(const bnf_find_options *o, const char *name, const char *path)
{
    for (size_t i = 0; o && i < o->n_exclude; i++) {
        const char *g = o->exclude[i];
        if (!g || !*g)
            continue;
        if (strchr(g, '/') ? fnmatch(g, path, 0) == 0 : fnmatch(g, name, 0) == 0)
            return 1;
    }
    return 0;
}

/* Appends an entry (the strings are copied); -1 when out of memory. */
static int add(finder *f, const char *path, const char *rel, bnf_status status,
               const char *message)
{
    bnf_found *e;
    if (f->out->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        bnf_found *grown = bnf_realloc(f->out->items, cap * sizeof *grown);
        if (!grown)
            return -1;
        f->out->items = grown;
        f->cap = cap;
    }
    e = &f->out->items[f->out->n];
    memset(e, 0, sizeof *e);
    e->status = status;
    e->path = bnf_strdup(path);
    e->rel = bnf_strdup(rel);
    e->message = message ? bnf_strdup(message) : NULL;
    if (!e->path || !e->rel || (message && !e->message)) {
        bnf_free(e->path);
        bnf_free(e->rel);
        bnf_free(e->message);
        return -1;
    }
    f->out->n++;
    return 0;
}

/* "base/name" (or "name" when base is "."), in a new string. */
static char *join(const char *base, const char *name)
{
    size_t nb = strlen(base), nn = strlen(name);
    char *s;
    if (!strcmp(base, "."))
        return bnf_strdup(name);
    if (!(s = bnf_malloc(nb + nn + 2)))
        return NULL;
    memcpy(s, base, nb);
    s[nb] = '/';
    memcpy(s + nb + 1, name, nn + 1);
    return s;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Searches folder `dir` (its path as reported) whose part below the PATH is
 * `rel` ("" for the PATH itself).  *found counts the models added.  Returns 0,
 * or -1 when out of memory; a folder that cannot be read is an entry. */
static int search(finder *f, const char *dir, const char *rel, int depth, size_t *found)
{
    DIR *d;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    char msg[512];

    if (depth > MAX_DEPTH) {
        snprintf(msg, sizeof msg, "%s: folders nested more than %d deep: not searched", dir,
                 MAX_DEPTH);
        return add(f, dir, rel, BNF_ERR_IO, msg);
    }
    if (!(d = opendir(dir))) {
        snprintf(msg, sizeof msg, "%s: cannot read the folder: %s", dir, strerror(errno));
        return add(f, dir, rel, BNF_ERR_IO, msg);
    }
    /* names first, then each in order: the folder is closed before going down */
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            size_t c2 = cap ? cap * 2 : 32;
            char **grown = bnf_realloc(names, c2 * sizeof *grown);
            if (!grown) {
                rc = -1;
                break;
            }
            names = grown;
            cap = c2;
        }
        if (!(names[n] = bnf_strdup(de->d_name))) {
            rc = -1;
            break;
        }
        n++;
    }
    closedir(d);
    if (names)
        qsort(names, n, sizeof *names, cmp_names);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *path = join(dir, names[i]), *sub = *rel ? join(rel, names[i]) : bnf_strdup(names[i]);
        struct stat st;
        if (!path || !sub) {
            rc = -1;
        } else if (excluded(f->o, names[i], path)) {
            ; /* pruned */
        } else if (lstat(path, &st) != 0) {
            snprintf(msg, sizeof msg, "%s: %s", path, strerror(errno));
            rc = add(f, path, sub, BNF_ERR_IO, msg);
        } else if (S_ISDIR(st.st_mode)) {
            if (!(f->has_skip && st.st_dev == f->skip_dev && st.st_ino == f->skip_ino))
                rc = search(f, path, sub, depth + 1, found);
        } else if (ends_with_onnx(names[i]) &&
                   (S_ISREG(st.st_mode) ||
                    (S_ISLNK(st.st_mode) && stat(path, &st) == 0 && S_ISREG(st.st_mode)))) {
            rc = add(f, path, sub, BNF_OK, NULL);
            *found += rc == 0;
        }
        bnf_free(path);
        bnf_free(sub);
    }
    for (size_t i = 0; i < n; i++)
        bnf_free(names[i]);
    bnf_free(names);
    return rc;
}

static int cmp_found(const void *a, const void *b)
{
    return strcmp(((const bnf_found *)a)->path, ((const bnf_found *)b)->path);
}

void bnf_found_list_release(bnf_found_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        bnf_free(l->items[i].path);
        bnf_free(l->items[i].rel);
        bnf_free(l->items[i].message);
    }
    bnf_free(l->items);
    l->items = NULL;
    l->n = 0;
}

/* A file's identity, for dedupe. */
typedef struct {
    dev_t dev;
    ino_t ino;
    size_t index;
    int known;
} identity;

static int cmp_identity(const void *a, const void *b)
{
    const identity *x = a, *y = b;
    if (x->known != y->known)
        return x->known - y->known;
    if (x->dev != y->dev)
        return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino)
        return x->ino < y->ino ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Keeps the first (in path order) of entries that name one path, or one file
 * (device and inode) under two paths.  -1 when out of memory. */
static int dedupe(bnf_found_list *l)
{
    identity *id = l->n ? bnf_calloc(l->n, sizeof *id) : NULL;
    unsigned char *drop = l->n ? bnf_calloc(l->n, 1) : NULL;
    size_t kept = 0;
    if (l->n && (!id || !drop)) {
        bnf_free(id);
        bnf_free(drop);
        return -1;
    }
    for (size_t i = 0; i < l->n; i++) {
        struct stat st;
        id[i].index = i;
        if (l->items[i].status == BNF_OK && stat(l->items[i].path, &st) == 0) {
            id[i].known = 1;
            id[i].dev = st.st_dev;
            id[i].ino = st.st_ino;
        }
        if (i && !strcmp(l->items[i - 1].path, l->items[i].path))
            drop[i] = 1;
    }
    if (l->n)
        qsort(id, l->n, sizeof *id, cmp_identity);
    for (size_t i = 1; i < l->n; i++)
        if (id[i].known && id[i - 1].known && id[i].dev == id[i - 1].dev &&
            id[i].ino == id[i - 1].ino)
            drop[id[i].index] = 1;
    for (size_t i = 0; i < l->n; i++) {
        bnf_found *e = &l->items[i];
        if (drop[i]) {
            bnf_free(e->path);
            bnf_free(e->rel);
            bnf_free(e->message);
        } else {
            l->items[kept++] = *e;
        }
    }
    l->n = kept;
    bnf_free(id);
    bnf_free(drop);
    return 0;
}

bnf_status bnf_find_models(const char *const *paths, size_t n_paths, const bnf_find_options *o,
                           bnf_found_list *out, bnf_err *err)
{
    finder f = {out, 0, o, 0, 0, 0};
    struct stat st;

    out->items = NULL;
    out->n = 0;
    if (!paths && n_paths)
        return bnf_fail(err, BNF_ERR_USAGE, "no paths");
    if (o && o->skip_dir && stat(o->skip_dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        f.has_skip = 1;
        f.skip_dev = st.st_dev;
        f.skip_ino = st.st_ino;
    }
    for (size_t i = 0; i < n_paths; i++) {
        const char *p = paths[i];
        size_t len = strlen(p), found = 0;
        char *base, *name;
        int rc;
        if (!len) {
            if (add(&f, p, p, BNF_ERR_IO, "'': no such file or folder"))
                goto nomem;
            continue;
        }
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) { /* a model, whatever it is */
            name = strrchr(p, '/');
            if (add(&f, p, name && name[1] ? name + 1 : p, BNF_OK, NULL))
                goto nomem;
            continue;
        }
        if (!(base = bnf_strdup(p)))
            goto nomem;
        while (len > 1 && base[len - 1] == '/') /* "models/" is "models" */
            base[--len] = '\0';
        while (!strncmp(base, "./", 2) && base[2]) /* "./models" is "models" */
            memmove(base, base + 2, strlen(base + 2) + 1);
        rc = search(&f, base, "", 0, &found);
        if (!rc && !found) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s: no model (*.onnx) in this folder%s", base,
                     o && o->n_exclude ? " that --exclude leaves" : "");
            rc = add(&f, base, "", BNF_ERR_IO, msg);
        }
        bnf_free(base);
        if (rc)
            goto nomem;
    }
    if (out->n)
        qsort(out->items, out->n, sizeof *out->items, cmp_found);
    if (dedupe(out))
        goto nomem;
    return BNF_OK;
nomem:
    bnf_found_list_release(out);
    return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
}
