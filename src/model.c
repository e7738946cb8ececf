/* model.c: reading and writing model files.
 *
 * Loading reads the whole file and unpacks it with protobuf-c; the bytes are
 * kept so that a model no pass changed is written back byte for byte.  Saving
 * is atomic: a temporary file beside the destination, fsync, rename; on any
 * failure the temporary file is removed and the destination is untouched. */
#define _GNU_SOURCE /* O_TMPFILE */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MODEL_BYTES ((size_t)INT32_MAX) /* one protobuf message; larger: external data */

void bnf_model_free(bnf_model *m)
{
    if (!m)
        return;
    if (m->proto)
        onnx__model_proto__free_unpacked(m->proto, &bnf_pbc_allocator);
    bnf_free(m->bytes);
    bnf_free(m->path);
    bnf_free(m->dir);
    bnf_free(m);
}

/* protobuf-c allocations, counted against a budget; plain malloc underneath,
 * so the unpacked model is freed (and edited) like any other. */
typedef struct {
    uint64_t used, budget;
    int out_of_memory; /* an allocation failed within the budget */
    int over;          /* an allocation was refused: over the budget */
} budget;

static void *budget_alloc(void *data, size_t size)
{
    budget *b = data;
    void *p;
    if (size > b->budget - b->used) {
        b->over = 1;
        return NULL;
    }
    b->used += size;
    if (!(p = bnf_malloc(size)))
        b->out_of_memory = 1;
    return p;
}

static void budget_free(void *data, void *p)
{
    (void)data;
    bnf_free(p);
}

uint64_t bnf_default_max_memory(size_t file_size)
{
    return 256ull * 1024 * 1024 + 4ull * file_size;
}

