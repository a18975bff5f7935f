"""The OpenAPI 3.1 document of /api/v1 (and, for completeness, the OFREP paths), served at
/api/v1/openapi.json.

Written by hand as data: the handlers in flags/api.py check their JSON by hand too, so
there is no serializer to generate it from. tests/flags/test_openapi.py walks the URL
resolver and fails when a route under /api/v1 is missing here, or a documented one is
gone, and validates the document against the OpenAPI 3.1 schema.
"""

from __future__ import annotations

from typing import Any

MODES = ["off", "shadow", "allowlist", "percentage", "full"]
FLAG_TYPES = ["boolean", "string", "integer", "float", "object"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"application/json": media}


def _ok(description: str, schema_name: str, example: Any = None) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref(schema_name), example)}


def _errors(*statuses: int) -> dict[str, Any]:
    names = {
        400: "BadRequest",
        401: "Unauthenticated",
        403: "Forbidden",
        404: "NotFound",
        405: "MethodNotAllowed",
        409: "Conflict",
    }
    return {str(status): {"$ref": f"#/components/responses/{names[status]}"} for status in statuses}


def _body(schema_name: str, example: Any, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _json(_ref(schema_name), example)}


FLAG_KEY = {"$ref": "#/components/parameters/FlagKey"}
ENVIRONMENT = {"$ref": "#/components/parameters/Environment"}

