#!/usr/bin/python3
"""Differential test of bnfold on generated models (tests/difftest/README.md).

    difftest.py run [-n N] [--seed S] [-j J] [--bnfold BIN] [--out DIR] [--shrink]
        generate cases (S, 0) .. (S, N-1), judge each, print the summary;
        exit 1 when a case failed in a way that is not a known bug
    difftest.py case SEED INDEX [--bnfold BIN] [--out DIR]
        one case, its files kept in DIR/case_SEED_INDEX, its result printed
    difftest.py shrink SEED INDEX [--bnfold BIN] [--out DIR]
        reduce a failing case to a minimal reproducer and save it under
        tests/difftest/regressions/
    difftest.py regress [--bnfold BIN]
        re-run every committed regression case: each must pass, or fail exactly
        as its record says while it is marked known_failing

Debian's python3-onnx 1.12 and python3-numpy; onnxruntime-node in
build/node (tests/lib.sh's ort_node installs it).
"""

import argparse
import collections
import json
import multiprocessing
import os
import shutil
import signal
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import gen  # noqa: E402
import judge  # noqa: E402

ROOT = judge.ROOT
CODES = ["NO_LAYER", "LAYER_MULTI_CONSUMER", "LAYER_GRAPH_OUTPUT", "PARAM_NOT_CONSTANT",
         "PARAM_OVERRIDABLE", "TRAINING_MODE", "SPATIAL", "SHAPE_MISMATCH", "UNSUPPORTED_DTYPE",
         "NON_FINITE", "UNSUPPORTED_LAYER", "PADDING", "UNVERIFIED"]

_W = {}


def worker_init(bnfold, out, env):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _W["ort"] = judge.Ort()
    _W["bnfold"] = bnfold
    _W["out"] = out
    _W["env"] = env


def one(task):
    seed, index, keep = task
    work = os.path.join(_W["out"], "case_%d_%d" % (seed, index))
    t0 = time.time()
    try:
        case = gen.generate(seed, index)
    except Exception as e:
        return {"seed": seed, "index": index, "pattern": "?", "dtype": "?", "opset": 0,
                "generator_error": "%s: %s" % (type(e).__name__, e), "failures": [],
                "ok": False, "new_failures": 1, "times": {"gen": time.time() - t0}}
    tg = time.time() - t0
    if _W["env"].get("BNFOLD_TEST_BREAK_FOLD") and "--no-verify" not in case.opts:
        case.opts.append("--no-verify")
    try:
        r = judge.run_case(case, work, _W["bnfold"], _W["ort"], keep=keep, bnfold_env=_W["env"])
    except Exception:
        r = {"seed": seed, "index": index, "pattern": case.pattern, "dtype": case.dtype,
             "opset": case.opset, "harness_error": traceback.format_exc()[-1500:],
             "failures": [], "ok": False, "new_failures": 1, "times": {}}
    r["times"]["gen"] = tg
    return r


def default_bnfold():
    return os.path.join(ROOT, "build", "bnfold")


