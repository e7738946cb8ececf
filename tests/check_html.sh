#!/usr/bin/env bash
# tests/check_html.sh BIN: `bnfold inspect MODEL --html FILE`.
#
#   bash tests/check_html.sh build/bnfold         (from the repository root)
#
# Writes the HTML report of the demo MobileNetV2, of a model with findings
# (testdata/models/skip_nonfinite.onnx), of one with several BNs and findings
# (testdata/health/multi_bn.onnx) and of a subgraph model, and checks that
# each page is self-contained (no script, no http(s) URL, no link, import,
# url() or image), well formed (tags balanced), and holds the summary, every
# BN, every finding and two charts per BN whose parameters are constants.
# Then renders each page with headless Debian chromium (installed with apt-get
# when missing; no network: the page needs none) and checks that the
# screenshot is a 1280x2000 PNG with real content.
#
# Pages and screenshots are kept in $BNFOLD_SHOTS (default build/screenshots)
# to look at; nothing is written into testdata/.
# The last line is "N passed, N failed"; the exit status is 1 when one failed.

set -u

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
suite_bin check_html "$@"
SHOTS=${BNFOLD_SHOTS:-$ROOT/build/screenshots}
chrome() { command -v chromium || command -v chromium-browser; }
need check_html chromium chrome
CHROME=$(chrome)
mkdir -p "$SHOTS" || exit 2
SHOTS=$(cd "$SHOTS" && pwd)
suite_tmp html

# The page against the model's JSON report: one line per problem.
cat >"$TMP/page.py" <<'EOF'
import html.parser, json, re, sys

page_path, json_path = sys.argv[1], sys.argv[2]
page = open(page_path, encoding="utf-8").read()
rep = json.load(open(json_path))
problems = []

# self-contained: nothing that loads from elsewhere or runs
low = page.lower()
for bad, what in [("<script", "a script"), ("http://", "an http URL"), ("https://", "an https URL"),
                  ("<link", "a link element"), ("@import", "a CSS import"), ("url(", "a CSS url()"),
                  ("<img", "an image"), ("<iframe", "a frame"), ("<object", "an object"),
                  ("<embed", "an embed"), ("src=", "a src attribute"), ("//fonts.", "a web font")]:
    if bad in low:
        problems.append("the page has %s (%r)" % (what, bad))
if not page.startswith("<!DOCTYPE html>"):
    problems.append("no <!DOCTYPE html> at the top")

