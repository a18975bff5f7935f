"""At 3 a.m.: on-call opens the on-call page of production in a real Chromium, types the
environment's name and a reason, presses the big red button, and the application's real
OpenFeature client (OFREP provider, production SDK key, same live server) sees every flag off
within a second. Then a restore of two of the three flags: chosen on the snapshot page, asked
as a rollback.restore request, approved in the browser by a release manager (another person),
executed by on-call. The third flag stays off; the release stays rolled back. Set
E2E_SCREENSHOTS=/some/dir to keep pictures."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from openfeature import api
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from playwright.sync_api import Page, expect

from approvals.models import ApprovalRequest
from approvals.services import checklist_item_set
from flags import evaluation
from flags.services import sdk_key_issue
from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, Environment, User
from rollouts.models import Release, Rollback
from tests.e2e.browser import screenshot, sign_in
from tests.rollouts.helpers import flags_on, live_release

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Each flag's targeting key that gets the on-value while it is on (tests/rollouts/helpers.ON).
KEYS = {"new-checkout": "anyone", "calling": "vip-1", "ocr": "pilot-7"}
WITHIN = 1.0  # seconds from the press to every flag off in the application


@pytest.fixture(autouse=True)
def fresh_evaluation(settings) -> Iterator[None]:
    settings.FLAG_SNAPSHOT_MAX_AGE = 0
    evaluation.store.reset()
    yield
    evaluation.store.reset()
    api.clear_providers()


def values(client) -> dict[str, bool]:
    return {
        key: client.get_boolean_value(key, True, EvaluationContext(targeting_key=who))
        for key, who in KEYS.items()
    }


def test_oncall__rolls_production_back_sdk_sees_all_off__restores_two_of_three_approved(
    page: Page, live_server, release_manager, oncall
) -> None:
    base = live_server.url
    production = Environment.objects.get(slug="production")
    flags = flags_on(release_manager, production)
    release = live_release(production, flags[0])
    key = sdk_key_issue(actor=User.system(), environment=production, name="web").raw
    provider = OFREPProvider(base, headers_factory=lambda: {"Authorization": f"Bearer {key}"})
    api.set_provider(provider, "web")
    sdk = api.get_client("web")
    assert values(sdk) == dict.fromkeys(KEYS, True)

    # The on-call page: production in red, the blast radius, the button asks once.
    sign_in(page, base, oncall)
    page.get_by_test_id("nav-oncall").click()
    expect(page.get_by_test_id("oncall-title")).to_have_text("On-call: Production")
    expect(page.get_by_test_id("production-banner")).to_be_visible()
    expect(page.get_by_test_id("blast-radius")).to_contain_text("Turns off 3 flags")
    expect(page.get_by_test_id("blast-radius")).to_contain_text("stops 1 live release")
    expect(page.get_by_test_id(f"release-{release.pk}")).to_contain_text("canary")
    button = page.get_by_test_id("rollback-button")
    expect(button).to_be_disabled()
    page.get_by_test_id("rollback-confirm").fill("staging")
    page.get_by_test_id("rollback-reason").fill("checkout 5xx at 4%, calls failing")
    expect(button).to_be_disabled()  # the wrong name
    page.get_by_test_id("rollback-confirm").fill("production")
    expect(button).to_be_enabled()
    screenshot(page, "oncall-before")

    pressed = time.monotonic()
    button.click()
    while values(sdk) != dict.fromkeys(KEYS, False):
        assert time.monotonic() - pressed < WITHIN, "the application still sees a flag on"
        time.sleep(0.01)
    assert time.monotonic() - pressed < WITHIN

    # After it: what was turned off and stopped, and the snapshot.
    rollback = Rollback.objects.get()
    expect(page.get_by_test_id("rollback-title")).to_have_text(
        f"Rollback {rollback.pk} of Production"
    )
    expect(page.get_by_test_id("turned-off-count")).to_have_text("3")
    expect(page.get_by_test_id("stopped-count")).to_have_text("1")
    expect(page.get_by_test_id("snapshot-calling")).to_contain_text("percentage 20%")
    expect(page.get_by_test_id("rollback-state")).to_contain_text("kill switch is engaged")
    screenshot(page, "oncall-snapshot")
    assert Release.objects.get().status == "rolled_back"

    # Restore two of three: chosen on the snapshot, asked as a request.
    page.get_by_test_id("choose-new-checkout").check()
    page.get_by_test_id("choose-calling").check()
    page.get_by_test_id("restore-request").click()
    expect(page.get_by_test_id("preview")).to_contain_text("rollback.restore")
    expect(page.get_by_test_id("preview")).to_contain_text("calling in production")
    page.fill("#id_title", "Restore checkout and calling after the 5xx fix")
    page.get_by_test_id("request-submit").click()
    expect(page.get_by_test_id("status")).to_have_text("Pending")  # the request's own page
    request = ApprovalRequest.objects.get(action="rollback.restore")
    assert request.parameters == {"rollback": rollback.pk, "flags": ["calling", "new-checkout"]}
    for item in request.checklist.filter(required=True):
        checklist_item_set(actor=oncall, item=item, checked=True, evidence="errors back to 0.1%")

    # Another person approves it.
    sign_in(page, base, release_manager)
    page.goto(f"{base}/approvals/{request.pk}/")
    page.get_by_test_id("decide-go").locator("summary").click()
    page.get_by_test_id("confirm-go").click()
    expect(page.get_by_test_id("status")).to_have_text("Approved")
    assert values(sdk) == dict.fromkeys(KEYS, False), "approved is not executed"

    # On-call executes it: the switch released, two states back as new versions.
    sign_in(page, base, oncall)
    page.goto(f"{base}/approvals/{request.pk}/")
    page.get_by_test_id("execute").locator("summary").click()
    page.get_by_test_id("execute-reason").fill("Fix deployed, error rate flat")
    page.get_by_test_id("confirm-execute").click()
    expect(page.get_by_test_id("status")).to_have_text("Executed")
    screenshot(page, "oncall-restored")

    assert values(sdk) == {"new-checkout": True, "calling": True, "ocr": False}
    assert not Environment.objects.get(pk=production.pk).kill_switch_engaged
    assert Release.objects.get().status == "rolled_back"  # it starts again, never resumes
    page.goto(f"{base}/rollbacks/{rollback.pk}/")
    expect(page.get_by_test_id("rollback-state")).to_contain_text("Restored by omar")
    restored = AuditEvent.objects.get(action="rollback.restore")
    assert restored.after["approval"]["approvers"] == ["rita"]
    assert audit_verify().ok
