/* html.c: a report as one self-contained HTML page.
 *
 * Inline CSS and inline SVG only: no script, no font, image or style sheet
 * from elsewhere, nothing that touches the network.  The page has the model
 * summary, the table of every BatchNormalization with its fate, the health
 * findings, and for each BN two charts over its channels: the scale
 * |gamma / sqrt(var + eps)| (bars, linear) and the running variance (line,
 * log scale, epsilon drawn as a reference).
 *
 * The report holds no per-channel values, so the BN parameters are read from
 * the model the report was made on (the model as loaded, not a folded copy):
 * BNs are matched to report entries in the order bnf_fold lists them, checked
 * by name, output and graph, with a search by those as a fallback. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define S(x) ((x) ? (x) : "")

/* thresholds of src/check/health.c, to colour channels as the findings do */
#define TINY_VAR 1e-6
#define LARGE_SCALE 1e4

typedef struct {
    int have;          /* scale and variance read */
    size_t c;
    double *gamma;
    double *var;
    double eps;
    char why[160];     /* when !have */
} bn_params;

typedef struct {
    const bnf_report *r;
    const bnf_model *m;
    bn_params *p;
    size_t next_bn;
    bnf_err *err;
} html_ctx;

/* ---- reading the parameters ------------------------------------------------------ */

static bnf_status read_params(html_ctx *cx, const bnf_graph *gi, const Onnx__NodeProto *n,
                              bn_params *bp)
{
    static const char *const what[2] = {"scale", "variance"};
    const size_t input[2] = {1, 4};
    bnf_array a[2];
    bnf_status rc = BNF_OK;

    memset(a, 0, sizeof a);
    bp->eps = bnf_attr_float(n, "epsilon", 1e-5);
    for (int k = 0; k < 2; k++) {
        const char *name = bnf_node_input(n, input[k]);
        bnf_const_kind kind = BNF_CONST_NO;
        bnf_err e2 = {0};
        if (!name) {
            snprintf(bp->why, sizeof bp->why, "it has no %s input", what[k]);
            goto out;
        }
        rc = bnf_graph_const(cx->m, gi, name, &kind, &a[k], &e2);
        if (rc == BNF_ERR_NOMEM) {
            rc = bnf_fail(cx->err, rc, "%s", e2.msg);
            goto out;
        }
        if (rc || kind != BNF_CONST_YES) {
            snprintf(bp->why, sizeof bp->why, "its %s '%.100s' is %s", what[k], name,
                     rc ? "unreadable" : kind == BNF_CONST_DTYPE ? "not of a real type"
                                                                : "computed at run time");
            rc = BNF_OK;
            goto out;
        }
    }
    if (a[0].n != a[1].n || !a[0].n) {
        snprintf(bp->why, sizeof bp->why, "scale and variance have %zu and %zu elements", a[0].n,
                 a[1].n);
        goto out;
    }
    bp->c = a[0].n;
    bp->gamma = a[0].v;
    bp->var = a[1].v;
    a[0].v = a[1].v = NULL;
    bp->have = 1;
out:
    bnf_array_release(&a[0]);
    bnf_array_release(&a[1]);
    return rc;
}

/* IR 0: an initializer that is also an input reads as its default value */
static bnf_status params_enter(void *ctx, bnf_scope *s, bnf_err *err)
{
    (void)err;
    return bnf_scope_index(s, ((html_ctx *)ctx)->m, 0, ((html_ctx *)ctx)->err);
}

static bnf_status params_node(void *ctx, bnf_scope *s, size_t i, bnf_err *err)
{
    html_ctx *cx = ctx;
    const Onnx__NodeProto *n = s->g->node[i];
    long k;
    (void)err;
    if (!bnf_is_op(n, "BatchNormalization") ||
        (k = bnf_report_find_bn(cx->r, n, s->path, &cx->next_bn)) < 0 || cx->p[k].have ||
        cx->p[k].why[0])
        return BNF_OK;
    return read_params(cx, s->gi, n, &cx->p[k]);
}

static bnf_status params_leave(void *ctx, bnf_scope *s, bnf_status rc, bnf_err *err)
{
    (void)ctx;
    (void)err;
    bnf_scope_unindex(s);
    return rc;
}

static const bnf_visitor params_reader = {
    .enter = params_enter, .node = params_node, .leave = params_leave,
};

/* ---- HTML helpers ------------------------------------------------------------------ */

void bnf_html_text(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)S(s); *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            if (*p < 0x20 && *p != '\n' && *p != '\t')
                fputc(' ', f);
            else
                fputc(*p, f);
        }
    }
}

/* A long identifier: escaped, with break opportunities after '/', '.', '_'. */
static void esc_name(FILE *f, const char *s)
{
    const char *p = S(s);
    size_t run = 0;
    for (; *p; p++) {
        char one[2] = {*p, 0};
        bnf_html_text(f, one);
        run++;
        if ((*p == '/' || *p == '.' || *p == '_' || *p == '-' || run >= 24) && p[1]) {
            fputs("<wbr>", f);
            run = 0;
        }
    }
}

static void num(FILE *f, double v)
{
    if (isnan(v))
        fputs("&ndash;", f);
    else if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", f);
    else
        fprintf(f, "%.3g", v);
}

static const char *fate(const bnf_bn_info *b, int fold)
{
    if (b->folded)
        return fold ? "folded" : "fold";
    if (b->lowered)
        return fold ? "lowered" : "lower";
    return fold ? "skipped" : "skip";
}

