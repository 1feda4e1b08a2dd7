# Sourced first by the example scripts that run an entry point: strict mode, a trace of what runs (not in a dry run),
# and run_entry MODULE ARG..., which runs a Python entry point, or prints it one argument a line (what the tests and
# submit_ray_job.sh parse) when DRY_RUN=1.
set -euo pipefail
[[ "${DRY_RUN:-0}" == "1" ]] || set -x
run_entry() {
    [[ "${DRY_RUN:-0}" != "1" ]] || { printf '%s\n' "$@"; return 0; }
    exec "${PYTHON:-python3}" -m "$@"
}
