# shellcheck shell=bash
# tests/lib.sh: what the shell suites share.  Sourced first thing by each of
# them (tests/*.sh, tests/malformed/run.sh, tests/interop/run.sh) and by
# bench/common.sh:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sourcing sets ROOT (the repository), PY (Debian's /usr/bin/python3) and
# exports LC_ALL=C; the rest are functions:
#
#   suite_bin NAME ARGS...     the suite's one argument, the binary under test,
#                              as an absolute path in BIN (else usage, exit 2)
#   suite_tmp NAME             TMP, a fresh temporary directory removed on exit
#   need NAME PACKAGE TEST...  apt-get install PACKAGE when the command TEST fails
#
#   cases     begin NAME / check STATUS MESSAGE / fail MESSAGE / end, or
#             run_case NAME FUNCTION [ARGS...], or verdict NAME STATUS MESSAGE
#             (one assertion); W is the case's own directory;
#             finish prints "N passed, N failed" and is the suite's exit status
#   commands  run, expect_exit, expect_{stdout,stderr}_{has,empty},
#             expect_stdout_lacks, assert_eq, save_out (on OUT, ERR, RC);
#             report_on_stdout (inspect --dot - / --html -)
#   JSON      json_get, assert_json, assert_json_true, assert_valid_json
#             (Python expressions on d); json_fields (JavaScript, with node)
#   node      ort_node NAME: onnxruntime-node installed and found, NODE set

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
export LC_ALL=C

# ---------------------------------------------------------------------------
# set-up
# ---------------------------------------------------------------------------

