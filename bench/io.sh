#!/usr/bin/env bash
# Model I/O benchmark: how long bnfold takes, and how much memory, to read a
# model, fold it and write it, next to copying the file (cp) and to
# onnxruntime's offline optimisation, on resnet50 (~100 MB), vgg11_bn (~530 MB)
# and a synthetic 3 GB Conv -> BN model whose weights are external data.
# Run from anywhere (normally `make bench` at the repo root).  See bench/README.md.
#
# Environment (all optional):
#   REPEAT           timed runs per command and model (median)        (default 5)
#   BENCH_MODELS     models to measure                   (default "resnet50 vgg11_bn big")
#   BENCH_DIR        models, logs and results                        (default build/bench-io)
#   BNFOLD           the CLI to measure                              (default build/bnfold)
#   PYTHON           python with torch/onnx                          (default /usr/bin/python3)
#   NODE             node binary                     (default /usr/bin/node, else node)
#   BENCH_BIG_BYTES  weight bytes of the synthetic model             (default 3.0e9)
#   BENCH_FSYNC_REF  1: also time "cp + fsync" (bnfold fsyncs what it writes) (default 1)
#   BENCH_VERIFY_ARGS  extra options of the verifying fold, e.g. "--atol 1e-3" (default none)
#   BENCH_WAIT       before each run, wait up to this many seconds for the machine
#                    to be idle (others < 5% of the CPUs over 2 s)   (default 0)
#
# For each model, REPEAT rounds; each round warms the page cache (cat of the
# model's files to /dev/null, untimed) and then runs every command once, in the
# same order (round-robin, so drift affects all commands alike):
#   cp            cp MODEL [MODEL.data] OUTDIR/
#   cp + fsync    the same, then sync(1) of the copies      (BENCH_FSYNC_REF=1)
#   inspect       bnfold inspect -q MODEL
#   fold -nv      bnfold fold MODEL -o OUTDIR/NAME.folded.onnx --no-verify
#   fold          bnfold fold MODEL -o OUTDIR/NAME.folded.onnx [BENCH_VERIFY_ARGS]
#                 (verification on)
#   verify        bnfold verify MODEL BENCH_DIR/NAME.ref.onnx (the model folded once with
#                 --no-verify before the rounds, untimed; the proof without the fold)
#   ort optimize  node bench/ort_optimize.js MODEL OUTDIR/NAME.ort.onnx [NAME.ort.onnx.data]
#                 (InferenceSession with graphOptimizationLevel 'basic' and
#                 optimizedModelFilePath; external initializers for a model
#                 with a data file)
# OUTDIR (BENCH_DIR/out) is emptied, and its filesystem synced, before and after
# every run: no output and no pending write-back outlives its run.  A model's
# external data file is MODEL.data (the layout bench/make_big.py writes).
# Wall time: bash's EPOCHREALTIME around the /usr/bin/time process (1 us
# resolution; /usr/bin/time's own %e, 10 ms, is kept in the logs); peak RSS:
# /usr/bin/time's %M, the largest over the runs.  A command that fails is not
# run again for that model ("failed: reason" in the table).
#
# Writes BENCH_DIR/results.md and BENCH_DIR/results.tsv, the logs of the last
# run of each command in BENCH_DIR/logs.  Exit 0 when every measurement ran, 1
# when one failed (the table says which and why), 2 on a set-up error.  The
# targets are reported, not enforced.
set -euo pipefail
export LC_ALL=C   # EPOCHREALTIME and awk with a '.' decimal point

# shellcheck source=bench/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
bench_paths BNFOLD BENCH_DIR
cd "$ROOT"

