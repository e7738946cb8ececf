#!/usr/bin/env bash
# Interoperability check: fold torchvision models exported by PyTorch with
# bnfold and compare original vs folded outputs under onnxruntime-node; and
# check bnfold's own evaluator (`bnfold run`) against onnxruntime-node on the
# original model (run_compare.js, same seeded inputs).
# Run from anywhere (normally `make interop` at the repo root).
#
# Environment (all optional):
#   BNFOLD         the CLI to test                (default build/bnfold)
#   PYTHON         python with torch/onnx          (default /usr/bin/python3)
#   NODE           node binary                     (default /usr/bin/node, else node)
#   INTEROP_DIR    models and results              (default build/interop)
#   INTEROP_ONLY   space-separated model names to run (default: all)
#   INTEROP_SEED   input seed for compare.js and run_compare.js (default 1234)
#   INTEROP_THREADS  --threads of `bnfold run`     (default 2)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

BNFOLD="${BNFOLD:-build/bnfold}"
PYTHON="${PYTHON:-/usr/bin/python3}"
if [[ -z "${NODE:-}" ]]; then
  if [[ -x /usr/bin/node ]]; then NODE=/usr/bin/node; else NODE=node; fi
fi
OUT="${INTEROP_DIR:-build/interop}"
SEED="${INTEROP_SEED:-1234}"
THREADS="${INTEROP_THREADS:-2}"
NODE_DIR=build/node
HERE=tests/interop

t_start=$(date +%s)

if [[ ! -x "$BNFOLD" ]]; then
  echo "interop: $BNFOLD not found or not executable (run make first)" >&2
  exit 2
fi

# --- onnxruntime-node -------------------------------------------------------
if [[ ! -f "$NODE_DIR/node_modules/onnxruntime-node/package.json" ]]; then
  echo "interop: installing onnxruntime-node into $NODE_DIR"
  mkdir -p "$NODE_DIR"
  npm install --ignore-scripts --no-audit --no-fund --prefix "$NODE_DIR" onnxruntime-node
fi
export NODE_PATH="$ROOT/$NODE_DIR/node_modules${NODE_PATH:+:$NODE_PATH}"
ort_version=$("$NODE" -e 'console.log(require("onnxruntime-node/package.json").version)')
echo "interop: onnxruntime-node $ort_version, bnfold: $BNFOLD"

# --- export (cached) ----------------------------------------------------------
mkdir -p "$OUT"
export_rc=0
# shellcheck disable=SC2086
"$PYTHON" "$HERE/export_models.py" "$OUT" ${INTEROP_ONLY:-} || export_rc=$?
t_export=$(date +%s)

# --- helpers ------------------------------------------------------------------
# json_fields FILE EXPR...: evaluate JS expressions on the parsed document `d`,
# print them tab-separated; exit 1 if the file is not one JSON document.
json_fields() {
  "$NODE" -e '
    const fs = require("fs");
    let d;
    try { d = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); }
    catch (e) { process.exit(1); }
    const out = process.argv.slice(2).map((e) => {
      let v;
      try { v = (new Function("d", "return (" + e + ");"))(d); } catch (err) { v = undefined; }
      return v === undefined || v === null ? "null" : String(v);
    });
    console.log(out.join("\t"));
  ' "$@"
}

# the independent view of the folded file: onnx's checker and its own BN count
onnx_check() {
  "$PYTHON" - "$1" <<'EOF'
import sys, onnx
try:
    m = onnx.load(sys.argv[1])
    onnx.checker.check_model(m)
    print(sum(1 for n in m.graph.node if n.op_type == "BatchNormalization"))
except Exception as e:  # report, do not crash the loop
    print("error: " + " ".join(str(e).split())[:200])
EOF
}

# --- per model ------------------------------------------------------------------
declare -a rows=() reasons=()
passed=0
failed=0
if [[ $export_rc -ne 0 ]]; then
  failed=$((failed + 1))
  rows+=("$(printf '%-34s %5s %9s %8s %12s %11s  %s' "(export)" - - - - - FAIL)")
  reasons+=("export_models.py exited $export_rc (see EXPORT FAILED lines above)")
fi
if [[ ! -f "$OUT/manifest.tsv" ]]; then
  echo "interop: $OUT/manifest.tsv missing" >&2
  echo "0 passed, $((failed + 1)) failed"
  exit 1
fi

