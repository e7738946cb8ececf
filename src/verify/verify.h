/*
 * verify/verify.h: what the two checks share (tolerance.c): the tolerance
 * test of one value.  The checks themselves are declared in fold/fold.h
 * (bnf_verify_fold_local, local_check.c) and bnfold.h (bnf_verify_models,
 * end_to_end.c).
 */
#ifndef BNF_VERIFY_H
#define BNF_VERIFY_H

#include "eval/eval.h"

/* Compares b (the folded model's) with a (the original's): an element passes
 * when |b - a| <= atol * max|a| + rtol * |a| (o's tolerances), NaN at the same
 * place in both is equal.  Updates r's worst difference and the value it is
 * at; when the value fails, r->reason says where and by how much (kind and
 * name say what the value is).  Returns 1 when it passes. */
int bnf_values_agree(const char *kind, const char *name, const bnf_tensor *a, const bnf_tensor *b,
                     const bnf_verify_options *o, bnf_verify_result *r);

#endif
