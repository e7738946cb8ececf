#!/usr/bin/env bash
# tests/gate_test.sh BIN: command-line tests of `bnfold check` (the CI gate)
# and of the health findings in `bnfold inspect`.
#
#   bash tests/gate_test.sh build/bnfold         (from the repository root)
#
# Uses the models of testdata/health/ (testdata/gen_health.py) and their
# expected.txt.  Needs only bash, coreutils and Debian's /usr/bin/python3 (json
# module, to read the JSON reports).  Works in a fresh temporary directory
# removed on exit; never writes into testdata/.  Every case is one function
# `t_NAME` (or one row of a table driving a parametrised function); the last
# line is "N passed, N failed", and the exit status is 1 when one failed.
#
# Exit codes under test (docs/contract.md): 0 pass, 1 the gate tripped,
# 2 usage error, 3 invalid model, 4 I/O error.

set -u

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
suite_bin gate_test "$@"
H=$ROOT/testdata/health
EXPECTED=$H/expected.txt
if [ ! -f "$EXPECTED" ]; then
    echo "gate_test: $EXPECTED is missing (run $PY testdata/gen_health.py)" >&2
    exit 2
fi
suite_tmp gate

# Test a private copy: a rebuild of build/bnfold during the run must not mix
# two binaries' answers.
cp "$BIN" "$TMP/bnfold" || exit 2
BIN=$TMP/bnfold

# ---------------------------------------------------------------------------
# expected.txt: MODEL CODE SEVERITY CHANNELS NODE ("MODEL none - - -": none)
# ---------------------------------------------------------------------------

models() { awk '!/^#/ && NF == 5 && !seen[$1]++ { print $1 }' "$EXPECTED"; }

# findings MODEL: "CODE SEVERITY NODE" per expected finding
findings() { awk -v m="$1" '!/^#/ && $1 == m && $2 != "none" { print $2, $3, $5 }' "$EXPECTED"; }

# tripping MODEL LEVEL: the expected findings a severity gate (error, warning,
# info) trips, as sorted "CODE NODE" lines
tripping() {
    local rank
    case "$2" in error) rank=3 ;; warning) rank=2 ;; info) rank=1 ;; esac
    findings "$1" | awk -v r="$rank" '
        { s = $2 == "error" ? 3 : $2 == "warning" ? 2 : 1; if (s >= r) print $1, $3 }' | sort
}

# ---------------------------------------------------------------------------
# the exit paths
# ---------------------------------------------------------------------------

t_help() {
    expect_exit 0 -- "$BIN" check --help || return
    expect_stdout_has "Usage: bnfold check" "--fail-on" "--format github" "unfolded"
    expect_exit 0 -- "$BIN" check -h
    expect_stdout_has "Usage: bnfold check"
    expect_exit 0 -- "$BIN" --help
    expect_stdout_has "check PATH..."
}

t_healthy_passes() {
    expect_exit 0 -- "$BIN" check "$H/healthy.onnx" || return
    expect_stdout_has "1 BatchNormalization, 0 finding(s); --fail-on error: passed"
    expect_stdout_lacks FAIL
    expect_stderr_empty
    # nothing to find at any level
    local lvl
    for lvl in error warning info; do
        expect_exit 0 -- "$BIN" check "$H/healthy.onnx" --fail-on "$lvl"
    done
}

t_neg_var_error() {
    expect_exit 1 -- "$BIN" check "$H/neg_var.onnx" --fail-on error || return
    expect_stdout_has "FAIL error    BN_NEG_VAR" "BatchNormalization 'bn'" "negative running variance" \
        "--fail-on error: FAILED"
    expect_stderr_empty
    # error is the default
    expect_exit 1 -- "$BIN" check "$H/neg_var.onnx"
    expect_stdout_has "BN_NEG_VAR" "'bn'" "--fail-on error: FAILED"
}

