#!/usr/bin/env bash
# Evaluator benchmark: bnfold's built-in evaluator against onnxruntime-node on
# torchvision resnet50, mobilenet_v2 and efficientnet_b0 (opset 13, 1x3x224x224).
# Run from anywhere (normally `make bench-eval` at the repo root).  See bench/README.md.
#
# Environment (all optional):
#   REPEAT         timed runs per measurement           (default 10)
#   BENCH_ROUNDS   alternating rounds per row: bnfold, onnxruntime, bnfold on the
#                  folded model, again and again; each tool's time is the median
#                  of its rounds' medians               (default 3)
#   BENCH_THREADS  thread counts to measure              (default "1 2")
#   BENCH_MODELS   models to measure                     (default "resnet50 mobilenet_v2 efficientnet_b0")
#   BENCH_DIR      models and results                    (default build/bench)
#   BNFOLD         the CLI to measure                    (default build/bnfold)
#   PYTHON         python with torch/onnx                (default /usr/bin/python3)
#   NODE           node binary                           (default /usr/bin/node, else node)
#   BENCH_WAIT     before each measurement, wait up to this many seconds for
#                  the machine to be idle (others < 5% of the CPUs over 2 s)  (default 0)
#   BENCH_RETRY    measure a row (model, threads) again, up to this many times,
#                  when other processes used > 10% of the CPUs meanwhile  (default 0)
#
# Writes BENCH_DIR/results.md (the table) and BENCH_DIR/results.tsv.  Exit 0
# when every measurement ran, 1 when one failed (the table says which and why),
# 2 on a set-up error.  The 1.5x target is reported, not enforced.
set -euo pipefail

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_paths BNFOLD BENCH_DIR
cd "$ROOT"

REPEAT="${REPEAT:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "bench: BENCH_ROUNDS must be a positive integer" >&2; exit 2; }
THREADS_LIST="${BENCH_THREADS:-1 2}"
MODELS="${BENCH_MODELS:-resnet50 mobilenet_v2 efficientnet_b0}"
OUT="${BENCH_DIR:-build/bench}"
BNFOLD="${BNFOLD:-build/bnfold}"
PYTHON="${PYTHON:-/usr/bin/python3}"
TARGET=1.5
RETRY="${BENCH_RETRY:-0}"
[[ "$RETRY" =~ ^[0-9]+$ ]] || { echo "bench: BENCH_RETRY must be a number" >&2; exit 2; }

