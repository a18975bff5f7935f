"""The flag board and flag pages (namespace `flags`)."""

app_name = "flags"

urlpatterns: list = [
    # Filled in by the board: see views.py.
]
