/* writer.c: writing model files.
 *
 * The model is packed by protobuf-c straight into the output file through a
 * small buffer; tensor bytes that live in a mapped file (the input, or a
 * fold's spill file, see mapped.c) are copied file to file (copy_file_range,
 * else sendfile) without passing through the process.  A model no pass
 * changed is copied whole.
 *
 * A model with external data gets its own data file beside the output,
 * <output name>.data: every tensor that was external, and every other
 * initializer of 1 KiB or more, goes there (unchanged ones copied file to
 * file; a Constant node's value stays in the model, where every runtime reads
 * it); the input's data files are only read.
 *
 * Every file is written unnamed (O_TMPFILE) or under a temporary name, fsync'd,
 * and renamed over its destination only once complete: the data file first,
 * then the model.  On failure nothing is left and the destination is
 * untouched. */
#define _GNU_SOURCE /* O_TMPFILE, copy_file_range */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MODEL_BYTES ((size_t)INT32_MAX) /* one protobuf message */
#define SINK_BYTES (1u << 20)
#define COPY_MIN_BYTES (64 * 1024)   /* smaller pieces are cheaper to memcpy */
#define EXTERNAL_MIN_BYTES 1024      /* onnx's own threshold for external data */
#define DATA_ALIGN 4096

/* ---- low-level writing ---------------------------------------------------- */

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

/* Copies len bytes at offset off of in to out's current position, in the
 * kernel.  0 when done, 1 when neither call can (then nothing was written),
 * -1 on a write error (errno). */
static int copy_range(int in, uint64_t off, int out, uint64_t len)
{
    loff_t o = (loff_t)off;
    uint64_t left = len;
    int use_sendfile = 0;
    while (left) {
        size_t chunk = left > (1u << 30) ? (1u << 30) : (size_t)left;
        ssize_t w = use_sendfile ? sendfile(out, in, &o, chunk)
                                 : copy_file_range(in, &o, out, NULL, chunk, 0);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && left == len && !use_sendfile &&
            (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP ||
             errno == EBADF || errno == EPERM)) {
            use_sendfile = 1;
            continue;
        }
        if (w < 0 && left == len && use_sendfile && (errno == EINVAL || errno == ENOSYS))
            return 1;
        if (w <= 0) {
            if (w == 0)
                errno = EIO; /* the source shrank under us */
            return -1;
        }
        left -= (uint64_t)w;
    }
    return 0;
}

/* Starts the disk writing of what was written to fd since *from, every few
 * MiB, so that the final fsync has little left to wait for. */
#define KICK_BYTES (8u << 20)
static void kick_writeback(int fd, uint64_t *from, uint64_t to)
{
    if (to - *from < KICK_BYTES)
        return;
    sync_file_range(fd, (off64_t)*from, (off64_t)(to - *from), SYNC_FILE_RANGE_WRITE);
    *from = to; /* errors (a pipe, say) are the final fsync's to report */
}

/* protobuf-c's output, streamed to a file. */
typedef struct {
    ProtobufCBuffer base;
    const bnf_model *m;
    int fd;
    uint8_t *buf;
    size_t used;
    uint64_t written, flushed, kicked;
    const char *what;
    bnf_status rc;
    bnf_err *err;
} sink;

static void sink_flush(sink *s)
{
    if (s->rc == BNF_OK && s->used)
        s->rc = write_all(s->fd, s->buf, s->used, s->what, s->err);
    s->flushed += s->used;
    s->used = 0;
    kick_writeback(s->fd, &s->kicked, s->flushed);
}

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data)
{
    sink *s = (sink *)b;
    int src;
    uint64_t off;
    if (s->rc)
        return;
    s->written += len;
    if (len >= COPY_MIN_BYTES && bnf_mapped_where(s->m, data, len, &src, &off)) {
        int r;
        sink_flush(s);
        if (s->rc)
            return;
        if ((r = copy_range(src, off, s->fd, len)) < 0)
            s->rc = bnf_fail(s->err, BNF_ERR_IO, "%s: write failed: %s", s->what,
                             strerror(errno));
        if (r <= 0) {
            s->flushed += len;
            kick_writeback(s->fd, &s->kicked, s->flushed);
            return;
        }
    }
    if (len > SINK_BYTES - s->used) {
        sink_flush(s);
        if (len >= SINK_BYTES) {
            if (s->rc == BNF_OK)
                s->rc = write_all(s->fd, data, len, s->what, s->err);
            s->flushed += len;
            kick_writeback(s->fd, &s->kicked, s->flushed);
            return;
        }
    }
    memcpy(s->buf + s->used, data, len);
    s->used += len;
}

