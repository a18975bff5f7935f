"""Auditors read and export everything and change nothing.

The test walks EVERY URL pattern of the project (django.urls.get_resolver, recursively),
fills its URL kwargs with real objects, and tries each mutating method as a signed-in
auditor (session for pages, a personal API token for /api/...). It asserts each attempt is
refused and that no domain row changed; the only events the trail may gain are the
auditor's refusals and exports. A URL whose kwargs the test cannot fill fails loudly with
its name, so a new URL is covered the day it is added (or the test says what to teach it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from axes.models import AccessFailureLog
from django.apps import apps
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from guardian.models import GroupObjectPermission, UserObjectPermission

from approvals.models import ApprovalRequest, BlackoutWindow, ChecklistItem, Decision, PostReview
from flags import services as flag_services
from flags.models import Flag, FlagState, KillSwitch, SdkKey, Tag
from releasecontrol.models import (
    ApiToken,
    AuditEvent,
    Environment,
    Outcome,
    RoleGrant,
    User,
)
from tests.approvals.requestables import FLAG_CHANGE, flag_change_registered
from tests.factories import PASSWORD, MonitorHeartbeatFactory

pytestmark = pytest.mark.django_db(transaction=True)

MUTATING_METHODS = ("POST", "PUT", "PATCH", "DELETE")

# Every row an auditor could conceivably change, with the columns that move on their own
# when someone merely signs in or uses a token (not a change the auditor made).
WATCHED: dict[type[Model], tuple[str, ...]] = {
    Flag: (),
    FlagState: (),
    KillSwitch: (),
    Tag: (),
    SdkKey: (),
    Environment: (),
    RoleGrant: (),
    ApiToken: ("last_used_at",),
    User: ("last_login",),
    Group: (),
    UserObjectPermission: (),
    GroupObjectPermission: (),
    ApprovalRequest: (),
    ChecklistItem: (),
    Decision: (),
    PostReview: (),
    BlackoutWindow: (),
}

# Account self-service: these act on the signed-in person's own session or password (sign
# in, sign out, change or reset one's own password), never on the release domain. They are
# walked like every other URL and must leave the domain unchanged, but they are not refused.
SELF_SERVICE = {
    "login",
    "logout",
    "password_change",
    "password_reset",
    "password_reset_confirm",
    "admin:login",
    "admin:logout",
}
# The auditor's own evidence work: verifying the chain and building an incident pack read
# the trail (they are authorized like an export and recorded as audit.verify / audit.pack);
# they may create a verification record or a zip, never touch the release domain.
AUDITOR_WORK = {"audit:verify", "audit:packs"}
AUDITOR_EVENTS = {"audit.export", "audit.verify", "audit.pack"}
# OFREP evaluates flags with POST (the protocol reads through POST bodies) and answers only
# SDK keys: an auditor's session is unauthenticated there.
READ_BY_POST = {"ofrep_evaluate_flags", "ofrep_evaluate_flag"}
# Under /api/ where no endpoint is: a JSON 404 whatever the method.
API_NOT_FOUND = {"api_root", "api_not_found"}
# Executing a request answers its state first (409: not approved) and then asks the policy
# about the requested action itself; the request page says so before anyone clicks.
STATE_BEFORE_POLICY = {"approvals:execute"}

# What an auditor's GET answers when it is neither 200 nor "nothing to GET here" (a 405
# whose Allow header leaves GET out), and why. The admin's pages send non-staff to its
# sign-in (302) except that sign-in page itself.
GET_NOT_200: dict[str, tuple[int, str]] = {
    "flags:state_cell": (302, "a cell alone is an htmx partial; a plain GET goes to the flag"),
    "password_reset_confirm": (302, "a valid reset link moves its token into the session"),
    "admin:login": (200, "the admin's sign-in page, saying they are not staff"),
    "api_root": (404, "no endpoint at /api: the API's JSON 404"),
    "api_not_found": (404, "no endpoint there: the API's JSON 404"),
    "approval_request_new": (403, "making a request: auditors request nothing"),
    "flags:state_request": (403, "the request editor's submit: auditors request nothing"),
    "rollouts:oncall_index": (302, "the nav's link: to the last environment's on-call page"),
}
# POSTs that change nothing but lead to a page that would: they answer 303 to it, and that
# page refuses (approval_request_new above).
PREPARES_A_REQUEST = {"rollouts:rollback_restore_request"}

# The mutations the domain has today: the walk must reach each and see the policy refuse it
# (so it cannot pass by bouncing every request on a bad body).
KNOWN_MUTATIONS = {
    ("approvals:decide", "POST"),
    ("approvals:checklist_set", "POST"),
    ("approvals:post_review_close", "POST"),
    ("approvals:blackout_create", "POST"),
    ("approvals:blackout_delete", "POST"),
    ("flags:create", "POST"),
    ("flags:kill_switch_engage", "POST"),
    ("flags:kill_switch_release", "POST"),
    ("flags:state_set", "POST"),
    ("flags:state_restore", "POST"),
    ("api:flags", "POST"),
    ("api:flag_state", "PATCH"),
    ("api:flag_state_restore", "POST"),
    ("api:environment_rollback", "POST"),
    ("rollouts:oncall_rollback", "POST"),
    ("rollouts:oncall_partial", "POST"),
    ("api:flag_accept", "POST"),
    ("approval_request_new", "POST"),
    ("api:approvals", "POST"),
    ("api:approval", "PATCH"),
    ("api:approval_checklist_item", "PATCH"),
    ("api:approval_decisions", "POST"),
    ("api:approval_execute", "POST"),
    ("api:approval_cancel", "POST"),
    ("api:approval_post_review", "POST"),
    ("api:environment_blackouts", "POST"),
    ("api:blackout", "DELETE"),
}
KNOWN_REFUSED_ACTIONS = {
    "approval.request.create",
    "flag.create",
    "flag.state.set",
    "flag.state.restore",
    "flag.accept",
    "killswitch.engage",
    "killswitch.release",
}


# --- Walking the URL configuration ----------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str  # namespaced; "admin:<unnamed>" for the few patterns Django's admin leaves unnamed
    route: str  # the joined pattern, as ResolverMatch.route spells it
    segments: tuple[Any, ...]  # the pattern objects from the root down

    @property
    def label(self) -> str:
        return f"{self.name} ({self.route})"


def _join(route1: str, route2: str) -> str:
    """The way django.urls.resolvers joins routes (ResolverMatch.route)."""
    if not route1:
        return route2
    return route1 + route2.removeprefix("^")


def walk(
    resolver: URLResolver | None = None, namespace: str = "", route: str = "", segments: tuple = ()
) -> Iterator[Route]:
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        here = _join(route, str(entry.pattern))
        if isinstance(entry, URLResolver):
            inner = f"{namespace}:{entry.namespace}" if entry.namespace else namespace
            yield from walk(entry, inner.strip(":"), here, (*segments, entry.pattern))
        else:
            assert isinstance(entry, URLPattern)
            name = entry.name or "<unnamed>"
            yield Route(
                f"{namespace}:{name}" if namespace else name, here, (*segments, entry.pattern)
            )


ROUTES = list(walk())


class Unfillable(Exception):
    pass


_ROUTE_PART = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")


def _fill_regex(regex: str, value_of: Callable[[str], str], label: str) -> str:
    text = regex.removeprefix("^").removesuffix("$")
    out, i = [], 0
    while i < len(text):
        if text.startswith("(?P<", i):
            end_name = text.index(">", i)
            name = text[i + 4 : end_name]
            depth, j = 1, end_name + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(text[j], 0)
                j += 1
            out.append(value_of(name))
            i = j
            continue
        if text[i] in "()[]{}*+?|\\.":
            raise Unfillable(f"{label}: cannot build a URL from the regex {regex!r}")
        out.append(text[i])
        i += 1
    return "".join(out)


def build_url(route: Route, value_of: Callable[[str], str]) -> str:
    """The route with each kwarg replaced by a real value, checked to resolve back to it."""
    parts = []
    for pattern in route.segments:
        if hasattr(pattern, "converters") and hasattr(pattern, "_route"):
            converters = pattern.converters

            def fill(match: re.Match, converters: dict = converters) -> str:
                name = match.group("parameter")
                return converters[name].to_url(value_of(name))

            parts.append(_ROUTE_PART.sub(fill, pattern._route))
        else:
            parts.append(_fill_regex(pattern._regex, value_of, route.label))
    url = "/" + "".join(parts)
    match = resolve(url)
    if match.route != route.route:
        raise Unfillable(f"{route.label}: {url} resolves to {match.route!r} instead")
    return url


@dataclass
class World:
    """Real objects to fill URLs with, made through the services."""

    auditor: User
    release_manager: User
    flag: Flag
    production: Environment
    switch: KillSwitch
    state_event: AuditEvent
    token: str
    approvals: dict[str, Any]

    def value_for(self, route: Route, kwarg: str) -> str:
        if kwarg == "object_id" and route.name.startswith("admin:"):
            return str(self._admin_object(route).pk)
        by_route: dict[tuple[str, str], Callable[[], Any]] = {
            ("flags:kill_switch_release", "pk"): lambda: self.switch.pk,
            ("approvals:detail", "pk"): lambda: self.approvals["pending"].pk,
            ("approvals:decide", "pk"): lambda: self.approvals["pending"].pk,
            ("approvals:execute", "pk"): lambda: self.approvals["pending"].pk,
            ("approvals:checklist_set", "pk"): lambda: self.approvals["pending"].pk,
            ("approvals:checklist_set", "item"): lambda: (
                self.approvals["pending"].checklist.get().pk
            ),
            ("approvals:post_review_close", "pk"): lambda: self.approvals["executed"].pk,
            ("approvals:blackout_delete", "pk"): lambda: self.approvals["blackout"].pk,
            ("admin:auth_user_password_change", "id"): lambda: self.release_manager.pk,
            ("admin:view_on_site", "content_type_id"): lambda: (
                ContentType.objects.get_for_model(Flag).pk
            ),
            ("api:approval_execute", "id"): lambda: self.approvals["approved"].pk,
            ("api:approval_post_review", "id"): lambda: self.approvals["executed"].pk,
            ("api:blackout", "id"): lambda: self.approvals["blackout"].pk,
            ("api:rollback_detail", "id"): lambda: self.approvals["rollback"].pk,
            ("rollouts:rollback_detail", "pk"): lambda: self.approvals["rollback"].pk,
            ("rollouts:rollback_restore_request", "pk"): lambda: self.approvals["rollback"].pk,
            ("rollouts:deployment", "pk"): lambda: self.approvals["deployment"].pk,
            ("api:deployment", "id"): lambda: self.approvals["deployment"].pk,
            ("api:deployment_events", "id"): lambda: self.approvals["deployment"].pk,
            ("api:deployment_cancel", "id"): lambda: self.approvals["deployment"].pk,
        }
        by_name: dict[str, Callable[[], Any]] = {
            "key": lambda: self.flag.key,
            "slug": lambda: self.production.slug,
            "environment": lambda: self.production.slug,
            "event_id": lambda: self.state_event.pk,
            "verification_id": self._verification_id,
            "uidb64": lambda: urlsafe_base64_encode(force_bytes(self.auditor.pk)),
            "token": lambda: default_token_generator.make_token(self.auditor),
            "app_label": lambda: "flags",
            "url": lambda: "no-such-page/",
            "rest": lambda: "no-such-endpoint",
            "id": lambda: self.approvals["pending"].pk,
            "item": lambda: self.approvals["pending"].checklist.get().pk,
        }
        if kwarg in ("pk", "id") and route.name.startswith(("rollouts:", "api:release")):
            by_route.setdefault((route.name, kwarg), lambda: self.approvals["release"].pk)
        if kwarg in ("pk", "id") and route.name.startswith(("rollouts:deployment", "api:deploy")):
            by_route[(route.name, kwarg)] = lambda: self.approvals["deployment"].pk
        by_name.setdefault("step", lambda: "pause")
        maker = by_route.get((route.name, kwarg)) or by_name.get(kwarg)
        if maker is None:
            raise Unfillable(
                f"{route.label}: no real value for <{kwarg}>. Teach World.value_for in "
                "tests/core/test_auditor_read_only.py which object it names."
            )
        return str(maker())

    def _verification_id(self) -> int:
        """A chain verification someone started (through the service, never run here)."""
        if self._verification is None:
            from releasecontrol.audit.verification import audit_verification_start

            self._verification = audit_verification_start(actor=self.release_manager).pk
        return self._verification

    def _admin_object(self, route: Route) -> Model:
        if route.name == "admin:view_on_site":
            return self.flag
        found = re.match(r"admin/(?P<app>\w+)/(?P<model>\w+)/", route.route)
        if not found:
            raise Unfillable(f"{route.label}: which model's object is <object_id>?")
        model = apps.get_model(found["app"], found["model"])
        obj = model._default_manager.order_by("pk").first()
        if obj is None:
            raise Unfillable(f"{route.label}: no {model.__name__} row to name; seed one")
        return obj

    _client: Client | None = None
    _verification: int | None = None

    def signed_in_client(self) -> Client:
        """The auditor's browser session (for every page that is not /api/)."""
        if self._client is None:
            self._client = Client()
            self._client.force_login(self.auditor)
        return self._client

    def sign_in_again(self) -> None:
        self._client = None

    def url(self, route: Route) -> str:
        return build_url(route, lambda kwarg: self.value_for(route, kwarg))


