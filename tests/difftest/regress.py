"""Re-run every regression case of tests/difftest/regressions/ (each a folder
with model.onnx and case.json, written by shrink.py).

A case whose status is "passing" must pass.  A case whose status is
"known_failing" (a bnfold bug not fixed yet) must fail exactly as its record
says (the same failure signature, nothing new); once it passes, the run says
FIXED and asks for its status to become "passing" (the run still succeeds).
Exit 1 when any case does something else.
"""

import glob
import json
import os
import shutil
import sys

import onnx

import judge
import shrink

HERE = os.path.dirname(os.path.abspath(__file__))


def load(d):
    with open(os.path.join(d, "case.json")) as f:
        rec = json.load(f)
    model = onnx.load(os.path.join(d, "model.onnx"))
    return rec, model


def main(bnfold, out, only=None):
    dirs = sorted(d for d in glob.glob(os.path.join(HERE, "regressions", "*"))
                  if os.path.isfile(os.path.join(d, "case.json")))
    if only:
        dirs = [d for d in dirs if os.path.basename(d) in only]
    ort = judge.Ort()
    bad = fixed = still = passed = 0
    try:
        for d in dirs:
            rec, model = load(d)
            case = shrink.case_from(model, rec["meta"])
            work = os.path.join(out, "regress", os.path.basename(d))
            shutil.rmtree(work, ignore_errors=True)
            r = judge.run_case(case, work, bnfold, ort, keep=True)
            sigs = {tuple(map(str, shrink.signature(f))) for f in r["failures"]}
            want = tuple(rec["signature"])
            name = os.path.basename(d)
            others = [f for f in r["failures"] if tuple(map(str, shrink.signature(f))) != want
                      and not f["known"]]
            if rec["status"] == "passing":
                if r["failures"]:
                    bad += 1
                    print("FAIL   %s: %s" % (name, "; ".join(f["kind"] + ": " + f["detail"][:160]
                                                         for f in r["failures"])))
                else:
                    passed += 1
                    print("ok     %s" % name)
            elif want in sigs and not others:
                still += 1
                print("known  %s (bug %s): still fails as recorded" % (name, rec.get("bug") or "-"))
            elif not r["failures"]:
                fixed += 1
                print("FIXED  %s (bug %s): passes now; set \"status\": \"passing\" in %s" % (
                    name, rec.get("bug") or "-", os.path.relpath(os.path.join(d, "case.json"))))
            else:
                bad += 1
                print("FAIL   %s: fails differently: %s" % (name, "; ".join(
                    f["kind"] + ": " + f["detail"][:160] for f in r["failures"])))
            if not r["failures"]:
                shutil.rmtree(work, ignore_errors=True)
    finally:
        ort.stop()
    print("difftest regressions: %d passed, %d known failing, %d fixed, %d failed" % (
        passed, still, fixed, bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(judge.ROOT, "build", "bnfold"),
                  os.path.join(judge.ROOT, "build", "difftest"), sys.argv[2:]))
