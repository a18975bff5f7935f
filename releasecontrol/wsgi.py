"""WSGI entry point: gunicorn releasecontrol.wsgi:application"""

import os

from django.core.wsgi import get_wsgi_application

from releasecontrol.collector import collector_settle

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "releasecontrol.settings")

application = get_wsgi_application()
# Everything loaded so far lives as long as the process: out of the collector's way.
collector_settle()
