"""The OpenAPI document states the error envelope the API really sends.

Litestar documents every validation failure (and any exception listed in ``raises``) with its own body
``{status_code, detail, extra}``, but app.api.errors answers ``{error, code, details}`` for every error. A
client generated from the document, or a schema-conformance fuzzer, would see a mismatch on every 4xx. The
render plugins below rewrite those auto-generated error schemas to the envelope, once, before the first
document is served (building the document is lazy: ~1 s for the whole API, so it is never done at start).
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RapidocRenderPlugin,
    RedocRenderPlugin,
    StoplightRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)

ERROR_SCHEMA_NAME = "ErrorResponse"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error: a human message, a stable machine-readable code, and optional details.",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "code": {"type": ["string", "null"]},
        "details": {},
    },
    "additionalProperties": True,
}
_MARK = "x-nexgent-error-envelope"


def _is_litestar_error_schema(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if sorted(schema.get("required", [])) == ["detail", "status_code"]:
        return True
    options = schema.get("oneOf")
    return bool(options) and all(_is_litestar_error_schema(option) for option in options)


def document_error_envelope(document: dict[str, Any]) -> dict[str, Any]:
    """Replace Litestar's generated error bodies by the envelope (in place, idempotent)."""
    if document.get(_MARK):
        return document
    reference = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    for path_item in (document.get("paths") or {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for response in (operation.get("responses") or {}).values():
                for media in (response.get("content") or {}).values():
                    if _is_litestar_error_schema(media.get("schema")):
                        media["schema"] = dict(reference)
    document.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = ERROR_SCHEMA
    document[_MARK] = True
    return document


class _EnvelopeDocumented(OpenAPIRenderPlugin):
    """Delegates rendering to a stock plugin after fixing the (shared, cached) document once."""

    def __init__(self, inner: OpenAPIRenderPlugin) -> None:
        super().__init__(path=inner.paths, media_type=inner.media_type, favicon=inner.favicon, style=inner.style)
        self.inner = inner

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        return self.inner.render(request, document_error_envelope(openapi_schema))


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Litestar's default set of endpoints (redoc at the root), each serving the corrected document."""
    stock = [
        RedocRenderPlugin(),
        JsonRenderPlugin(),
        YamlRenderPlugin(path=["/openapi.yaml", "/openapi.yml"]),
        SwaggerRenderPlugin(),
        RapidocRenderPlugin(),
        StoplightRenderPlugin(),
    ]
    return [_EnvelopeDocumented(plugin) for plugin in stock]
