"""Checks of a command's values that need no model, run before anything heavy loads.

A typo in a component option, an unknown id, `--device banana` or an unknown validation metric
used to surface only after the backbone loaded (seconds to minutes), after feature extraction,
or after a whole training epoch; some were silently dropped. Each check here costs at most the
registry (descriptors, no factory) and importing torch for the device.
"""

from __future__ import annotations

from typing import Any

from vdi_cli.errors import ConfigError


def check_component(kind: str, component_id: str, options: dict[str, Any] | None) -> Any:
    """The validated config of one component: unknown id, unknown keys and bad values fail
    here, with the command that lists its options (`vdi heads show mmn`)."""
    from vdi_cli.registry import get_component

    return get_component(kind, component_id).make_config(options or {})


def check_backbone(backbone_id: str, options: dict[str, Any] | None = None) -> None:
    """The backbone id and its options, without building the spec (no weights are hashed)."""
    from vdi_cli.backbones import backbone_component

    component, values = backbone_component(backbone_id, options)
    component.make_config(values)


def validation_metrics() -> list[str]:
    """The names `vdi train` computes on `--val` each epoch (what `select_metric` may be)."""
    from vdi_cli.metrics import DEFAULT_IOUS, DEFAULT_RECALLS, MIOU, metric_name

    return [metric_name(n, m) for n in DEFAULT_RECALLS for m in DEFAULT_IOUS] + [MIOU]


def check_train_config(config: Any, *, dataset: bool = True) -> None:
    """Everything of a resolved TrainConfig that can be checked without a model: the dataset
    format, backbone, head, parser and objectives (ids and options, the objectives' nested
    sequence model included), the device and the validation metric. `dataset=False` leaves the
    format out (a recipe that leaves it to the command line)."""
    from vdi_cli.backbones import check_device
    from vdi_cli.config import did_you_mean
    from vdi_cli.registry import get_component

    if dataset:
        get_component("dataset", config.dataset)
    check_backbone(config.backbone, config.backbone_options)
    check_component("head", config.head, config.head_options)
    check_component("parser", config.parser, config.parser_options)
    for oid in config.objectives:
        check_component("objective", oid, config.objective_options.get(oid))
    names = validation_metrics()
    if config.select_metric not in names:
        raise ConfigError(
            f"unknown validation metric '{config.select_metric}'"
            f"{did_you_mean(config.select_metric, names)}",
            hint=f"select_metric is one of: {', '.join(names)}",
        )
    check_device(config.device)
