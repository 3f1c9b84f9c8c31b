"""ChatAdapter: for instruct models. Demos are user/assistant turns; the answer is a JSON object.

The JSON answer is what constrained decoding enforces (a grammar on llama.cpp,
``response_format`` on servers), so even a 135M-parameter model returns fields
that parse.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from promptless.adapters.base import Adapter, demo_is_usable, field_spec, history_turns, render_fields
from promptless.adapters.parsing import parse_json_object
from promptless.adapters.schema import output_json_schema
from promptless.adapters.values import to_jsonable
from promptless.signature import Signature
from promptless.types import Request


@dataclass(frozen=True)
class ChatAdapter(Adapter):
    def system_message(self, signature: Signature) -> str:
        reply = "reply with a JSON object with keys " + ", ".join(f'"{n}"' for n in signature.output_fields) + "."
        if signature.has_default_instructions:  # it only names the fields: fold it into the reply line
            parts = (field_spec(signature), f"Given {', '.join(signature.input_fields)}: {reply}")
        else:
            parts = (signature.instructions, field_spec(signature), reply[0].upper() + reply[1:])
        return "\n\n".join(p for p in parts if p)

    def user_message(self, signature: Signature, values: Mapping[str, Any]) -> str:
        return render_fields(signature.input_fields, values)

    def assistant_message(self, signature: Signature, values: Mapping[str, Any]) -> str:
        answer = {n: to_jsonable(values[n], field=n) for n in signature.output_fields if n in values}
        return json.dumps(answer, ensure_ascii=False, separators=(",", ":"))

    def reply_text(self, signature: Signature, outputs: Mapping[str, Any]) -> str:
        return self.assistant_message(signature, outputs)

    def format(
        self, signature: Signature, demos: list[Mapping[str, Any]], inputs: Mapping[str, Any], **sampling: Any
    ) -> Request:
        fixed, schema = self.fixed_part(signature, demos, lambda: self._fixed(signature, demos))
        if signature.history_field is None:
            messages = (*fixed, {"role": "user", "content": self.user_message(signature, inputs)})
        else:  # the earlier turns, then this one: all as turns of the signature without its History field
            turn = signature.turn_signature
            earlier = self.turn_messages(turn, history_turns(signature, inputs))
            messages = _alternating([*fixed, *earlier, {"role": "user", "content": self.user_message(turn, inputs)}])
        return Request(messages=messages, schema=schema, **sampling)

    def _fixed(self, signature: Signature, demos: list[Mapping[str, Any]]) -> tuple[Any, dict[str, Any] | None]:
        """The messages before the input, and the output schema: both the same on every call."""
        schema = output_json_schema(signature, text_cap=self.text_cap) if self.constrained else None
        return self._fixed_messages(signature, demos), schema

    def turn_messages(self, signature: Signature, turns: list[Mapping[str, Any]]) -> list[dict[str, str]]:
        """Earlier turns as user/assistant messages: a turn's inputs, then its outputs (each only if it has any)."""
        messages = []
        for turn in turns:
            if any(n in turn for n in signature.input_fields):
                messages.append({"role": "user", "content": self.user_message(signature, turn)})
            if any(n in turn for n in signature.output_fields):
                messages.append({"role": "assistant", "content": self.assistant_message(signature, turn)})
        return messages

    def _fixed_messages(self, signature: Signature, demos: list[Mapping[str, Any]]) -> tuple[dict[str, str], ...]:
        turn = signature.turn_signature
        messages = [{"role": "system", "content": self.system_message(turn)}]
        for demo in demos:
            if demo_is_usable(turn, demo):
                messages.extend(self.turn_messages(turn, [*history_turns(signature, demo), demo]))
        return _alternating(messages) if turn is not signature else tuple(messages)

    def parse(self, signature: Signature, text: str) -> dict[str, Any]:
        return parse_json_object(signature, text)

    def format_retry(self, request: Request, raw: str, error: Exception) -> Request:
        reason = getattr(error, "reason", str(error))
        follow_up = (
            {"role": "assistant", "content": raw},
            {
                "role": "user",
                "content": f"That reply could not be read: {reason}. Reply again with only the JSON object.",
            },
        )
        return replace(
            request, messages=(*(request.messages or ()), *follow_up), rollout_id=(request.rollout_id or 0) + 1
        )


def _alternating(messages: list[dict[str, str]]) -> tuple[dict[str, str], ...]:
    """Consecutive messages of one role joined into one (a turn without outputs is followed by another user message):
    many chat templates refuse a conversation whose roles do not alternate."""
    merged: list[dict[str, str]] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"] != "system":
            merged[-1] = {"role": message["role"], "content": f"{merged[-1]['content']}\n\n{message['content']}"}
        else:
            merged.append(message)
    return tuple(merged)
