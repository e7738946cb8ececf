/* cli/batch.c: the process plumbing of a run over many models.  Each model is
 * checked in a worker process of its own (fork, no exec: the parent stays
 * small, so a worker starts with little more than the binary), at most
 * `jobs` at a time, in path order.  A worker hands its report back through a
 * pipe, packed by the library (bnf_report_pack); a worker that crashes, is
 * killed (out of memory) or answers garbage costs only its own model, which
 * is reported as failed to be read (exit class 4).  Results reach the writers
 * in path order, each as soon as every model before it is done, so the output
 * is the same whatever the parallelism. */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define ANSWER_MAGIC 0x57464e42u /* "BNFW" */

/* What a worker writes to its pipe, then the message and the packed report. */
typedef struct {
    uint32_t magic;
    int32_t status;
    uint64_t message_len;
    uint64_t report_len;
} answer_head;

typedef struct {
    pid_t pid;            /* the worker, while it runs */
    int fd;               /* the read end of its pipe, -1 when closed */
    uint8_t *buf;         /* what it wrote so far */
    size_t n, cap;
    int started, done;
    bnf_status status;
    char *message;
    bnf_report *report;
} slot;

/* ---- the worker --------------------------------------------------------------------- */

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Test hook: BNFOLD_TEST_WORKER_SIGNAL=SUFFIX[=SIGNAL] makes the worker of a
 * model whose path ends in SUFFIX kill itself (SIGSEGV unless said), so the
 * tests can see one model's crash or out-of-memory kill not end the run. */
static void test_crash(const char *path)
{
    const char *hook = getenv("BNFOLD_TEST_WORKER_SIGNAL"), *eq;
    char suffix[256];
    size_t n, lp = strlen(path);
    int sig = SIGSEGV;
    if (!hook || !*hook)
        return;
    eq = strchr(hook, '=');
    n = eq ? (size_t)(eq - hook) : strlen(hook);
    if (n >= sizeof suffix)
        return;
    memcpy(suffix, hook, n);
    suffix[n] = '\0';
    if (eq)
        sig = atoi(eq + 1);
    if (lp >= n && !strcmp(path + lp - n, suffix)) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

/* In the child: the work, its answer on fd, and _exit (never exit: the
 * parent's stdio buffers are not ours to flush). */
static void worker(const batch_opts *o, const bnf_found *model, int fd)
{
    bnf_err err = {0};
    bnf_report *r = NULL;
    uint8_t *packed = NULL;
    size_t n_packed = 0;
    answer_head h = {ANSWER_MAGIC, 0, 0, 0};
    bnf_status st;

    signal(SIGPIPE, SIG_DFL);
    test_crash(model->path);
    st = o->work(o->ctx, model, &r, &err);
    if (!st && (st = bnf_report_pack(r, &packed, &n_packed, &err)))
        packed = NULL;
    if (st && !err.msg[0])
        snprintf(err.msg, sizeof err.msg, "%s", bnf_strerror(st));
    h.status = (int32_t)st;
    h.message_len = st ? strlen(err.msg) : 0;
    h.report_len = st ? 0 : n_packed;
    if (write_all(fd, &h, sizeof h) || (h.message_len && write_all(fd, err.msg, h.message_len)) ||
        (h.report_len && write_all(fd, packed, n_packed)))
        _exit(3);
    _exit(0);
}

/* ---- the parent ----------------------------------------------------------------------- */

static void set_error(slot *s, bnf_status st, const char *msg)
{
    free(s->message);
    s->message = strdup(msg);
    s->status = st;
    s->done = 1;
}

/* Starts the worker of slot i; on failure the slot is done with an error. */
static void start(const batch_opts *o, const bnf_found_list *found, slot *slots, size_t i)
{
    int p[2];
    pid_t pid;
    char msg[600];
    slots[i].started = 1;
    if (pipe(p) != 0) {
        snprintf(msg, sizeof msg, "no worker could be started: pipe: %s", strerror(errno));
        set_error(&slots[i], BNF_ERR_IO, msg);
        return;
    }
    fflush(stdout); /* nothing buffered is written twice */
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        snprintf(msg, sizeof msg, "no worker could be started: fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        set_error(&slots[i], BNF_ERR_IO, msg);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        for (size_t k = 0; k < found->n; k++) /* the other workers' pipes are not ours */
            if (slots[k].fd >= 0)
                close(slots[k].fd);
        worker(o, &found->items[i], p[1]);
    }
    close(p[1]);
    slots[i].pid = pid;
    slots[i].fd = p[0];
}

/* One read of what is there (poll said there is something): 0, 1 at the end
 * of the answer (EOF, or a read error: the answer is then found short), -1
 * when out of memory. */
static int drain(slot *s)
{
    ssize_t r;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 65536;
        uint8_t *grown = realloc(s->buf, cap);
        if (!grown)
            return -1;
        s->buf = grown;
        s->cap = cap;
    }
    do
        r = read(s->fd, s->buf + s->n, s->cap - s->n);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return 1;
    s->n += (size_t)r;
    return 0;
}