def run_many(tasks, jobs, bnfold, out, env, progress=True):
    results = []
    t0 = time.time()
    if jobs <= 1:
        worker_init(bnfold, out, env)
        it = map(one, tasks)
    else:
        pool = multiprocessing.Pool(jobs, worker_init, (bnfold, out, env))
        it = pool.imap_unordered(one, tasks, chunksize=1)
    n = len(tasks)
    every = max(50, n // 100)
    shown = 0
    try:
        for i, r in enumerate(it, 1):
            results.append(r)
            if (r.get("new_failures") or r.get("generator_error") or r.get("harness_error")) and \
                    shown < 200:
                shown += 1
                print("FAIL case %d %d (%s %s opset %s): %s" % (
                    r["seed"], r["index"], r.get("pattern"), r.get("dtype"), r.get("opset"),
                    "; ".join(f["kind"] + ": " + f["detail"] for f in r["failures"]
                              if not f["known"])[:400] or r.get("generator_error") or
                    r.get("harness_error", "")[-400:]), flush=True)
            if progress and (i % every == 0 or i == n):
                el = time.time() - t0
                print("... %d/%d cases, %.0fs, %.2fs per case" % (i, n, el, el / i), flush=True)
    finally:
        if jobs > 1:
            pool.terminate()
            pool.join()
    return results, time.time() - t0


def table(title, counter, total=None, order=None):
    lines = ["", title]
    keys = order if order else sorted(counter, key=lambda k: (-counter[k], str(k)))
    w = max([len(str(k)) for k in keys] + [10])
    for k in keys:
        lines.append("  %-*s %7d" % (w, k, counter.get(k, 0)))
    return "\n".join(lines)


def summary(results, seconds, n, seed, jobs):
    pat = collections.Counter(r.get("pattern", "?") for r in results)
    dt = collections.Counter(r.get("dtype", "?") for r in results)
    ops = collections.Counter("opset %s" % r.get("opset") for r in results)
    opts = collections.Counter(o for r in results for o in r.get("opts", []))
    dec = collections.Counter()
    codes = collections.Counter()
    nbn = 0
    for r in results:
        for e in r.get("expected", []):
            nbn += 1
            dec[e["decision"]] += 1
            if e["decision"] != "fold":
                codes[e["code"]] += 1
    kinds = collections.Counter()
    known = collections.Counter()
    na = collections.Counter()
    for r in results:
        for f in r.get("failures", []):
            if f["known"]:
                known["known (%s)" % f["known"]] += 1
            else:
                kinds["%s [%s]" % (f["kind"], f.get("judge"))] += 1
        if r.get("generator_error"):
            kinds["generator_error"] += 1
        if r.get("harness_error"):
            kinds["harness_error"] += 1
        for x in r.get("na", []):
            why = x["why"]
            for key in ("segfaults", "dilation", "refuses the reference", "beyond float16",
                        "sparse_value", "training outputs", "does not implement",
                        "only float32 is supported", "not support"):
                if key in why:
                    why = key
                    break
            na["%s: %s" % (x["what"], why[:70])] += 1
    failed = [r for r in results if r.get("new_failures")]
    known_cases = [r for r in results if not r.get("new_failures") and not r.get("ok", True)]
    out = []
    out.append("difftest: %d cases (seed %s, %d jobs) in %.0fs (%.2fs per case, %.2fs per case per job)"
               % (len(results), seed, jobs, seconds, seconds / max(1, len(results)),
                  seconds * jobs / max(1, len(results))))
    out.append(table("cases by pattern", pat))
    out.append(table("cases by dtype", dt))
    out.append(table("cases by opset", ops))
    out.append(table("cases by option", opts))
    out.append(table("expected decisions (%d BNs)" % nbn, dec))
    out.append(table("expected skip / lower reason codes", codes, order=CODES +
                     sorted(k for k in codes if k not in CODES)))
    missing = [c for c in CODES if not codes.get(c)]
    if missing:
        out.append("  codes not reached: %s" % " ".join(missing))
    out.append(table("judges not applicable (case count)", na) if na else "\njudges: all applicable")
    out.append(table("known bnfold bugs matched (failures)", known) if known else "\nknown bugs: none matched")
    out.append(table("NEW failures by kind [judge]", kinds) if kinds else "\nNEW failures: none")
    loud = sum(1 for r in results if r.get("noise1", 0) > 1e-2)
    if loud:
        out.append("\njudge 1 noise floor above 1e-2 of max|output| (a fold's correct rounding "
                   "amplified downstream; the weights judge still checks): %d cases" % loud)
    w1 = max([r.get("worst", {}).get("judge1", 0) for r in results] + [0])
    w2 = max([r.get("worst", {}).get("judge2", 0) for r in results] + [0])
    out.append("\nworst |diff|/max|ref| seen: judge 1 (onnxruntime) %.2e, judge 2 (bnfold run) %.2e"
               % (w1, w2))
    out.append("\n%d cases: %d passed, %d failed only with known bugs, %d failed (new)" % (
        len(results), sum(1 for r in results if r.get("ok")), len(known_cases), len(failed)))
    if failed:
        out.append("failed cases (re-run one: difftest.py case SEED INDEX):")
        for r in sorted(failed, key=lambda r: r["index"])[:40]:
            out.append("  %d %d  %s" % (r["seed"], r["index"], r.get("pattern")))
    return "\n".join(out)


def mutation_summary(results):
    """--mutate: bnfold scales every fold by 1.01 (BNFOLD_TEST_BREAK_FOLD) and
    checks nothing (--no-verify); every case with a fold must be caught."""
    by = collections.Counter()
    n = 0
    missed = []
    for r in results:
        if not any(e["decision"] == "fold" for e in r.get("expected", [])):
            continue
        n += 1
        judges = {f.get("judge") for f in r.get("failures", [])}
        for j in ("weights", "ort", "bnfold run"):
            if j in judges:
                by[j] += 1
        if judges & {"weights", "ort", "bnfold run"}:
            by["any"] += 1
        else:
            missed.append("%d %d %s %s" % (r["seed"], r["index"], r["pattern"], r["dtype"]))
    lines = ["mutation (every fold scaled by 1.01, --no-verify): %d cases with a fold" % n]
    for j in ("weights", "ort", "bnfold run", "any"):
        lines.append("  caught by %-11s %5d (%.1f%%)" % (j, by[j], 100.0 * by[j] / max(1, n)))
    if missed:
        lines.append("  missed: " + ", ".join(missed[:20]))
    return "\n".join(lines)


def cmd_run(a):
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    env = {"BNFOLD_TEST_BREAK_FOLD": "1"} if a.mutate else {}
    tasks = [(a.seed, i, a.keep) for i in range(a.start, a.start + a.n)]
    print("difftest: %d cases, seed %d, %d jobs, bnfold %s" % (a.n, a.seed, a.jobs, a.bnfold),
          flush=True)
    results, secs = run_many(tasks, a.jobs, a.bnfold, out, env)
    with open(os.path.join(out, "results_%d.jsonl" % a.seed), "w") as f:
        for r in sorted(results, key=lambda r: r["index"]):
            slim = dict(r)
            slim["expected"] = [{k: e.get(k) for k in ("name", "decision", "code", "position")}
                                for e in r.get("expected", [])]
            f.write(json.dumps(slim, default=str) + "\n")
    text = summary(results, secs, a.n, a.seed, a.jobs)
    if a.mutate:
        text += "\n\n" + mutation_summary(results)
    print(text)
    with open(os.path.join(out, "summary_%d.txt" % a.seed), "w") as f:
        f.write(text + "\n")
    if a.shrink:
        import shrink
        for r in results:
            if r.get("new_failures") and not r.get("generator_error") and not r.get("harness_error"):
                shrink.shrink_case(r["seed"], r["index"], a.bnfold, out)
    return 1 if any(r.get("new_failures") for r in results) else 0


def cmd_case(a):
    out = os.path.abspath(a.out)
    worker_init(a.bnfold, out, {})
    r = one((a.seed, a.index, True))
    case = gen.generate(a.seed, a.index)
    print(json.dumps(r, indent=1, default=str))
    print("files in %s" % os.path.join(out, "case_%d_%d" % (a.seed, a.index)))
    print(case.describe())
    _W["ort"].stop()
    return 0 if r.get("ok") else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run")
    p.add_argument("-n", type=int, default=300)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("-j", "--jobs", type=int, default=2)
    p.add_argument("--keep", action="store_true", help="keep every case's files")
    p.add_argument("--shrink", action="store_true", help="shrink every new failure")
    p.add_argument("--mutate", action="store_true",
                   help="judge a broken bnfold (BNFOLD_TEST_BREAK_FOLD): every fold must be caught")
    for q in [p] + [sub.add_parser(c) for c in ("case", "shrink", "regress")]:
        q.add_argument("--bnfold", default=os.environ.get("BNFOLD", default_bnfold()))
        q.add_argument("--out", default=os.path.join(ROOT, "build", "difftest"))
        if q.prog.split()[-1] == "regress":
            q.add_argument("--reshrink", action="store_true",
                           help="shrink the regression cases further, in place")
            q.add_argument("names", nargs="*")
        if q.prog.split()[-1] in ("case", "shrink"):
            q.add_argument("seed", type=int)
            q.add_argument("index", type=int)
        if q.prog.split()[-1] == "shrink":
            q.add_argument("--name", help="the regression folder's name")
    a = ap.parse_args()
    a.bnfold = os.path.abspath(a.bnfold)
    if not os.access(a.bnfold, os.X_OK):
        print("difftest: %s is not an executable (make all first)" % a.bnfold, file=sys.stderr)
        return 2
    if a.cmd == "run":
        return cmd_run(a)
    if a.cmd == "case":
        return cmd_case(a)
    if a.cmd == "shrink":
        import shrink
        return shrink.shrink_case(a.seed, a.index, a.bnfold, os.path.abspath(a.out), a.name)
    if a.cmd == "regress":
        import regress
        if a.reshrink:
            import glob
            import shrink
            for d in sorted(glob.glob(os.path.join(HERE, "regressions", "*"))):
                if not a.names or os.path.basename(d) in a.names:
                    shrink.reshrink(d, a.bnfold, os.path.abspath(a.out))
            return 0
        return regress.main(a.bnfold, os.path.abspath(a.out), a.names)
    return 2


if __name__ == "__main__":
    sys.exit(main())
