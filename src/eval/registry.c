/* eval/registry.c: every operator the evaluator has.  Each family file in
 * eval/ops/ keeps its own table ({op_type, since, kernel}, NULL-terminated);
 * adding an operator is one kernel and one line in its family's table, adding a
 * family one line here.
 *
 * A kernel in a table is named op_<op_type in snake_case> (op_conv_transpose,
 * op_reduce_sum_square), with _v<since> when the op has several kernels by
 * opset (op_clip_v1, op_clip_v11); a kernel on several lines keeps the name of
 * its first (Resize-10 runs op_upsample_v9). */
#include "eval.h"

#include <string.h>

extern const bnf_op_def bnf_ops_elementwise[];
extern const bnf_op_def bnf_ops_activation[];
extern const bnf_op_def bnf_ops_reduce[];
extern const bnf_op_def bnf_ops_conv[];
extern const bnf_op_def bnf_ops_conv_transpose[];
extern const bnf_op_def bnf_ops_gemm[];
extern const bnf_op_def bnf_ops_pool[];
extern const bnf_op_def bnf_ops_norm[];
extern const bnf_op_def bnf_ops_shape[];
extern const bnf_op_def bnf_ops_generate[];
extern const bnf_op_def bnf_ops_resize[];

static const bnf_op_def *const families[] = {
    bnf_ops_elementwise,    /* ops/elementwise.c */
    bnf_ops_activation,     /* ops/activation.c */
    bnf_ops_reduce,         /* ops/reduce.c */
    bnf_ops_conv,           /* ops/conv.c */
    bnf_ops_conv_transpose, /* ops/conv_transpose.c */
    bnf_ops_gemm,           /* ops/gemm.c */
    bnf_ops_pool,           /* ops/pool.c */
    bnf_ops_norm,           /* ops/norm.c */
    bnf_ops_shape,          /* ops/shape.c */
    bnf_ops_generate,       /* ops/generate.c */
    bnf_ops_resize,         /* ops/resize.c */
};

const bnf_op_def *bnf_op_find(const char *op_type, int64_t opset)
{
    const bnf_op_def *best = NULL;
    if (!op_type || opset > BNF_EVAL_NEWEST_OPSET)
        return NULL;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const bnf_op_def *d = families[f]; d->op_type; d++)
            if (strcmp(d->op_type, op_type) == 0 && d->since <= opset &&
                (!best || d->since > best->since))
                best = d;
    return best;
}
