"""Logs never show secrets: personal API tokens, SDK keys and bearer credentials are masked
by the filter on every configured handler."""

import io
import logging
import sys

import pytest

from releasecontrol.logging import RedactSecretsFilter

TOKEN = "rcp_Zx8vQk2LmN4pR7sT1uW3yA5bC6dE9fG0hJ-_kL"
SDK_KEY = "rcs_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
BEARER = "eyJhbGciOiJIUzI1NiJ9.secret-bearer-value"


def record(msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord("test", logging.INFO, __file__, 1, msg, args, None)


@pytest.mark.parametrize(
    "msg, args, secret",
    [
        ("issued %s for dev", (TOKEN,), TOKEN),
        ("sdk key %s", (SDK_KEY,), SDK_KEY),
        ("Authorization: Bearer %s", (BEARER,), BEARER),
        ("headers={'Authorization': 'bearer %s'}", (BEARER,), BEARER),
        (f"token={TOKEN}&x=1", (), TOKEN),
    ],
)
def test_redact_filter__secret_in_message__masked(msg, args, secret):
    entry = record(msg, *args)

    assert RedactSecretsFilter().filter(entry) is True
    text = entry.getMessage()
    assert secret not in text
    assert secret[4:12] not in text
    assert "[REDACTED]" in text


def test_redact_filter__plain_message__untouched():
    entry = record("flag %s set to %d%%", "new-checkout", 5)

    RedactSecretsFilter().filter(entry)

    assert entry.getMessage() == "flag new-checkout set to 5%"


def test_redact_filter__secret_in_an_exception__masked():
    try:
        raise ValueError(f"bad credential {TOKEN}")
    except ValueError:
        entry = logging.LogRecord(
            "test", logging.ERROR, __file__, 1, "request failed", (), sys.exc_info()
        )

    RedactSecretsFilter().filter(entry)

    text = logging.Formatter().format(entry)
    assert TOKEN not in text
    assert "ValueError: bad credential rcp_[REDACTED]" in text


def test_logging_config__every_root_handler__redacts(caplog):
    handlers = logging.getLogger().handlers
    configured = [h for h in handlers if any(isinstance(f, RedactSecretsFilter) for f in h.filters)]
    assert configured, "the settings' console handler should carry the redaction filter"

    logger = logging.getLogger("releasecontrol.test")
    # An in-process Celery test worker may have raised the root level; this test is about
    # what reaches the handlers, not about levels.
    logger.setLevel(logging.INFO)
    for handler in configured:
        stream = io.StringIO()
        previous = handler.setStream(stream)
        try:
            logger.warning("token %s", TOKEN)
        finally:
            handler.setStream(previous)
        assert "rcp_[REDACTED]" in stream.getvalue()
        assert TOKEN not in stream.getvalue()
