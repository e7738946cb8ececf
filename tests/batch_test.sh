#!/usr/bin/env bash
# tests/batch_test.sh BIN: bnfold check / inspect / fold over many PATHs
# (docs/contract.md, "Exit codes"; cli/models.c, cli/batch.c).  A model
# repository with a good, an unfoldable, an unhealthy, a malformed and an
# external-data model, a symlinked folder and a folder to exclude is checked
# at -j 1 and -j 4: identical sorted output, the documented exit status of the
# mixture, the same results as checking each model on its own; the JSON batch
# document, GitHub annotations, SARIF (validated with Microsoft's SARIF
# Multitool when it is installed), fold --out-dir, a worker that crashes,
# the GitHub Action's script and the pre-commit hook's entry.
set -u
# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
suite_bin batch_test "$@"
suite_tmp batch

T=$ROOT/testdata
REPO=$TMP/repo
# repo/
#   good.onnx            healthy, folds             exit 0
#   skip/unfoldable.onnx a BN no fold takes (SPATIAL), healthy: exit 0
#   sub/unhealthy.onnx   negative variance          exit 1 (gate)
#   sub/broken.onnx      not a model                exit 3
#   ext/conv2d_external.onnx + .data: external data exit 0 (the .data is no model)
#   vendor/x.onnx        excluded by --exclude vendor
#   linked -> ../outside a symlinked folder: not followed
mkdir -p "$REPO/skip" "$REPO/sub" "$REPO/ext" "$REPO/vendor" "$TMP/outside"
cp "$T/health/healthy.onnx" "$REPO/good.onnx"
cp "$T/models/skip_spatial0_opset7.onnx" "$REPO/skip/unfoldable.onnx"
cp "$T/health/neg_var.onnx" "$REPO/sub/unhealthy.onnx"
printf 'this is not a model' >"$REPO/sub/broken.onnx"
cp "$T/models/conv2d_external.onnx" "$T/models/conv2d_external.data" "$REPO/ext/"
cp "$T/health/tiny_var.onnx" "$REPO/vendor/x.onnx"
cp "$T/health/nan_param.onnx" "$TMP/outside/y.onnx"
ln -s ../outside "$REPO/linked"
ORDER="repo/ext/conv2d_external.onnx repo/good.onnx repo/skip/unfoldable.onnx repo/sub/broken.onnx repo/sub/unhealthy.onnx"

# every case runs in $TMP so that the paths reported are repo/...
cd "$TMP" || exit 2

inputs() { # FILE (a batch document): the models' inputs in order, space-separated
    "$PY" -c 'import json,sys; print(" ".join(m["input"] for m in json.load(open(sys.argv[1]))["models"]))' "$1"
}

# expect_no_output FILE: nothing was written there
expect_no_output() {
    [ -e "$1" ] && fail "$1 was written"
    return 0
}

t_parallel_same_output() {
    local f
    for f in text json github sarif; do
        run "$BIN" check repo --exclude vendor --format "$f" -j 1
        assert_eq 3 "$RC" "exit status at -j 1 ($f)"
        cp "$OUT" "$W/j1.$f"
        run "$BIN" check repo --exclude vendor --format "$f" -j 4
        assert_eq 3 "$RC" "exit status at -j 4 ($f)"
        cp "$OUT" "$W/j4.$f"
        cmp -s "$W/j1.$f" "$W/j4.$f" || fail "--format $f: -j 1 and -j 4 differ"
    done
    assert_eq "$ORDER" "$(inputs "$W/j4.json")" "models, sorted by path"
}

t_text_and_summary() {
    expect_exit 3 -- "$BIN" check repo --exclude vendor -j 2
    expect_stdout_has "repo/sub/broken.onnx: error: " \
        "repo/sub/unhealthy.onnx: 1 BatchNormalization, 1 finding(s); --fail-on error: FAILED" \
        "repo/good.onnx: 1 BatchNormalization, 0 finding(s); --fail-on error: passed" \
        "check: 5 models: 3 passed, 1 failed, 1 unreadable; exit status 3" \
        "BatchNormalization: 4 in all, 2 foldable, 0 lowered, 2 skipped: SPATIAL 1, NON_FINITE 1" \
        "findings: 1 error, 0 warning, 1 info: BN_NEG_VAR 1, BN_DEAD_CHANNEL 1" \
        "gate: 1 problem"
    expect_stdout_lacks "vendor" "linked" "outside" ".data"
    # the order of the text: by path
    local order
    order=$(grep -o '^repo/[a-z0-9_/]*\.onnx' "$OUT" | uniq | tr '\n' ' ')
    assert_eq "$ORDER " "$order" "text order"
}

