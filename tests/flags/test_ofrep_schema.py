"""The OFREP endpoints' own OpenAPI schema (flags/ofrep_schema.py) is valid OpenAPI 3.1 and
describes the paths that answer OFREP."""

from __future__ import annotations

import openapi_spec_validator
from django.urls import resolve

from flags.ofrep_schema import ofrep_openapi


def test_ofrep_schema__document__valid_openapi_3_1():
    openapi_spec_validator.validate(ofrep_openapi())


def test_ofrep_schema__paths__routed_to_the_ofrep_views():
    for path in ofrep_openapi()["paths"]:
        match = resolve(path.replace("{key}", "new-checkout"))
        assert match.url_name.startswith("ofrep_evaluate_flag")


def test_ofrep_schema__answers__success_and_error_bodies_as_the_protocol_says():
    schemas = ofrep_openapi()["components"]["schemas"]
    assert schemas["EvaluationSuccess"]["required"] == [
        "key",
        "value",
        "variant",
        "reason",
        "metadata",
    ]
    for name in ("EvaluationFailure", "GeneralError"):
        assert {"errorCode", "errorDetails"} <= set(schemas[name]["required"])


def test_ofrep_schema__copy__changing_it_leaves_the_next_one_whole():
    ofrep_openapi()["paths"].clear()
    assert len(ofrep_openapi()["paths"]) == 2