bnf_status bnf_model_from_bytes(uint8_t *bytes, size_t n, const char *path, const char *dir,
                                uint64_t max_memory, bnf_model **out, bnf_err *err)
{
    const char *what = path ? path : "<memory>";
    bnf_model *m = bnf_calloc(1, sizeof *m);
    uint64_t estimate = 0;
    budget b = {0, max_memory ? max_memory : bnf_default_max_memory(n), 0, 0};
    ProtobufCAllocator alloc = {budget_alloc, budget_free, &b};
    bnf_status rc;

    *out = NULL;
    if (!m) {
        bnf_free(bytes);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    m->bytes = bytes;
    m->n_bytes = n;
    if ((path && !(m->path = bnf_strdup(path))) || (dir && !(m->dir = bnf_strdup(dir)))) {
        bnf_model_free(m);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    if (n == 0) {
        bnf_model_free(m);
        return bnf_fail(err, BNF_ERR_INVALID, "%s: empty file, not an ONNX model", what);
    }
    if ((rc = bnf_wire_precheck(bytes, n, what, &estimate, err))) {
        bnf_model_free(m);
        return rc;
    }
    if (estimate > b.budget) {
        bnf_model_free(m);
        return bnf_fail(err, BNF_ERR_UNSUPPORTED,
                        "%s: parsing would take about %llu MiB, over the limit of %llu MiB "
                        "(--max-memory)", what, (unsigned long long)(estimate >> 20),
                        (unsigned long long)(b.budget >> 20));
    }
    m->proto = onnx__model_proto__unpack(&alloc, n, bytes);
    if (!m->proto) {
        int over = b.over;
        bnf_model_free(m);
        if (b.out_of_memory)
            return bnf_fail(err, BNF_ERR_NOMEM, "%s: out of memory while parsing", what);
        if (over)
            return bnf_fail(err, BNF_ERR_UNSUPPORTED,
                            "%s: parsing ran over the memory limit of %llu MiB (--max-memory)",
                            what, (unsigned long long)(b.budget >> 20));
        return bnf_fail(err, BNF_ERR_INVALID,
                        "%s: not an ONNX model (the protobuf does not parse as a ModelProto)",
                        what);
    }
    if (!m->proto->graph) {
        bnf_model_free(m);
        return bnf_fail(err, BNF_ERR_INVALID, "%s: the model has no graph", what);
    }
    if ((rc = bnf_model_validate(m, err))) {
        if (err && path && strncmp(err->msg, path, strlen(path)) != 0)
            bnf_err_prefix(err, path);
        bnf_model_free(m);
        return rc;
    }
    *out = m;
    return BNF_OK;
}

bnf_status bnf_model_load_buffer(const void *data, size_t size, const char *base_dir,
                                 bnf_model **out, bnf_err *err)
{
    uint8_t *copy = bnf_malloc(size ? size : 1);
    *out = NULL;
    if (!copy)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    memcpy(copy, data, size);
    return bnf_model_from_bytes(copy, size, NULL, base_dir, 0, out, err);
}

/* The canonical folder of a file path (which need not exist itself). */
static char *folder_of(const char *path)
{
    char *tmp = bnf_strdup(path), *real;
    if (!tmp)
        return NULL;
    real = bnf_realpath(dirname(tmp));
    bnf_free(tmp);
    return real;
}

bnf_status bnf_model_load(const char *path, bnf_model **out, bnf_err *err)
{
    return bnf_model_open(path, NULL, out, err);
}

bnf_status bnf_model_open(const char *path, const bnf_load_options *opts, bnf_model **out,
                          bnf_err *err)
{
    int fd;
    struct stat st;
    uint8_t *bytes = NULL;
    char *dir = NULL;
    size_t done = 0;
    bnf_status rc;

    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return bnf_fail(err, BNF_ERR_IO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = bnf_fail(err, BNF_ERR_IO, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = bnf_fail(err, BNF_ERR_IO, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > MAX_MODEL_BYTES) {
        rc = bnf_fail(err, BNF_ERR_UNSUPPORTED,
                      "%s: %lld bytes; a model file over 2 GiB must keep its weights as "
                      "external data", path, (long long)st.st_size);
        goto out;
    }
    bytes = bnf_malloc(st.st_size ? (size_t)st.st_size : 1);
    if (!bytes) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "%s: out of memory reading %lld bytes", path,
                      (long long)st.st_size);
        goto out;
    }
    while (done < (size_t)st.st_size) {
        ssize_t r = read(fd, bytes + done, (size_t)st.st_size - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = bnf_fail(err, BNF_ERR_IO, "%s: %s", path,
                          r == 0 ? "file shrank while being read" : strerror(errno));
            goto out;
        }
        done += (size_t)r;
    }
    dir = folder_of(path);
    if (!dir) {
        rc = bnf_fail(err, BNF_ERR_IO, "%s: cannot resolve its folder: %s", path, strerror(errno));
        goto out;
    }
    rc = bnf_model_from_bytes(bytes, done, path, dir, opts ? opts->max_memory : 0, out, err);
    bytes = NULL;
out:
    close(fd);
    bnf_free(bytes);
    bnf_free(dir);
    return rc;
}

/* ---- external data when the output lives elsewhere ----------------------------- */

static bnf_status inline_tensor(bnf_model *m, Onnx__TensorProto *t, bnf_err *err)
{
    uint8_t *data;
    size_t size;
    bnf_status rc;
    if (!bnf_tensor_is_external(t))
        return BNF_OK;
    if ((rc = bnf_tensor_read_external(m, t, &data, &size, err)))
        return rc;
    for (size_t i = 0; i < t->n_external_data; i++)
        onnx__string_string_entry_proto__free_unpacked(t->external_data[i], &bnf_pbc_allocator);
    bnf_free(t->external_data);
    t->external_data = NULL;
    t->n_external_data = 0;
    t->has_data_location = 0;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__DEFAULT;
    bnf_free(t->raw_data.data);
    t->raw_data.data = data;
    t->raw_data.len = size;
    t->has_raw_data = 1;
    m->changed = 1;
    return BNF_OK;
}

static bnf_status inline_graph(bnf_model *m, Onnx__GraphProto *g, int depth, bnf_err *err)
{
    bnf_status rc;
    if (depth > 64)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED, "subgraphs nested too deep");
    for (size_t i = 0; i < g->n_initializer; i++)
        if ((rc = inline_tensor(m, g->initializer[i], err)))
            return rc;
    for (size_t i = 0; i < g->n_node; i++) {
        Onnx__NodeProto *n = g->node[i];
        for (size_t a = 0; a < n->n_attribute; a++) {
            Onnx__AttributeProto *at = n->attribute[a];
            if (at->t && (rc = inline_tensor(m, at->t, err)))
                return rc;
            for (size_t k = 0; k < at->n_tensors; k++)
                if ((rc = inline_tensor(m, at->tensors[k], err)))
                    return rc;
            if (at->g && (rc = inline_graph(m, at->g, depth + 1, err)))
                return rc;
            for (size_t k = 0; k < at->n_graphs; k++)
                if ((rc = inline_graph(m, at->graphs[k], depth + 1, err)))
                    return rc;
        }
    }
    return BNF_OK;
}

bnf_status bnf_model_serialize(bnf_model *m, uint8_t **data, size_t *size, bnf_err *err)
{
    size_t n = onnx__model_proto__get_packed_size(m->proto);
    uint8_t *buf;
    *data = NULL;
    *size = 0;
    if (n > MAX_MODEL_BYTES)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED,
                        "the model would be %zu bytes; over 2 GiB it must use external data", n);
    buf = bnf_malloc(n ? n : 1);
    if (!buf)
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory serialising %zu bytes", n);
    if (onnx__model_proto__pack(m->proto, buf) != n) {
        bnf_free(buf);
        return bnf_fail(err, BNF_ERR_INVALID, "protobuf-c packed a different size than it planned");
    }
    *data = buf;
    *size = n;
    return BNF_OK;
}

