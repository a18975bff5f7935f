"""Steps the browser tests share."""

import os
from pathlib import Path

from playwright.sync_api import Page, expect

from releasecontrol.models import User
from tests.factories import PASSWORD

# Set E2E_SCREENSHOTS=/some/dir to keep a picture of each step worth looking at.
SCREENSHOTS = os.environ.get("E2E_SCREENSHOTS", "")


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def sign_in(page: Page, base_url: str, user: User) -> None:
    # Leave the previous page first: a poll of it still in flight could set a CSRF cookie
    # after the cookies are cleared, and the sign-in form's token would not match it.
    page.goto("about:blank")
    page.context.clear_cookies()
    page.goto(base_url + "/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_test_id("signed-in-as")).to_have_text(user.username)
