"""Test settings: the application's settings, a fast password hasher. The audit trigger's
bypass is not here: tests/conftest.py switches it on around the flush between transactional
tests only, so the code under test always meets the live trigger."""

import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0f3b1c8e9d7a6b5c4d3e2f1a0b9c8d7e")
os.environ.setdefault("ALLOW_PLAIN_HTTP", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

from releasecontrol.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