def _payloads(world: World) -> dict[tuple[str, str], dict[str, Any]]:
    """Well-formed bodies, so what refuses is the policy, not a form's validation."""
    state = FlagState.objects.get(flag=world.flag, environment=world.production)
    refusal = "auditor trying to change something"
    return {
        ("flags:create", "POST"): {
            "key": "auditor-made",
            "name": "Auditor made",
            "type": "boolean",
        },
        ("flags:kill_switch_engage", "POST"): {
            "environment": world.production.slug,
            "scope": "environment",
            "reason": refusal,
        },
        ("flags:kill_switch_release", "POST"): {"reason": refusal},
        ("flags:state_set", "POST"): {
            "mode": "full",
            "percentage": "100",
            "allowlist": "",
            "version": str(state.version),
            "reason": refusal,
            "confirmed": "1",
        },
        ("flags:state_restore", "POST"): {
            "event": str(world.state_event.pk),
            "version": str(state.version),
            "reason": refusal,
            "confirmed": "1",
        },
        ("api:flags", "POST"): {"key": "auditor-made", "name": "Auditor made"},
        ("api:flag_state", "PATCH"): {
            "mode": "full",
            "version": state.version,
            "reason": refusal,
        },
        ("api:flag_state_restore", "POST"): {
            "event_id": world.state_event.pk,
            "side": "before",
            "version": state.version,
            "reason": refusal,
        },
        ("api:environment_rollback", "POST"): {"reason": refusal},
        ("rollouts:oncall_rollback", "POST"): {
            "confirm": world.production.name,
            "reason": refusal,
        },
        ("rollouts:oncall_partial", "POST"): {
            "scope": "flag",
            "flag": world.flag.key,
            "reason": refusal,
        },
        ("rollouts:control", "POST"): {"reason": refusal},
        ("api:deployments", "POST"): {
            "environment": "staging",
            "service": "checkout-api",
            "version": "9.9.9",
            "commit": "abc1234",
            "commit_time": "2026-12-01T08:00:00Z",
            "artifact": "sha256:" + "0" * 64,
            "kind": "standard",
            "notes": refusal,
        },
        ("api:deployment_events", "POST"): {"event": "started", "detail": refusal},
        ("api:releases", "POST"): {
            "name": "auditor-release",
            "environment": world.production.slug,
            "flags": [world.flag.key],
            "plan": "five-stage",
            "gates": [
                {"name": "errors", "metric": "error_rate", "threshold": 5, "window_seconds": 300}
            ],
        },
        ("api:metrics", "POST"): {
            "samples": [
                {
                    "environment": world.approvals["release"].environment.slug,
                    "release": world.approvals["release"].pk,
                    "metric": "error_rate",
                    "value": 1.0,
                }
            ]
        },
        ("api:flag_accept", "POST"): {"version": state.version, "reason": refusal},
        ("approvals:decide", "POST"): {
            "decision": "go",
            "preview_hash": world.approvals["pending"].preview_hash,
        },
        ("approvals:execute", "POST"): {"reason": refusal},
        ("approvals:checklist_set", "POST"): {"checked": "1", "evidence": refusal},
        ("approvals:post_review_close", "POST"): {"notes": refusal},
        ("approvals:blackout_create", "POST"): {
            "kind": "weekly",
            "day": "sat",
            "start": "00:00",
            "end_day": "sun",
            "end": "23:00",
            "time_zone": "UTC",
            "reason": refusal,
        },
        ("approvals:blackout_delete", "POST"): {"reason": refusal},
        ("approval_request_new", "POST"): {
            "action": "flag.state.set",
            "environment": world.production.slug,
            "parameters": json.dumps({"flag": world.flag.key, "mode": "full"}),
            "title": refusal,
            "urgency": "routine",
            "risk": "low",
        },
        ("api:approvals", "POST"): {
            "environment": world.production.slug,
            "action": FLAG_CHANGE,
            "parameters": {"flag": world.flag.key, "mode": "full"},
            "title": refusal,
        },
        ("api:approval", "PATCH"): {"title": refusal},
        ("api:approval_checklist_item", "PATCH"): {"checked": True, "evidence": refusal},
        ("api:approval_decisions", "POST"): {
            "decision": "go",
            "comment": refusal,
            "preview_hash": world.approvals["pending"].preview_hash,
        },
        ("api:approval_execute", "POST"): {"reason": refusal},
        ("api:approval_post_review", "POST"): {"notes": refusal},
        ("api:environment_blackouts", "POST"): {
            "starts_at": "2030-01-01T00:00:00Z",
            "ends_at": "2030-01-02T00:00:00Z",
            "reason": refusal,
        },
    }


