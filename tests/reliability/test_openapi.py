"""`GET /openapi.json`: generated from the openai package's types, valid OpenAPI 3.1, built once."""

from __future__ import annotations

import orjson
from openapi_spec_validator import validate

from llmrelay.proxy import openapi


def test_document_is_valid_openapi_31() -> None:
    doc = orjson.loads(openapi.document())
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # the OAS 3.1 meta-schema, and every schema in it against its dialect


def test_document_is_built_once() -> None:
    assert openapi.document() is openapi.document()


def test_openai_shapes_come_from_the_openai_package() -> None:
    doc = orjson.loads(openapi.document())
    schemas = doc["components"]["schemas"]
    create = schemas[schemas["CreateResponse"]["$ref"].rsplit("/", 1)[1]]
    # fields the openai package defines, never listed by hand here
    assert {"input", "tools", "reasoning", "text", "previous_response_id", "stream"} <= set(create["properties"])
    assert create["additionalProperties"] is False and "model" in create["required"]
    assert {"id", "output", "usage"} <= set(schemas["Response"]["properties"])
    error = schemas["Error"]["properties"]["error"]
    assert error["required"] == ["message", "type", "param", "code"]


def test_every_route_is_documented() -> None:
    paths = orjson.loads(openapi.document())["paths"]
    for path in ("/v1/responses", "/v1/responses/input_tokens", "/v1/responses/compact",
                 "/v1/responses/{response_id}", "/v1/conversations/{conversation_id}/items",
                 "/v1/models", "/health/liveliness", "/key/generate", "/team/new", "/user/list",
                 "/spend/logs", "/global/spend/report"):  # fmt: skip
        assert path in paths, path
    for path, ops in paths.items():
        for op in ops.values():
            assert op["responses"]["default"] == {"$ref": "#/components/responses/Error"}, path