STATE_EXAMPLE = {
    "mode": "percentage",
    "percentage": 10,
    "allowlist": ["user-1"],
    "version": 3,
    "updated_at": "2025-06-02T09:14:07.123456+00:00",
    "updated_by": "rita",
}
FLAG_EXAMPLE = {
    "key": "new-checkout",
    "name": "New checkout",
    "description": "",
    "tags": ["payments"],
    "type": "boolean",
    "on_value": True,
    "off_value": False,
    "archived": False,
    "owner": "ci-bot",
    "created_at": "2025-06-01T08:00:00.000000+00:00",
    "environments": {
        "development": {
            "mode": "full",
            "percentage": 0,
            "allowlist": [],
            "version": 2,
            "updated_at": "2025-06-01T08:05:00.000000+00:00",
            "updated_by": "ci-bot",
            "kill_switch": None,
        },
        "staging": {
            "mode": "off",
            "percentage": 0,
            "allowlist": [],
            "version": 1,
            "updated_at": None,
            "updated_by": None,
            "kill_switch": None,
        },
        "production": {**STATE_EXAMPLE, "kill_switch": None},
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "description": "Every error: a stable code and a sentence that says what to fix.",
        "required": ["error", "detail"],
        "properties": {
            "error": {
                "type": "string",
                "description": "Machine-readable code, e.g. invalid, unknown_field, "
                "invalid_json, unauthenticated, forbidden, not_found, method_not_allowed, "
                "stale, kill_switch_engaged, approval_required, flag_exists, not_restorable.",
            },
            "detail": {"type": "string"},
        },
    },
    "StaleError": {
        "description": "409 for an edit made against an older version: who changed it, and "
        "the state now, so the caller can decide again.",
        "allOf": [
            _ref("Error"),
            {
                "type": "object",
                "required": ["updated_by", "current"],
                "properties": {
                    "error": {"const": "stale"},
                    "updated_by": {"type": "string"},
                    "current": _ref("StateValue"),
                },
            },
        ],
    },
    "StateValue": {
        "type": "object",
        "required": ["mode", "percentage", "allowlist", "version"],
        "properties": {
            "mode": {"type": "string", "enum": MODES},
            "percentage": {"type": "integer", "minimum": 0, "maximum": 100},
            "allowlist": {"type": "array", "items": {"type": "string"}},
            "version": {
                "type": "integer",
                "minimum": 1,
                "description": "Send it back with a change; a stale one answers 409.",
            },
        },
    },
    "State": {
        "description": "A flag's state in one environment. Never changed: off, version 1.",
        "allOf": [
            _ref("StateValue"),
            {
                "type": "object",
                "required": ["updated_at", "updated_by"],
                "properties": {
                    "updated_at": _nullable({"type": "string", "format": "date-time"}),
                    "updated_by": _nullable({"type": "string"}),
                },
            },
        ],
    },
    "EnvironmentState": {
        "allOf": [
            _ref("State"),
            {
                "type": "object",
                "required": ["kill_switch"],
                "properties": {
                    "kill_switch": _nullable(_ref("KillSwitch")),
                },
            },
        ],
    },
    "ChangedState": {
        "allOf": [
            _ref("State"),
            {
                "type": "object",
                "required": ["flag", "environment"],
                "properties": {
                    "flag": {"type": "string"},
                    "environment": {"type": "string"},
                },
            },
        ],
    },
    "RestoredState": {
        "allOf": [
            _ref("ChangedState"),
            {
                "type": "object",
                "required": ["restored_from"],
                "properties": {"restored_from": {"type": "integer"}},
            },
        ],
    },
    "KillSwitch": {
        "type": "object",
        "description": "An engaged kill switch: only changes that reduce exposure pass.",
        "required": ["id", "scope", "subject", "engaged_at", "engaged_by", "reason"],
        "properties": {
            "id": {"type": "integer"},
            "scope": {"type": "string", "enum": ["flag", "tag", "environment"]},
            "subject": {"type": "string"},
            "engaged_at": {"type": "string", "format": "date-time"},
            "engaged_by": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    "Flag": {
        "type": "object",
        "required": [
            "key",
            "name",
            "description",
            "tags",
            "type",
            "on_value",
            "off_value",
            "archived",
            "environments",
        ],
        "properties": {
            "key": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "type": {"type": "string", "enum": FLAG_TYPES},
            "on_value": {"description": "A value of the flag's type."},
            "off_value": {"description": "A value of the flag's type."},
            "archived": {"type": "boolean"},
            "owner": _nullable({"type": "string"}),
            "created_at": {"type": "string", "format": "date-time"},
            "environments": {
                "type": "object",
                "description": "Slug -> state, in promotion order.",
                "additionalProperties": _ref("EnvironmentState"),
            },
        },
    },
    "FlagCreate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["key"],
        "properties": {
            "key": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$", "maxLength": 100},
            "name": {"type": "string", "maxLength": 200, "description": "Defaults to the key."},
            "description": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "type": {"type": "string", "enum": FLAG_TYPES, "default": "boolean"},
            "on_value": {
                "description": "Defaults to true for boolean flags; required for other types."
            },
            "off_value": {
                "description": "Defaults to false for boolean flags; required for other types."
            },
        },
    },
    "FlagPage": {
        "type": "object",
        "required": ["count", "page", "page_size", "pages", "next", "previous", "results"],
        "properties": {
            "count": {"type": "integer"},
            "page": {"type": "integer"},
            "page_size": {"type": "integer"},
            "pages": {"type": "integer"},
            "next": _nullable({"type": "integer"}),
            "previous": _nullable({"type": "integer"}),
            "results": {"type": "array", "items": _ref("Flag")},
        },
    },
    "StatePatch": {
        "type": "object",
        "additionalProperties": False,
        "description": "Omitted (or null) fields keep their values.",
        "properties": {
            "mode": {"type": "string", "enum": MODES},
            "percentage": {"type": "integer", "minimum": 0, "maximum": 100},
            "allowlist": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "version": {
                "type": "integer",
                "minimum": 1,
                "description": "The version you read. Omit it only to overwrite whatever is "
                "there now.",
            },
            "reason": {"type": "string", "description": "Required in production."},
        },
    },
    "RestoreRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["event_id"],
        "properties": {
            "event_id": {
                "type": "integer",
                "description": "An audit event from GET /api/v1/flags/{key}/history: a "
                "change of this flag here, or a kill switch that turned it off.",
            },
            "side": {
                "type": "string",
                "enum": ["before", "after"],
                "description": "Which state of a change to bring back (default: after). A "
                "kill switch event only has its before.",
            },
            "version": {"type": "integer", "minimum": 1},
            "reason": {"type": "string", "description": "Required in production."},
        },
    },
    "RollbackRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "minLength": 1}},
    },
    "RollbackResult": {
        "type": "object",
        "required": ["environment", "already_rolled_back", "turned_off", "kill_switch", "detail"],
        "properties": {
            "environment": {"type": "string"},
            "already_rolled_back": {
                "type": "boolean",
                "description": "True when the environment kill switch was already engaged: "
                "nothing was changed by this call.",
            },
            "turned_off": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["flag", "before"],
                    "properties": {"flag": {"type": "string"}, "before": _ref("StateValue")},
                },
            },
            "kill_switch": _ref("KillSwitch"),
            "detail": {"type": "string"},
        },
    },
    "AuditEvent": {
        "type": "object",
        "required": ["id", "created_at", "actor", "action", "outcome", "environment"],
        "properties": {
            "id": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "actor": {"type": "string"},
            "actor_kind": {"type": "string", "enum": ["human", "agent", "system"]},
            "action": {"type": "string"},
            "outcome": {"type": "string", "enum": ["ok", "denied"]},
            "environment": _nullable({"type": "string"}),
            "before": {},
            "after": {},
            "reason": {"type": "string"},
        },
    },
    "FlagHistory": {
        "type": "object",
        "required": ["flag", "events"],
        "properties": {
            "flag": {"type": "string"},
            "events": {"type": "array", "items": _ref("AuditEvent")},
        },
    },
    "Me": {
        "type": "object",
        "required": ["username", "kind", "roles"],
        "properties": {
            "username": {"type": "string"},
            "kind": {"type": "string", "enum": ["human", "agent"]},
            "roles": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["role", "environment"],
                    "properties": {
                        "role": {
                            "type": "string",
                            "enum": ["release_manager", "oncall", "developer", "auditor", "agent"],
                        },
                        "environment": {"type": "string"},
                    },
                },
            },
        },
    },
    # OFREP (https://github.com/open-feature/protocol), as this server answers it.
    "EvaluationRequest": {
        "type": "object",
        "properties": {
            "context": {
                "type": "object",
                "properties": {"targetingKey": {"type": "string"}},
                "additionalProperties": True,
            }
        },
    },
    "EvaluationSuccess": {
        "type": "object",
        "required": ["key", "value", "variant", "reason"],
        "properties": {
            "key": {"type": "string"},
            "value": {},
            "variant": {"type": "string", "enum": ["on", "off"]},
            "reason": {
                "type": "string",
                "enum": ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT"],
            },
            "metadata": {"type": "object", "additionalProperties": True},
        },
    },
    "EvaluationFailure": {
        "type": "object",
        "required": ["key", "errorCode"],
        "properties": {
            "key": {"type": "string"},
            "errorCode": {
                "type": "string",
                "enum": [
                    "FLAG_NOT_FOUND",
                    "PARSE_ERROR",
                    "TARGETING_KEY_MISSING",
                    "INVALID_CONTEXT",
                    "GENERAL",
                ],
            },
            "errorDetails": {"type": "string"},
        },
    },
    "BulkEvaluation": {
        "type": "object",
        "required": ["flags"],
        "properties": {
            "flags": {
                "type": "array",
                "items": {"anyOf": [_ref("EvaluationSuccess"), _ref("EvaluationFailure")]},
            }
        },
    },
}


