"""Read a YAML config (cohort, predicates, task suite) into plain values, with each key's line.

The YAML dialect is OmegaConf's (the one ACES reads configs with): its loader resolves `1e5` as a
number, keeps dates as text, refuses duplicate keys and applies `<<` merge keys. The file is
composed once, checked, then constructed with that loader into dicts, lists and scalars; the
values are not wrapped in OmegaConf objects (nothing is interpolated, `???` stays text), which
keeps a config with 200,000 codes (6 MB) loading in seconds.

Limits, each an error naming the file, the YAML path and the line:

- aliases (`*name`) may add at most `MAX_ALIAS_NODES` nodes to the document, counted after
  expansion, which stops an "alias bomb" (a billion laughs) before it is built; the size of a
  file without aliases is not limited;
- nesting deeper than `MAX_DEPTH` levels (a cohort config needs about six);
- keys must be strings, numbers or true/false (not null, a list or a mapping), and values plain
  YAML (mappings, lists, strings, numbers, true/false, null): `!!set`, `!!binary` and other
  tags are refused.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import yaml

# OmegaConf's loader class, for its YAML dialect (see the module docstring); it has no public name.
from omegaconf._yaml import get_yaml_loader

from ehrbench.errors import EhrbenchError, did_you_mean

Keys = tuple[str, ...]

MAX_ALIAS_NODES = 100_000
MAX_DEPTH = 100
_TAG = "tag:yaml.org,2002:"
_KEY_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "merge")}
_VALUE_TAGS = {f"{_TAG}{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")}


@dataclass(frozen=True)
class YamlSource:
    """One YAML file and its node graph, which gives the line of each YAML path for messages."""

    path: Path
    root: yaml.Node | None

    def fail(self, keys: Keys, message: str, *, near: str | None = None, known=()) -> NoReturn:
        """Raise the located error; `near`/`known` add the closest known name as a hint."""
        hint = did_you_mean(near, known)
        raise EhrbenchError(self.locate(keys) + message + (f"; {hint}" if hint else ""))

    def check_keys(self, mapping: dict, allowed: Collection[str], keys: Keys) -> None:
        """Fail on the first key of `mapping` (at YAML path `keys`) that is not `allowed`."""
        for key in mapping:
            if key not in allowed:
                self.fail(
                    (*keys, str(key)),
                    f"unknown key {key!r}; expected one of {', '.join(allowed)}",
                    near=str(key),
                    known=allowed,
                )

    def locate(self, keys: Keys) -> str:
        """`In FILE at a.b.c (line N): `, with the line of the deepest key that has one."""
        where = f"In {self.path}"
        if keys:
            where += f" at {'.'.join(keys)}"
        line = self.line(keys)
        return f"{where} (line {line}): " if line else where + ": "

    def line(self, keys: Keys) -> int | None:
        """The 1-based line of the deepest key (or list item) of `keys` found in the file."""
        node, line = self.root, None
        for key in keys:
            if isinstance(node, yaml.MappingNode):
                found = next((pair for pair in node.value if str(pair[0].value) == key), None)
                if found is None:
                    break
                line, node = found[0].start_mark.line + 1, found[1]
            elif (
                isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value)
            ):
                node = node.value[int(key)]
                line = node.start_mark.line + 1
            else:
                break
        return line


def read_text(path: Path, kind: str) -> str:
    """The text of the `kind` file at `path`; one missing, unreadable or not UTF-8 is an
    `EhrbenchError` naming it."""
    if not path.is_file():
        raise EhrbenchError(f"The {kind} file {path} does not exist or is not a file.")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise EhrbenchError(f"The {kind} file {path} is not UTF-8 text ({exc.reason}).") from None
    except OSError as exc:
        raise EhrbenchError(f"The {kind} file {path} could not be read: {exc.strerror}.") from None


def read_yaml(path: Path, kind: str) -> tuple[Any, YamlSource]:
    """Read the `kind` ("cohort", "predicates") YAML file at `path`: its value and its lines.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    ...     _ = f.write("predicates:\\n  a: {code: X}\\n  b: ???\\n")
    >>> value, source = read_yaml(Path(f.name), "predicates")
    >>> value, source.line(("predicates", "b"))
    ({'predicates': {'a': {'code': 'X'}, 'b': '???'}}, 3)
    """
    loader = get_yaml_loader(max_yaml_expanded_nodes=None)(read_text(path, kind))
    try:
        node = _compose(path, loader)
        source = YamlSource(path, node)
        if node is None:
            return None, source
        _check_nodes(node, source)
        return loader.construct_document(node), source
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if "nesting depth" in problem:  # libyaml's own limit, reached before ours
            raise EhrbenchError(f"In {path}{line}: {_too_deep()}") from None
        raise EhrbenchError(f"In {path}{line}: not valid YAML: {problem}.") from None
    finally:
        loader.dispose()


def _compose(path: Path, loader) -> yaml.Node | None:
    """The document's node graph; nesting too deep for the composer is the depth error."""
    try:
        return loader.get_single_node()
    except RecursionError:
        line = loader.get_mark().line + 1 if hasattr(loader, "get_mark") else None
        raise EhrbenchError(
            f"In {path}" + (f" (line {line})" if line else "") + f": {_too_deep()}"
        ) from None