static const char *fate_class(const bnf_bn_info *b)
{
    return b->folded ? "fold" : b->lowered ? "lower" : "skip";
}

/* The worst severity of the findings on BN k: 3 error, 2 warning, 1 info, 0 none. */
static int worst(const bnf_report *r, size_t k)
{
    int w = 0;
    for (size_t i = 0; i < r->n_findings; i++) {
        const char *s = r->findings[i].severity;
        int v = !strcmp(s, "error") ? 3 : !strcmp(s, "warning") ? 2 : 1;
        if (r->findings[i].bn == k && v > w)
            w = v;
    }
    return w;
}

static const char *const sev_name[4] = {"", "info", "warning", "error"};

static void bn_display_name(FILE *f, const bnf_bn_info *b)
{
    if (b->name && *b->name)
        esc_name(f, b->name);
    else {
        fputs("(unnamed, output ", f);
        esc_name(f, b->output);
        fputc(')', f);
    }
}

/* ---- charts ------------------------------------------------------------------------- */

enum { CW = 540, CH = 190, PL = 52, PR = 12, PT = 40, PB = 30 };
#define PW (CW - PL - PR)
#define PH (CH - PT - PB)

/* channel classes, as the health findings judge them */
enum { CH_OK, CH_DEAD, CH_WARN, CH_ERR };

static int channel_class(const bn_params *bp, size_t i, double *scale)
{
    double g = bp->gamma[i], v = bp->var[i];
    double s = fabs(g / sqrt(v + bp->eps));
    *scale = s;
    if (!isfinite(g) || !isfinite(v) || v < 0 || !isfinite(s))
        return CH_ERR;
    if (v == 0 || v < TINY_VAR || s > LARGE_SCALE)
        return CH_WARN;
    if (g == 0)
        return CH_DEAD;
    return CH_OK;
}

/* A round number >= v: 1, 2, 2.5 or 5 times a power of ten. */
static double nice_ceil(double v)
{
    double p, m;
    if (!(v > 0) || !isfinite(v))
        return 1;
    p = pow(10, floor(log10(v)));
    m = v / p;
    m = m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10;
    return m * p;
}

static double xpos(size_t i, size_t c)
{
    return PL + ((double)i + 0.5) * PW / (double)c;
}

static void chart_open(FILE *f, const char *title, const char *subtitle, const char *label)
{
    fprintf(f, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\" "
               "aria-label=\"", CW, CH, CW, CH);
    bnf_html_text(f, label);
    fputs("\">\n", f);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" class=\"plot\"/>\n", PL, PT, PW,
            PH);
    fprintf(f, "<text x=\"%d\" y=\"14\" class=\"ct\">", PL);
    bnf_html_text(f, title);
    fputs("</text>", f);
    fprintf(f, "<text x=\"%d\" y=\"30\" class=\"cs\">", PL);
    bnf_html_text(f, subtitle);
    fputs("</text>\n", f);
}

/* Labels under the plot: item numbers from `first`, and what they count. */
static void x_axis(FILE *f, size_t c, size_t first, const char *what)
{
    /* every item when few, else a power-of-two step (channel counts usually are) */
    size_t step = 1;
    while ((c + step - 1) / step > 12)
        step *= 2;
    for (size_t i = 0; i < c; i += step)
        if (i == 0 || c - 1 - i >= step / 2 + 1 || c - 1 == i)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">%zu</text>",
                    xpos(i, c), CH - PB + 14, i + first);
    if (c > 1 && (c - 1) % step)
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">%zu</text>",
                xpos(c - 1, c), CH - PB + 14, c - 1 + first);
    fprintf(f, "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">%s</text>\n",
            PL + PW / 2, CH - PB + 24, what);
}

/* The decades of a log axis from 1e(llo) to 1e(lhi): grid lines and labels. */
static void log_grid(FILE *f, double llo, double lhi)
{
    double step = ceil((lhi - llo) / 6);
    for (double e = llo; e <= lhi + 1e-9; e += step) {
        double y = PT + PH - (double)PH * (e - llo) / (lhi - llo);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                   "<text x=\"%d\" y=\"%.1f\" class=\"ax\" text-anchor=\"end\">1e%d</text>\n",
                PL, PL + PW, y, y, PL - 5, y + 3.5, (int)e);
        /* two decades or fewer: also 2 and 5 times each */
        for (int k = 0; k < 2 && lhi - llo <= 2 && e < lhi; k++) {
            double m = k ? 5 : 2, ym = PT + PH - (double)PH * (e + log10(m) - llo) / (lhi - llo);
            fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid minor\"/>"
                       "<text x=\"%d\" y=\"%.1f\" class=\"ax minor\" text-anchor=\"end\">%g</text>\n",
                    PL, PL + PW, ym, ym, PL - 5, ym + 3.5, m * pow(10, e));
        }
    }
}

