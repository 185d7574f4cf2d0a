"""`GET /openapi.json`: an OpenAPI 3.1 document for everything the proxy serves.

OpenAI's half is generated from the installed `openai` package: its request TypedDicts and
response models through pydantic's JSON schema, so a newer `openai` release documents its new
fields here without a change. llmrelay's own routes (keys, teams, users, spend, health) are
described below. Built on the first request and kept as bytes: startup and the hot path pay
nothing for it.
"""

from __future__ import annotations

import threading
from typing import Any

import orjson

from ..validate import RANGES

Json = dict[str, Any]

REF = "#/components/schemas/{model}"
_lock = threading.Lock()
_document: bytes | None = None


def document() -> bytes:
    """The document, built once per process."""
    global _document
    if _document is None:
        with _lock:
            if _document is None:
                _document = orjson.dumps(build())
    return _document


def build() -> Json:
    # Imported here: the openai type modules and pydantic's schema generation are not needed
    # by a proxy nobody asks for its document.
    from openai.types import ErrorObject, Model
    from openai.types.conversations import (
        Conversation,
        ConversationCreateParams,
        ConversationDeletedResource,
        ConversationItem,
        ConversationItemList,
        ConversationUpdateParams,
        ItemCreateParams,
        ItemListParams,
    )
    from openai.types.responses import (
        CompactedResponse,
        InputItemListParams,
        InputTokenCountParams,
        InputTokenCountResponse,
        Response,
        ResponseCompactParams,
        ResponseInputMessageItem,
        ResponseItemList,
        ResponseStreamEvent,
    )
    from openai.types.responses.response_create_params import ResponseCreateParamsBase
    from pydantic import TypeAdapter

    named: dict[str, tuple[Any, str]] = {
        "CreateResponse": (ResponseCreateParamsBase, "validation"),
        "InputTokenCountParams": (InputTokenCountParams, "validation"),
        "ResponseCompactParams": (ResponseCompactParams, "validation"),
        "ConversationCreateParams": (ConversationCreateParams, "validation"),
        "ConversationUpdateParams": (ConversationUpdateParams, "validation"),
        "ItemCreateParams": (ItemCreateParams, "validation"),
        "InputItemListParams": (InputItemListParams, "validation"),
        "ItemListParams": (ItemListParams, "validation"),
        "Response": (Response, "serialization"),
        "ResponseStreamEvent": (ResponseStreamEvent, "serialization"),
        "ResponseItemList": (ResponseItemList, "serialization"),
        "CompactedResponse": (CompactedResponse, "serialization"),
        "ResponseInputMessageItem": (ResponseInputMessageItem, "serialization"),
        "InputTokenCountResponse": (InputTokenCountResponse, "serialization"),
        "Conversation": (Conversation, "serialization"),
        "ConversationDeletedResource": (ConversationDeletedResource, "serialization"),
        "ConversationItem": (ConversationItem, "serialization"),
        "ConversationItemList": (ConversationItemList, "serialization"),
        "Model": (Model, "serialization"),
        "ErrorObject": (ErrorObject, "serialization"),
    }
    adapters = [(name, mode, TypeAdapter(tp)) for name, (tp, mode) in named.items()]
    top, defs = TypeAdapter.json_schemas(adapters, ref_template=REF)  # type: ignore[arg-type]
    schemas: Json = dict(defs.get("$defs", {}))
    for (name, _mode), schema in top.items():
        if "$ref" in schema and len(schema) == 1:  # a model: its definition is in $defs already
            target = schema["$ref"].rsplit("/", 1)[1]
            if target != name:
                schemas[name] = schema
        else:
            schemas[name] = schema
    for schema in schemas.values():
        _close(schema)
    # The create params' base leaves `stream` to its two variants; the proxy takes both. A call
    # names its model (the proxy routes by it), and its `instructions` may be a list of items.
    create = _target(schemas, "CreateResponse")
    create["properties"]["stream"] = {"anyOf": [{"type": "boolean"}, {"type": "null"}]}
    create["required"] = sorted({*create.get("required", []), "model"})
    create["anyOf"] = [{"required": ["input"]}, {"required": ["prompt"]}]
    for name, (low, high) in RANGES.items():  # the bounds llmrelay enforces, which the types leave out
        for branch in create["properties"][name].get("anyOf", [create["properties"][name]]):
            if branch.get("type") in ("integer", "number"):
                branch |= {"minimum": low} if low is not None else {}
                branch |= {"maximum": high} if high is not None else {}
    # A compaction keeps the caller's own messages (as OpenAI's does), which the SDK's type of
    # `output` (items a model makes) leaves out.
    kept = _target(schemas, "CompactedResponse")["properties"]["output"]["items"]
    kept["anyOf"] = [*kept.get("anyOf", [kept]), _ref("ResponseInputMessageItem")]
    schemas.update(_own_schemas())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmrelay",
            "version": _version(),
            "description": "OpenAI's Responses API for every provider, plus LiteLLM-style management routes. "
            "Every OpenAI route is also served without the /v1 prefix.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "OpenAI's error shape.",
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": _paths(schemas),
    }


