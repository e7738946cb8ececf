#!/usr/bin/env bash
# tests/dot_test.sh BIN: `bnfold inspect MODEL --dot FILE|-`.
#
#   bash tests/dot_test.sh build/bnfold         (from the repository root)
#
# For the demo MobileNetV2, pattern models with skips, lowering and BNs before
# their layer, subgraph (If, Loop) and function models, models with health
# errors and every testdata/models model: the DOT file parses with Graphviz
# (`dot -Tsvg`, installed with apt-get when missing) without a warning, has
# one box per ONNX node of the main graph, and colours every BN as the JSON
# report decides (folded green, lowered blue, skipped orange, red border for a
# health error), with the skip code in the label and the reason in the
# tooltip.  Also: `--dot -`, the interplay with --json, and the errors (missing
# value, the input as target, a missing folder: no file left).
#
# Works in a temporary directory removed on exit; never writes into testdata/.
# The last line is "N passed, N failed"; the exit status is 1 when one failed.

set -u

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
suite_bin dot_test "$@"
need dot_test graphviz command -v dot
suite_tmp dot

# Compares a DOT file with the model's JSON report: prints one line per problem.
cat >"$TMP/compare.py" <<'EOF'
import json, re, sys

dot_path, json_path, subgraphs = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
dot = open(dot_path).read()
rep = json.load(open(json_path))
FILL = {"fold": "#b2f2bb", "lower": "#a5d8ff", "skip": "#ffc078"}
RED = "#e03131"

def unescape(s):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), s)

# node statements: nID [attr=value, ...]
nodes = {}
for m in re.finditer(r'^\s*(n\d+) \[(.*)\];$', dot, re.M):
    attrs = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|[^,\]]+)', m.group(2)))
    nodes[m.group(1)] = {k: unescape(v[1:-1]) if v.startswith('"') else v for k, v in attrs.items()}
boxes = {k: a for k, a in nodes.items() if a.get("shape") == "box"}
bns = {k: a for k, a in boxes.items() if a.get("label", "").startswith("BatchNormalization")}
problems = []

if not subgraphs and len(boxes) != rep["model"]["nodes"]:
    problems.append("%d boxes for %d nodes" % (len(boxes), rep["model"]["nodes"]))
if len(bns) != len(rep["batchnorms"]):
    problems.append("%d BN boxes for %d BNs in the report" % (len(bns), len(rep["batchnorms"])))

errors = {x["node"] for x in rep["findings"] if x["severity"] == "error"}
# BN boxes come in the report's order (graph order, subgraphs after their node,
# then functions); the tooltip's first line is the BN's full name
order = [k for k in nodes if k in bns]
for b, k in zip(rep["batchnorms"], order):
    want = FILL[b["decision"]]
    a = bns[k]
    if a.get("tooltip", "").split("\n")[0] != (b["name"] or "(unnamed)"):
        problems.append("BN box %s is %r, the report has %r there" %
                        (k, a.get("tooltip", "").split("\n")[0], b["name"]))
        continue
    if a.get("fillcolor") != want:
        problems.append("BN %r: fill %s, want %s (%s)" % (b["name"], a.get("fillcolor"), want, b["decision"]))
    has_red = a.get("color") == RED and "bold" in a.get("style", "")
    if (b["name"] in errors) != has_red:
        problems.append("BN %r: red border %s, health error %s" % (b["name"], has_red, b["name"] in errors))
    if b["decision"] == "skip":
        if b["reason_code"] not in a["label"]:
            problems.append("BN %r: label lacks %s" % (b["name"], b["reason_code"]))
        if b["reason"] not in a.get("tooltip", ""):
            problems.append("BN %r: tooltip lacks the reason" % b["name"])
    if b["decision"] == "fold" and ("folds" not in a["label"] or b["layer_op"] not in a["label"]):
        problems.append("BN %r: label does not say it folds into %s" % (b["name"], b["layer_op"]))
for p in problems:
    print(p)
EOF

# dot_case NAME MODEL SUBGRAPHS [OPTIONS...]: --dot FILE, --json; parse, compare
dot_case() {
    local name=$1 model=$2 sub=$3 rc
    shift 3
    begin "dot:$name"
    "$BIN" inspect "$model" --dot "$TMP/$name.dot" "$@" >"$TMP/$name.txt" 2>"$TMP/$name.err"
    rc=$?
    check $rc "inspect --dot exited $rc: $(head -c 300 "$TMP/$name.err")"
    if [ $rc = 0 ]; then
        grep -q "^wrote $TMP/$name.dot\$" "$TMP/$name.txt"
        check $? "the text report does not end with 'wrote FILE'"
        dot -Tsvg "$TMP/$name.dot" -o "$TMP/$name.svg" 2>"$TMP/$name.dot.err"
        check $? "dot -Tsvg failed: $(head -c 300 "$TMP/$name.dot.err")"
        [ ! -s "$TMP/$name.dot.err" ]
        check $? "dot warns: $(head -c 300 "$TMP/$name.dot.err")"
        grep -q '<svg' "$TMP/$name.svg" 2>/dev/null
        check $? "no SVG from dot"
        "$BIN" inspect "$model" --json "$@" >"$TMP/$name.json" 2>/dev/null
        local problems
        problems=$("$PY" "$TMP/compare.py" "$TMP/$name.dot" "$TMP/$name.json" "$sub" 2>&1)
        [ -z "$problems" ]
        check $? "$problems"
    fi
    end
}

# expect_fill NAME COLOUR COUNT: the SVG of case NAME has COUNT shapes of that fill
expect_fill() {
    local n
    begin "svg-colour:$1:$2"
    n=$(grep -c "fill=\"$2\"" "$TMP/$1.svg" 2>/dev/null)
    [ "${n:-0}" = "$3" ]
    check $? "fill $2: ${n:-0} shapes in $1.svg, want $3"
    end
}

