"""Component config overrides and validation."""

from __future__ import annotations

import pytest

from vdi_cli.config import load_config_file, parse_overrides
from vdi_cli.errors import ConfigError
from vdi_cli.registry import get_component


def test_parse_overrides_types_and_nesting():
    assert parse_overrides(["num_clips=64", "counts=[15,8,8]", "name=foo", "flag=true",
                            "decoder.layers=2", "ratio=0.5"]) == {
        "num_clips": 64, "counts": [15, 8, 8], "name": "foo", "flag": True,
        "decoder": {"layers": 2}, "ratio": 0.5,
    }


def test_override_without_equals_is_a_config_error():
    with pytest.raises(ConfigError) as exc:
        parse_overrides(["num_clips"])
    assert "key=value" in exc.value.hint


def test_invalid_option_names_the_field_and_the_show_command():
    component = get_component("sequence-model", "transformer")
    assert component.make_config({"layers": 3}).layers == 3
    with pytest.raises(ConfigError) as exc:
        component.make_config({"layers": 0})
    assert "invalid options for sequence-model 'transformer': layers:" in exc.value.message
    assert exc.value.hint.startswith("`vdi sequence-models show transformer`")


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config_file(bad)
    good = tmp_path / "good.json"
    good.write_text('{"layers": 2}')
    assert load_config_file(good) == {"layers": 2}