/* Invisible hover areas with each channel's values (small BNs only). */
static void hover(FILE *f, const bn_params *bp)
{
    size_t c = bp->c;
    double w = (double)PW / (double)c;
    if (c > 256)
        return;
    fputs("<g class=\"hv\">", f);
    for (size_t i = 0; i < c; i++) {
        double s;
        channel_class(bp, i, &s);
        fprintf(f, "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\"><title>channel %zu: "
                   "scale %.4g, gamma %.4g, var %.4g</title></rect>",
                PL + (double)i * w, PT, w, PH, i, s, bp->gamma[i], bp->var[i]);
    }
    fputs("</g>\n", f);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void scale_chart(FILE *f, const bn_params *bp, const char *bn_label)
{
    size_t c = bp->c, n_fin = 0;
    double max = 0, ymax, w = (double)PW / (double)c, bw, median = NAN;
    double *sorted = bnf_malloc(c * sizeof *sorted);
    char sub[120], label[400];
    static const char *const cls[4] = {"bar", "bar dead", "bar warn", "bar err"};

    for (size_t i = 0; i < c; i++) {
        double s;
        if (channel_class(bp, i, &s) != CH_ERR) {
            if (s > max)
                max = s;
            if (sorted)
                sorted[n_fin] = s;
            n_fin++;
        }
    }
    if (sorted && n_fin) {
        qsort(sorted, n_fin, sizeof *sorted, cmp_double);
        median = sorted[n_fin / 2];
    }
    bnf_free(sorted);
    ymax = nice_ceil(max);
    snprintf(sub, sizeof sub, "max %.3g, median %.3g", max, median);
    snprintf(label, sizeof label, "per-channel scale of %s", bn_label);
    chart_open(f, "scale |\xce\xb3 / \xe2\x88\x9a(var + \xce\xb5)|", sub, label);
    /* grid and y labels: 0, ymax/2, ymax */
    for (int k = 0; k <= 2; k++) {
        double y = PT + PH - (double)PH * k / 2;
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                   "<text x=\"%d\" y=\"%.1f\" class=\"ax\" text-anchor=\"end\">%.3g</text>\n",
                PL, PL + PW, y, y, PL - 5, y + 3.5, ymax * k / 2);
    }
    bw = w > 3 ? w * 0.78 : w > 1.2 ? w - 0.6 : w;
    /* one path per class of channel */
    for (int k = CH_OK; k <= CH_WARN; k++) {
        int any = 0;
        for (size_t i = 0; i < c; i++) {
            double s, h;
            if (channel_class(bp, i, &s) != k)
                continue;
            h = (double)PH * s / ymax;
            if (h < 0.6 && s > 0)
                h = 0.6;
            if (!any)
                fprintf(f, "<path class=\"%s\" d=\"", cls[k]);
            any = 1;
            fprintf(f, "M%.2f %dh%.2fv%.2fh%.2fz", xpos(i, c) - bw / 2, PT + PH, bw, -h, -bw);
        }
        if (any)
            fputs("\"/>\n", f);
    }
    if (ymax >= 1 && max > 0 && ymax < 50) { /* identity: scale 1, over the bars */
        double y = PT + PH - PH * (1 / ymax);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"ref\"/>"
                   "<text x=\"%d\" y=\"%.1f\" class=\"reflab\" text-anchor=\"end\">1</text>\n",
                PL, PL + PW, y, y, PL + PW - 2, y - 2);
    }
    /* gamma = 0: a grey mark on the axis; not finite: a red mark on top */
    for (size_t i = 0; i < c; i++) {
        double s;
        int k = channel_class(bp, i, &s);
        if (k == CH_DEAD)
            fprintf(f, "<circle cx=\"%.2f\" cy=\"%d\" r=\"3\" class=\"deadmark\"/>", xpos(i, c),
                    PT + PH);
        else if (k == CH_ERR)
            fprintf(f, "<path class=\"errmark\" d=\"M%.2f %dl-4 -7h8z\"/>", xpos(i, c), PT + 8);
    }
    x_axis(f, c, 0, "channel");
    hover(f, bp);
    fputs("</svg>\n", f);
}

static void var_chart(FILE *f, const bn_params *bp, const char *bn_label)
{
    size_t c = bp->c, n_pos = 0, n_bad = 0;
    double lo = INFINITY, hi = -INFINITY, llo, lhi;
    int show_eps;
    char sub[120], label[400];

    for (size_t i = 0; i < c; i++) {
        double v = bp->var[i];
        if (isfinite(v) && v > 0) {
            if (v < lo)
                lo = v;
            if (v > hi)
                hi = v;
            n_pos++;
        } else {
            n_bad++;
        }
    }
    if (n_pos)
        snprintf(sub, sizeof sub, "min %.3g, max %.3g%s", lo, hi,
                 n_bad ? ", some \xe2\x89\xa4 0 or not finite" : "");
    else
        snprintf(sub, sizeof sub, "no positive finite value");
    snprintf(label, sizeof label, "running variance of %s", bn_label);
    if (!n_pos)
        lo = hi = 1;
    /* epsilon in view when near the values (else the line would flatten) */
    show_eps = bp->eps > 0 && isfinite(bp->eps) &&
               (!n_pos || (log10(bp->eps) > log10(lo) - 4 && log10(bp->eps) < log10(hi) + 4));
    if (bp->eps > 0 && isfinite(bp->eps) && !show_eps) {
        size_t len = strlen(sub);
        snprintf(sub + len, sizeof sub - len, "; \xce\xb5 %.3g far %s", bp->eps,
                 bp->eps < lo ? "below" : "above");
    }
    if (show_eps) { /* keep epsilon in view */
        if (bp->eps < lo)
            lo = bp->eps;
        if (bp->eps > hi)
            hi = bp->eps;
    }
    chart_open(f, "running variance (log scale)", sub, label);
    llo = floor(log10(lo));
    lhi = ceil(log10(hi));
    if (lhi <= llo)
        lhi = llo + 1;
#define VY(v) (PT + PH - (double)PH * (log10(v) - llo) / (lhi - llo))
    log_grid(f, llo, lhi);
    if (show_eps) {
        double y = VY(bp->eps);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"ref eps\"/>"
                   "<text x=\"%d\" y=\"%.1f\" class=\"reflab\" text-anchor=\"end\">\xce\xb5 = %.3g"
                   "</text>\n",
                PL, PL + PW, y, y, PL + PW - 2, y - 3, bp->eps);
    }
    /* the line, broken where a value cannot be drawn */
    {
        int open = 0;
        fputs("<path class=\"line\" d=\"", f);
        for (size_t i = 0; i < c; i++) {
            double v = bp->var[i];
            if (!(isfinite(v) && v > 0)) {
                open = 0;
                continue;
            }
            fprintf(f, "%c%.2f %.2f", open ? 'L' : 'M', xpos(i, c), VY(v));
            if (!open && (i + 1 == c || !(isfinite(bp->var[i + 1]) && bp->var[i + 1] > 0)))
                fputs("h0.01", f); /* a lone point still shows (round caps) */
            open = 1;
        }
        fputs("\"/>\n", f);
    }
    for (size_t i = 0; i < c; i++) {
        double v = bp->var[i];
        if (isfinite(v) && v > 0) {
            if (c <= 64 || v < TINY_VAR)
                fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%s\" class=\"%s\"/>", xpos(i, c),
                        VY(v), v < TINY_VAR ? "3.2" : "2.2", v < TINY_VAR ? "pt warn" : "pt");
        } else { /* <= 0 or not finite: a red mark at the bottom */
            fprintf(f, "<path class=\"errmark\" d=\"M%.2f %dl-4 7h8z\"/>", xpos(i, c),
                    PT + PH - 8);
        }
    }