# well formed: every element closed, in order
VOID = {"meta", "br", "wbr", "hr", "img", "input", "link", "col", "area", "base", "source"}
SVG_LEAF = {"rect", "path", "line", "circle", "polyline"}
class Tags(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.text = [], [], []
        self.counts = {}
    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag not in VOID:
            self.stack.append(tag)
    def handle_startendtag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append("</%s> closes <%s>" % (tag, self.stack[-1] if self.stack else "nothing"))
        else:
            self.stack.pop()
    def handle_data(self, data):
        self.text.append(data)
t = Tags()
t.feed(page)
t.close()
problems += t.errors[:5]
if t.stack:
    problems.append("unclosed: %s" % " ".join(t.stack[-5:]))
text = re.sub(r"\s+", " ", "".join(t.text))

# content: the model, every BN with its fate, every finding, charts
if rep["input"] not in text:
    problems.append("the model path is not shown")
for b in rep["batchnorms"]:
    if b["name"] and b["name"] not in text:
        problems.append("BN %r is not named" % b["name"])
    if b["reason_code"] and b["reason_code"] not in text:
        problems.append("BN %r: %s not shown" % (b["name"], b["reason_code"]))
for x in rep["findings"]:
    if x["code"] not in text or x["message"] not in text:
        problems.append("finding %s on %r not shown" % (x["code"], x["node"]))
n_bn = len(rep["batchnorms"])
rows = len(re.findall(r'<tr class="sev\d"><td class="n">', page))
if rows != n_bn:
    problems.append("%d rows in the BN table for %d BNs" % (rows, n_bn))
charts = page.count('<svg class="chart"')
want = int(sys.argv[3])
if charts != want:
    problems.append("%d charts, want %d" % (charts, want))
if rep["findings"] and 'class="findings"' not in page:
    problems.append("no findings table")
for p in problems:
    print(p)
EOF

# The PNG: its size, and that it is not blank (PIL when there, else bytes).
cat >"$TMP/png.py" <<'EOF'
import struct, sys
data = open(sys.argv[1], "rb").read()
if data[:8] != b"\x89PNG\r\n\x1a\n":
    print("not a PNG"); sys.exit()
w, h = struct.unpack(">II", data[16:24])
if (w, h) != (1280, 2000):
    print("size %dx%d, want 1280x2000" % (w, h))
if len(data) < 20000:
    print("only %d bytes: a blank page?" % len(data))
try:
    from PIL import Image
    from collections import Counter
    px = list(Image.open(sys.argv[1]).convert("RGB").resize((640, 1000)).getdata())
    bg = Counter(px).most_common(1)[0][0]
    ink = sum(1 for p in px if sum(abs(a - b) for a, b in zip(p, bg)) > 60) / len(px)
    colours = len(set(px))
    if colours < 200 or ink < 0.01:
        print("%d colours, %.2f%% of the page drawn: nothing rendered?" % (colours, 100 * ink))
except ImportError:
    pass
EOF

shoot() { # shoot PAGE PNG
    timeout 180 "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --host-resolver-rules="MAP * ~NOTFOUND" --user-data-dir="$TMP/profile.$RANDOM" \
        --screenshot="$2" --window-size=1280,2000 "file://$1" >"$TMP/chrome.log" 2>&1
}

# html_case NAME MODEL CHARTS [OPTIONS...]
html_case() {
    local name=$1 model=$2 charts=$3 rc problems
    shift 3
    local page=$SHOTS/$name.html png=$SHOTS/$name.png
    rm -f "$page" "$png"
    begin "html:$name"
    "$BIN" inspect "$model" --html "$page" "$@" >"$TMP/$name.txt" 2>"$TMP/$name.err"
    rc=$?
    check $rc "inspect --html exited $rc: $(head -c 300 "$TMP/$name.err")"
    if [ $rc = 0 ]; then
        "$BIN" inspect "$model" --json "$@" >"$TMP/$name.json" 2>/dev/null
        problems=$("$PY" "$TMP/page.py" "$page" "$TMP/$name.json" "$charts" 2>&1)
        [ -z "$problems" ]
        check $? "$problems"
    fi
    end
    begin "render:$name"
    if [ $rc = 0 ]; then
        shoot "$page" "$png"
        check $? "chromium failed: $(tail -3 "$TMP/chrome.log")"
        if [ -s "$png" ]; then
            problems=$("$PY" "$TMP/png.py" "$png" 2>&1)
            [ -z "$problems" ]
            check $? "$problems"
        else
            check 1 "no screenshot"
        fi
    else
        check 1 "no page to render"
    fi
    end
}

# charts: two per BN, and the two overview charts
html_case demo "$ROOT/testdata/demo/mobilenet_v2_tiny.onnx" 106
html_case skip_nonfinite "$ROOT/testdata/models/skip_nonfinite.onnx" 4
html_case multi_bn "$ROOT/testdata/health/multi_bn.onnx" 8
html_case if_conv_bn "$ROOT/testdata/patterns/if_conv_bn.onnx" 4
html_case function_conv_bn "$ROOT/testdata/patterns/function_conv_bn.onnx" 4

# the page of a skipped BN whose parameters are not constants: no charts, and why
begin "html:param-not-constant"
"$BIN" inspect "$ROOT/testdata/models/skip_param_not_constant.onnx" --html "$TMP/pnc.html" \
    >/dev/null 2>&1
check $? "exit status $?"
grep -q 'No charts: ' "$TMP/pnc.html" 2>/dev/null
check $? "no 'No charts' note"
end

# --html -: the page on stdout; --html with --json: JSON on stdout
begin "html:stdout"
report_on_stdout --html "<!DOCTYPE html>" "$ROOT/testdata/models/conv2d.onnx"
"$BIN" inspect "$ROOT/testdata/models/conv2d.onnx" --json --html "$TMP/j.html" >"$TMP/j.json"
check $? "--json --html FILE: exit status $?"
"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$TMP/j.json" 2>/dev/null
check $? "--json --html FILE: stdout is not one JSON document"
end

# errors leave no file
begin "html:errors"
"$BIN" inspect "$ROOT/testdata/models/conv2d.onnx" --html "$TMP/none/r.html" >/dev/null 2>&1
[ $? = 4 ] && [ ! -e "$TMP/none/r.html" ]
check $? "--html into a missing folder: not exit 4, or a file left"
"$BIN" inspect "$ROOT/testdata/models/conv2d.onnx" --html - --dot - >/dev/null 2>&1
[ $? = 2 ]
check $? "--html - with --dot -: not exit 2"
"$BIN" inspect "$ROOT/testdata/models/conv2d.onnx" --html "$TMP" >/dev/null 2>&1
[ $? = 4 ]
check $? "--html onto a folder: not exit 4"
end

echo "pages and screenshots: $SHOTS"
finish
