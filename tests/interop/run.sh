#!/usr/bin/env bash
# Interoperability check: fold torchvision models exported by PyTorch with
# bnfold and compare original vs folded outputs under onnxruntime-node; and
# check bnfold's own evaluator (`bnfold run`) against onnxruntime-node on the
# original model (run_compare.js, same seeded inputs).
#
# Second section, "fold patterns": the models of testdata/patterns whose
# cases.txt expectation is fold, lower or fold+lower, each folded with the
# option its line names (table tests/interop/patterns.tsv, checked against
# cases.txt), and the small torch_* models of export_models.py (default
# options).  For each: the fold --json summary must match the table exactly
# (BNs folded / lowered / left, actions' ops, frozen inputs), then the same
# checks as above (inspect, onnx checker, onnxruntime reference vs folded,
# bnfold run vs onnxruntime).  A model onnxruntime refuses to load is "left
# out" when patterns.tsv says so (and a failure otherwise); an operator
# `bnfold run` lacks (If, Loop) is a note there, not a failure.
# Run from anywhere (normally `make interop` at the repo root).
#
# Environment (all optional):
#   BNFOLD         the CLI to test                (default build/bnfold)
#   PYTHON         python with torch/onnx          (default /usr/bin/python3)
#   NODE           node binary                     (default /usr/bin/node, else node)
#   INTEROP_DIR    models and results              (default build/interop)
#   INTEROP_ONLY   space-separated names to run (default: all): exported model
#                  names, testdata pattern names (all their rows) or row ids
#                  NAME@OPTION (e.g. relu_bn@lower_standalone)
#   INTEROP_SEED   input seed for compare.js and run_compare.js (default 1234)
#   INTEROP_THREADS  --threads of `bnfold run`     (default 2)
set -euo pipefail

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"

BNFOLD="${BNFOLD:-build/bnfold}"
PYTHON="${PYTHON:-/usr/bin/python3}"
OUT="${INTEROP_DIR:-build/interop}"
SEED="${INTEROP_SEED:-1234}"
THREADS="${INTEROP_THREADS:-2}"
HERE=tests/interop
PATTERNS=testdata/patterns
PTABLE="$HERE/patterns.tsv"

t_start=$(date +%s)

if [[ ! -x "$BNFOLD" ]]; then
  echo "interop: $BNFOLD not found or not executable (run make first)" >&2
  exit 2
fi

# --- onnxruntime-node (NODE: tests/lib.sh) ------------------------------------
ort_node interop
echo "interop: onnxruntime-node $ort_version, bnfold: $BNFOLD"

