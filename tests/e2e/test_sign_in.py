"""A real browser (Debian's Chromium through Playwright): sign in, see the three environments,
open production and see its red banner, sign out."""

import re

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD

pytestmark = pytest.mark.e2e


def test_sign_in__release_manager__sees_environments_then_signs_out(
    live_server, page, release_manager
):
    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill(release_manager.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(live_server.url + "/")
    expect(page.get_by_test_id("signed-in-as")).to_have_text("rita")
    for slug in ("development", "staging", "production"):
        expect(page.get_by_test_id(f"env-{slug}")).to_be_visible()
    expect(page.get_by_test_id("production-banner")).to_have_count(0)

    page.get_by_test_id("env-production").get_by_role("link", name="Production").click()

    expect(page).to_have_url(live_server.url + "/environments/production/")
    banner = page.get_by_test_id("production-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("PRODUCTION")
    colour = banner.evaluate("el => getComputedStyle(el).backgroundColor")
    red, green, blue = (int(c) for c in re.findall(r"\d+", colour)[:3])
    assert red > 150 and green < 100 and blue < 100, f"the banner is not red: {colour}"

    page.get_by_role("button", name="Sign out").click()

    expect(page).to_have_url(live_server.url + "/accounts/login/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
