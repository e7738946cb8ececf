#!/usr/bin/env bash
# tests/cli_test.sh BIN: command-line tests of bnfold (run by `make cli-test`).
#
#   bash tests/cli_test.sh build/bnfold
#
# Needs only bash, coreutils, cmp, sha256sum and Debian's /usr/bin/python3
# (json module, to read the JSON reports; no onnx, no numpy).  Works in a fresh
# temporary directory that is removed on exit; never writes into testdata/.
# Every case is one function `t_NAME` (or one row of a table driving a
# parametrised function); the last line is "N passed, N failed".

set -u

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
suite_bin cli_test "$@"
MODELS=$ROOT/testdata/models
DEMO=$ROOT/testdata/demo/mobilenet_v2_tiny.onnx
suite_tmp cli

# ---------------------------------------------------------------------------
# helpers (the framework is tests/lib.sh)
# ---------------------------------------------------------------------------

sha() { sha256sum "$1" | cut -d' ' -f1; }

# stray_tmp DIR: print the temporary files bnfold left in DIR, if any.
stray_tmp() {
    local f
    for f in "$1"/.*.bnfold-*; do
        [ -e "$f" ] && echo "$f"
    done
    return 0
}

# expect_no_output PATH: PATH was not created and its folder (if it is one)
# holds no temporary file of bnfold; neither does the case's work directory.
expect_no_output() {
    local p=$1 d s
    [ -e "$p" ] || [ -L "$p" ] && fail "output '$p' exists after a failed fold"
    d=$(dirname "$p")
    local dirs=("$d")
    [ "$d" -ef "$W" ] || dirs+=("$W")
    for dir in "${dirs[@]}"; do
        if [ -d "$dir" ]; then
            s=$(stray_tmp "$dir")
            [ -n "$s" ] && fail "stray temporary file(s) in $dir: $s"
        fi
    done
    return 0
}

# expect_no_stray DIR...: no temporary files of bnfold in DIR
expect_no_stray() {
    local dir s
    for dir in "$@"; do
        s=$(stray_tmp "$dir")
        [ -n "$s" ] && fail "stray temporary file(s) in $dir: $s"
    done
    return 0
}

# op_count FILE OP: op_counts[OP] of a JSON report (0 when absent)
op_count() { json_get "$1" "d['model']['op_counts'].get('$2', 0)"; }

# ---------------------------------------------------------------------------
# 1. usage
# ---------------------------------------------------------------------------

t_version() {
    expect_exit 0 -- "$BIN" --version || return
    assert_eq "bnfold 0.1.0" "$(cat "$OUT")" "--version output"
    expect_stderr_empty
}

t_help() {
    expect_exit 0 -- "$BIN" --help || return
    expect_stdout_has "Usage: bnfold" inspect fold
    expect_exit 0 -- "$BIN" -h
    expect_stdout_has inspect fold
}

t_inspect_help() {
    expect_exit 0 -- "$BIN" inspect --help || return
    expect_stdout_has "Usage: bnfold inspect" "--json"
    expect_exit 0 -- "$BIN" inspect -h
    expect_stdout_has "Usage: bnfold inspect"
}

t_fold_help() {
    expect_exit 0 -- "$BIN" fold --help || return
    expect_stdout_has "Usage: bnfold fold" "-o" "--json"
    expect_exit 0 -- "$BIN" fold -h
    expect_stdout_has "Usage: bnfold fold"
}

t_no_args() {
    expect_exit 2 -- "$BIN"
    expect_stdout_empty
    expect_stderr_has "Usage"
}

t_unknown_command() {
    expect_exit 2 -- "$BIN" frobnicate "$MODELS/conv2d.onnx"
    expect_stderr_has frobnicate
    expect_stdout_empty
}

t_unknown_option() {
    expect_exit 2 -- "$BIN" inspect "$MODELS/conv2d.onnx" --frob
    expect_stderr_has "--frob"
    expect_stdout_empty
    expect_exit 2 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$W/out.onnx" --frob
    expect_stderr_has "--frob"
    expect_no_output "$W/out.onnx"
    expect_exit 2 -- "$BIN" --frob
}

t_fold_without_o() {
    expect_exit 2 -- "$BIN" fold "$MODELS/conv2d.onnx"
    expect_stdout_empty
    # -o without its argument
    expect_exit 2 -- "$BIN" fold "$MODELS/conv2d.onnx" -o
    expect_stdout_empty
    expect_exit 2 -- "$BIN" fold "$MODELS/conv2d.onnx" -o ""
    expect_stdout_empty
}

t_missing_model_arg() {
    expect_exit 2 -- "$BIN" inspect
    expect_stdout_empty
    expect_exit 2 -- "$BIN" inspect --json
    expect_stdout_empty
    expect_exit 2 -- "$BIN" fold -o "$W/out.onnx"
    expect_stdout_empty
    expect_no_output "$W/out.onnx"
}

t_extra_argument() {
    # two models are a run over many (tests/batch_test.sh); -o takes one
    expect_exit 0 -- "$BIN" inspect "$MODELS/conv2d.onnx" "$MODELS/conv1d.onnx"
    expect_stdout_has "inspect: 2 models: 2 passed"
    expect_exit 2 -- "$BIN" fold "$MODELS/conv2d.onnx" "$MODELS/conv1d.onnx" -o "$W/out.onnx"
    expect_stderr_has "-o takes one MODEL"
    expect_no_output "$W/out.onnx"
}

t_json_and_stdout_output() {
    # --json and -o - would both write to stdout: usage error, nothing written
    expect_exit 2 -- "$BIN" fold "$MODELS/conv2d.onnx" -o - --json
    expect_stdout_empty
}

# ---------------------------------------------------------------------------
# 2. unreadable and invalid inputs
# ---------------------------------------------------------------------------

# deterministic "random" bytes: 1024 bytes from a sha256 chain
make_random_bytes() {
    local i h j s=""
    h=bnfold-seed
    for ((i = 0; i < 32; i++)); do
        h=$(printf '%s' "$h" | sha256sum | cut -d' ' -f1)
        for ((j = 0; j < 64; j += 2)); do
            s+="\\x${h:j:2}"
        done
    done
    printf '%b' "$s" >"$1"
}