# --- The world and the snapshots --------------------------------------------------------------


def _staging_deployment(requester: User, staging: Environment) -> Any:
    """A deployment with its go, whose page and endpoints the walk reaches."""
    import datetime as dt

    from django.utils import timezone

    from rollouts.deployments import deployment_register

    return deployment_register(
        actor=requester,
        environment=staging,
        service="probe-api",
        version="1.0.0",
        commit="9f1c2ab",
        commit_time=timezone.now() - dt.timedelta(hours=1),
        artifact="sha256:" + "ab" * 32,
        checklist="none",
    )


@pytest.fixture
def world(
    client: Client, auditor: User, release_manager: User, oncall: User, api_token_for, settings
) -> World:
    # Verifications the walk starts are queued where no worker listens.
    settings.AUDIT_VERIFY_QUEUE = "tests-auditor-read-only"
    production = Environment.objects.get(slug="production")
    staging = Environment.objects.get(slug="staging")
    flag = flag_services.flag_create(
        actor=release_manager, key="probe-flag", name="Probe", tags=["probe"]
    )
    flag_services.flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=10,
        reason="first customers",
    )
    state_event = AuditEvent.objects.filter(action="flag.state.set").latest("id")
    switch = flag_services.kill_switch_engage(
        actor=oncall, environment=staging, scope="flag", flag=flag, reason="errors in staging"
    ).switch
    flag_services.sdk_key_issue(actor=User.system(), environment=production)
    MonitorHeartbeatFactory()
    from tests.approvals.factories import approvals_rows
    from tests.factories import notification_rows

    approvals = approvals_rows(requester=oncall, decider=release_manager)
    approvals["approved"] = _approved_request(flag, production, requester=oncall)
    from rollouts.emergency import environment_rollback

    development = Environment.objects.get(slug="development")
    approvals["rollback"] = environment_rollback(
        actor=oncall, environment=development, reason="drill"
    ).rollback
    from tests.rollouts.factories import rollouts_rows

    approvals.update(rollouts_rows(flag=flag, requester=oncall))

    approvals["deployment"] = _staging_deployment(oncall, staging)
    notification_rows(production)
    Group.objects.create(name="probe-group")
    # Sign-in records (django-axes): one success, one failure, so its admin pages have rows.
    client.post("/accounts/login/", {"username": auditor.username, "password": PASSWORD})
    client.post("/accounts/login/", {"username": "nobody", "password": "wrong"})
    client.logout()
    AccessFailureLog.objects.get_or_create(
        username="nobody", defaults={"user_agent": "probe", "http_accept": "*/*", "path_info": "/"}
    )
    return World(
        auditor=auditor,
        release_manager=release_manager,
        flag=flag,
        production=production,
        switch=switch,
        state_event=state_event,
        token=api_token_for(auditor),
        approvals=approvals,
    )