t_tiny_var_levels() {
    expect_exit 0 -- "$BIN" check "$H/tiny_var.onnx" || return
    # reported, not tripped
    expect_stdout_has "BN_TINY_VAR" "--fail-on error: passed"
    expect_stdout_lacks FAIL
    expect_exit 1 -- "$BIN" check "$H/tiny_var.onnx" --fail-on warning
    expect_stdout_has "FAIL warning  BN_TINY_VAR" "'bn'" "--fail-on warning: FAILED"
    expect_exit 1 -- "$BIN" check "$H/tiny_var.onnx" --fail-on BN_TINY_VAR
    expect_stdout_has "FAIL warning  BN_TINY_VAR" "--fail-on BN_TINY_VAR: FAILED"
    expect_exit 1 -- "$BIN" check "$H/tiny_var.onnx" --fail-on info
    # another code does not trip it
    expect_exit 0 -- "$BIN" check "$H/tiny_var.onnx" --fail-on BN_NEG_VAR,BN_ZERO_VAR
    expect_stdout_lacks FAIL
    expect_exit 1 -- "$BIN" check "$H/tiny_var.onnx" --fail-on BN_NEG_VAR,BN_TINY_VAR
}

t_dead_channel_info() {
    expect_exit 0 -- "$BIN" check "$H/dead_channel.onnx" --fail-on warning || return
    expect_stdout_has "BN_DEAD_CHANNEL"
    expect_exit 1 -- "$BIN" check "$H/dead_channel.onnx" --fail-on info
    expect_stdout_has "FAIL info     BN_DEAD_CHANNEL"
}

# The severity gates on every model, against expected.txt: the exit code, the
# FAIL lines of the text report and the JSON problems.
matrix_case() {
    local model=$1 lvl=$2 want want_rc got
    want=$(tripping "$model" "$lvl")
    want_rc=0
    [ -n "$want" ] && want_rc=1
    expect_exit "$want_rc" -- "$BIN" check "$H/$model.onnx" --fail-on "$lvl" || return
    got=$(awk '/^FAIL / { print $3, $0 }' "$OUT" |
          sed -E "s/^([A-Z_]+) .*BatchNormalization '([^']*)'.*/\1 \2/" | sort)
    assert_eq "$want" "$got" "FAIL lines (CODE NODE) of $model --fail-on $lvl"
    # every expected finding is printed, tripped or not
    local code sev node n_lines
    while read -r code sev node; do
        [ -z "$code" ] && continue
        grep -q -E "^(FAIL|    ) $sev +$code +BatchNormalization '$node':" "$OUT" ||
            fail "$model --fail-on $lvl: no line for $sev $code on '$node'"
    done < <(findings "$model")
    n_lines=$(grep -c -E '^(FAIL|    ) (error|warning|info) ' "$OUT")
    assert_eq "$(findings "$model" | wc -l)" "$n_lines" "finding lines of $model"
    expect_exit "$want_rc" -- "$BIN" check "$H/$model.onnx" --fail-on "$lvl" --json || return
    save_out c.json
    assert_json "$W/c.json" "'\\n'.join(sorted(p['code'] + ' ' + p['node'] for p in d['check']['problems']))" "$want"
    assert_json "$W/c.json" "d['check']['pass']" "$([ -z "$want" ] && echo true || echo false)"
    assert_json "$W/c.json" "d['check']['fail_on']" "$lvl"
}

t_unfolded() {
    local folded=$W/tiny_var.folded.onnx
    expect_exit 1 -- "$BIN" check "$H/tiny_var.onnx" --fail-on unfolded || return
    expect_stdout_has "FAIL error    BN_UNFOLDED" "BatchNormalization 'bn' can be folded into Conv 'conv'" \
        "--fail-on unfolded: FAILED"
    # the tiny-var warning is listed but does not trip "unfolded"
    expect_stdout_has "     warning  BN_TINY_VAR"
    expect_exit 1 -- "$BIN" check "$H/tiny_var.onnx" --fail-on unfolded --json || return
    save_out before.json
    assert_valid_json "$W/before.json"
    assert_json "$W/before.json" "d['command']" check
    assert_json "$W/before.json" "d['check']['pass']" false
    assert_json "$W/before.json" "d['check']['fail_on']" unfolded
    assert_json "$W/before.json" "d['check']['problems']" '[{"code": "BN_UNFOLDED", "node": "bn"}]'

    expect_exit 0 -- "$BIN" fold "$H/tiny_var.onnx" -o "$folded" || return
    expect_exit 0 -- "$BIN" check "$folded" --fail-on unfolded || return
    expect_stdout_has "0 BatchNormalization, 0 finding(s); --fail-on unfolded: passed"
    expect_stdout_lacks FAIL
    expect_exit 0 -- "$BIN" check "$folded" --fail-on unfolded --json || return
    save_out after.json
    assert_valid_json "$W/after.json"
    assert_json "$W/after.json" "d['check']['pass']" true
    assert_json "$W/after.json" "d['check']['problems']" '[]'
    assert_json "$W/after.json" "d['findings']" '[]'
}

