"""The ``embedrec`` command: a thin layer over the library. Errors become one line and an exit code.

Exit codes: 0 success, 1 a problem with data, settings or training (message on stderr),
2 a usage error, 130 interrupted.
"""

from __future__ import annotations

import sys

import typer

from embedrec.cli import compare, data, models, serve, tune  # noqa: F401  (they register commands)
from embedrec.cli.common import app, err
from embedrec.errors import EmbedrecError


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising."""
    try:
        app(args=argv, prog_name="embedrec", standalone_mode=False)
    except EmbedrecError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return 1
    except OSError as exc:  # e.g. --out names a folder, or a disk is full
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(f"error: {where}{exc.strerror or exc}", markup=False, highlight=False,
                  soft_wrap=True)
        return 1
    except typer.Abort:
        err.print("interrupted")
        return 130
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: bad option values, unknown commands
        exc.show()
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