REPEAT="${REPEAT:-5}"
MODELS="${BENCH_MODELS:-resnet50 vgg11_bn big}"
OUT="${BENCH_DIR:-build/bench-io}"
BNFOLD="${BNFOLD:-build/bnfold}"
PYTHON="${PYTHON:-/usr/bin/python3}"
BIG_BYTES="${BENCH_BIG_BYTES:-3.0e9}"
FSYNC_REF="${BENCH_FSYNC_REF:-1}"
WAIT="${BENCH_WAIT:-0}"
[[ "$WAIT" =~ ^[0-9]+$ ]] || { echo "bench-io: BENCH_WAIT must be a number of seconds" >&2; exit 2; }
read -r -a VERIFY_ARGS <<<"${BENCH_VERIFY_ARGS:-}"

if ! [[ "$REPEAT" =~ ^[1-9][0-9]*$ ]]; then
  echo "bench-io: REPEAT must be a positive integer, got '$REPEAT'" >&2
  exit 2
fi
if ! [[ "$BIG_BYTES" =~ ^[0-9]+(\.[0-9]*)?([eE][0-9]+)?$ ]]; then
  echo "bench-io: BENCH_BIG_BYTES must be a number, got '$BIG_BYTES'" >&2
  exit 2
fi
[[ "$FSYNC_REF" == 0 || "$FSYNC_REF" == 1 ]] || { echo "bench-io: BENCH_FSYNC_REF must be 0 or 1" >&2; exit 2; }
for name in $MODELS; do
  case "$name" in
    resnet50 | vgg11_bn | big) ;;
    *) echo "bench-io: unknown model '$name' (known: resnet50 vgg11_bn big)" >&2; exit 2 ;;
  esac
done
if [[ ! -x "$BNFOLD" ]]; then
  echo "bench-io: $BNFOLD not found or not executable (run make all first)" >&2
  exit 2
fi

# --- tools, and a private copy of the binary ---------------------------------------
bench_tools bench-io
bench_snapshot
mkdir -p "$OUT/logs"
OUTDIR="$OUT/out"

# --- machine ----------------------------------------------------------------------
bench_machine
fs_info=$(df -PT "$OUT" | awk 'NR == 2 {print $2 " on " $1}')
machine+=("cpu: ${cpu_model:-unknown}$hyp, nproc $(nproc), ${mem_gb} GiB RAM")
machine+=("kernel: $(uname -sr); $OUT on ${fs_info:-?}; load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)")
machine+=("bnfold: $BNFOLD_SRC (the repository is at commit $commit$dirty); onnxruntime-node $ort_version; REPEAT=$REPEAT${VERIFY_ARGS[*]:+; verifying fold with ${VERIFY_ARGS[*]}}")
echo "bench-io: machine"
for l in "${machine[@]}"; do echo "  $l"; done

# --- models (cached) --------------------------------------------------------------------
for name in $MODELS; do
  case "$name" in
    resnet50)
      if [[ ! -f "$OUT/resnet50.onnx" ]]; then
        if [[ -f build/bench/resnet50.onnx ]]; then
          echo "bench-io: resnet50 from build/bench (the evaluator benchmark's export)"
          cp build/bench/resnet50.onnx "$OUT/resnet50.onnx.tmp"
          mv -f "$OUT/resnet50.onnx.tmp" "$OUT/resnet50.onnx"
        elif ! "$PYTHON" bench/export.py "$OUT" resnet50; then
          echo "bench-io: export of resnet50 failed" >&2; exit 2
        fi
      fi ;;
    vgg11_bn)
      if ! "$PYTHON" bench/export.py "$OUT" vgg11_bn; then
        echo "bench-io: export of vgg11_bn failed" >&2; exit 2
      fi ;;
    big)
      # regenerated when missing or made with other parameters
      stamp="bytes=$BIG_BYTES channels=1536 seed=0"
      if [[ ! -f "$OUT/big.onnx" || ! -f "$OUT/big.onnx.data" ||
            "$(cat "$OUT/big.onnx.params" 2>/dev/null || true)" != "$stamp" ]]; then
        rm -f "$OUT/big.onnx" "$OUT/big.onnx.data" "$OUT/big.onnx.params"
        echo "bench-io: generating the synthetic model ($BIG_BYTES bytes of weights)"
        if ! "$PYTHON" bench/make_big.py "$OUT/big.onnx" --bytes "$BIG_BYTES"; then
          echo "bench-io: bench/make_big.py failed" >&2; exit 2
        fi
        echo "$stamp" >"$OUT/big.onnx.params"
      else
        echo "bench-io: $OUT/big.onnx (cached)"
      fi ;;
  esac