@pytest.fixture(autouse=True)
def flag_change_requestable():
    """A requestable action, so the approvals endpoints reach the policy's refusal."""
    with flag_change_registered(FLAG_CHANGE, schedulable=False):
        yield


def _approved_request(flag: Flag, environment: Environment, requester: User) -> ApprovalRequest:
    """An approved request for the test action (a row, as tests/approvals/factories.py
    makes them): executing it reaches the policy."""
    import datetime as dt

    from django.utils import timezone

    now = timezone.now()
    return ApprovalRequest.objects.create(
        environment=environment,
        action=FLAG_CHANGE,
        parameters={"flag": flag.key, "mode": "full", "percentage": 0, "allowlist": []},
        title="Probe approved",
        status="approved",
        approved_at=now,
        preview_hash="b" * 64,
        requested_by=requester,
        expires_at=now + dt.timedelta(hours=72),
    )


def domain_snapshot() -> dict[str, list[dict[str, Any]]]:
    snapshot = {}
    for model, moving in WATCHED.items():
        rows = model._default_manager.order_by("pk").values()
        snapshot[model.__name__] = [
            {k: v for k, v in row.items() if k not in moving} for row in rows
        ]
    return snapshot


def _changed(before: dict, after: dict) -> list[str]:
    return [name for name in before if before[name] != after[name]]


