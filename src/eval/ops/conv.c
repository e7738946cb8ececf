#include "../eval.h"
const bnf_op_def bnf_ops_conv[] = {{NULL, 0, NULL}};
