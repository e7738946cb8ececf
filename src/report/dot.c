/* dot.c: the model as a Graphviz digraph, every BatchNormalization
 * coloured by its fate in a report.
 *
 * One DOT node per ONNX node (label: op type and name), graph inputs and
 * outputs as ellipses, one edge per value from its producer to each consumer.
 * Subgraphs (If / Loop / Scan bodies) are nested clusters, model-local
 * functions clusters of their own.  A BN is filled green when it folds, blue
 * when it is lowered to Mul + Add, orange when it is skipped, and gets a red
 * border when a health finding of severity error concerns it; its tooltip
 * gives the reason and the findings, and a dashed edge goes to the layer it
 * folds into.
 *
 * The report is that of bnf_inspect (or bnf_fold) on this very model: BNs are
 * matched to report entries in the order bnf_fold lists them (graph order,
 * subgraphs right after their node, then functions), checked by name, output
 * and graph, with a search by those as a fallback. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define S(x) ((x) ? (x) : "")

#define COLOR_FOLD_FILL "#b2f2bb"
#define COLOR_FOLD_LINE "#2b8a3e"
#define COLOR_LOWER_FILL "#a5d8ff"
#define COLOR_LOWER_LINE "#1864ab"
#define COLOR_SKIP_FILL "#ffc078"
#define COLOR_SKIP_LINE "#d9480f"
#define COLOR_ERROR_LINE "#e03131"

typedef struct scope {
    bnf_strmap *values;         /* value name -> DOT id of the node making it */
    bnf_strmap *names;          /* node name -> DOT id (first of that name) */
    const struct scope *outer;
} scope;

typedef struct {
    size_t node;                /* DOT id of a call to a model-local function */
    size_t function;
} call;

typedef struct {
    const bnf_report *r;
    const bnf_model *m;
    FILE *f;
    size_t next_id;
    size_t next_cluster;
    size_t next_bn;             /* the report entry the next BN should be */
    call *calls;
    size_t n_calls, cap_calls;
    size_t *fn_first, *fn_cluster; /* per model-local function: a DOT id in its cluster */
    bnf_err *err;
} dot_ctx;

/* A DOT double-quoted string (also an escString: backslashes doubled). */
static void dot_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)S(s); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20 || *p == 0x7f)
            fputc(' ', f);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* Writes s into a label, shortened in the middle when longer than max bytes
 * (cutting only at UTF-8 character boundaries). */
static void label_part(FILE *f, const char *s, size_t max)
{
    size_t n = strlen(s), head, tail;
    if (n <= max) {
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
            if (*p == '"' || *p == '\\')
                fprintf(f, "\\%c", *p);
            else
                fputc(*p < 0x20 || *p == 0x7f ? ' ' : *p, f);
        }
        return;
    }
    head = max / 3;
    tail = max - head - 3;
    while (head > 0 && ((unsigned char)s[head] & 0xc0) == 0x80)
        head--;
    while (tail > 0 && ((unsigned char)s[n - tail] & 0xc0) == 0x80)
        tail--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i == head) {
            fputs("...", f);
            i = n - tail - 1;
            continue;
        }
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else
            fputc(c < 0x20 || c == 0x7f ? ' ' : c, f);
    }
}

/* The DOT id of the node making `value`, in this graph or an enclosing one
 * (*outer set then); -1 for initializers and unknown names. */
static long value_producer(const scope *sc, const char *value, int *outer)
{
    intptr_t v;
    *outer = 0;
    for (; sc; sc = sc->outer, *outer = 1)
        if (bnf_strmap_get(sc->values, value, &v))
            return (long)v;
    return -1;
}

/* Whether layer (DOT id dst) is the BN's direct neighbour: the producer of
 * its input (BN after the layer) or a consumer of its output (before). */
