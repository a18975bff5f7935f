"""Whatever people type (a flag's name and description, allowlist keys, reasons, refused
requests) is shown escaped on every page that shows it: never as markup, never evaluated as a
template. Tags are slugs, so a tag carrying markup is refused before anything is stored."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from flags import services as flags
from releasecontrol.models import AuditEvent, Environment

pytestmark = pytest.mark.django_db(transaction=True)  # the refusal commits on its own connection

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
TEMPLATE = "{{7*7}}"
ESCAPED = {
    SCRIPT: "&lt;script&gt;alert(1)&lt;/script&gt;",
    IMG: "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;",
}
RAW_MARKUP = ("<script>alert(1)", "<img src=x onerror", "onerror=alert(1)>")


@pytest.fixture
def hostile(release_manager, oncall, developer):
    envs = {e.slug: e for e in Environment.objects.all()}
    flag = flags.flag_create(
        actor=release_manager,
        key="xss-flag",
        name=f"{SCRIPT} {TEMPLATE}",
        description=IMG,
        tags=["payments"],
        reason=SCRIPT,
    )
    flags.flag_state_set(
        actor=release_manager,
        flag=flag,
        environment=envs["staging"],
        mode="allowlist",
        allowlist=[SCRIPT, IMG, TEMPLATE],
        reason=f"{IMG} {TEMPLATE}",
    )
    with pytest.raises(flags.ApprovalRequired):  # refused (recorded), and told what to request
        flags.flag_state_set(
            actor=developer, flag=flag, environment=envs["production"], mode="full", reason=SCRIPT
        )
    flags.kill_switch_engage(actor=oncall, environment=envs["development"], reason=IMG)
    return {
        "set": AuditEvent.objects.filter(action="flag.state.set", outcome="ok").latest("id"),
        "denied": AuditEvent.objects.filter(action="flag.state.set", outcome="denied").latest("id"),
    }


def assert_escaped(html: str, page: str, *, shows: bool = True) -> None:
    raw = [marker for marker in RAW_MARKUP if marker in html]
    assert raw == [], f"{page}: raw markup {raw}"
    if shows:  # the page shows some of the text: escaped
        assert any(escaped in html for escaped in ESCAPED.values()), f"{page}: shows none of it"


def test_flag_create__tag_with_markup__refused_before_anything_is_stored(release_manager):
    with pytest.raises(ValidationError):
        flags.flag_create(actor=release_manager, key="tagged", name="T", tags=[SCRIPT])

    assert not AuditEvent.objects.filter(target_name="tagged").exists()


# Pages that show none of what was typed today (only names and states) are still checked
# for raw markup: the dashboard, and admin lists without free-text columns.
SHOWS_NOTHING_TYPED = {"dashboard", "/admin/flags/killswitch/", "/admin/releasecontrol/auditevent/"}

PAGES = {
    "dashboard": lambda e: "/",
    "environment": lambda e: "/environments/development/",
    "board": lambda e: "/flags/",
    "flag page": lambda e: "/flags/xss-flag/",
    "history": lambda e: "/flags/xss-flag/?tab=history",
    "audit explorer": lambda e: "/audit/",
    "event detail (change)": lambda e: f"/audit/events/{e['set'].pk}/",
    "event detail (refusal)": lambda e: f"/audit/events/{e['denied'].pk}/",
}


@pytest.mark.parametrize("page_name", PAGES)
def test_page__hostile_text_everywhere__rendered_escaped(
    client, release_manager, hostile, page_name
):
    client.force_login(release_manager)

    response = client.get(PAGES[page_name](hostile))

    assert response.status_code == 200
    assert_escaped(response.content.decode(), page_name, shows=page_name not in SHOWS_NOTHING_TYPED)


ADMIN_PAGES = {
    "/admin/flags/flag/": lambda e: "/admin/flags/flag/",
    "/admin/releasecontrol/auditevent/": lambda e: "/admin/releasecontrol/auditevent/",
    "/admin/flags/killswitch/": lambda e: "/admin/flags/killswitch/",
    "audit event in admin": lambda e: f"/admin/releasecontrol/auditevent/{e['denied'].pk}/change/",
    "audit search in admin": lambda e: "/admin/releasecontrol/auditevent/?q=alert",
}


@pytest.mark.parametrize("page_name", ADMIN_PAGES)
def test_admin_page__hostile_text__rendered_escaped(client, admin_user, hostile, page_name):
    client.force_login(admin_user)

    response = client.get(ADMIN_PAGES[page_name](hostile))

    assert response.status_code == 200
    assert_escaped(
        response.content.decode(),
        page_name,
        shows=page_name not in SHOWS_NOTHING_TYPED | {"audit search in admin"},
    )


def test_flag_page__template_syntax_in_name__shown_literally(client, release_manager, hostile):
    client.force_login(release_manager)

    html = client.get("/flags/xss-flag/").content.decode()

    assert TEMPLATE in html
