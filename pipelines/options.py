"""The settings a person passes on the command line or as an Airflow param, built from the config
dataclasses' fields (``PipelineConfig``, ``TwoTowerConfig``, ``SamplingConfig``): each setting's
default lives in its dataclass only, and the CLI flags, the DAG params and the config built from
either follow it.

Importing this reaches numpy (through the dataclasses' modules), never pandas or a deep learning
framework: the DAG files import it at parse time.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.config import PipelineConfig
from recsys.frames import SamplingConfig
from recsys.model import FUSIONS, MODALITIES, TwoTowerConfig
from recsys.protocols import PROTOCOLS

SCOPES: dict[str, type] = {"pipeline": PipelineConfig, "model": TwoTowerConfig, "sampling": SamplingConfig}
NAMESPACE_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"


@dataclass(frozen=True)
class Option:
    """One setting: the dataclass field ``name`` of ``scope``'s config, how it is described and
    bounded, and its CLI flag (``--name-with-dashes`` unless ``flag`` says otherwise)."""

    name: str
    scope: str
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    above_minimum: bool = False
    """The minimum itself is not allowed (a temperature or learning rate must be > 0)."""
    pattern: str | None = None
    flag: str | None = None
    env: str | None = None
    """An environment variable that overrides the default on the command line."""
    fallback: Any = None
    """The default for a field that has none in its dataclass (the source and work folders)."""

    @property
    def field(self) -> dataclasses.Field:  # type: ignore[type-arg]
        return {f.name: f for f in dataclasses.fields(SCOPES[self.scope])}[self.name]

    @property
    def default(self) -> Any:
        f = self.field
        if f.default is not dataclasses.MISSING:
            return f.default
        if f.default_factory is not dataclasses.MISSING:
            return f.default_factory()
        return self.fallback

    @property
    def kind(self) -> type:
        """bool, int, float, str (a path or a tuple of names is given as a string)."""
        value = self.default
        if isinstance(value, bool | int | float):
            return type(value)
        return str

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


OPTIONS: tuple[Option, ...] = (
    Option("source", "pipeline", "Data-contract folder (videos, comments, events)", fallback="var/demo-source"),
    Option("workdir", "pipeline", "Where partitions, caches and model versions go", fallback="var/work", env="VIDREC_WORKDIR"),
    Option("namespace", "pipeline", "Redis key namespace (keys are vidrec:{namespace}:...)", pattern=NAMESPACE_PATTERN, env="VIDREC_NAMESPACE"),
    Option("redis_url", "pipeline", "Redis to publish to", env="VIDREC_REDIS_URL"),
    Option("image_encoder", "pipeline", "efficientnet-lite0 (packaged) or keras:<application>"),
    Option("image_runtime", "pipeline", "How efficientnet-lite0 runs", choices=("auto", "onnx", "torch")),
    Option("text_encoder", "pipeline", "all-minilm-l6-v2 (packaged), st:/path or hashed-ngram"),
    Option("frame_shards", "pipeline", "frame_features shards (Airflow mapped tasks)", minimum=1, maximum=256),
    Option("summary_frames", "pipeline", "frames in each video's summary strip (0: none)", minimum=0, maximum=16),
    Option("publish_shards", "pipeline", "publish shards over users (Airflow mapped tasks)", minimum=1, maximum=1024),
    Option("protocol", "pipeline", "Evaluation split shared by dataset, train and evaluate", choices=PROTOCOLS),
    Option("tune_seconds", "pipeline", "Seconds to choose model settings on validation before training (0: train as given)", minimum=0, maximum=86400),
    Option("publish_gate", "pipeline", "Hold back a model worse than the live one on NDCG@10"),
    Option("land_events", "pipeline", "Ingest also lands the events posted to the API (Redis stream)"),
    Option("strategy", "sampling", "Frame sampling", choices=("uniform", "fps", "scene"), flag="--sampling"),
    Option("num_frames", "sampling", "Frames per video (uniform sampling)", minimum=1, maximum=1024, flag="--frames"),
    Option("frames_per_second", "sampling", "Frames per second (fps sampling)", minimum=0, above_minimum=True, flag="--fps"),
    Option("seek", "sampling", "How sampled frames are reached: nearest keyframe (PyAV) or the exact frame (OpenCV)", choices=("keyframe", "exact")),
    Option("fusion", "model", "How the item tower fuses modalities", choices=FUSIONS),
    Option("modalities", "model", f"Item-tower inputs, comma-separated (ablations; of {','.join(MODALITIES)})"),
    Option("user_pooling", "model", "How the user tower pools its history", choices=("mean", "attention")),
    Option("completion_weighting", "model", "Weight history watches by their completion when pooling"),
    Option("embedding_dim", "model", "Output width of both towers", minimum=8, maximum=512),
    Option("max_history", "model", "Watched videos the user tower reads", minimum=1, maximum=200),
    Option("epochs", "model", "Most training epochs (early stopping may end sooner)", minimum=1, maximum=200),
    Option("early_stopping_patience", "model", "Epochs without a better validation NDCG@10 before stopping (0: off)", minimum=0, maximum=200),
    Option("learning_rate", "model", "Adam learning rate", minimum=0, above_minimum=True, maximum=1),
    Option("temperature", "model", "Softmax temperature of the retrieval loss", minimum=0, above_minimum=True, maximum=10),
    Option("use_user_id", "model", "Give the user tower a learned vector per user"),
)  # fmt: skip
BY_NAME = {o.name: o for o in OPTIONS}


def parse_value(option: Option, value: Any) -> Any:
    """A CLI string or a param value as the dataclass field wants it (None stays None)."""
    if value is None:
        return None
    if option.name == "modalities" and isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if option.name == "source":
        return Path(value)
    if option.name == "workdir":
        from pipelines.storage import location

        return location(value)  # a path, or a URL fsspec opens (s3://...)
    if option.kind is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"{option.name} must be true or false, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    return option.kind(value) if option.kind is not str else value


def build_config(values: Mapping[str, Any], model_settings: Mapping[str, Any] | None = None) -> PipelineConfig:
    """``PipelineConfig`` from option values by name; a name absent or None takes its dataclass
    default. ``model_settings``: any other ``TwoTowerConfig`` field (``--set name=value``).
    Raises ValueError naming a bad value."""
    parts: dict[str, dict[str, Any]] = {scope: {} for scope in SCOPES}
    for option in OPTIONS:
        value = parse_value(option, values.get(option.name))
        if value is None and option.fallback is not None:
            value = parse_value(option, option.fallback)
        if value is not None:
            parts[option.scope][option.name] = value
    try:
        model = TwoTowerConfig(**{**parts["model"], **(model_settings or {})})
        return PipelineConfig(**parts["pipeline"], sampling=SamplingConfig(**parts["sampling"]), model=model)
    except TypeError as exc:
        raise ValueError(str(exc)) from exc


def add_cli_options(parser: argparse.ArgumentParser, names: Iterable[str], source_required: bool = True) -> None:
    """One flag per option, defaulting to the dataclass default (or the option's environment
    variable when set)."""
    for name in names:
        option = BY_NAME[name]
        default = os.environ.get(option.env or "") or option.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        kwargs: dict[str, Any] = {"dest": name, "default": default, "help": f"{option.help} (default: {shown})"}
        if name == "source":
            kwargs.update(required=source_required, default=None, help=option.help)
        if option.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif option.choices:
            kwargs["choices"] = option.choices
        elif option.kind in (int, float):
            kwargs["type"] = option.kind
        parser.add_argument(option.cli_flag, **kwargs)


def airflow_params(names: Iterable[str], **defaults: Any) -> dict[str, Any]:
    """Typed, bounded Airflow ``Param``s for the named options (``defaults``: a DAG's own default
    for an option, e.g. one frame shard where the DAG runs them in one task)."""
    from airflow.sdk import Param

    out = {}
    for name in names:
        option = BY_NAME[name]
        value = defaults.get(name, option.default)
        if isinstance(value, tuple):
            value = ",".join(value)
        schema: dict[str, Any] = {
            "type": {bool: "boolean", int: "integer", float: "number", str: "string"}[option.kind]
        }
        if option.kind is float:
            value = float(value)  # 150, not "150.0", would fail the "number" check in the UI
        if option.choices:
            schema = {"enum": list(option.choices)}
        if option.minimum is not None:
            schema["exclusiveMinimum" if option.above_minimum else "minimum"] = option.minimum
        if option.maximum is not None:
            schema["maximum"] = option.maximum
        if option.pattern:
            schema["pattern"] = option.pattern
        out[name] = Param(value, description=option.help, **schema)
    return out
