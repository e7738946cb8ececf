#include "../eval.h"
const bnf_op_def bnf_ops_norm[] = {{NULL, 0, NULL}};
