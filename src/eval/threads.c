/*
 * eval/threads.c: the session's worker threads, and bnf_parallel(), which
 * shares a loop out over them.
 *
 * A pool of T threads is the caller plus T - 1 workers (at most
 * BNF_MAX_THREADS in all) started once, when the session is made.  A job is a
 * function over [0, n) run on up to T threads: each takes contiguous chunks
 * of about n / (4 T) items in turn from a shared counter (a thread that starts
 * late or runs slower takes fewer) and runs the function on them with its own
 * thread id, so that per-thread scratch can be indexed by it.  Workers wait
 * for the next job by spinning a little (a network's kernels follow each
 * other within microseconds), then sleep on a condition variable, so an idle
 * session costs no CPU.  The caller waits for the workers of its job by
 * spinning, then yielding the CPU.
 *
 * Nothing here fails: a pool whose threads cannot be created has fewer (or no)
 * workers, and a loop without a pool runs on the caller, or (ctx->threads > 1
 * outside a session) on threads started for that one loop.
 */
#include "eval.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* A worker spins this long for the next job before it sleeps (yielding the
 * CPU after YIELD_NS); the caller spins this many pauses for the workers of
 * its job before it yields the CPU (on a machine busy with other processes a
 * thread may be waiting for one). */
enum { SPIN_NS = 100000, YIELD_NS = 20000, WAIT_SPINS = 4000, CHUNKS_PER_THREAD = 4 };

typedef struct {
    struct bnf_pool *p;
    size_t id; /* 1 .. workers: the range this worker takes */
} worker_arg;

struct bnf_pool {
    size_t workers;
    pthread_t tid[BNF_MAX_THREADS];
    worker_arg wa[BNF_MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;          /* job number: a worker runs each new one */
    atomic_size_t pending;    /* workers that have not finished the current job */
    atomic_int stop;          /* set (under mu, with gen) when the pool is freed */
    /* the current job (written before gen is incremented) */
    bnf_range_fn fn;
    void *arg;
    size_t n, parts, chunk;
    atomic_size_t next;       /* the first item no thread has taken yet */
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Runs chunks of the current job on thread tid until none is left. */
static void take_chunks(bnf_pool *p, size_t tid)
{
    size_t lo;
    while ((lo = atomic_fetch_add_explicit(&p->next, p->chunk, memory_order_relaxed)) < p->n)
        p->fn(p->arg, tid, lo, p->n - lo < p->chunk ? p->n : lo + p->chunk);
}

static void *worker_main(void *vp)
{
    worker_arg *w = vp;
    bnf_pool *p = w->p;
    unsigned seen = 0; /* gen at creation: a job (or the stop) posted before this
                        * thread got to run is still seen as new */
    for (;;) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g == seen) {
            /* spin for a while, then sleep until the next job */
            uint64_t t0 = now_ns(), dt = 0;
            for (unsigned k = 1;; k++) {
                if (dt < YIELD_NS)
                    CPU_RELAX();
                else
                    sched_yield(); /* let a thread waiting for this CPU run */
                if ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) != seen)
                    break;
                if ((k & 63) == 0)
                    dt = now_ns() - t0;
                if (dt > SPIN_NS) {
                    pthread_mutex_lock(&p->mu);
                    while ((g = atomic_load(&p->gen)) == seen)
                        pthread_cond_wait(&p->cv, &p->mu);
                    pthread_mutex_unlock(&p->mu);
                    break;
                }
            }
        }
        seen = g;
        if (atomic_load(&p->stop))
            return NULL;
        if (w->id < p->parts)
            take_chunks(p, w->id);
        atomic_fetch_sub_explicit(&p->pending, 1, memory_order_release);
    }
}

