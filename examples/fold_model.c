/* fold_model.c: libbnfold in a few lines: load a model, say what is in it, fold
 * its BatchNormalizations (every fold checked), and save the result.
 *
 *   cc fold_model.c $(pkg-config --cflags --libs bnfold) -o fold_model
 *   ./fold_model in.onnx out.onnx */
#include <bnfold.h>

#include <stdio.h>

int main(int argc, char **argv)
{
    bnf_err err = {0};
    bnf_model *model = NULL;
    bnf_report *report = NULL;
    int status = 1;

    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.onnx OUT.onnx\n", argv[0]);
        return 2;
    }
    if (bnf_model_load(argv[1], &model, &err) != BNF_OK ||
        bnf_fold(model, NULL, &report, &err) != BNF_OK ||  /* NULL: defaults, checks on */
        bnf_model_save(model, argv[2], &err) != BNF_OK)
        goto out;
    printf("%s: %zu BatchNormalization, %zu folded, %zu left; checked: %s\n", argv[1],
           report->n_bns, report->n_folded, report->n_bns_after,
           report->e2e.ran ? (report->e2e.equivalent ? "same function" : "DIFFERENT")
                           : "each fold on its own");
    for (size_t i = 0; i < report->n_bns; i++)
        if (!report->bns[i].folded)
            printf("  kept %s: %s\n", report->bns[i].name, report->bns[i].reason);
    status = 0;
out:
    if (err.code)
        fprintf(stderr, "error: %s\n", err.msg);
    bnf_report_free(report);
    bnf_model_free(model);
    return status;
}