#undef VY
    x_axis(f, c, 0, "channel");
    fputs("</svg>\n", f);
}

/* One bar per BN (log scale), coloured by its fate, linking to its section:
 * which 0: the largest scale max|s|, 1: the smallest variance. */
static void overview_chart(FILE *f, const bnf_report *r, int which)
{
    size_t n = r->n_bns, n_pos = 0;
    double lo = INFINITY, hi = -INFINITY, llo, lhi, ref = which ? TINY_VAR : LARGE_SCALE;
    double w = (double)PW / (double)n, bw;
    char sub[160];

    for (size_t i = 0; i < n; i++) {
        double v = which ? r->bns[i].min_var : r->bns[i].max_abs_scale;
        if (isfinite(v) && v > 0) {
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            n_pos++;
        }
    }
    if (!n_pos)
        lo = hi = 1;
    if (n_pos)
        snprintf(sub, sizeof sub, "from %.3g to %.3g over %zu BN%s; dashed: %s", lo, hi, n,
                 n == 1 ? "" : "s", which ? "1e-6 (BN_TINY_VAR below)" : "1e4 (BN_LARGE_SCALE above)");
    else
        snprintf(sub, sizeof sub, "no finite value over %zu BN%s", n, n == 1 ? "" : "s");
    chart_open(f, which ? "smallest running variance of each BN" : "largest scale |s| of each BN",
               sub, which ? "smallest running variance per BN" : "largest scale per BN");
    llo = floor(log10(lo));
    lhi = ceil(log10(hi));
    if (lhi <= llo)
        lhi = llo + 1;
    log_grid(f, llo, lhi);
    if (log10(ref) >= llo && log10(ref) <= lhi) {
        double y = PT + PH - (double)PH * (log10(ref) - llo) / (lhi - llo);
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" class=\"ref eps\"/>\n",
                PL, PL + PW, y, y);
    }
    bw = w > 3 ? w * 0.78 : w > 1.2 ? w - 0.6 : w;
    for (size_t i = 0; i < n; i++) {
        const bnf_bn_info *b = &r->bns[i];
        double v = which ? b->min_var : b->max_abs_scale;
        fprintf(f, "<a href=\"#bn%zu\">", i);
        if (isfinite(v) && v > 0) {
            double y = PT + PH - (double)PH * (log10(v) - llo) / (lhi - llo);
            if (y > PT + PH - 1)
                y = PT + PH - 1;
            fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                       "class=\"ov %s%s\">",
                    xpos(i, n) - bw / 2, y, bw, PT + PH - y, fate_class(b),
                    worst(r, i) == 3 ? " err" : "");
        } else {
            fprintf(f, "<path class=\"errmark\" d=\"M%.2f %dl-4 7h8z\">", xpos(i, n), PT + PH - 8);
        }
        fprintf(f, "<title>#%zu ", i + 1);
        bnf_html_text(f, *S(b->name) ? b->name : S(b->output));
        fprintf(f, ": %s %.4g</title></%s></a>", which ? "min var" : "max|s|", v,
                isfinite(v) && v > 0 ? "rect" : "path");
    }
    fputc('\n', f);
    x_axis(f, n, 1, "BatchNormalization #");
    fputs("</svg>\n", f);
}

/* ---- the page -------------------------------------------------------------------------- */