static int adjacent(const Onnx__GraphProto *g, size_t bn, size_t base, size_t dst, int before)
{
    const Onnx__NodeProto *n = g->node[bn], *l;
    if (dst < base || dst >= base + g->n_node)
        return 0;
    l = g->node[dst - base];
    if (!before) {
        for (size_t k = 0; k < l->n_output; k++)
            if (n->n_input && l->output[k] && n->input[0] && !strcmp(l->output[k], n->input[0]))
                return 1;
        return 0;
    }
    for (size_t k = 0; k < l->n_input; k++)
        if (n->n_output && l->input[k] && n->output[0] && !strcmp(l->input[k], n->output[0]))
            return 1;
    return 0;
}

static void bn_tooltip(dot_ctx *cx, FILE *f, long k)
{
    const bnf_report *r = cx->r;
    const bnf_bn_info *b = &r->bns[k];
    int inspect = strcmp(r->command, "fold") != 0;
    char buf[2048];
    size_t len = 0;
#define ADD(...)                                                                     \
    do {                                                                             \
        int w_ = snprintf(buf + len, sizeof buf - len, __VA_ARGS__);                 \
        if (w_ > 0)                                                                  \
            len = (size_t)w_ < sizeof buf - len ? len + (size_t)w_ : sizeof buf - 1; \
    } while (0)
    ADD("%s\n", *S(b->name) ? b->name : "(unnamed)"); /* the label may shorten it */
    if (b->folded)
        ADD("%s %s %s '%s'", inspect ? "folds" : "folded", b->before_layer ? "forward into" : "into",
            S(b->layer_op), S(b->layer));
    else if (b->lowered)
        ADD("%s to Mul + Add (%s: %s)", inspect ? "would be lowered" : "lowered",
            S(b->reason_code), S(b->reason));
    else
        ADD("skipped: %s: %s", S(b->reason_code), S(b->reason));
    if (b->channels >= 0)
        ADD("\n%lld channels, epsilon %.3g, min var %.3g, max|s| %.3g", (long long)b->channels,
            b->epsilon, b->min_var, b->max_abs_scale);
    for (size_t i = 0; i < r->n_findings; i++)
        if (r->findings[i].bn == (size_t)k)
            ADD("\n%s %s: %s", r->findings[i].severity, r->findings[i].code,
                r->findings[i].message);
#undef ADD
    dot_str(f, buf);
}

static int bn_has_error(const bnf_report *r, long k)
{
    for (size_t i = 0; i < r->n_findings; i++)
        if (r->findings[i].bn == (size_t)k && !strcmp(r->findings[i].severity, "error"))
            return 1;
    return 0;
}

static int add_call(dot_ctx *cx, size_t node, size_t function)
{
    if (cx->n_calls == cx->cap_calls) {
        size_t cap = cx->cap_calls ? cx->cap_calls * 2 : 8;
        call *grown = bnf_realloc(cx->calls, cap * sizeof *grown);
        if (!grown)
            return -1;
        cx->calls = grown;
        cx->cap_calls = cap;
    }
    cx->calls[cx->n_calls].node = node;
    cx->calls[cx->n_calls++].function = function;
    return 0;
}

/* What drawing one graph keeps while its nodes and subgraphs are drawn. */
typedef struct {
    scope sc;
    bnf_strmap *inits;
    long *bn_of;                /* report entry of node i, or -1 */
    size_t base, out_base;      /* DOT ids of node 0 and output 0 */
    size_t first;               /* a DOT id inside, for edges to the cluster; -1: none */
    size_t cluster;
    const char *ind;
} drawing;

/* Before a graph's nodes: its cluster (a subgraph or a function body), its
 * inputs, and the ids of its nodes and outputs. */