def _request(world: World, route: Route, method: str, body: dict[str, Any] | None) -> HttpResponse:
    url = world.url(route)
    if url.startswith("/api/"):
        client = Client(HTTP_AUTHORIZATION=f"Bearer {world.token}")
        data = json.dumps(body or {})
        return client.generic(method, url, data, content_type="application/json")
    client = world.signed_in_client()
    if method == "POST":
        response = client.post(url, body or {})
    else:
        response = client.generic(method, url, "", content_type="application/x-www-form-urlencoded")
    if route.name in SELF_SERVICE:
        world.sign_in_again()  # it may have signed the auditor out or rotated the session
    return response


def _refusal_problem(route: Route, method: str, response: HttpResponse) -> str:
    """Empty when the answer is a refusal this route may give; else what is wrong."""
    status = response.status_code
    if status >= 500:
        return f"server error {status}"
    if route.name in SELF_SERVICE or route.name in AUDITOR_WORK:
        return ""
    if status in (403, 405):
        return ""
    # Auditors are not staff: the admin sends them to its own sign-in, refusing.
    if route.name.startswith("admin:") and status == 302 and _to_admin_sign_in(response):
        return ""
    if route.name in READ_BY_POST and status == 401:
        return ""
    if route.name in API_NOT_FOUND and status == 404:
        return ""
    if route.name in STATE_BEFORE_POLICY and status == 409:
        return ""
    if route.name in PREPARES_A_REQUEST and status == 303:
        return (
            ""
            if response["Location"].startswith(reverse("approval_request_new"))
            else (f"answered 303 to {response['Location']}, not to the request page")
        )
    return f"answered {status}, not a refusal (403/405)"


