"""Django's PostgreSQL and SQLite backends with the audit trail's connection behaviour
(releasecontrol/db.py). settings.py selects them for DATABASE_URL's engine."""
