#include "../eval.h"
const bnf_op_def bnf_ops_shape[] = {{NULL, 0, NULL}};
