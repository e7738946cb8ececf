/*
 * internal.h: what the library's files share and the public header hides,
 * one header per layer, each including the one below it:
 *
 *   base/base.h      allocation, errors, string map (no models)
 *   io/io.h          the model in memory and on disk, tensor storage
 *   graph/graph.h    the walk over graphs, the graph index, constants, edits
 *   fold/fold.h      BatchNormalization semantics, the fold patterns
 *   report/report.h  reports, reason codes, health findings
 *
 * The evaluator's internals are in eval/eval.h.
 */
#ifndef BNF_INTERNAL_H
#define BNF_INTERNAL_H

#include "report/report.h"

#endif