t_missing_input() {
    local m=$W/does_not_exist.onnx
    expect_exit 4 -- "$BIN" inspect "$m"
    expect_stderr_has does_not_exist.onnx
    expect_stdout_empty
    expect_exit 4 -- "$BIN" fold "$m" -o "$W/out.onnx"
    expect_stderr_has does_not_exist.onnx
    expect_stdout_empty
    expect_no_output "$W/out.onnx"
    expect_exit 4 -- "$BIN" inspect "$m" --json
    expect_stdout_empty
}

# invalid_model KIND: a file that is not a model -> exit 3, named in stderr
invalid_model() {
    local m
    case $1 in
    text) m=$W/notes.txt.onnx; printf 'this is a text file, not a model\n' >"$m" ;;
    random) m=$W/random_bytes.onnx; make_random_bytes "$m" ;;
    empty) m=$W/empty_file.onnx; : >"$m" ;;
    directory) m=$W/a_directory.onnx; mkdir "$m" ;;
    esac
    local base
    base=$(basename "$m")
    if [ "$1" = directory ]; then
        # a directory is a folder of models (tests/batch_test.sh): one with
        # no model in it is an I/O error, never ok; -o takes one MODEL
        expect_exit 4 -- "$BIN" inspect "$m"
        expect_stdout_has "$base: error: no model (*.onnx) in this folder"
        expect_exit 2 -- "$BIN" fold "$m" -o "$W/out.onnx"
        expect_stderr_has "-o takes one MODEL"
        expect_no_output "$W/out.onnx"
        return
    fi
    local before
    before=$(sha "$m")
    expect_exit 3 -- "$BIN" inspect "$m"
    expect_stderr_has "$base"
    expect_stdout_empty
    expect_exit 3 -- "$BIN" inspect "$m" --json
    expect_stdout_empty
    expect_exit 3 -- "$BIN" fold "$m" -o "$W/out.onnx"
    expect_stderr_has "$base"
    expect_stdout_empty
    expect_no_output "$W/out.onnx"
    expect_exit 3 -- "$BIN" fold "$m" -o "$W/out2.onnx" --json
    expect_stdout_empty
    expect_no_output "$W/out2.onnx"
    assert_eq "$before" "$(sha "$m")" "sha256 of the invalid input"
}

t_failed_fold_keeps_existing_output() {
    # a failed fold must not touch an existing OUT
    local bad=$W/bad.onnx out=$W/existing.onnx
    printf 'garbage' >"$bad"
    printf 'previous content\n' >"$out"
    expect_exit 3 -- "$BIN" fold "$bad" -o "$out"
    assert_eq "previous content" "$(cat "$out")" "existing OUT after a failed fold"
    expect_no_stray "$W"
    expect_exit 4 -- "$BIN" fold "$W/missing.onnx" -o "$out"
    assert_eq "previous content" "$(cat "$out")" "existing OUT after a failed fold"
    expect_no_stray "$W"
}

# ---------------------------------------------------------------------------
# 3. inspect --json
# ---------------------------------------------------------------------------

t_inspect_json_conv2d() {
    local m=$MODELS/conv2d.onnx j=$W/inspect.json
    expect_exit 0 -- "$BIN" inspect "$m" --json || return
    save_out inspect.json
    expect_stderr_empty
    assert_valid_json "$j"
    assert_json "$j" "d['tool']" bnfold
    assert_json "$j" "d['version']" 0.1.0
    assert_json "$j" "d['schema_version']" 2
    assert_json "$j" "d['command']" inspect
    assert_json "$j" "d['input']" "$m"
    assert_json "$j" "'output' in d" false
    assert_json "$j" "d['model']['ir_version']" 8
    assert_json "$j" "d['model']['opsets']" '[{"domain": "", "version": 13}]'
    assert_json "$j" "d['model']['producer']" "bnfold-testdata 1"
    assert_json "$j" "d['model']['nodes']" 2
    assert_json "$j" "d['model']['op_counts']" '{"Conv": 1, "BatchNormalization": 1}'
    # W [4,3,3,3], conv_B [4], scale/B/mean/var [4]: 6 float32 tensors
    assert_json "$j" "d['model']['initializers']" 6
    assert_json "$j" "d['model']['initializer_bytes']" $(((108 + 4 * 5) * 4))
    assert_json "$j" "len(d['batchnorms'])" 1
    assert_json "$j" "d['batchnorms'][0]['name']" bn
    assert_json "$j" "d['batchnorms'][0]['output']" Y
    assert_json "$j" "d['batchnorms'][0]['decision']" fold
    assert_json "$j" "d['batchnorms'][0]['layer_op']" Conv
    assert_json "$j" "d['batchnorms'][0]['layer']" conv
    assert_json "$j" "d['batchnorms'][0]['reason_code']" null
    assert_json "$j" "d['batchnorms'][0]['reason']" null
    # conv_case default: M = 4 output channels
    assert_json "$j" "d['batchnorms'][0]['channels']" 4
    assert_json_true "$j" "abs(d['batchnorms'][0]['epsilon'] - 1e-5) < 1e-9"
    # one variance is 1e-5 by construction
    assert_json_true "$j" "abs(d['batchnorms'][0]['min_var'] - 1e-5) < 1e-9"
    assert_json_true "$j" "d['batchnorms'][0]['max_abs_scale'] > 0"
    # "actions" are what fold did: only in fold's report (README); if inspect
    # has them anyway they must describe the fold it would do
    assert_json "$j" "[[a[k] for k in ('bn', 'layer', 'layer_op')] for a in d.get('actions', [])] in ([], [['bn', 'conv', 'Conv']])" true
    assert_json "$j" "{k: d['summary'][k] for k in ('batchnorms', 'folded', 'skipped', 'batchnorms_after')}" '{"batchnorms": 1, "folded": 1, "skipped": 0, "batchnorms_after": 0}'
}

t_inspect_human_conv2d() {
    expect_exit 0 -- "$BIN" inspect "$MODELS/conv2d.onnx" || return
    expect_stdout_has "Conv 1" "BatchNormalization 1" "1 foldable, 0 skipped"
    expect_stdout_lacks "{"
}

t_inspect_default_epsilon() {
    # bn_opset9/bn_opset15 omit epsilon: the default 1e-5 applies
    local n
    for n in bn_opset9 bn_opset15; do
        expect_exit 0 -- "$BIN" inspect "$MODELS/$n.onnx" --json || continue
        save_out $n.json
        assert_json_true "$W/$n.json" "abs(d['batchnorms'][0]['epsilon'] - 1e-5) < 1e-9"
        assert_json "$W/$n.json" "d['batchnorms'][0]['decision']" fold
    done
}