static bnf_status draw_enter(void *ctx, bnf_scope *s, bnf_err *err)
{
    dot_ctx *cx = ctx;
    FILE *f = cx->f;
    const Onnx__GraphProto *g = s->g;
    drawing *d = bnf_calloc(1, sizeof *d);
    size_t in_base;

    (void)err;
    if (!d)
        return bnf_fail(cx->err, BNF_ERR_NOMEM, "out of memory");
    s->data = d;
    d->ind = s->depth ? "    " : "  ";
    d->sc.outer = s->outer ? &((const drawing *)s->outer->data)->sc : NULL;
    if (s->owner) { /* a subgraph: a cluster right after its node */
        const char *pind = s->depth > 1 ? "    " : "  ";
        char lab[600];
        d->cluster = cx->next_cluster++;
        fprintf(f, "%ssubgraph cluster_%zu {\n%s  label=", pind, d->cluster, pind);
        snprintf(lab, sizeof lab, "%s %s", *S(s->owner->name) ? s->owner->name : S(s->owner->op_type),
                 s->attr);
        dot_str(f, lab);
        fprintf(f, "; style=\"rounded,dashed\"; color=\"#868e96\"; fontcolor=\"#495057\";\n");
    } else if (s->function) {
        d->cluster = cx->next_cluster++;
        fprintf(f, "  subgraph cluster_%zu {\n    label=", d->cluster);
        dot_str(f, s->path);
        fputs("; style=\"rounded,dashed\"; color=\"#7048e8\"; fontcolor=\"#5f3dc4\";\n", f);
    }
    d->sc.values = bnf_strmap_new(g->n_node * 2 + g->n_input + 8);
    d->sc.names = bnf_strmap_new(g->n_node + 8);
    d->inits = bnf_strmap_new(g->n_initializer + 8);
    d->bn_of = bnf_calloc(g->n_node + 1, sizeof *d->bn_of);
    if (!d->sc.values || !d->sc.names || !d->inits || !d->bn_of)
        goto nomem;
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && bnf_strmap_put(d->inits, g->initializer[i]->name, 1))
            goto nomem;

    /* ids: inputs, then nodes, then outputs */
    in_base = cx->next_id;
    cx->next_id += g->n_input;
    d->base = cx->next_id;
    cx->next_id += g->n_node;
    d->out_base = cx->next_id;
    cx->next_id += g->n_output;
    d->first = (size_t)-1;

    for (size_t i = 0; i < g->n_input; i++) {
        const char *name = S(g->input[i]->name);
        if (!*name || bnf_strmap_get(d->inits, name, NULL))
            continue; /* an initializer listed as an input is a weight, not data */
        if (bnf_strmap_put(d->sc.values, name, (intptr_t)(in_base + i)))
            goto nomem;
        fprintf(f, "%sn%zu [shape=ellipse, style=filled, fillcolor=\"#e7f5ff\", color=\"#4dabf7\", "
                   "label=", d->ind, in_base + i);
        fputc('"', f);
        label_part(f, name, 40);
        fputs("\", tooltip=", f);
        dot_str(f, name);
        fputs("];\n", f);
        if (d->first == (size_t)-1)
            d->first = in_base + i;
    }
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t k = 0; k < n->n_output; k++)
            if (n->output[k] && *n->output[k] &&
                bnf_strmap_put(d->sc.values, n->output[k], (intptr_t)(d->base + i)))
                goto nomem;
        if (n->name && *n->name && !bnf_strmap_get(d->sc.names, n->name, NULL) &&
            bnf_strmap_put(d->sc.names, n->name, (intptr_t)(d->base + i)))
            goto nomem;
    }
    return BNF_OK;
nomem:
    return bnf_fail(cx->err, BNF_ERR_NOMEM, "out of memory");
}

