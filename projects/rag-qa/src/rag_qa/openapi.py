"""Limits that come from settings, stated in the OpenAPI document.

A request model's schema is fixed when its module is imported, but some bounds are set per
deployment (the model served, a largest top_k). `state_limits` writes them into the
document the app serves, so what the schema allows is what the service accepts, and a
schema fuzzer reaches the answering paths rather than only the refusals:

    state_limits(app, {"ChatCompletionRequest.model": {"enum": [settings.model_name]}})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

# "Model.field" -> JSON Schema keywords for that field.
SchemaLimits = Mapping[str, Mapping[str, object]]


def state_limits(app: FastAPI, limits: SchemaLimits) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            models = schema["components"]["schemas"]
            for target, keywords in limits.items():
                model, field = target.split(".")
                _constrain(models[model]["properties"][field], keywords)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _constrain(prop: dict[str, Any], keywords: Mapping[str, object]) -> None:
    """Adds `keywords` to a field's schema; for an optional field, to its non-null branch."""
    branches = prop.get("anyOf", [prop])
    for branch in branches:
        if branch.get("type") != "null":
            branch.update(keywords)
