from django.db.backends.postgresql import base

from releasecontrol.db import DenialsAfterTransaction


class DatabaseWrapper(DenialsAfterTransaction, base.DatabaseWrapper):
    pass