def _error_response(description: str, example: dict[str, str]) -> dict[str, Any]:
    return {"description": description, "content": _json(_ref("Error"), example)}


RESPONSES: dict[str, Any] = {
    "BadRequest": _error_response(
        "The request cannot be understood as sent; `detail` says what to fix.",
        {"error": "invalid", "detail": "percentage: must be from 0 to 100"},
    ),
    "Unauthenticated": {
        **_error_response(
            "No valid personal API token.",
            {
                "error": "unauthenticated",
                "detail": "Send a valid personal API token: Authorization: Bearer <token>.",
            },
        ),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "Forbidden": _error_response(
        "The policy refused; the refusal is recorded in the audit trail.",
        {
            "error": "forbidden",
            "detail": "Refused: agent accounts may prepare and request production changes, "
            "never execute them.",
        },
    ),
    "NotFound": _error_response(
        "No such flag, environment, audit event or page.",
        {"error": "not_found", "detail": "No flag 'new-checkout'"},
    ),
    "MethodNotAllowed": {
        **_error_response(
            "The path exists; the method does not.",
            {"error": "method_not_allowed", "detail": "Use GET here."},
        ),
        "headers": {"Allow": {"schema": {"type": "string"}}},
    },
    "Conflict": {
        "description": "The change cannot be made as asked: a stale version (error `stale`, "
        "with `updated_by` and `current`), an engaged kill switch (`kill_switch_engaged`), "
        "an environment that requires approval for increases (`approval_required`), or a "
        "flag key already taken (`flag_exists`).",
        "content": _json(
            {"anyOf": [_ref("StaleError"), _ref("Error")]},
            {
                "error": "kill_switch_engaged",
                "detail": "The every flag in the environment kill switch (every flag) in "
                "production is engaged by omar: only changes that reduce exposure are allowed "
                "until someone releases it.",
            },
        ),
    },
}

PATHS: dict[str, Any] = {
    "/api/v1/openapi.json": {
        "get": {
            "operationId": "openapi",
            "tags": ["meta"],
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI 3.1 document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
    "/api/v1/me": {
        "get": {
            "operationId": "me",
            "tags": ["account"],
            "summary": "Who the token belongs to, and the roles it holds where",
            "responses": {
                "200": _ok(
                    "The account.",
                    "Me",
                    {
                        "username": "ci-bot",
                        "kind": "agent",
                        "roles": [
                            {"role": "agent", "environment": "development"},
                            {"role": "agent", "environment": "staging"},
                        ],
                    },
                ),
                **_errors(401, 405),
            },
        }
    },
    "/api/v1/flags": {
        "get": {
            "operationId": "flagList",
            "tags": ["flags"],
            "summary": "Flags with their state in every environment, a page at a time",
            "parameters": [
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                {
                    "name": "page_size",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                },
                {
                    "name": "tag",
                    "in": "query",
                    "description": "Only flags with this tag.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "search",
                    "in": "query",
                    "description": "Case-insensitive match on key, name or description.",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": _ok(
                    "A page of flags, ordered by key.",
                    "FlagPage",
                    {
                        "count": 1,
                        "page": 1,
                        "page_size": 100,
                        "pages": 1,
                        "next": None,
                        "previous": None,
                        "results": [FLAG_EXAMPLE],
                    },
                ),
                **_errors(400, 401, 404, 405),
            },
        },
        "post": {
            "operationId": "flagCreate",
            "tags": ["flags"],
            "summary": "Create a flag (off in every environment)",
            "requestBody": _body(
                "FlagCreate",
                {
                    "key": "new-checkout",
                    "name": "New checkout",
                    "description": "",
                    "tags": ["payments"],
                    "type": "boolean",
                    "on_value": True,
                    "off_value": False,
                },
            ),
            "responses": {
                "201": _ok("The new flag.", "Flag"),
                **_errors(400, 401, 403, 405, 409),
            },
        },
    },
    "/api/v1/flags/{key}": {
        "parameters": [FLAG_KEY],
        "get": {
            "operationId": "flagGet",
            "tags": ["flags"],
            "summary": "One flag with its state in every environment",
            "responses": {
                "200": _ok("The flag.", "Flag", FLAG_EXAMPLE),
                **_errors(401, 404, 405),
            },
        },
    },
    "/api/v1/flags/{key}/history": {
        "parameters": [FLAG_KEY],
        "get": {
            "operationId": "flagHistory",
            "tags": ["flags"],
            "summary": "The flag's audit events, newest first (ids to restore from)",
            "parameters": [
                {
                    "name": "environment",
                    "in": "query",
                    "description": "Only events in this environment.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                },
            ],
            "responses": {
                "200": _ok("The events.", "FlagHistory"),
                **_errors(400, 401, 404, 405),
            },
        },
    },
    "/api/v1/flags/{key}/environments/{environment}": {
        "parameters": [FLAG_KEY, ENVIRONMENT],
        "get": {
            "operationId": "flagStateGet",
            "tags": ["flags"],
            "summary": "The flag's state in one environment",
            "responses": {
                "200": _ok("The state.", "ChangedState"),
                **_errors(401, 404, 405),
            },
        },
        "patch": {
            "operationId": "flagStateSet",
            "tags": ["flags"],
            "summary": "Change the flag's state in one environment",
            "description": "Omitted fields keep their values. In percentage mode allowlisted "
            "keys are on and the rest are bucketed. Production needs a reason, and "
            "developers and agents are refused there (403, recorded in the audit trail).",
            "requestBody": _body(
                "StatePatch",
                {
                    "mode": "percentage",
                    "percentage": 10,
                    "allowlist": ["user-1"],
                    "version": 2,
                    "reason": "Start the production rollout",
                },
            ),
            "responses": {
                "200": _ok(
                    "The new state.",
                    "ChangedState",
                    {"flag": "new-checkout", "environment": "production", **STATE_EXAMPLE},
                ),
                **_errors(400, 401, 403, 404, 405, 409),
            },
        },
    },
    "/api/v1/flags/{key}/environments/{environment}/restore": {
        "parameters": [FLAG_KEY, ENVIRONMENT],
        "post": {
            "operationId": "flagStateRestore",
            "tags": ["flags"],
            "summary": "Bring back a state recorded in the audit trail, as a new change",
            "requestBody": _body(
                "RestoreRequest",
                {"event_id": 41, "version": 4, "reason": "Back to 10% after the rollback"},
            ),
            "responses": {
                "200": _ok("The restored state.", "RestoredState"),
                **_errors(400, 401, 403, 404, 405, 409),
            },
        },
    },
    "/api/v1/environments/{environment}/rollback": {
        "parameters": [ENVIRONMENT],
        "post": {
            "operationId": "environmentRollback",
            "tags": ["environments"],
            "summary": "Engage the environment kill switch: every flag off, increases refused",
            "description": "Idempotent: while the kill switch is engaged, another call "
            "changes nothing and says so (already_rolled_back). On-call and release "
            "managers only; never agents.",
            "requestBody": _body("RollbackRequest", {"reason": "Checkout errors at 4%"}),
            "responses": {
                "200": _ok("What was turned off.", "RollbackResult"),
                **_errors(400, 401, 403, 404, 405),
            },
        },
    },
    # OFREP: authorised by an environment's SDK key, not a personal token.
    "/ofrep/v1/evaluate/flags/{key}": {
        "parameters": [FLAG_KEY],
        "post": {
            "operationId": "ofrepEvaluateFlag",
            "tags": ["ofrep"],
            "summary": "Evaluate one flag (OpenFeature Remote Evaluation Protocol)",
            "security": [{"sdkKey": []}, {"sdkKeyHeader": []}],
            "requestBody": {
                "required": True,
                "content": _json(
                    _ref("EvaluationRequest"), {"context": {"targetingKey": "user-42"}}
                ),
            },
            "responses": {
                "200": _ok(
                    "The evaluation.",
                    "EvaluationSuccess",
                    {
                        "key": "new-checkout",
                        "value": True,
                        "variant": "on",
                        "reason": "SPLIT",
                        "metadata": {},
                    },
                ),
                "400": _ok("Bad context.", "EvaluationFailure"),
                "401": {"description": "No valid SDK key."},
                "404": _ok("No such flag.", "EvaluationFailure"),
                "429": {
                    "description": "Rate limited (only when a limit is configured).",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                },
            },
        },
    },
    "/ofrep/v1/evaluate/flags": {
        "post": {
            "operationId": "ofrepEvaluateFlags",
            "tags": ["ofrep"],
            "summary": "Evaluate every flag of the key's environment",
            "security": [{"sdkKey": []}, {"sdkKeyHeader": []}],
            "parameters": [{"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}],
            "requestBody": {
                "required": True,
                "content": _json(_ref("EvaluationRequest")),
            },
            "responses": {
                "200": {
                    "description": "Every flag's evaluation.",
                    "headers": {"ETag": {"schema": {"type": "string"}}},
                    "content": _json(_ref("BulkEvaluation")),
                },
                "304": {"description": "Unchanged since the ETag sent in If-None-Match."},
                "400": _ok("Bad context.", "EvaluationFailure"),
                "401": {"description": "No valid SDK key."},
                "429": {
                    "description": "Rate limited (only when a limit is configured).",
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                },
            },
        },
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Release Control API",
        "version": "1",
        "summary": "Flags, their state per environment, rollback, for agents and scripts.",
        "description": "Authenticate with a personal API token (`manage.py issue_token NAME`): "
        "`Authorization: Bearer <token>`. Every write goes through the same policy and audit "
        'trail as the web pages. Errors are `{"error": code, "detail": text}`.',
    },
    "servers": [{"url": "/"}],
    "security": [{"personalToken": []}],
    "tags": [
        {"name": "flags", "description": "Feature flags and their state per environment."},
        {"name": "environments", "description": "Environment-wide actions."},
        {"name": "account", "description": "The token's account."},
        {"name": "meta", "description": "This document."},
        {
            "name": "ofrep",
            "description": "OpenFeature Remote Evaluation Protocol, for services reading "
            "flags with an environment SDK key (`manage.py issue_sdk_key ENVIRONMENT`).",
        },
    ],
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "personalToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "A personal API token from `manage.py issue_token NAME`.",
            },
            "sdkKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "An environment SDK key from `manage.py issue_sdk_key ENV`.",
            },
            "sdkKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
        "parameters": {
            "FlagKey": {
                "name": "key",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
            },
            "Environment": {
                "name": "environment",
                "in": "path",
                "required": True,
                "description": "Environment slug: development, staging, production...",
                "schema": {"type": "string"},
            },
        },
        "schemas": SCHEMAS,
        "responses": RESPONSES,
    },
}


def openapi_document() -> dict[str, Any]:
    return OPENAPI
