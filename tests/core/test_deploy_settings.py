"""Production settings: `check --deploy` is clean with DEBUG off and a real secret; without a
real secret the site refuses to start, saying why."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What the test run itself sets (tests/settings.py, tests/conftest.py), which production lacks.
STRIPPED = (
    "DJANGO_SETTINGS_MODULE",
    "SECRET_KEY",
    "ALLOW_PLAIN_HTTP",
    "DEBUG",
    "ALLOWED_HOSTS",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in STRIPPED}
    environment.update(DJANGO_SETTINGS_MODULE="releasecontrol.settings", **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy__debug_off_real_secret__clean():
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="example.com",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    assert "ALLOW_PLAIN_HTTP" not in result.stderr


def test_check_deploy__allow_plain_http__says_so_in_the_log():
    result = manage(
        "check",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        ALLOW_PLAIN_HTTP="1",
    )

    assert result.returncode == 0, result.stderr
    assert "ALLOW_PLAIN_HTTP=1" in result.stderr


@pytest.mark.parametrize(
    "secret",
    [None, "development-only-secret-key-do-not-use-in-production", "django-insecure-abc123"],
)
def test_settings__debug_off_without_a_real_secret__refuse_to_start(secret):
    env = {"DEBUG": "0", "ALLOWED_HOSTS": "example.com"}
    if secret is not None:
        env["SECRET_KEY"] = secret

    result = manage("check", **env)

    assert result.returncode != 0
    assert "SECRET_KEY is missing or is a development default" in result.stderr


def test_settings__debug_on_without_a_secret__starts():
    result = manage("check", DEBUG="1")

    assert result.returncode == 0, result.stderr
