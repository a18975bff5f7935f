"""Test settings: the application's settings plus the test database's way past the audit
trigger, which production connections never have (see releasecontrol/db.py)."""

import os

os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "tests-only-secret-key-0f3b1c8e9d7a6b5c4d3e2f1a0b9c8d7e")
os.environ.setdefault("ALLOW_PLAIN_HTTP", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

from releasecontrol.settings import *  # noqa: F403
from releasecontrol.settings import DATABASES

for _database in DATABASES.values():
    _database["AUDIT_MAINTENANCE"] = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
