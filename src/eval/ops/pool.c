#include "../eval.h"
const bnf_op_def bnf_ops_pool[] = {{NULL, 0, NULL}};
