"""Every error promptless raises on purpose, in one tree, so callers can tell the families apart.

::

    PromptlessError                      exit_code 1 unless said; .transient .fatal .outage
    ├── usage: you used the API or a file wrong (exit_code 2; also ValueError)
    │   ├── SignatureError               a malformed signature
    │   ├── TypeSyntaxError              a type annotation that cannot be read
    │   ├── ArtifactError                a saved program that does not load into this program
    │   ├── CheckpointMismatch           a checkpoint of another compile
    │   ├── MetricError                  fatal: a metric returned no score (None, NaN, "no"; also TypeError)
    │   ├── CannotTravel                 a program, LM, metric or setting that cannot be sent to Ray workers
    │   └── JudgeFieldError              a judge reads a field the example or prediction lacks
    ├── model output: the LM answered, but not usably (also ValueError)
    │   ├── ParseError                   text that is not the signature's outputs (.raw, .field)
    │   └── ToolArgumentError            tool arguments that do not fit the tool's schema
    ├── LMError                          a backend failed
    │   ├── LMTimeout                    transient, outage: no answer in time
    │   ├── LMUnavailable                transient, outage: refused connection, 5xx
    │   ├── LMRateLimited                transient: 429
    │   ├── LMAuthError                  fatal: 401/403
    │   ├── LMNotFound                   fatal: no such model or endpoint
    │   │   └── ModelNotInstalled        fatal: the package carrying an embedded model's weights is missing
    │   ├── LMContextOverflow            the prompt does not fit the context
    │   └── LMBadRequest                 the backend rejected the request as malformed
    ├── BudgetExhausted                  fatal: the LM-call/token budget in force is spent
    ├── TooManyErrors                    a run passed its ``max_errors`` (Evaluate, BootstrapFewShot, Parallel)
    ├── WorkerError                      an error a Ray worker raised that could not be sent back as itself
    ├── WorkersLost                      every Ray worker died and no replacement could be started
    ├── ClusterError                     fatal: no Ray cluster at the address, or it refused us, or gave no workers
    ├── RetrievalError                   a retriever could not answer
    └── ProgramOfThoughtError            no attempt at code ran

DSPy 3.3's public names are aliases of these classes (``DSPyError`` is ``PromptlessError``,
``LMRateLimitError`` is ``LMRateLimited``, ...; the table is ``DSPY_NAMES``), and
``is_retryable_lm_error(error)`` is ``error.transient``, so ``except dspy.LMTimeoutError`` ports.

The attributes replace hand-kept tuples: ``transient`` errors are retried by the LM;
``fatal`` ones stop an evaluation, a batch or a compile at once; ``outage`` ones
(the server is down or hanging even after the LM's retries) stop a run after
``OUTAGE_IN_A_ROW`` in a row. ``exit_code`` is what the CLI exits with.
"""

from __future__ import annotations

OUTAGE_IN_A_ROW = 3  # examples in a row failing with an outage before a run stops


class PromptlessError(Exception):
    """Base of the tree; the class attributes classify an error for retries, runs and the CLI."""

    transient: bool = False
    fatal: bool = False
    outage: bool = False
    exit_code: int = 1


# -- usage ------------------------------------------------------------------------------------
class SignatureError(PromptlessError, ValueError):
    """A signature is malformed; the message quotes it and says what is wrong."""

    exit_code = 2


class TypeSyntaxError(PromptlessError, ValueError):
    """The text of a type annotation could not be understood."""

    exit_code = 2


class ArtifactError(PromptlessError, ValueError):
    """A saved program cannot be loaded into this program; the message says why."""

    exit_code = 2


class CheckpointMismatch(PromptlessError, ValueError):
    """The checkpoint file belongs to a different compile (other optimizer, settings or data)."""

    exit_code = 2


class MetricError(PromptlessError, TypeError):
    """A metric returned something that is not a score (None, NaN, a string, ...): a bug in the metric.

    Fatal: every further example would fail the same way, so a run stops at once and says so.
    """

    exit_code = 2
    fatal = True


class CannotTravel(PromptlessError, TypeError):
    """Something a Ray executor must send to its workers cannot go (a lambda over a lock, an LM subclass, ...).

    The message names the object and says what would travel instead.
    """

    exit_code = 2


class JudgeFieldError(PromptlessError, ValueError):
    """The example or prediction lacks a field the judge reads; the message names it and the keys present."""

    exit_code = 2


# -- model output -----------------------------------------------------------------------------
class ParseError(PromptlessError, ValueError):
    """The LM's text could not be read as the signature's outputs.

    ``field`` names the field that failed (None when nothing was readable) and
    ``raw`` keeps the text exactly as the LM returned it.
    """

    def __init__(self, message: str, *, raw: str, field: str | None = None) -> None:
        super().__init__(f"{message} (raw output: {raw[:300]!r})")
        self.raw = raw
        self.field = field
        self.reason = message


class ToolArgumentError(PromptlessError, ValueError):
    """Arguments that do not fit a tool's schema; the message names the tool, the argument and what was received."""


# -- backends ---------------------------------------------------------------------------------
class LMError(PromptlessError):
    """Base class of every error raised by an LM backend.

    ``retry_after`` is the delay in seconds the server asked for (HTTP ``Retry-After``), if any;
    ``status`` the HTTP status of the server's reply, if a server answered.
    """

    retry_after: float | None = None
    status: int | None = None


class LMTimeout(LMError):
    """The backend did not answer within the timeout. Retried; past the retries, an outage."""

    transient = True
    outage = True


