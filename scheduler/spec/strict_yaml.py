"""The YAML loader for sweep files: PyYAML's safe loader, minus what makes one file mean two things.

- A key given twice in one mapping (`name: a` then `name: b`, or `{queries: 2, queries: 5}`): PyYAML keeps the
  last one silently, so the file runs something else than a reader of its first lines expects. Refused, with
  both lines.
- YAML 1.1's base-60 numbers: `queries: 1:30` is 90 to PyYAML and "1 minute 30" or a typo to a person. Refused,
  with the value PyYAML would have used. (Quoted, `'1:30'` is a string and the schema says what it expects.)

Anchors and aliases stay: they are how a sweep file repeats a model list, and the reader bounds what they expand
to (scheduler.spec.reading.MAX_NODES). Tags that build objects were never allowed (the safe loader).
"""

from __future__ import annotations

import yaml
from yaml.constructor import ConstructorError


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and base-60 numbers (see the module docstring)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the base class says so
                    continue
                if first is not key_node:
                    raise ConstructorError(
                        None, None, f"key {key!r} is given twice (first at line {first.start_mark.line + 1}); "
                        "YAML would keep the last one silently: keep the one you mean", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        return self._not_base_60(node, super().construct_yaml_int)

    def construct_yaml_float(self, node):
        return self._not_base_60(node, super().construct_yaml_float)

    def _not_base_60(self, node, construct):
        value = construct(node)
        if ":" in str(node.value):
            raise ConstructorError(
                None, None, f"{node.value} is a base-60 number in YAML 1.1 (it would read as {value}); write the "
                "number you mean, or quote it", node.start_mark)
        return value


StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)
StrictLoader.add_constructor("tag:yaml.org,2002:map", StrictLoader.construct_yaml_map)


def load(text: str):
    """The document in `text`, read by StrictLoader (the same errors as yaml.safe_load, and ConstructorError)."""
    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
