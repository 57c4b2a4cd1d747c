"""Fuzzing the topology loader and validator: whatever document or text comes in, the answer is a Topology
or a one-line TopologyError — never another exception."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.errors import TopologyError
from labctl.topology import load_document, load_topology, parse_topology
from tests.unit.labctl_builders import make_topology, two_networks

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["10.0.0.1", "10.0.0.0/8", "0.0.0.0", "224.0.0.5", "02:00:00:00:00:01", "t-1", "vm1", "blue", "frr", "gobgp",
                     "65000:100", "br0", "uplink", "vxlan100", "192.168.100.0/24", "192.168.100.11", "lo", "", "\n", "t"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=12), st.integers(), st.booleans()), inner, max_size=4)),
    max_leaves=20)


def _answer(doc: Any) -> None:
    try:
        parse_topology(doc, "fuzz.yaml")
    except TopologyError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz.yaml: "), str(exc)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_any_document(doc: Any) -> None:
    _answer(doc)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _paths(value, prefix + (i,))
    return found


BASES = [make_topology("t", hosts=3, vms_per_host=2), two_networks()]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(BASES), st.data(), st.lists(VALUES, min_size=1, max_size=3))
def test_a_valid_document_with_random_fields(base: dict[str, Any], data: st.DataObject, values: list[Any]) -> None:
    """Every field of a valid topology, replaced by random values (a few at a time)."""
    doc = copy.deepcopy(base)
    for value in values:
        paths = _paths(doc)
        path = data.draw(st.sampled_from(paths))
        target = doc
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    _answer(doc)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(BASES), st.data())
def test_a_valid_document_with_a_field_dropped_or_added(base: dict[str, Any], data: st.DataObject) -> None:
    doc = copy.deepcopy(base)
    path = data.draw(st.sampled_from(_paths(doc)))
    target = doc
    for step in path[:-1]:
        target = target[step]
    if isinstance(target, dict) and data.draw(st.booleans()):
        del target[path[-1]]
    elif isinstance(target, dict):
        target[data.draw(st.text(max_size=8))] = data.draw(VALUES)
    else:
        target.append(data.draw(VALUES))
    _answer(doc)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode),
                 VALUES.map(lambda v: yaml.safe_dump(v).encode())))
def test_any_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(content)
    try:
        load_topology(path)
    except TopologyError as exc:
        assert "\n" not in str(exc), str(exc)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("&*ab:[]{}-, \n'\"!#|>?%@`\t")), max_size=60))
def test_yaml_syntax_soup(text: str) -> None:
    try:
        load_document(text, "fuzz.yaml")
    except TopologyError as exc:
        assert "\n" not in str(exc), str(exc)
