#include "../eval.h"
const bnf_op_def bnf_ops_resize[] = {{NULL, 0, NULL}};
