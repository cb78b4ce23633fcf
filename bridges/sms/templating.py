"""SMS texts from jinja2 templates: ``templates/{name}.{language}.j2``.

Every character of an SMS costs money and may push it into another segment, so templates are
short and whitespace is trimmed. A missing variable is an error (StrictUndefined), never an
empty gap in a text sent to someone's phone. Plain text: no HTML escaping.
"""

from __future__ import annotations

import os
from typing import Any

import jinja2

TEMPLATE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
FALLBACK_LANGUAGE = "en"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(name: str, language: str, **variables: Any) -> str:
    """Render template ``name`` in ``language`` (``en`` when there is no such translation)."""
    try:
        template = _env.get_template(f"{name}.{language}.j2")
    except jinja2.TemplateNotFound:
        template = _env.get_template(f"{name}.{FALLBACK_LANGUAGE}.j2")
    return template.render(**variables).strip()


def languages(name: str) -> list[str]:
    """The languages template ``name`` exists in."""
    prefix = f"{name}."
    return sorted(f[len(prefix):-3] for f in os.listdir(TEMPLATE_DIR) if f.startswith(prefix) and f.endswith(".j2"))
