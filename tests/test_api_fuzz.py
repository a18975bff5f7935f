"""Schemathesis against a live server: the generated /api/v1/openapi.json, once with a release
manager's token and once with an agent's, then the OFREP endpoints against their own schema
(flags/ofrep_schema.py) with an SDK key.

Bounded (fixed seed, a capped number of examples per operation; about 90 s in all here):
every answer must be no server error, a documented status code and content type, and a body
that conforms to its schema. Afterwards the audit chain verifies and the rows show nothing
half-written. Select these with `-m fuzz`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from django.db.models import Count, Sum
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from approvals.blackouts import blackout_window_create
from approvals.decisions import valid_gos
from approvals.models import ApprovalRequest, BlackoutWindow
from approvals.revisions import preview_hash_of
from approvals.services import approval_request_create
from flags.models import Flag, FlagState
from flags.services import flag_create, flag_state_set, sdk_key_issue
from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, Environment, IdempotencyKey, User
from rollouts.deployments import deployment_register
from rollouts.models import Deployment
from rollouts.services import release_create
from tests.approvals.requestables import FLAG_CHANGE, flag_change_registered

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db(transaction=True)]

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
API_EXAMPLES = 6  # per operation, generation mode and path variant
OFREP_EXAMPLES = 40  # OFREP answers in about a millisecond: more of them for the same time
# Generated text includes NUL: the request middleware must refuse it with a documented 400.
CONFIG = {"generation": {"allow-x00": True, "with-security-parameters": False}}
STATE_ACTIONS = ("flag.state.set", "flag.state.restore", "flag.accept")


@dataclass
class Run:
    """What one fuzzing run sent and what it found."""

    operations: int = 0
    examples: int = 0
    statuses: Counter = field(default_factory=Counter)
    # 409s that refuse and name the request to make instead (recorded as refusals too).
    approval_required: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.operations} operations, {self.examples} examples in {self.seconds:.1f} s, "
            f"statuses {dict(sorted(self.statuses.items()))}, {len(self.failures)} failures"
        )


def fuzz(
    schema: schemathesis.BaseSchema,
    base_url: str,
    headers: dict[str, str],
    path_variants: list[dict[str, Any]],
    examples: int,
) -> Run:
    """Every operation, positive and negative data, with generated path parameters and with
    each of `path_variants` (so requests also reach things that exist)."""
    run = Run()
    started = time.monotonic()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            run.operations += 1
            names = {p.name for p in operation.path_parameters}
            variants: list[dict[str, Any]] = [{}]
            for var in path_variants:
                named = {k: v for k, v in var.items() if k in names}
                if named not in variants:
                    variants.append(named)
            for variant in variants if names else [{}]:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    strategy = operation.as_strategy(generation_mode=mode, path_parameters=variant)
                    try:
                        _send_examples(run, strategy, examples, base_url, session, headers)
                    except Unsatisfiable:  # nothing in this operation can be made invalid
                        assert mode == GenerationMode.NEGATIVE
    run.seconds = time.monotonic() - started
    return run


def _send_examples(
    run: Run,
    strategy: Any,
    examples: int,
    base_url: str,
    session: requests.Session,
    headers: dict[str, str],
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the fixed seed: the same examples every run
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def send(case: schemathesis.Case) -> None:
        run.examples += 1
        try:
            response = case.call_and_validate(
                base_url=base_url, session=session, headers=headers, checks=CHECKS, timeout=30
            )
        except (AssertionError, FailureGroup) as failure:
            run.failures.append(f"{case.operation.label}: {failure}")
            return
        run.statuses[response.status_code] += 1
        if response.status_code == 409 and response.json().get("error") == "approval_required":
            run.approval_required += 1

    send()


def assert_nothing_half_written() -> None:
    report = audit_verify()
    assert report.ok, report
    environments = Environment.objects.count()
    # Every flag has exactly one state per environment, and its creation is recorded.
    assert not Flag.objects.annotate(n=Count("states")).exclude(n=environments).exists()
    created = set(
        AuditEvent.objects.filter(action="flag.create", outcome="ok").values_list(
            "target_id", flat=True
        )
    )
    assert created == {str(pk) for pk in Flag.objects.values_list("pk", flat=True)}
    # Every version a state moved on by is an audited change: its own, or a kill switch's.
    moved = FlagState.objects.aggregate(n=Sum("version"))["n"] - FlagState.objects.count()
    changes = AuditEvent.objects.filter(action__in=STATE_ACTIONS, outcome="ok").count()
    kill_switches = AuditEvent.objects.filter(action="killswitch.engage", outcome="ok")
    turned_off = sum(event.after["turned_off"] for event in kill_switches)
    assert moved == changes + turned_off
    # Each kept idempotent answer belongs to a flag, a request or a window that exists.
    for record in IdempotencyKey.objects.all():
        made = record.response
        assert record.status == 201
        if "key" in made:
            assert Flag.objects.filter(key=made["key"]).exists()
        elif "preview_hash" in made:
            assert ApprovalRequest.objects.filter(pk=made["id"]).exists()
        elif "service" in made:
            assert Deployment.objects.filter(pk=made["id"]).exists()
        else:
            assert BlackoutWindow.objects.filter(pk=made["id"]).exists()
    # Every request's hash is the hash of what it holds, and only valid gos approved it.
    for approval in ApprovalRequest.objects.all():
        assert approval.preview_hash == preview_hash_of(approval, list(approval.checklist.all()))
        if approval.status in ("approved", "executed"):
            assert valid_gos(approval), approval


@pytest.fixture
def fuzz_flags(release_manager, staging, production) -> list[dict[str, str]]:
    """Flags of two types with states worth reaching, and the path parameters naming them."""
    boolean = flag_create(actor=release_manager, key="fuzz-bool", name="Fuzz", tags=["fuzz"])
    flag_create(
        actor=release_manager,
        key="fuzz-string",
        name="Fuzz string",
        type="string",
        on_value="on",
        off_value="off",
    )
    flag_state_set(
        actor=release_manager,
        flag=boolean,
        environment=production,
        mode="percentage",
        percentage=10,
        allowlist=["vip"],
        reason="canary",
    )
    flag_state_set(actor=release_manager, flag=boolean, environment=staging, mode="full")
    return [
        {"key": "fuzz-bool", "environment": "staging"},
        {"key": "fuzz-bool", "environment": "production"},
        {"key": "fuzz-string", "environment": "development"},
    ]


@pytest.fixture
def fuzz_approvals(fuzz_flags, developer, release_manager, production) -> list[dict[str, Any]]:
    """A developer's request (a test-only requestable action changing fuzz-bool) and a
    blackout window, and the path parameters naming them."""
    with flag_change_registered(FLAG_CHANGE, schedulable=True):
        approval = approval_request_create(
            actor=developer,
            environment=production,
            action=FLAG_CHANGE,
            parameters={"flag": "fuzz-bool", "mode": "full"},
            title="Fuzz everyone",
        )
        window = blackout_window_create(
            actor=release_manager,
            environment=production,
            weekly={"day": "sat", "start": "00:00", "end_day": "sun", "end": "23:59"},
            reason="Fuzz weekend",
        )
        item = approval.checklist.first()
        deployment = deployment_register(
            actor=developer,
            environment=Environment.objects.get(slug="staging"),
            service="fuzz-api",
            version="1.0.0",
            commit="9f1c2ab",
            commit_time=timezone.now(),
            artifact="sha256:" + "ab" * 32,
            checklist="none",
        )
        release = release_create(
            actor=release_manager,
            name="fuzz-release",
            version="1.0",
            environment=Environment.objects.get(slug="staging"),
            flags=[Flag.objects.get(key="fuzz-bool")],
            plan="five-stage",
            gates=[{"name": "errors", "metric": "error_rate", "threshold": 5}],
        )
        yield [
            *fuzz_flags,
            {"id": approval.pk, "item": item.pk},
            {"id": window.pk},
            {"id": deployment.pk},
            {"id": release.pk},
        ]


@pytest.mark.parametrize("who", ["release_manager", "agent"])
def test_api_fuzz__generated_openapi__no_server_error_every_answer_documented(
    request, live_server, api_token_for, fuzz_approvals, who
):
    user: User = request.getfixturevalue(who)
    token = api_token_for(user)
    schema = schemathesis.openapi.from_url(
        f"{live_server.url}/api/v1/openapi.json", config=schemathesis.Config.from_dict(CONFIG)
    )

    run = fuzz(
        schema, live_server.url, {"Authorization": f"Bearer {token}"}, fuzz_approvals, API_EXAMPLES
    )

    print(f"\n/api/v1 as {who}: {run.summary()}")
    assert not run.failures, "\n\n".join(run.failures[:10])
    assert run.operations == 42 and run.examples >= 600
    assert run.statuses[200] and run.statuses[400] and run.statuses[404]
    if who == "agent":
        assert run.statuses[403], "an agent is refused production changes"
    assert_nothing_half_written()
    denials = AuditEvent.objects.filter(outcome="denied", actor_name=user.username).count()
    refusals = run.statuses[403] + run.approval_required
    assert denials == refusals, "every refusal answered is a refusal recorded"


def test_ofrep_fuzz__own_schema__no_server_error_every_answer_documented(
    live_server, release_manager, production, fuzz_flags
):
    from flags.ofrep_schema import ofrep_openapi

    key = sdk_key_issue(actor=User.system(), environment=production).raw
    schema = schemathesis.openapi.from_dict(
        ofrep_openapi(), config=schemathesis.Config.from_dict(CONFIG)
    )

    run = fuzz(
        schema, live_server.url, {"Authorization": f"Bearer {key}"}, fuzz_flags, OFREP_EXAMPLES
    )

    print(f"\nOFREP: {run.summary()}")
    assert not run.failures, "\n\n".join(run.failures[:10])
    assert run.operations == 2 and run.examples >= 300
    assert run.statuses[200] and run.statuses[400] and run.statuses[404]
    assert_nothing_half_written()