/* The worker of s is done writing: reap it and make its answer a result. */
static void finish(slot *s, const char *path)
{
    int wstatus = 0;
    answer_head h;
    char msg[600];
    bnf_err err = {0};

    close(s->fd);
    s->fd = -1;
    while (waitpid(s->pid, &wstatus, 0) < 0 && errno == EINTR)
        ;
    s->pid = 0;
    if (WIFSIGNALED(wstatus)) {
        int sig = WTERMSIG(wstatus);
        snprintf(msg, sizeof msg, "%s: its worker was killed by signal %d (%s)%s", path, sig,
                 strsignal(sig), sig == SIGKILL ? ": out of memory?" : "");
        set_error(s, BNF_ERR_IO, msg);
    } else if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0 || s->n < sizeof h) {
        snprintf(msg, sizeof msg, "%s: its worker ended without an answer (exit status %d)",
                 path, WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1);
        set_error(s, BNF_ERR_IO, msg);
    } else {
        memcpy(&h, s->buf, sizeof h);
        if (h.magic != ANSWER_MAGIC || h.status < 0 || h.status > BNF_ERR_CHECK ||
            h.message_len > s->n - sizeof h ||
            h.report_len != s->n - sizeof h - h.message_len) {
            snprintf(msg, sizeof msg, "%s: its worker's answer is malformed", path);
            set_error(s, BNF_ERR_IO, msg);
        } else if (h.status != BNF_OK) {
            snprintf(msg, sizeof msg, "%.*s", (int)h.message_len, (const char *)s->buf + sizeof h);
            set_error(s, (bnf_status)h.status, msg);
        } else if (bnf_report_unpack(s->buf + sizeof h, (size_t)h.report_len, &s->report, &err)) {
            snprintf(msg, sizeof msg, "%s: its worker's answer: %s", path, err.msg);
            set_error(s, BNF_ERR_IO, msg);
        } else {
            s->status = BNF_OK;
            s->done = 1;
        }
    }
    free(s->buf);
    s->buf = NULL;
    s->n = s->cap = 0;
}

/* ---- progress ------------------------------------------------------------------------ */

static int progress_on;

static void progress(const batch_opts *o, size_t done, size_t total, const char *current)
{
    size_t len = current ? strlen(current) : 0;
    if (!o->progress)
        return;
    fprintf(stderr, "\rbnfold: %s %zu/%zu%s%s\033[K", o->command, done, total,
            current ? " " : "", current ? (len > 60 ? current + len - 60 : current) : "");
    fflush(stderr);
    progress_on = 1;
}

static void progress_clear(void)
{
    if (progress_on) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    progress_on = 0;
}

/* ---- the run ------------------------------------------------------------------------- */

int batch_run(const batch_opts *o, const bnf_found_list *found, bnf_summary *sum)
{
    size_t n = found->n, next_start = 0, next_out = 0, running = 0, done = 0;
    int jobs = o->jobs > 0 ? o->jobs : 1;
    slot *slots = calloc(n ? n : 1, sizeof *slots);
    struct pollfd *fds = calloc((size_t)jobs, sizeof *fds);
    size_t *fd_slot = calloc((size_t)jobs, sizeof *fd_slot);

    if (!slots || !fds || !fd_slot) {
        free(slots);
        free(fds);
        free(fd_slot);
        fprintf(stderr, "bnfold: error: out of memory\n");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        slots[i].fd = -1;
    while (next_out < n) {
        size_t k = 0;
        /* start workers, in path order; a PATH problem is a result at once */
        while (running < (size_t)jobs && next_start < n) {
            const bnf_found *m = &found->items[next_start];
            if (m->status != BNF_OK) {
                slots[next_start].started = 1;
                set_error(&slots[next_start], m->status, m->message ? m->message : m->path);
            } else {
                start(o, found, slots, next_start);
                running += slots[next_start].fd >= 0;
            }
            next_start++;
        }
        /* every result whose turn it is goes out */
        while (next_out < n && slots[next_out].done) {
            slot *s = &slots[next_out];
            bnf_model_result res = {found->items[next_out].path, s->status, s->message,
                                    s->report};
            progress_clear();
            bnf_summary_add(sum, &res);
            if (o->out)
                bnf_batch_writer_add(o->out, &res);
            if (o->sarif)
                bnf_batch_writer_add(o->sarif, &res);
            fflush(stdout);
            bnf_report_free(s->report);
            s->report = NULL;
            free(s->message);
            s->message = NULL;
            next_out++;
            done++;
        }
        if (next_out < n)
            progress(o, done, n, found->items[next_out].path);
        if (!running)
            continue;
        for (size_t i = 0; i < next_start; i++)
            if (slots[i].fd >= 0) {
                fds[k].fd = slots[i].fd;
                fds[k].events = POLLIN;
                fds[k].revents = 0;
                fd_slot[k++] = i;
            }
        if (poll(fds, k, -1) < 0) {
            if (errno == EINTR)
                continue;
            progress_clear();
            fprintf(stderr, "bnfold: error: poll: %s\n", strerror(errno));
            break;
        }
        for (size_t j = 0; j < k; j++) {
            slot *s = &slots[fd_slot[j]];
            int end;
            if (!fds[j].revents)
                continue;
            end = drain(s);
            if (end < 0) { /* out of memory for the answer: the model fails, not the run */
                kill(s->pid, SIGKILL);
                end = 1;
            }
            if (end) {
                finish(s, found->items[fd_slot[j]].path);
                if (!s->done)
                    set_error(s, BNF_ERR_NOMEM, "out of memory reading a worker's answer");
                running--;
            }
        }
    }
    progress_clear();
    for (size_t i = 0; i < n; i++) { /* only after an error of poll */
        if (slots[i].fd >= 0)
            close(slots[i].fd);
        if (slots[i].pid > 0) {
            kill(slots[i].pid, SIGKILL);
            waitpid(slots[i].pid, NULL, 0);
        }
        free(slots[i].buf);
        free(slots[i].message);
        bnf_report_free(slots[i].report);
    }
    free(slots);
    free(fds);
    free(fd_slot);
    return next_out == n ? 0 : -1;
}