static bnf_status write_all(int fd, const uint8_t *p, size_t n, const char *what, bnf_err *err)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return bnf_fail(err, BNF_ERR_IO, "%s: write failed: %s", what,
                            w == 0 ? "no progress" : strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return BNF_OK;
}

/* An unnamed file in `dir` (O_TMPFILE): a process killed while writing it
 * leaves nothing behind.  -1 where the filesystem cannot. */
static int open_unnamed(const char *dir, mode_t mode)
{
#ifdef O_TMPFILE
    return open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
#else
    (void)dir;
    (void)mode;
    errno = EOPNOTSUPP;
    return -1;
#endif
}

/* Gives the unnamed file fd the name tmp (made unique). */
static int name_unnamed(int fd, char *tmp, size_t len, const char *dir, const char *base)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    for (unsigned k = 0; k < 100; k++) {
        snprintf(tmp, len, "%s/.%s.bnfold-%ld-%u", dir, base, (long)getpid(), k);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

bnf_status bnf_write_atomic(const char *path, const uint8_t *bytes, size_t n, bnf_err *err)
{
    char *dir = NULL, *tmp = NULL;
    const char *base;
    size_t len;
    int fd = -1, named = 0;
    mode_t mask;
    bnf_status rc;

    if (strcmp(path, "-") == 0)
        return write_all(STDOUT_FILENO, bytes, n, "stdout", err);
    dir = folder_of(path);
    if (!dir)
        return bnf_fail(err, BNF_ERR_IO, "%s: cannot resolve its folder: %s", path,
                        strerror(errno));
    base = strrchr(path, '/');
    base = base ? base + 1 : path;
    len = strlen(dir) + strlen(base) + 48;
    tmp = bnf_malloc(len);
    if (!tmp) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    mask = umask(0);
    umask(mask);
    /* Write to an unnamed file, name it only once it is complete, then rename it
     * over the destination; where unnamed files are not available, a named
     * temporary file that any failure removes. */
    fd = open_unnamed(dir, 0666 & ~mask);
    if (fd < 0) {
        snprintf(tmp, len, "%s/.%s.bnfold-XXXXXX", dir, base);
        fd = mkstemp(tmp);
        if (fd < 0) {
            rc = bnf_fail(err, BNF_ERR_IO, "%s: cannot create a temporary file in %s: %s", path,
                          dir, strerror(errno));
            goto out;
        }
        named = 1;
        if (fchmod(fd, 0666 & ~mask) != 0) {
            rc = bnf_fail(err, BNF_ERR_IO, "%s: chmod: %s", tmp, strerror(errno));
            goto out;
        }
    }
    if ((rc = write_all(fd, bytes, n, path, err)))
        goto out;
    if (fsync(fd) != 0) {
        rc = bnf_fail(err, BNF_ERR_IO, "%s: fsync failed: %s", path, strerror(errno));
        goto out;
    }
    if (!named) {
        if (name_unnamed(fd, tmp, len, dir, base) != 0) {
            rc = bnf_fail(err, BNF_ERR_IO, "%s: cannot name the written file in %s: %s", path,
                          dir, strerror(errno));
            goto out;
        }
        named = 1;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = bnf_fail(err, BNF_ERR_IO, "%s: close failed: %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = bnf_fail(err, BNF_ERR_IO, "%s: rename failed: %s", path, strerror(errno));
        goto out;
    }
    named = 0;
    rc = BNF_OK;
out:
    if (fd >= 0)
        close(fd);
    if (named)
        unlink(tmp);
    bnf_free(tmp);
    bnf_free(dir);
    return rc;
}

void bnf_model_allow_in_place(bnf_model *m)
{
    m->in_place = 1;
}

bnf_status bnf_model_check_output(const bnf_model *m, const char *path, bnf_err *err)
{
    struct stat in_st, out_st, dir_st;
    char *dir;
    if (strcmp(path, "-") == 0)
        return BNF_OK;
    dir = folder_of(path);
    if (!dir)
        return bnf_fail(err, BNF_ERR_IO, "%s: cannot resolve its folder: %s", path,
                        strerror(errno));
    if (stat(dir, &dir_st) != 0 || !S_ISDIR(dir_st.st_mode)) {
        bnf_free(dir);
        return bnf_fail(err, BNF_ERR_IO, "%s: its folder is not a directory", path);
    }
    bnf_free(dir);
    if (stat(path, &out_st) == 0 && S_ISDIR(out_st.st_mode))
        return bnf_fail(err, BNF_ERR_IO, "%s: is a directory", path);
    if (lstat(path, &out_st) == 0 && !S_ISREG(out_st.st_mode) && !S_ISLNK(out_st.st_mode))
        return bnf_fail(err, BNF_ERR_IO, "%s: exists and is not a regular file (a device or "
                        "pipe cannot be replaced atomically; use -o - for stdout)", path);
    if (!m->in_place && m->path && stat(m->path, &in_st) == 0 && stat(path, &out_st) == 0 &&
        in_st.st_dev == out_st.st_dev && in_st.st_ino == out_st.st_ino)
        return bnf_fail(err, BNF_ERR_USAGE,
                        "%s: refusing to overwrite the input model (--in-place does that, "
                        "atomically)", path);
    return BNF_OK;
}

bnf_status bnf_model_save(bnf_model *m, const char *path, bnf_err *err)
{
    uint8_t *packed = NULL;
    const uint8_t *bytes = m->bytes;
    size_t n = m->n_bytes;
    char *dir = NULL;
    int to_stdout = strcmp(path, "-") == 0;
    bnf_status rc = BNF_OK;

    if ((rc = bnf_model_check_output(m, path, err)))
        return rc;
    if (!to_stdout && !(dir = folder_of(path)))
        return bnf_fail(err, BNF_ERR_IO, "%s: cannot resolve its folder: %s", path,
                        strerror(errno));
    /* Unchanged tensors stay in the input's data files; an output elsewhere
     * could not find them, so they move inline. */
    if (m->dir && (to_stdout || strcmp(dir, m->dir) != 0) &&
        (rc = inline_graph(m, m->proto->graph, 0, err)))
        goto out;
    if (m->changed) {
        if ((rc = bnf_model_serialize(m, &packed, &n, err)))
            goto out;
        bytes = packed;
    }
    rc = bnf_write_atomic(path, bytes, n, err);
out:
    bnf_free(packed);
    bnf_free(dir);
    return rc;
}