t_unfolded_not_foldable() {
    # a BN fold skips does not trip "unfolded"
    local m
    for m in neg_var nan_param inf_param eps_zero_zero_var training_mode; do
        expect_exit 0 -- "$BIN" check "$H/$m.onnx" --fail-on unfolded
        expect_stdout_lacks BN_UNFOLDED
    done
}

t_multi_json() {
    local folded=$W/multi.folded.onnx
    expect_exit 1 -- "$BIN" check "$H/multi_bn.onnx" --fail-on warning,unfolded --json || return
    save_out m.json
    assert_valid_json "$W/m.json"
    assert_json "$W/m.json" "d['check']['pass']" false
    assert_json "$W/m.json" "d['check']['fail_on']" "warning,unfolded"
    assert_json "$W/m.json" "sorted(p['code'] + ' ' + p['node'] for p in d['check']['problems'])" \
        '["BN_NEG_VAR bn3", "BN_TINY_VAR bn2", "BN_UNFOLDED bn1", "BN_UNFOLDED bn2"]'
    assert_json "$W/m.json" "[(f['code'], f['severity'], f['node'], f['channels']) for f in d['findings']]" \
        '[["BN_TINY_VAR", "warning", "bn2", [1]], ["BN_DEAD_CHANNEL", "info", "bn2", [0, 2]], ["BN_NEG_VAR", "error", "bn3", [3]]]'
    assert_json "$W/m.json" "d['summary']['findings']" '{"error": 1, "warning": 1, "info": 1}'
    # folded: bn3 stays (NON_FINITE), and so does its error
    expect_exit 0 -- "$BIN" fold "$H/multi_bn.onnx" -o "$folded" || return
    expect_exit 1 -- "$BIN" check "$folded" --fail-on unfolded,warning,BN_DEAD_CHANNEL --json || return
    save_out f.json
    assert_json "$W/f.json" "d['check']['problems']" '[{"code": "BN_NEG_VAR", "node": "bn3"}]'
    assert_json "$W/f.json" "d['summary']['batchnorms']" 1
}

# --format github: one annotation per finding, level by trip and severity,
# file= and title= set; the exit code is text mode's.
github_line_re='^::(error|warning|notice) file=[^,:]+,title=BN_[A-Z_]+::BatchNormalization '"'"'[^'"'"']*'"'"'.+$'

t_github() {
    expect_exit 1 -- "$BIN" check "$H/multi_bn.onnx" --format github || return
    expect_stderr_empty
    local bad
    bad=$(grep -v -E "$github_line_re" "$OUT")
    [ -n "$bad" ] && fail "not an annotation line: $bad"
    assert_eq 3 "$(wc -l <"$OUT")" "annotation lines of multi_bn"
    grep -q -E "^::warning file=$H/multi_bn.onnx,title=BN_TINY_VAR::BatchNormalization 'bn2'" "$OUT" ||
        fail "no ::warning for BN_TINY_VAR on bn2: $(cat "$OUT")"
    grep -q -E "^::notice file=$H/multi_bn.onnx,title=BN_DEAD_CHANNEL::BatchNormalization 'bn2'" "$OUT" ||
        fail "no ::notice for BN_DEAD_CHANNEL on bn2: $(cat "$OUT")"
    grep -q -E "^::error file=$H/multi_bn.onnx,title=BN_NEG_VAR::BatchNormalization 'bn3'" "$OUT" ||
        fail "no ::error for BN_NEG_VAR on bn3: $(cat "$OUT")"
    # a tripped warning is an error annotation
    expect_exit 1 -- "$BIN" check "$H/multi_bn.onnx" --format github --fail-on warning
    grep -q -E "^::error file=[^,]+,title=BN_TINY_VAR::" "$OUT" ||
        fail "tripped BN_TINY_VAR is not ::error: $(cat "$OUT")"
    # unfolded BNs: an error each
    expect_exit 1 -- "$BIN" check "$H/multi_bn.onnx" --format github --fail-on unfolded
    assert_eq 2 "$(grep -c -E "^::error file=[^,]+,title=BN_UNFOLDED::BatchNormalization 'bn[12]' can be folded" "$OUT")" \
        "BN_UNFOLDED annotations"
    # healthy: nothing, exit 0
    expect_exit 0 -- "$BIN" check "$H/healthy.onnx" --format github
    expect_stdout_empty
    expect_exit 0 -- "$BIN" check "$H/tiny_var.onnx" --format github
    grep -q -E "^::warning file=[^,]+,title=BN_TINY_VAR::" "$OUT" || fail "no ::warning on tiny_var"
    # explicit text format is the default one
    expect_exit 1 -- "$BIN" check "$H/neg_var.onnx" --format text
    expect_stdout_has "FAIL error    BN_NEG_VAR"
}