# ---------------------------------------------------------------------------
# 4. fold every fold case
# ---------------------------------------------------------------------------

fold_case() {
    local n=$1 m=$MODELS/$1.onnx out=$W/$1.folded.onnx
    local j=$W/fold.json a=$W/after.json before
    before=$(sha "$m")
    expect_exit 0 -- "$BIN" fold "$m" -o "$out" --json || return
    save_out fold.json
    assert_valid_json "$j"
    assert_json "$j" "d['command']" fold
    assert_json "$j" "d['tool']" bnfold
    assert_json "$j" "d['schema_version']" 2
    assert_json "$j" "d['input']" "$m"
    assert_json "$j" "d['output']" "$out"
    local nbn
    nbn=$(op_count "$j" BatchNormalization)
    [ "$nbn" -ge 1 ] 2>/dev/null || fail "op_counts.BatchNormalization = '$nbn'"
    assert_json "$j" "d['summary']['batchnorms']" "$nbn"
    assert_json "$j" "len(d['batchnorms'])" "$nbn"
    assert_json "$j" "d['summary']['folded']" "$nbn"
    assert_json "$j" "d['summary']['skipped']" 0
    assert_json "$j" "d['summary']['batchnorms_after']" 0
    assert_json "$j" "len(d['actions'])" "$nbn"
    assert_json "$j" "[a['bn'] for a in d['actions']] == [b['name'] for b in d['batchnorms']]" true
    assert_json "$j" "all(a['layer_op'] in ('Conv', 'ConvTranspose', 'Gemm') and a['layer'] and a['weight'] and a['bias'] for a in d['actions'])" true
    assert_json "$j" "all(b['layer_op'] in ('Conv', 'ConvTranspose', 'Gemm') and b['reason_code'] is None for b in d['batchnorms'])" true
    assert_json "$j" "sorted(set(b['decision'] for b in d['batchnorms']))" '["fold"]'
    case $n in
    conv2d_shared_weight | conv2d_bn_bn) assert_eq 2 "$nbn" "BN count of $n" ;;
    *) assert_eq 1 "$nbn" "BN count of $n" ;;
    esac
    [ -f "$out" ] || { fail "no output file $out"; return; }
    expect_no_stray "$W"
    assert_eq "$before" "$(sha "$m")" "sha256 of the input after fold"

    expect_exit 0 -- "$BIN" inspect "$out" --json || return
    cp "$OUT" "$a"
    assert_json "$a" "len(d['batchnorms'])" 0
    assert_json "$a" "d['summary']['batchnorms']" 0
    assert_json "$a" "'BatchNormalization' in d['model']['op_counts']" false
    local op
    for op in Conv ConvTranspose Gemm; do
        assert_eq "$(op_count "$j" $op)" "$(op_count "$a" $op)" "$op count after folding"
    done
    [ "$(op_count "$j" Conv)$(op_count "$j" ConvTranspose)$(op_count "$j" Gemm)" != 000 ] ||
        fail "no Conv/ConvTranspose/Gemm in $n"
}

t_fold_human_report() {
    local out=$W/out.onnx
    expect_exit 0 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$out" || return
    expect_stdout_has "1 folded, 0 skipped" "0 left" "wrote $out"
    expect_stderr_empty
    [ -f "$out" ] || fail "no output file"
}

# ---------------------------------------------------------------------------
# 5. skip cases
# ---------------------------------------------------------------------------

skip_case() {
    local n=$1 code=$2 m=$MODELS/$1.onnx out=$W/$1.out.onnx
    local j=$W/inspect.json f=$W/fold.json a=$W/after.json
    expect_exit 0 -- "$BIN" inspect "$m" --json || return
    save_out inspect.json
    assert_json "$j" "len(d['batchnorms'])" 1
    assert_json "$j" "d['batchnorms'][0]['decision']" skip
    assert_json "$j" "d['batchnorms'][0]['reason_code']" "$code"
    assert_json_true "$j" "isinstance(d['batchnorms'][0]['reason'], str) and d['batchnorms'][0]['reason'].strip()"
    assert_json "$j" "{k: d['summary'][k] for k in ('batchnorms', 'folded', 'skipped', 'batchnorms_after')}" '{"batchnorms": 1, "folded": 0, "skipped": 1, "batchnorms_after": 1}'
    assert_json "$j" "d.get('actions', [])" '[]'
    # every skip model but the standalone BN has the BN right after Conv 'conv'
    if [ "$code" = NO_LAYER ]; then
        assert_json "$j" "[d['batchnorms'][0]['layer_op'], d['batchnorms'][0]['layer']]" '[null, null]'
    else
        assert_json "$j" "[d['batchnorms'][0]['layer_op'], d['batchnorms'][0]['layer']]" '["Conv", "conv"]'
    fi

    expect_exit 0 -- "$BIN" inspect "$m" || return
    expect_stdout_has "$code" "0 foldable, 1 skipped"

    expect_exit 0 -- "$BIN" fold "$m" -o "$out" --json || return
    save_out fold.json
    assert_json "$f" "d['batchnorms'][0]['decision']" skip
    assert_json "$f" "d['batchnorms'][0]['reason_code']" "$code"
    assert_json "$f" "d['summary']['batchnorms_after']" 1
    assert_json "$f" "d['summary']['folded']" 0
    assert_json "$f" "d['actions']" '[]'
    [ -f "$out" ] || { fail "no output file"; return; }
    expect_exit 0 -- "$BIN" inspect "$out" --json || return
    cp "$OUT" "$a"
    assert_json "$a" "d['model']['op_counts'].get('BatchNormalization', 0)" 1
    assert_json "$a" "d['model']['op_counts']" "$(json_get "$j" "d['model']['op_counts']")"
    assert_json "$a" "d['batchnorms'][0]['reason_code']" "$code"
}

# ---------------------------------------------------------------------------
# 6. round trip
# ---------------------------------------------------------------------------

t_roundtrip_no_bn() {
    local m=$MODELS/roundtrip_no_bn.onnx out=$W/out.onnx
    expect_exit 0 -- "$BIN" fold "$m" -o "$out" || return
    cmp -s "$m" "$out" || fail "output of roundtrip_no_bn is not byte-identical to the input"
    expect_exit 0 -- "$BIN" inspect "$m" --json || return
    save_out i.json
    assert_json "$W/i.json" "d['summary']['batchnorms']" 0
    assert_json "$W/i.json" "d['model']['opsets']" \
        '[{"domain": "", "version": 13}, {"domain": "com.example.custom", "version": 1}]'
}

