"""WSGI entry point: gunicorn releasecontrol.wsgi:application"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasecontrol.settings")

application = get_wsgi_application()
