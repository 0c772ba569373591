"""The one Registry kind behind tasks, backbones, methods and metrics."""

from __future__ import annotations

import pytest

from bench.backbones import list_backbones
from bench.methods import list_methods
from bench.registry import Registry, UnknownNameError
from bench.tasks import list_tasks


def test_register_get_list_and_metadata():
    registry: Registry = Registry("widget")
    registry.register("tiny_widget", size=1)(dict)
    registry.register("big_widget.v2")(list)
    assert registry.get("tiny_widget") is dict
    assert registry.names() == ["big_widget.v2", "tiny_widget"]
    assert registry.names("tiny*") == ["tiny_widget"]
    assert registry.metadata("tiny_widget") == {"size": 1}
    assert "tiny_widget" in registry and "nope" not in registry


def test_errors_name_the_valid_choices():
    registry: Registry = Registry("widget")
    registry.register("a_widget")(dict)
    with pytest.raises(UnknownNameError, match="unknown widget 'b'; valid choices: a_widget"):
        registry.get("b")
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a_widget")(dict)
    with pytest.raises(ValueError, match="lowercase"):
        registry.register("Bad-Name")


def test_registered_names_are_snakemake_safe():
    for name in list_tasks() + list_backbones() + list_methods():
        assert name == name.lower() and "/" not in name and "+" not in name and " " not in name


def test_listing_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, bench.config, bench.tasks, bench.backbones, bench.methods;"
        # The workflow's reporting imports at DAG build (expected cells, claims, captions).
        "import bench.reporting.summary, bench.reporting.claims, bench.reporting.figures;"
        "bench.tasks.list_tasks(); bench.backbones.list_backbones(); bench.methods.list_methods();"
        "assert 'torch' not in sys.modules, 'torch imported at DAG build'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backbone_options_are_what_each_builder_takes():
    """The torch-free option lists the DAG checks match the builders' own arguments."""
    import importlib
    import inspect
    import typing
    from pathlib import Path

    import yaml

    from bench.backbones import BACKBONES, backbone_metadata

    # Arguments a grid does not set: objects only code passes, random weights for speed
    # measurements, and what names the weights (registered per backbone).
    not_options = {"self", "model", "tokenizer", "random_init", "source", "arch", "pretrained"}
    schema = yaml.safe_load(
        (Path(__file__).parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text()
    )
    described = schema["properties"]["backbone_options"]["additionalProperties"]["properties"]
    for name in list_backbones():
        module, function = BACKBONES.get(name).split(":")
        builder = getattr(importlib.import_module(module), function)
        parameters = inspect.signature(builder).parameters
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):  # build_x(**options)
            parameters = inspect.signature(typing.get_type_hints(builder)["return"]).parameters
        options = set(backbone_metadata(name)["options"])
        assert options == set(parameters) - not_options, name
        assert options <= set(described), f"{name}: describe {options - set(described)}"