# suite_bin NAME ARGS...: ARGS must be one executable, the bnfold under test;
# BIN becomes its absolute path.  NAME prefixes the error message.
suite_bin() {
    local name=$1 script
    shift
    script=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)/$(basename "${BASH_SOURCE[1]}")
    if [ $# -ne 1 ]; then
        echo "usage: bash ${script#"$ROOT"/} BIN" >&2
        exit 2
    fi
    case "$1" in
    /*) BIN=$1 ;;
    *) BIN=$PWD/$1 ;;
    esac
    if [ ! -x "$BIN" ]; then
        echo "$name: $1 is not an executable" >&2
        exit 2
    fi
}

# suite_tmp NAME: TMP is a new directory ${TMPDIR:-/tmp}/bnfold-NAME.XXXXXX,
# removed (read-only parts included) when the suite exits.
suite_tmp() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/bnfold-$1.XXXXXX") || exit 2
    trap 'chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"' EXIT
    trap 'exit 130' INT TERM
}

# need NAME PACKAGE TEST...: when the command TEST fails, install Debian's
# PACKAGE with apt-get (through sudo when not root) and try TEST again; exit 2
# when it still fails.
need() {
    local name=$1 pkg=$2 sudo=""
    shift 2
    "$@" >/dev/null 2>&1 && return 0
    echo "installing: $pkg"
    [ "$(id -u)" = 0 ] || sudo=sudo
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        $sudo apt-get install -y -qq "$pkg"; } >/dev/null 2>&1 || true
    "$@" >/dev/null 2>&1 && return 0
    echo "$name: $pkg is missing and could not be installed" >&2
    exit 2
}

# ---------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------

# The counts; begin sets CASE (the running case's name), CASE_OK (1 until an
# assertion fails) and W (its own work directory, $TMP/case.N); run sets OUT,
# ERR (files: stdout, stderr), RC and LAST_CMD.  Nothing else is assigned at
# source time: interop/run.sh and bench/ have an OUT of their own (a folder).
PASSED=0
FAILED=0
FAILED_NAMES=()

# begin NAME: a case starts, with a fresh work directory W
begin() {
    CASE=$1
    CASE_OK=1
    W=$TMP/case.$((PASSED + FAILED + 1))
    mkdir -p "$W"
}

# fail MESSAGE...: the running case fails (it goes on: every problem is told)
fail() {
    CASE_OK=0
    echo "  FAIL [$CASE]: $*" >&2
}

# check STATUS MESSAGE: one assertion, given as the exit status of a test
check() {
    [ "$1" = 0 ] || fail "$2"
}

# end: the running case is counted
end() {
    if [ "$CASE_OK" = 1 ]; then
        PASSED=$((PASSED + 1))
    else
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("$CASE")
    fi
}

# verdict NAME STATUS MESSAGE: a case of one assertion (STATUS 0: passed)
verdict() {
    begin "$1"
    check "$2" "$3"
    end
}

# run_case NAME FUNCTION [ARGS...]: a case that is one function call
run_case() {
    begin "$1"
    shift
    "$@"
    end
}

# finish: the names of the failed cases and "N passed, N failed"; the status
# is 1 when one failed (the suite's last command)
finish() {
    local name
    for name in "${FAILED_NAMES[@]+"${FAILED_NAMES[@]}"}"; do
        echo "FAILED: $name"
    done
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" -eq 0 ]
}

# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------

# run CMD...: run with a time limit, stdout -> $OUT, stderr -> $ERR, code -> $RC.
run() {
    OUT=$W/stdout.$$
    ERR=$W/stderr.$$
    LAST_CMD="$*"
    timeout 120 "$@" >"$OUT" 2>"$ERR"
    RC=$?
    if [ "$RC" -eq 124 ]; then
        fail "timed out: $LAST_CMD"
    elif [ "$RC" -ge 128 ]; then
        fail "killed by signal $((RC - 128)) (crash?): $LAST_CMD"
    fi
    return 0
}

# expect_exit CODE -- CMD...: run CMD and assert its exit code (status 1 when
# it is another, for `expect_exit ... || return`).
expect_exit() {
    local want=$1
    shift
    [ "${1:-}" = "--" ] && shift
    run "$@"
    if [ "$RC" != "$want" ]; then
        fail "exit $RC, expected $want: $LAST_CMD"
        local e o
        e=$(head -c 300 "$ERR")
        o=$(head -c 300 "$OUT")
        [ -n "$e" ] && echo "      stderr: $e" >&2
        [ -n "$o" ] && echo "      stdout: $o" >&2
        return 1
    fi
    return 0
}

_contains() { # FILE FRAGMENT
    local s
    s=$(cat "$1")
    [[ "$s" == *"$2"* ]]
}
expect_stdout_has() {
    local f
    for f in "$@"; do
        _contains "$OUT" "$f" || fail "stdout of '$LAST_CMD' lacks '$f'"
    done
}
expect_stderr_has() {
    local f
    for f in "$@"; do
        _contains "$ERR" "$f" || fail "stderr of '$LAST_CMD' lacks '$f' (stderr: $(head -c 300 "$ERR"))"
    done
}
expect_stdout_lacks() {
    local f
    for f in "$@"; do
        _contains "$OUT" "$f" && fail "stdout of '$LAST_CMD' contains '$f'"
    done
    return 0
}
expect_stdout_empty() {
    [ -s "$OUT" ] && fail "stdout of '$LAST_CMD' is not empty: $(head -c 200 "$OUT")"
    return 0
}
expect_stderr_empty() {
    [ -s "$ERR" ] && fail "stderr of '$LAST_CMD' is not empty: $(head -c 200 "$ERR")"
    return 0
}

# assert_eq WANT GOT WHAT
assert_eq() {
    [ "$1" == "$2" ] || fail "$3: got '$2', expected '$1'"
}

# save_out NAME: keep the last stdout as $W/NAME
save_out() { cp "$OUT" "$W/$1"; }

# report_on_stdout OPTION FIRST MODEL: `BIN inspect MODEL OPTION -` succeeds
# with the document on stdout (its first line is FIRST) and the text report
# on stderr (dot_test.sh: --dot, check_html.sh: --html)
report_on_stdout() {
    "$BIN" inspect "$3" "$1" - >"$W/so.out" 2>"$W/so.err"
    check $? "$1 -: exit status $?"
    [ "$(head -n 1 "$W/so.out")" = "$2" ]
    check $? "$1 -: stdout does not start with $2"
    grep -q 'BatchNormalization' "$W/so.err"
    check $? "$1 -: the text report is not on stderr"
}

# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------

# json_get FILE EXPR: evaluate the Python expression EXPR with d = the JSON
# document in FILE; print strings as is, everything else as JSON.  Fails (and
# prints nothing) when FILE is not exactly one JSON document.
json_get() {
    "$PY" -c '
import json, sys
try:
    with open(sys.argv[1]) as f:
        d = json.load(f)
except Exception as e:
    print("invalid JSON: %s" % e, file=sys.stderr)
    sys.exit(3)
try:
    v = eval(sys.argv[2], {"d": d, "abs": abs, "len": len, "all": all, "any": any, "sorted": sorted})
except Exception as e:
    print("%s: %s: %r" % (sys.argv[2], type(e).__name__, e), file=sys.stderr)
    sys.exit(4)
print(v if isinstance(v, str) else json.dumps(v))
' "$1" "$2"
}

# assert_json FILE EXPR WANT: json_get FILE EXPR must print WANT.
assert_json() {
    local got
    got=$(json_get "$1" "$2" 2>&1)
    [ "$got" == "$3" ] || fail "JSON $2 of $(basename "$1"): got '$got', expected '$3'"
}

# assert_json_true FILE EXPR
assert_json_true() { assert_json "$1" "bool($2)" true; }

# assert_valid_json FILE
assert_valid_json() {
    local got
    got=$(json_get "$1" '"ok"' 2>&1)
    [ "$got" == ok ] || fail "$(basename "$1") is not one JSON document: $got"
}

# json_fields FILE EXPR...: evaluate JavaScript expressions on the parsed
# document `d` (with node: see ort_node), print them tab-separated, "null" for
# a value that is missing or fails; status 1 if FILE is not one JSON document.
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

# ---------------------------------------------------------------------------
# node and onnxruntime-node
# ---------------------------------------------------------------------------

# ort_node NAME: NODE (when unset: /usr/bin/node, else node on PATH) can
# require("onnxruntime-node"): the package is installed with npm into
# build/node when missing, NODE_PATH exported; ort_version is its version.
# Exits 2 when it cannot be used.  NAME prefixes the messages.
ort_node() {
    local dir=$ROOT/build/node
    if [ -z "${NODE:-}" ]; then
        if [ -x /usr/bin/node ]; then NODE=/usr/bin/node; else NODE=node; fi
    fi
    if [ ! -f "$dir/node_modules/onnxruntime-node/package.json" ]; then
        echo "$1: installing onnxruntime-node into ${dir#"$ROOT"/}"
        mkdir -p "$dir"
        npm install --ignore-scripts --no-audit --no-fund --prefix "$dir" onnxruntime-node || true
    fi
    export NODE_PATH="$dir/node_modules${NODE_PATH:+:$NODE_PATH}"
    # shellcheck disable=SC2034 # used by the scripts that source this file
    ort_version=$("$NODE" -e 'console.log(require("onnxruntime-node/package.json").version)') || {
        echo "$1: onnxruntime-node not usable from ${dir#"$ROOT"/}" >&2
        exit 2
    }
}