if ! [[ "$REPEAT" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench: REPEAT must be a positive integer, got '$REPEAT'" >&2
  exit 2
fi
if [[ ! -x "$BNFOLD" ]]; then
  echo "bench: $BNFOLD not found or not executable (run make all first)" >&2
  exit 2
fi

# --- tools, and a private copy of the binary ---------------------------------------
bench_tools bench
bench_snapshot

# --- machine ----------------------------------------------------------------------
bench_machine
cpu_fms=$(awk -F': *' '/^cpu family/ && !f {f = $2} /^model[ \t]*:/ && !m {m = $2}
                       END {if (f != "") printf "family %s model %s", f, m}' /proc/cpuinfo)
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
            grep -xE 'avx|avx2|fma|avx512f|avx512_vnni|avx512_bf16|avx_vnni|amx_tile' | tr '\n' ' ' || true)
openblas=$("$PYTHON" - 2>/dev/null <<'PY' || true
import ctypes, ctypes.util
for name in ("libopenblas.so.0", ctypes.util.find_library("openblas")):
    try:
        lib = ctypes.CDLL(name)
    except (OSError, TypeError):
        continue
    lib.openblas_get_config.restype = ctypes.c_char_p
    lib.openblas_get_corename.restype = ctypes.c_char_p
    print(lib.openblas_get_config().decode().strip() + ", core " + lib.openblas_get_corename().decode())
    break
PY
)
machine+=("cpu: ${cpu_model:-unknown} (${cpu_fms:-?}$hyp), nproc $(nproc), ${mem_gb} GB RAM, flags: ${cpu_flags:-none of avx/avx2/fma/avx512}")
machine+=("kernel: $(uname -sr); load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)")
machine+=("openblas: ${openblas:-unknown}")
if [[ -n "${OPENBLAS_CORETYPE:-}" ]]; then
  machine+=("OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE")
fi
machine+=("bnfold: $BNFOLD_SRC at commit $commit$dirty; onnxruntime-node $ort_version; REPEAT=$REPEAT, BENCH_ROUNDS=$ROUNDS")
echo "bench: machine"
for l in "${machine[@]}"; do echo "  $l"; done

# --- models (cached) --------------------------------------------------------------------
if ! "$PYTHON" bench/export.py "$OUT"; then
  echo "bench: export failed" >&2
  exit 2
fi

# --- helpers (json_fields: tests/lib.sh) ---------------------------------------------------
others_cpu=0 wall_total=0 kept_o=0 kept_w=0

# measure TAG CMD...: run CMD under /usr/bin/time, stdout to $OUT/TAG.json.
# Sets ms (median_ms) and rss_mb, or ms=n/a and why=<reason>.  Adds the CPU
# time other processes used meanwhile to others_cpu (machine busy time minus
# the command's own user+sys) and the command's wall time to wall_total.
measure() {
  local tag="$1"; shift
  local js="$OUT/$tag.json" err="$OUT/$tag.err" tm="$OUT/$tag.time"
  local rc=0 b0 b1
  ms="n/a" rss_mb="n/a" why=""
  wait_idle "${BENCH_WAIT:-0}"
  b0=$(cpu_busy)
  /usr/bin/time -f '%e %U %S %M' -o "$tm" "$@" >"$js" 2>"$err" || rc=$?
  b1=$(cpu_busy)
  read -r others_cpu wall_total < <(tail -n 1 "$tm" | awk -v b0="$b0" -v b1="$b1" \
    -v o="$others_cpu" -v w="$wall_total" '
      NF == 4 { x = (b1 - b0) - ($2 + $3); if (x < 0) x = 0; o += x; w += $1 }
      END { print o, w }')
  if [[ $rc -ne 0 ]]; then
    why="exit $rc: $({ grep -v '^Command exited' "$err" || true; } | head -c 300 | tr '\n' ' ')"
    return 0
  fi
  ms=$(json_fields "$js" 'd.median_ms' || echo null)
  if [[ "$ms" == null ]]; then
    ms="n/a"; why="no median_ms in the JSON output"
    return 0
  fi
  local kb
  kb=$(tail -n 1 "$tm" | awk '{print $4}')
  [[ "$kb" =~ ^[0-9]+$ ]] && rss_mb=$(awk -v k="$kb" 'BEGIN {printf "%.0f", k / 1024}')
  return 0
}

fmt_ms() { if [[ "$1" == n/a ]]; then echo n/a; else awk -v v="$1" 'BEGIN {printf "%.1f", v}'; fi; }

# --- measurements ----------------------------------------------------------------------------
declare -a rows=() problems=() noisy=()
n_fail=0 n_met=0 n_rows=0
printf 'model\tthreads\tbnfold_ms\tort_ms\tratio\tbnfold_rss_mb\tort_rss_mb\tbnfold_folded_ms\tfolded_ratio\tbnfold_folded_rss_mb\tothers_cpu_pct\n' \
  >"$OUT/results.tsv"
for name in $MODELS; do
  model="$OUT/$name.onnx"
  folded="$OUT/$name.folded.onnx"
  if [[ ! -f "$model" ]]; then
    echo "bench: $model missing (unknown model name?)" >&2
    exit 2
  fi
  rm -f "$folded"
  fold_ok=1
  if ! "$BNFOLD" fold "$model" -o "$folded" --no-verify >"$OUT/$name.fold.out" 2>"$OUT/$name.fold.err"; then
    fold_ok=0
    problems+=("$name: fold failed: $(head -c 300 "$OUT/$name.fold.err" | tr '\n' ' ')")
    n_fail=$((n_fail + 1))
  fi
  for t in $THREADS_LIST; do
    attempt=0
    while :; do
      row_o0=$others_cpu row_w0=$wall_total
      row_problems=()
      b_all=() o_all=() f_all=()
      # the tools take turns, so that a slow phase of a shared machine falls on
      # all of them rather than on one
      for ((round = 1; round <= ROUNDS; round++)); do
        measure "$name.t$t.bnfold" "$BNFOLD" run "$model" --threads "$t" --repeat "$REPEAT" --json
        b_all+=("$ms") b_rss=$rss_mb
        [[ -z "$why" ]] || row_problems+=("$name threads $t bnfold: $why")
        measure "$name.t$t.ort" "$NODE" bench/ort_time.js "$model" "$t" "$REPEAT"
        o_all+=("$ms") o_rss=$rss_mb
        [[ -z "$why" ]] || row_problems+=("$name threads $t onnxruntime: $why")
        f_rss="n/a"
        if [[ $fold_ok == 1 ]]; then
          measure "$name.t$t.bnfold-folded" "$BNFOLD" run "$folded" --threads "$t" --repeat "$REPEAT" --json
          f_all+=("$ms") f_rss=$rss_mb
          [[ -z "$why" ]] || row_problems+=("$name (folded) threads $t bnfold: $why")
        fi
        [[ ${#row_problems[@]} -eq 0 ]] || break
      done
      b_ms=$(median "${b_all[@]}") o_ms=$(median "${o_all[@]}") f_ms=$(median "${f_all[@]}")
      busy=$(awk -v o0="$row_o0" -v o1="$others_cpu" -v w0="$row_w0" -v w1="$wall_total" -v n="$(nproc)" \
               'BEGIN {printf "%.0f", (w1 > w0 ? 100 * (o1 - o0) / ((w1 - w0) * n) : 0)}')
      attempt=$((attempt + 1))
      # a failed measurement is not retried: it fails again
      if (( busy <= 10 || attempt > RETRY )) || [[ ${#row_problems[@]} -gt 0 ]]; then break; fi
      echo "bench: $name threads $t: other processes used $busy% of the CPUs, measuring again ($attempt/$RETRY)"
      wait_idle "${BENCH_WAIT:-0}"
    done
    kept_o=$(awk -v a="$kept_o" -v o0="$row_o0" -v o1="$others_cpu" 'BEGIN {print a + o1 - o0}')
    kept_w=$(awk -v a="$kept_w" -v w0="$row_w0" -v w1="$wall_total" 'BEGIN {print a + w1 - w0}')
    if [[ ${#row_problems[@]} -gt 0 ]]; then
      problems+=("${row_problems[@]}")
      n_fail=$((n_fail + ${#row_problems[@]}))
    fi
    (( busy > 10 )) && noisy+=("$name threads $t: $busy%")
    r=$(ratio "$b_ms" "$o_ms")
    fr=$(ratio "$f_ms" "$o_ms")
    if [[ "$r" != n/a ]]; then
      n_rows=$((n_rows + 1))
      awk -v r="$r" -v t="$TARGET" 'BEGIN {exit !(r <= t)}' && n_met=$((n_met + 1))
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$t" "$b_ms" "$o_ms" "$r" "$b_rss" "$o_rss" \
      "$f_ms" "$fr" "$f_rss" "$busy" >>"$OUT/results.tsv"
    rows+=("| $name | $t | $(fmt_ms "$b_ms") | $(fmt_ms "$o_ms") | $r | $b_rss | $o_rss | $(fmt_ms "$f_ms") | $fr |")
    printf 'bench: %-16s threads %s  bnfold %s ms  ort %s ms  ratio %s  folded %s ms  (others used %s%% of the CPUs)\n' \
      "$name" "$t" "$b_ms" "$o_ms" "$r" "$f_ms" "$busy"
  done
done

# --- report ---------------------------------------------------------------------------------
machine[0]="${machine[0]} to $(date -u '+%H:%M UTC')"
{
  echo "Time per inference: the median over $ROUNDS alternating rounds of each round's median of $REPEAT runs (1x3x224x224, opset 13); peak RSS of the whole process."
  echo
  echo "| model | threads | bnfold ms (median) | ort ms (median) | ratio bnfold/ort | bnfold peak RSS MB | ort peak RSS MB | bnfold folded ms | ratio folded/ort |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in "${rows[@]}"; do echo "$r"; done
  echo
  echo "Target bnfold/ort <= $TARGET: met in $n_met of $n_rows measured rows."
  others_pct=$(awk -v o="$kept_o" -v w="$kept_w" -v n="$(nproc)" \
                 'BEGIN {printf "%.0f", (w > 0 ? 100 * o / (w * n) : 0)}')
  echo "Other processes used $others_pct% of the $(nproc) CPUs while the measurements ran."
  if (( others_pct > 10 )); then
    echo
    echo "Warning: other processes competed for the CPUs; these times are not reliable"
    echo "(their share of the CPUs per row: ${noisy[*]:-none above 10%})."
    echo "Run it again on a quiet machine."
  fi
} | bench_results "Not measured:" || exit 1
