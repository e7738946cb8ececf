# shellcheck shell=bash
# bench/common.sh: what the benchmark scripts (run.sh, io.sh) share; sourced,
# after they have set ROOT (and cd'ed there), NODE, NODE_DIR, OUT and BNFOLD.
# NAME is the prefix of their messages.

# bench_tools NAME: /usr/bin/time and onnxruntime-node (installed when missing,
# as the README's commands do); exports NODE_PATH, sets ort_version.
bench_tools() {
  local name=$1 sudo=""
  if [[ ! -x /usr/bin/time ]]; then
    echo "$name: installing time (for /usr/bin/time)"
    [[ "$(id -u)" == 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq time >/dev/null
  fi
  if [[ ! -f "$NODE_DIR/node_modules/onnxruntime-node/package.json" ]]; then
    echo "$name: installing onnxruntime-node into $NODE_DIR"
    mkdir -p "$NODE_DIR"
    npm install --ignore-scripts --no-audit --no-fund --prefix "$NODE_DIR" onnxruntime-node
  fi
  export NODE_PATH="$ROOT/$NODE_DIR/node_modules${NODE_PATH:+:$NODE_PATH}"
  # shellcheck disable=SC2034 # used by the script that sources this file
  ort_version=$("$NODE" -e 'console.log(require("onnxruntime-node/package.json").version)') || {
    echo "$name: onnxruntime-node not usable from $NODE_DIR" >&2; exit 2; }
}

# bench_snapshot: BNFOLD becomes a private copy in OUT, so that a concurrent
# `make all` cannot swap the binary mid-run (BNFOLD_SRC keeps the original).
bench_snapshot() {
  mkdir -p "$OUT"
  BNFOLD_SRC="$BNFOLD"
  BNFOLD="$OUT/bnfold.snapshot"
  cp "$BNFOLD_SRC" "$BNFOLD.tmp" && mv -f "$BNFOLD.tmp" "$BNFOLD"
}