P=$ROOT/testdata/patterns
M=$ROOT/testdata/models
dot_case demo "$ROOT/testdata/demo/mobilenet_v2_tiny.onnx" 0
expect_fill demo "#b2f2bb" 52
expect_fill demo "#ffc078" 0
dot_case conv_bn_bn_relu_bn "$P/conv_bn_bn_relu_bn.onnx" 0
expect_fill conv_bn_bn_relu_bn "#b2f2bb" 2
expect_fill conv_bn_bn_relu_bn "#ffc078" 1
dot_case conv_bn_bn_relu_bn.lower "$P/conv_bn_bn_relu_bn.onnx" 0 --lower-standalone
expect_fill conv_bn_bn_relu_bn.lower "#a5d8ff" 1
expect_fill conv_bn_bn_relu_bn.lower "#ffc078" 0
dot_case bn_bn_conv "$P/bn_bn_conv.onnx" 0
dot_case bn_conv_padded "$P/bn_conv_padded.onnx" 0
dot_case matmul_bn_rank3 "$P/matmul_bn_rank3.onnx" 0
dot_case conv_bn_training15 "$P/conv_bn_training15.onnx" 0
dot_case conv_bn_training15.assume "$P/conv_bn_training15.onnx" 0 --assume-inference
dot_case if_conv_bn "$P/if_conv_bn.onnx" 1
expect_fill if_conv_bn "#b2f2bb" 1
dot_case loop_conv_bn "$P/loop_conv_bn.onnx" 1
dot_case function_conv_bn "$P/function_conv_bn.onnx" 1
dot_case skip_multi_consumer "$M/skip_multi_consumer.onnx" 0
expect_fill skip_multi_consumer "#ffc078" 1
dot_case skip_nonfinite "$M/skip_nonfinite.onnx" 0
expect_fill skip_nonfinite "#ffc078" 1
dot_case multi_bn "$ROOT/testdata/health/multi_bn.onnx" 0
dot_case no_bn "$M/roundtrip_no_bn.onnx" 0

# the folded-into edge where the layer is not the BN's neighbour (Conv -> bn1 -> bn2)
begin "dot:fold-edge"
grep -q 'label="folds into"' "$TMP/conv_bn_bn_relu_bn.dot"
check $? "no 'folds into' edge from bn2 to conv"
end

# subgraphs and functions are clusters
begin "dot:clusters"
grep -q 'subgraph cluster_[0-9]* {' "$TMP/if_conv_bn.dot" && grep -q 'then_branch' "$TMP/if_conv_bn.dot" &&
    grep -q "label=\"function 'ConvBN'\"" "$TMP/function_conv_bn.dot"
check $? "If branches or the function body are not drawn as clusters"
end

# every model of testdata/models that inspect accepts
begin "dot:all-models"
n=0
for m in "$M"/*.onnx "$P"/*.onnx "$ROOT"/testdata/health/*.onnx; do
    "$BIN" inspect "$m" --json >/dev/null 2>&1 || continue
    if ! "$BIN" inspect "$m" --dot - 2>/dev/null | dot -Tsvg -o /dev/null 2>"$TMP/all.err" ||
        [ -s "$TMP/all.err" ]; then
        check 1 "$(basename "$m"): dot: $(head -c 200 "$TMP/all.err")"
    fi
    n=$((n + 1))
done
[ $n -gt 100 ]
check $? "only $n models drawn"
end

# --dot -: the graph on stdout, the text report on stderr
begin "dot:stdout"
report_on_stdout --dot "digraph model {" "$M/conv2d.onnx"
end

# --dot FILE with --json: JSON on stdout, the graph in the file
begin "dot:with-json"
"$BIN" inspect "$M/conv2d.onnx" --json --dot "$TMP/j.dot" >"$TMP/j.json" 2>/dev/null
check $? "exit status $?"
"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/j.json" 2>/dev/null
check $? "stdout is not one JSON document"
grep -q '^digraph model {$' "$TMP/j.dot"
check $? "no digraph in the file"
end

# errors: exit status, message, no file left
begin "dot:errors"
"$BIN" inspect "$M/conv2d.onnx" --dot >/dev/null 2>"$TMP/e.err"
[ $? = 2 ]
check $? "--dot without a value: not exit 2"
"$BIN" inspect "$M/conv2d.onnx" --dot - --json >/dev/null 2>&1
[ $? = 2 ]
check $? "--dot - with --json (both stdout): not exit 2"
cp "$M/conv2d.onnx" "$TMP/in.onnx"
"$BIN" inspect "$TMP/in.onnx" --dot "$TMP/in.onnx" >/dev/null 2>&1
[ $? = 2 ]
check $? "--dot onto the input model: not exit 2"
cmp -s "$M/conv2d.onnx" "$TMP/in.onnx"
check $? "the input model was changed"
"$BIN" inspect "$M/conv2d.onnx" --dot "$TMP/no/such/dir/g.dot" >/dev/null 2>"$TMP/e.err"
[ $? = 4 ]
check $? "--dot into a missing folder: not exit 4"
[ ! -e "$TMP/no/such/dir/g.dot" ]
check $? "a file was left"
! "$BIN" inspect "$M/conv2d_external_escape.onnx" --dot "$TMP/x.dot" >/dev/null 2>&1 &&
    [ ! -e "$TMP/x.dot" ]
check $? "a refused model left a DOT file"
for f in "$TMP"/*bnfold-* "$TMP"/.*bnfold-*; do
    [ -e "$f" ] && check 1 "a temporary file was left in $TMP: $f"
done
end

finish