/* One node: a box, a BN coloured by its fate; its subgraphs follow. */
static bnf_status draw_node(void *ctx, bnf_scope *s, size_t i, bnf_err *err)
{
    dot_ctx *cx = ctx;
    FILE *f = cx->f;
    const bnf_report *r = cx->r;
    const Onnx__ModelProto *p = cx->m->proto;
    drawing *d = s->data;
    const Onnx__NodeProto *n = s->g->node[i];
    long k = bnf_is_op(n, "BatchNormalization") ? bnf_report_find_bn(cx->r, n, s->path, &cx->next_bn) : -1;

    (void)err;
    d->bn_of[i] = k;
    if (d->first == (size_t)-1)
        d->first = d->base + i;
    fprintf(f, "%sn%zu [label=\"", d->ind, d->base + i);
    label_part(f, S(n->op_type), 40);
    if (!bnf_is_onnx_domain(n->domain)) {
        fputs(" (", f);
        label_part(f, n->domain, 30);
        fputc(')', f);
    }
    if (n->name && *n->name) {
        fputs("\\n", f);
        label_part(f, n->name, 44);
    }
    if (k >= 0) {
        const bnf_bn_info *b = &r->bns[k];
        int inspect = strcmp(r->command, "fold") != 0;
        const char *fill, *line;
        int err_border = bn_has_error(r, k);
        if (b->folded) {
            fill = COLOR_FOLD_FILL;
            line = COLOR_FOLD_LINE;
            fprintf(f, "\\n%s %s ", inspect ? "folds" : "folded",
                    b->before_layer ? "forward into" : "into");
            label_part(f, S(b->layer_op), 30);
        } else if (b->lowered) {
            fill = COLOR_LOWER_FILL;
            line = COLOR_LOWER_LINE;
            fputs(inspect ? "\\nlowers to Mul + Add" : "\\nlowered to Mul + Add", f);
        } else {
            fill = COLOR_SKIP_FILL;
            line = COLOR_SKIP_LINE;
            fputs("\\nskipped: ", f);
            label_part(f, S(b->reason_code), 40);
        }
        fprintf(f, "\", shape=box, style=\"rounded,filled%s\", fillcolor=\"%s\", "
                   "color=\"%s\", penwidth=%s, tooltip=",
                err_border ? ",bold" : "", fill, err_border ? COLOR_ERROR_LINE : line,
                err_border ? "3" : "1.5");
        bn_tooltip(cx, f, k);
        fputs("];\n", f);
    } else if (bnf_is_op(n, "BatchNormalization")) {
        fputs("\\n(not in the report)\", shape=box, style=\"rounded,filled,dashed\", "
              "fillcolor=\"#e9ecef\", color=\"#868e96\"];\n", f);
    } else {
        fputs("\", shape=box, style=\"rounded,filled\", fillcolor=\"#f8f9fa\", "
              "color=\"#adb5bd\", tooltip=", f);
        dot_str(f, *S(n->name) ? n->name : n->op_type);
        fputs("];\n", f);
        for (size_t fn = 0; fn < p->n_functions; fn++) {
            const Onnx__FunctionProto *fp = p->functions[fn];
            if (fp->name && n->op_type && !strcmp(fp->name, n->op_type) &&
                !strcmp(S(fp->domain), S(n->domain)) && add_call(cx, d->base + i, fn))
                return bnf_fail(cx->err, BNF_ERR_NOMEM, "out of memory");
        }
    }
    return BNF_OK;
}