# github and text agree on the exit code for every model and gate.
github_rc_case() {
    local model=$1 gate=$2 text_rc
    run "$BIN" check "$H/$model.onnx" --fail-on "$gate"
    text_rc=$RC
    run "$BIN" check "$H/$model.onnx" --fail-on "$gate" --format github
    assert_eq "$text_rc" "$RC" "github exit code of $model --fail-on $gate (text: $text_rc)"
    local bad
    bad=$(grep -v -E "$github_line_re" "$OUT")
    [ -n "$bad" ] && fail "not an annotation line: $bad"
    # one line per finding plus one per tripped unfolded BN
    local want unfolded
    want=$(findings "$model" | wc -l)
    run "$BIN" check "$H/$model.onnx" --fail-on "$gate" --json
    unfolded=$(json_get "$OUT" "len([p for p in d['check']['problems'] if p['code'] == 'BN_UNFOLDED'])" 2>&1)
    case "$unfolded" in
    '' | *[!0-9]*)
        fail "JSON of $model --fail-on $gate: $unfolded"
        return
        ;;
    esac
    want=$((want + unfolded))
    run "$BIN" check "$H/$model.onnx" --fail-on "$gate" --format github
    assert_eq "$want" "$(wc -l <"$OUT")" "annotation lines of $model --fail-on $gate"
}

# A comma or colon in the model's path must not end the file= property:
# GitHub's workflow commands escape ',' as %2C and ':' as %3A in property values.
t_github_path_escaped() {
    local d=$W/a,b:c
    mkdir -p "$d"
    cp "$H/tiny_var.onnx" "$d/m.onnx"
    expect_exit 0 -- "$BIN" check "$d/m.onnx" --format github || return
    expect_stdout_has "file=$W/a%2Cb%3Ac/m.onnx,title=BN_TINY_VAR::"
}

t_usage() {
    expect_exit 2 -- "$BIN" check "$H/tiny_var.onnx" --fail-on bogus
    expect_stderr_has "bogus"
    expect_stdout_empty
    expect_exit 2 -- "$BIN" check "$H/tiny_var.onnx" --fail-on warning,BN_BOGUS
    expect_stderr_has "BN_BOGUS"
    expect_exit 2 -- "$BIN" check "$H/tiny_var.onnx" --fail-on bn_tiny_var
    expect_exit 2 -- "$BIN" check "$H/tiny_var.onnx" --fail-on
    expect_stdout_empty
    expect_exit 2 -- "$BIN" check
    expect_stderr_has "missing MODEL"
    expect_stdout_empty
    expect_exit 2 -- "$BIN" check --fail-on warning
    expect_exit 2 -- "$BIN" check "$H/tiny_var.onnx" --json --format github
    expect_stdout_empty
    expect_exit 2 -- "$BIN" check "$H/tiny_var.onnx" --format github --json
    expect_stdout_empty
    expect_exit 2 -- "$BIN" check "$H/tiny_var.onnx" --format xml
    expect_stderr_has "xml"
    expect_stdout_empty
    expect_exit 2 -- "$BIN" check "$H/tiny_var.onnx" --format
    expect_exit 2 -- "$BIN" check "$H/tiny_var.onnx" --frob
    expect_stderr_has "--frob"
    # two models are a run over many (tests/batch_test.sh): the worst exit wins
    expect_exit 1 -- "$BIN" check "$H/tiny_var.onnx" "$H/neg_var.onnx"
    expect_stdout_has "check: 2 models: 1 passed, 1 failed, 0 unreadable; exit status 1"
}

t_missing_file() {
    expect_exit 4 -- "$BIN" check "$W/nope.onnx" || return
    expect_stderr_has "nope.onnx"
    expect_stdout_empty
    expect_exit 4 -- "$BIN" check "$W/nope.onnx" --json
    expect_stdout_empty
    expect_exit 4 -- "$BIN" check "$W/nope.onnx" --format github
    expect_stdout_empty
    # a folder with no model in it is an I/O error too, not a gate that passed
    expect_exit 4 -- "$BIN" check "$W"
    expect_stdout_has "no model (*.onnx) in this folder"
}

