"""CompletionAdapter: for base models, which continue text rather than follow chat turns.

The prompt is plain text: instructions, a field spec, demos as ``Label: value``
blocks, then the call's inputs, ending exactly where the first output field's
value begins. A grammar fixes the shape of the continuation, so the model can
only write the remaining ``Label: value`` lines with values of the right type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from promptless.adapters.base import Adapter, demo_is_usable, field_hint, history_turns, render_fields
from promptless.adapters.parsing import parse_lines
from promptless.adapters.schema import output_line_grammar
from promptless.adapters.tracker import FieldTracker
from promptless.adapters.values import render_value
from promptless.signature import Field, Signature
from promptless.types import Request

SEPARATOR = "\n\n---\n\n"


@dataclass(frozen=True)
class CompletionAdapter(Adapter):
    def header(self, signature: Signature) -> str:
        """Instructions, then one line per side naming the fields.

        Written as prose, not as ``Label: value`` lines, so a base model does not
        take the descriptions for an example to copy.
        """

        def side(fields: dict[str, Field]) -> str:
            return ", ".join(f"{f.label} ({hint})" if (hint := field_hint(f)) else f.label for f in fields.values())

        spec = f"Given {side(signature.input_fields)}; write {side(signature.output_fields)}."
        if signature.has_default_instructions:
            return spec  # the default instruction says nothing the spec line does not
        return f"{signature.instructions}\n\n{spec}"

    def format(
        self, signature: Signature, demos: list[Mapping[str, Any]], inputs: Mapping[str, Any], **sampling: Any
    ) -> Request:
        fixed = self.fixed_part(signature, demos, lambda: self._fixed_blocks(signature, demos))
        first_output = next(iter(signature.output_fields.values()))
        turn = signature.turn_signature  # without the History field: its turns come as blocks of their own
        earlier = self.turn_blocks(turn, history_turns(signature, inputs)) if turn is not signature else []
        blocks = [*fixed, *earlier, f"{render_fields(turn.input_fields, inputs)}\n{first_output.label}:"]
        grammar = output_line_grammar(signature, text_cap=self.text_cap) if self.constrained else None
        # Unconstrained, a base model tends to go on with the next example: stop where one would begin.
        stop = (
            () if self.constrained else ("\n\n", "\n---", *(f"\n{f.label}:" for f in signature.input_fields.values()))
        )
        own = sampling.pop("stop", None) or ()  # a predictor's own stop strings add to the adapter's
        stop = (*stop, *((own,) if isinstance(own, str) else own))
        return Request(prompt=SEPARATOR.join(blocks), grammar=grammar, stop=stop, **sampling)

    def reply_text(self, signature: Signature, outputs: Mapping[str, Any]) -> str:
        """The continuation after the prompt's last ``Label:``: the value, then the line's end."""
        fields = list(signature.output_fields.items())
        first, rest = fields[0], dict(fields[1:])
        lines = [f" {render_value(outputs[first[0]], field=first[0])}"] if first[0] in outputs else []
        if rest:
            lines.append(render_fields(rest, outputs))
        return "\n".join(lines) + "\n"

    def turn_blocks(self, signature: Signature, turns: list[Mapping[str, Any]]) -> list[str]:
        """Earlier turns as ``Label: value`` blocks, like demos (a turn with no field of the signature is left out)."""
        return [block for turn in turns if (block := render_fields(signature.fields, turn))]

    def _fixed_blocks(self, signature: Signature, demos: list[Mapping[str, Any]]) -> tuple[str, ...]:
        turn = signature.turn_signature
        demo_blocks = [
            block
            for d in demos
            if demo_is_usable(turn, d)
            for block in self.turn_blocks(turn, [*history_turns(signature, d), d])
        ]
        return (self.header(turn), *demo_blocks)

    def parse(self, signature: Signature, text: str) -> dict[str, Any]:
        return parse_lines(signature, text, first_label_in_prompt=True)

    def field_tracker(self, signature: Signature) -> FieldTracker:
        """``Label: value`` lines; the prompt ends with the first label."""
        return FieldTracker(signature, lines=True)

    def format_retry(self, request: Request, raw: str, error: Exception) -> Request:
        # A base model cannot be told about its mistake; resample instead of repeating it.
        return replace(request, temperature=max(request.temperature, 0.7), rollout_id=(request.rollout_id or 0) + 1)
