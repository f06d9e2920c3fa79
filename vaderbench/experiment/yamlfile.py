"""Reading an experiment file's YAML without letting the file hurt the reader.

Bounded before anything is built: the file's size (`MAX_FILE_BYTES`), then, in one pass over the parser's
events, its nesting depth (`MAX_DEPTH`) and its aliases (`*name`). An experiment file has no use for
aliases, and they are what makes YAML's bombs: a recursive alias is a cycle that every walk of the tree
follows forever, and nine levels of nine aliases expand to 9^9 values. Refused at the first alias, before
anything is expanded, the reading stays linear in the file's size. Duplicate keys, which YAML would
silently resolve to the last one, are refused too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from vaderbench.experiment.schema import ExperimentError

#: an experiment file is a page of settings (the shipped ones are a few KB)
MAX_FILE_BYTES = 2**20
#: nesting the loader's recursive walks (and pydantic's) can follow; an experiment file nests 5 levels at most
MAX_DEPTH = 64


class SettingsLoader(yaml.SafeLoader):
    """The safe loader with YAML 1.2's booleans, `true` and `false` only. PyYAML follows YAML 1.1, which also
    reads on/off/yes/no/y/n as booleans: `stopping: {on: member_spread}` would have a key True, and an unquoted
    `precision: no` the value False."""


SettingsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SettingsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(path: Path) -> dict[str, Any]:
    """The file's top-level mapping; ExperimentError for a missing, oversized, non-UTF-8, empty or malformed file."""
    if not path.is_file():
        raise ExperimentError(path, "", "no such file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ExperimentError(
            path, "", f"{size} bytes: more than an experiment file's {MAX_FILE_BYTES} (is it the right file?)"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ExperimentError(
            path, "", f"not UTF-8 text: byte 0x{raw[error.start]:02x} on line {line} (save the file as UTF-8)"
        ) from None
    try:
        refuse_aliases_and_depth(text, path)
        root = yaml.compose(text, Loader=SettingsLoader)
        if root is not None:
            refuse_duplicate_keys(root, path)
        data = yaml.load(text, Loader=SettingsLoader)  # SettingsLoader is a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ExperimentError(path, "", f"not valid YAML: {where}{getattr(error, 'problem', None) or error}") from None
    if data is None:
        raise ExperimentError(path, "", "the file is empty; an experiment names at least its `methods:`")
    if not isinstance(data, dict):
        raise ExperimentError(path, "", f"expected a mapping of settings at the top, got {type(data).__name__}")
    return data


def refuse_aliases_and_depth(text: str, path: Path) -> None:
    """ExperimentError at the first alias, or the first collection nested deeper than MAX_DEPTH, named by its key."""
    # one frame per open mapping or sequence: [is a mapping, nodes seen in it, its latest key]
    frames: list[list[Any]] = []
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionEndEvent):
            frames.pop()
            continue
        if not isinstance(event, yaml.NodeEvent):
            continue
        if frames:
            frame = frames[-1]
            if frame[0] and frame[1] % 2 == 0:  # a mapping's key
                frame[2] = event.value if isinstance(event, yaml.ScalarEvent) else "?"
            frame[1] += 1
        line = f"line {event.start_mark.line + 1}: "
        if isinstance(event, yaml.AliasEvent):
            raise ExperimentError(
                path,
                key_of(frames),
                f"{line}YAML alias *{event.anchor}: an experiment file takes no aliases (write the value out)",
            )
        if isinstance(event, yaml.CollectionStartEvent):
            if len(frames) == MAX_DEPTH:
                raise ExperimentError(path, key_of(frames), f"{line}nested deeper than {MAX_DEPTH} levels")
            frames.append([isinstance(event, yaml.MappingStartEvent), 0, None])


def key_of(frames: list[list[Any]]) -> str:
    """The key path of the node an event stream has just reached (`methods.vader.lr`, `sweep.seed[1]`)."""
    parts = []
    for is_mapping, seen, key in frames:
        if is_mapping:
            if seen % 2 == 0:  # its latest node is the value of `key` (else a key: the path ends at the mapping)
                parts.append(f".{key}")
            else:
                break
        else:
            parts.append(f"[{seen - 1}]")
    return "".join(parts).removeprefix(".")


def refuse_duplicate_keys(node: yaml.Node, path: Path, where: str = "") -> None:
    """ExperimentError at the first key that a mapping repeats, with the lines of both."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            refuse_duplicate_keys(item, path, f"{where}[{i}]")
    if not isinstance(node, yaml.MappingNode):
        return
    first_line: dict[str, int] = {}
    for key, value in node.value:
        name = str(key.value)
        dotted = f"{where}.{name}" if where else name
        if name in first_line and key.tag != "tag:yaml.org,2002:merge":
            lines = f"{first_line[name]} and {key.start_mark.line + 1}"
            raise ExperimentError(path, dotted, f"duplicate key on lines {lines} (YAML would keep only the last)")
        first_line[name] = key.start_mark.line + 1
        refuse_duplicate_keys(value, path, dotted)
