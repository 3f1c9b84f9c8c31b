"""How the CLI fails: one red ``error: ...`` line on stderr and an exit code, never a traceback.

Exit codes: 2 for what the user can fix before any LM call (a bad file, a bad option,
an artifact that does not load), 1 for what went wrong while running (the model is
missing, the server is down, the budget ran out), 130 for Ctrl-C.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from promptless.errors import BudgetExhausted, LMError, PromptlessError, TooManyErrors
from promptless.redact import safe_text

log = logging.getLogger("promptless.cli")

USAGE = 2  # the input is wrong: fix the command line or the file
RUNTIME = 1  # the run failed: model, server, budget
INTERRUPTED = 130
DEBUG_ENV = "PROMPTLESS_DEBUG"  # set to 1 to get the traceback of an unexpected error

F = TypeVar("F", bound=Callable[..., Any])


class CLIError(PromptlessError):
    """A failure the CLI reports as one line; ``code`` is the process exit code."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = self.exit_code = code


class DataError(CLIError):
    """A data file cannot be read as examples for this signature; the message names the file and the cause."""


@contextmanager
def usage_errors(what: str = "") -> Iterator[None]:
    """Turn ValueError/TypeError raised while setting up (signature, options, artifact) into exit code 2."""
    try:
        yield
    except CLIError:
        raise
    except (ValueError, TypeError, KeyError) as error:
        prefix = f"{what}: " if what else ""
        raise CLIError(f"{prefix}{_text(error)}", USAGE) from error


def classify(error: BaseException) -> CLIError:
    """The one-line report and exit code for an exception that reached a command's edge."""
    if isinstance(error, CLIError):
        return error
    if isinstance(error, PromptlessError):
        return _from_tree(error)
    if isinstance(error, ImportError):
        return CLIError(f"a package is missing: {_text(error)}", RUNTIME)
    if isinstance(error, OSError):
        return CLIError(f"{error.strerror or _text(error)}: {error.filename}" if error.filename else _text(error))
    return CLIError(f"unexpected {type(error).__name__}: {_text(error)} (set {DEBUG_ENV}=1 for the traceback)", RUNTIME)


def _from_tree(error: PromptlessError) -> CLIError:
    """An error of promptless' own tree: its class says the exit code; the message gets a hint where one helps."""
    if isinstance(error, BudgetExhausted):
        return CLIError(f"{_text(error)}; raise --budget to let the run finish", error.exit_code)
    if isinstance(error, TooManyErrors):
        cause = f"; last: {_text(error.__cause__)}" if error.__cause__ is not None else ""
        return CLIError(f"{_text(error)}{cause}", error.exit_code)
    if isinstance(error, LMError):
        return CLIError(f"{type(error).__name__}: {_text(error)}", error.exit_code)
    return CLIError(_text(error), error.exit_code)


def reports_errors(command: F) -> F:
    """Decorate a command: any exception becomes one red line on stderr and a non-zero exit."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import typer

        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            say_error("interrupted")
            raise typer.Exit(INTERRUPTED) from None
        except Exception as error:
            if os.environ.get(DEBUG_ENV) and not isinstance(error, CLIError):
                raise
            failure = classify(error)
            log.debug("command failed", exc_info=error)
            say_error(str(failure))
            raise typer.Exit(failure.code) from None

    return wrapper  # type: ignore[return-value]


def say_error(message: str) -> None:
    """The one red ``error: ...`` line on stderr."""
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True, soft_wrap=True).print(Text(f"error: {safe_text(message, one_line=True)}", style="red"))


def _text(error: BaseException) -> str:
    """The message of an exception on one line (KeyError's repr quotes are dropped)."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(text).split()) or type(error).__name__