def _to_admin_sign_in(response: HttpResponse) -> bool:
    return response["Location"].startswith("/admin/login/")


def _nothing_to_get(response: HttpResponse) -> bool:
    """A 405 that says GET is not a method of this URL (a POST-only mutation, OFREP)."""
    if response.status_code != 405 or not response.has_header("Allow"):
        return False
    allowed = {m.strip().upper() for m in response["Allow"].split(",")}
    return "GET" not in allowed


def _consume(response: HttpResponse) -> None:
    if response.streaming:
        b"".join(response.streaming_content)


# --- The tests ---------------------------------------------------------------------------------


def test_every_url__auditor_tries_each_mutating_method__refused_and_nothing_changes(
    world: World,
) -> None:
    # Given every URL of the project, filled with real objects
    payloads = _payloads(world)
    urls = {route: world.url(route) for route in ROUTES}  # makes what the URLs name first
    first_event = AuditEvent.objects.latest("id").pk
    problems: list[str] = []
    refused: set[tuple[str, str]] = set()

    # When the auditor tries every mutating method on each of them
    before = domain_snapshot()
    for route in ROUTES:
        for method in MUTATING_METHODS:
            response = _request(world, route, method, payloads.get((route.name, method)))
            _consume(response)
            after = domain_snapshot()
            label = f"{method} {urls[route]} [{route.name}]"
            if changed := _changed(before, after):
                problems.append(f"{label}: changed {', '.join(changed)}")
            before = after
            if problem := _refusal_problem(route, method, response):
                problems.append(f"{label}: {problem}")
            if response.status_code == 403:
                refused.add((route.name, method))

    # Then each was refused, nothing changed, and the trail only gained refusals and exports
    assert not problems, "Auditor was not refused, or something changed:\n" + "\n".join(problems)
    assert refused >= KNOWN_MUTATIONS, f"never refused by the policy: {KNOWN_MUTATIONS - refused}"
    new_events = AuditEvent.objects.filter(id__gt=first_event)
    strays = new_events.exclude(outcome=Outcome.DENIED).exclude(action__in=AUDITOR_EVENTS)
    assert list(strays.values_list("action", "outcome")) == []
    assert set(new_events.values_list("actor_id", flat=True)) == {world.auditor.pk}
    denied = set(new_events.filter(outcome=Outcome.DENIED).values_list("action", flat=True))
    assert denied >= KNOWN_REFUSED_ACTIONS


