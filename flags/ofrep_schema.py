"""The OpenAPI 3.1 description of the OFREP endpoints as this server answers them
(https://github.com/open-feature/protocol): `POST /ofrep/v1/evaluate/flags/{key}` and
`POST /ofrep/v1/evaluate/flags`, authorised by an environment's SDK key.

OFREP is served by its own fast path (flags/ofrep.py), not by the django-ninja API, so its
schema is written here as data, small enough to read in one go. tests/flags/test_ofrep_schema.py
validates it and tests/test_api_fuzz.py holds the server to it.
"""

from __future__ import annotations

import copy
from typing import Any

REASONS = ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "DEFAULT"]
ERROR_CODES = [
    "FLAG_NOT_FOUND",
    "PARSE_ERROR",
    "TARGETING_KEY_MISSING",
    "INVALID_CONTEXT",
    "GENERAL",
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(name)}},
        **extra,
    }


RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}

SCHEMAS: dict[str, Any] = {
    "EvaluationRequest": {
        "type": "object",
        "properties": {
            "context": {
                "type": "object",
                "description": "The evaluation context; only targetingKey decides an answer.",
                "properties": {"targetingKey": {"type": "string"}},
                "additionalProperties": True,
            }
        },
    },
    "EvaluationSuccess": {
        "type": "object",
        "required": ["key", "value", "variant", "reason", "metadata"],
        "properties": {
            "key": {"type": "string"},
            "value": {"description": "The on- or off-value: any JSON of the flag's type."},
            "variant": {"type": "string", "enum": ["on", "off"]},
            "reason": {"type": "string", "enum": REASONS},
            "metadata": {
                "type": "object",
                "description": "shadow: true in shadow mode; killSwitch: true while the "
                "environment kill switch is engaged.",
                "properties": {"shadow": {"type": "boolean"}, "killSwitch": {"type": "boolean"}},
                "additionalProperties": {"type": ["boolean", "string", "number"]},
            },
        },
        "additionalProperties": False,
    },
    "EvaluationFailure": {
        "type": "object",
        "required": ["key", "errorCode", "errorDetails"],
        "properties": {
            "key": {"type": "string"},
            "errorCode": {"type": "string", "enum": ERROR_CODES},
            "errorDetails": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "GeneralError": {
        "type": "object",
        "required": ["errorCode", "errorDetails"],
        "properties": {
            "key": {"type": "string"},
            "errorCode": {"type": "string", "enum": ERROR_CODES},
            "errorDetails": {"type": "string"},
        },
        "additionalProperties": False,
    },
    "BulkEvaluation": {
        "type": "object",
        "required": ["flags"],
        "properties": {
            "flags": {
                "type": "array",
                "items": {"oneOf": [_ref("EvaluationSuccess"), _ref("EvaluationFailure")]},
            }
        },
        "additionalProperties": False,
    },
}

SECURITY = [{"sdkKey": []}, {"sdkKeyHeader": []}]
REQUEST_BODY = {
    "required": False,
    "content": {"application/json": {"schema": _ref("EvaluationRequest")}},
}
COMMON_ERRORS = {
    "400": _json(
        "GeneralError",
        "The body or its context cannot be used (PARSE_ERROR, INVALID_CONTEXT), or a targeted "
        "flag got no targeting key (TARGETING_KEY_MISSING, with the flag's key).",
    ),
    "401": _json("GeneralError", "No valid SDK key."),
    "429": _json(
        "GeneralError",
        "Over the configured rate (Retry-After, whole seconds).",
        headers=RETRY_AFTER,
    ),
}

OFREP_OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Release Control OFREP",
        "version": "1",
        "summary": "OpenFeature Remote Evaluation Protocol, for services reading flags.",
    },
    "paths": {
        "/ofrep/v1/evaluate/flags/{key}": {
            "post": {
                "operationId": "ofrepEvaluateFlag",
                "summary": "Evaluate one flag for one context",
                "security": SECURITY,
                "parameters": [
                    {
                        "name": "key",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                    }
                ],
                "requestBody": REQUEST_BODY,
                "responses": {
                    "200": _json("EvaluationSuccess", "The evaluation."),
                    **COMMON_ERRORS,
                    "404": _json("EvaluationFailure", "No such flag here (FLAG_NOT_FOUND)."),
                },
            }
        },
        "/ofrep/v1/evaluate/flags": {
            "post": {
                "operationId": "ofrepEvaluateFlags",
                "summary": "Evaluate every flag of the key's environment (ETag)",
                "security": SECURITY,
                "parameters": [
                    {"name": "If-None-Match", "in": "header", "schema": {"type": "string"}}
                ],
                "requestBody": REQUEST_BODY,
                "responses": {
                    "200": _json(
                        "BulkEvaluation",
                        "Every flag's evaluation, by key.",
                        headers={"ETag": {"schema": {"type": "string"}}},
                    ),
                    "304": {"description": "Unchanged since the ETag sent in If-None-Match."},
                    **COMMON_ERRORS,
                },
            }
        },
    },
    "components": {
        "securitySchemes": {
            "sdkKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "An environment SDK key (`manage.py issue_sdk_key ENVIRONMENT`).",
            },
            "sdkKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        },
        "schemas": SCHEMAS,
    },
}


def ofrep_openapi() -> dict[str, Any]:
    """A copy: callers (tools, tests) may change theirs."""
    return copy.deepcopy(OFREP_OPENAPI)
