"""Settings, read from the environment.

Production differs from development only in environment values. Without any
of them the site runs on an embedded default (SQLite in WAL mode under var/,
Celery on the filesystem broker) so the README's run command needs nothing
installed by hand.
"""

import contextlib
import logging
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from approvals.schedule import approvals_beat_schedule
from rollouts.deployment_schedule import deployments_beat_schedule
from rollouts.schedule import rollouts_beat_schedule

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
ALLOW_PLAIN_HTTP = env.bool("ALLOW_PLAIN_HTTP", default=False)

# A key this well known must never sign production sessions.
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-do-not-use-in-production"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default="")
if (
    not SECRET_KEY
    or SECRET_KEY == DEVELOPMENT_SECRET_KEY
    or SECRET_KEY.startswith("django-insecure")
):
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is missing or is a development default. Set SECRET_KEY to a long random "
            'value (for example: python -c "import secrets; print(secrets.token_urlsafe(50))"), '
            "or set DEBUG=1 for local development."
        )
    SECRET_KEY = SECRET_KEY or DEVELOPMENT_SECRET_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "guardian",
    "axes",
    "releasecontrol",
    "flags",
    "rollouts",
    "approvals",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Before anything reads the request: NUL, lone surrogates, invalid UTF-8, NaN, deep JSON
    # and oversized bodies are refused here (400/413), for OFREP and the API too.
    "releasecontrol.middleware.InputValidationMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "releasecontrol.middleware.RequestContextMiddleware",
    # OFREP (SDK keys, no cookies) is answered here, without the page middleware below;
    # every other path goes on down. See flags/ofrep.py.
    "flags.ofrep.OfrepMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "releasecontrol.middleware.HtmxLoginRedirectMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns lockouts into the locked-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "releasecontrol.urls"
WSGI_APPLICATION = "releasecontrol.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "releasecontrol.context_processors.shell",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'releasecontrol.sqlite3'}"
    ),
}
# Django's backends plus the audit trail's connection behaviour: a refusal's `denied` event
# is written once the refused transaction has ended (releasecontrol/db.py).
_BACKENDS = {
    "django.db.backends.postgresql": "releasecontrol.backends.postgresql",
    "django.db.backends.sqlite3": "releasecontrol.backends.sqlite3",
}
if DATABASES["default"]["ENGINE"] not in _BACKENDS:
    raise ImproperlyConfigured("DATABASE_URL must be a postgres:// or sqlite:/// URL.")
DATABASES["default"]["ENGINE"] = _BACKENDS[DATABASES["default"]["ENGINE"]]
if DATABASES["default"]["ENGINE"] == "releasecontrol.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers work while the worker writes; IMMEDIATE takes the write
        # lock at BEGIN so two writers queue instead of failing on upgrade.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Accounts and sign-in -------------------------------------------------------
AUTH_USER_MODEL = "releasecontrol.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # People only: agent accounts use API tokens, the system actor never signs in.
    "releasecontrol.auth.HumanBackend",
    "guardian.backends.ObjectPermissionBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-guardian: no anonymous user row; every page needs a signed-in user anyway.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

# django-axes: failed sign-ins are kept in the database and throttled per
# username and client address together.
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_SENSITIVE_PARAMETERS = ["password", "token", "authorization"]
# The same client address the audit trail records (see USE_X_FORWARDED_FOR).
AXES_CLIENT_IP_CALLABLE = "releasecontrol.middleware.client_ip_of"

# --- Security -------------------------------------------------------------------
# Content-Security-Policy (django-csp): scripts only from our own files (no inline script or
# handler, no eval: htmx is configured not to evaluate any, Plotly is its strict bundle).
# Styles allow 'unsafe-inline' for style attributes: Plotly sets them on what it draws and
# templates set a colour or a bar width (docs/operations.md, "Content-Security-Policy").
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)
CSRF_COOKIE_HTTPONLY = False  # htmx reads nothing from it: the token is in <body hx-headers>
if not DEBUG and not ALLOW_PLAIN_HTTP:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # Load balancers probe health over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
if ALLOW_PLAIN_HTTP:
    SILENCED_SYSTEM_CHECKS = ["security.W004", "security.W008", "security.W012", "security.W016"]

