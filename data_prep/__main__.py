"""``python -m data_prep NAME ARGS...`` runs ``python -m data_prep.NAME ARGS...``; alone, it lists them."""

import importlib
import sys

import data_prep

SUBCOMMANDS = ("open_rs", "eval_sets", "decontaminate")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(data_prep.__doc__)
        return 0
    name = argv[0].replace("-", "_")
    if name not in SUBCOMMANDS:
        print(f"error: python -m data_prep: unknown sub-command {argv[0]!r}; choose from {', '.join(SUBCOMMANDS)}",
              file=sys.stderr)
        return 2
    return importlib.import_module(f"data_prep.{name}").main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
