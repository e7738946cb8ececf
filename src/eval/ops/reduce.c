#include "../eval.h"
const bnf_op_def bnf_ops_reduce[] = {{NULL, 0, NULL}};
