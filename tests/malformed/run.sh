#!/usr/bin/env bash
# tests/malformed/run.sh BIN: runs bnfold over the malformed-model corpus.
#
#   bash tests/malformed/run.sh build/bnfold
#
# Every row of cases.tsv (FILE <TAB> inspect|fold|run <TAB> EXIT <TAB> FRAGMENT)
# runs once, in a fresh folder of its own, with a 10 s time limit:
#
#   - the exit code is EXIT, never a signal (a crash) or a time-out (a hang);
#   - FRAGMENT appears on stderr (for EXIT 0: on stdout or stderr; "-": no check);
#   - nothing in the case's folder changes but fold's -o file: the input is
#     untouched, no temporary file is left, nothing is created beside the model;
#   - fold: OUT exists iff EXIT is 0, and a written OUT loads again (inspect);
#   - nothing outside the model's folder is opened: outside.data, the target of
#     every escape, is a FIFO, so opening it blocks and the case times out.
#
# FILE is a file of tests/malformed/files/ (make_corpus.py writes them), or
# rt:NAME for a file this script builds at run time (too big to commit: the
# memory-amplification cases, a 3 GB sparse file, a FIFO).  Models named ext_* get the
# external-data layout of make_layout below.
#
# The evaluator (run, and fold's end-to-end check) is bounded only by the
# machine's memory; cases run under a 8 GiB address-space limit (ulimit -v;
# for an ASan build, ASan's max_allocation_size_mb instead) so that a model
# asking for 16 GiB fails the way it would on a smaller machine.
#
# Needs bash, coreutils, mkfifo and Debian's /usr/bin/python3 (standard library
# only).  Prints a line per failure and "N passed, N failed"; exit 1 on failure.

set -u

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
suite_bin malformed "$@"
HERE=$ROOT/tests/malformed
FILES=$HERE/files
TIME_LIMIT=10
MEM_LIMIT_KB=$((8 * 1024 * 1024))
suite_tmp malformed

if grep -q __asan_init "$BIN" 2>/dev/null; then
    ASAN=1
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1:max_allocation_size_mb=$((MEM_LIMIT_KB / 1024))"
else
    ASAN=0
fi

# ---------------------------------------------------------------------------
# files built at run time
# ---------------------------------------------------------------------------

# gen_rt NAME DEST: writes the run-time file NAME to DEST.
gen_rt() {
    case "$1" in
    huge_3g.onnx)
        # a sparse file: takes no disk space, but is over protobuf's 2 GiB
        truncate -s 3G "$2"
        ;;
    fifo.onnx)
        # a named pipe given as the model: reading it must not block
        mkfifo "$2"
        ;;
    *)
        "$PY" - "$1" "$2" "$FILES/valid.onnx" <<'EOF'
import sys

name, dest, valid = sys.argv[1:4]


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | 0x80 if v else b)
        if not v:
            return bytes(out)


def ld(field, payload):
    return varint(field << 3 | 2) + varint(len(payload)) + payload


head = varint(1 << 3) + varint(8) + ld(8, varint(2 << 3) + varint(13))  # IR 8, opset 13
with open(valid, "rb") as f:
    good = f.read()
