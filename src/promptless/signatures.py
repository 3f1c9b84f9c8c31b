"""DSPy's import path ``dspy.signatures``: signatures and fields, re-exported."""

from promptless.signature import InputField, OutputField, Signature, ensure_signature, infer_prefix, make_signature

__all__ = ["InputField", "OutputField", "Signature", "ensure_signature", "infer_prefix", "make_signature"]
