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

from promptless.adapters.base import Adapter, demo_is_usable, field_spec, render_fields
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

    def format(
        self, signature: Signature, demos: list[Mapping[str, Any]], inputs: Mapping[str, Any], **sampling: Any
    ) -> Request:
        fixed = self.fixed_part(signature, demos, lambda: self._fixed_messages(signature, demos))
        messages = (*fixed, {"role": "user", "content": self.user_message(signature, inputs)})
        schema = output_json_schema(signature, text_cap=self.text_cap) if self.constrained else None
        return Request(messages=messages, schema=schema, **sampling)

    def _fixed_messages(self, signature: Signature, demos: list[Mapping[str, Any]]) -> tuple[dict[str, str], ...]:
        messages = [{"role": "system", "content": self.system_message(signature)}]
        for demo in demos:
            if demo_is_usable(signature, demo):
                messages.append({"role": "user", "content": self.user_message(signature, demo)})
                messages.append({"role": "assistant", "content": self.assistant_message(signature, demo)})
        return tuple(messages)

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
