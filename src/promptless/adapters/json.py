"""JSONAdapter: inputs and outputs both as JSON objects, for models and servers that prefer strict JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptless.adapters.chat import ChatAdapter
from promptless.adapters.values import to_jsonable
from promptless.signature import Signature


@dataclass(frozen=True)
class JSONAdapter(ChatAdapter):
    def user_message(self, signature: Signature, values: Mapping[str, Any]) -> str:
        data = {n: to_jsonable(values[n], field=n) for n in signature.input_fields if n in values}
        return json.dumps(data, ensure_ascii=False)