def _too_deep() -> str:
    return f"nested more than {MAX_DEPTH} levels deep; a config needs a handful of levels."


def _check_nodes(root: yaml.Node, source: YamlSource) -> None:
    """Tags, keys, depth and alias expansion of the node graph, each node visited once.

    Iterative, so that no nesting depth can exhaust Python's stack; a node's YAML path is kept as
    a linked (parent, name) pair and spelt out only for a message.
    """
    expanded: dict[int, int] = {}  # nodes under each node, itself included, aliases expanded
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, tuple | None, int, bool]] = [(root, None, 0, False)]
    while stack:
        node, path, depth, done = stack.pop()
        ident = id(node)
        if done:
            on_path.discard(ident)
            expanded[ident] = 1 + sum(expanded[id(child)] for child in _children(node))
            continue
        if ident in expanded:
            continue
        if ident in on_path:
            source.fail(
                _keys(path), "an alias refers to a mapping or list that holds it (a cycle)."
            )
        if depth > MAX_DEPTH:
            source.fail(_keys(path)[:3], _too_deep())
        _check_tags(node, path, source)
        if isinstance(node, yaml.ScalarNode):
            expanded[ident] = 1
            continue
        on_path.add(ident)
        stack.append((node, path, depth, True))
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, (path, key.value), depth + 1, False) for key, value in node.value)
        else:
            stack.extend((item, (path, i), depth + 1, False) for i, item in enumerate(node.value))
    unique = len(expanded)
    if expanded[id(root)] - unique > MAX_ALIAS_NODES:
        source.fail(
            (),
            f"its aliases (`*name`) expand {unique:,} nodes to {expanded[id(root)]:,}, more than "
            f"the {MAX_ALIAS_NODES:,} extra nodes allowed (an alias bomb?); write the values out "
            "instead of repeating them through aliases.",
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    """A mapping's values or a list's items."""
    if isinstance(node, yaml.MappingNode):
        return [value for _, value in node.value]
    return node.value if isinstance(node, yaml.SequenceNode) else []


def _keys(path: tuple | None) -> Keys:
    """The YAML path held as linked (parent, key or index) pairs, as a tuple of names."""
    names = []
    while path is not None:
        path, name = path
        names.append(str(name))
    return tuple(reversed(names))


def _check_tags(node: yaml.Node, path: tuple | None, source: YamlSource) -> None:
    """Refuse a key that is not a name and a value of a type a config cannot hold."""
    if node.tag not in _VALUE_TAGS:
        source.fail(
            _keys(path),
            f"holds a value tagged {node.tag.replace(_TAG, '!!')}; expected a mapping, a list, "
            "a string, a number, true/false or null.",
        )
    if not isinstance(node, yaml.MappingNode):
        return
    for key, _ in node.value:
        if key.tag not in _KEY_TAGS:
            what = "null" if key.tag == f"{_TAG}null" else f"a {key.id} ({key.tag})"
            where = (*_keys(path), str(key.value) if isinstance(key, yaml.ScalarNode) else "?")
            source.fail(where, f"a key is {what}; expected a name (a string).")