done

# --- helpers ------------------------------------------------------------------------------
others_cpu=0 wall_total=0

clean_out() {   # empty OUTDIR and flush its filesystem: nothing pending for the next run
  rm -rf "$OUTDIR"
  mkdir -p "$OUTDIR"
  sync -f "$OUT"
}

# run_once TAG CMD...: one timed run of CMD under /usr/bin/time, stdout and
# stderr to BENCH_DIR/logs/TAG.{out,err}.  Sets wall (seconds), rss_kb, out_bytes
# (what it left in OUTDIR) and why ("" on success, else the reason).
run_once() {
  local tag="$1"; shift
  local tm="$OUT/logs/$tag.time" err="$OUT/logs/$tag.err"
  local rc=0 t0 t1 b0 b1
  clean_out
  wait_idle "$WAIT"
  b0=$(cpu_busy)
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%e %U %S %M' -o "$tm" "$@" >"$OUT/logs/$tag.out" 2>"$err" || rc=$?
  t1=$EPOCHREALTIME
  b1=$(cpu_busy)
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", b - a}')
  read -r others_cpu wall_total < <(tail -n 1 "$tm" | awk -v b0="$b0" -v b1="$b1" \
    -v o="$others_cpu" -v w="$wall_total" -v wl="$wall" '
      NF == 4 { x = (b1 - b0) - ($2 + $3); if (x < 0) x = 0; o += x; w += wl }
      END { print o, w }')
  rss_kb=$(tail -n 1 "$tm" | awk 'NF == 4 {print $4}')
  out_bytes=$(find "$OUTDIR" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}')
  why=""
  if [[ $rc -ne 0 ]]; then
    why="exit $rc: $({ grep -v '^Command exited' "$err" || true; } | tail -c 300 | tr '\n' ' ' | sed 's/ *$//')"
  elif [[ ! "$rss_kb" =~ ^[0-9]+$ ]]; then
    why="no peak RSS from /usr/bin/time"
  fi
  clean_out
  return 0
}

maxof() { printf '%s\n' "$@" | sort -g | tail -n 1; }
fmt() {     # fmt VALUE DECIMALS [UNIT]: n/a stays n/a, without the unit
  if [[ "$1" == n/a ]]; then echo n/a; else awk -v v="$1" -v d="$2" -v u="${3:-}" 'BEGIN {printf "%.*f%s", d, v, u}'; fi
}
times_x() { if [[ "$1" == n/a ]]; then echo n/a; else echo "${1}x"; fi; }

# --- commands ----------------------------------------------------------------------------
CMDS=(cp)
[[ "$FSYNC_REF" == 1 ]] && CMDS+=(cpsync)
CMDS+=(inspect foldnv fold verify ort)
declare -A LABEL=([cp]="cp" [cpsync]="cp + fsync" [inspect]="bnfold inspect -q"
                  [foldnv]="bnfold fold --no-verify" [fold]="bnfold fold" [verify]="bnfold verify A B"
                  [ort]="ort optimize (basic)")

# cmd_line CMD MODEL: sets argv to the command line of CMD on MODEL
cmd_line() {
  local cmd="$1" model="$2" base
  base=$(basename "$model" .onnx)
  # shellcheck disable=SC2016  # in cpsync, $1, $@ and * are the inner shell's
  case "$cmd" in
    cp) argv=(cp -- "${files[@]}" "$OUTDIR/") ;;
    # sync FILE...: fsync of each copy, as a writer that fsyncs (bnfold) does
    cpsync) argv=(sh -c 'd=$1; shift; cp -- "$@" "$d/" && cd "$d" && sync -- *' sh "$OUTDIR" "${files[@]}") ;;
    inspect) argv=("$BNFOLD" inspect -q "$model") ;;
    foldnv) argv=("$BNFOLD" fold "$model" -o "$OUTDIR/$base.folded.onnx" --no-verify) ;;
    fold) argv=("$BNFOLD" fold "$model" -o "$OUTDIR/$base.folded.onnx" "${VERIFY_ARGS[@]}") ;;
    verify) argv=("$BNFOLD" verify "$model" "$OUT/$base.ref.onnx" -q "${VERIFY_ARGS[@]}") ;;
    ort)
      argv=("$NODE" bench/ort_optimize.js "$model" "$OUTDIR/$base.ort.onnx")
      if [[ ${#files[@]} -gt 1 ]]; then argv+=("$base.ort.onnx.data"); fi
      ;;
  esac
}

# --- measurements ----------------------------------------------------------------------------
declare -A MED=() RSS=() WHY=() SIZE=() OUTB=()
problems=()
n_fail=0
printf 'model\tsize_mib\tcommand\tmedian_s\tratio_cp\tpeak_rss_mib\trss_over_size\truns\tout_mib\tstatus\n' \
  >"$OUT/results.tsv"
for name in $MODELS; do
  model="$OUT/$name.onnx"
  files=("$model")
  [[ -f "$model.data" ]] && files+=("$model.data")
  bytes=$(stat -c %s "${files[@]}" | awk '{s += $1} END {print s}')
  SIZE[$name]=$(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}')
  declare -A times=() rsss=()
  for cmd in "${CMDS[@]}"; do times[$cmd]="" rsss[$cmd]=""; WHY[$name.$cmd]=""; done
  # the folded model `verify` compares with (external data beside it for a big one)
  if ! "$BNFOLD" fold "$model" -o "$OUT/$name.ref.onnx" --no-verify -q >/dev/null 2>&1; then
    echo "bench-io: $name: bnfold fold --no-verify failed: no reference for verify" >&2
  fi
  echo "bench-io: $name (${SIZE[$name]} MiB in ${#files[@]} file(s)), $REPEAT rounds of: ${CMDS[*]}"
  for ((r = 1; r <= REPEAT; r++)); do
    cat -- "${files[@]}" >/dev/null   # warm the page cache (untimed)
    line="bench-io:   round $r:"
    for cmd in "${CMDS[@]}"; do
      [[ -z "${WHY[$name.$cmd]}" ]] || continue   # failed before: not again
      cmd_line "$cmd" "$model"
      run_once "$name.$cmd" "${argv[@]}"
      if [[ -n "$why" ]]; then
        WHY[$name.$cmd]="$why"
        line+=" $cmd failed;"
        continue
      fi
      times[$cmd]+=" $wall"
      rsss[$cmd]+=" $rss_kb"
      OUTB[$name.$cmd]=$out_bytes
      line+=" $cmd $(fmt "$wall" 2)s;"
    done
    echo "$line"
  done
  for cmd in "${CMDS[@]}"; do
    if [[ -n "${WHY[$name.$cmd]}" ]]; then
      MED[$name.$cmd]=n/a RSS[$name.$cmd]=n/a
      problems+=("$name, ${LABEL[$cmd]}: failed: ${WHY[$name.$cmd]}")
      n_fail=$((n_fail + 1))
    else
      # shellcheck disable=SC2086  # the lists are space-separated numbers
      MED[$name.$cmd]=$(median ${times[$cmd]})
      # shellcheck disable=SC2086
      RSS[$name.$cmd]=$(awk -v k="$(maxof ${rsss[$cmd]})" 'BEGIN {printf "%.1f", k / 1024}')
    fi
  done
  unset times rsss
done

# --- report ---------------------------------------------------------------------------------
rows=()
for name in $MODELS; do
  for cmd in "${CMDS[@]}"; do
    k="$name.$cmd" m=${MED[$name.$cmd]} rs=${RSS[$name.$cmd]}
    rc=$(ratio "$m" "${MED[$name.cp]}")
    rr=$(ratio "$rs" "${SIZE[$name]}")
    [[ "$cmd" != cp ]] || rc=1.00
    [[ "$m" != n/a ]] || rc=n/a
    outm=n/a
    [[ -z "${OUTB[$k]:-}" ]] || outm=$(awk -v b="${OUTB[$k]}" 'BEGIN {printf "%.1f", b / 1048576}')
    if [[ -n "${WHY[$k]}" ]]; then
      status="failed: ${WHY[$k]}"
      med_cell="failed: $(printf '%s' "${WHY[$k]}" | cut -c1-90 | sed 's/|/\\|/g')"
    else
      status=ok
      med_cell=$(fmt "$m" 3)
    fi
    n_runs=$(if [[ "$m" == n/a ]]; then echo 0; else echo "$REPEAT"; fi)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "${SIZE[$name]}" "${LABEL[$cmd]}" "$m" "$rc" \
      "$rs" "$rr" "$n_runs" "$outm" "$(printf '%s' "$status" | tr '\t' ' ')" >>"$OUT/results.tsv"
    rows+=("| $name | ${SIZE[$name]} | ${LABEL[$cmd]} | $med_cell | $rc | $(fmt "$rs" 0) | $rr |")
  done
done

# targets: PASS / FAIL (FAIL also when the measurement is missing)
targets=()
n_pass=0 n_targets=0
target() {   # target TEXT OK(1/0/n/a) DETAIL
  local verdict=FAIL
  [[ "$2" == 1 ]] && verdict=PASS
  n_targets=$((n_targets + 1))
  [[ "$verdict" == PASS ]] && n_pass=$((n_pass + 1))
  targets+=("- **$verdict** $1: $3")
}
le() { [[ "$1" != n/a && "$2" != n/a ]] && awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }
for name in $MODELS; do
  t=${MED[$name.foldnv]} c=${MED[$name.cp]}
  lim=$(awk -v c="$c" 'BEGIN {if (c == "n/a") print "n/a"; else printf "%.3f", 1.5 * c}')
  ok=0; le "$t" "$lim" && ok=1
  target "$name: fold --no-verify time <= 1.5 x cp" "$ok" \
    "$(fmt "$t" 3 " s") vs $(fmt "$lim" 3 " s") (cp $(fmt "$c" 3 " s"); ratio $(ratio "$t" "$c"))"
  rs=${RSS[$name.foldnv]}
  lim=$(awk -v s="${SIZE[$name]}" 'BEGIN {printf "%.1f", 0.25 * s + 32}')
  ok=0; le "$rs" "$lim" && ok=1
  target "$name: fold --no-verify peak RSS <= 0.25 x model size + 32 MiB" "$ok" \
    "$(fmt "$rs" 0 " MiB") vs $(fmt "$lim" 0 " MiB") (model $(fmt "${SIZE[$name]}" 0 " MiB"))"
done
if [[ " $MODELS " == *" resnet50 "* ]]; then
  t=${MED[resnet50.foldnv]} o=${MED[resnet50.ort]}
  sp=$(ratio "$o" "$t")
  ok=0; [[ "$sp" != n/a ]] && awk -v s="$sp" 'BEGIN {exit !(s >= 3)}' && ok=1
  target "resnet50: fold --no-verify >= 3x faster than ort offline optimization" "$ok" \
    "ort $(fmt "$o" 3 " s") / fold --no-verify $(fmt "$t" 3 " s") = $(times_x "$sp") (with verification: $(times_x "$(ratio "$o" "${MED[resnet50.fold]}")"))"
fi
# the verified fold (issue 13): at the cost of onnxruntime's unverified
# optimisation, memory bounded by the model, not growing with it
vlim() {   # vlim NAME: 0.25 x model size + 64 MiB
  awk -v s="${SIZE[$1]}" 'BEGIN {printf "%.1f", 0.25 * s + 64}'
}
for name in $MODELS; do
  t=${MED[$name.fold]} rs=${RSS[$name.fold]} lim=$(vlim "$name")
  ok=0; le "$rs" "$lim" && ok=1
  target "$name: fold (verified) peak RSS <= 0.25 x model size + 64 MiB" "$ok" \
    "$(fmt "$rs" 0 " MiB") vs $(fmt "$lim" 0 " MiB")"
  case "$name" in
    resnet50|vgg11_bn)
      f=1.0; [[ "$name" == vgg11_bn ]] && f=0.5
      o=${MED[$name.ort]}
      lim=$(awk -v o="$o" -v f="$f" 'BEGIN {if (o == "n/a") print "n/a"; else printf "%.3f", f * o}')
      ok=0; le "$t" "$lim" && ok=1
      target "$name: fold (verified) time <= $f x ort offline optimization" "$ok" \
        "$(fmt "$t" 3 " s") vs ort $(fmt "$o" 3 " s") (ratio $(ratio "$t" "$o"))" ;;
    big)
      n=${MED[big.foldnv]}
      lim=$(awk -v n="$n" 'BEGIN {if (n == "n/a") print "n/a"; else printf "%.3f", 2 * n}')
      ok=0; le "$t" "$lim" && ok=1
      target "big: fold (verified) time <= 2 x fold --no-verify" "$ok" \
        "$(fmt "$t" 3 " s") vs $(fmt "$lim" 3 " s") (ratio $(ratio "$t" "$n"))" ;;
  esac