def test_every_url__auditor_reads__200_or_the_documented_answer(world: World) -> None:
    # Given every URL of the project, filled with real objects
    problems: list[str] = []

    # When the auditor GETs each one
    before = domain_snapshot()
    for route in ROUTES:
        response = _request(world, route, "GET", None)
        _consume(response)
        expected = 302 if route.name.startswith("admin:") else 200
        expected = GET_NOT_200.get(route.name, (expected, ""))[0]
        if _nothing_to_get(response):
            expected = 405
        label = f"GET {world.url(route)} [{route.name}]"
        if response.status_code != expected:
            problems.append(f"{label}: {response.status_code}, expected {expected}")
        after = domain_snapshot()
        if changed := _changed(before, after):
            problems.append(f"{label}: changed {', '.join(changed)}")
        before = after

    # Then every page and API read answers (and reading changed nothing)
    assert not problems, "\n".join(problems)


def test_auditor__exports_csv_and_jsonl__each_export_audited(world: World) -> None:
    # Given an auditor with a session
    client = Client()
    client.force_login(world.auditor)

    # When they export both formats
    for path in ("/audit/export.csv", "/audit/export.jsonl"):
        response = client.get(path, {"environment": "production"})
        assert response.status_code == 200
        assert b"".join(response.streaming_content)

    # Then both exports are in the trail, as theirs
    exports = AuditEvent.objects.filter(action="audit.export", actor=world.auditor)
    assert sorted(e.after["format"] for e in exports) == ["csv", "jsonl"]


def test_walk__finds_pages_api_admin_and_audit__not_vacuous() -> None:
    names = {route.name for route in ROUTES}
    assert {"flags:state_set", "api:flag_state", "audit:explorer", "admin:index"} <= names
    assert len(ROUTES) > 50


def test_build_url__kwarg_it_cannot_fill__fails_naming_the_url(world: World) -> None:
    # Given a route with a kwarg no object stands for
    route = next(r for r in ROUTES if r.name == "flags:kill_switch_release")
    stranger = Route("flags:imaginary", route.route.replace("<int:pk>", "<int:gizmo>"), ())
    # When it is filled; Then it fails loudly, naming the route and the kwarg
    with pytest.raises(Unfillable, match=r"flags:imaginary .*<gizmo>"):
        world.value_for(stranger, "gizmo")


def test_build_url__every_route__fills_and_resolves_back(world: World) -> None:
    unfillable = []
    for route in ROUTES:
        try:
            world.url(route)
        except Unfillable as exc:
            unfillable.append(str(exc))
    assert not unfillable, "\n".join(unfillable)