/* After a graph's nodes: its edges and outputs, and the end of its cluster. */
static bnf_status draw_leave(void *ctx, bnf_scope *s, bnf_status rc, bnf_err *err)
{
    dot_ctx *cx = ctx;
    FILE *f = cx->f;
    const bnf_report *r = cx->r;
    const Onnx__GraphProto *g = s->g;
    drawing *d = s->data;
    const char *ind;

    (void)err;
    if (!d)
        return rc;
    ind = d->ind;
    if (rc)
        goto out;
    /* data edges: from the producer of each input (here or in an enclosing graph) */
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        for (size_t k = 0; k < n->n_input; k++) {
            int from_outer;
            long src;
            if (!n->input[k] || !*n->input[k])
                continue;
            if ((src = value_producer(&d->sc, n->input[k], &from_outer)) < 0)
                continue; /* an initializer */
            fprintf(f, "%sn%ld -> n%zu [tooltip=", ind, src, d->base + i);
            dot_str(f, n->input[k]);
            fputs(from_outer ? ", style=dashed, color=\"#868e96\"];\n" : "];\n", f);
        }
    }
    for (size_t i = 0; i < g->n_output; i++) {
        const char *name = S(g->output[i]->name);
        int from_outer;
        long src = value_producer(&d->sc, name, &from_outer);
        fprintf(f, "%sn%zu [shape=ellipse, style=filled, fillcolor=\"#fff4e6\", color=\"#ffa94d\", "
                   "label=\"", ind, d->out_base + i);
        label_part(f, name, 40);
        fputs("\", tooltip=", f);
        dot_str(f, name);
        fputs("];\n", f);
        if (src >= 0) {
            fprintf(f, "%sn%ld -> n%zu [tooltip=", ind, src, d->out_base + i);
            dot_str(f, name);
            fputs("];\n", f);
        }
        if (d->first == (size_t)-1)
            d->first = d->out_base + i;
    }
    /* where each BN goes */
    for (size_t i = 0; i < g->n_node; i++) {
        const bnf_bn_info *b;
        intptr_t dst;
        if (d->bn_of[i] < 0)
            continue;
        b = &r->bns[d->bn_of[i]];
        if (!b->folded || !b->layer || !*b->layer || !bnf_strmap_get(d->sc.names, b->layer, &dst))
            continue;
        if (adjacent(g, i, d->base, (size_t)dst, b->before_layer))
            continue; /* the data edge and the label say it already */
        fprintf(f, "%sn%zu -> n%zu [style=dashed, color=\"%s\", fontcolor=\"%s\", fontsize=9, "
                   "constraint=false, label=\"%s\", tooltip=\"BatchNormalization folded into this layer\"];\n",
                ind, d->base + i, (size_t)dst, COLOR_FOLD_LINE, COLOR_FOLD_LINE,
                strcmp(r->command, "fold") ? "folds into" : "folded into");
    }
    if (s->owner || s->function) { /* the end of the cluster */
        const char *pind = s->depth > 1 ? "    " : "  ";
        if (d->first == (size_t)-1) {
            d->first = cx->next_id++;
            fprintf(f, "%s  n%zu [shape=plaintext, label=\"(empty)\"];\n", pind, d->first);
        }
        fprintf(f, "%s}\n", pind);
    }
    if (s->owner) {
        fprintf(f, "%sn%zu -> n%zu [lhead=cluster_%zu, style=dotted, color=\"#868e96\", "
                   "arrowhead=odot, tooltip=", s->depth > 1 ? "    " : "  ",
                ((const drawing *)s->outer->data)->base + s->owner_index, d->first, d->cluster);
        dot_str(f, s->attr);
        fputs("];\n", f);
    } else if (s->function) {
        size_t fn = (size_t)(s->function - *cx->m->proto->functions) ; /* placeholder */
        (void)fn;
    }
out:
    if (s->function && !rc) {
        for (size_t fn = 0; fn < cx->m->proto->n_functions; fn++)
            if (cx->m->proto->functions[fn] == s->function) {
                cx->fn_first[fn] = d->first;
                cx->fn_cluster[fn] = d->cluster;
            }
    }
    bnf_free(d->bn_of);
    bnf_strmap_free(d->inits);
    bnf_strmap_free(d->sc.values);
    bnf_strmap_free(d->sc.names);
    bnf_free(d);
    s->data = NULL;
    return rc;
}

static const bnf_visitor drawer = {.enter = draw_enter, .node = draw_node, .leave = draw_leave};

