#!/usr/bin/env bash
# action/check.sh: what the GitHub Action (action.yml) runs, and what
# tests/batch_test.sh runs locally: `bnfold check` over the given paths with
# GitHub annotations on stdout, optionally a SARIF log for code scanning, and
# the summary in the job summary.  Inputs come as the Action passes them, in
# the environment:
#
#   INPUT_PATHS     models and folders, separated by spaces or newlines (default .)
#   INPUT_FAIL_ON   the gate, as --fail-on (default error)
#   INPUT_EXCLUDE   GLOBs for --exclude, separated by spaces or newlines
#   INPUT_JOBS      -j N (default: the number of cores)
#   INPUT_SARIF     write a SARIF 2.1.0 log there too (default: none)
#   BNFOLD          the bnfold to run; else `bnfold` on PATH; else built here
#                   from the action's own checkout (make deps all)
#   GITHUB_STEP_SUMMARY  where the summary goes as well (set by GitHub)
#
# The exit status is bnfold's (docs/contract.md, "Exit codes"): 0 passed,
# 1 the gate tripped, 3 or 4 a model could not be read, 2 a usage error.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bin=${BNFOLD:-}
if [ -z "$bin" ]; then
    if command -v bnfold >/dev/null 2>&1; then
        bin=bnfold
    else
        echo "::group::build bnfold"
        make -C "$here" deps all >&2 || { echo "::error title=bnfold::the build failed"; exit 4; }
        echo "::endgroup::"
        bin=$here/build/bnfold
    fi
fi

args=(check)
read -r -d '' -a paths <<<"${INPUT_PATHS:-.}"
[ ${#paths[@]} -gt 0 ] || paths=(.)
args+=("${paths[@]}" --fail-on "${INPUT_FAIL_ON:-error}" --format github)
read -r -d '' -a excludes <<<"${INPUT_EXCLUDE:-}"
for g in "${excludes[@]+"${excludes[@]}"}"; do
    args+=(--exclude "$g")
done
[ -n "${INPUT_JOBS:-}" ] && args+=(-j "$INPUT_JOBS")
[ -n "${INPUT_SARIF:-}" ] && args+=(--sarif "$INPUT_SARIF")

out=$(mktemp) || exit 4
trap 'rm -f "$out"' EXIT
"$bin" "${args[@]}" | tee "$out"
rc=${PIPESTATUS[0]}
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    {
        echo '### bnfold check'
        echo '```'
        sed -n '/^[a-z]*: [0-9]* models\{0,1\}: /,$p' "$out"
        echo '```'
    } >>"$GITHUB_STEP_SUMMARY"
fi
exit "$rc"