static const char css[] =
    ":root{--fg:#212529;--mute:#6c757d;--line:#dee2e6;--bg:#f8f9fa;--fold:#2b8a3e;--foldbg:#d3f9d8;"
    "--lower:#1864ab;--lowerbg:#d0ebff;--skip:#d9480f;--skipbg:#ffe8cc;--err:#c92a2a;--errbg:#fff5f5;"
    "--warn:#e67700;--warnbg:#fff9db;--info:#1971c2;--infobg:#e7f5ff}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',"
    "Arial,sans-serif;color:var(--fg);background:var(--bg)}\n"
    "main{max-width:1220px;margin:0 auto;padding:24px 28px 48px}\n"
    "h1{font-size:22px;margin:0 0 2px}h1 small{font-weight:400;color:var(--mute);font-size:15px}\n"
    "h2{font-size:17px;margin:30px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}\n"
    ".path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:var(--mute);"
    "word-break:break-all;margin:0 0 18px}\n"
    "code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}\n"
    ".cards{display:flex;flex-wrap:wrap;gap:12px}\n"
    ".card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 16px;"
    "min-width:120px}\n"
    ".card b{display:block;font-size:24px;line-height:1.2;color:#868e96}.card.tot b{color:var(--fg)}.card span{color:var(--mute);"
    "font-size:12.5px}\n"
    ".card.fold b{color:var(--fold)}.card.lower b{color:var(--lower)}.card.skip b{color:var(--skip)}"
    ".card.err b{color:var(--err)}.card.warn b{color:var(--warn)}.card.info b{color:var(--info)}\n"
    ".card.err{border-color:#ffa8a8;background:var(--errbg)}\n"
    "dl.model{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:14px 0 0;"
    "background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px}\n"
    "dl.model dt{color:var(--mute)}dl.model dd{margin:0}\n"
    ".chip{display:inline-block;background:var(--bg);border:1px solid var(--line);border-radius:10px;"
    "padding:0 8px;margin:1px 3px 1px 0;font-size:12.5px}\n"
    "table{border-collapse:collapse;width:100%;background:#fff;border:1px solid var(--line);"
    "border-radius:8px;overflow:hidden}\n"
    "th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}\n"
    "th{background:#f1f3f5;font-weight:600;font-size:12.5px;color:#495057;white-space:nowrap}\n"
    "td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "tr:last-child td{border-bottom:0}\n"
    "td.name{overflow-wrap:anywhere;min-width:200px}\n"
    "td.name a{color:inherit;text-decoration:none}td.name a:hover{text-decoration:underline}\n"
    ".where{display:block;color:var(--mute);font-size:12px}\n"
    "tr.sev3 td{background:var(--errbg)}tr.sev3 td:first-child{box-shadow:inset 4px 0 var(--err)}\n"
    "tr.sev2 td{background:var(--warnbg)}tr.sev2 td:first-child{box-shadow:inset 4px 0 var(--warn)}\n"
    ".badge{display:inline-block;border-radius:4px;padding:1px 7px;font-size:12px;font-weight:600;"
    "white-space:nowrap}\n"
    ".badge.fold{background:var(--foldbg);color:var(--fold)}.badge.lower{background:var(--lowerbg);"
    "color:var(--lower)}.badge.skip{background:var(--skipbg);color:var(--skip)}\n"
    ".badge.error{background:var(--err);color:#fff}.badge.warning{background:#ffd43b;color:#5c3c00}"
    ".badge.info{background:var(--infobg);color:var(--info)}\n"
    ".reason{font-size:12.5px}.reason code{color:var(--skip);font-weight:600}\n"
    ".ok{background:var(--foldbg);color:var(--fold);border-radius:8px;padding:10px 16px}\n"
    "section.bn{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;"
    "margin:0 0 14px}\n"
    "section.bn.sev3{border-color:#ffa8a8;box-shadow:inset 4px 0 var(--err)}\n"
    "section.bn.sev2{box-shadow:inset 4px 0 var(--warn)}\n"
    "section.bn h3{font-size:14.5px;margin:0 0 4px;overflow-wrap:anywhere}\n"
    "section.bn h3 .idx{color:var(--mute);font-weight:400;margin-right:6px}\n"
    ".meta{color:#495057;font-size:13px;margin:0 0 6px}\n"
    "ul.findings{margin:4px 0 8px;padding:0;list-style:none}ul.findings li{margin:3px 0}\n"
    ".charts{display:flex;flex-wrap:wrap;gap:10px 16px}\n"
    "svg.chart{background:#fff;max-width:100%;height:auto}\n"
    "svg .plot{fill:#fcfcfd;stroke:#e9ecef}svg .grid{stroke:#e9ecef;stroke-width:1}"
    "svg .grid.minor{stroke-dasharray:2 3}svg .ax.minor{font-size:9.5px;fill:#adb5bd}\n"
    "svg .ax{font-size:10.5px;fill:#868e96}svg .ct{font-size:12.5px;font-weight:600;fill:#343a40}\n"
    "svg .cs{font-size:11px;fill:#868e96}\n"
    "svg .bar{fill:#4c6ef5}svg .bar.dead{fill:#adb5bd}svg .bar.warn{fill:#fd7e14}\n"
    "svg .deadmark{fill:#fff;stroke:#868e96;stroke-width:1.5}svg .errmark{fill:var(--err)}\n"
    "svg .ref{stroke:#868e96;stroke-dasharray:4 3;stroke-width:1}svg .ref.eps{stroke:#e8590c}\n"
    "svg .reflab{font-size:10.5px;fill:#868e96}\n"
    "svg .line{fill:none;stroke:#7048e8;stroke-width:1.6;stroke-linejoin:round;stroke-linecap:round}\n"
    "svg .pt{fill:#7048e8}svg .pt.warn{fill:#fd7e14}\n"
    "svg .ov.fold{fill:#51cf66}svg .ov.lower{fill:#339af0}svg .ov.skip{fill:#ff922b}"
    "svg .ov.err{stroke:#c92a2a;stroke-width:1.5}svg a:hover .ov{opacity:.7}\n"
    "svg .hv rect{fill:transparent}svg .hv rect:hover{fill:rgba(0,0,0,.06)}\n"
    ".legend{color:var(--mute);font-size:12.5px;margin:0 0 12px}\n"
    ".sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 10px;"
    "vertical-align:-1px}\n"
    "footer{color:var(--mute);font-size:12px;margin-top:30px}\n"
    "@media print{body{background:#fff}section.bn{break-inside:avoid}}\n";

