# bash completion for bnfold(1)
#
# Install as /usr/share/bash-completion/completions/bnfold (make install puts
# it under $(PREFIX)/share/bash-completion/completions), or source it:
#     . completion/bnfold.bash
# Completes the commands, each command's options (as `bnfold COMMAND --help`
# lists them), model and tensor files, and the values of --format and --fail-on.
# Works with or without the bash-completion package.

_bnfold_files()
{
    # $1: the word to complete; $2: extensions "a|b" (empty: any file).
    # Folders and the matching files go into COMPREPLY.
    local cur=$1 f e ok
    local -a exts
    IFS='|' read -r -a exts <<<"$2"
    local IFS=$'\n'
    compopt -o filenames 2>/dev/null
    COMPREPLY=()
    for f in $(compgen -d -- "$cur"); do
        COMPREPLY+=("$f")
    done
    for f in $(compgen -f -- "$cur"); do
        [[ -d $f ]] && continue
        ok=$((${#exts[@]} == 0))
        for e in "${exts[@]}"; do
            [[ $f == *."$e" ]] && ok=1
        done
        ((ok)) && COMPREPLY+=("$f")
    done
}

_bnfold()
{
    local cur prev cmd i w split=""
    local -a words=()
    COMPREPLY=()
    # readline splits NAME=FILE at '=' (COMP_WORDBREAKS): join the pieces again
    for ((i = 0; i <= COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if ((i > 1)) && [[ $w == "=" || ${COMP_WORDS[i-1]} == "=" ]]; then
            words[${#words[@]}-1]+=$w
        else
            words+=("$w")
        fi
    done
    cur=${words[${#words[@]}-1]}
    prev=${words[${#words[@]}-2]}
    # what readline replaces: the piece after the last '=' when it split there
    [[ ${COMP_WORDS[COMP_CWORD]} != "$cur" ]] && split=1

    local commands="inspect fold verify run check calibrate"
    local fold_opts="--lower-standalone --assume-inference --freeze-inputs"
    local verify_opts="--inputs --seed --rtol --atol --outputs-only"
    local eval_opts="--input --dim --threads"
    local many_opts="-j --jobs --exclude --format --sarif"
    local codes="BN_NONFINITE BN_NEG_VAR BN_TRAINING_MODE BN_EPS_NONPOS BN_ZERO_VAR BN_TINY_VAR BN_LARGE_SCALE BN_UNTRAINED BN_DEAD_CHANNEL"

    # the command: the first word after bnfold that is one
    cmd=
    for ((i = 1; i < ${#words[@]} - 1; i++)); do
        case ${words[i]} in
        inspect | fold | verify | run | check | calibrate)
            cmd=${COMP_WORDS[i]}
            break
            ;;
        esac
    done
    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-h --help --version -q --quiet" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands help" -- "$cur"))
        fi
        return 0
    fi

    # values of the option before the cursor
    case $prev in
    -o | --output)
        _bnfold_files "$cur" ""
        [[ $cmd == fold ]] && [[ -z $cur || $cur == - ]] && COMPREPLY+=("-")
        return 0
        ;;
    --dot)
        [[ $cmd == inspect ]] || return 0
        _bnfold_files "$cur" "dot|gv"
        [[ -z $cur || $cur == - ]] && COMPREPLY+=("-")
        return 0
        ;;
    --html)
        [[ $cmd == inspect ]] || return 0
        _bnfold_files "$cur" "html|htm"
        return 0
        ;;
    --input)
        if [[ $cur == *=* ]]; then # NAME=FILE: complete the file
            local name=${cur%%=*}
            _bnfold_files "${cur#*=}" "pb|npy"
            if [[ -z $split ]]; then
                COMPREPLY=("${COMPREPLY[@]/#/$name=}")
            elif [[ ${COMP_WORDS[COMP_CWORD]} == "=" ]]; then
                COMPREPLY=("${COMPREPLY[@]/#/=}")
            fi
        else
            _bnfold_files "$cur" "pb|npy"
        fi
        return 0
        ;;
    --output-dir | --out-dir | --data)
        local IFS=$'\n'
        compopt -o filenames 2>/dev/null
        COMPREPLY=($(compgen -d -- "$cur"))
        return 0
        ;;
    --format)
        COMPREPLY=($(compgen -W "text json github sarif" -- "$cur"))
        return 0
        ;;
    --fail-on)
        # a comma-separated list: complete its last element
        local head="" last=$cur
        if [[ $cur == *,* ]]; then
            head=${cur%,*},
            last=${cur##*,}
        fi
        compopt -o nospace 2>/dev/null
        COMPREPLY=($(compgen -P "$head" -W "error warning info unfolded $codes" -- "$last"))
        return 0
        ;;
    --sarif)
        _bnfold_files "$cur" "sarif|json"
        return 0
        ;;
    --max-memory)
        COMPREPLY=($(compgen -W "256M 512M 1G 2G 4G 8G" -- "$cur"))
        return 0
        ;;
    -j | --jobs)
        COMPREPLY=($(compgen -W "1 2 4 8" -- "$cur"))
        return 0
        ;;
    --dim | --threads | --inputs | --seed | --rtol | --atol | --repeat | --exclude | --batches | --only)
        return 0 # a number, NAME=VALUE or a GLOB: nothing to offer
        ;;
    esac

    if [[ $cur == -* ]]; then
        local opts
        case $cmd in
        inspect) opts="--json --dot --html -h --help $fold_opts $many_opts" ;;
        fold) opts="-o --output --out-dir --json --no-verify --in-place --max-memory $verify_opts $eval_opts -h --help $fold_opts $many_opts" ;;
        verify) opts="--json $verify_opts $eval_opts -h --help" ;;
        run) opts="--output-dir --repeat --seed --json $eval_opts -h --help" ;;
        check) opts="--fail-on --json -h --help $fold_opts $many_opts" ;;
        calibrate) opts="--data -o --output --batches --only --fold --threads --json -h --help" ;;
        esac
        COMPREPLY=($(compgen -W "$opts -q --quiet" -- "$cur"))
        return 0
    fi

    # MODEL (verify: MODEL_A MODEL_B), or a PATH: a model or a folder
    _bnfold_files "$cur" "onnx"
    return 0
}

complete -F _bnfold bnfold