t_exit_status_mixtures() {
    # only good models: 0; a tripped gate: 1; a tripped gate and an invalid
    # model: 3; and a missing one: 4 (2, 4, 3, 1, 0)
    expect_exit 0 -- "$BIN" check repo/good.onnx repo/skip repo/ext
    expect_stdout_has "check: 3 models: 3 passed, 0 failed, 0 unreadable; exit status 0"
    expect_exit 1 -- "$BIN" check repo/good.onnx repo/sub/unhealthy.onnx
    expect_exit 3 -- "$BIN" check repo/sub
    expect_exit 4 -- "$BIN" check repo/sub repo/nope.onnx
    expect_stdout_has "repo/nope.onnx: error: " "exit status 4"
    expect_exit 2 -- "$BIN" check repo -j 0
    expect_stdout_empty
    # the folder with only excluded models is a problem of its own
    expect_exit 4 -- "$BIN" check repo/vendor --exclude '*.onnx'
    expect_stdout_has "no model (*.onnx) in this folder that --exclude leaves"
    # a symlinked folder named on the command line is searched
    expect_exit 1 -- "$BIN" check repo/linked
    expect_stdout_has "repo/linked/y.onnx"
}

t_exclude_paths() {
    # with a '/', against the whole path; without, a file or folder name
    run "$BIN" check repo --exclude 'repo/sub/*' --exclude vendor --json
    assert_eq 0 "$RC" "exit status without sub/"
    assert_eq "repo/ext/conv2d_external.onnx repo/good.onnx repo/skip/unfoldable.onnx" \
        "$(inputs "$OUT")" "models left"
    run "$BIN" check repo --exclude 'broken.onnx' --exclude vendor --json
    assert_eq 1 "$RC" "exit status without broken.onnx"
}

t_json_document() {
    run "$BIN" check repo --exclude vendor --json -j 3
    assert_eq 3 "$RC" "exit status"
    assert_valid_json "$OUT"
    local j=$OUT
    assert_json "$j" "d['schema_version']" 2
    assert_json "$j" "d['command']" check
    assert_json "$j" "len(d['models'])" 5
    assert_json "$j" "[m['outcome'] for m in d['models']]" \
        '["passed", "passed", "passed", "unreadable", "failed"]'
    assert_json "$j" "[m['exit_code'] for m in d['models']]" "[0, 0, 0, 3, 1]"
    assert_json "$j" "d['models'][3]['error'].startswith('repo/sub/broken.onnx: ')" true
    assert_json "$j" "d['models'][4]['check']['problems'][0]['code']" BN_NEG_VAR
    assert_json "$j" "d['models'][2]['batchnorms'][0]['reason_code']" SPATIAL
    assert_json "$j" "d['summary']['exit_code']" 3
    assert_json "$j" "d['summary']['skipped_by_reason']" '{"SPATIAL": 1, "NON_FINITE": 1}'
    assert_json "$j" "d['summary']['findings_by_code']" '{"BN_NEG_VAR": 1, "BN_DEAD_CHANNEL": 1}'
    assert_json "$j" "[d['summary'][k] for k in ('models', 'passed', 'failed', 'unreadable', 'batchnorms', 'folded', 'skipped', 'problems')]" \
        "[5, 3, 1, 1, 4, 2, 2, 1]"
    # one model named once is the one-model document, as in schema 1 plus the version
    run "$BIN" check repo/good.onnx --json
    assert_json "$OUT" "'models' in d" false
    assert_json "$OUT" "d['input']" repo/good.onnx
}

t_same_as_alone() {
    # each model's entry says what checking it alone says (timings aside)
    run "$BIN" check repo --exclude vendor --json -j 4
    cp "$OUT" "$W/batch.json"
    local m i=0
    for m in $ORDER; do
        run "$BIN" check "$m" --json
        cp "$OUT" "$W/alone.$i.json"
        printf '%s\n' "$RC" >"$W/alone.$i.rc"
        i=$((i + 1))
    done
    "$PY" - "$W" <<'EOF' || fail "a model's entry differs from its check alone"
import json, sys
w = sys.argv[1]
batch = json.load(open(w + "/batch.json"))["models"]
for i, entry in enumerate(batch):
    rc = int(open("%s/alone.%d.rc" % (w, i)).read())
    text = open("%s/alone.%d.json" % (w, i)).read()
    assert entry["exit_code"] == rc, (entry["input"], entry["exit_code"], rc)
    if not text.strip():
        assert entry["error"], entry
        continue
    alone = json.loads(text)
    for k in ("tool", "version", "schema_version", "command"):
        del alone[k]
    got = {k: v for k, v in entry.items() if k not in ("outcome", "exit_code", "error")}
    assert got == alone, (entry["input"], got, alone)
EOF
}

