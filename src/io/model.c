/* model.c: reading and writing model files.
 *
 * Loading maps the file and unpacks its skeleton (skeleton.c) with protobuf-c:
 * the weights stay in the mapping, read in place.  The file's bytes are kept
 * so that a model no pass changed is written back byte for byte.  Saving is in
 * writer.c. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
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
        onnx__model_proto__free_unpacked(m->proto, bnf_model_alloc(m));
    bnf_mapped_drop(m); /* after the proto: its raw_data may point into the regions */
    if (m->fd >= 0)
        close(m->fd);
    if (m->spill_fd >= 0)
        close(m->spill_fd);
    for (size_t i = 0; i < m->n_retired; i++)
        close(m->retired_fds[i]);
    bnf_free(m->heap);
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

static bnf_model *model_new(const char *path, const char *dir)
{
    bnf_model *m = bnf_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    bnf_model_alloc_init(m);
    m->fd = -1;
    m->spill_fd = -1;
    if ((path && !(m->path = bnf_strdup(path))) || (dir && !(m->dir = bnf_strdup(dir)))) {
        bnf_model_free(m);
        return NULL;
    }
    return m;
}

static bnf_status find_external(void *found, Onnx__TensorProto *t, int initializer, bnf_err *err)
{
    (void)err;
    (void)initializer;
    *(int *)found |= bnf_proto_is_external(t);
    return BNF_OK;
}

bnf_status bnf_model_has_external(Onnx__ModelProto *p, int *found, bnf_err *err)
{
    *found = 0;
    return bnf_walk_tensors(p, find_external, found, err);
}

/* Parses m->data: pre-check, skeleton (the weights stay where they are),
 * protobuf-c within the memory budget, validation. */
static bnf_status parse(bnf_model *m, uint64_t max_memory, bnf_err *err)
{
    const char *what = m->path ? m->path : "<memory>";
    uint64_t estimate = 0;
    budget b = {0, max_memory ? max_memory : bnf_default_max_memory(m->n_data), 0, 0};
    ProtobufCAllocator alloc = {budget_alloc, budget_free, &b};
    bnf_skeleton sk;
    bnf_status rc;

    if (m->n_data == 0)
        return bnf_fail(err, BNF_ERR_INVALID, "%s: empty file, not an ONNX model", what);
    if ((rc = bnf_wire_precheck(m->data, m->n_data, what, &estimate, err)))
        return rc;
    if ((rc = bnf_skeleton_make(m->data, m->n_data, &sk, err)))
        return rc;
    estimate -= estimate > sk.stripped_bytes ? sk.stripped_bytes : estimate;
    if (estimate > b.budget) {
        bnf_skeleton_release(&sk);
        return bnf_fail(err, BNF_ERR_UNSUPPORTED,
                        "%s: parsing would take about %.1f MiB, over the limit of %.1f MiB "
                        "(--max-memory)", what, (double)estimate / (1 << 20),
                        (double)b.budget / (1 << 20));
    }
    m->proto = sk.bytes ? onnx__model_proto__unpack(&alloc, sk.n_bytes, sk.bytes)
                        : onnx__model_proto__unpack(&alloc, m->n_data, m->data);
    if (!m->proto) {
        bnf_skeleton_release(&sk);
        if (b.out_of_memory)
            return bnf_fail(err, BNF_ERR_NOMEM, "%s: out of memory while parsing", what);
        if (b.over)
            return bnf_fail(err, BNF_ERR_UNSUPPORTED,
                            "%s: parsing ran over the memory limit of %.1f MiB (--max-memory)",
                            what, (double)b.budget / (1 << 20));
        return bnf_fail(err, BNF_ERR_INVALID,
                        "%s: not an ONNX model (the protobuf does not parse as a ModelProto)",
                        what);
    }
    if (!m->proto->graph) {
        bnf_skeleton_release(&sk);
        return bnf_fail(err, BNF_ERR_INVALID, "%s: the model has no graph", what);
    }
    rc = bnf_skeleton_attach(&sk, m->data, m->proto->graph, err);
    bnf_skeleton_release(&sk);
    if (rc)
        return rc;
    if ((rc = bnf_model_validate(m, err))) {
        if (err && m->path && strncmp(err->msg, m->path, strlen(m->path)) != 0)
            bnf_err_prefix(err, m->path);
        return rc;
    }
    return bnf_model_has_external(m->proto, &m->external, err);
}