MB10 = 10 * 1000 * 1000
if name == "amplify_empty_nodes.onnx":
    # 10 MB of empty NodeProto (2 bytes each): about 790 MB once unpacked
    data = head + ld(7, b"\x0a\x00" * (MB10 // 2))
elif name == "amplify_empty_initializers.onnx":
    # 10 MB of empty TensorProto initializers
    data = head + ld(7, b"\x2a\x00" * (MB10 // 2))
elif name == "amplify_unknown_fields.onnx":
    # the valid model followed by 10 MB of 3-byte unknown fields (kept by bnfold)
    data = good + (varint(1000 << 3) + b"\x01") * (MB10 // 3)
elif name == "amplify_packed_dims.onnx":
    # the valid model plus an unused initializer of rank 2.5 million (10 MB of
    # packed dims, all 1): a valid model, 20 MB once unpacked
    dims = b"\x01" * (MB10 // 4)
    tensor = ld(1, dims) + varint(2 << 3) + varint(1) + ld(8, b"big") + ld(9, b"\0\0\0\0")
    data = good + ld(7, ld(5, tensor))  # a second graph field merges into the first
elif name == "amplify_empty_strings.onnx":
    # a STRING initializer with 5 million empty strings (and dims to match)
    n = MB10 // 2
    tensor = ld(1, varint(n)) + varint(2 << 3) + varint(8) + ld(8, b"strs") + b"\x32\x00" * n
    data = good + ld(7, ld(5, tensor))
else:
    sys.exit("unknown run-time file " + name)
with open(dest, "wb") as f:
    f.write(data)
EOF
        ;;
    esac
}

# make_layout DIR: the folder of an ext_* model and what lies around it.
#   DIR/model/w.data          the right bytes (432: the Conv weight)
#   DIR/model/link.data       -> ../outside.data      (escape through a symlink)
#   DIR/model/devzero.data    -> /dev/zero            (escape to a device)
#   DIR/model/fifo.data       a FIFO inside the folder (must not block)
#   DIR/model/subdir/, DIR/model/sub/
#   DIR/outside.data          a FIFO: anything that opens it hangs
make_layout() {
    cp "$FILES/w.data" "$1/model/w.data"
    mkdir "$1/model/subdir" "$1/model/sub"
    mkfifo "$1/outside.data"
    ln -s ../outside.data "$1/model/link.data"
    ln -s /dev/zero "$1/model/devzero.data"
    mkfifo "$1/model/fifo.data"
}

# listing DIR: every path with its type, size and modification time.
listing() {
    (cd "$1" && find . -path ./out -prune -o -printf '%p %y %s %T@ %l\n' | sort)
}

# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------

# malformed_case FILE COMMAND EXIT FRAGMENT: one row of cases.tsv, in the
# folder $W/c (its outputs beside it, in $W/c.*: the folder itself must not
# change); sets RC_SEEN and LAST_MSG for the table
malformed_case() {
    local file=$1 cmd=$2 want=$3 frag=$4
    local dir model name rc before after left
    begin "$file $cmd"
    dir=$W/c
    mkdir -p "$dir/model" "$dir/out"
    if [ "${file#rt:}" != "$file" ]; then
        name=${file#rt:}
        gen_rt "$name" "$dir/model/$name" || { fail "cannot build $name"; end; return; }
    else
        name=$file
        cp "$FILES/$file" "$dir/model/$name" || { fail "no file $FILES/$file"; end; return; }
    fi
    case "$name" in ext_*) make_layout "$dir" ;; esac
    model=$dir/model/$name
    before=$(listing "$dir")

    local args
    case "$cmd" in
    inspect) args=(inspect "$model") ;;
    fold) args=(fold "$model" -o "$dir/out/out.onnx") ;;
    run) args=(run "$model") ;;
    *) fail "unknown command '$cmd'"; end; return ;;
    esac
    (
        [ "$ASAN" = 1 ] || ulimit -v "$MEM_LIMIT_KB"
        cd "$dir" && exec timeout -k 2 "$TIME_LIMIT" "$BIN" "${args[@]}"
    ) >"$dir.stdout" 2>"$dir.stderr" </dev/null
    rc=$?
    RC_SEEN=$rc
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        fail "timed out after ${TIME_LIMIT}s (a hang, or it opened a FIFO)"
    elif [ "$rc" -ge 128 ]; then
        fail "killed by signal $((rc - 128))"
    elif [ "$rc" != "$want" ]; then
        fail "exit $rc, expected $want"
    fi
    if [ "$frag" != "-" ]; then
        if [ "$want" = 0 ]; then
            grep -qF -- "$frag" "$dir.stdout" "$dir.stderr" || fail "output lacks '$frag'"
        else
            grep -qF -- "$frag" "$dir.stderr" || fail "stderr lacks '$frag'"
        fi
    fi
    if [ "$rc" != 0 ] && [ ! -s "$dir.stderr" ]; then
        fail "failed without a message"
    fi
    after=$(listing "$dir")
    if [ "$before" != "$after" ]; then
        fail "the case folder changed: $(diff <(echo "$before") <(echo "$after") | grep '^[<>]' | head -3 | tr '\n' ' ')"
    fi
    if [ "$cmd" = fold ]; then
        if [ "$rc" = 0 ]; then
            if [ ! -s "$dir/out/out.onnx" ]; then
                fail "fold succeeded but wrote no output"
            else
                (cd "$dir" && timeout -k 2 "$TIME_LIMIT" "$BIN" inspect out/out.onnx) \
                    >/dev/null 2>"$dir.reload.err" ||
                    fail "the output does not load: $(head -c 200 "$dir.reload.err")"
                if grep -q abcdefgh "$model" && ! grep -q abcdefgh "$dir/out/out.onnx"; then
                    fail "the unknown-type tensor did not survive"
                fi
            fi
            rm -f "$dir/out/out.onnx" "$dir/out/out.onnx.data" # (with external data)
        fi
        left=$(find "$dir/out" -mindepth 1 -printf '%f ')
        [ -z "$left" ] || fail "files left in the output folder: $left"
    fi
    [ "$CASE_OK" = 1 ] || echo "        stderr: $(head -c 300 "$dir.stderr" | tr '\n' ' ')" >&2
    end
    if [ -s "$dir.stderr" ]; then
        LAST_MSG=$(head -n 1 "$dir.stderr" | cut -c1-140)
    else
        LAST_MSG="(stdout) $(grep -v '^ *$' "$dir.stdout" | tail -n 1 | cut -c1-130)"
    fi
    # the big run-time files and layouts go as soon as they are checked
    chmod -R u+w "$W" 2>/dev/null
    rm -rf "$W"
}

printf '%-36s %-8s %4s %6s  %s\n' FILE COMMAND WANT GOT MESSAGE
while IFS=$'\t' read -r file cmd want frag; do
    case "$file" in '' | '#'*) continue ;; esac
    RC_SEEN=-
    LAST_MSG=
    malformed_case "$file" "$cmd" "$want" "$frag"
    printf '%-36s %-8s %4s %6s  %s\n' "$file" "$cmd" "$want" "$RC_SEEN" "${LAST_MSG:-}"
done < <(cat "$HERE/cases.tsv")

finish
