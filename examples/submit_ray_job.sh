#!/usr/bin/env bash
# Submit a training run to a Ray cluster as a job. The training script runs HERE, on the submitting side, in dry-run
# mode: every variable it reads (paths, NNODES, N_GPUS_PER_NODE, LOGGER, ...) and every Hydra override you pass is
# resolved into one command, and the job runs exactly that command with the repo as its working_dir.
#
#   RAY_ADDRESS=http://HEAD:8265 NNODES=2 N_GPUS_PER_NODE=8 DATA_DIR=/shared/data CHECKPOINT_DIR=/shared/ckpt/run1 \
#       examples/submit_ray_job.sh [r1_distill_1.5b_cwgrpo.sh] [hydra overrides...]
#   RAY_ADDRESS=http://HEAD:8265 examples/submit_ray_job.sh -- python -m tools.check   # any other command
#
# Only the training scripts of examples/ (those that run the recipe or verl's main_ppo) are submitted; anything else,
# or a name that is neither a script nor a Hydra override (KEY=VALUE, ~KEY), is refused before anything runs.
# Overrides are parsed by Hydra's parser in $PYTHON (default: this checkout's .venv, else python3); one with a line
# break, or a sweep (a,b), is refused. Paths must be absolute, on storage every node sees (the recipe checks them on
# every node at start-up); a model path is a hub name only when it reads OWNER/NAME and names nothing here.
# DRY_RUN=1 prints the `ray job submit` command, one argument per line, and submits nothing.
# PRINT_CONFIG=1 makes the job print the composed config and exit (nothing is trained).
# FORWARD_ENV lists the environment variables the job gets from this shell (the secrets and caches it needs).
# The metrics log (VERL_FILE_LOGGER_ROOT, default: this directory) is resolved here too and always forwarded.
# Also: RAY, WORKING_DIR, RUNTIME_ENV, SUBMISSION_ID, NO_WAIT=1 (return after submitting; then `ray job logs -f ID`).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RAY=${RAY:-ray}
PYTHON=${PYTHON:-$([[ -x "$HERE/../.venv/bin/python" ]] && echo "$HERE/../.venv/bin/python" || echo python3)}
export RAY_ADDRESS=${RAY_ADDRESS:-http://127.0.0.1:8265}
FORWARD_ENV=${FORWARD_ENV:-"WANDB_API_KEY WANDB_PROJECT WANDB_ENTITY HF_TOKEN HF_HOME HF_ENDPOINT"}
die() { echo "submit_ray_job.sh: $*" >&2; exit 2; }

overrides=()  # what $PYTHON checks: the resolved Hydra overrides
script=
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p;}' "${BASH_SOURCE[0]}"
    exit 0
