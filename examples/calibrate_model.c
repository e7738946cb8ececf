/* calibrate_model.c: BatchNormalization statistics re-estimated from data with
 * libbnfold, then the model folded: what `bnfold calibrate --fold` does.
 *
 *   cc calibrate_model.c $(pkg-config --cflags --libs bnfold) -o calibrate_model
 *   ./calibrate_model in.onnx out.onnx [SET.npy ...]
 *
 * Each .npy file is one calibration set for a model with one input; without
 * files, four seeded random sets of the input's shape stand in (a demo: real
 * calibration wants real data). */
#include <bnfold.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    bnf_err err = {0};
    bnf_model *model = NULL;
    bnf_session *s = NULL;
    bnf_calibration *cal = NULL;
    bnf_report *report = NULL;
    size_t n_sets = argc > 3 ? (size_t)argc - 3 : 4;
    bnf_tensor *t = calloc(n_sets, sizeof *t);
    bnf_named_tensor *named = calloc(n_sets, sizeof *named);
    bnf_input_set *sets = calloc(n_sets, sizeof *sets);
    int status = 1;

    if (argc < 3) {
        fprintf(stderr, "usage: %s IN.onnx OUT.onnx [SET.npy ...]\n", argv[0]);
        return 2;
    }
    if (!t || !named || !sets || bnf_model_load(argv[1], &model, &err) != BNF_OK)
        goto out;
    for (size_t k = 0; k < n_sets; k++) {
        if (argc > 3) {
            if (bnf_tensor_load(argv[3 + k], &t[k], NULL, &err) != BNF_OK)
                goto out;
        } else { /* the input's type and shape, seeded random values */
            bnf_tensors in = {0};
            if ((!s && bnf_session_new(model, NULL, &s, &err) != BNF_OK) ||
                bnf_session_make_inputs(s, NULL, 0, NULL, 0, 100 + k, &in, &err) != BNF_OK)
                goto out;
            t[k] = in.t[0];
            in.t[0].data = NULL;
            bnf_tensors_release(&in);
        }
        named[k] = (bnf_named_tensor){NULL, &t[k], 0};
        sets[k] = (bnf_input_set){&named[k], 1};
    }
    bnf_session_free(s); /* a session borrows the model: gone before it changes */
    s = NULL;
    if (bnf_calibrate(model, sets, n_sets, NULL, &cal, &err) != BNF_OK ||
        bnf_fold(model, NULL, &report, &err) != BNF_OK ||
        bnf_model_save(model, argv[2], &err) != BNF_OK)
        goto out;
    bnf_calibration_write_text(cal, stdout);
    printf("%zu of %zu BatchNormalization folded; wrote %s\n", report->n_folded, report->n_bns,
           argv[2]);
    status = 0;
out:
    if (status)
        fprintf(stderr, "calibrate_model: %s\n", err.msg[0] ? err.msg : "out of memory");
    for (size_t k = 0; t && k < n_sets; k++)
        bnf_tensor_release(&t[k]);
    free(t);
    free(named);
    free(sets);
    bnf_report_free(report);
    bnf_calibration_free(cal);
    bnf_session_free(s);
    bnf_model_free(model);
    return status;
}