t_roundtrip_unknown() {
    local m=$MODELS/roundtrip_unknown.onnx out=$W/out.onnx
    expect_exit 0 -- "$BIN" fold "$m" -o "$out" --json || return
    save_out f.json
    assert_json "$W/f.json" "d['summary']['batchnorms_after']" 0
    [ -f "$out" ] || { fail "no output"; return; }
    cmp -s "$m" "$out" && fail "roundtrip_unknown output equals the input: nothing folded?"
    local got
    got=$("$PY" -c '
import sys
b = open(sys.argv[1], "rb").read()
print("end" if b.endswith(b"\x98\x06\x2a") else "inside" if b"\x98\x06\x2a" in b else "missing")
' "$out")
    [ "$got" = end ] || [ "$got" = inside ] || fail "unknown field 99 (98 06 2a) lost: $got"
    # strings the generator put in (decorate() and the node doc strings);
    # the BN node and its doc string are gone after the fold
    local s
    for s in "bnfold test model: every field must survive" "graph doc string" \
        "org.example.bnfold" "author" "bnfold testdata" "license" "MIT" "note" \
        "metadata must survive" "doc of conv"; do
        assert_eq 1 "$(grep -a -c -F -- "$s" "$out")" "occurrences of '$s' in the folded model"
    done
    expect_exit 0 -- "$BIN" inspect "$out" --json || return
    save_out a.json
    assert_json "$W/a.json" "d['model']['op_counts']" '{"Conv": 1}'
    assert_json "$W/a.json" "d['model']['producer']" "bnfold-testdata 1"
}

# ---------------------------------------------------------------------------
# 7. the input is never modified; -o -
# ---------------------------------------------------------------------------

t_input_unchanged() {
    local m=$W/model.onnx before
    cp "$MODELS/conv2d.onnx" "$m"
    before=$(sha "$m")
    expect_exit 0 -- "$BIN" fold "$m" -o "$W/out.onnx"
    [ -f "$W/out.onnx" ] || fail "no output file"
    cmp -s "$m" "$W/out.onnx" && fail "the output equals the input: nothing folded"
    assert_eq "$before" "$(sha "$m")" "sha256 of the input after fold"
    expect_exit 0 -- "$BIN" inspect "$m" --json
    assert_eq "$before" "$(sha "$m")" "sha256 of the input after inspect"
    cmp -s "$m" "$MODELS/conv2d.onnx" || fail "input changed"
}

t_same_path() {
    local m=$W/model.onnx before
    cp "$MODELS/conv2d.onnx" "$m"
    before=$(sha "$m")
    expect_exit 2 -- "$BIN" fold "$m" -o "$m"
    assert_eq "$before" "$(sha "$m")" "sha256 of M after 'fold M -o M'"
    expect_no_stray "$W"
    # the same file under other names
    expect_exit 2 -- env -C "$W" "$BIN" fold model.onnx -o ./model.onnx
    ln -s model.onnx "$W/link.onnx"
    expect_exit 2 -- "$BIN" fold "$m" -o "$W/link.onnx"
    ln "$m" "$W/hard.onnx"
    expect_exit 2 -- "$BIN" fold "$m" -o "$W/hard.onnx"
    assert_eq "$before" "$(sha "$m")" "sha256 of M after folding onto its other names"
    [ -L "$W/link.onnx" ] || fail "the symlink was replaced"
    expect_no_stray "$W"
}

t_stdout_output() {
    local m=$MODELS/conv2d.onnx file=$W/file.onnx
    expect_exit 0 -- "$BIN" fold "$m" -o "$file" || return
    expect_exit 0 -- "$BIN" fold "$m" -o - || return
    cp "$OUT" "$W/stdout.onnx"
    cmp -s "$file" "$W/stdout.onnx" || fail "'-o -' bytes differ from '-o FILE' bytes"
    expect_stderr_has "1 folded" "BatchNormalization"
    [ -e "$W/-" ] && fail "a file named '-' was created"
    expect_exit 0 -- "$BIN" inspect "$W/stdout.onnx" --json || return
    save_out i.json
    assert_json "$W/i.json" "d['summary']['batchnorms']" 0
}

# ---------------------------------------------------------------------------
# 8. atomic write
# ---------------------------------------------------------------------------

t_output_dir_missing() {
    local out=$W/no_such_dir/out.onnx
    expect_exit 4 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$out"
    expect_stderr_has "no_such_dir"
    expect_no_output "$out"
    [ -e "$W/no_such_dir" ] && fail "the missing folder was created"
    return 0
}

t_output_unwritable() {
    local out
    mkdir "$W/ro"
    chmod 555 "$W/ro"
    if (: >"$W/ro/probe") 2>/dev/null; then
        # running as root: permissions do not stop writes; use paths that
        # cannot be created by anyone instead
        rm -f "$W/ro/probe"
    else
        out=$W/ro/out.onnx
        expect_exit 4 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$out"
        expect_stderr_has "out.onnx"
        expect_no_output "$out"
    fi
    chmod 755 "$W/ro"
    printf 'x\n' >"$W/file"
    out=$W/file/out.onnx
    expect_exit 4 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$out"
    expect_stderr_has "out.onnx"
    expect_no_output "$out"
    assert_eq x "$(cat "$W/file")" "content of the file used as a folder"
    if [ -f /proc/version ]; then
        expect_exit 4 -- "$BIN" fold "$MODELS/conv2d.onnx" -o /proc/version/x
        expect_stderr_has "/proc/version/x"
    fi
}

t_output_is_directory() {
    # rename onto a directory fails: exit 4, the directory and folder unchanged
    mkdir "$W/dir.onnx"
    expect_exit 4 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$W/dir.onnx"
    expect_stderr_has "dir.onnx"
    [ -d "$W/dir.onnx" ] || fail "the directory is gone"
    [ -z "$(ls -A "$W/dir.onnx")" ] || fail "something was written into the directory"
    expect_no_stray "$W"
}

t_output_replaced() {
    local out=$W/out.onnx ref=$W/ref.onnx
    printf 'OLD CONTENT that must disappear\n' >"$out"
    expect_exit 0 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$out" || return
    grep -q -a "OLD CONTENT" "$out" && fail "the old content survived"
    expect_exit 0 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$ref" || return
    cmp -s "$out" "$ref" || fail "replaced output differs from a fresh output"
    expect_exit 0 -- "$BIN" inspect "$out" --json || return
    save_out i.json
    assert_json "$W/i.json" "d['model']['op_counts']" '{"Conv": 1}'
    assert_json "$W/i.json" "d['summary']['batchnorms']" 0
    expect_no_stray "$W"
}

# ---------------------------------------------------------------------------
# 9. external data
# ---------------------------------------------------------------------------

t_external_same_dir() {
    local d=$W/src
    mkdir "$d"
    cp "$MODELS/conv2d_external.onnx" "$MODELS/conv2d_external.data" "$d/"
    local s_model s_data
    s_model=$(sha "$d/conv2d_external.onnx")
    s_data=$(sha "$d/conv2d_external.data")
    expect_exit 0 -- "$BIN" inspect "$d/conv2d_external.onnx" --json || return
    save_out in.json
    assert_json "$W/in.json" "d['batchnorms'][0]['decision']" fold
    expect_exit 0 -- "$BIN" fold "$d/conv2d_external.onnx" -o "$d/folded.onnx" --json || return
    save_out f.json
    assert_json "$W/f.json" "d['summary']['batchnorms_after']" 0
    expect_exit 0 -- "$BIN" inspect "$d/folded.onnx" --json || return
    save_out a.json
    assert_json "$W/a.json" "d['model']['op_counts']" '{"Conv": 1}'
    assert_json "$W/a.json" "d['summary']['batchnorms']" 0
    assert_eq "$s_model" "$(sha "$d/conv2d_external.onnx")" "sha256 of the input model"
    assert_eq "$s_data" "$(sha "$d/conv2d_external.data")" "sha256 of the input data file"
    expect_no_stray "$d"
}

t_external_other_dir() {
    local d=$W/src o=$W/other
    mkdir "$d" "$o"
    cp "$MODELS/conv2d_external.onnx" "$MODELS/conv2d_external.data" "$d/"
    expect_exit 0 -- "$BIN" fold "$d/conv2d_external.onnx" -o "$o/folded.onnx" || return
    rm -rf "$d"
    expect_exit 0 -- "$BIN" inspect "$o/folded.onnx" --json || return
    save_out a.json
    assert_json "$W/a.json" "d['model']['op_counts']" '{"Conv": 1}'
    assert_json "$W/a.json" "d['summary']['batchnorms']" 0
    # the weights are in the model: W [4,3,3,3] and its bias [4], float32
    assert_json "$W/a.json" "d['model']['initializer_bytes']" $(((108 + 4) * 4))
    # and a second fold of the result (no BN) works without the source folder
    expect_exit 0 -- "$BIN" fold "$o/folded.onnx" -o "$o/again.onnx"
    expect_no_stray "$o"
}

# A weight of 1 KiB and more: the output gets its own data file, OUT.data; the
# input's files stay as they were; the output stands on its own; --in-place
# replaces both files.
t_external_data_file() {
    local d=$W/src o=$W/other s_model s_data
    mkdir "$d" "$o"
    cp "$MODELS/conv2d_external_big.onnx" "$MODELS/conv2d_external_big.data" "$d/"
    s_model=$(sha "$d/conv2d_external_big.onnx")
    s_data=$(sha "$d/conv2d_external_big.data")
    expect_exit 0 -- "$BIN" fold "$d/conv2d_external_big.onnx" -o "$o/f.onnx" || return
    [ -s "$o/f.onnx.data" ] || fail "no data file $o/f.onnx.data"
    assert_eq "$s_model" "$(sha "$d/conv2d_external_big.onnx")" "sha256 of the input model"
    assert_eq "$s_data" "$(sha "$d/conv2d_external_big.data")" "sha256 of the input data file"
    expect_no_stray "$d" "$o"
    rm -rf "$d"
    expect_exit 0 -- "$BIN" verify "$o/f.onnx" "$o/f.onnx" || return
    expect_exit 0 -- "$BIN" inspect "$o/f.onnx" --json || return
    save_out a.json
    assert_json "$W/a.json" "d['model']['op_counts']" '{"Conv": 1}'
    expect_exit 0 -- "$BIN" fold "$o/f.onnx" --in-place || return
    [ -s "$o/f.onnx.data" ] || fail "--in-place lost the data file"
    expect_exit 0 -- "$BIN" inspect "$o/f.onnx" || return
    expect_no_stray "$o"
}

t_external_to_stdout() {
    local d=$W/src
    mkdir "$d"
    cp "$MODELS/conv2d_external.onnx" "$MODELS/conv2d_external.data" "$d/"
    expect_exit 0 -- "$BIN" fold "$d/conv2d_external.onnx" -o - || return
    cp "$OUT" "$W/stdout.onnx"
    rm -rf "$d"
    expect_exit 0 -- "$BIN" inspect "$W/stdout.onnx" --json || return
    save_out a.json
    assert_json "$W/a.json" "d['model']['op_counts']" '{"Conv": 1}'
}

t_external_escape() {
    local m=$MODELS/conv2d_external_escape.onnx out=$W/out.onnx
    expect_exit 3 -- "$BIN" inspect "$m"
    expect_stderr_has escapes
    expect_exit 3 -- "$BIN" fold "$m" -o "$out"
    expect_stderr_has escapes
    expect_no_output "$out"
    # a copy whose ../escape.data exists as well
    mkdir "$W/sub"
    cp "$m" "$MODELS/conv2d_external_escape.data" "$W/sub/"
    cp "$ROOT/testdata/escape.data" "$W/escape.data"
    expect_exit 3 -- "$BIN" fold "$W/sub/conv2d_external_escape.onnx" -o "$W/sub/out.onnx"
    expect_stderr_has escapes
    expect_no_output "$W/sub/out.onnx"
}

t_external_missing_data() {
    local d=$W/src out=$W/src/out.onnx
    mkdir "$d"
    cp "$MODELS/conv2d_external.onnx" "$d/"
    expect_exit 4 -- "$BIN" inspect "$d/conv2d_external.onnx"
    expect_stderr_has conv2d_external.data
    expect_exit 4 -- "$BIN" fold "$d/conv2d_external.onnx" -o "$out"
    expect_stderr_has conv2d_external.data
    expect_no_output "$out"
    expect_exit 4 -- "$BIN" fold "$d/conv2d_external.onnx" -o "$W/elsewhere.onnx"
    expect_no_output "$W/elsewhere.onnx"
}

# ---------------------------------------------------------------------------
# 10. the demo model
# ---------------------------------------------------------------------------

t_demo_inspect() {
    expect_exit 0 -- "$BIN" inspect "$DEMO" || return
    expect_stdout_has "BatchNormalization 52" "Conv 52" "52 BatchNormalization: 52 foldable, 0 skipped"
    local rows
    rows=$(grep -c -E '(^| )fold +[0-9]+ ' "$OUT")
    assert_eq 52 "$rows" "table rows with decision fold"
    expect_exit 0 -- "$BIN" inspect "$DEMO" --json || return
    save_out i.json
    assert_json "$W/i.json" "len(d['batchnorms'])" 52
    assert_json "$W/i.json" "all(b['decision'] == 'fold' and b['layer_op'] == 'Conv' for b in d['batchnorms'])" true
    assert_json "$W/i.json" "{k: d['summary'][k] for k in ('batchnorms', 'folded', 'skipped', 'batchnorms_after')}" '{"batchnorms": 52, "folded": 52, "skipped": 0, "batchnorms_after": 0}'
}

t_demo_fold() {
    local out=$W/demo.folded.onnx
    expect_exit 0 -- "$BIN" fold "$DEMO" -o "$out" --json || return
    save_out f.json
    assert_json "$W/f.json" "d['summary']['folded']" 52
    assert_json "$W/f.json" "d['summary']['batchnorms_after']" 0
    expect_exit 0 -- "$BIN" inspect "$out" --json || return
    save_out a.json
    assert_json "$W/a.json" "d['model']['op_counts'].get('BatchNormalization', 0)" 0
    assert_json "$W/a.json" "d['model']['op_counts']['Conv']" 52
    assert_json "$W/a.json" "d['model']['op_counts']['Gemm']" 1
}

# ---------------------------------------------------------------------------
# testdata must stay untouched
# ---------------------------------------------------------------------------

testdata_fingerprint() {
    (cd "$ROOT/testdata" && find . -type f -o -type d | LC_ALL=C sort | while read -r f; do
        if [ -f "$f" ]; then echo "$(sha256sum <"$f" | cut -d' ' -f1) $f"; else echo "dir $f"; fi
    done)
}

t_testdata_untouched() {
    assert_eq "$TESTDATA_BEFORE" "$(testdata_fingerprint)" "testdata/ fingerprint"
}

# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------

[ -f "$MODELS/conv2d.onnx" ] || { echo "cli_test: no test models in $MODELS" >&2; exit 2; }
[ -x "$PY" ] || { echo "cli_test: $PY is missing" >&2; exit 2; }
TESTDATA_BEFORE=$(testdata_fingerprint)


# ---------------------------------------------------------------------------
# 11. verification, verify and run
# ---------------------------------------------------------------------------

t_fold_reports_verification() {
    expect_exit 0 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$W/out.onnx" --json || return
    save_out fold.json
    assert_json_true "$W/fold.json" "d['verification']['local']['pass']"
    assert_json_true "$W/fold.json" "d['verification']['end_to_end']['ran']"
    assert_json_true "$W/fold.json" "d['verification']['end_to_end']['pass']"
    assert_json_true "$W/fold.json" "d['verification']['end_to_end']['input_sets'] == 3"
    assert_json_true "$W/fold.json" "d['batchnorms'][0]['local_rel_err'] < 1e-5"
    assert_json_true "$W/fold.json" "d['verification']['end_to_end']['noise_floor'] == 0"
    # a bfloat16 Gemm -> BN subtracting a mean of -50: its fold passes only within
    # the noise of the 16-bit weights, and the report says so
    local bf="$ROOT/tests/difftest/regressions/bug_i_e2e_check_no_noise_floor/model.onnx"
    expect_exit 0 -- "$BIN" fold "$bf" -o "$W/bf.onnx" --json || return
    save_out bf.json
    assert_json_true "$W/bf.json" "d['verification']['end_to_end']['noise_floor'] > 1"
    expect_exit 0 -- "$BIN" fold "$bf" -o "$W/bf2.onnx" || return
    expect_stdout_has "within the noise of the 16-bit weights"
    expect_exit 0 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$W/out2.onnx" --no-verify --json || return
    save_out nover.json
    assert_json_true "$W/nover.json" "d['verification']['local'] is None"
    assert_json_true "$W/nover.json" "d['verification']['end_to_end'] is None"
}

# A deliberately broken fold (test hook) is caught: exit 1, nothing written.
t_broken_fold_refused() {
    expect_exit 1 -- env BNFOLD_TEST_BREAK_FOLD=1 "$BIN" fold "$MODELS/conv2d.onnx" -o "$W/out.onnx" || return
    expect_stderr_has "changes its result" "'bn'"
    expect_no_output "$W/out.onnx"
    expect_no_stray "$W"
    expect_exit 1 -- env BNFOLD_TEST_BREAK_FOLD=1 "$BIN" fold "$DEMO" -o "$W/demo.onnx" || return
    expect_no_output "$W/demo.onnx"
}

t_verify_honest_folds() {
    local m
    for m in conv2d convtranspose2d_group gemm_c_mn conv2d_bn_bn; do
        expect_exit 0 -- "$BIN" fold "$MODELS/$m.onnx" -o "$W/$m.f.onnx" --no-verify || return
        expect_exit 0 -- "$BIN" verify "$MODELS/$m.onnx" "$W/$m.f.onnx" || return
        expect_stdout_has "equivalent"
    done
    expect_exit 0 -- "$BIN" fold "$DEMO" -o "$W/demo.f.onnx" --no-verify || return
    expect_exit 0 -- "$BIN" verify "$DEMO" "$W/demo.f.onnx" --json || return
    save_out v.json
    assert_json_true "$W/v.json" "d['equivalent'] and d['values'] > 100 and d['input_sets'] == 3"
}

# The same models with one output channel of the folded weight scaled by
# 1 + 1e-3 (written by python3's struct module, not by bnfold): exit 1.
t_verify_catches_scaled_channel() {
    expect_exit 0 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$W/f.onnx" --no-verify --json || return
    save_out f.json
    local wname
    wname=$(json_get "$W/f.json" "d['actions'][0]['weight']")
    /usr/bin/python3 - "$W/f.onnx" "$W/t.onnx" "$wname" <<'PY' || { fail "tamper script"; return; }
import struct, sys
data = open(sys.argv[1], "rb").read()
name = sys.argv[3].encode()
# the folded weight is a float32 [4, C, kh, kw] TensorProto in raw_data: find its
# name field (tag 8) and the raw_data field (tag 9 = 0x4a) after it
i = data.index(b"\x42" + bytes([len(name)]) + name)
j = data.index(b"\x4a", i)
n, k = 0, 0
while True:
    b = data[j + 1 + k]; n |= (b & 0x7f) << (7 * k); k += 1
    if not b & 0x80: break
start = j + 1 + k
vals = list(struct.unpack("<%df" % (n // 4), data[start:start + n]))
per = len(vals) // 4
best = max(range(4), key=lambda c: sum(abs(v) for v in vals[c * per:(c + 1) * per]))
for q in range(best * per, (best + 1) * per):
    vals[q] *= 1.001
out = data[:start] + struct.pack("<%df" % len(vals), *vals) + data[start + n:]
open(sys.argv[2], "wb").write(out)
PY
    expect_exit 1 -- "$BIN" verify "$MODELS/conv2d.onnx" "$W/t.onnx" || return
    expect_stdout_has "NOT equivalent" "'Y'"
    expect_exit 1 -- "$BIN" verify "$MODELS/conv2d.onnx" "$W/t.onnx" --json || return
    save_out t.json
    assert_json_true "$W/t.json" "d['equivalent'] is False and d['worst_output'] == 'Y'"
    expect_exit 0 -- "$BIN" verify "$MODELS/conv2d.onnx" "$W/f.onnx"
}

t_verify_usage() {
    expect_exit 2 -- "$BIN" verify "$MODELS/conv2d.onnx"
    expect_exit 2 -- "$BIN" verify "$MODELS/conv2d.onnx" "$MODELS/conv2d.onnx" --rtol abc
    expect_exit 4 -- "$BIN" verify "$MODELS/conv2d.onnx" "$W/missing.onnx"
    expect_exit 0 -- "$BIN" verify --help
}

# run on the demo with torch's input: the output matches torch's output.
t_run_demo() {
    expect_exit 0 -- "$BIN" run "$DEMO" --input "$ROOT/testdata/demo/input_0.pb" --output-dir "$W" || return
    expect_stdout_has "logits" "[1, 100]"
    [ -f "$W/output_0.pb" ] || { fail "no output_0.pb"; return; }
    expect_exit 0 -- "$BIN" run "$DEMO" --input "image=$ROOT/testdata/demo/input_0.pb" --json --repeat 3 || return
    save_out run.json
    assert_json_true "$W/run.json" "d['outputs'][0]['shape'] == [1, 100] and d['runs'] == 3"
    /usr/bin/python3 - "$W/output_0.pb" "$ROOT/testdata/demo/output_0.pb" <<'PY' || fail "run output differs from torch"
import struct, sys
def floats(path):
    d = open(path, "rb").read()
    j = d.index(b"\x4a")  # raw_data
    n, k = 0, 0
    while True:
        b = d[j + 1 + k]; n |= (b & 0x7f) << (7 * k); k += 1
        if not b & 0x80: break
    return struct.unpack("<%df" % (n // 4), d[j + 1 + k:j + 1 + k + n])
a, b = floats(sys.argv[1]), floats(sys.argv[2])
m = max(abs(x) for x in b)
err = max(abs(x - y) for x, y in zip(a, b))
print("max|diff|/max|out| =", err / m)
sys.exit(0 if len(a) == len(b) and err <= 1e-4 * m else 1)
PY
    expect_exit 2 -- "$BIN" run "$DEMO" --input "nosuch=$ROOT/testdata/demo/input_0.pb"
    expect_exit 3 -- "$BIN" run "$MODELS/skip_standalone.onnx" --dim N=0 --input "$ROOT/testdata/README.md"
}

# a model at an ai.onnx opset newer than bnfold knows: its BN is skipped
# UNKNOWN_OPSET and the evaluator runs none of its operators (any may have changed)
t_run_unknown_opset() {
    local m="$ROOT/testdata/patterns/conv_bn_opset99.onnx"
    expect_exit 3 -- "$BIN" run "$m" || return
    expect_stderr_has "does not implement ai.onnx opset 99: it knows operators up to opset 23"
    expect_exit 0 -- "$BIN" fold "$m" -o "$W/f.onnx" || return
    expect_stdout_has "UNKNOWN_OPSET"
}


# ---------------------------------------------------------------------------
# 12. in place, devices, memory limit
# ---------------------------------------------------------------------------

t_in_place() {
    cp "$MODELS/conv2d.onnx" "$W/m.onnx"
    expect_exit 0 -- "$BIN" fold "$W/m.onnx" --in-place || return
    expect_exit 0 -- "$BIN" inspect "$W/m.onnx" --json || return
    save_out i.json
    assert_json "$W/i.json" "d['summary']['batchnorms']" 0
    expect_no_stray "$W"
    expect_exit 2 -- "$BIN" fold "$W/m.onnx" --in-place -o "$W/x.onnx"
    expect_no_output "$W/x.onnx"
}

t_device_output_refused() {
    expect_exit 4 -- "$BIN" fold "$MODELS/conv2d.onnx" -o /dev/full || return
    expect_stderr_has "/dev/full" "not a regular file"
    [ -c /dev/full ] || fail "/dev/full is no longer a character device"
}

t_max_memory() {
    # the weights stay in the mapped file: parsing the demo takes about 0.6 MiB
    expect_exit 3 -- "$BIN" fold "$DEMO" -o "$W/o.onnx" --max-memory 256K || return
    expect_stderr_has "max-memory" "MiB"
    expect_no_output "$W/o.onnx"
    expect_exit 2 -- "$BIN" fold "$DEMO" -o "$W/o.onnx" --max-memory lots
    expect_exit 0 -- "$BIN" fold "$DEMO" -o "$W/o.onnx" --max-memory 1G --no-verify
}


# ---------------------------------------------------------------------------
# 13. output discipline: quiet, colour, progress
# ---------------------------------------------------------------------------

t_quiet() {
    expect_exit 0 -- "$BIN" fold "$MODELS/conv2d.onnx" -o "$W/o.onnx" --quiet || return
    expect_stdout_empty
    expect_stderr_empty
    [ -f "$W/o.onnx" ] || fail "no output with --quiet"
    expect_exit 1 -- "$BIN" -q check "$ROOT/testdata/health/neg_var.onnx" || return
    expect_stdout_empty
}

# Not a terminal here: no colour, no progress; under a pseudo-terminal (script)
# colour and progress appear, and NO_COLOR removes the colour.
t_colour_and_progress() {
    local esc
    esc=$(printf '\033')
    expect_exit 0 -- "$BIN" fold "$DEMO" -o "$W/o.onnx" || return
    grep -q "$esc" "$OUT" "$ERR" && fail "escape codes without a terminal"
    command -v script >/dev/null || { echo "  (script not installed: terminal part skipped)"; return; }
    script -qec "'$BIN' fold '$DEMO' -o '$W/t.onnx'" /dev/null > "$W/tty.txt" 2>&1 || fail "fold under a terminal failed"
    grep -q "$esc\[32m" "$W/tty.txt" || fail "no colour on a terminal"
    grep -q "bnfold: fold 52/52" "$W/tty.txt" || fail "no progress on a terminal"
    NO_COLOR=1 script -qec "'$BIN' fold '$DEMO' -o '$W/n.onnx'" /dev/null > "$W/nocolor.txt" 2>&1
    grep -q "$esc\[32m" "$W/nocolor.txt" && fail "colour despite NO_COLOR"
    return 0
}


# ---------------------------------------------------------------------------
# 14. failed writes (LD_PRELOAD shim build/tests/fault_io.so): exit 4, the
#     message says what failed, nothing left behind, an existing output kept
# ---------------------------------------------------------------------------

t_write_faults() {
    local shim=$ROOT/build/tests/fault_io.so
    [ -f "$shim" ] || { fail "no $shim (make cli-test builds it)"; return; }
    echo old > "$W/keep.onnx"
    expect_exit 4 -- env LD_PRELOAD="$shim" BNFOLD_FAULT_WRITE=1000 "$BIN" fold "$DEMO" -o "$W/o.onnx" --no-verify || return
    expect_stderr_has "No space left on device" "o.onnx"
    expect_no_output "$W/o.onnx"
    expect_exit 4 -- env LD_PRELOAD="$shim" BNFOLD_FAULT_WRITE=0 "$BIN" fold "$DEMO" -o "$W/keep.onnx" --no-verify || return
    assert_eq old "$(cat "$W/keep.onnx")" "existing output after a failed write"
    expect_exit 4 -- env LD_PRELOAD="$shim" BNFOLD_FAULT_FSYNC=1 "$BIN" fold "$MODELS/conv2d.onnx" -o "$W/o.onnx" || return
    expect_stderr_has "fsync"
    expect_no_output "$W/o.onnx"
    expect_exit 4 -- env LD_PRELOAD="$shim" BNFOLD_FAULT_RENAME=1 "$BIN" fold "$MODELS/conv2d.onnx" -o "$W/o.onnx" || return
    expect_stderr_has "rename"
    expect_no_output "$W/o.onnx"
    expect_no_stray "$W"
    cp "$MODELS/conv2d.onnx" "$W/in.onnx"
    expect_exit 4 -- env LD_PRELOAD="$shim" BNFOLD_FAULT_WRITE=10 "$BIN" fold "$W/in.onnx" --in-place || return
    cmp -s "$MODELS/conv2d.onnx" "$W/in.onnx" || fail "--in-place changed the input despite the failed write"
    expect_no_stray "$W"
}

run_case version t_version
run_case help t_help
run_case inspect_help t_inspect_help
run_case fold_help t_fold_help
run_case no_args t_no_args
run_case unknown_command t_unknown_command
run_case unknown_option t_unknown_option
run_case fold_without_o t_fold_without_o
run_case missing_model_arg t_missing_model_arg
run_case extra_argument t_extra_argument
run_case json_and_stdout_output t_json_and_stdout_output

run_case missing_input t_missing_input
for kind in text random empty directory; do
    run_case "invalid_model:$kind" invalid_model $kind
done
run_case failed_fold_keeps_existing_output t_failed_fold_keeps_existing_output

run_case inspect_json_conv2d t_inspect_json_conv2d
run_case inspect_human_conv2d t_inspect_human_conv2d
run_case inspect_default_epsilon t_inspect_default_epsilon

n_fold=0
for e in "$MODELS"/*.expected.onnx; do
    n=$(basename "$e" .expected.onnx)
    run_case "fold:$n" fold_case "$n"
    n_fold=$((n_fold + 1))
done
run_case fold_cases_found assert_eq 41 "$n_fold" "number of fold cases (NAME.expected.onnx)"
run_case fold_human_report t_fold_human_report

while read -r model code; do
    [ -n "$model" ] && run_case "skip:$model" skip_case "$model" "$code"
done <<'EOF'
skip_multi_consumer        LAYER_MULTI_CONSUMER
skip_graph_output          LAYER_GRAPH_OUTPUT
skip_param_not_constant    PARAM_NOT_CONSTANT
skip_training_opset15      TRAINING_MODE
skip_is_test0_opset6       TRAINING_MODE
skip_extra_outputs_opset9  TRAINING_MODE
skip_spatial0_opset7       SPATIAL
skip_shape_mismatch        SHAPE_MISMATCH
skip_dtype                 UNSUPPORTED_DTYPE
skip_standalone            NO_LAYER
skip_nonfinite             NON_FINITE
conv2d_ir4_init_inputs     PARAM_OVERRIDABLE
EOF

run_case roundtrip_no_bn t_roundtrip_no_bn
run_case roundtrip_unknown t_roundtrip_unknown

run_case input_unchanged t_input_unchanged
run_case same_path t_same_path
run_case stdout_output t_stdout_output

run_case output_dir_missing t_output_dir_missing
run_case output_unwritable t_output_unwritable
run_case output_is_directory t_output_is_directory
run_case output_replaced t_output_replaced

run_case external_same_dir t_external_same_dir
run_case external_other_dir t_external_other_dir
run_case external_data_file t_external_data_file
run_case external_to_stdout t_external_to_stdout
run_case external_escape t_external_escape
run_case external_missing_data t_external_missing_data

run_case demo_inspect t_demo_inspect
run_case demo_fold t_demo_fold

run_case testdata_untouched t_testdata_untouched

run_case fold_reports_verification t_fold_reports_verification
run_case broken_fold_refused t_broken_fold_refused
run_case verify_honest_folds t_verify_honest_folds
run_case verify_catches_scaled_channel t_verify_catches_scaled_channel
run_case verify_usage t_verify_usage
run_case run_demo t_run_demo
run_case run_unknown_opset t_run_unknown_opset

run_case in_place t_in_place
run_case device_output_refused t_device_output_refused
run_case max_memory t_max_memory

run_case quiet t_quiet
run_case colour_and_progress t_colour_and_progress

run_case write_faults t_write_faults

finish