while IFS=$'\t' read -r -u 3 name opset bn_expected bn_foldable _shape; do
  [[ -z "$name" ]] && continue
  t0=$(date +%s%N)
  model="$OUT/$name.onnx"
  folded="$OUT/$name.folded.onnx"
  fjson="$OUT/$name.fold.json"
  ijson="$OUT/$name.inspect.json"
  ctxt="$OUT/$name.compare.txt"
  rtxt="$OUT/$name.run.txt"
  rdir="$OUT/$name.run"
  rm -f "$folded" "$fjson" "$ijson" "$ctxt" "$rtxt"
  rm -rf "$rdir"
  why=()
  bn_before="-" bn_after="-" worst="-" rworst="-" rms="-"

  rc=0
  "$BNFOLD" fold "$model" -o "$folded" --json >"$fjson" 2>"$OUT/$name.fold.err" || rc=$?
  if [[ $rc -ne 0 ]]; then
    why+=("fold exited $rc: $(head -c 200 "$OUT/$name.fold.err" | tr '\n' ' ')")
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
    rc=0
    "$BNFOLD" inspect "$folded" --json >"$ijson" 2>"$OUT/$name.inspect.err" || rc=$?
    if [[ $rc -ne 0 ]]; then
      why+=("inspect of folded model exited $rc: $(head -c 200 "$OUT/$name.inspect.err" | tr '\n' ' ')")
    elif ! f=$(json_fields "$ijson" 'd.summary.batchnorms' \
                 'd.batchnorms.filter((b) => b.decision === "fold").length' \
                 'd.batchnorms.filter((b) => b.decision === "fold").map((b) => b.name).slice(0, 5).join(",")'); then
      why+=("inspect --json output is not a JSON document")
    else
      IFS=$'\t' read -r i_bn i_fold i_names <<<"$f"
      [[ "$i_fold" == 0 ]] || why+=("folded model still has $i_fold foldable BN (decision fold): $i_names")
      [[ "$i_bn" == "$bn_after" ]] ||
        why+=("inspect of folded model counts $i_bn BNs, fold reported batchnorms_after=$bn_after")
    fi

    # onnx's own view of the file
    c=$(onnx_check "$folded")
    if [[ "$c" == error:* ]]; then
      why+=("onnx checker on folded model: ${c#error: }")
    elif [[ "$c" != "$bn_after" ]]; then
      why+=("folded model has $c BatchNormalization nodes, fold reported batchnorms_after=$bn_after")
    fi

    # numbers: onnxruntime on both
    rc=0
    "$NODE" "$HERE/compare.js" "$model" "$folded" "$SEED" >"$ctxt" 2>&1 || rc=$?
    if f=$(tail -n 1 "$ctxt" > "$ctxt.json" && json_fields "$ctxt.json" 'd.worst_rel' 'd.error'); then
      IFS=$'\t' read -r worst cerr <<<"$f"
      [[ "$worst" == null ]] && worst="-"
      [[ "$worst" != "-" ]] && worst=$(printf '%.2e' "$worst")
    else
      cerr="compare.js printed no JSON"
    fi
    rm -f "$ctxt.json"
    if [[ $rc -ne 0 ]]; then
      if [[ "$cerr" != null ]]; then
        why+=("onnxruntime: $cerr")
      else
        why+=("outputs differ: $(grep -m1 FAIL "$ctxt" || true)")
      fi
    fi
  fi

  # bnfold's evaluator vs onnxruntime, both on the original model
  rc=0
  "$NODE" "$HERE/run_compare.js" "$BNFOLD" "$model" "$rdir" "$SEED" "$THREADS" >"$rtxt" 2>&1 || rc=$?
  if f=$(tail -n 1 "$rtxt" > "$rtxt.json" && json_fields "$rtxt.json" 'd.worst_rel' 'd.error' \
           'd.run_ms === null ? null : (d.run_ms / 1000).toFixed(1)'); then
    IFS=$'\t' read -r rworst rerr rms <<<"$f"
    if [[ "$rworst" == null ]]; then rworst="-"; else rworst=$(printf '%.2e' "$rworst"); fi
    if [[ "$rms" == null ]]; then rms="-"; fi
  else
    rerr="run_compare.js printed no JSON"
  fi
  rm -f "$rtxt.json"
  if [[ $rc -ne 0 ]]; then
    if [[ "$rerr" != null ]]; then
      why+=("run vs ort: $rerr")
    else
      why+=("run vs ort: outputs differ: $(grep FAIL "$rtxt" | head -n 3 | tr "\n" " " || true)")
    fi
    if [[ "$rworst" == "-" ]]; then rworst=FAIL; fi
  fi

  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  secs="$((ms / 1000)).$(( (ms % 1000) / 100 ))"
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

t_end=$(date +%s)
echo
printf '%-34s %5s %9s %8s %12s %11s  %s\n' model opset "BN before" "BN after" "worst rel" "run vs ort" result
for r in "${rows[@]}"; do echo "$r"; done
if [[ ${#reasons[@]} -gt 0 ]]; then
  echo
  echo "failures:"
  for r in "${reasons[@]}"; do echo "  $r"; done
fi
echo
echo "interop: export $((t_export - t_start))s, fold+check $((t_end - t_export))s, total $((t_end - t_start))s; details in $OUT/"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 && $passed -gt 0 ]]