static void title(dot_ctx *cx)
{
    const bnf_report *r = cx->r;
    FILE *f = cx->f;
    int inspect = strcmp(r->command, "fold") != 0;
    size_t skipped = r->n_bns - r->n_folded - r->n_lowered;
    fputs("  label=<<b>", f);
    bnf_html_text(f, r->input_path ? r->input_path : "model");
    fprintf(f, "</b><br/>%zu node%s; %zu BatchNormalization: "
               "<font color=\"%s\">%zu %s</font>, <font color=\"%s\">%zu %s</font>, "
               "<font color=\"%s\">%zu skipped</font>",
            r->n_nodes, r->n_nodes == 1 ? "" : "s", r->n_bns, COLOR_FOLD_LINE, r->n_folded, inspect ? "fold" : "folded",
            COLOR_LOWER_LINE, r->n_lowered, inspect ? "to lower" : "lowered", COLOR_SKIP_LINE,
            skipped);
    if (r->n_findings) {
        size_t e = bnf_report_count(r, "error");
        fprintf(f, "; health: <font color=\"%s\">%zu error%s</font>, %zu warning, %zu info",
                e ? COLOR_ERROR_LINE : "#000000", e, e == 1 ? "" : "s",
                bnf_report_count(r, "warning"), bnf_report_count(r, "info"));
    }
    fprintf(f, "<br/><font point-size=\"9\">BN fill: <font color=\"%s\">green folds</font>, "
               "<font color=\"%s\">blue lowered to Mul + Add</font>, <font color=\"%s\">orange "
               "skipped</font>; <font color=\"%s\">red border: health error</font>; dashed: value "
               "from an enclosing graph</font>>;\n",
            COLOR_FOLD_LINE, COLOR_LOWER_LINE, COLOR_SKIP_LINE, COLOR_ERROR_LINE);
    fputs("  labelloc=t;\n", f);
}

bnf_status bnf_report_write_dot(const bnf_report *r, const bnf_model *m, FILE *f, bnf_err *err)
{
    dot_ctx cx;
    const Onnx__ModelProto *p;
    bnf_status rc;

    if (!r || !m || !f || !m->proto || !m->proto->graph)
        return bnf_fail(err, BNF_ERR_USAGE, "bnf_report_write_dot: no report, model or file");
    p = m->proto;
    memset(&cx, 0, sizeof cx);
    cx.r = r;
    cx.m = m;
    cx.f = f;
    cx.err = err;
    cx.fn_first = bnf_calloc(p->n_functions + 1, sizeof *cx.fn_first);
    cx.fn_cluster = bnf_calloc(p->n_functions + 1, sizeof *cx.fn_cluster);
    if (!cx.fn_first || !cx.fn_cluster) {
        rc = bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        goto out;
    }
    fputs("digraph model {\n", f);
    fputs("  graph [rankdir=TB, compound=true, fontname=\"Helvetica\", fontsize=12, "
          "nodesep=0.25, ranksep=0.35];\n", f);
    fputs("  node [fontname=\"Helvetica\", fontsize=10, height=0.3];\n", f);
    fputs("  edge [color=\"#495057\", arrowsize=0.6];\n", f);
    title(&cx);
    /* the walk edits nothing: the model stays as it is */
    if ((rc = bnf_walk_model(&drawer, &cx, (Onnx__ModelProto *)p, err)))
        goto out;
    for (size_t i = 0; i < cx.n_calls; i++)
        fprintf(f, "  n%zu -> n%zu [lhead=cluster_%zu, style=dotted, color=\"#7048e8\", "
                   "arrowhead=odot, constraint=false, tooltip=\"calls the function\"];\n",
                cx.calls[i].node, cx.fn_first[cx.calls[i].function],
                cx.fn_cluster[cx.calls[i].function]);
    fputs("}\n", f);
    if (fflush(f) != 0 || ferror(f))
        rc = bnf_fail(err, BNF_ERR_IO, "writing the graph failed");
out:
    bnf_free(cx.fn_first);
    bnf_free(cx.fn_cluster);
    bnf_free(cx.calls);
    return rc;
}