# --- selection ------------------------------------------------------------------
# INTEROP_ONLY names of testdata pattern rows (NAME or NAME@OPTION) select
# those rows; the rest go to export_models.py.
declare -A ptable_names=()
while read -r n o _rest; do
  [[ -z "$n" || "$n" == \#* ]] && continue
  ptable_names["$n"]=1
  ptable_names["$n@$o"]=1
done <"$PTABLE"
declare -A only_rows=()
export_names=()
for n in ${INTEROP_ONLY:-}; do
  if [[ -n "${ptable_names[$n]:-}" ]]; then only_rows["$n"]=1; else export_names+=("$n"); fi
done
# row_selected NAME OPTION
row_selected() {
  [[ -z "${INTEROP_ONLY:-}" || -n "${only_rows[$1]:-}" || -n "${only_rows[$1@$2]:-}" ]]
}

# --- export (cached) ----------------------------------------------------------
mkdir -p "$OUT" "$OUT/patterns"
rm -f "$OUT/manifest.tsv" "$OUT/patterns_manifest.tsv"
export_rc=0
if [[ -n "${INTEROP_ONLY:-}" && ${#export_names[@]} -eq 0 ]]; then
  "$PYTHON" "$HERE/export_models.py" "$OUT" --none || export_rc=$?
else
  "$PYTHON" "$HERE/export_models.py" "$OUT" "${export_names[@]}" || export_rc=$?
fi
t_export=$(date +%s)

# --- helpers (json_fields: tests/lib.sh) ----------------------------------------
# the independent view of the folded file: onnx's checker and its own BN count
# (subgraphs and model-local function bodies included)
onnx_check() {
  "$PYTHON" - "$1" <<'EOF'
import sys, onnx

def bn_count(g):
    c = 0
    for n in g.node:
        c += n.op_type == "BatchNormalization"
        for a in n.attribute:
            c += sum(bn_count(s) for s in ([a.g] if a.HasField("g") else []) + list(a.graphs))
    return c

try:
    m = onnx.load(sys.argv[1])
    onnx.checker.check_model(m)
    print(bn_count(m.graph) + sum(bn_count(f) for f in m.functions))
except Exception as e:  # report, do not crash the loop
    print("error: " + " ".join(str(e).split())[:200])
EOF
}

# pattern_prep ORIG FOLDED REF_MODE REF_OUT: the original's BN count (subgraphs
# and function bodies included), onnx's checker and BN count on the folded model, and for REF_MODE
# "inference" REF_OUT = ORIG with every BN an inference BN (training_mode
# dropped, is_test 1, only output Y).  Prints orig_bn TAB folded_bn-or-error.
pattern_prep() {
  "$PYTHON" - "$@" <<'EOF'
import sys, onnx
from onnx import helper

def subgraphs(n):
    for a in n.attribute:
        if a.HasField("g"):
            yield a.g
        yield from a.graphs

def bn_count(g):
    return sum((n.op_type == "BatchNormalization") + sum(bn_count(s) for s in subgraphs(n))
               for n in g.node)

def model_bn_count(m):
    return bn_count(m.graph) + sum(bn_count(f) for f in m.functions)

def to_inference(g, opset):
    for n in g.node:
        if n.op_type == "BatchNormalization":
            had_is_test = any(a.name == "is_test" for a in n.attribute)
            keep = [a for a in n.attribute if a.name not in ("training_mode", "is_test")]
            del n.attribute[:]
            n.attribute.extend(keep)
            if had_is_test or opset < 7:       # is_test defaults to 0 before opset 7
                n.attribute.append(helper.make_attribute("is_test", 1))
            del n.output[1:]
        for s in subgraphs(n):
            to_inference(s, opset)

orig, folded, mode, ref = sys.argv[1:5]
out = []
try:
    m = onnx.load(orig)
    out.append(str(model_bn_count(m)))
    if mode == "inference":
        opset = max([o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] or [1])
        to_inference(m.graph, opset)
        for fn in m.functions:
            to_inference(fn, opset)
        onnx.save(m, ref)
except Exception as e:
    out.append("error")
try:
    f = onnx.load(folded)
    onnx.checker.check_model(f)
    out.append(str(model_bn_count(f)))
except Exception as e:
    out.append("error: " + " ".join(str(e).split())[:200])
print("\t".join(out))
EOF
}

# ort_compare REF FOLDED TXT: compare.js; sets c_rc, worst (formatted or -),
# cerr (null if none) and crefused (null, orig or folded)
ort_compare() {
  c_rc=0
  "$NODE" "$HERE/compare.js" "$1" "$2" "$SEED" >"$3" 2>&1 || c_rc=$?
  worst="-" cerr=null crefused=null
  local f
  if f=$(tail -n 1 "$3" > "$3.json" && json_fields "$3.json" 'd.worst_rel' \
           'd.error.replace(/\s+/g, " ")' 'd.refused'); then
    IFS=$'\t' read -r worst cerr crefused <<<"$f"
    if [[ "$worst" == null ]]; then worst="-"; else worst=$(printf '%.2e' "$worst"); fi
  else
    cerr="compare.js printed no JSON"
  fi
  rm -f "$3.json"
  return 0
}

# ort_run MODEL RDIR TXT: run_compare.js; sets r_rc, rworst (formatted or -),
# rerr (null if none), rms (seconds or -) and runsupp (null or the evaluator's
# "does not implement" message)
ort_run() {
  r_rc=0
  rm -rf "$2"
  "$NODE" "$HERE/run_compare.js" "$BNFOLD" "$1" "$2" "$SEED" "$THREADS" >"$3" 2>&1 || r_rc=$?
  rworst="-" rerr=null rms="-" runsupp=null
  local f
  if f=$(tail -n 1 "$3" > "$3.json" && json_fields "$3.json" 'd.worst_rel' \
           'd.error.replace(/\s+/g, " ")' 'd.run_ms === null ? null : (d.run_ms / 1000).toFixed(1)' \
           'd.unsupported'); then
    IFS=$'\t' read -r rworst rerr rms runsupp <<<"$f"
    if [[ "$rworst" == null ]]; then rworst="-"; else rworst=$(printf '%.2e' "$rworst"); fi
    if [[ "$rms" == null ]]; then rms="-"; fi
  else
    rerr="run_compare.js printed no JSON"
  fi
  rm -f "$3.json"
  return 0
}

# case_files BASE: the files of one model's checks, BASE.* (none left from a
# previous run): folded, fjson, ijson, ctxt, rtxt, rdir (a folder), refm; why,
# the reasons it fails, is empty
case_files() {
  base="$1"
  folded="$base.folded.onnx"
  fjson="$base.fold.json"
  ijson="$base.inspect.json"
  ctxt="$base.compare.txt"
  rtxt="$base.run.txt"
  rdir="$base.run"
  refm="$base.ref.onnx"
  rm -f "$folded" "$fjson" "$ijson" "$ctxt" "$rtxt" "$refm"
  rm -rf "$rdir"
  why=()
}

# inspect_folded LEFT WHAT [FLAGS...]: `bnfold inspect --json FLAGS` on $folded:
# no BN b for which the JavaScript condition LEFT holds (WHAT names them), and
# as many BNs as fold reported (bn_after); adds the reasons to why
inspect_folded() {
  local left="$1" what="$2" rc=0 f i_bn i_left i_names
  shift 2
  "$BNFOLD" inspect "$folded" --json "$@" >"$ijson" 2>"$base.inspect.err" || rc=$?
  if [[ $rc -ne 0 ]]; then
    why+=("inspect of folded model exited $rc: $(head -c 200 "$base.inspect.err" | tr '\n' ' ')")
  elif ! f=$(json_fields "$ijson" 'd.summary.batchnorms' \
               "d.batchnorms.filter((b) => $left).length" \
               "d.batchnorms.filter((b) => $left).map((b) => b.name).slice(0, 5).join(\",\")"); then
    why+=("inspect --json output is not a JSON document")
  else
    IFS=$'\t' read -r i_bn i_left i_names <<<"$f"
    [[ "$i_left" == 0 ]] || why+=("folded model still has $i_left $what: $i_names")
    [[ "$i_bn" == "$bn_after" ]] ||
      why+=("inspect of folded model counts $i_bn BNs, fold reported batchnorms_after=$bn_after")
  fi
  return 0
}

# elapsed T0_NS: seconds since T0_NS, one decimal
elapsed() {
  local ms=$(( ($(date +%s%N) - $1) / 1000000 ))
  echo "$((ms / 1000)).$(( (ms % 1000) / 100 ))"
}

# --- per model ------------------------------------------------------------------
declare -a rows=() prows=() reasons=() notes=() leftout=()
passed=0
failed=0
left=0
if [[ $export_rc -ne 0 ]]; then
  failed=$((failed + 1))
  rows+=("$(printf '%-34s %5s %9s %8s %12s %11s  %s' "(export)" - - - - - FAIL)")
  reasons+=("export_models.py exited $export_rc (see EXPORT FAILED lines above)")
fi
for mf in manifest.tsv patterns_manifest.tsv; do
  if [[ ! -f "$OUT/$mf" ]]; then
    echo "interop: $OUT/$mf missing" >&2
    echo "0 passed, $((failed + 1)) failed"
    exit 1
  fi
done

while IFS=$'\t' read -r -u 3 name opset bn_expected bn_foldable _shape; do
  [[ -z "$name" ]] && continue
  t0=$(date +%s%N)
  model="$OUT/$name.onnx"
  case_files "$OUT/$name"
  bn_before="-" bn_after="-" worst="-" rworst="-" rms="-"

  rc=0
  "$BNFOLD" fold "$model" -o "$folded" --json >"$fjson" 2>"$base.fold.err" || rc=$?
  if [[ $rc -ne 0 ]]; then
    why+=("fold exited $rc: $(head -c 200 "$base.fold.err" | tr '\n' ' ')")
  elif ! f=$(json_fields "$fjson" 'd.summary.batchnorms' 'd.summary.batchnorms_after' \
                'd.summary.folded' 'd.summary.skipped' 'd.command'); then
    why+=("fold --json output is not a JSON document")
  else
    IFS=$'\t' read -r bn_before bn_after n_folded _skipped cmd <<<"$f"
    [[ "$cmd" == fold ]] || why+=("fold JSON command is '$cmd'")
    [[ "$bn_before" == "$bn_expected" ]] ||
      why+=("summary.batchnorms=$bn_before but the model has $bn_expected BatchNormalization nodes")
    if [[ "$n_folded" =~ ^[0-9]+$ && "$bn_before" =~ ^[0-9]+$ && "$bn_after" =~ ^[0-9]+$ ]]; then
      (( n_folded >= bn_foldable )) ||
        why+=("folded $n_folded BNs, at least $bn_foldable are foldable (Conv->BN, sole consumer, constant params)")
      (( bn_after == bn_before - n_folded )) ||
        why+=("batchnorms_after=$bn_after != batchnorms $bn_before - folded $n_folded")
    else
      why+=("summary fields missing or not integers: batchnorms=$bn_before folded=$n_folded batchnorms_after=$bn_after")
    fi
    if [[ ! -s "$folded" ]]; then
      why+=("no folded model written")
    fi
  fi

  if [[ -s "$folded" ]]; then
    # what bnfold itself finds in its output: no BN it would still fold
    inspect_folded 'b.decision === "fold"' "foldable BN (decision fold)"

    # onnx's own view of the file
    c=$(onnx_check "$folded")
    if [[ "$c" == error:* ]]; then
      why+=("onnx checker on folded model: ${c#error: }")
    elif [[ "$c" != "$bn_after" ]]; then
      why+=("folded model has $c BatchNormalization nodes, fold reported batchnorms_after=$bn_after")
    fi

    # numbers: onnxruntime on both
    ort_compare "$model" "$folded" "$ctxt"
    if [[ $c_rc -ne 0 ]]; then
      if [[ "$cerr" != null ]]; then
        why+=("onnxruntime: $cerr")
      else
        why+=("outputs differ: $(grep -m1 FAIL "$ctxt" || true)")
      fi
    fi
  fi

  # bnfold's evaluator vs onnxruntime, both on the original model
  ort_run "$model" "$rdir" "$rtxt"
  if [[ $r_rc -ne 0 ]]; then
    if [[ "$rerr" != null ]]; then
      why+=("run vs ort: $rerr")
    else
      why+=("run vs ort: outputs differ: $(grep FAIL "$rtxt" | head -n 3 | tr "\n" " " || true)")
    fi
    if [[ "$rworst" == "-" ]]; then rworst=FAIL; fi
  fi

  secs=$(elapsed "$t0")
  if [[ ${#why[@]} -eq 0 ]]; then
    result=PASS; passed=$((passed + 1))
  else
    result=FAIL; failed=$((failed + 1))
    for w in "${why[@]}"; do reasons+=("$name: $w"); done
  fi
  rows+=("$(printf '%-34s %5s %9s %8s %12s %11s  %s' "$name" "$opset" "$bn_before" "$bn_after" "$worst" "$rworst" "$result")")
  printf 'interop: %-34s %s (BN %s -> %s, worst rel %s, run vs ort %s, bnfold run %ss, %ss)\n' \
    "$name" "$result" "$bn_before" "$bn_after" "$worst" "$rworst" "$rms" "$secs"
done 3<"$OUT/manifest.tsv" </dev/null

# --- fold patterns ----------------------------------------------------------------
# patterns.tsv against cases.txt: the same (name, option) rows, and counts that
# do what the expectation says
declare -A case_exp=() seen=()
while read -r n o e _rest; do
  [[ -z "$n" || "$n" == \#* ]] && continue
  case "$e" in fold | lower | fold+lower) case_exp["$n $o"]=$e ;; esac
done <"$PATTERNS/cases.txt"
tproblems=()
declare -a pspecs=()   # id, model, option, folded, lowered, actions, bn_after, frozen, ref, ort
while read -r n o fo lo ac ba fr rf ot extra; do
  [[ -z "$n" || "$n" == \#* ]] && continue
  key="$n $o"
  if [[ -n "$extra" || -z "$ot" ]]; then tproblems+=("row '$key': not 9 columns"); continue; fi
  if [[ -n "${seen[$key]:-}" ]]; then tproblems+=("row '$key' appears twice"); continue; fi
  seen["$key"]=1
  if ! [[ "$fo" =~ ^[0-9]+$ && "$lo" =~ ^[0-9]+$ && "$ba" =~ ^[0-9]+$ && "$fr" =~ ^[0-9]+$ ]] ||
     [[ "$rf" != orig && "$rf" != inference ]] || [[ "$ot" != runs && "$ot" != refuses ]]; then
    tproblems+=("row '$key': bad field (folded '$fo' lowered '$lo' bn_after '$ba' frozen '$fr' ref '$rf' ort '$ot')")
    continue
  fi
  e="${case_exp[$key]:-}"
  if [[ -z "$e" ]]; then
    tproblems+=("row '$key' is no fold/lower/fold+lower line of $PATTERNS/cases.txt")
  else
    # something folded: a BN, or a Mul/Add action
    did_fold=0
    [[ "$fo" != 0 ]] && did_fold=1
    IFS=, read -r -a acs <<<"$ac"
    for a in "${acs[@]}"; do
      if [[ "$a" != - && "$a" != BatchNormalization:* ]]; then did_fold=1; fi
    done
    ok=1
    case "$e" in
      fold) [[ $did_fold == 1 && "$lo" == 0 ]] || ok=0 ;;
      lower) [[ $did_fold == 0 && "$lo" != 0 ]] || ok=0 ;;
      fold+lower) [[ $did_fold == 1 && "$lo" != 0 ]] || ok=0 ;;
    esac
    [[ $ok == 1 ]] || tproblems+=("row '$key' (folded $fo, lowered $lo, actions $ac) contradicts cases.txt's '$e'")
  fi
  row_selected "$n" "$o" || continue
  id="$n"
  [[ "$o" != - ]] && id="$n@$o"
  pspecs+=("$id"$'\t'"$PATTERNS/$n.onnx"$'\t'"$o"$'\t'"$fo"$'\t'"$lo"$'\t'"$ac"$'\t'"$ba"$'\t'"$fr"$'\t'"$rf"$'\t'"$ot")
done <"$PTABLE"
for key in "${!case_exp[@]}"; do
  [[ -n "${seen[$key]:-}" ]] || tproblems+=("cases.txt line '$key' (${case_exp[$key]}) is missing from $PTABLE")
done
if [[ ${#tproblems[@]} -gt 0 ]]; then
  failed=$((failed + 1))
  prows+=("$(printf '%-30s %-16s %5s %3s %5s %6s %7s  %-17s %10s %10s  %s' "(patterns.tsv)" - - - - - - - - - FAIL)")
  for w in "${tproblems[@]}"; do reasons+=("patterns.tsv: $w"); done
fi
# the torch-exported pattern models (default options)
while IFS=$'\t' read -r -u 3 name _opset _nbn fo lo ac ba _shape; do
  [[ -z "$name" ]] && continue
  pspecs+=("$name"$'\t'"$OUT/$name.onnx"$'\t'-$'\t'"$fo"$'\t'"$lo"$'\t'"$ac"$'\t'"$ba"$'\t'0$'\t'orig$'\t'runs)
done 3<"$OUT/patterns_manifest.tsv"

for spec in "${pspecs[@]}"; do
  IFS=$'\t' read -r id model opt e_fo e_lo e_ac e_ba e_fr e_ref e_ort <<<"$spec"
  t0=$(date +%s%N)
  case_files "$OUT/patterns/$id"
  result=""
  flags=()
  case "$opt" in
    -) ;;
    lower_standalone) flags=(--lower-standalone) ;;
    assume_inference) flags=(--assume-inference) ;;
    freeze_inputs) flags=(--freeze-inputs) ;;
    *) why+=("unknown option '$opt'") ;;
  esac
  opset="-" bn_before="-" bn_after="-" n_folded="-" n_lowered="-" acts="-" worst="-" rworst="-" rms="-"

  rc=0
  if [[ ! -f "$model" ]]; then
    why+=("$model not found")
  else
    "$BNFOLD" fold "$model" -o "$folded" --json "${flags[@]}" >"$fjson" 2>"$base.fold.err" || rc=$?
  fi
  if [[ ! -f "$model" ]]; then
    :
  elif [[ $rc -ne 0 ]]; then
    why+=("fold ${flags[*]} exited $rc: $(head -c 200 "$base.fold.err" | tr '\n' ' ')")
  elif ! f=$(json_fields "$fjson" 'd.command' 'd.summary.batchnorms' 'd.summary.batchnorms_after' \
               'd.summary.folded' 'd.summary.lowered' 'd.summary.frozen_inputs' \
               '(() => { const c = {}; for (const a of d.actions) c[a.op] = (c[a.op] || 0) + 1;
                 const k = Object.keys(c).sort(); return k.length ? k.map((o) => o + ":" + c[o]).join(",") : "-"; })()' \
               'd.model.opsets.filter((o) => o.domain === "" || o.domain === "ai.onnx").map((o) => o.version).join("/")'); then
    why+=("fold --json output is not a JSON document")
  else
    IFS=$'\t' read -r cmd bn_before bn_after n_folded n_lowered n_frozen acts opset <<<"$f"
    [[ "$cmd" == fold ]] || why+=("fold JSON command is '$cmd'")
    [[ "$n_folded" == "$e_fo" ]] || why+=("summary.folded=$n_folded, expected $e_fo")
    [[ "$n_lowered" == "$e_lo" ]] || why+=("summary.lowered=$n_lowered, expected $e_lo")
    [[ "$bn_after" == "$e_ba" ]] || why+=("summary.batchnorms_after=$bn_after, expected $e_ba")
    [[ "$n_frozen" == "$e_fr" ]] || why+=("summary.frozen_inputs=$n_frozen, expected $e_fr")
    [[ "$acts" == "$e_ac" ]] || why+=("actions' ops $acts, expected $e_ac")
    if [[ "$bn_before" =~ ^[0-9]+$ && "$bn_after" =~ ^[0-9]+$ && "$n_folded" =~ ^[0-9]+$ &&
          "$n_lowered" =~ ^[0-9]+$ ]]; then
      (( bn_after == bn_before - n_folded - n_lowered )) ||
        why+=("batchnorms_after=$bn_after != batchnorms $bn_before - folded $n_folded - lowered $n_lowered")
    else
      why+=("summary fields missing or not integers: batchnorms=$bn_before folded=$n_folded lowered=$n_lowered batchnorms_after=$bn_after")
    fi
    [[ -s "$folded" ]] || why+=("no folded model written")
  fi

  if [[ -s "$folded" ]]; then
    # bnfold on its own output, same options: nothing left to fold or lower
    inspect_folded 'b.decision === "fold" || b.decision === "lower"' "BN to fold or lower" "${flags[@]}"

    # onnx's view: BN counts (subgraphs included), checker; the reference model
    IFS=$'\t' read -r o_bn f_bn <<<"$(pattern_prep "$model" "$folded" "$e_ref" "$refm")"
    [[ "$o_bn" == "$bn_before" ]] ||
      why+=("onnx counts ${o_bn:-?} BatchNormalization nodes in the model, fold reported batchnorms=$bn_before")
    if [[ "$f_bn" == error* ]]; then
      why+=("onnx checker on folded model: ${f_bn#error: }")
    elif [[ "$f_bn" != "$bn_after" ]]; then
      why+=("folded model has ${f_bn:-?} BatchNormalization nodes, fold reported batchnorms_after=$bn_after")
    fi
    ref="$model"
    if [[ "$e_ref" == inference ]]; then
      ref="$refm"
      [[ -s "$refm" ]] || why+=("could not write the inference-mode reference $refm")
    fi

    # numbers: onnxruntime on the reference and the folded model
    ort_compare "$ref" "$folded" "$ctxt"
    if [[ "$crefused" == orig ]]; then
      worst="-"
      if [[ "$e_ort" == refuses ]]; then
        result="LEFT OUT"
        leftout+=("$id: $cerr")
      else
        why+=("onnxruntime refuses the reference model ($(basename "$ref")): $cerr")
      fi
    else
      if [[ $c_rc -ne 0 ]]; then
        if [[ "$cerr" != null ]]; then
          why+=("onnxruntime: $cerr")
        else
          why+=("outputs differ: $(grep -m1 FAIL "$ctxt" || true)")
        fi
      fi
      if [[ "$e_ort" == refuses ]]; then
        notes+=("$id: patterns.tsv says onnxruntime refuses it, but onnxruntime loads it now (set ort to runs)")
      fi
      # bnfold's evaluator vs onnxruntime, both on the reference model
      ort_run "$ref" "$rdir" "$rtxt"
      if [[ $r_rc -ne 0 ]]; then
        if [[ "$runsupp" != null ]]; then
          rworst="unsupp."
          notes+=("$id: bnfold run vs ort not compared: $runsupp")
        elif [[ "$rerr" != null ]]; then
          why+=("run vs ort: $rerr")
          rworst=FAIL
        else
          why+=("run vs ort: outputs differ: $(grep FAIL "$rtxt" | head -n 3 | tr "\n" " " || true)")
          [[ "$rworst" == "-" ]] && rworst=FAIL
        fi
      fi
    fi
  fi

  secs=$(elapsed "$t0")
  if [[ ${#why[@]} -gt 0 ]]; then
    result=FAIL; failed=$((failed + 1))
    for w in "${why[@]}"; do reasons+=("$id: $w"); done
  elif [[ "$result" == "LEFT OUT" ]]; then
    left=$((left + 1))
  else
    result=PASS; passed=$((passed + 1))
  fi
  nm="${id%@*}"
  prows+=("$(printf '%-30s %-16s %5s %3s %5s %6s %7s  %-17s %10s %10s  %s' "$nm" "$opt" "$opset" \
    "$bn_before" "$bn_after" "$n_folded" "$n_lowered" "${acts//BatchNormalization/BN}" "$worst" "$rworst" "$result")")
  printf 'interop: %-45s %s (BN %s -> %s, folded %s, lowered %s, actions %s, worst rel %s, run vs ort %s, bnfold run %ss, %ss)\n' \
    "$id" "$result" "$bn_before" "$bn_after" "$n_folded" "$n_lowered" "$acts" "$worst" "$rworst" "$rms" "$secs"
done

t_end=$(date +%s)
echo
printf '%-34s %5s %9s %8s %12s %11s  %s\n' model opset "BN before" "BN after" "worst rel" "run vs ort" result
for r in "${rows[@]}"; do echo "$r"; done
[[ ${#rows[@]} -gt 0 ]] || echo "(none selected)"
echo
echo "fold patterns (testdata/patterns with the option of cases.txt; torch_*: exported, default options)"
printf '%-30s %-16s %5s %3s %5s %6s %7s  %-17s %10s %10s  %s\n' model option opset BN after folded lowered \
  actions "worst rel" "run vs ort" result
for r in "${prows[@]}"; do echo "$r"; done
[[ ${#prows[@]} -gt 0 ]] || echo "(none selected)"
if [[ ${#reasons[@]} -gt 0 ]]; then
  echo
  echo "failures:"
  for r in "${reasons[@]}"; do echo "  $r"; done
fi
if [[ ${#leftout[@]} -gt 0 ]]; then
  echo
  echo "left out (onnxruntime refuses the model; folded and counted, not compared):"
  for r in "${leftout[@]}"; do echo "  $r"; done
fi
if [[ ${#notes[@]} -gt 0 ]]; then
  echo
  echo "notes:"
  for r in "${notes[@]}"; do echo "  $r"; done
fi
echo
echo "interop: export $((t_export - t_start))s, fold+check $((t_end - t_export))s, total $((t_end - t_start))s; details in $OUT/"
echo "$passed passed, $failed failed, $left left out"
[[ $failed -eq 0 && $passed -gt 0 ]]
