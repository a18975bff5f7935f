from django.db.backends.sqlite3 import base

from releasecontrol.db import DenialsAfterTransaction


class DatabaseWrapper(DenialsAfterTransaction, base.DatabaseWrapper):
    pass
