"""`key=value` command-line overrides, read as an OmegaConf dotlist (values parsed as YAML)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ehrbench.errors import EhrbenchError


def parse_dotlist(items: Sequence[str], examples: str) -> dict[str, Any]:
    """The nested settings that `items` (`a.b=1`, `k=[4,all]`) describe.

    `examples` names a few valid overrides for the error message of a malformed item.
    """
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise EhrbenchError(f"override {item!r} is not `key=value` (for example {examples}).")
    try:
        return OmegaConf.to_container(OmegaConf.from_dotlist(list(items)))
    except (OmegaConfBaseException, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0]
        raise EhrbenchError(
            f"the overrides {list(items)} cannot be read ({first}); write each as `key=value`, "
            "a list as `k=[4,all]`."
        ) from exc
