"""The ``embedrec`` command: a thin layer over the library. Errors become one line and an exit code.

Exit codes: 0 success, 1 a problem with data, settings or training (message on stderr),
2 a usage error, 130 interrupted (Ctrl-C, SIGINT), 143 terminated (SIGTERM). An interrupted
command leaves nothing half-written: every write is atomic and temporaries are removed.
"""

from __future__ import annotations

import signal
import sys


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process gets SIGTERM: unwinds like Ctrl-C."""


_received: list[int] = []


def _on_sigterm(signum, frame):  # noqa: ARG001
    _received.append(signum)
    raise Terminated()


def install_signal_handlers() -> None:
    """SIGTERM unwinds like Ctrl-C (finally blocks run, temporaries go); SIGINT raises
    KeyboardInterrupt even when a parent process set it to be ignored."""
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:  # not the main thread (e.g. main() called from a test thread)
        pass


install_signal_handlers()

import typer  # noqa: E402

from embedrec.cli import common, compare, data, models, serve, tune  # noqa: E402,F401  (they register commands)
from embedrec.cli.common import app, err  # noqa: E402
from embedrec.errors import EmbedrecError  # noqa: E402


def _interrupted() -> int:
    terminated = bool(_received)
    _received.clear()
    err.print("terminated" if terminated else "interrupted", markup=False, highlight=False)
    return 143 if terminated else 130


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "failed"


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the exit code instead of raising."""
    install_signal_handlers()
    _received.clear()
    common.ARGV[:] = sys.argv[1:] if argv is None else list(argv)
    try:
        rv = app(args=argv, prog_name="embedrec", standalone_mode=False)
    except EmbedrecError as exc:
        err.print(f"error: {_one_line(exc)}", markup=False, highlight=False, soft_wrap=True)
        return 1
    except OSError as exc:  # e.g. --out names a folder, or a disk is full
        where = f"{exc.filename}: " if exc.filename else ""
        err.print(f"error: {_one_line(f'{where}{exc.strerror or exc}')}", markup=False,
                  highlight=False, soft_wrap=True)
        return 1
    except (typer.Abort, KeyboardInterrupt):
        return _interrupted()
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors: bad option values, unknown commands
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        err.print(f"error: {_one_line(exc.format_message())}{hint}", markup=False,
                  highlight=False, soft_wrap=True)
        return getattr(exc, "exit_code", 2)
    except RecursionError:
        err.print("error: input nested too deeply", markup=False, highlight=False)
        return 1
    code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    if code == 130:  # typer turns KeyboardInterrupt (and so SIGTERM) into exit code 130
        return _interrupted()
    return code


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
    except KeyboardInterrupt:  # a second Ctrl-C while cleaning up
        code = 143 if _received else 130
    # The command is over and its code decided. Python restores the default handlers while it
    # shuts down (torch and numba make that take a while), so a late Ctrl-C or SIGTERM would
    # kill the process with the raw signal and hide the code; ignored handlers are left alone.
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass
    sys.exit(code)


if __name__ == "__main__":
    run()