def _target(schemas: Json, name: str) -> Json:
    schema = schemas[name]
    return schemas[schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema


def _close(schema: Any) -> None:
    """Request TypedDicts are closed: OpenAI (and llmrelay) refuse a field they do not know.
    pydantic leaves them open; the response models say `additionalProperties: true` themselves."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _close(value)
    elif isinstance(schema, list):
        for value in schema:
            _close(value)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llmrelay")
    except PackageNotFoundError:
        return "0"


def _ref(name: str) -> Json:
    return {"$ref": REF.format(model=name)}


def _own_schemas() -> Json:
    obj: Json = {"type": "object"}
    return {
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "allOf": [_ref("ErrorObject")],
                    "required": ["message", "type", "param", "code"],
                }
            },
            "required": ["error"],
        },
        "ResponseDeleted": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "object": {"const": "response.deleted"},
                "deleted": {"type": "boolean"},
            },
            "required": ["id", "object", "deleted"],
        },
        "ModelList": {
            "type": "object",
            "properties": {"object": {"const": "list"}, "data": {"type": "array", "items": _ref("Model")}},
            "required": ["object", "data"],
        },
        "Health": {
            "type": "object",
            "properties": {"status": {"type": "string"}},
            "required": ["status"],
            "additionalProperties": True,
        },
        # LiteLLM's management shapes: open objects, as LiteLLM's own API leaves them.
        "ManagementRequest": obj,
        "ManagementResponse": obj,
    }


def _json_body(schema: Json, required: bool = True) -> Json:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _ok(schema: Json, description: str = "OK", *, stream: bool = False) -> Json:
    content: Json = {"application/json": {"schema": schema}}
    if stream:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    return {
        "200": {"description": description, "content": content},
        "default": {"$ref": "#/components/responses/Error"},
    }


def _path_param(name: str) -> Json:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(schemas: Json, params: str, skip: tuple[str, ...] = ()) -> list[Json]:
    """The fields of one of openai's list-params TypedDicts, as query parameters."""
    schema = schemas[params]
    out = []
    for name, prop in schema.get("properties", {}).items():
        if name in skip:
            continue
        if prop.get("type") == "array" or any(p.get("type") == "array" for p in prop.get("anyOf", [])):
            continue  # `include[]`: read from the body of a create, not from a listing's query
        values = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        out.append({"name": name, "in": "query", "required": False, "schema": values[0] if values else prop})
    return out


def _op(op_id: str, summary: str, responses: Json, **extra: Any) -> Json:
    return {"operationId": op_id, "summary": summary, "responses": responses, **extra}


def _paths(schemas: Json) -> Json:
    rid, cid, iid = _path_param("response_id"), _path_param("conversation_id"), _path_param("item_id")
    open_route: list[Json] = []  # no key needed
    paths: Json = {
        "/v1/responses": {
            "post": _op(
                "createResponse",
                "Create a model response (`stream: true` for server-sent events).",
                _ok(_ref("Response"), stream=True),
                requestBody=_json_body(_ref("CreateResponse")),
            ),
        },
        "/v1/responses/input_tokens": {
            "post": _op(
                "countInputTokens",
                "Count the input tokens a create request would use.",
                _ok(_ref("InputTokenCountResponse")),
                requestBody=_json_body(_ref("InputTokenCountParams")),
            ),
        },
        "/v1/responses/compact": {
            "post": _op(
                "compactResponse",
                "Compact a conversation into a shorter input.",
                _ok(_ref("CompactedResponse")),
                requestBody=_json_body(_ref("ResponseCompactParams")),
            ),
        },
        "/v1/responses/{response_id}": {
            "get": _op(
                "getResponse",
                "Retrieve a stored response (`stream=true` replays its events).",
                _ok(_ref("Response"), stream=True),
                parameters=[
                    rid,
                    {"name": "stream", "in": "query", "required": False, "schema": {"type": "boolean"}},
                    {"name": "starting_after", "in": "query", "required": False, "schema": {"type": "integer"}},
                ],
            ),
            "delete": _op(
                "deleteResponse", "Delete a stored response.", _ok(_ref("ResponseDeleted")), parameters=[rid]
            ),
        },
        "/v1/responses/{response_id}/cancel": {
            "post": _op("cancelResponse", "Cancel a background response.", _ok(_ref("Response")), parameters=[rid]),
        },
        "/v1/responses/{response_id}/input_items": {
            "get": _op(
                "listInputItems",
                "The input items of a stored response.",
                _ok(_ref("ResponseItemList")),
                parameters=[rid, *_query(schemas, "InputItemListParams")],
            ),
        },
        "/v1/models": {"get": _op("listModels", "The model names this proxy routes.", _ok(_ref("ModelList")))},
        "/v1/conversations": {
            "post": _op(
                "createConversation",
                "Create a conversation.",
                _ok(_ref("Conversation")),
                requestBody=_json_body(_ref("ConversationCreateParams"), required=False),
            ),
        },
        "/v1/conversations/{conversation_id}": {
            "get": _op("getConversation", "Retrieve a conversation.", _ok(_ref("Conversation")), parameters=[cid]),
            "post": _op(
                "updateConversation",
                "Update a conversation's metadata.",
                _ok(_ref("Conversation")),
                parameters=[cid],
                requestBody=_json_body(_ref("ConversationUpdateParams")),
            ),
            "delete": _op(
                "deleteConversation",
                "Delete a conversation.",
                _ok(_ref("ConversationDeletedResource")),
                parameters=[cid],
            ),
        },
        "/v1/conversations/{conversation_id}/items": {
            "get": _op(
                "listConversationItems",
                "The items of a conversation.",
                _ok(_ref("ConversationItemList")),
                parameters=[cid, *_query(schemas, "ItemListParams")],
            ),
            "post": _op(
                "createConversationItems",
                "Add items to a conversation.",
                _ok(_ref("ConversationItemList")),
                parameters=[cid],
                requestBody=_json_body(_ref("ItemCreateParams")),
            ),
        },
        "/v1/conversations/{conversation_id}/items/{item_id}": {
            "get": _op(
                "getConversationItem",
                "Retrieve one item of a conversation.",
                _ok(_ref("ConversationItem")),
                parameters=[cid, iid],
            ),
            "delete": _op(
                "deleteConversationItem",
                "Delete one item of a conversation.",
                _ok(_ref("Conversation")),
                parameters=[cid, iid],
            ),
        },
        "/health": {
            "get": _op("health", "Each deployment asked for a minimal reply.", _ok(_ref("ManagementResponse")))
        },
        "/health/liveliness": {
            "get": _op("liveliness", "The process answers.", _ok(_ref("Health")), security=open_route),
        },
        "/health/readiness": {
            "get": _op(
                "readiness",
                "The store answers.",
                {
                    **_ok(_ref("Health")),
                    "503": {
                        "description": "The store does not answer.",
                        "content": {"application/json": {"schema": _ref("Health")}},
                    },
                },
                security=open_route,
            ),
        },
        "/openapi.json": {
            "get": _op("openapi", "This document.", _ok({"type": "object"}), security=open_route),
        },
        "/model/info": {"get": _op("modelInfo", "Deployments and their prices.", _ok(_ref("ManagementResponse")))},
    }
    management = _ref("ManagementRequest")
    for kind in ("key", "team", "user"):
        verbs = ["generate" if kind == "key" else "new", "update", "delete"]
        verbs += ["block", "unblock", "regenerate"] if kind == "key" else []
        for verb in verbs:
            paths[f"/{kind}/{verb}"] = {
                "post": _op(
                    f"{kind}_{verb}",
                    f"{verb.capitalize()} a {kind} (master key only).",
                    _ok(_ref("ManagementResponse")),
                    requestBody=_json_body(management, required=False),
                )
            }
        paths[f"/{kind}/info"] = {
            "get": _op(
                f"{kind}_info",
                f"One {kind}.",
                _ok(_ref("ManagementResponse")),
                parameters=[_string_query(f"{kind}_id" if kind != "key" else "key")],
            )
        }
        paths[f"/{kind}/list"] = {"get": _op(f"{kind}_list", f"The {kind}s.", _ok(_ref("ManagementResponse")))}
    paths["/key/{key}/regenerate"] = {
        "post": _op(
            "key_regenerate_path",
            "Regenerate a key named in the path (master key only).",
            _ok(_ref("ManagementResponse")),
            parameters=[_path_param("key")],
            requestBody=_json_body(management, required=False),
        )
    }
    paths["/spend/logs"] = {
        "get": _op(
            "spend_logs",
            "Spend log rows.",
            {**_ok({"type": "array", "items": {"type": "object"}})},
            parameters=[
                _string_query(n)
                for n in ("api_key", "team_id", "user_id", "model", "request_id", "start_date", "end_date")
            ]
            + [
                {
                    "name": "limit",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 1, "maximum": 10_000},
                }
            ],
        )
    }
    paths["/global/spend/report"] = {
        "get": _op(
            "spend_report",
            "Spend grouped by key, team, user, model or day.",
            _ok(_ref("ManagementResponse")),
            parameters=[
                {
                    "name": "group_by",
                    "in": "query",
                    "required": False,
                    "schema": {"enum": ["key", "api_key", "team", "user", "model", "day"]},
                },
                _string_query("start_date"),
                _string_query("end_date"),
            ],
        )
    }
    return paths


def _string_query(name: str) -> Json:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
