"""Keep secrets out of logs: tokens, keys and bearer headers are masked in every record."""

from __future__ import annotations

import logging
import re

# Personal API tokens (rcp_), environment SDK keys (rcs_) and any bearer credential.
_SECRET = re.compile(r"\b(rc[ps]_)[A-Za-z0-9_-]{8,}|(Bearer\s+)\S+", re.IGNORECASE)


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: (m.group(1) or m.group(2)) + "[REDACTED]", text)


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        # An exception's message can carry a secret too. Formatters reuse exc_text once set.
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