# --- Internationalisation ------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = False
USE_TZ = True

# --- Static files (htmx and plotly live in static/vendor: no CDN) --------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Files are found in place (no collectstatic needed); STATIC_ROOT holds what collectstatic adds.
WHITENOISE_USE_FINDERS = True
with contextlib.suppress(OSError):
    Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)
WHITENOISE_AUTOREFRESH = DEBUG

# --- Redis and Celery -----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
    }
CELERY_TASK_IGNORE_RESULT = True
# Workers log through LOGGING above, so secrets stay redacted there too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# The gate monitor's heartbeat: beat queues it, a worker stamps it, /healthz reads it.
MONITOR_HEARTBEAT_INTERVAL = env.float("MONITOR_HEARTBEAT_INTERVAL", default=10.0)
MONITOR_HEARTBEAT_STALE_AFTER = env.float("MONITOR_HEARTBEAT_STALE_AFTER", default=60.0)
CELERY_BEAT_SCHEDULE = {
    "monitor-heartbeat": {
        "task": "releasecontrol.tasks.monitor_heartbeat",
        "schedule": MONITOR_HEARTBEAT_INTERVAL,
        "options": {"expires": MONITOR_HEARTBEAT_INTERVAL},
    },
}
# The site's apps add their periodic tasks (approvals: expiry and scheduled executions).
APPROVALS_TASK_INTERVAL = env.float("APPROVALS_TASK_INTERVAL", default=30.0)
CELERY_BEAT_SCHEDULE.update(approvals_beat_schedule(APPROVALS_TASK_INTERVAL))

# --- Deployments (rollouts/deployments.py) and DORA figures (rollouts/dora.py) ---------------
# A deployment counts as a change failure when a gate or an emergency rollback undoes it
# within this many hours of its success.
CHANGE_FAILURE_WINDOW_HOURS = env.float("CHANGE_FAILURE_WINDOW_HOURS", default=24.0)
# What GET /api/v1/deployments/{id} answers in Retry-After while a pipeline waits.
DEPLOYMENT_RETRY_AFTER_SECONDS = env.int("DEPLOYMENT_RETRY_AFTER_SECONDS", default=10)
CELERY_BEAT_SCHEDULE.update(deployments_beat_schedule(APPROVALS_TASK_INTERVAL))

# --- Notifications (releasecontrol/notifications): the outbox, delivered by beat -------------
# EMAIL_URL: smtp+tls://user:password@host:587 (STARTTLS), smtp+ssl://...:465, smtp://host:25.
# Without it, the console backend with DEBUG (messages go to stdout), else SMTP on localhost:25.
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
for _name, _value in _email.items():
    if _name.startswith("EMAIL_") and _value not in (None, ""):
        globals()[_name] = _value
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="release-control@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Makes the links in emails absolute, e.g. https://release.example.com.
SITE_URL = env.str("SITE_URL", default="")
NOTIFICATION_DELIVERY_INTERVAL = env.float("NOTIFICATION_DELIVERY_INTERVAL", default=10.0)
NOTIFICATION_TIMEOUT = env.float("NOTIFICATION_TIMEOUT", default=5.0)  # seconds, per send
NOTIFICATION_MAX_ATTEMPTS = env.int("NOTIFICATION_MAX_ATTEMPTS", default=8)
NOTIFICATION_RETRY_SECONDS = env.float("NOTIFICATION_RETRY_SECONDS", default=30.0)
NOTIFICATION_RETRY_MAX_SECONDS = env.float("NOTIFICATION_RETRY_MAX_SECONDS", default=3600.0)
CELERY_BEAT_SCHEDULE["notifications-deliver"] = {
    "task": "releasecontrol.tasks.notifications_deliver",
    "schedule": NOTIFICATION_DELIVERY_INTERVAL,
    "options": {"expires": NOTIFICATION_DELIVERY_INTERVAL},
}