class LMUnavailable(LMError):
    """The backend could not be reached or failed on its side (5xx, refused connection). Retried."""

    transient = True
    outage = True


class LMRateLimited(LMError):
    """The backend asked us to slow down (HTTP 429). Retried with backoff."""

    transient = True


class LMAuthError(LMError):
    """The credentials were refused (HTTP 401/403). Never retried; stops a run."""

    fatal = True


class LMNotFound(LMError):
    """The model (or endpoint) does not exist on the backend. Never retried; stops a run."""

    fatal = True


class ModelNotInstalled(LMNotFound, RuntimeError):
    """The package that carries a model's weights is not installed."""


class LMContextOverflow(LMError):
    """The prompt does not fit the model's context window. Never retried."""


class LMBadRequest(LMError):
    """The backend rejected the request as malformed. Never retried."""


# -- runs -------------------------------------------------------------------------------------
class BudgetExhausted(PromptlessError, RuntimeError):
    """The budget in force allows no further LM call; optimizers stop and keep the best found so far."""

    fatal = True


class TooManyErrors(PromptlessError, RuntimeError):
    """More examples failed than ``max_errors`` allows; the last error is the cause, ``errors`` holds them all."""

    def __init__(self, message: str, errors: list[BaseException] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])


class WorkerError(PromptlessError):
    """An error raised in a Ray worker that could not be unpickled here: its type name and text, and its class flags.

    ``transient``, ``fatal`` and ``outage`` are copied from the original, so a run stops on it as it would have.
    """

    def __init__(self, type_name: str, message: str, *, transient: bool, fatal: bool, outage: bool) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.transient, self.fatal, self.outage = transient, fatal, outage

    def __reduce__(self) -> tuple:
        return _worker_error, (self.type_name, str(self), self.transient, self.fatal, self.outage)


def _worker_error(type_name: str, text: str, transient: bool, fatal: bool, outage: bool) -> WorkerError:
    error = WorkerError(type_name, "", transient=transient, fatal=fatal, outage=outage)
    error.args = (text,)
    return error


class WorkersLost(PromptlessError, RuntimeError):
    """Every Ray worker of a run died and the restart limit was reached; the examples not run are named."""

    fatal = True


class ClusterError(PromptlessError, RuntimeError):
    """The Ray cluster to join is not there, refused this process (its auth token) or started no workers in time.

    The message names the address and what to do; it comes within seconds, not after Ray's minutes of retries.
    """

    fatal = True


class RetrievalError(PromptlessError):
    """A retriever could not answer: a bad index on disk, a malformed server reply, no retriever set."""


class ProgramOfThoughtError(PromptlessError, RuntimeError):
    """No attempt at code ran successfully; ``code`` and ``error`` are the last attempt's."""

    def __init__(self, message: str, *, code: str, error: object | None, attempts: int) -> None:
        super().__init__(message)
        self.code = code
        self.error = error
        self.attempts = attempts


# -- DSPy 3.3's names for the same errors (aliases, not a second tree) ----------------------------------
DSPyError = PromptlessError
LMProviderError = LMError  # DSPy: the provider answered with an error; here every backend error is an LMError
LMUnexpectedError = LMError
LMTransportError = LMUnavailable  # no connection: retried, an outage
LMServerError = LMUnavailable  # 5xx
LMTimeoutError = LMTimeout
LMRateLimitError = LMRateLimited
LMInvalidRequestError = LMBadRequest
ContextWindowExceededError = LMContextOverflow  # not a subclass of LMBadRequest here, unlike DSPy's
LMUnsupportedModelError = LMNotFound
AdapterParseError = ParseError  # .raw is DSPy's .lm_response

DSPY_NAMES = {
    "DSPyError": "PromptlessError",
    "LMError": "LMError",
    "LMProviderError": "LMError",
    "LMUnexpectedError": "LMError",
    "LMTransportError": "LMUnavailable",
    "LMServerError": "LMUnavailable",
    "LMTimeoutError": "LMTimeout",
    "LMRateLimitError": "LMRateLimited",
    "LMAuthError": "LMAuthError",
    "LMInvalidRequestError": "LMBadRequest",
    "ContextWindowExceededError": "LMContextOverflow",
    "LMUnsupportedModelError": "LMNotFound",
    "AdapterParseError": "ParseError",
}


def is_retryable_lm_error(error: BaseException) -> bool:
    """DSPy's classification: an error worth retrying (``transient`` here: timeouts, outages, rate limits)."""
    return bool(getattr(error, "transient", False))


class RunGuard:
    """Decides when a failing example ends a whole run: one rule for Evaluate, batches and optimizers.

    ``failed(error)`` re-raises ``error`` when it is fatal, or when it is the
    ``OUTAGE_IN_A_ROW``-th outage in a row; ``succeeded()`` resets the count. Thread-safe
    enough for its use: the count is advisory and only ever compared, never summed.
    """

    def __init__(self, outages_in_a_row: int = OUTAGE_IN_A_ROW) -> None:
        self.limit = outages_in_a_row
        self.outages = 0

    def failed(self, error: BaseException) -> None:
        if getattr(error, "fatal", False):
            raise error
        if getattr(error, "outage", False):
            self.outages += 1
            if self.outages >= self.limit:
                raise error
        else:
            self.outages = 0

    def succeeded(self) -> None:
        self.outages = 0


def cannot_recover(error: BaseException) -> bool:
    """Fatal, or an outage that outlived the LM's retries: retrying this step (an attempt, a demo) is pointless."""
    return bool(getattr(error, "fatal", False) or getattr(error, "outage", False))
