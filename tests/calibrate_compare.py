"""tests/calibrate_test.sh's judge: bnfold calibrate's statistics against the
torch reference of testdata/gen_calibrate.py, and what calibration is for.

    calibrate_compare.py DIR CALIBRATED.onnx [CALIBRATED2.onnx]

1. every BN's running mean and variance within 1e-5 relative (in units of
   the channel's standard deviation for the mean) of ref.json;
2. CALIBRATED2 (the same samples, batched otherwise) equal to CALIBRATED to
   the same tolerance;
3. on held-out inputs, the calibrated model's output is closer to the trained
   model's than the untrained model's is (onnx's reference evaluator is not in
   Debian's onnx 1.12: torch is the judge, with the statistics loaded from the
   ONNX files into the same resnet18).
"""
import json
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def stats(path):
    m = onnx.load(path)
    init = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    for n in m.graph.node:  # an exporter's Identity of a shared tensor
        if n.op_type == "Identity" and n.input[0] in init:
            init[n.output[0]] = init[n.input[0]]
    out = {}
    for n in m.graph.node:
        if n.op_type == "BatchNormalization":
            out[n.input[3]] = (init[n.input[3]], init[n.input[4]])
    return out


def outputs(stats_by_name, x):
    import torch
    import torchvision.models as tvm
    torch.manual_seed(0)
    model = tvm.resnet18(weights=None)
    sd = model.state_dict()
    for name, (mean, var) in stats_by_name.items():
        base = name[:-len(".running_mean")]
        sd[base + ".running_mean"] = torch.tensor(mean, dtype=torch.float32)
        sd[base + ".running_var"] = torch.tensor(var, dtype=torch.float32)
    model.load_state_dict(sd)
    model.eval()
    with torch.no_grad():
        return model(torch.tensor(x)).numpy().astype(np.float64)


def main(d, cal, cal2=None):
    ref = json.load(open(d + "/ref.json"))
    got = stats(cal)
    worst = 0.0
    for name, r in ref["bns"].items():
        if name not in got:
            print("FAIL: no BN with running mean '%s' in %s" % (name, cal))
            return 1
        mean, var = got[name]
        rm, rv = np.array(r["mean"]), np.array(r["var"])
        e_var = np.max(np.abs(var - rv) / np.maximum(rv, 1e-30))
        e_mean = np.max(np.abs(mean - rm) / np.sqrt(rv + 1e-30))
        worst = max(worst, e_var, e_mean)
        if e_var > 1e-5 or e_mean > 1e-5:
            print("FAIL: %s: variance off by %.3g relative, mean by %.3g sd" % (name, e_var, e_mean))
            return 1
    print("ok: %d BNs match the torch reference (worst %.2g)" % (len(ref["bns"]), worst))
    if cal2:
        other = stats(cal2)
        w2 = 0.0
        for name, (mean, var) in got.items():
            m2, v2 = other[name]
            w2 = max(w2, np.max(np.abs(v2 - var) / np.maximum(var, 1e-30)),
                     np.max(np.abs(m2 - mean) / np.sqrt(var + 1e-30)))
        if w2 > 1e-5:
            print("FAIL: another batching of the same samples differs by %.3g" % w2)
            return 1
        print("ok: batched as 3 sets of 4 instead of 6 of 2: the same (worst %.2g)" % w2)
    x = np.load(d + "/heldout/input.npy")
    y_tr = outputs(stats(d + "/trained.onnx"), x)
    y_un = outputs(stats(d + "/untrained.onnx"), x)
    y_ca = outputs(got, x)
    scale = np.max(np.abs(y_tr))
    e_un = np.max(np.abs(y_un - y_tr)) / scale
    e_ca = np.max(np.abs(y_ca - y_tr)) / scale
    print("held-out outputs, max |diff| / max |trained|: untrained %.3g, calibrated %.3g" %
          (e_un, e_ca))
    if not e_ca < e_un:
        print("FAIL: calibrating did not bring the outputs closer to the trained model's")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