static void summary(FILE *f, const bnf_report *r, int fold)
{
    size_t skipped = r->n_bns - r->n_folded - r->n_lowered;
    size_t e = bnf_report_count(r, "error"), w = bnf_report_count(r, "warning"),
           i = bnf_report_count(r, "info");
    fputs("<div class=\"cards\">\n", f);
    fprintf(f, "<div class=\"card tot\"><b>%zu</b><span>BatchNormalization</span></div>\n", r->n_bns);
    fprintf(f, "<div class=\"card%s\"><b>%zu</b><span>%s</span></div>\n",
            r->n_folded ? " fold" : "", r->n_folded, fold ? "folded" : "foldable");
    fprintf(f, "<div class=\"card%s\"><b>%zu</b><span>%s to Mul + Add</span></div>\n",
            r->n_lowered ? " lower" : "", r->n_lowered, fold ? "lowered" : "to lower");
    fprintf(f, "<div class=\"card%s\"><b>%zu</b><span>skipped</span></div>\n",
            skipped ? " skip" : "", skipped);
    fprintf(f, "<div class=\"card%s\"><b>%zu</b><span>health errors</span></div>\n",
            e ? " err" : "", e);
    fprintf(f, "<div class=\"card%s\"><b>%zu</b><span>warnings</span></div>\n", w ? " warn" : "",
            w);
    fprintf(f, "<div class=\"card%s\"><b>%zu</b><span>info</span></div>\n", i ? " info" : "", i);
    if (fold)
        fprintf(f, "<div class=\"card tot\"><b>%zu</b><span>BN left in the model</span></div>\n",
                r->n_bns_after);
    if (r->check_ran)
        fprintf(f, "<div class=\"card%s\"><b>%s</b><span>check --fail-on %s</span></div>\n",
                r->check_trips ? " err" : " fold", r->check_trips ? "FAILED" : "passed",
                S(r->check_fail_on));
    fputs("</div>\n", f);

    fputs("<dl class=\"model\">\n<dt>format</dt><dd>IR ", f);
    fprintf(f, "%lld, opsets", (long long)r->ir_version);
    for (size_t k = 0; k < r->n_opsets; k++) {
        fputs(k ? ", " : " ", f);
        bnf_html_text(f, *r->opsets[k].domain ? r->opsets[k].domain : "ai.onnx");
        fprintf(f, " %lld", (long long)r->opsets[k].version);
    }
    fputs("</dd>\n<dt>producer</dt><dd>", f);
    bnf_html_text(f, r->producer && *r->producer ? r->producer : "(not set)");
    fprintf(f, "</dd>\n<dt>nodes</dt><dd>%zu: ", r->n_nodes);
    for (size_t k = 0; k < r->n_op_counts; k++) {
        fputs("<span class=\"chip\">", f);
        bnf_html_text(f, r->op_counts[k].op_type);
        fprintf(f, " %zu</span>", r->op_counts[k].count);
    }
    fprintf(f, "</dd>\n<dt>weights</dt><dd>%zu initializers, %.1f MB</dd>\n", r->n_initializers,
            (double)r->initializer_bytes / 1e6);
    if (r->n_frozen_inputs)
        fprintf(f, "<dt>frozen</dt><dd>%zu initializers no longer graph inputs "
                   "(--freeze-inputs)</dd>\n", r->n_frozen_inputs);
    if (fold && r->verified_local) {
        fprintf(f, "<dt>verified</dt><dd>each fold on its own: worst |diff|/max|out| %.2g", r->local_worst);
        if (r->e2e_requested && r->e2e.ran)
            fprintf(f, "; whole model, %zu input sets: worst %.2g", r->e2e.sets, r->e2e.worst_rel);
        fputs("</dd>\n", f);
    }
    fputs("</dl>\n", f);
}

static void channel_list(FILE *f, const bnf_finding *x)
{
    if (!x->n_channels) {
        fputs("whole BN", f);
        return;
    }
    fprintf(f, "%zu: ", x->n_channels);
    for (size_t c = 0; c < x->n_channels && c < 16; c++)
        fprintf(f, "%s%lld", c ? ", " : "", (long long)x->channels[c]);
    if (x->n_channels > 16)
        fputs(", &hellip;", f);
}

static void findings(FILE *f, const bnf_report *r)
{
    fputs("<h2 id=\"findings\">Health findings</h2>\n", f);
    if (!r->n_findings) {
        fputs("<p class=\"ok\">No health findings: every readable BN has finite, positive "
              "statistics and moderate scales.</p>\n", f);
        return;
    }
    fputs("<table class=\"findings\">\n<thead><tr><th>severity</th><th>code</th>"
          "<th>BatchNormalization</th><th>channels</th><th>message</th></tr></thead><tbody>\n", f);
    for (int sev = 3; sev >= 1; sev--)
        for (size_t i = 0; i < r->n_findings; i++) {
            const bnf_finding *x = &r->findings[i];
            if (strcmp(x->severity, sev_name[sev]))
                continue;
            fprintf(f, "<tr class=\"sev%d\"><td><span class=\"badge %s\">%s</span>%s</td>"
                       "<td><code>", sev, sev_name[sev], sev_name[sev],
                    x->trips ? " <span class=\"badge error\">trips</span>" : "");
            bnf_html_text(f, x->code);
            fprintf(f, "</code></td><td class=\"name\"><a href=\"#bn%zu\">", x->bn);
            bn_display_name(f, &r->bns[x->bn]);
            fputs("</a></td><td>", f);
            channel_list(f, x);
            fputs("</td><td>", f);
            bnf_html_text(f, x->message);
            fputs("</td></tr>\n", f);
        }
    fputs("</tbody></table>\n", f);
}

