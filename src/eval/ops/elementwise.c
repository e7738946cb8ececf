#include "../eval.h"
const bnf_op_def bnf_ops_elementwise[] = {{NULL, 0, NULL}};
