"""The agent API for flags: /api/v1/flags..., /api/v1/environments/{env}/rollback."""

urlpatterns: list = []