bnf_status bnf_model_from_bytes(uint8_t *bytes, size_t n, const char *path, const char *dir,
                                uint64_t max_memory, bnf_model **out, bnf_err *err)
{
    bnf_model *m = model_new(path, dir);
    bnf_status rc;

    *out = NULL;
    if (!m) {
        bnf_free(bytes);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    m->heap = bytes;
    m->data = bytes;
    m->n_data = n;
    if (bnf_mapped_heap(m, bytes, n) != 0) {
        bnf_model_free(m);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    if ((rc = parse(m, max_memory, err))) {
        bnf_model_free(m);
        return rc;
    }
    *out = m;
    return BNF_OK;
}

bnf_status bnf_model_clone(const bnf_model *src, bnf_model **out, bnf_err *err)
{
    bnf_model *m;
    bnf_status rc;
    *out = NULL;
    if (src->changed) { /* its proto is the truth: serialise it */
        uint8_t *bytes;
        size_t n;
        if ((rc = bnf_model_serialize((bnf_model *)src, &bytes, &n, err)))
            return rc;
        return bnf_model_from_bytes(bytes, n, src->path, src->dir, 0, out, err);
    }
    /* unchanged: parse the same bytes again; the weights stay in src's mapping,
     * so src must outlive the clone */
    if (!(m = model_new(src->path, src->dir)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    m->data = src->data;
    m->n_data = src->n_data;
    m->lender = src;
    if ((rc = parse(m, 0, err))) {
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
bnf_status bnf_model_load(const char *path, bnf_model **out, bnf_err *err)
{
    return bnf_model_open(path, NULL, out, err);
}

bnf_status bnf_model_open(const char *path, const bnf_load_options *opts, bnf_model **out,
                          bnf_err *err)
{
    struct stat st;
    char *dir = NULL;
    bnf_model *m = NULL;
    bnf_status rc;
    int fd;

    *out = NULL;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return bnf_fail(err, BNF_ERR_IO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = bnf_fail(err, BNF_ERR_IO, "%s: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = bnf_fail(err, BNF_ERR_IO, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)st.st_size > MAX_MODEL_BYTES) {
        rc = bnf_fail(err, BNF_ERR_UNSUPPORTED,
                      "%s: %lld bytes; a model file over 2 GiB must keep its weights as "
                      "external data", path, (long long)st.st_size);
        goto fail;
    }
    if (!(dir = bnf_folder_of(path))) {
        rc = bnf_fail(err, BNF_ERR_IO, "%s: cannot resolve its folder: %s", path, strerror(errno));
        goto fail;
    }
    if (!(m = model_new(path, dir))) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto fail;
    }
    bnf_free(dir);
    dir = NULL;
    m->fd = fd;
    fd = -1;
    m->n_data = (size_t)st.st_size;
    if (m->n_data) {
        /* Mapped, not read: the weights are read where they lie, as the folds
         * need them, and copied file to file when written back. */
        if (!(m->map = bnf_mapped_file(m, m->fd, m->n_data))) {
            rc = bnf_fail(err, errno == ENOMEM ? BNF_ERR_NOMEM : BNF_ERR_IO, "%s: cannot map "
                          "%zu bytes: %s", path, m->n_data, strerror(errno));
            goto fail;
        }
        m->data = m->map;
    }
    if ((rc = parse(m, opts ? opts->max_memory : 0, err)))
        goto fail;
    bnf_mapped_release(m); /* parsing touched the headers only, mostly */
    *out = m;
    return BNF_OK;
fail:
    if (fd >= 0)
        close(fd);
    bnf_free(dir);
    bnf_model_free(m);
    return rc;
}

