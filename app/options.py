"""Training options: each one defined once, here (name, type, default, bounds, help).

Everything else is derived from :class:`TrainOptions`:

- the train CLI's flags (:func:`add_arguments`, :func:`from_arguments`);
- the admin API's retrain body (:func:`request_model`), with the API's own defaults from
  :data:`RETRAIN_DEFAULTS`;
- a retrain job's command line (:func:`to_argv`);
- the ``training`` section of a published version's metadata (``model_dump``).

Run options that are not part of a recipe (paths, backbone weights, process flags) belong to the
CLI and the server's settings, not here: the admin API must never accept a path.
"""

from __future__ import annotations

import argparse
import typing
from typing import Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic.fields import FieldInfo

ActivatePolicy = Literal["always", "never", "if_better"]
ACTIVATE_CHOICES: Final[tuple[str, ...]] = typing.get_args(ActivatePolicy)

# The admin API's defaults where they differ from the CLI's: a background retrain must not
# replace a better model unless asked to.
RETRAIN_DEFAULTS: Final[dict[str, Any]] = {"activate": "if_better"}


class TrainOptions(BaseModel):
    """A training recipe and its publishing policy; every value bounded, unknown names refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(10, ge=1, le=200, description="epochs of head training on cached features")
    fine_tune_epochs: int = Field(
        0, ge=0, le=50, description="epochs of end-to-end fine-tuning with conv5 unfrozen (0: skip)"
    )
    learning_rate: float = Field(1e-3, gt=0, le=1, description="Adam learning rate, head phase")
    fine_tune_learning_rate: float = Field(
        1e-5, gt=0, le=1, description="Adam learning rate, fine-tuning phase"
    )
    batch_size: int = Field(32, ge=1, le=1024, description="training batch size")
    dropout: float = Field(
        0.5, ge=0, lt=1, description="dropout between the head's two Dense layers (0: none)"
    )
    validation_split: float = Field(
        0.2, ge=0.05, le=0.5, description="fraction of each class held out for validation"
    )
    seed: int = Field(
        123, ge=0, le=2**31 - 1, description="seed of the split, the head's start and shuffling"
    )
    mixed_precision: bool = Field(
        False, description="train with the mixed_float16 policy (GPUs); the output stays float32"
    )
    openvino: bool = Field(True, description="export the OpenVINO artifact with the version")
    activate: ActivatePolicy = Field(
        "always",
        description="make the new version active: always, never, or if_better (its validation "
        "accuracy is at least the active version's on the same images)",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _json_types_only(cls, value: object, info: Any) -> object:
        # JSON Schema's types, which pydantic's lax mode would convert: `false` is not a seed,
        # "10" is not a number of epochs, 0 is not a boolean (10.0 stays an acceptable integer).
        kind = cls.model_fields[info.field_name].annotation
        if kind in (int, float) and isinstance(value, bool | str):
            raise ValueError("must be a JSON number")
        if kind is bool and not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value


Options = TypeVar("Options", bound=TrainOptions)


def request_model(options: type[TrainOptions] = TrainOptions) -> type[TrainOptions]:
    """The admin API's retrain body: the same fields, with :data:`RETRAIN_DEFAULTS` applied."""
    overrides: dict[str, Any] = {
        name: (field.annotation, _with_default(field, RETRAIN_DEFAULTS[name]))
        for name, field in options.model_fields.items()
        if name in RETRAIN_DEFAULTS
    }
    model: type[TrainOptions] = create_model(
        "RetrainRequest",
        __base__=options,
        __doc__="Parameters of a retrain job; every number is bounded, unknown fields are refused.",
        **overrides,
    )
    return model


def _with_default(field: FieldInfo, default: Any) -> FieldInfo:
    return FieldInfo.merge_field_infos(field, default=default)


def add_arguments(parser: argparse.ArgumentParser, options: type[TrainOptions]) -> None:
    """One flag per option (``--fine-tune-epochs``; ``--flag/--no-flag`` for booleans)."""
    group = parser.add_argument_group("recipe and publishing")
    for name, field in options.model_fields.items():
        flag = "--" + name.replace("_", "-")
        kind = field.annotation
        if kind is bool:
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=field.default,
                help=field.description,
            )
        elif typing.get_origin(kind) is Literal:
            group.add_argument(
                flag, choices=typing.get_args(kind), default=field.default, help=field.description
            )
        else:
            group.add_argument(
                flag, type=_scalar(kind), default=field.default, help=field.description
            )


def _scalar(kind: Any) -> type[Any]:
    if isinstance(kind, type) and kind in (int, float, str):
        return kind
    raise TypeError(f"no command-line form for an option of type {kind!r}")


class OptionError(ValueError):
    """A training option out of its bounds; the message names the flag."""


def from_arguments(args: argparse.Namespace, options: type[Options]) -> Options:
    """The options parsed by :func:`add_arguments`, validated (OptionError names the flag)."""
    values = {name: getattr(args, name) for name in options.model_fields}
    try:
        return options(**values)
    except ValidationError as error:
        raise OptionError(_explain(error)) from None


def _explain(error: ValidationError) -> str:
    first = error.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else "options"
    return f"--{name.replace('_', '-')}: {first['msg']}"


def to_argv(options: TrainOptions) -> list[str]:
    """The CLI arguments that reproduce ``options`` (a retrain job's command line)."""
    argv: list[str] = []
    for name, value in options.model_dump().items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(f"--{flag}" if value else f"--no-{flag}")
        else:
            argv += [f"--{flag}", repr(value) if isinstance(value, float) else str(value)]
    return argv


__all__ = [
    "ACTIVATE_CHOICES",
    "RETRAIN_DEFAULTS",
    "ActivatePolicy",
    "OptionError",
    "TrainOptions",
    "add_arguments",
    "from_arguments",
    "request_model",
    "to_argv",
]
