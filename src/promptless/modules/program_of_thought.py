"""ProgramOfThought: the LM writes Python, a sandbox runs it, the LM reads the result and answers.

As in DSPy, three ChainOfThought predictors (so optimizers see and compile all
three): ``code_generate`` writes ``code`` from the inputs; the code runs in a
``Sandbox`` (a separate, locked-down interpreter process, never the host);
on an error ``code_regenerate`` sees the inputs, the previous code and the
error and writes new code; ``generate_output`` answers the signature's outputs
from the inputs, the code that ran and its output.

``max_iters`` counts attempts at code in all (the first plus up to
``max_iters - 1`` repairs). If none runs, the call raises
``ProgramOfThoughtError`` naming the last error (DSPy raises too), so
``Evaluate`` and the optimizers score that example as a failure and go on.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from promptless.errors import ProgramOfThoughtError
from promptless.module import Module
from promptless.modules.chain_of_thought import ChainOfThought
from promptless.primitives import Prediction
from promptless.sandbox import RunError, Sandbox, SandboxResult
from promptless.signature import InputField, OutputField, Signature, SignatureError, ensure_signature

ADDED_FIELDS = ("code", "previous_code", "error", "code_output", "reasoning")
CODE_RULES = (
    "The code runs in a sandbox: Python 3 with the standard library only, no files outside its working "
    "directory, no network, no subprocesses. Its last line must be an expression whose value is the result "
    "(or assign the result to a variable named `answer`); print() output is shown too."
)
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL | re.IGNORECASE)
MAX_ERROR_CHARS = 2000


class ProgramOfThought(Module):
    """``ProgramOfThought("question -> answer: float", max_iters=3, sandbox=Sandbox(timeout_s=5))``.

    The prediction holds the signature's outputs and the final ``reasoning``,
    plus the ``code`` that ran and its ``code_output``.
    """

    def __init__(
        self,
        signature: str | Signature | type[Signature],
        max_iters: int = 3,
        sandbox: Sandbox | None = None,
        **config: Any,
    ) -> None:
        if max_iters < 1:
            raise ValueError(f"max_iters must be at least 1, got {max_iters}")
        self.signature = ensure_signature(signature)
        clashes = [name for name in ADDED_FIELDS if name in self.signature.fields]
        if clashes:
            raise SignatureError(f"ProgramOfThought adds the fields {clashes}; rename them in {self.signature!r}")
        self.max_iters = max_iters
        self.sandbox = sandbox if sandbox is not None else Sandbox()
        self.code_generate = ChainOfThought(_generate_signature(self.signature), **config)
        self.code_regenerate = ChainOfThought(_regenerate_signature(self.signature), **config)
        self.generate_output = ChainOfThought(_output_signature(self.signature), **config)

    def forward(self, **inputs: Any) -> Prediction:
        code = strip_code_fences(self.code_generate(**inputs).code)
        result = self.execute(code)
        attempts = 1
        while not result.ok and attempts < self.max_iters:
            repaired = self.code_regenerate(**inputs, previous_code=code, error=describe_failure(result))
            code = strip_code_fences(repaired.code)
            result = self.execute(code)
            attempts += 1
        if not result.ok:
            raise ProgramOfThoughtError(
                f"ProgramOfThought: no code ran successfully in {attempts} attempt(s); "
                f"the last failed with {describe_failure(result, limit=500)}",
                code=code,
                error=result.error,
                attempts=attempts,
            )
        output_text = result.output_text()
        answer = self.generate_output(**inputs, code=code, code_output=output_text)
        return Prediction({**answer.toDict(), "code": code, "code_output": output_text})

    def execute(self, code: str) -> SandboxResult:
        """Run one attempt; empty code is a failure the next attempt can repair, not a crash."""
        if not code.strip():
            return SandboxResult(False, error=RunError("exception", "NoCode", "the reply contained no code"))
        return self.sandbox.run(code)


def strip_code_fences(text: Any) -> str:
    """The code inside the first ```python fence (or the whole reply without stray fence lines), dedented."""
    text = str(text or "")
    match = _FENCE.search(text)
    if match:
        text = match.group(1)
    lines = [line for line in text.splitlines() if not line.strip().startswith("```")]
    return textwrap.dedent("\n".join(lines)).strip("\n")


def describe_failure(result: SandboxResult, limit: int = MAX_ERROR_CHARS) -> str:
    """The error as the next attempt should read it: the traceback (or type and message), and any output."""
    error = result.error
    text = str(error) if error is not None else "the code failed"
    if result.stdout.strip():
        text = f"{text}\n(stdout before the error: {result.stdout.strip()[-300:]})"
    return text if len(text) <= limit else "..." + text[-limit:]


def _names(fields: dict[str, Any]) -> str:
    return ", ".join(f"`{name}`" for name in fields)


def _generate_signature(signature: Signature) -> Signature:
    outputs = _names(signature.output_fields)
    generate = signature.append("code", OutputField(desc="Python code that computes the result"))
    for name in signature.output_fields:
        generate = generate.delete(name)
    task = signature.instructions
    return generate.with_instructions(f"{task}\n\nWrite Python code that computes {outputs}. {CODE_RULES}")


def _regenerate_signature(signature: Signature) -> Signature:
    regenerate = _generate_signature(signature)
    regenerate = regenerate.append("previous_code", InputField(desc="code that failed"))
    regenerate = regenerate.append("error", InputField(desc="how it failed"))
    outputs = _names(signature.output_fields)
    return regenerate.with_instructions(
        f"{signature.instructions}\n\nThe previous Python code failed with the error shown. Write corrected "
        f"code that computes {outputs}. {CODE_RULES}"
    )


def _output_signature(signature: Signature) -> Signature:
    output = signature.append("code", InputField(desc="Python code written for this task"))
    output = output.append("code_output", InputField(desc="what the code printed and computed"))
    return output.with_instructions(
        f"{signature.instructions}\n\nPython code was written and run for this; use its output to give "
        f"{_names(signature.output_fields)}."
    )