# --- Gate monitor (rollouts/monitor.py): one tick every GATE_MONITOR_INTERVAL seconds --------
GATE_MONITOR_INTERVAL = env.float("GATE_MONITOR_INTERVAL", default=10.0)
# Releases one tick takes per transaction (a tick goes on batch after batch until none is left).
GATE_MONITOR_BATCH = env.int("GATE_MONITOR_BATCH", default=1000)
METRICS_PRUNE_INTERVAL = env.float("METRICS_PRUNE_INTERVAL", default=3600.0)
CELERY_BEAT_SCHEDULE.update(rollouts_beat_schedule(GATE_MONITOR_INTERVAL, METRICS_PRUNE_INTERVAL))
# The tick stamps the heartbeat itself when it completes: a separate heartbeat task would stay
# fresh while every tick fails.
CELERY_BEAT_SCHEDULE.pop("monitor-heartbeat", None)

# Approval requests expire this long after they were made, or at their window's end if later.
APPROVAL_REQUEST_TTL_HOURS = env.float("APPROVAL_REQUEST_TTL_HOURS", default=72.0)

# --- Metric gates (rollouts/gates.py, docs/gates.md) -------------------------------------
# This many consecutive `error` evaluations of a gate pause its release.
GATE_ERROR_LIMIT = env.int("GATE_ERROR_LIMIT", default=4)
# Metric samples and gate evaluations older than this many days are pruned.
METRIC_RETENTION_DAYS = env.int("METRIC_RETENTION_DAYS", default=30)
# Prometheus gates query <PROMETHEUS_URL>/api/v1/query; empty: such gates answer `error`.
PROMETHEUS_URL = env.str("PROMETHEUS_URL", default="")
PROMETHEUS_TIMEOUT = env.float("PROMETHEUS_TIMEOUT", default=5.0)  # seconds, per query

# --- Request size ----------------------------------------------------------------
# Larger bodies answer 413 (releasecontrol.middleware.InputValidationMiddleware); nothing
# here takes file uploads.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env.int("DATA_UPLOAD_MAX_NUMBER_FIELDS", default=1000)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# --- API tokens -----------------------------------------------------------------
API_TOKEN_DEFAULT_DAYS = env.int("API_TOKEN_DEFAULT_DAYS", default=90)
# Behind a proxy you run, the client address is the last X-Forwarded-For entry (the one
# your proxy appended; earlier entries are whatever the client sent). Off: REMOTE_ADDR.
USE_X_FORWARDED_FOR = env.bool("USE_X_FORWARDED_FOR", default=False)

# --- Flag evaluation (OFREP) -----------------------------------------------------
# How old (seconds) a process's flag snapshot may get before it asks PostgreSQL whether
# anything changed; no evaluation uses one older than twice this (flags/evaluation.py).
FLAG_SNAPSHOT_MAX_AGE = env.float("FLAG_SNAPSHOT_MAX_AGE", default=0.05)
# Evaluations per second per SDK key, counted in each process separately (0: no limit).
OFREP_RATE_LIMIT_PER_SECOND = env.float("OFREP_RATE_LIMIT_PER_SECOND", default=0.0)

# --- Logging: one line per event; secrets are masked before anything is written --
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "releasecontrol.logging.RedactSecretsFilter"}},
    "formatters": {
        "line": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "line",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
    },
}

if ALLOW_PLAIN_HTTP and not DEBUG:
    logging.getLogger("releasecontrol.settings").warning(
        "ALLOW_PLAIN_HTTP=1: TLS-only cookies, HSTS and the HTTPS redirect are OFF. "
        "Use this for loopback testing only."
    )
