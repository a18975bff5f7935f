"""The flag board (HTMX) and flag pages."""