static void layer_cell(FILE *f, const bnf_bn_info *b)
{
    if (!b->layer) {
        fputs("&ndash;", f);
        return;
    }
    fputs(b->before_layer ? "&rarr; " : "&larr; ", f);
    bnf_html_text(f, b->layer_op);
    fputs(" <span class=\"mono\">", f);
    esc_name(f, *b->layer ? b->layer : "(unnamed)");
    fputs("</span>", f);
}

static void bn_table(FILE *f, const bnf_report *r, int fold)
{
    int notes = 0;
    fputs("<h2 id=\"batchnorms\">BatchNormalization nodes</h2>\n", f);
    if (!r->n_bns) {
        fputs("<p>No BatchNormalization nodes.</p>\n", f);
        return;
    }
    fputs("<p class=\"legend\">&larr; layer before the BN (the BN folds into its output "
          "channels), &rarr; layer after it (into its input channels). Rows with a health "
          "error are red, with a warning yellow. <i>max |s|</i>: largest scale "
          "|&gamma;/&radic;(var+&epsilon;)|.</p>\n", f);
    for (size_t i = 0; i < r->n_bns && !notes; i++)
        notes = !r->bns[i].folded || r->bns[i].assumed_inference || worst(r, i);
    fprintf(f, "<table class=\"bns\">\n<thead><tr><th>#</th><th>%s</th><th>BatchNormalization</th>"
               "<th>layer</th><th>channels</th><th>epsilon</th><th>min var</th><th>max |s|</th>"
               "%s</tr></thead><tbody>\n", fold ? "fate" : "decision",
            notes ? "<th>notes</th>" : "");
    for (size_t i = 0; i < r->n_bns; i++) {
        const bnf_bn_info *b = &r->bns[i];
        int w = worst(r, i);
        fprintf(f, "<tr class=\"sev%d\"><td class=\"n\">%zu</td><td><span class=\"badge %s\">%s"
                   "</span></td><td class=\"name\"><a href=\"#bn%zu\"><span class=\"mono\">",
                w, i + 1, fate_class(b), fate(b, fold), i);
        bn_display_name(f, b);
        fputs("</span></a>", f);
        if (b->path && *b->path) {
            fputs("<span class=\"where\">in ", f);
            bnf_html_text(f, b->path);
            fputs("</span>", f);
        }
        fputs("</td><td class=\"name\">", f);
        layer_cell(f, b);
        fputs("</td><td class=\"n\">", f);
        if (b->channels >= 0)
            fprintf(f, "%lld", (long long)b->channels);
        else
            fputs("&ndash;", f);
        fputs("</td><td class=\"n\">", f);
        num(f, b->epsilon);
        fputs("</td><td class=\"n\">", f);
        num(f, b->min_var);
        fputs("</td><td class=\"n\">", f);
        num(f, b->max_abs_scale);
        fputs("</td>", f);
        if (!notes) {
            fputs("</tr>\n", f);
            continue;
        }
        fputs("<td class=\"reason\">", f);
        if (!b->folded) {
            fputs("<code>", f);
            bnf_html_text(f, b->reason_code);
            fputs("</code> ", f);
            bnf_html_text(f, b->reason);
            if (b->lowered)
                fputs(" (lowered to Mul + Add)", f);
        }
        if (b->assumed_inference)
            fputs(" was in training mode: --assume-inference made it an inference BN", f);
        for (size_t k = 0; k < r->n_findings; k++)
            if (r->findings[k].bn == i) {
                fprintf(f, " <span class=\"badge %s\" title=\"", r->findings[k].severity);
                bnf_html_text(f, r->findings[k].message);
                fputs("\">", f);
                bnf_html_text(f, r->findings[k].code);
                fputs("</span>", f);
            }
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

static void bn_detail(FILE *f, const bnf_report *r, size_t i, const bn_params *bp, int fold,
                      int have_model)
{
    const bnf_bn_info *b = &r->bns[i];
    int w = worst(r, i);
    char label[300];

    snprintf(label, sizeof label, "%s", *S(b->name) ? b->name : S(b->output));
    fprintf(f, "<section class=\"bn sev%d\" id=\"bn%zu\">\n<h3><span class=\"idx\">#%zu</span>"
               "<span class=\"badge %s\">%s</span> <span class=\"mono\">",
            w, i, i + 1, fate_class(b), fate(b, fold));
    bn_display_name(f, b);
    fputs("</span></h3>\n<p class=\"meta\">", f);
    if (b->layer) {
        fputs(b->before_layer ? "before " : "after ", f);
        bnf_html_text(f, b->layer_op);
        fputs(" <span class=\"mono\">", f);
        bnf_html_text(f, *b->layer ? b->layer : "(unnamed)");
        fputs("</span> &middot; ", f);
    }
    if (b->path && *b->path) {
        fputs("in ", f);
        bnf_html_text(f, b->path);
        fputs(" &middot; ", f);
    }
    if (b->channels >= 0)
        fprintf(f, "%lld channels &middot; ", (long long)b->channels);
    fputs("&epsilon; ", f);
    num(f, b->epsilon);
    fputs(" &middot; output <span class=\"mono\">", f);
    bnf_html_text(f, b->output);
    fputs("</span>", f);
    if (!b->folded) {
        fputs("<br><span class=\"reason\"><code>", f);
        bnf_html_text(f, b->reason_code);
        fputs("</code> ", f);
        bnf_html_text(f, b->reason);
        fputs("</span>", f);
    }
    fputs("</p>\n", f);
    {
        int any = 0;
        for (size_t k = 0; k < r->n_findings; k++) {
            const bnf_finding *x = &r->findings[k];
            if (x->bn != i)
                continue;
            if (!any)
                fputs("<ul class=\"findings\">\n", f);
            any = 1;
            fprintf(f, "<li><span class=\"badge %s\">%s</span> <code>", x->severity, x->severity);
            bnf_html_text(f, x->code);
            fputs("</code> ", f);
            bnf_html_text(f, x->message);
            fputs(" <span class=\"where\" style=\"display:inline\">(channels ", f);
            channel_list(f, x);
            fputs(")</span></li>\n", f);
        }
        if (any)
            fputs("</ul>\n", f);
    }
    if (bp && bp->have) {
        fputs("<div class=\"charts\">\n", f);
        scale_chart(f, bp, label);
        var_chart(f, bp, label);
        fputs("</div>\n", f);
    } else if (have_model) {
        fputs("<p class=\"meta\">No charts: ", f);
        bnf_html_text(f, bp && bp->why[0] ? bp->why : "the node was not found in the model");
        fputs(".</p>\n", f);
    }
    fputs("</section>\n", f);
}

bnf_status bnf_report_write_html(const bnf_report *r, const bnf_model *m, FILE *f, bnf_err *err)
{
    html_ctx cx;
    bnf_status rc = BNF_OK;
    int fold;

    if (!r || !f)
        return bnf_fail(err, BNF_ERR_USAGE, "bnf_report_write_html: no report or file");
    fold = !strcmp(r->command, "fold");
    memset(&cx, 0, sizeof cx);
    cx.r = r;
    cx.m = m && m->proto && m->proto->graph ? m : NULL;
    cx.err = err;
    if (cx.m) {
        if (!(cx.p = bnf_calloc(r->n_bns + 1, sizeof *cx.p)))
            return bnf_fail(err, BNF_ERR_NOMEM, "out of memory");
        if ((rc = bnf_walk_model(&params_reader, &cx, cx.m->proto, err)))
            goto out;
    }

    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<meta name=\"generator\" content=\"bnfold " BNF_VERSION "\">\n<title>bnfold: ", f);
    bnf_html_text(f, r->input_path ? r->input_path : "model");
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n<main>\n", css);
    fprintf(f, "<h1>bnfold <small>%s report</small></h1>\n<p class=\"path\">", S(r->command));
    bnf_html_text(f, r->input_path ? r->input_path : "(model from memory)");
    fputs("</p>\n", f);
    summary(f, r, fold);
    if (r->n_bns) {
        fputs("<h2 id=\"overview\">Overview</h2>\n<p class=\"legend\">One bar per "
              "BatchNormalization, in model order (click one for its details): "
              "<span class=\"sw\" style=\"background:#51cf66\"></span>folds "
              "<span class=\"sw\" style=\"background:#339af0\"></span>lowered "
              "<span class=\"sw\" style=\"background:#ff922b\"></span>skipped "
              "<span class=\"sw\" style=\"background:#fff;border:1.5px solid #c92a2a\"></span>"
              "health error; a red mark: no value (not finite or not readable).</p>\n"
              "<div class=\"charts\">\n", f);
        overview_chart(f, r, 0);
        overview_chart(f, r, 1);
        fputs("</div>\n", f);
    }
    findings(f, r);
    bn_table(f, r, fold);
    if (r->n_bns) {
        fputs("<h2 id=\"channels\">Per-channel statistics</h2>\n", f);
        fputs("<p class=\"legend\">Scale bars: <span class=\"sw\" style=\"background:#4c6ef5\">"
              "</span>normal <span class=\"sw\" style=\"background:#fd7e14\"></span>tiny or zero "
              "variance, or scale above 1e4 <span class=\"sw\" style=\"background:#c92a2a\">"
              "</span>not finite or negative variance (marked) <span class=\"sw\" "
              "style=\"background:#adb5bd\"></span>&gamma; = 0 (dead channel, circle on the "
              "axis). Variance: log scale, the dashed orange line is &epsilon;.</p>\n", f);
        for (size_t i = 0; i < r->n_bns; i++)
            bn_detail(f, r, i, cx.p ? &cx.p[i] : NULL, fold, cx.m != NULL);
    }
    fputs("<footer>bnfold " BNF_VERSION " &middot; JSON schema version ", f);
    fprintf(f, "%d &middot; a static page: no script, nothing loaded from elsewhere</footer>\n",
            BNF_JSON_SCHEMA_VERSION);
    fputs("</main>\n</body>\n</html>\n", f);
    if (fflush(f) != 0 || ferror(f))
        rc = bnf_fail(err, BNF_ERR_IO, "writing the HTML report failed");
out:
    for (size_t i = 0; cx.p && i < r->n_bns; i++) {
        bnf_free(cx.p[i].gamma);
        bnf_free(cx.p[i].var);
    }
    bnf_free(cx.p);
    return rc;
}
