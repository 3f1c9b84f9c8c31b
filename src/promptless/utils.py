"""DSPy's import path ``dspy.utils``: ``DummyLM`` (promptless's ``ScriptedLM``), callbacks, the exception names."""

from promptless import errors as exceptions
from promptless.callbacks import BaseCallback, with_callbacks
from promptless.testing import DummyLM, ScriptedLM

__all__ = ["BaseCallback", "DummyLM", "ScriptedLM", "exceptions", "with_callbacks"]