elif [[ "${1:-}" == "--" ]]; then
    shift
    (( $# )) || die "-- needs a command after it (e.g. -- python -m tools.check)"
    command=("$@")
else
    script=r1_distill_1.5b_cwgrpo.sh
    if [[ $# -gt 0 && ( "$1" == *.sh || ( "$1" != *=* && "$1" != "~"* ) ) ]]; then  # a script, not an override
        given=$1 path=$1
        shift
        [[ "$given" == */* ]] || path=$HERE/$given
        if [[ ! -f "$path" ]]; then
            [[ "$given" != */* ]] || die "$given: no such file"
            [[ "$given" != *.sh && -f "$HERE/$given.sh" ]] &&
                die "$given: no such script in examples/ (did you mean $given.sh?)"
            die "$given: neither a script in examples/ nor a Hydra override (KEY=VALUE)"
        fi
        [[ "$(cd "$(dirname "$path")" && pwd -P)" == "$(cd "$HERE" && pwd -P)" ]] ||
            die "$given: not in $HERE: only the training scripts there are submitted (the job runs in a copy of" \
                "this repo); submit anything else with -- COMMAND"
        script=$(basename "$path")
        entry='^run_entry[[:space:]]+(recipe\.cwgrpo\.main_cwgrpo|verl\.trainer\.main_ppo)([[:space:]]|$)'
        { grep -q '^source "$HERE/_lib.sh"' "$path" && grep -Eq "$entry" "$path"; } ||
            grep -Eq '^[^#]*exec bash .*/train\.sh"' "$path" ||
            die "examples/$script is not a training script (one that sources _lib.sh and calls run_entry with the" \
                "recipe or main_ppo, or execs train.sh): it would run here, not in the job; run it yourself, or" \
                "submit -- COMMAND"
    fi
    for arg in "$@"; do
        [[ "$arg" != *[$'\n\r']* ]] || die "the override '${arg%%[$'\n\r']*}...' contains a line break, which cannot" \
                                           "be carried into the job's command"
    done
    resolved=$(DRY_RUN=1 PYTHON="$PYTHON" bash "$HERE/$script" "$@") ||
        die "examples/$script failed in its dry run (exit status $?): nothing submitted"
    mapfile -t lines <<< "$resolved"
    [[ "${lines[0]}" == recipe.cwgrpo.main_cwgrpo || "${lines[0]}" == verl.trainer.main_ppo ]] ||
        die "examples/$script runs ${lines[0]}, not a training entry point (the recipe or verl's main_ppo, whose" \
            "arguments are Hydra overrides): submit it with -- COMMAND"
    command=(python -m "${lines[@]}")
    overrides=("${lines[@]:1}")
fi

# The overrides (parsed as Hydra parses them) and the job's runtime env. Exit status 2: a refusal, said on stderr.
status=0
runtime_env=$("$PYTHON" - "${RUNTIME_ENV:-$HERE/runtime_env.yaml}" "${WORKING_DIR:-$(cd "$HERE/.." && pwd)}" \
                          "$FORWARD_ENV" "${overrides[@]}" <<'EOF'
import json, os, re, sys

PATH_KEYS = {"data.train_files", "data.val_files", "trainer.default_local_dir", "trainer.resume_from_path",
             "actor_rollout_ref.model.path", "actor_rollout_ref.ref.model.path"}
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")  # OWNER/NAME (or a bare NAME)


def fail(message):
    print(f"submit_ray_job.sh: {message}", file=sys.stderr)
    sys.exit(2)


def need(module):
    try:
        return __import__(module)
    except ImportError as error:
        fail(f"PYTHON={sys.executable} cannot import {module} ({error}): set PYTHON to the interpreter verl is "
             "installed in" + " (e.g. PYTHON=.venv/bin/python)" * (module == "hydra"))


if len(sys.argv) > 4:
    need("hydra")
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for text in sys.argv[4:]:
        try:
            override = parser.parse_overrides([text])[0]
        except Exception as error:  # Hydra's OverrideParseException, or a grammar error below it
            fail(f"{text!r} is not a Hydra override ({str(error).strip().splitlines()[0]})")
        if override.is_sweep_override():
            fail(f"{text!r} is a sweep (values separated by commas), which one run cannot take: quote the value "
                 "('a,b') or give a list ([a,b])")
        key, value = override.key_or_group, override.value()
        for path in (value if isinstance(value, list) else [value]) if key in PATH_KEYS else []:
            if not isinstance(path, str) or path.startswith("/") or "://" in path or "${" in path:
                continue  # null, absolute, a URL (hdfs://), an interpolation resolved in the job
            local = os.path.exists(path)
            if key.endswith("model.path") and HUB_NAME.fullmatch(path) and not local:
                continue  # a hub name
            fail(f"{key}={path} is not an absolute path{'' if local else ' (and nothing here has that name)'}; the "
                 "job runs on another machine, in a copy of the repo: give paths on storage every node sees")
yaml = need("yaml")
try:
    env = yaml.safe_load(open(sys.argv[1])) or {}
except (OSError, yaml.YAMLError) as error:
    fail(f"RUNTIME_ENV={sys.argv[1]}: cannot read it ({str(error).splitlines()[0]})")
env["working_dir"] = sys.argv[2]
env_vars = env.setdefault("env_vars", {})
env_vars.update({name: os.environ[name] for name in sys.argv[3].split() if name in os.environ})
# verl's file logger writes under the job's working directory, Ray's temporary copy of the repo: resolve it here
log = "VERL_FILE_LOGGER_PATH" if os.environ.get("VERL_FILE_LOGGER_PATH") else "VERL_FILE_LOGGER_ROOT"
env_vars[log] = os.path.abspath(os.path.expanduser(os.environ.get(log, ".")))
print(json.dumps(env))
EOF
) || status=$?
(( status != 2 )) || exit 2
(( status == 0 )) || die "PYTHON=$PYTHON failed (exit status $status) while checking the overrides and writing the" \
                         "runtime env; nothing submitted (set PYTHON to the interpreter verl is installed in)"
[[ "${PRINT_CONFIG:-0}" == "1" && -n "$script" ]] && command+=(--cfg job --resolve)

submit=("$RAY" job submit --address "$RAY_ADDRESS" --runtime-env-json "$runtime_env")
[[ -n "${SUBMISSION_ID:-}" ]] && submit+=(--submission-id "$SUBMISSION_ID")
[[ "${NO_WAIT:-0}" == "1" ]] && submit+=(--no-wait)
[[ "${DRY_RUN:-0}" != "1" ]] || { printf '%s\n' "${submit[@]}" -- "${command[@]}"; exit 0; }
exec "${submit[@]}" -- "${command[@]}"