t_github() {
    run "$BIN" check repo --exclude vendor --format github
    assert_eq 3 "$RC" "exit status"
    expect_stdout_has "::error file=repo/sub/unhealthy.onnx,title=BN_NEG_VAR::" \
        "::error file=repo/sub/broken.onnx,title=bnfold::" \
        "::notice file=repo/ext/conv2d_external.onnx,title=BN_DEAD_CHANNEL::" \
        "check: 5 models: 3 passed, 1 failed, 1 unreadable; exit status 3"
}

# sarif_tool: the Multitool (npm @microsoft/sarif-multitool-linux) in
# build/sarif, or SARIF_MULTITOOL; empty when neither is there
sarif_tool() {
    local t=${SARIF_MULTITOOL:-$ROOT/build/sarif/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool}
    [ -f "$t" ] && { [ -x "$t" ] || chmod +x "$t" 2>/dev/null; } && [ -x "$t" ] && echo "$t"
}

t_sarif() {
    run "$BIN" check repo --exclude vendor --format sarif
    assert_eq 3 "$RC" "exit status"
    assert_valid_json "$OUT"
    local s=$W/check.sarif
    cp "$OUT" "$s"
    assert_json "$s" "d['version']" 2.1.0
    assert_json "$s" "len(d['runs'])" 1
    # every code is a rule: the schema's three code lists
    local codes
    # shellcheck disable=SC2016 # $defs is a JSON key
    codes=$("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1]))["$defs"]; print(json.dumps(sorted(d["reason_code"]["enum"] + d["finding_code"]["enum"] + d["gate_code"]["enum"])))' "$ROOT/docs/report.schema.json")
    assert_json "$s" "sorted(r['id'] for r in d['runs'][0]['tool']['driver']['rules'])" "$codes"
    assert_json "$s" "[[r['ruleId'], r['level'], r['locations'][0]['physicalLocation']['artifactLocation']['uri'], r['locations'][0]['logicalLocations'][0]['name']] for r in d['runs'][0]['results']]" \
        '[["BN_DEAD_CHANNEL", "note", "repo/ext/conv2d_external.onnx", "bn"], ["SPATIAL", "note", "repo/skip/unfoldable.onnx", "bn"], ["BN_NEG_VAR", "error", "repo/sub/unhealthy.onnx", "bn"], ["NON_FINITE", "note", "repo/sub/unhealthy.onnx", "bn"]]'
    assert_json "$s" "all(d['runs'][0]['tool']['driver']['rules'][r['ruleIndex']]['id'] == r['ruleId'] for r in d['runs'][0]['results'])" true
    assert_json "$s" "d['runs'][0]['invocations'][0]['exitCode']" 3
    assert_json "$s" "d['runs'][0]['invocations'][0]['toolExecutionNotifications'][0]['locations'][0]['physicalLocation']['artifactLocation']['uri']" repo/sub/broken.onnx
    # --sarif FILE besides the text report: the same log
    expect_exit 3 -- "$BIN" check repo --exclude vendor --sarif "$W/out.sarif"
    expect_stdout_has "check: 5 models"
    cmp -s "$s" "$W/out.sarif" || fail "--sarif FILE and --format sarif differ"
    # one model named once gives a log too
    expect_exit 1 -- "$BIN" check repo/sub/unhealthy.onnx --format sarif
    assert_json "$OUT" "d['runs'][0]['results'][0]['ruleId']" BN_NEG_VAR

    local mt
    mt=$(sarif_tool)
    if [ -z "$mt" ]; then
        echo "  SKIP [sarif:multitool]: the SARIF Multitool is not installed; to run this check:"
        echo "       npm install --prefix build/sarif @microsoft/sarif-multitool-linux"
        return 0
    fi
    "$BIN" inspect repo --exclude vendor --format sarif >"$W/inspect.sarif"
    local f
    for f in check inspect; do
        # the SARIF rules and GitHub's (Gh: what code scanning needs); the one
        # warning left is SARIF2005: the driver has no informationUri, as bnfold
        # has no public home page to name
        DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 "$mt" validate "$W/$f.sarif" \
            --rule-kind "Gh;Sarif" -o "$W/$f.validation.sarif" --log ForceOverwrite \
            >"$W/$f.validation.txt" 2>&1 || fail "Multitool validate $f: exit $? ($(tail -3 "$W/$f.validation.txt"))"
        "$PY" - "$W/$f.validation.sarif" <<'EOF' || fail "Multitool on $f: $(grep -E ' (error|warning) ' "$W/$f.validation.txt" | grep -v SARIF2005 | head -3)"
import json, sys
log = json.load(open(sys.argv[1]))
bad = [r["ruleId"] for run in log["runs"] for r in run.get("results", [])
       if r.get("level", "warning") in ("error", "warning") and r["ruleId"] != "SARIF2005"]
notes = [n for run in log["runs"] for inv in run.get("invocations", [])
         for n in inv.get("toolExecutionNotifications", []) if n.get("level") == "error"]
sys.exit(1 if bad or notes else 0)
EOF
    done
}

t_inspect_many() {
    expect_exit 3 -- "$BIN" inspect repo --exclude vendor -j 2
    expect_stdout_has "inspect: 5 models: 4 passed, 0 failed, 1 unreadable; exit status 3"
    # pictures are of one model
    expect_exit 2 -- "$BIN" inspect repo --dot "$W/g.dot"
    expect_no_output "$W/g.dot"
}

t_fold_out_dir() {
    local out=$W/folded
    expect_exit 3 -- "$BIN" fold repo --exclude vendor --out-dir "$out" -j 2 --no-verify
    expect_stdout_has "wrote $out/good.onnx" "wrote $out/ext/conv2d_external.onnx" \
        "fold: 5 models: 4 passed, 0 failed, 1 unreadable; exit status 3" \
        "BatchNormalization: 4 in all, 2 folded"
    if ! [ -f "$out/good.onnx" ] || ! [ -f "$out/skip/unfoldable.onnx" ] ||
        ! [ -f "$out/sub/unhealthy.onnx" ]; then
        fail "folded models missing: $(cd "$out" && find . -type f | sort | tr '\n' ' ')"
    fi
    [ ! -e "$out/sub/broken.onnx" ] || fail "a folded model of the malformed one"
    # external data beside its folded model, and the folded model reads it
    local others
    others=$(find "$out/ext" -type f ! -name conv2d_external.onnx | wc -l)
    [ "$others" -ge 1 ] || fail "no external data beside the folded model"
    expect_exit 0 -- "$BIN" check "$out/ext/conv2d_external.onnx" --fail-on unfolded
    expect_exit 0 -- "$BIN" verify repo/ext/conv2d_external.onnx "$out/ext/conv2d_external.onnx"
    # the same folded bytes as a fold of the model alone
    expect_exit 0 -- "$BIN" fold repo/good.onnx -o "$W/alone.onnx" --no-verify
    cmp -s "$W/alone.onnx" "$out/good.onnx" || fail "fold --out-dir and fold -o differ"
    # DIR is never searched: a second run over repo and DIR inside it
    mkdir -p "$W/r2" && cp repo/good.onnx "$W/r2/"
    expect_exit 0 -- "$BIN" fold "$W/r2" --out-dir "$W/r2/out" --no-verify
    expect_exit 0 -- "$BIN" fold "$W/r2" --out-dir "$W/r2/out" --no-verify
    expect_stdout_has "fold: 1 model: 1 passed"
    # -o is for one model
    expect_exit 2 -- "$BIN" fold repo -o "$W/x.onnx"
    expect_stderr_has "-o takes one MODEL"
}

t_worker_crash() {
    # a worker killed (a crash, or the OOM killer) costs only its model
    BNFOLD_TEST_WORKER_SIGNAL=good.onnx=9 run "$BIN" check repo --exclude vendor --json
    assert_eq 4 "$RC" "exit status"
    assert_json "$OUT" "[m['exit_code'] for m in d['models']]" "[0, 4, 0, 3, 1]"
    assert_json "$OUT" "'killed by signal 9' in d['models'][1]['error']" true
    BNFOLD_TEST_WORKER_SIGNAL=unfoldable.onnx run "$BIN" check repo --exclude vendor
    assert_eq 4 "$RC" "exit status"
    expect_stdout_has "repo/skip/unfoldable.onnx: error: " "killed by signal 11" \
        "repo/sub/unhealthy.onnx: 1 BatchNormalization"
}

t_quiet_and_progress() {
    # not a terminal: no progress line; --quiet: nothing but the exit code
    expect_exit 3 -- "$BIN" check repo --exclude vendor
    expect_stderr_empty
    expect_exit 3 -- "$BIN" --quiet check repo --exclude vendor
    expect_stdout_empty
    expect_stderr_empty
    # on a terminal (script(1) gives one): "check N/M FILE" on stderr
    if command -v script >/dev/null; then
        script -qec "'$BIN' check repo --exclude vendor -j 1 >/dev/null" /dev/null >"$W/tty.txt" 2>&1
        grep -q "bnfold: check [0-9]*/5" "$W/tty.txt" || fail "no progress on a terminal: $(head -c 300 "$W/tty.txt")"
    fi
}

t_action_script() {
    # the GitHub Action's step runs action/check.sh: here as on GitHub
    local summary=$W/summary.md
    run env BNFOLD="$BIN" INPUT_PATHS="repo/good.onnx repo/skip" INPUT_FAIL_ON="error,unfolded" \
        INPUT_SARIF="$W/action.sarif" INPUT_EXCLUDE="" GITHUB_STEP_SUMMARY="$summary" \
        bash "$ROOT/action/check.sh"
    assert_eq 1 "$RC" "action: unfolded trips the gate"
    expect_stdout_has "::error file=repo/good.onnx,title=BN_UNFOLDED::"
    assert_json "$W/action.sarif" "d['runs'][0]['invocations'][0]['exitCode']" 1
    grep -q "check: 2 models: 1 passed, 1 failed" "$summary" || fail "no job summary"
    run env BNFOLD="$BIN" INPUT_PATHS="repo" INPUT_FAIL_ON="error" INPUT_SARIF="" \
        INPUT_EXCLUDE="vendor sub" bash "$ROOT/action/check.sh"
    assert_eq 0 "$RC" "action: a clean repository passes"
    expect_stdout_has "check: 3 models: 3 passed"
}

t_pre_commit_entry() {
    # the hook's entry, run as pre-commit runs it: the entry's words, then
    # the changed files that match `files`, several at once
    local entry files
    entry=$("$PY" -c 'import yaml,sys; h=yaml.safe_load(open(sys.argv[1]))[0]; assert h["id"]=="bnfold-check"; print(h["entry"])' "$ROOT/.pre-commit-hooks.yaml") \
        || { fail "no bnfold-check hook"; return; }
    files=$("$PY" -c 'import re,sys,yaml; h=yaml.safe_load(open(sys.argv[1]))[0]; print(" ".join(f for f in sys.argv[2:] if re.search(h["files"], f)))' \
        "$ROOT/.pre-commit-hooks.yaml" repo/good.onnx README.md repo/sub/unhealthy.onnx repo/ext/conv2d_external.data)
    assert_eq "repo/good.onnx repo/sub/unhealthy.onnx" "$files" "files the hook is given"
    # pre-commit puts the hook's repository on PATH; here the binary under test
    mkdir -p "$W/bin" && ln -sf "$BIN" "$W/bin/bnfold"
    # shellcheck disable=SC2086 # the entry's words, as pre-commit splits them
    PATH="$W/bin:$PATH" run $entry $files
    assert_eq 1 "$RC" "the hook fails on the unhealthy model"
    expect_stdout_has "repo/sub/unhealthy.onnx" "check: 2 models: 1 passed, 1 failed"
    # shellcheck disable=SC2086
    PATH="$W/bin:$PATH" run $entry repo/good.onnx
    assert_eq 0 "$RC" "the hook passes a good model"
}

run_case parallel_same_output t_parallel_same_output
run_case text_and_summary t_text_and_summary
run_case exit_status_mixtures t_exit_status_mixtures
run_case exclude_paths t_exclude_paths
run_case json_document t_json_document
run_case same_as_alone t_same_as_alone
run_case github t_github
run_case sarif t_sarif
run_case inspect_many t_inspect_many
run_case fold_out_dir t_fold_out_dir
run_case worker_crash t_worker_crash
run_case quiet_and_progress t_quiet_and_progress
run_case action_script t_action_script
run_case pre_commit_entry t_pre_commit_entry
finish
