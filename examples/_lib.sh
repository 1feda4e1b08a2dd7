# Shared by the example scripts: run_entry MODULE ARG... runs a Python entry point, or prints it one argument a line
# (what the tests and submit_ray_job.sh parse) when DRY_RUN=1.
run_entry() {
    [[ "${DRY_RUN:-0}" != "1" ]] || { printf '%s\n' "$@"; return 0; }
    exec "${PYTHON:-python3}" -m "$@"
}
