"""Every mutating view of the flag pages: allowed, refused (403, audited), 405, bad input,
and the conflicts (409) the services raise. Refusals are tested in transactional tests: the
denial is written on its own connection and must be committed whatever the request did."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from flags import services
from flags.models import Flag, FlagState, KillSwitch, Tag
from releasecontrol.models import AuditEvent, Environment

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
STAGING = "/flags/ai-concierge/environments/staging/"
PRODUCTION = "/flags/ai-concierge/environments/production/"


def state(key: str, slug: str) -> FlagState:
    return FlagState.objects.get(flag__key=key, environment__slug=slug)


def last_event(**filters) -> AuditEvent:
    return AuditEvent.objects.filter(**filters).latest("id")


def denial_of(user, action: str) -> AuditEvent:
    return AuditEvent.objects.get(actor=user, action=action, outcome="denied")


def triggered(response) -> dict:
    return json.loads(response["HX-Trigger"])


@pytest.fixture
def concierge(release_manager, staging, production):
    """ai-concierge: staging at 25% + 2 keys (version 2), production at 10% (version 2)."""
    flag = services.flag_create(
        actor=release_manager, key="ai-concierge", name="AI concierge", tags=["concierge"]
    )
    services.flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=staging,
        mode="percentage",
        percentage=25,
        allowlist=["pilot-1", "pilot-2"],
    )
    services.flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=production,
        mode="percentage",
        percentage=10,
        reason="stage 1",
    )
    return flag


def edit(**fields) -> dict:
    """A cell editor's form: the person's values plus the version the editor showed."""
    return {"mode": "percentage", "percentage": "25", "allowlist": "", "version": "2", **fields}


# --- Cell edits -------------------------------------------------------------------------------


def test_state_set__developer_in_staging__cell_swapped_event_sent_and_audited(
    client, developer, concierge
):
    client.force_login(developer)
    response = client.post(
        STAGING, edit(mode="full", allowlist="pilot-1\npilot-2", reason="QA done"), **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith("<td") and 'data-mode="full"' in html
    assert 'data-testid="editor"' not in html  # the editor closes
    assert "just-saved" in html
    event = triggered(response)["flag-state-changed"]
    assert event["flag"] == "ai-concierge" and event["version"] == 3
    assert "ai-concierge in Staging: full (version 3)" in event["message"]
    assert (state("ai-concierge", "staging").mode, state("ai-concierge", "staging").version) == (
        "full",
        3,
    )
    audit = last_event(action="flag.state.set", environment="staging")
    assert (audit.actor, audit.outcome, audit.reason) == (developer, "ok", "QA done")
    assert audit.before == {
        "mode": "percentage",
        "percentage": 25,
        "allowlist": ["pilot-1", "pilot-2"],
        "version": 2,
    }
    assert audit.after["mode"] == "full" and audit.after["version"] == 3


def test_state_set__plain_post__redirects_back_with_the_change(client, developer, concierge):
    client.force_login(developer)
    response = client.post(STAGING, edit(mode="off", next="/flags/?tag=concierge"))
    assert response.status_code == 303
    assert response.url == "/flags/?tag=concierge"
    assert state("ai-concierge", "staging").mode == "off"
    page = client.get(response.url)
    assert "Saved. ai-concierge in Staging: off" in page.content.decode()


def test_state_set__plain_post_to_another_site__redirects_to_the_board(
    client, developer, concierge
):
    client.force_login(developer)
    response = client.post(STAGING, edit(mode="off", next="https://evil.example/"))
    assert response.url == "/flags/"


def test_state_set__get__405(client, developer, concierge):
    client.force_login(developer)
    assert client.get(STAGING).status_code == 405


def test_state_set__without_csrf_token__403(developer, concierge):
    client = Client(enforce_csrf_checks=True)
    client.force_login(developer)
    response = client.post(STAGING, edit(mode="off"), **HTMX)
    assert response.status_code == 403
    assert state("ai-concierge", "staging").mode == "percentage"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"percentage": "150"}, "less than or equal to 100"),
        ({"percentage": "ten"}, "Enter a whole number"),
        ({"mode": "sometimes"}, "Select a valid choice"),
        ({"allowlist": "x" * 300}, "at most 256 characters"),
    ],
)
def test_state_set__bad_input__400_values_kept_nothing_written(
    client, developer, concierge, fields, message
):
    client.force_login(developer)
    events = AuditEvent.objects.count()
    response = client.post(STAGING, edit(**fields), **HTMX)
    html = response.content.decode()
    assert response.status_code == 400
    assert message in html
    assert 'data-testid="editor"' in html  # still open, with what was typed
    value = next(iter(fields.values()))
    assert value[:50] in html
    assert state("ai-concierge", "staging").version == 2
    assert AuditEvent.objects.count() == events


def test_state_set__stale_version__409_names_who_and_keeps_values(
    client, developer, oncall, staging, concierge
):
    services.flag_state_set(
        actor=oncall, flag=concierge, environment=staging, percentage=40, reason="bump"
    )
    client.force_login(developer)
    response = client.post(STAGING, edit(percentage="30", allowlist="mine-1"), **HTMX)
    html = response.content.decode()
    assert response.status_code == 409
    assert "Someone else changed this while you were editing" in html
    assert "omar changed it at" in html
    assert "now percentage 40% + 2 keys (version 3)" in html
    assert 'value="30"' in html and "mine-1" in html  # nothing the person typed is lost
    assert 'name="version" value="3"' in html  # saving again is a deliberate overwrite
    assert state("ai-concierge", "staging").percentage == 40

    again = client.post(STAGING, edit(percentage="30", allowlist="mine-1", version="3"), **HTMX)
    assert again.status_code == 200
    assert state("ai-concierge", "staging").percentage == 30


def test_state_set__kill_switch_engaged__increase_409_inline_decrease_allowed(
    client, developer, oncall, staging, concierge
):
    services.kill_switch_engage(actor=oncall, environment=staging, reason="errors at 4%")
    client.force_login(developer)
    refused = client.post(STAGING, edit(mode="full", version="3"), **HTMX)
    assert refused.status_code == 409
    html = refused.content.decode()
    assert "Not allowed right now" in html
    assert "kill switch" in html and "engaged by omar" in html
    assert state("ai-concierge", "staging").mode == "off"

    allowed = client.post(STAGING, edit(mode="shadow", version="3"), **HTMX)
    assert allowed.status_code == 200
    assert state("ai-concierge", "staging").mode == "shadow"


def test_state_set__environment_requires_approval__increase_409_explains(
    client, developer, staging, concierge
):
    Environment.objects.filter(pk=staging.pk).update(
        require_approval_for_increase=True, approvals_required=1
    )
    client.force_login(developer)
    response = client.post(STAGING, edit(mode="full"), **HTMX)
    assert response.status_code == 409
    html = response.content.decode()
    assert "requires an approved request for every change that increases exposure" in html
    assert 'data-testid="notice-link"' in html
    assert "/approvals/new/?action=flag.state.set&amp;environment=staging" in html


def test_state_set__production_first_post__confirmation_names_exactly_what_changes(
    client, release_manager, concierge
):
    client.force_login(release_manager)
    events = AuditEvent.objects.count()
    response = client.post(PRODUCTION, edit(percentage="25", allowlist="vip-1\nvip-2"), **HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert (
        "<strong>ai-concierge</strong> in <strong>production</strong>: percentage 10% → 25%, "
        "allowlist +2 keys</p>"
    ) in html
    assert "Increases exposure" in html
    assert "vip-1, vip-2" in html
    assert 'name="confirmed" value="1"' in html
    assert 'name="reason"' in html and "required" in html
    assert state("ai-concierge", "production").percentage == 10
    assert AuditEvent.objects.count() == events


def test_state_set__production_decrease__confirmation_says_it_reduces(client, oncall, concierge):
    client.force_login(oncall)
    response = client.post(PRODUCTION, edit(mode="off"), **HTMX)
    html = response.content.decode()
    assert "mode percentage → off" in html
    assert "Reduces exposure" in html


def test_state_set__production_confirmed_without_reason__400_confirmation_again(
    client, release_manager, concierge
):
    client.force_login(release_manager)
    response = client.post(PRODUCTION, edit(percentage="25", confirmed="1"), **HTMX)
    html = response.content.decode()
    assert response.status_code == 400
    assert "needs a reason" in html
    assert 'data-testid="confirm"' in html
    assert state("ai-concierge", "production").percentage == 10


def test_state_set__production_confirmed_with_reason__applied_and_audited(
    client, release_manager, concierge
):
    client.force_login(release_manager)
    response = client.post(
        PRODUCTION,
        edit(percentage="25", confirmed="1", reason="stage 2, error rate flat"),
        **HTMX,
    )
    assert response.status_code == 200
    assert state("ai-concierge", "production").percentage == 25
    audit = last_event(action="flag.state.set", environment="production")
    assert (audit.actor, audit.reason) == (release_manager, "stage 2, error rate flat")
    assert (audit.before["percentage"], audit.after["percentage"]) == (10, 25)


def test_state_set__production_stale_before_confirming__409_instead_of_confirmation(
    client, release_manager, oncall, production, concierge
):
    services.flag_state_set(
        actor=oncall, flag=concierge, environment=production, mode="off", reason="paging"
    )
    client.force_login(release_manager)
    response = client.post(PRODUCTION, edit(percentage="25"), **HTMX)
    html = response.content.decode()
    assert response.status_code == 409
    assert "omar changed it" in html and "now off (version 3)" in html
    assert 'data-testid="confirm"' not in html


def test_state_set__back_from_confirmation__editor_with_the_values(
    client, release_manager, concierge
):
    client.force_login(release_manager)
    response = client.post(
        PRODUCTION, edit(percentage="33", confirmed="1", back="1", reason="draft"), **HTMX
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-testid="mode"' in html and 'value="33"' in html
    assert 'name="reason" value="draft"' in html
    assert state("ai-concierge", "production").percentage == 10


@pytest.mark.django_db(transaction=True)
def test_state_set__developer_in_production__409_inline_offers_the_request_denial_audited(
    client, developer, release_manager, production
):
    flag = services.flag_create(actor=release_manager, key="ai-concierge", name="AI")
    client.force_login(developer)
    response = client.post(
        PRODUCTION,
        edit(mode="full", version="1", confirmed="1", reason="ship it"),
        **HTMX,
    )
    html = response.content.decode()
    assert response.status_code == 409
    assert "Refused: dev has no role that may change a flag&#x27;s state in production." in html
    assert "Request approval…" in html and 'data-testid="notice-link"' in html
    assert 'data-testid="editor"' in html
    assert FlagState.objects.get(flag=flag, environment=production).mode == "off"
    denied = denial_of(developer, "flag.state.set")
    assert denied.environment_id == "production"
    assert denied.reason == "ship it"
    assert denied.after["requested"]["mode"] == "full"


@pytest.mark.django_db(transaction=True)
def test_state_set__outsider_in_staging__403(client, outsider, release_manager):
    services.flag_create(actor=release_manager, key="ai-concierge", name="AI")
    client.force_login(outsider)
    response = client.post(STAGING, edit(mode="full", version="1"), **HTMX)
    assert response.status_code == 403
    assert denial_of(outsider, "flag.state.set").environment_id == "staging"


# --- Restore from history -----------------------------------------------------------------------


def restore_url(slug: str) -> str:
    return f"/flags/ai-concierge/environments/{slug}/restore"


def test_state_restore__staging__earlier_state_back_as_a_new_audited_change(
    client, developer, staging, concierge
):
    earlier = last_event(action="flag.state.set", environment="staging")  # 25% + 2 keys
    services.flag_state_set(actor=developer, flag=concierge, environment=staging, mode="off")
    client.force_login(developer)
    response = client.post(restore_url("staging"), {"event": earlier.pk, "version": "3"}, **HTMX)
    assert response.status_code == 200
    assert "Restored ai-concierge in Staging" in response.content.decode()
    assert "flags-changed" in triggered(response)
    restored = state("ai-concierge", "staging")
    assert (restored.mode, restored.percentage, restored.allowlist) == (
        "percentage",
        25,
        ["pilot-1", "pilot-2"],
    )
    audit = last_event(action="flag.state.restore")
    assert (audit.actor, audit.environment_id) == (developer, "staging")
    assert audit.before["mode"] == "off" and audit.after["percentage"] == 25


def test_state_restore__state_before_a_kill_switch__refused_while_engaged_then_restored(
    client, oncall, staging, concierge
):
    result = services.kill_switch_engage(actor=oncall, environment=staging, reason="fire")
    kill = last_event(action="killswitch.engage")
    client.force_login(oncall)
    blocked = client.post(restore_url("staging"), {"event": kill.pk, "version": "3"}, **HTMX)
    assert blocked.status_code == 409
    assert "engaged by omar" in blocked.content.decode()

    services.kill_switch_release(actor=oncall, switch=result.switch, reason="fixed")
    response = client.post(restore_url("staging"), {"event": kill.pk, "version": "3"}, **HTMX)
    assert response.status_code == 200
    assert state("ai-concierge", "staging").percentage == 25
    assert state("ai-concierge", "staging").mode == "percentage"


def test_state_restore__production__confirmation_then_reason_then_applied(
    client, release_manager, production, concierge
):
    earlier = last_event(action="flag.state.set", environment="production")  # 10%
    services.flag_state_set(
        actor=release_manager, flag=concierge, environment=production, mode="off", reason="r"
    )
    client.force_login(release_manager)
    form = {"event": earlier.pk, "version": "3"}

    confirm = client.post(restore_url("production"), form, **HTMX)
    html = confirm.content.decode()
    assert confirm.status_code == 200
    assert "in <strong>production</strong>: mode off → percentage" in html
    assert 'data-testid="restore-confirm"' in html
    assert state("ai-concierge", "production").mode == "off"

    no_reason = client.post(restore_url("production"), {**form, "confirmed": "1"}, **HTMX)
    assert no_reason.status_code == 400
    assert "needs a reason" in no_reason.content.decode()
    assert state("ai-concierge", "production").mode == "off"

    applied = client.post(
        restore_url("production"), {**form, "confirmed": "1", "reason": "back to 10%"}, **HTMX
    )
    assert applied.status_code == 200
    assert state("ai-concierge", "production").percentage == 10
    assert last_event(action="flag.state.restore").reason == "back to 10%"


def test_state_restore__stale_version__409(client, developer, staging, concierge):
    earlier = last_event(action="flag.state.set", environment="staging")
    services.flag_state_set(actor=developer, flag=concierge, environment=staging, mode="off")
    client.force_login(developer)
    response = client.post(restore_url("staging"), {"event": earlier.pk, "version": "2"}, **HTMX)
    assert response.status_code == 409
    assert "changed by dev" in response.content.decode()
    assert state("ai-concierge", "staging").mode == "off"


def test_state_restore__plain_post__redirects_to_history(client, developer, staging, concierge):
    earlier = last_event(action="flag.state.set", environment="staging")
    services.flag_state_set(actor=developer, flag=concierge, environment=staging, mode="off")
    client.force_login(developer)
    response = client.post(
        restore_url("staging"),
        {"event": earlier.pk, "version": "3", "next": "/flags/ai-concierge/?tab=history"},
    )
    assert response.status_code == 303
    assert response.url == "/flags/ai-concierge/?tab=history"
    assert state("ai-concierge", "staging").mode == "percentage"


def test_state_restore__get__405(client, developer, concierge):
    client.force_login(developer)
    assert client.get(restore_url("staging")).status_code == 405


def test_state_restore__bad_input__400_or_404(client, developer, release_manager, concierge):
    other = services.flag_create(actor=release_manager, key="other", name="Other")
    services.flag_state_set(
        actor=release_manager,
        flag=other,
        environment=Environment.objects.get(slug="staging"),
        mode="full",
    )
    others_event = last_event(action="flag.state.set", target_id=str(other.pk))
    production_event = last_event(action="flag.state.set", environment="production")
    client.force_login(developer)
    assert client.post(restore_url("staging"), {}, **HTMX).status_code == 400
    assert client.post(restore_url("staging"), {"event": "x"}, **HTMX).status_code == 400
    assert client.post(restore_url("staging"), {"event": 999999}, **HTMX).status_code == 404
    # Another flag's event, or an event from another environment: nothing to restore here.
    assert (
        client.post(restore_url("staging"), {"event": others_event.pk}, **HTMX).status_code == 404
    )
    assert (
        client.post(restore_url("staging"), {"event": production_event.pk}, **HTMX).status_code
        == 404
    )
    assert state("ai-concierge", "staging").version == 2


@pytest.mark.django_db(transaction=True)
def test_state_restore__developer_in_production__403_and_denial_audited(
    client, developer, release_manager, production
):
    flag = services.flag_create(actor=release_manager, key="ai-concierge", name="AI")
    services.flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="full", reason="go"
    )
    earlier = last_event(action="flag.state.set")
    services.flag_state_set(
        actor=release_manager, flag=flag, environment=production, mode="off", reason="stop"
    )
    client.force_login(developer)
    response = client.post(
        restore_url("production"),
        {"event": earlier.pk, "version": "3", "confirmed": "1", "reason": "bring it back"},
        **HTMX,
    )
    assert response.status_code == 403
    assert "Refused" in response.content.decode()
    assert FlagState.objects.get(flag=flag, environment=production).mode == "off"
    assert denial_of(developer, "flag.state.restore").reason == "bring it back"


# --- Kill switches ------------------------------------------------------------------------------

ENGAGE = "/flags/kill-switches/engage"


def test_kill_switch_engage__environment__every_flag_off_audited_and_idempotent(
    client, oncall, production, concierge
):
    client.force_login(oncall)
    form = {"scope": "environment", "environment": "production", "reason": "errors at 4%"}
    response = client.post(ENGAGE, form, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    # The board's environment switch is the environment rollback (installed into flags).
    assert "Production rolled back" in html and "1 flag turned off, 0 releases stopped" in html
    assert "Production rolled back" in triggered(response)["flags-changed"]["message"]
    assert 'data-testid="notice-link"' in html
    assert state("ai-concierge", "production").mode == "off"
    assert Environment.objects.get(slug="production").kill_switch_engaged
    audit = last_event(action="killswitch.engage")
    assert (audit.actor, audit.environment_id, audit.reason) == (
        oncall,
        "production",
        "errors at 4%",
    )
    assert audit.before["states"][0]["flag"] == "ai-concierge"
    assert audit.before["states"][0]["before"]["percentage"] == 10

    again = client.post(ENGAGE, form, **HTMX)
    assert again.status_code == 200
    assert "already rolled back" in again.content.decode()
    assert "nothing changed" in again.content.decode()
    assert AuditEvent.objects.filter(action="killswitch.engage").count() == 1


def test_kill_switch_engage__tag__disables_that_tag_only(
    client, oncall, release_manager, staging, concierge
):
    calling = services.flag_create(
        actor=release_manager, key="calling", name="Calling", tags=["calling"]
    )
    services.flag_state_set(actor=release_manager, flag=calling, environment=staging, mode="full")
    client.force_login(oncall)
    response = client.post(
        ENGAGE,
        {"scope": "tag", "tag": "calling", "environment": "staging", "reason": "provider down"},
        **HTMX,
    )
    assert response.status_code == 200
    assert state("calling", "staging").mode == "off"
    assert state("ai-concierge", "staging").mode == "percentage"
    assert KillSwitch.objects.engaged().get().tag == Tag.objects.get(name="calling")


def test_kill_switch_engage__one_flag__off_and_in_its_history(client, oncall, staging, concierge):
    client.force_login(oncall)
    response = client.post(
        ENGAGE,
        {"scope": "flag", "flag": "ai-concierge", "environment": "staging", "reason": "bad"},
        **HTMX,
    )
    assert response.status_code == 200
    assert state("ai-concierge", "staging").mode == "off"
    history = client.get("/flags/ai-concierge/?tab=history").content.decode()
    assert "Kill switch engaged (flag)" in history
    assert "percentage 25% + 2 keys → off" in history
    assert "Restore the state before" in history


def test_kill_switch_engage__plain_post__redirects_back(client, oncall, concierge):
    client.force_login(oncall)
    response = client.post(
        ENGAGE,
        {"scope": "environment", "environment": "staging", "reason": "r", "next": "/flags/"},
    )
    assert response.status_code == 303 and response.url == "/flags/"
    assert Environment.objects.get(slug="staging").kill_switch_engaged


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"scope": "environment", "environment": "production", "reason": ""}, "Say why"),
        ({"scope": "environment", "environment": "moon", "reason": "r"}, "environment:"),
        ({"scope": "tag", "environment": "staging", "reason": "r"}, "one flag, one tag"),
        ({"scope": "everything", "environment": "staging", "reason": "r"}, "scope:"),
        ({"scope": "flag", "flag": "nope", "environment": "staging", "reason": "r"}, "flag:"),
    ],
)
def test_kill_switch_engage__bad_input__400_nothing_engaged(
    client, oncall, concierge, form, message
):
    client.force_login(oncall)
    response = client.post(ENGAGE, form, **HTMX)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not KillSwitch.objects.exists()
    assert state("ai-concierge", "production").mode == "percentage"


def test_kill_switch_engage__get__405(client, oncall):
    client.force_login(oncall)
    assert client.get(ENGAGE).status_code == 405


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("who", ["developer"])  # agents have no page session at all
def test_kill_switch_engage__developer_or_agent__403_and_denial_audited(
    request, client, who, production
):
    user = request.getfixturevalue(who)
    client.force_login(user)
    response = client.post(
        ENGAGE, {"scope": "environment", "environment": "staging", "reason": "r"}, **HTMX
    )
    assert response.status_code == 403
    assert "Refused" in response.content.decode()
    assert not Environment.objects.get(slug="staging").kill_switch_engaged
    # The environment switch is the environment rollback: its own action is refused first.
    assert denial_of(user, "environment.rollback").environment_id == "staging"


def _engaged(oncall, slug: str = "production") -> KillSwitch:
    environment = Environment.objects.get(slug=slug)
    return services.kill_switch_engage(actor=oncall, environment=environment, reason="r").switch


def test_kill_switch_release__with_reason__released_audited_nothing_turned_on(
    client, oncall, release_manager, concierge
):
    switch = _engaged(oncall)
    client.force_login(release_manager)
    response = client.post(
        f"/flags/kill-switches/{switch.pk}/release", {"reason": "fixed in 1.4.2"}, **HTMX
    )
    assert response.status_code == 200
    assert "nothing was turned back on" in response.content.decode()
    assert "flags-changed" in triggered(response)
    switch.refresh_from_db()
    assert switch.released_by == release_manager and switch.release_reason == "fixed in 1.4.2"
    assert not Environment.objects.get(slug="production").kill_switch_engaged
    assert state("ai-concierge", "production").mode == "off"
    audit = last_event(action="killswitch.release")
    assert (audit.actor, audit.reason) == (release_manager, "fixed in 1.4.2")


def test_kill_switch_release__without_reason__400_still_engaged(client, oncall, concierge):
    switch = _engaged(oncall)
    client.force_login(oncall)
    response = client.post(f"/flags/kill-switches/{switch.pk}/release", {}, **HTMX)
    assert response.status_code == 400
    assert "Say why it is safe" in response.content.decode()
    assert KillSwitch.objects.engaged().filter(pk=switch.pk).exists()


def test_kill_switch_release__unknown__404_and_get__405(client, oncall, concierge):
    switch = _engaged(oncall)
    client.force_login(oncall)
    assert client.post("/flags/kill-switches/999999/release", {"reason": "r"}).status_code == 404
    assert client.get(f"/flags/kill-switches/{switch.pk}/release").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_kill_switch_release__developer__403_and_denial_audited(client, oncall, developer):
    switch = _engaged(oncall, "staging")
    client.force_login(developer)
    response = client.post(f"/flags/kill-switches/{switch.pk}/release", {"reason": "r"}, **HTMX)
    assert response.status_code == 403
    assert KillSwitch.objects.engaged().filter(pk=switch.pk).exists()
    assert denial_of(developer, "killswitch.release").environment_id == "staging"


@pytest.mark.django_db(transaction=True)
def test_kill_switch_release__plain_post_refused__403_page_with_the_reason(
    client, oncall, developer
):
    switch = _engaged(oncall, "staging")
    client.force_login(developer)
    response = client.post(f"/flags/kill-switches/{switch.pk}/release", {"reason": "r"})
    assert response.status_code == 403
    assert "<html" in response.content.decode() and "Refused" in response.content.decode()


# --- Creating a flag ----------------------------------------------------------------------------


def test_flag_create__form__renders(client, developer):
    client.force_login(developer)
    response = client.get("/flags/new")
    assert response.status_code == 200
    assert 'name="key"' in response.content.decode()


def test_flag_create__developer__off_everywhere_audited_and_shown(client, developer):
    client.force_login(developer)
    response = client.post(
        "/flags/new",
        {
            "key": "new-checkout",
            "name": "New checkout",
            "description": "One-page checkout",
            "tags": "payments, Checkout",
            "type": "boolean",
        },
    )
    assert response.status_code == 302 and response.url == "/flags/new-checkout/"
    flag = Flag.objects.get(key="new-checkout")
    assert (flag.on_value, flag.off_value, flag.owner) == (True, False, developer)
    assert sorted(flag.tags.values_list("name", flat=True)) == ["checkout", "payments"]
    assert set(FlagState.objects.filter(flag=flag).values_list("mode", flat=True)) == {"off"}
    audit = last_event(action="flag.create")
    assert (audit.actor, audit.outcome, audit.target_name) == (developer, "ok", "new-checkout")
    page = client.get(response.url).content.decode()
    assert "Created new-checkout: it is off in every environment." in page


@pytest.mark.parametrize(
    ("type_", "on", "off", "expected"),
    [
        ("object", '{"limit": 3}', "{}", ({"limit": 3}, {})),
        ("integer", "5", "0", (5, 0)),
        ("float", "0.25", "0", (0.25, 0.0)),
        ("string", "v2", "v1", ("v2", "v1")),
        ("boolean", "true", "false", (True, False)),
        ("boolean", "", "", (True, False)),
    ],
)
def test_flag_create__typed_values__parsed_and_stored(client, developer, type_, on, off, expected):
    client.force_login(developer)
    response = client.post(
        "/flags/new", {"key": "typed", "type": type_, "on_value": on, "off_value": off}
    )
    assert response.status_code == 302
    flag = Flag.objects.get(key="typed")
    assert (flag.on_value, flag.off_value) == expected


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"key": "has space"}, "Start with a letter or digit"),
        ({"key": ""}, "This field is required"),
        ({"key": "k", "type": "integer", "on_value": "abc", "off_value": "0"}, "whole number"),
        ({"key": "k", "type": "object", "on_value": "[1]", "off_value": "{}"}, "JSON object"),
        ({"key": "k", "type": "object", "on_value": "{bad", "off_value": "{}"}, "JSON object"),
        ({"key": "k", "type": "float", "on_value": "", "off_value": "0"}, "needs this value"),
        ({"key": "k", "type": "boolean", "on_value": "yes"}, "true or false"),
        ({"key": "k", "type": "boolean", "on_value": "false"}, "always true"),
        ({"key": "k", "type": "string", "on_value": "a", "off_value": "a"}, "must differ"),
        ({"key": "k", "tags": "ok, not ok!"}, "Tags use letters"),
        ({"key": "k", "type": "colour"}, "Select a valid choice"),
    ],
)
def test_flag_create__bad_input__400_says_what_to_fix(client, developer, form, message):
    client.force_login(developer)
    response = client.post("/flags/new", {"type": "boolean", **form})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Flag.objects.exists()


def test_flag_create__duplicate_key__400(client, developer, concierge):
    client.force_login(developer)
    response = client.post("/flags/new", {"key": "ai-concierge", "type": "boolean"})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()


def test_flag_create__put__405(client, developer):
    client.force_login(developer)
    assert client.put("/flags/new").status_code == 405


@pytest.mark.django_db(transaction=True)
def test_flag_create__auditor__403_and_denial_audited(client, auditor):
    client.force_login(auditor)
    page = client.get("/flags/new").content.decode()
    assert "Your roles do not allow creating flags" in page
    response = client.post("/flags/new", {"key": "sneaky", "type": "boolean"})
    assert response.status_code == 403
    assert "Refused" in response.content.decode()
    assert not Flag.objects.exists()
    assert denial_of(auditor, "flag.create").target_name == "sneaky"


# --- Detail page and history --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_flag_detail__history__diffs_actors_kinds_outcomes_and_restore_buttons(
    client, release_manager, agent, staging, production
):
    flag = services.flag_create(actor=release_manager, key="ai-concierge", name="AI")
    services.flag_state_set(
        actor=agent, flag=flag, environment=staging, mode="allowlist", allowlist=["a", "b"]
    )
    with pytest.raises(services.ApprovalRequired):  # agents act through the API, never pages
        services.flag_state_set(
            actor=agent, flag=flag, environment=production, mode="full", reason="go"
        )
    client.force_login(release_manager)
    html = client.get("/flags/ai-concierge/?tab=history").content.decode()
    assert "mode off → allowlist" in html and "allowlist +2 keys" in html
    assert 'ci-bot <span class="pill pill-agent">agent</span>' in html
    assert 'rita <span class="pill pill-human">human</span>' in html
    assert "Refused: changed the state" in html and "pill-denied" in html
    assert "agent accounts may prepare and request production changes" in html
    assert "asked for full" in html
    assert html.count("Restore this state") == 1  # the staging change; not the refusal

    only_production = client.get(
        "/flags/ai-concierge/", {"tab": "history", "environment": "production"}, **HTMX
    ).content.decode()
    assert "Refused" in only_production and "mode off → allowlist" not in only_production


def test_flag_detail__state_tab__kill_switch_controls_for_flag_and_tags(
    client, oncall, developer, staging, concierge
):
    services.kill_switch_engage(
        actor=oncall,
        environment=staging,
        scope="tag",
        tag=Tag.objects.get(name="concierge"),
        reason="model drift",
    )
    client.force_login(oncall)
    html = client.get("/flags/ai-concierge/").content.decode()
    assert 'data-testid="flag-kill-production"' in html
    assert 'data-testid="tag-kill-concierge-production"' in html
    assert 'data-testid="tag-kill-concierge-staging"' not in html  # engaged there: release
    assert "model drift" in html and "Release kill switch" in html
    client.force_login(developer)
    html = client.get("/flags/ai-concierge/").content.decode()
    assert 'data-testid="flag-kill-production"' not in html
    assert "Release kill switch" not in html
