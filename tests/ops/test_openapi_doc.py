"""The served OpenAPI document describes the error envelope the API really answers with."""

from __future__ import annotations

import json

from app.api.openapi_doc import ERROR_SCHEMA_NAME, document_error_envelope


def _schemas(document: dict):
    for path_item in document["paths"].values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                for status, response in (operation.get("responses") or {}).items():
                    for media in (response.get("content") or {}).values():
                        yield status, media.get("schema")


async def test_error_responses_are_documented_as_the_envelope(client) -> None:
    document = (await client.get("/api/v1/docs/openapi.json")).json()
    assert document["components"]["schemas"][ERROR_SCHEMA_NAME]["required"] == ["error"]
    text = json.dumps(document)
    assert '"status_code"' not in text  # Litestar's own error body is gone everywhere
    documented_400 = [schema for status, schema in _schemas(document) if status == "400"]
    assert documented_400
    components = document["components"]["schemas"]
    for schema in documented_400:  # ours, or another module's named envelope: both carry "error"
        name = schema["$ref"].rpartition("/")[2]
        assert "error" in components[name]["properties"], name
    # The YAML rendering serves the same corrected document.
    yaml = (await client.get("/api/v1/docs/openapi.yaml")).text
    assert "status_code" not in yaml and ERROR_SCHEMA_NAME in yaml


def test_rewrite_is_idempotent_and_handles_one_of() -> None:
    litestar_error = {"type": "object", "required": ["detail", "status_code"], "properties": {}}
    document = {
        "paths": {
            "/x": {
                "get": {
                    "responses": {
                        "400": {"content": {"application/json": {"schema": litestar_error}}},
                        "409": {
                            "content": {"application/json": {"schema": {"oneOf": [litestar_error, litestar_error]}}}
                        },
                        "200": {"content": {"application/json": {"schema": {"type": "object"}}}},
                    }
                }
            }
        }
    }
    once = json.dumps(document_error_envelope(document))
    assert json.dumps(document_error_envelope(document)) == once
    responses = document["paths"]["/x"]["get"]["responses"]
    ref = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
    assert responses["400"]["content"]["application/json"]["schema"] == ref
    assert responses["409"]["content"]["application/json"]["schema"] == ref
    assert responses["200"]["content"]["application/json"]["schema"] == {"type": "object"}
