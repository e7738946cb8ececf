#include "../eval.h"
const bnf_op_def bnf_ops_activation[] = {{NULL, 0, NULL}};
