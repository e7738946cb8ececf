#!/usr/bin/env bash
# tests/schema_test.sh BIN: the --json documents of every command validate
# against docs/report.schema.json, and every command's --help and the man page
# docs/bnfold.1 list the same options.
#
#   bash tests/schema_test.sh build/bnfold         (from the repository root)
#
# 1. Runs BIN with --json over a spread of models: inspect and fold on every
#    testdata/models/*.onnx; inspect and fold on every testdata/patterns case
#    with its option (cases.txt); inspect and check (passing and failing) on
#    testdata/health/*.onnx; fold, verify (equivalent and not) and run on the
#    demo MobileNetV2.  Each document must validate against the schema (Draft
#    2020-12, Debian's python3-jsonschema, installed with apt-get when missing)
#    and be consistent (summary counts = the arrays, check.pass = no problem).
# 2. Mutated documents (an unknown decision, a missing field, an extra field,
#    an unknown code) must be rejected: the schema is not vacuous.
# 3. For each command, the --[a-z-]+ tokens of `BIN CMD --help` are exactly
#    those of the command's section of docs/bnfold.1 (with the shared option
#    sections it takes), and every option the man page names exists; the bash
#    completion (completion/bnfold.bash) offers the same options, and the
#    finding codes for --fail-on.
#
# Works in a temporary directory removed on exit; never writes into testdata/.
# The last line is "N passed, N failed"; the exit status is 1 when one failed.

set -u

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
suite_bin schema_test "$@"
SCHEMA=$ROOT/docs/report.schema.json
MAN=$ROOT/docs/bnfold.1
# Debian's python3-jsonschema (test time only)
need schema_test python3-jsonschema "$PY" -c 'import jsonschema'
suite_tmp schema
DOCS=$TMP/docs
mkdir -p "$DOCS" "$TMP/out"

# tally NAME: the "ok CASE" and "FAIL CASE: why" lines of a Python checker on
# stdin, one case each; any other line fails case NAME
tally() {
    local line rest
    while IFS= read -r line; do
        case $line in
        "ok "*) verdict "${line#ok }" 0 "" ;;
        "FAIL "*)
            rest=${line#FAIL }
            verdict "${rest%%: *}" 1 "${rest#*: }"
            ;;
        *) verdict "$1" 1 "$line" ;;
        esac
    done
}

# ---------------------------------------------------------------------------
# 1. documents
# ---------------------------------------------------------------------------

N_DOCS=0
# doc NAME WANT_RC... -- COMMAND...: runs COMMAND; its stdout is document NAME
# when the exit status is one of WANT_RC (else a failed case).
doc() {
    local name=$1 rc ok=0
    local -a want=()
    shift
    while [ "$1" != "--" ]; do
        want+=("$1")
        shift
    done
    shift
    "$@" >"$DOCS/$name.json" 2>"$TMP/stderr"
    rc=$?
    for w in "${want[@]}"; do
        [ "$rc" = "$w" ] && ok=1
    done
    if [ $ok = 0 ]; then
        verdict "run:$name" 1 "exit $rc, wanted ${want[*]}: $(head -c 300 "$TMP/stderr")"
        rm -f "$DOCS/$name.json"
        return
    fi
    N_DOCS=$((N_DOCS + 1))
}

