"""The generic registry: decorator registration, duplicates, unknown names, plug-ins."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from morphlab import _registry
from morphlab._registry import Registry, parse_spec


def test_register_get_create() -> None:
    reg: Registry = Registry("widget", "morphlab.test-widgets")

    @reg.register("plain")
    class Plain:
        def __init__(self, size: int = 1) -> None:
            self.size = size

    assert reg.get("plain") is Plain
    assert reg.create("plain", size=3).size == 3
    assert reg.create(Plain).size == 1
    assert Plain.registry_name == "plain"
    assert [e.origin for e in reg.entries()] == ["morphlab"]


def test_duplicate_and_unknown() -> None:
    reg: Registry = Registry("widget", "morphlab.test-widgets")
    reg.add("a", int)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", float)
    with pytest.raises(KeyError, match="valid names: a"):
        reg.get("b")


def test_entry_points_and_broken_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    good = EntryPoint("good", "fractions:Fraction", "morphlab.test-widgets")
    bad = EntryPoint("bad", "no_such_module_xyz:Thing", "morphlab.test-widgets")

    def fake_entry_points(group: str):
        return [good, bad] if group == "morphlab.test-widgets" else []

    monkeypatch.setattr(_registry, "entry_points", fake_entry_points)
    reg: Registry = Registry("widget", "morphlab.test-widgets")
    with pytest.warns(RuntimeWarning, match="could not load widget plug-in 'bad'"):
        names = reg.names()
    assert names == ["good"]
    from fractions import Fraction

    assert reg.get("good") is Fraction


def test_parse_spec() -> None:
    assert parse_spec("arcface-onnx=/m/w600k_r50.onnx") == ("arcface-onnx", "/m/w600k_r50.onnx")
    assert parse_spec("dlib-resnet") == ("dlib-resnet", None)