static bnf_status pack_to(const bnf_model *m, int fd, const char *what, bnf_err *err)
{
    sink s = {{sink_append}, m, fd, NULL, 0, 0, 0, 0, what, BNF_OK, err};
    size_t n = onnx__model_proto__get_packed_size(m->proto);
    if (n > MAX_MODEL_BYTES)
        return bnf_fail(err, BNF_ERR_UNSUPPORTED,
                        "the model would be %zu bytes; over 2 GiB it must use external data", n);
    if (!(s.buf = bnf_malloc(SINK_BYTES)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    onnx__model_proto__pack_to_buffer(m->proto, &s.base);
    sink_flush(&s);
    bnf_free(s.buf);
    if (s.rc == BNF_OK && s.written != n)
        s.rc = bnf_fail(err, BNF_ERR_INVALID, "protobuf-c wrote a different size than it planned");
    return s.rc;
}

/* ---- files that appear only once complete ------------------------------------- */

/* A file being written to a temporary place, renamed over `path` on commit. */
typedef struct {
    const char *path;
    char *dir, *tmp;
    int fd, named;
} out_file;

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

static const char *base_of(const char *path)
{
    const char *base = strrchr(path, '/');
    return base ? base + 1 : path;
}

static bnf_status out_open(out_file *f, const char *path, bnf_err *err)
{
    mode_t mask;
    size_t len;
    memset(f, 0, sizeof *f);
    f->path = path;
    f->fd = -1;
    if (!(f->dir = bnf_folder_of(path)))
        return bnf_fail(err, BNF_ERR_IO, "%s: cannot resolve its folder: %s", path,
                        strerror(errno));
    len = strlen(f->dir) + strlen(base_of(path)) + 48;
    if (!(f->tmp = bnf_malloc(len)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    mask = umask(0);
    umask(mask);
    /* Write to an unnamed file, name it only once it is complete, then rename it
     * over the destination; where unnamed files are not available, a named
     * temporary file that any failure removes. */
    if ((f->fd = open_unnamed(f->dir, 0666 & ~mask)) >= 0)
        return BNF_OK;
    snprintf(f->tmp, len, "%s/.%s.bnfold-XXXXXX", f->dir, base_of(path));
    if ((f->fd = mkstemp(f->tmp)) < 0)
        return bnf_fail(err, BNF_ERR_IO, "%s: cannot create a temporary file in %s: %s", path,
                        f->dir, strerror(errno));
    f->named = 1;
    if (fchmod(f->fd, 0666 & ~mask) != 0)
        return bnf_fail(err, BNF_ERR_IO, "%s: chmod: %s", f->tmp, strerror(errno));
    return BNF_OK;
}

/* Makes the written file durable and gives it its temporary name. */
static bnf_status out_finish(out_file *f, bnf_err *err)
{
    if (fsync(f->fd) != 0)
        return bnf_fail(err, BNF_ERR_IO, "%s: fsync failed: %s", f->path, strerror(errno));
    if (!f->named) {
        size_t len = strlen(f->dir) + strlen(base_of(f->path)) + 48;
        if (name_unnamed(f->fd, f->tmp, len, f->dir, base_of(f->path)) != 0)
            return bnf_fail(err, BNF_ERR_IO, "%s: cannot name the written file in %s: %s",
                            f->path, f->dir, strerror(errno));
        f->named = 1;
    }
    if (close(f->fd) != 0) {
        f->fd = -1;
        return bnf_fail(err, BNF_ERR_IO, "%s: close failed: %s", f->path, strerror(errno));
    }
    f->fd = -1;
    return BNF_OK;
}

static bnf_status out_commit(out_file *f, bnf_err *err)
{
    if (rename(f->tmp, f->path) != 0)
        return bnf_fail(err, BNF_ERR_IO, "%s: rename failed: %s", f->path, strerror(errno));
    f->named = 0;
    return BNF_OK;
}

/* Removes what is left of an uncommitted file. */
static void out_discard(out_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    if (f->named)
        unlink(f->tmp);
    bnf_free(f->tmp);
    bnf_free(f->dir);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

bnf_status bnf_write_atomic(const char *path, const uint8_t *bytes, size_t n, bnf_err *err)
{
    out_file f;
    bnf_status rc;
    if (strcmp(path, "-") == 0)
        return write_all(STDOUT_FILENO, bytes, n, "stdout", err);
    if (!(rc = out_open(&f, path, err)) && !(rc = write_all(f.fd, bytes, n, path, err)) &&
        !(rc = out_finish(&f, err)))
        rc = out_commit(&f, err);
    out_discard(&f);
    return rc;
}

/* ---- external data ----------------------------------------------------------- */

static bnf_status inline_tensor(void *ctx, Onnx__TensorProto *t, int initializer, bnf_err *err)
{
    bnf_model *m = ctx;
    uint8_t *data;
    size_t size;
    bnf_status rc;
    (void)initializer;
    if (!bnf_proto_is_external(t))
        return BNF_OK;
    if ((rc = bnf_proto_read_external(m, t, &data, &size, err)))
        return rc;
    for (size_t i = 0; i < t->n_external_data; i++)
        onnx__string_string_entry_proto__free_unpacked(t->external_data[i], bnf_model_alloc(m));
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

/* A tensor moved to the output's data file for the time of the writing. */
typedef struct {
    Onnx__TensorProto *t;
    Onnx__TensorProto saved;                /* its fields as they were */
    Onnx__StringStringEntryProto entry[3];  /* location, offset, length */
    Onnx__StringStringEntryProto *list[3];
    char offset[24], length[24];
} moved;

typedef struct {
    const bnf_model *m;
    const char *location;   /* the data file's name, relative to the output */
    out_file *data;
    int spill_fd;           /* the data file is m's spill file: its tensors stay put */
    moved *moved;
    size_t n_moved, cap_moved;
    uint64_t end;           /* bytes written to the data file */
} externalize;

static bnf_status move_tensor(void *ctx, Onnx__TensorProto *t, int initializer, bnf_err *err)
{
    externalize *x = ctx;
    int was_external = bnf_proto_is_external(t);
    uint64_t len = was_external ? bnf_proto_nbytes(t) : t->raw_data.len;
    uint64_t at = (x->end + DATA_ALIGN - 1) / DATA_ALIGN * DATA_ALIGN;
    static const uint8_t zeros[DATA_ALIGN];
    bnf_status rc;
    moved *mv;

    if (!was_external && (!initializer || !t->has_raw_data || len < EXTERNAL_MIN_BYTES))
        return BNF_OK; /* small, in typed fields, or a Constant's value: stays in the model */
    if (!was_external && x->spill_fd >= 0) { /* already in the data file? */
        int src;
        uint64_t off;
        if (bnf_mapped_where(x->m, t->raw_data.data, t->raw_data.len, &src, &off) &&
            src == x->spill_fd)
            at = off;
    }
    if (x->n_moved == x->cap_moved) {
        size_t cap = x->cap_moved ? 2 * x->cap_moved : 64;
        moved *grown = bnf_realloc(x->moved, cap * sizeof *grown);
        if (!grown)
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        x->moved = grown;
        x->cap_moved = cap;
    }
    if (at < x->end) {
        /* in the spill file that became the data file: written at fold time */
    } else if ((rc = write_all(x->data->fd, zeros, (size_t)(at - x->end), x->data->path,
                               err))) {
        return rc;
    } else if (was_external) {
        int fd, r;
        uint64_t off;
        if ((rc = bnf_proto_external_open(x->m, t, &fd, &off, &len, err)))
            return rc;
        r = copy_range(fd, off, x->data->fd, len);
        if (r > 0) { /* no in-kernel copy here: through a buffer */
            uint8_t *bytes;
            size_t size;
            close(fd);
            if ((rc = bnf_proto_read_external(x->m, t, &bytes, &size, err)))
                return rc;
            rc = write_all(x->data->fd, bytes, size, x->data->path, err);
            bnf_free(bytes);
            if (rc)
                return rc;
        } else {
            close(fd);
            if (r < 0)
                return bnf_fail(err, BNF_ERR_IO, "%s: write failed: %s", x->data->path,
                                strerror(errno));
        }
    } else {
        int src, r = 1;
        uint64_t off;
        if (bnf_mapped_where(x->m, t->raw_data.data, t->raw_data.len, &src, &off) &&
            (r = copy_range(src, off, x->data->fd, len)) < 0)
            return bnf_fail(err, BNF_ERR_IO, "%s: write failed: %s", x->data->path,
                            strerror(errno));
        if (r > 0 &&
            (rc = write_all(x->data->fd, t->raw_data.data, t->raw_data.len, x->data->path, err)))
            return rc;
    }
    mv = &x->moved[x->n_moved++];
    memset(mv, 0, sizeof *mv);
    mv->t = t;
    mv->saved = *t;
    snprintf(mv->offset, sizeof mv->offset, "%llu", (unsigned long long)at);
    snprintf(mv->length, sizeof mv->length, "%llu", (unsigned long long)len);
    {
        static char k_loc[] = "location", k_off[] = "offset", k_len[] = "length";
        char *keys[3] = {k_loc, k_off, k_len};
        char *values[3] = {(char *)x->location, mv->offset, mv->length};
        for (int k = 0; k < 3; k++) {
            onnx__string_string_entry_proto__init(&mv->entry[k]);
            mv->entry[k].key = keys[k];
            mv->entry[k].value = values[k];
            mv->list[k] = &mv->entry[k];
        }
    }
    t->external_data = mv->list;
    t->n_external_data = 3;
    t->has_data_location = 1;
    t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    t->has_raw_data = 0;
    t->raw_data.data = NULL;
    t->raw_data.len = 0;
    if (at + len > x->end)
        x->end = at + len;
    return BNF_OK;
}

/* Puts the moved tensors back as they were. */
static void restore(externalize *x)
{
    while (x->n_moved) {
        moved *mv = &x->moved[--x->n_moved];
        *mv->t = mv->saved;
    }
    bnf_free(x->moved);
    x->moved = NULL;
}

/* When the folds spilled their tensors to a file on the output's filesystem,
 * that file becomes the output's data file (named at commit): the folded
 * tensors are not copied again.  f->fd stays -1 when it cannot. */
static bnf_status adopt_spill(bnf_model *m, const char *location, out_file *f, bnf_err *err)
{
    struct stat spill_st, dir_st;
    size_t len;
    mode_t mask;
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (m->spill_fd < 0 || m->n_retired == sizeof m->retired_fds / sizeof m->retired_fds[0] ||
        fstat(m->spill_fd, &spill_st) != 0)
        return BNF_OK;
    f->path = location;
    if (!(f->dir = bnf_folder_of(location)))
        return bnf_fail(err, BNF_ERR_IO, "%s: cannot resolve its folder: %s", location,
                        strerror(errno));
    if (stat(f->dir, &dir_st) != 0 || dir_st.st_dev != spill_st.st_dev) {
        bnf_free(f->dir);
        f->dir = NULL;
        return BNF_OK; /* another filesystem: the tensors are copied */
    }
    len = strlen(f->dir) + strlen(base_of(location)) + 48;
    if (!(f->tmp = bnf_malloc(len)))
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    /* a descriptor of its own (out_finish closes it), writing after the tensors */
    if ((f->fd = dup(m->spill_fd)) < 0 || lseek(f->fd, (off_t)m->spill_end, SEEK_SET) < 0)
        return bnf_fail(err, BNF_ERR_IO, "%s: %s", location, strerror(errno));
    mask = umask(0);
    umask(mask);
    if (fchmod(f->fd, 0666 & ~mask) != 0)
        return bnf_fail(err, BNF_ERR_IO, "%s: chmod: %s", location, strerror(errno));
    return BNF_OK;
}

/* ---- saving ------------------------------------------------------------------------ */

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
    dir = bnf_folder_of(path);
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

/* The model's bytes to fd: the input copied whole when nothing changed. */
static bnf_status write_model(const bnf_model *m, int repack, int fd, const char *what,
                              bnf_err *err)
{
    if (!m->changed && !repack) {
        int r = m->fd >= 0 ? copy_range(m->fd, 0, fd, m->n_data) : 1;
        if (r < 0)
            return bnf_fail(err, BNF_ERR_IO, "%s: write failed: %s", what, strerror(errno));
        return r == 0 ? BNF_OK : write_all(fd, m->data, m->n_data, what, err);
    }
    return pack_to(m, fd, what, err);
}

bnf_status bnf_model_save(bnf_model *m, const char *path, bnf_err *err)
{
    int has_external = 0;
    out_file model_f, data_f;
    externalize x = {0};
    char *location = NULL;
    bnf_status rc;

    memset(&model_f, 0, sizeof model_f);
    memset(&data_f, 0, sizeof data_f);
    model_f.fd = data_f.fd = -1;
    if ((rc = bnf_model_check_output(m, path, err)))
        return rc;
    if (!(has_external = m->external) &&
        (rc = bnf_model_has_external(m->proto, &has_external, err)))
        return rc;
    if (strcmp(path, "-") == 0) { /* no data file beside stdout: the weights go inline */
        if (has_external && (rc = bnf_walk_tensors(m->proto, inline_tensor, m, err)))
            return rc;
        rc = write_model(m, 0, STDOUT_FILENO, "stdout", err);
        bnf_mapped_release(m);
        return rc;
    }
    if (has_external) {
        /* the output's own data file: <output name>.data, beside it */
        size_t n = strlen(path) + 6;
        if (!(location = bnf_malloc(n))) {
            rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
            goto out;
        }
        snprintf(location, n, "%s.data", path);
        x.m = m;
        x.location = base_of(location);
        x.data = &data_f;
        x.spill_fd = -1;
        if ((rc = adopt_spill(m, location, &data_f, err)))
            goto out;
        if (data_f.fd >= 0) { /* the folded tensors are in it already: add the rest */
            x.spill_fd = m->spill_fd;
            x.end = m->spill_end;
        } else if ((rc = out_open(&data_f, location, err))) {
            goto out;
        }
        if ((rc = bnf_walk_tensors(m->proto, move_tensor, &x, err)) ||
            (rc = out_finish(&data_f, err)))
            goto out;
    }
    if ((rc = out_open(&model_f, path, err)) || (rc = write_model(m, x.n_moved > 0, model_f.fd, path, err)) ||
        (rc = out_finish(&model_f, err)))
        goto out;
    if (has_external && (rc = out_commit(&data_f, err)))
        goto out;
    if (x.spill_fd >= 0) { /* the spill file is an output's now: spill elsewhere */
        m->retired_fds[m->n_retired++] = m->spill_fd;
        m->spill_fd = -1;
        m->spill_end = 0;
    }
    rc = out_commit(&model_f, err);
out:
    restore(&x);
    out_discard(&data_f);
    out_discard(&model_f);
    bnf_free(location);
    bnf_mapped_release(m);
    return rc;
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
