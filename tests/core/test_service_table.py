"""The real services x every kind of actor x every environment, as a table written out by
hand from DESIGN.md (who may do what), not computed from the policy. Each cell lists the
environments where the actor is allowed: D development, S staging, P production, "-" refused.
Every call asserts its audit event: an `ok` event with the actor, the action and what changed,
or a `denied` event with the refusal (and nothing changed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from flags import services as flags
from flags.models import FlagState, KillSwitch
from releasecontrol.audit.export import audit_export_open
from releasecontrol.audit.selectors import AuditFilter
from releasecontrol.models import AuditEvent, Environment, RoleGrant, User
from releasecontrol.services import api_token_issue, role_grant, user_create, user_update
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)  # denials commit on their own connection

ACTORS = (
    "release_manager",
    "oncall",
    "developer",
    "auditor",
    "agent",
    "outsider",
    "superuser",
    "system",
    "deactivated",  # a release manager whose account was deactivated
)
ENVIRONMENTS = (("D", "development"), ("S", "staging"), ("P", "production"))

#                                rm     oncall dev    audit  agent  outsdr super  system deact
EXPECTED: dict[str, tuple[str, ...]] = {
    "flag.state.set increase": ("DSP", "DSP", "DS-", "---", "DS-", "---", "DSP", "---", "---"),
    "flag.state.set decrease": ("DSP", "DSP", "DS-", "---", "DS-", "---", "DSP", "DSP", "---"),
    "killswitch.engage": ("DSP", "DSP", "---", "---", "---", "---", "DSP", "DSP", "---"),
    "killswitch.release": ("DSP", "DSP", "---", "---", "---", "---", "DSP", "---", "---"),
    # A new flag is off everywhere: the same answer whichever environment the caller is on.
    "flag.create": ("DSP", "DSP", "DSP", "---", "DSP", "---", "DSP", "---", "---"),
    "token.issue": ("---", "---", "---", "---", "---", "---", "DSP", "DSP", "---"),
    "role.grant": ("---", "---", "---", "---", "---", "---", "DSP", "DSP", "---"),
    "audit.export": ("DSP", "---", "---", "DSP", "---", "---", "DSP", "DSP", "---"),
}


@dataclass(frozen=True)
class Case:
    action: str  # the audit event's action
    call: Callable[[User, Environment, int], Any]
    # What the ok event must hold, given the case's environment (before, after), checked as
    # a subset of the event's.
    ok_event: Callable[[Environment], tuple[dict | None, dict]]


def _flag(n: int, state: str | None = None, environment: Environment | None = None):
    owner = User.objects.get(username="rita")
    flag = flags.flag_create(actor=owner, key=f"table-{n}", name=f"Table {n}")
    if state:
        flags.flag_state_set(
            actor=owner, flag=flag, environment=environment, mode=state, reason="setup"
        )
    return flag


def increase(actor, environment, n):
    flag = _flag(n)
    flags.flag_state_set(actor=actor, flag=flag, environment=environment, mode="full", reason="up")
    return FlagState.objects.get(flag=flag, environment=environment).mode == "full"


def decrease(actor, environment, n):
    flag = _flag(n, "full", environment)
    flags.flag_state_set(actor=actor, flag=flag, environment=environment, mode="off", reason="dn")
    return FlagState.objects.get(flag=flag, environment=environment).mode == "off"


def engage(actor, environment, n):
    flags.kill_switch_engage(actor=actor, environment=environment, reason="fire")
    return Environment.objects.get(pk=environment.pk).kill_switch_engaged


def release(actor, environment, n):
    owner = User.objects.get(username="rita")
    switch = flags.kill_switch_engage(actor=owner, environment=environment, reason="fire").switch
    flags.kill_switch_release(actor=actor, switch=switch, reason="fixed")
    return not Environment.objects.get(pk=environment.pk).kill_switch_engaged


def create(actor, environment, n):
    flags.flag_create(actor=actor, key=f"made-{n}", name="Made")
    return True


def token(actor, environment, n):
    api_token_issue(actor=actor, user=User.objects.get(username="otto"), name=f"t{n}")
    return True


def grant(actor, environment, n):
    person = user_create(actor=User.system(), username=f"new-{n}")
    role_grant(actor=actor, user=person, role="auditor", environments=[environment])
    return RoleGrant.objects.filter(user=person, environment=environment).exists()


def export(actor, environment, n):
    audit_export_open(actor=actor, audit_filter=AuditFilter(environment=environment.slug))
    return True


CASES = {
    "flag.state.set increase": Case(
        "flag.state.set", increase, lambda env: ({"mode": "off"}, {"mode": "full"})
    ),
    "flag.state.set decrease": Case(
        "flag.state.set", decrease, lambda env: ({"mode": "full"}, {"mode": "off"})
    ),
    "killswitch.engage": Case(
        "killswitch.engage", engage, lambda env: (None, {"scope": "environment"})
    ),
    "killswitch.release": Case(
        "killswitch.release", release, lambda env: (None, {"released": True})
    ),
    "flag.create": Case("flag.create", create, lambda env: (None, {})),
    "token.issue": Case("token.issue", token, lambda env: (None, {"user": "otto"})),
    "role.grant": Case("role.grant", grant, lambda env: (None, {"role": "auditor"})),
    "audit.export": Case("audit.export", export, lambda env: (None, {"format": "csv"})),
}


def _subset(expected: dict | None, actual: Any) -> bool:
    if expected is None:
        return True
    return isinstance(actual, dict) and all(actual.get(k) == v for k, v in expected.items())


@pytest.fixture
def deactivated(db):
    user = user_create(actor=User.system(), username="gone", password=PASSWORD)
    role_grant(actor=User.system(), user=user, role="release_manager")
    user_update(actor=User.system(), user=user, is_active=False)
    return User.objects.get(pk=user.pk)


ACTOR_FIXTURES = {"superuser": "admin_user", "system": "system_user"}


def test_service_table__has_a_row_for_every_case():
    assert set(EXPECTED) == set(CASES)


@pytest.mark.parametrize("actor_name", ACTORS)
def test_service_table__actor_kind__allowed_or_denied_and_audited_as_the_table_says(
    request, actor_name, release_manager, outsider, environments
):
    actor = request.getfixturevalue(ACTOR_FIXTURES.get(actor_name, actor_name))
    column = ACTORS.index(actor_name)
    wrong: list[str] = []
    n = 0
    for name, case in CASES.items():
        for letter, slug in ENVIRONMENTS:
            n += 1
            environment = Environment.objects.get(slug=slug)
            expected = letter in EXPECTED[name][column]
            last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
            try:
                changed = case.call(actor, environment, n)
                allowed = True
            except (PermissionDenied, flags.ApprovalRequired):
                # Refused; those who may ask are told the request to make (recorded all the same).
                allowed, changed = False, False
            events = AuditEvent.objects.filter(
                id__gt=last or 0, action=case.action, actor=actor
            ).order_by("id")
            where = f"{name} in {slug}"
            if allowed != expected:
                wrong.append(f"{where}: expected {'allowed' if expected else 'denied'}")
                continue
            if allowed:
                event = events.filter(outcome="ok").last()
                before, after = case.ok_event(environment)
                env_ok = case.action in ("flag.create", "token.issue") or (
                    event is not None and event.environment_id == slug
                )
                if not (changed and event and env_ok and _subset(before, event.before)):
                    wrong.append(f"{where}: allowed but no matching ok event or no change")
                elif not _subset(after, event.after):
                    wrong.append(f"{where}: ok event after={event.after!r}, expected {after!r}")
            else:
                event = events.filter(outcome="denied").last()
                if event is None or not (event.after or {}).get("refused"):
                    wrong.append(f"{where}: denied without a denied event naming the refusal")
            # Leave the environment as found: the next case starts with no switch engaged.
            for switch in KillSwitch.objects.filter(released_at__isnull=True):
                flags.kill_switch_release(actor=release_manager, switch=switch, reason="reset")

    assert wrong == []


@pytest.mark.parametrize("slug", ["development", "staging", "production"])
def test_kill_switch_engage__agent_granted_raw_guardian_permissions__refused_and_audited(
    agent, release_manager, slug
):
    from guardian.shortcuts import assign_perm

    environment = Environment.objects.get(slug=slug)
    for codename in ("operate_kill_switch", "approve_changes", "deploy"):
        assign_perm(f"releasecontrol.{codename}", agent, environment)
    agent = User.objects.get(pk=agent.pk)
    assert agent.has_perm("releasecontrol.operate_kill_switch", environment)

    with pytest.raises(PermissionDenied, match="agent accounts never"):
        flags.kill_switch_engage(actor=agent, environment=environment, reason="agent panics")

    assert not Environment.objects.get(pk=environment.pk).kill_switch_engaged
    denied = AuditEvent.objects.get(actor=agent, action="killswitch.engage")
    assert denied.outcome == "denied" and "never" in denied.after["refused"]
