#include "../eval.h"
const bnf_op_def bnf_ops_gemm[] = {{NULL, 0, NULL}};