# every test model: inspect and fold (a model that is refused must print nothing)
for m in "$ROOT"/testdata/models/*.onnx; do
    n=$(basename "$m" .onnx)
    "$BIN" inspect "$m" --json >"$TMP/o.json" 2>"$TMP/stderr"
    rc=$?
    case $rc in
    0)
        mv "$TMP/o.json" "$DOCS/inspect.models.$n.json"
        N_DOCS=$((N_DOCS + 1))
        doc "fold.models.$n" 0 -- "$BIN" fold "$m" -o "$TMP/out/$n.onnx" --json
        ;;
    3 | 4)
        [ ! -s "$TMP/o.json" ]
        verdict "refused:$n" $? "exit $rc but a document on stdout"
        ;;
    *) verdict "run:inspect.models.$n" 1 "exit $rc: $(head -c 300 "$TMP/stderr")" ;;
    esac
done

# the pattern cases, with their option
while read -r name option _; do
    case $name in '' | '#'*) continue ;; esac
    case $option in
    -) opt=() ;;
    lower_standalone) opt=(--lower-standalone) ;;
    assume_inference) opt=(--assume-inference) ;;
    freeze_inputs) opt=(--freeze-inputs) ;;
    *) verdict "cases.txt:$name" 1 "unknown option '$option'"; continue ;;
    esac
    m=$ROOT/testdata/patterns/$name.onnx
    doc "inspect.patterns.$name.$option" 0 -- "$BIN" inspect "$m" --json "${opt[@]}"
    doc "fold.patterns.$name.$option" 0 -- "$BIN" fold "$m" -o "$TMP/out/$name.onnx" --json "${opt[@]}"
done <"$ROOT/testdata/patterns/cases.txt"

# health models: inspect, the default gate, the strictest gate (fails on any finding)
for m in "$ROOT"/testdata/health/*.onnx; do
    n=$(basename "$m" .onnx)
    doc "inspect.health.$n" 0 -- "$BIN" inspect "$m" --json
    doc "check.health.$n" 0 1 -- "$BIN" check "$m" --json
    doc "check.health.$n.info" 0 1 -- "$BIN" check "$m" --json --fail-on info,unfolded
done

# a check that fails, and one that passes
doc check.fails 1 -- "$BIN" check "$ROOT/testdata/models/skip_nonfinite.onnx" --json
doc check.passes 0 -- "$BIN" check "$ROOT/testdata/models/conv2d.onnx" --json --fail-on BN_NEG_VAR
doc check.unfolded 1 -- "$BIN" check "$ROOT/testdata/models/conv2d.onnx" --json --fail-on unfolded

# runs over many models (the batch document): passed, failed, unreadable
doc batch.check.health 1 -- "$BIN" check "$ROOT/testdata/health" --json -j 2
doc batch.inspect.patterns 0 -- "$BIN" inspect "$ROOT/testdata/patterns" --json -j 2
mkdir -p "$TMP/batch" && printf 'not a model' >"$TMP/batch/broken.onnx"
cp "$ROOT/testdata/models/conv2d.onnx" "$TMP/batch/"
doc batch.check.mixed 3 -- "$BIN" check "$TMP/batch" "$ROOT/testdata/health/neg_var.onnx" --json
doc batch.fold.mixed 3 -- "$BIN" fold "$TMP/batch" --out-dir "$TMP/out/batch" --json

# the demo: fold (checked and not), verify, run
DEMO=$ROOT/testdata/demo/mobilenet_v2_tiny.onnx
doc inspect.demo 0 -- "$BIN" inspect "$DEMO" --json
doc fold.demo 0 -- "$BIN" fold "$DEMO" -o "$TMP/out/demo.onnx" --json
doc fold.demo.no_verify 0 -- "$BIN" fold "$DEMO" -o "$TMP/out/demo2.onnx" --json --no-verify
doc verify.demo 0 -- "$BIN" verify "$DEMO" "$TMP/out/demo.onnx" --json --inputs 2
doc verify.demo.given 0 -- "$BIN" verify "$DEMO" "$TMP/out/demo.onnx" --json --inputs 0 \
    --input "$ROOT/testdata/demo/input_0.pb" --outputs-only
doc verify.differ 1 -- "$BIN" verify "$ROOT/testdata/models/conv2d.onnx" \
    "$ROOT/testdata/models/conv2d_nobias.onnx" --json
doc run.demo 0 -- "$BIN" run "$DEMO" --json
doc run.demo.given 0 -- "$BIN" run "$DEMO" --json --input "$ROOT/testdata/demo/input_0.pb" \
    --repeat 2 --output-dir "$TMP/out"
doc run.gemm 0 -- "$BIN" run "$ROOT/testdata/models/gemm_c_mn.onnx" --json --seed 7
# calibrate: the demo model on two sets of its input
mkdir -p "$TMP/calib/a" "$TMP/calib/b"
cp "$ROOT/testdata/demo/input_0.pb" "$TMP/calib/a/input.pb"
cp "$ROOT/testdata/demo/input_0.pb" "$TMP/calib/b/input.pb"
doc calibrate.demo 0 -- "$BIN" calibrate "$DEMO" --data "$TMP/calib" -o "$TMP/out/cal.onnx" --json
mkdir -p "$TMP/calib_h/a"
"$PY" -c "import numpy as np, sys; np.save(sys.argv[1], np.random.default_rng(3).standard_normal((2, 3, 6, 6)).astype(np.float32))" "$TMP/calib_h/a/X.npy"
doc calibrate.health 0 -- "$BIN" calibrate "$ROOT/testdata/health/untrained.onnx" \
    --data "$TMP/calib_h" -o "$TMP/out/cal2.onnx" --json

[ "$N_DOCS" -ge 100 ]
verdict documents $? "only $N_DOCS documents were produced"

# Validates every document; then the mutations.  Prints "ok NAME" or
# "FAIL NAME: why" per case.
cat >"$TMP/validate.py" <<'EOF'
import copy, json, os, sys
import jsonschema

schema_path, docs = sys.argv[1], sys.argv[2]
with open(schema_path) as f:
    schema = json.load(f)
jsonschema.Draft202012Validator.check_schema(schema)
V = jsonschema.Draft202012Validator(schema)
print("ok schema:is-a-valid-draft-2020-12-schema")

def errors(doc):
    return [e for e in V.iter_errors(doc)]

RESOLVER = jsonschema.RefResolver.from_schema(schema)

def why(doc, errs):
    """The error that says most: from the branch of the document's command."""
    sub = schema["$defs"].get("%s_document" % doc.get("command"))
    if sub is not None:
        sub_errs = list(jsonschema.Draft202012Validator(sub, resolver=RESOLVER).iter_errors(doc))
        errs = sub_errs or errs
    best = jsonschema.exceptions.best_match(errs)
    return "%s at /%s" % (best.message[:200], "/".join(str(p) for p in best.absolute_path))

def consistent(d):
    """Cross-field rules a JSON Schema cannot state."""
    c = d["command"]
    if "models" in d and c != "verify":  # a batch: each model, then the sums
        ms, s = d["models"], d["summary"]
        for m in ms:
            if m["error"] is None:
                bad = consistent(dict(m, command=c))
                if bad:
                    return "%s: %s" % (m["input"], bad)
        if [m["input"] for m in ms] != sorted(m["input"] for m in ms):
            return "models not sorted by input"
        ok = [m for m in ms if m["error"] is None]
        want = {"models": len(ms), "passed": sum(m["exit_code"] == 0 for m in ms),
                "failed": sum(m["exit_code"] == 1 for m in ms),
                "unreadable": sum(m["exit_code"] > 1 for m in ms),
                "batchnorms": sum(m["summary"]["batchnorms"] for m in ok),
                "folded": sum(m["summary"]["folded"] for m in ok),
                "skipped": sum(m["summary"]["skipped"] for m in ok)}
        for k, v in want.items():
            if s[k] != v:
                return "summary.%s %d != %d" % (k, s[k], v)
        rank = {2: 4, 4: 3, 3: 2, 1: 1, 0: 0}
        worst = max((m["exit_code"] for m in ms), key=lambda e: rank[e], default=0)
        if s["exit_code"] != worst:
            return "summary.exit_code %d != the worst of the models' %d" % (s["exit_code"], worst)
        return None
    if c in ("inspect", "check", "fold"):
        bns, s = d["batchnorms"], d["summary"]
        by = {k: sum(b["decision"] == k for b in bns) for k in ("fold", "skip", "lower")}
        if s["batchnorms"] != len(bns):
            return "summary.batchnorms %d != %d entries" % (s["batchnorms"], len(bns))
        if (s["folded"], s["skipped"], s["lowered"]) != (by["fold"], by["skip"], by["lower"]):
            return "summary fold/skip/lower %s != decisions %s" % (
                (s["folded"], s["skipped"], s["lowered"]), by)
        for sev in ("error", "warning", "info"):
            n = sum(x["severity"] == sev for x in d["findings"])
            if s["findings"][sev] != n:
                return "summary.findings.%s %d != %d" % (sev, s["findings"][sev], n)
        names = {b["name"] for b in bns}
        for x in d["findings"]:
            if x["node"] not in names:
                return "finding on unknown node %r" % x["node"]
            if x["n_channels"] < len(x["channels"]) or len(x["channels"]) != min(x["n_channels"], 16):
                return "finding channels %d listed for n_channels %d" % (len(x["channels"]), x["n_channels"])
        if c == "check" and d["check"]["pass"] != (not d["check"]["problems"]):
            return "check.pass disagrees with problems"
        if c == "fold":
            bn_actions = sum(a["op"] == "BatchNormalization" for a in d["actions"])
            if bn_actions != s["folded"]:
                return "%d BatchNormalization actions for %d folded" % (bn_actions, s["folded"])
    return None

names = sorted(os.listdir(docs))
first = {}
for name in names:
    case = name[:-5]
    try:
        with open(os.path.join(docs, name)) as f:
            d = json.load(f)
    except Exception as e:
        print("FAIL %s: not one JSON document: %s" % (case, e))
        continue
    errs = errors(d)
    if errs:
        print("FAIL %s: %s" % (case, why(d, errs)))
        continue
    bad = consistent(d)
    if bad:
        print("FAIL %s: %s" % (case, bad))
        continue
    print("ok %s" % case)
    first.setdefault(("batch." if "models" in d and d["command"] != "verify" else "") + d["command"], d)

# every form was seen
for c in ("inspect", "check", "fold", "verify", "run", "calibrate", "batch.inspect", "batch.check", "batch.fold"):
    print(("ok form:%s" if c in first else "FAIL form:%s: no valid document") % c)

# the schema rejects what it must
def mutations():
    i = first.get("inspect")
    f = first.get("fold")
    k = first.get("check")
    if i and i["batchnorms"]:
        d = copy.deepcopy(i); d["batchnorms"][0]["decision"] = "maybe"; yield "decision-maybe", d
        d = copy.deepcopy(i); d["batchnorms"][0]["position"] = "beside"; yield "position-beside", d
        d = copy.deepcopy(i); b = d["batchnorms"][0]
        b["decision"], b["reason_code"], b["reason"] = "skip", "BOGUS", "x"; yield "reason-code-unknown", d
        d = copy.deepcopy(i); b = d["batchnorms"][0]
        b["decision"], b["reason_code"], b["reason"] = "skip", None, None; yield "skip-without-reason", d
        d = copy.deepcopy(i); d["batchnorms"][0]["local_rel_err"] = 0.0; yield "inspect-with-local-err", d
        d = copy.deepcopy(i); del d["batchnorms"][0]["channels"]; yield "bn-missing-channels", d
    if i:
        d = copy.deepcopy(i); del d["summary"]; yield "missing-summary", d
        d = copy.deepcopy(i); d["surprise"] = 1; yield "extra-field", d
        d = copy.deepcopy(i); d["tool"] = "other"; yield "tool-other", d
        d = copy.deepcopy(i); d["schema_version"] = 1; yield "schema-version-1", d
        d = copy.deepcopy(i); d["command"] = "fold"; yield "inspect-called-fold", d
        d = copy.deepcopy(i); d["model"]["nodes"] = -1; yield "negative-count", d
        d = copy.deepcopy(i); d["check"] = {"fail_on": "error", "pass": True, "problems": []}
        yield "inspect-with-check", d
        d = copy.deepcopy(i); d["findings"].append({"code": "BN_TINY_VAR", "severity": "fatal",
            "node": "", "graph": "", "n_channels": 0, "channels": [], "message": ""})
        yield "severity-fatal", d
    if f:
        d = copy.deepcopy(f); d["actions"].append({"op": "Relu", "node": "n", "position": "after",
            "layer": "l", "layer_op": "Conv", "weight": "w", "bias": "b", "local_rel_err": None})
        yield "action-op-relu", d
        d = copy.deepcopy(f); d["verification"]["end_to_end"] = {"ran": False}; yield "e2e-without-reason", d
        d = copy.deepcopy(f); del d["output"]; yield "fold-without-output", d
    if k:
        d = copy.deepcopy(k); d["check"]["pass"] = not d["check"]["pass"]; yield "check-pass-flipped", d
    v = first.get("verify")
    if v:
        d = copy.deepcopy(v); d["models"] = d["models"][:1]; yield "verify-one-model", d
    b = first.get("batch.check")
    if b:
        d = copy.deepcopy(b); d["schema_version"] = 1; yield "batch-schema-version-1", d
        d = copy.deepcopy(b); del d["summary"]["exit_code"]; yield "batch-summary-without-exit-code", d
        d = copy.deepcopy(b); d["models"][0]["outcome"] = "skipped"; yield "batch-outcome-unknown", d
        d = copy.deepcopy(b); d["summary"]["findings_by_code"]["BOGUS"] = 1; yield "batch-code-unknown", d
        d = copy.deepcopy(b); m = d["models"][0]
        m["exit_code"], m["outcome"] = 3, "unreadable"; yield "batch-report-with-exit-3", d
    r = first.get("run")
    if r:
        d = copy.deepcopy(r); d["outputs"][0]["dtype"] = "complex128"; yield "run-dtype-unknown", d

for name, d in mutations():
    if errors(d):
        print("ok rejects:%s" % name)
    else:
        print("FAIL rejects:%s: the schema accepts it" % name)
EOF

tally validate < <("$PY" -W ignore::DeprecationWarning "$TMP/validate.py" "$SCHEMA" "$DOCS" 2>&1)

# ---------------------------------------------------------------------------
# 3. --help and the man page
# ---------------------------------------------------------------------------

cat >"$TMP/manopts.py" <<'EOF'
import re, sys

man_path, helps = sys.argv[1], sys.argv[2]
TOK = re.compile(r"--[a-z][a-z-]*")
text = open(man_path).read().replace("\\-", "-")
# sections: .SH TITLE and .SS TITLE; a command's section is named by its first word
sections, cur = {}, None
for line in text.splitlines():
    m = re.match(r'^\.(SH|SS)\s+"?([^"]*)"?', line)
    if m:
        cur = m.group(2).strip()
        key = cur.split()[0] if m.group(1) == "SS" else cur
        sections[key] = []
        cur = key
        continue
    if cur is not None and not line.startswith('.\\"'):
        sections[cur].append(line)
toks = {k: set(TOK.findall("\n".join(v))) for k, v in sections.items()}
all_man = set(TOK.findall(text))

shared = {
    "inspect": ["FOLD OPTIONS", "MANY MODELS OPTIONS"],
    "fold": ["VERIFICATION OPTIONS", "EVALUATION OPTIONS", "FOLD OPTIONS",
             "MANY MODELS OPTIONS"],
    "verify": ["VERIFICATION OPTIONS", "EVALUATION OPTIONS"],
    "run": ["EVALUATION OPTIONS"],
    "check": ["FOLD OPTIONS", "MANY MODELS OPTIONS"],
    "calibrate": [],
}
all_help = set()
for cmd, extra in shared.items():
    h = set(TOK.findall(open("%s/%s.txt" % (helps, cmd)).read()))
    all_help |= h
    if cmd not in toks:
        print("FAIL man:%s: no section '.SS %s ...' in the man page" % (cmd, cmd))
        continue
    missing_shared = [s for s in extra if s not in toks]
    if missing_shared:
        print("FAIL man:%s: no section %s" % (cmd, ", ".join(missing_shared)))
        continue
    m = set(toks[cmd])
    for s in extra:
        m |= toks[s]
    if h == m:
        print("ok man:%s" % cmd)
    else:
        out = []
        if h - m:
            out.append("in --help, not in the man page: " + " ".join(sorted(h - m)))
        if m - h:
            out.append("in the man page, not in --help: " + " ".join(sorted(m - h)))
        print("FAIL man:%s: %s" % (cmd, "; ".join(out)))

main = open("%s/main.txt" % helps).read()
all_help |= set(TOK.findall(main))
opts = main.split("Options:", 1)[1].split("\n\n", 1)[0] if "Options:" in main else ""
g = set(TOK.findall(opts))
gm = toks.get("GLOBAL OPTIONS", set())
print(("ok man:global" if g and g == gm else
       "FAIL man:global: bnfold --help options %s, GLOBAL OPTIONS %s" % (sorted(g), sorted(gm))))
missing = set(TOK.findall(main)) - all_man
print("ok man:main-help-named" if not missing else
      "FAIL man:main-help-named: not in the man page: " + " ".join(sorted(missing)))
unknown = all_man - all_help
print("ok man:no-unknown-option" if not unknown else
      "FAIL man:no-unknown-option: the man page names options no --help has: " + " ".join(sorted(unknown)))
EOF

mkdir -p "$TMP/help"
"$BIN" --help >"$TMP/help/main.txt" 2>&1 || verdict "help:main" 1 "bnfold --help failed"
for c in inspect fold verify run check calibrate; do
    "$BIN" $c --help >"$TMP/help/$c.txt" 2>&1 || verdict "help:$c" 1 "bnfold $c --help failed"
done
tally manopts < <("$PY" -W ignore::DeprecationWarning "$TMP/manopts.py" "$MAN" "$TMP/help" 2>&1)

# the bash completion offers the options --help lists (and --quiet), and the
# finding codes of the schema for --fail-on
COMPLETION=$ROOT/completion/bnfold.bash
if [ -f "$COMPLETION" ]; then
    complete_words() { # WORD...: what completing the last word offers
        bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _bnfold
                 printf "%s\n" "${COMPREPLY[@]}"' _ "$COMPLETION" "$@" 2>&1
    }
    for c in inspect fold verify run check calibrate; do
        offered=$( (grep -o -- '--[a-z][a-z-]*' "$TMP/help/$c.txt"; echo --quiet) | sort -u)
        completed=$(complete_words bnfold "$c" m.onnx -- | sort -u)
        [ "$offered" = "$completed" ]
        verdict "completion:$c" $? "offers ${completed//$'\n'/ }, --help has ${offered//$'\n'/ }"
    done
    # shellcheck disable=SC2016 # $defs is a JSON key
    offered=$("$PY" -c 'import json,sys; print("\n".join(sorted(json.load(open(sys.argv[1]))["$defs"]["finding_code"]["enum"] + ["error", "warning", "info", "unfolded"])))' "$SCHEMA")
    completed=$(complete_words bnfold check m.onnx --fail-on "" | sort)
    [ "$offered" = "$completed" ]
    verdict "completion:fail-on" $? "offers ${completed//$'\n'/ }, want ${offered//$'\n'/ }"
else
    verdict completion 1 "$COMPLETION is missing"
fi

# the man page renders without a warning
if command -v groff >/dev/null; then
    w=$(groff -man -ww -z "$MAN" 2>&1)
    [ -z "$w" ]
    verdict man:groff $? "$w"
fi

echo "$N_DOCS documents validated against docs/report.schema.json"
finish
