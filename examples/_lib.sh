# Shared by the example scripts: run a Python entry point, or print it when DRY_RUN=1 (what the tests parse).
# Usage: run_entry MODULE ARG...
run_entry() {
    local module=$1
    shift
    if [[ "${DRY_RUN:-0}" == "1" ]]; then
        printf '%s\n' "$module" "$@"
        return 0
    fi
    exec "${PYTHON:-python3}" -m "$module" "$@"
}
