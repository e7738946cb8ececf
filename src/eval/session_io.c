/* session_io.c: a session's inputs and outputs as lists of tensors owned as
 * one (bnf_tensors), so that a caller makes, runs and frees them in three
 * calls. */
#include "eval.h"

#include <string.h>

void bnf_tensors_release(bnf_tensors *v)
{
    for (size_t i = 0; v->t && i < v->n; i++)
        bnf_tensor_release(&v->t[i]);
    bnf_free(v->t);
    bnf_free(v->ptr);
    memset(v, 0, sizeof *v);
}

/* n empty tensors. */
static bnf_status tensors_alloc(bnf_tensors *v, size_t n, bnf_err *err)
{
    memset(v, 0, sizeof *v);
    v->t = bnf_calloc(n + 1, sizeof *v->t);
    v->ptr = bnf_calloc(n + 1, sizeof *v->ptr);
    if (!v->t || !v->ptr) {
        bnf_tensors_release(v);
        return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
    }
    v->n = n;
    for (size_t i = 0; i < n; i++)
        v->ptr[i] = &v->t[i];
    return BNF_OK;
}

bnf_status bnf_session_make_inputs(const bnf_session *s, const bnf_named_tensor *given,
                                   size_t n_given, const bnf_dim *dims, size_t n_dims,
                                   uint64_t seed, bnf_tensors *in, bnf_err *err)
{
    bnf_status rc = tensors_alloc(in, bnf_session_n_inputs(s), err);
    if (!rc && (rc = bnf_session_inputs(s, given, n_given, dims, n_dims, seed, in->t, err)))
        bnf_tensors_release(in);
    return rc;
}

bnf_status bnf_session_run_tensors(bnf_session *s, const bnf_tensors *in, bnf_tensors *out,
                                   bnf_err *err)
{
    bnf_status rc;
    bnf_tensors_release(out);
    if (in->n != bnf_session_n_inputs(s))
        return bnf_fail(err, BNF_ERR_USAGE, "%zu inputs for a model of %zu", in->n,
                        bnf_session_n_inputs(s));
    if ((rc = tensors_alloc(out, bnf_session_n_outputs(s), err)) ||
        (rc = bnf_session_run(s, in->ptr, out->t, err)))
        bnf_tensors_release(out);
    return rc;
}
