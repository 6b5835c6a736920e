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


def test_unknown_option_key_is_refused_with_a_did_you_mean():
    """pydantic drops unknown keys: `-H hiden_size=64` used to train with the default."""
    with pytest.raises(ConfigError) as exc:
        get_component("head", "mmn").make_config({"hiden_size": 64})
    assert exc.value.message == ("unknown option 'hiden_size' for head 'mmn' "
                                 "(did you mean 'hidden_size'?)")
    assert exc.value.hint == "`vdi heads show mmn` lists its options"
    assert get_component("head", "mmn").make_config({"hidden_size": 64}).hidden_size == 64


def test_several_unknown_keys_each_get_their_own_suggestion():
    with pytest.raises(ConfigError) as exc:
        get_component("objective", "visual-context").make_config(
            {"prob": "query", "wieght": 1.0, "zzz": 1, "layers": 2})
    assert exc.value.message == (
        "unknown options for objective 'visual-context': 'prob' (did you mean 'probe'?), "
        "'wieght' (did you mean 'weight'?), 'zzz'")


def test_a_component_without_options_refuses_any():
    with pytest.raises(ConfigError) as exc:
        get_component("backbone", "tiny-shapes").make_config({"arch": "x"})
    assert exc.value.message == "unknown option 'arch' for backbone 'tiny-shapes'"
    assert "`vdi backbones show tiny-shapes`" in exc.value.hint


def test_nested_sequence_model_options_are_checked_with_the_objective():
    objective = get_component("objective", "spatial-dynamic")
    with pytest.raises(ConfigError) as exc:
        objective.make_config({"sequence_options": {"hedas": 4}})
    assert exc.value.message == ("unknown option 'hedas' for sequence-model 'transformer' "
                                 "(did you mean 'heads'?)")
    assert exc.value.hint == "`vdi sequence-models show transformer` lists its options"
    with pytest.raises(ConfigError, match="sequence-model 'lstm': layers"):
        objective.make_config({"sequence_model": "lstm", "sequence_options": {"layers": 0}})
    ok = objective.make_config({"sequence_model": "lstm", "sequence_options": {"layers": 2}})
    assert ok.sequence_options == {"layers": 2}


def test_a_config_class_that_allows_extra_keys_opts_out():
    from pydantic import BaseModel

    from vdi_cli.config import check_option_keys

    class Open(BaseModel):
        model_config = {"extra": "allow"}
        a: int = 1

    class Closed(BaseModel):
        a: int = 1

    check_option_keys(Open, {"b": 2}, hint="h")
    with pytest.raises(ConfigError, match="unknown option 'b'"):
        check_option_keys(Closed, {"b": 2}, hint="h")


def test_train_checks_every_component_before_a_model_loads():
    """The whole resolved TrainConfig is checked from descriptors alone (no torch model)."""
    from vdi_cli.checks import check_train_config
    from vdi_cli.errors import UnknownComponentError
    from vdi_cli.pipeline.train_config import TrainConfig

    base = {"dataset": "mmn-json", "annotations": "a.json", "video_dir": "v",
            "backbone": "tiny-shapes"}
    check_train_config(TrainConfig(**base).resolved())
    cases = [
        ({"head_options": {"hiden_size": 8}}, ConfigError, "for head 'mmn'"),
        ({"parser_options": {"maskin": "x"}}, ConfigError, "for parser 'spacy'"),
        ({"objective_options": {"visual-context": {"prob": "q"}}}, ConfigError,
         "for objective 'visual-context'"),
        ({"backbone_options": {"x": 1}}, ConfigError, "for backbone 'tiny-shapes'"),
        ({"backbone": "open_clip:ViT-B-32", "backbone_options": {"cache": "x"}}, ConfigError,
         "'cache' for backbone 'open-clip' \\(did you mean 'cache_dir'\\?\\)"),
        ({"dataset": "charades"}, UnknownComponentError,
         "did you mean 'charades-cd' or 'charades-sta'"),
        ({"objectives": ["visual-contxt"]}, UnknownComponentError, "visual-context"),
        ({"select_metric": "R@1,IoU=0.55"}, ConfigError,
         "unknown validation metric 'R@1,IoU=0.55' \\(did you mean 'R@1,IoU=0.5'\\?\\)"),
    ]
    for values, error, pattern in cases:
        with pytest.raises(error, match=pattern):
            check_train_config(TrainConfig(**{**base, **values}).resolved())


def test_train_list_options_and_o_merges_with_component_flags():
    from vdi_cli.commands.train_cmd import _merge
    from vdi_cli.testing import invoke

    listed = invoke(["train", "--list-options"])  # no --dataset needed: it is eager
    assert listed.exit_code == 0, listed.stderr
    rows = {line.split()[0] for line in listed.stdout.splitlines()[2:]}
    assert {"patience", "select_metric", "head_options", "keep_checkpoints"} <= rows
    merged = _merge({"head_options": {"hidden_size": 32}, "lr": 1.0},
                    {"head_options": {"joint_size": 16}, "lr": 2.0})
    assert merged == {"head_options": {"hidden_size": 32, "joint_size": 16}, "lr": 2.0}