done
if [[ " $MODELS " == *" resnet50 "* ]]; then
  t=${MED[resnet50.verify]} rs=${RSS[resnet50.verify]}
  lim=$(awk -v s="${SIZE[resnet50]}" 'BEGIN {printf "%.1f", 0.25 * 2 * s + 64}')
  ok=0; le "$t" 0.6 && le "$rs" "$lim" && ok=1
  target "resnet50: verify A B <= 0.6 s, peak RSS <= 0.25 x both models + 64 MiB" "$ok" \
    "$(fmt "$t" 3 " s"), $(fmt "$rs" 0 " MiB") vs $(fmt "$lim" 0 " MiB")"
fi
if [[ " $MODELS " == *" big "* ]]; then
  t=${MED[big.inspect]} rs=${RSS[big.inspect]}
  ok=0; le "$t" 0.999999 && le "$rs" 63.999 && ok=1
  target "big: inspect < 1 s and < 64 MiB peak RSS" "$ok" "$(fmt "$t" 3 " s"), $(fmt "$rs" 0 " MiB")"
fi

machine[0]="${machine[0]} to $(date -u '+%H:%M UTC')"
others_pct=$(awk -v o="$others_cpu" -v w="$wall_total" -v n="$(nproc)" \
               'BEGIN {printf "%.0f", (w > 0 ? 100 * o / (w * n) : 0)}')
{
  echo "Median wall time of $REPEAT runs (round-robin, page cache warm), largest peak RSS of the"
  echo "whole process; sizes in MiB (model: the .onnx file plus its external data file)."
  echo
  echo "| model | size MiB | command | median s | ratio to cp (time) | peak RSS MiB | RSS / model size |"
  echo "|---|---:|---|---:|---:|---:|---:|"
  for r in "${rows[@]}"; do echo "$r"; done
  echo
  echo "## Targets"
  echo
  for t in "${targets[@]}"; do echo "$t"; done
  echo
  echo "$n_pass of $n_targets targets met."
  echo "Other processes used $others_pct% of the $(nproc) CPUs while the measurements ran."
  if (( others_pct > 10 )); then
    echo
    echo "Warning: other processes competed for the CPUs; the times are not reliable."
  fi
} | bench_results "## Failed" || exit 1
