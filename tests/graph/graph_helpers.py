"""Helpers of the graph tests (imported as `graph_helpers`, like `serve_helpers`)."""

from __future__ import annotations

from typing import Any

from envfactory.spec import Operation


def operation(service: str, name: str, inputs: dict[str, Any], outputs: dict[str, Any] | None = None,
              required: list[str] | None = None, provider: str = "aws", method: str = "POST") -> Operation:
    """A hand-written catalog operation (AWS-style ids)."""
    return Operation(
        id=f"{provider}:{service}:2020-01-01:{name}", provider=provider, service=service, service_version="2020-01-01",
        name=name, description=f"{name} of {service}", http_method=method,
        input_schema={"type": "object", "properties": inputs, "required": required or []},
        output_schema={"type": "object", "properties": outputs or {}},
    )
