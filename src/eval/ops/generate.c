#include "../eval.h"
const bnf_op_def bnf_ops_generate[] = {{NULL, 0, NULL}};
