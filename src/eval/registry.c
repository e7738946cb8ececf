/* eval/registry.c: every operator the evaluator has.  Each family file in
 * eval/ops/ keeps its own table ({op_type, since, kernel}, NULL-terminated);
 * adding an operator is one kernel and one line in its family's table, adding a
 * family one line here. */
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
    bnf_ops_elementwise, bnf_ops_activation, bnf_ops_reduce,   bnf_ops_conv,
    bnf_ops_conv_transpose, bnf_ops_gemm,    bnf_ops_pool,     bnf_ops_norm,
    bnf_ops_shape,       bnf_ops_generate,   bnf_ops_resize,
};

const bnf_op_def *bnf_op_find(const char *op_type, int64_t opset)
{
    const bnf_op_def *best = NULL;
    if (!op_type)
        return NULL;
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++)
        for (const bnf_op_def *d = families[f]; d->op_type; d++)
            if (strcmp(d->op_type, op_type) == 0 && d->since <= opset &&
                (!best || d->since > best->since))
                best = d;
    return best;
}