bnf_pool *bnf_pool_new(int threads)
{
    bnf_pool *p;
    size_t want = threads > 1 ? (size_t)threads - 1 : 0;
    if (want > BNF_MAX_THREADS - 1)
        want = BNF_MAX_THREADS - 1;
    if (want == 0 || !(p = bnf_calloc(1, sizeof *p)))
        return NULL;
    if (pthread_mutex_init(&p->mu, NULL) != 0) {
        bnf_free(p);
        return NULL;
    }
    if (pthread_cond_init(&p->cv, NULL) != 0) {
        pthread_mutex_destroy(&p->mu);
        bnf_free(p);
        return NULL;
    }
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->next, 0);
    atomic_init(&p->stop, 0);
    for (size_t i = 0; i < want; i++) {
        p->wa[i] = (worker_arg){p, i + 1};
        if (pthread_create(&p->tid[i], NULL, worker_main, &p->wa[i]) != 0)
            break;
        p->workers = i + 1;
    }
    if (p->workers == 0) {
        bnf_pool_free(p);
        return NULL;
    }
    return p;
}

void bnf_pool_free(bnf_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->workers; i++)
        pthread_join(p->tid[i], NULL);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    bnf_free(p);
}

size_t bnf_pool_size(const bnf_pool *p)
{
    return p ? p->workers + 1 : 1;
}

/* ---- loops ------------------------------------------------------------------------ */

size_t bnf_par_threads(const bnf_op_ctx *ctx, size_t n, size_t work)
{
    size_t t = ctx->pool ? bnf_pool_size(ctx->pool) : ctx->threads > 1 ? (size_t)ctx->threads : 1;
    if (t > BNF_MAX_THREADS)
        t = BNF_MAX_THREADS;
    if (t > n)
        t = n;
    if (work < BNF_PAR_MIN_WORK || t < 1)
        t = 1;
    return t;
}

typedef struct {
    bnf_range_fn fn;
    void *arg;
    size_t tid, lo, hi;
} range_job;

static void *range_main(void *vp)
{
    range_job *j = vp;
    j->fn(j->arg, j->tid, j->lo, j->hi);
    return NULL;
}

/* Without a pool: threads started for this loop (a range whose thread cannot
 * start runs on the caller after its own). */
static void par_spawn(size_t t, size_t n, bnf_range_fn fn, void *arg)
{
    pthread_t tid[BNF_MAX_THREADS];
    range_job job[BNF_MAX_THREADS];
    int started[BNF_MAX_THREADS] = {0};
    for (size_t i = 0; i < t; i++)
        job[i] = (range_job){fn, arg, i, n * i / t, n * (i + 1) / t};
    for (size_t i = 1; i < t; i++)
        started[i] = pthread_create(&tid[i], NULL, range_main, &job[i]) == 0;
    fn(arg, 0, job[0].lo, job[0].hi);
    for (size_t i = 1; i < t; i++) {
        if (started[i])
            pthread_join(tid[i], NULL);
        else
            fn(arg, i, job[i].lo, job[i].hi);
    }
}

void bnf_parallel(const bnf_op_ctx *ctx, size_t t, size_t n, bnf_range_fn fn, void *arg)
{
    bnf_pool *p = ctx->pool;
    if (t <= 1 || n <= 1) {
        if (n)
            fn(arg, 0, 0, n);
        return;
    }
    if (!p) {
        par_spawn(t, n, fn, arg);
        return;
    }
    if (t > p->workers + 1)
        t = p->workers + 1;
    p->fn = fn;
    p->arg = arg;
    p->n = n;
    p->parts = t;
    /* chunks of about 1/CHUNKS_PER_THREAD of a thread's share, whole items:
     * a thread that starts late or runs slower takes fewer */
    p->chunk = n / (t * CHUNKS_PER_THREAD);
    if (p->chunk == 0)
        p->chunk = 1;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store(&p->pending, p->workers);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    take_chunks(p, 0);
    for (unsigned k = 0; atomic_load_explicit(&p->pending, memory_order_acquire) != 0; k++) {
        if (k < WAIT_SPINS)
            CPU_RELAX();
        else
            sched_yield();
    }
}
