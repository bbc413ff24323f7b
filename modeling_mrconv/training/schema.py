"""One preset schema: `model:` keys against the `__init__` of the architecture's config class (`MODEL_CONFIGS`),
`train:` keys against `TrainConfig`, `data:` keys against the task's config dataclass (`data.TASKS`), each value
type-checked from its annotation."""

import contextlib
import dataclasses
import inspect
import types
import typing
from typing import Any

from modeling_mrconv import MRConvConfig, MRConvNextConfig
from modeling_mrconv.bench.peers import PEER_ARCHITECTURES, PeerConfig
from modeling_mrconv.data.base import check_task_keys, unknown_key_message
from modeling_mrconv.training.config import TrainConfig


# set from the task's data by training.models.build_model, never by a preset
MODEL_KEYS_FROM_DATA = ("vocab_size", "input_dim", "pad_token_id", "num_channels", "image_size")
# model.architecture: the config class whose __init__ gives the other model keys
MODEL_CONFIGS = {
    "mrconv": MRConvConfig,
    "mrconvnext": MRConvNextConfig,
    **dict.fromkeys(PEER_ARCHITECTURES, PeerConfig),
}
_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    bool: "a boolean",
    str: "a string",
    list: "a list",
    dict: "a mapping",
}


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether a YAML value fits `annotation` (int | None, float, bool, str, list[str], dict, ...)."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_accepts(a, value) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation) or annotation
    if origin is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin) if isinstance(origin, type) else True


def _expected(annotation: Any) -> str:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        names = [_expected(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in typing.get_args(annotation) else "")
    origin = typing.get_origin(annotation) or annotation
    return _TYPE_NAMES.get(origin, getattr(origin, "__name__", str(origin)))


def check_section(section: str, values: dict[str, Any], schema: dict[str, Any], context: str = "") -> None:
    """Raise ValueError for a key outside `schema` (with a did-you-mean and the valid keys) or a mistyped value; a
    string that parses as a float is converted in place where a number is expected."""
    for key, value in list(values.items()):
        if section == "model" and key in MODEL_KEYS_FROM_DATA:
            raise ValueError(f"model.{key}: set from the task's data, not a preset key")
        if isinstance(value, str) and _accepts(schema.get(key, Any), 0.5) and not _accepts(schema.get(key), value):
            with contextlib.suppress(ValueError):  # YAML 1.1 reads 1e-3 as a string
                value = values[key] = float(value)
        if key not in schema:
            raise ValueError(unknown_key_message(section, key, list(schema), context))
        if not _accepts(schema[key], value):
            raise ValueError(f"{section}.{key}: expected {_expected(schema[key])}, got {value!r}")


def config_class(architecture: str) -> type:
    """The config class of `model.architecture` (ValueError naming the valid ones)."""
    if not isinstance(architecture, str) or architecture not in MODEL_CONFIGS:
        raise ValueError(f"model.architecture: expected one of {sorted(MODEL_CONFIGS)}, got {architecture!r}")
    return MODEL_CONFIGS[architecture]


def model_schema(architecture: str) -> dict[str, Any]:
    """`architecture` plus the named parameters (and annotations) of its config's `__init__`, less those set from
    the data."""
    parameters = inspect.signature(config_class(architecture).__init__).parameters
    return {
        "architecture": str,
        **{
            name: p.annotation
            for name, p in parameters.items()
            if name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD and name not in MODEL_KEYS_FROM_DATA
        },
    }


def dataclass_schema(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def validate_preset(preset: dict[str, Any]) -> None:
    """Validate every section of a preset before any data is built (ValueError naming section.key)."""
    architecture = preset["model"].get("architecture") or "mrconv"
    context = "" if architecture == "mrconv" else f" (architecture {architecture!r})"
    check_section("model", preset["model"], model_schema(architecture), context)
    check_section("train", preset["train"], dataclass_schema(TrainConfig))
    spec = check_task_keys(preset["data"])  # the task, its keys (a key of another task too) and its source
    check_section("data", preset["data"], dataclass_schema(spec.config_cls))
