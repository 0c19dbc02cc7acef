"""Command line: python3 -m inventory.cli FILE COMMAND [ARGS]."""

import sys

from .store import load


def cmd_list(items, args):
    return [f"{name}: {qty}" for name, qty in sorted(items.items())]


def cmd_total(items, args):
    return [str(sum(items.values()))]


COMMANDS = {"list": cmd_list, "total": cmd_total}


def main(argv):
    """Run one command on a stock file; returns the lines to print."""
    path, command, *args = argv
    with open(path) as f:
        items = load(f.read())
    if command not in COMMANDS:
        raise SystemExit(f"unknown command {command!r}; known: {', '.join(COMMANDS)}")
    return COMMANDS[command](items, args)


if __name__ == "__main__":
    print("\n".join(main(sys.argv[1:])))
