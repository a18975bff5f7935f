"""Sections apps add to each environment's card on the dashboard (core knows no app).

An app registers, in its AppConfig.ready(), a template and a provider: given the
environments, the provider answers {environment id: what the template shows}, in a fixed
number of queries whatever the environments hold. The template sees it as `section`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .models import Environment


@dataclass(frozen=True)
class DashboardSection:
    name: str
    template: str
    provider: Callable[[Sequence[Environment]], dict[int, Any]]


_SECTIONS: dict[str, DashboardSection] = {}


def dashboard_section_register(
    name: str, template: str, provider: Callable[[Sequence[Environment]], dict[int, Any]]
) -> None:
    _SECTIONS[name] = DashboardSection(name, template, provider)


def dashboard_sections_for(
    environments: Sequence[Environment],
) -> dict[int, list[tuple[str, Any]]]:
    """environment id -> [(template, data)] in registration order."""
    rendered: dict[int, list[tuple[str, Any]]] = {env.pk: [] for env in environments}
    for section in _SECTIONS.values():
        data = section.provider(environments)
        for env in environments:
            rendered[env.pk].append((section.template, data.get(env.pk)))
    return rendered