t_corrupt_file() {
    head -c 100 "$H/healthy.onnx" >"$W/truncated.onnx"
    printf 'not an onnx model\377\377' >"$W/garbage.onnx"
    : >"$W/empty.onnx"
    local f
    for f in truncated garbage empty; do
        expect_exit 3 -- "$BIN" check "$W/$f.onnx"
        expect_stderr_has "$f.onnx"
        expect_stdout_empty
    done
    expect_exit 3 -- "$BIN" check "$W/truncated.onnx" --json
    expect_stdout_empty
    expect_exit 3 -- "$BIN" check "$W/truncated.onnx" --format github
    expect_stdout_empty
}

# inspect lists every error and warning finding under its BN's row.  Info
# findings (dead channels) may be left to --json: then the health line says so.
t_inspect_lists_findings() {
    expect_exit 0 -- "$BIN" inspect "$H/multi_bn.onnx" || return
    # the row of each finding's BN is the last BN row above it
    local code sev node owner
    while read -r code sev node; do
        owner=$(awk -v c="$code" '
            /^(fold|skip|lower) / { bn = $6 }
            index($0, "`- ") && index($0, " " c ":") { print bn; exit }' "$OUT")
        if [ "$sev" = info ] && [ -z "$owner" ]; then
            grep -q -E '^health: .*[1-9][0-9]* info finding\(s\).*--json' "$OUT" ||
                fail "info $code on '$node' neither listed nor pointed to (--json)"
            continue
        fi
        assert_eq "$node" "$owner" "BN row above $code in inspect"
        grep -q -E "^ +\`- $sev $code: " "$OUT" || fail "inspect lacks '\`- $sev $code:'"
    done < <(findings multi_bn)
    expect_stdout_has "(1 channel: 1)" "(1 channel: 3)" \
        "health: 1 error, 1 warning, 1 info finding(s)"
    expect_exit 0 -- "$BIN" inspect "$H/tiny_var.onnx" || return
    expect_stdout_has "warning BN_TINY_VAR" "(2 channels: 1 3)"
    expect_exit 0 -- "$BIN" inspect "$H/healthy.onnx" || return
    expect_stdout_lacks "BN_" "health:"
    # inspect never fails on findings
    expect_exit 0 -- "$BIN" inspect "$H/neg_var.onnx" || return
    expect_stdout_has "error BN_NEG_VAR"
    expect_exit 0 -- "$BIN" inspect "$H/neg_var.onnx" --json || return
    save_out i.json
    assert_json "$W/i.json" "[(f['code'], f['node'], f['channels']) for f in d['findings']]" \
        '[["BN_NEG_VAR", "bn", [0]]]'
    assert_json "$W/i.json" "'check' in d" false
    expect_exit 0 -- "$BIN" inspect "$H/dead_channel.onnx" --json || return
    save_out d.json
    assert_json "$W/d.json" "[(f['code'], f['severity'], f['node'], f['channels']) for f in d['findings']]" \
        '[["BN_DEAD_CHANNEL", "info", "bn", [0, 2]]]'
}

# ---------------------------------------------------------------------------

run_case help t_help
run_case healthy_passes t_healthy_passes
run_case neg_var_error t_neg_var_error
run_case tiny_var_levels t_tiny_var_levels
run_case dead_channel_info t_dead_channel_info

n_models=0
for model in $(models); do
    n_models=$((n_models + 1))
    for lvl in error warning info; do
        run_case "gate:$model:$lvl" matrix_case "$model" "$lvl"
    done
    for gate in error info unfolded "BN_TINY_VAR,BN_DEAD_CHANNEL"; do
        run_case "github:$model:$gate" github_rc_case "$model" "$gate"
    done
done
run_case models_found assert_eq 13 "$n_models" "models in expected.txt"

run_case unfolded t_unfolded
run_case unfolded_not_foldable t_unfolded_not_foldable
run_case multi_json t_multi_json
run_case github t_github
run_case github_path_escaped t_github_path_escaped
run_case usage t_usage
run_case missing_file t_missing_file
run_case corrupt_file t_corrupt_file
run_case inspect_lists_findings t_inspect_lists_findings

finish
