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
import math
import os
import sys
import typing
from typing import Any, Final, Literal, TypeVar

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator
from pydantic.fields import FieldInfo

ActivatePolicy = Literal["always", "never", "if_better"]
FeatureSetName = Literal["conv5-avg", "conv4-conv5-avg", "conv4-conv5-gem"]
# Which ResNet-50 outputs each feature set taps, and how each is pooled (avg or GeM).
FEATURE_SETS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "conv5-avg": (("conv5_block3_out", "avg"),),
    "conv4-conv5-avg": (("conv4_block6_out", "avg"), ("conv5_block3_out", "avg")),
    "conv4-conv5-gem": (("conv4_block6_out", "gem"), ("conv5_block3_out", "gem")),
}
HeadKind = Literal["linear", "mlp"]

# The admin API's defaults where they differ from the CLI's: a background retrain must not
# replace a better model unless asked to.
RETRAIN_DEFAULTS: Final[dict[str, Any]] = {"activate": "if_better"}


# How the console lays the retrain form out: "x-group" names an option's group (in this order),
# "x-applies" when it matters (another option's value, or "gpu": only on a machine with one).
GROUPS: Final = {
    "recipe": "Recipe",
    "head": "The head's own options",
    "measure": "Measuring the accuracy",
    "fine_tune": "Fine-tuning conv5",
    "run": "Running",
    "publish": "Publishing",
}


def _ui(group: str, applies: dict[str, Any] | None = None) -> dict[str, Any]:
    assert group in GROUPS, group
    return {"x-group": group, **({"x-applies": applies} if applies else {})}


class TrainOptions(BaseModel):
    """A training recipe and its publishing policy; every value bounded, unknown names refused."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # A list: JSON Schema generation sorts an object's keys, and the order is the layout.
        json_schema_extra={"x-groups": [{"name": k, "title": v} for k, v in GROUPS.items()]},
    )

    features: FeatureSetName = Field(
        "conv4-conv5-gem",
        description="the frozen backbone's features: conv5 average-pooled (the tutorial's), or "
        "conv4 and conv5 pooled by average or by generalised mean (GeM), concatenated",
        json_schema_extra=_ui("recipe"),
    )
    input_size: int = Field(
        224,
        ge=180,
        le=320,
        description="side the photo is upscaled to inside the model before the backbone (180: "
        "none; larger sees finer detail at (size/180)^2 times the compute, serving included)",
        json_schema_extra=_ui("recipe"),
    )
    flips: bool = Field(
        True,
        description="train on each photo's mirror image too (its features cached as well)",
        json_schema_extra=_ui("recipe"),
    )
    head: HeadKind = Field(
        "linear",
        description="linear: softmax regression with L2 on standardised features (L-BFGS); "
        "mlp: the tutorial's Dense(512) -> Dropout -> Dense, trained with Adam",
        json_schema_extra=_ui("recipe"),
    )
    l2: float = Field(
        0.03,
        ge=0,
        le=100,
        description="L2 strength of the linear head; 0: chosen by a 3-fold cross-validation "
        "inside the training photos (slower)",
        json_schema_extra=_ui("head", {"head": "linear"}),
    )
    folds: int = Field(
        5,
        ge=0,
        le=20,
        description="k of the k-fold cross-validation that measures the published accuracy (the "
        "model is then trained on every photo); 0: one stratified holdout split instead",
        json_schema_extra=_ui("measure"),
    )
    validation_split: float = Field(
        0.2,
        ge=0.05,
        le=0.5,
        description="with --folds 0: fraction of each class held out",
        json_schema_extra=_ui("measure", {"folds": 0}),
    )
    epochs: int = Field(
        10,
        ge=1,
        le=200,
        description="mlp head: epochs on cached features",
        json_schema_extra=_ui("head", {"head": "mlp"}),
    )
    learning_rate: float = Field(
        1e-3,
        gt=0,
        le=1,
        description="mlp head: Adam learning rate",
        json_schema_extra=_ui("head", {"head": "mlp"}),
    )
    dropout: float = Field(
        0.5,
        ge=0,
        lt=1,
        description="mlp head: dropout between its two Dense layers (0: none)",
        json_schema_extra=_ui("head", {"head": "mlp"}),
    )
    batch_size: int = Field(
        32,
        ge=1,
        le=1024,
        description="batch size (features, training)",
        json_schema_extra=_ui("run"),
    )
    fine_tune_epochs: int = Field(
        4,
        ge=0,
        le=50,
        description="epochs of fine-tuning conv5 on cached conv4 activations after the head "
        "(0: skip)",
        json_schema_extra=_ui("fine_tune"),
    )
    fine_tune_in_folds: bool = Field(
        False,
        description="fine-tune in every fold too, so that the accuracy measured is the "
        "fine-tuned recipe's (folds + 1 fine-tunings); off: the folds measure the head alone "
        "(conv5 frozen, a lower bound) and only the published model is fine-tuned (1 fine-tuning), "
        "the last fold kept out of it to judge it and its INT8 IR",
        json_schema_extra=_ui("fine_tune"),
    )
    fine_tune_learning_rate: float = Field(
        1e-4,
        gt=0,
        le=1,
        description="Adam learning rate, fine-tuning phase",
        json_schema_extra=_ui("fine_tune"),
    )
    seed: int = Field(
        123,
        ge=0,
        le=2**31 - 1,
        description="seed of the folds (or the split), the heads' starts and shuffling",
        json_schema_extra=_ui("measure"),
    )
    mixed_precision: bool = Field(
        False,
        description="train with the mixed_float16 policy (GPUs); the output stays float32",
        json_schema_extra=_ui("run", {"gpu": True}),
    )
    openvino: bool = Field(
        True,
        description="export the OpenVINO artifact with the version",
        json_schema_extra=_ui("publish"),
    )
    int8: bool = Field(
        True,
        description="also an INT8 OpenVINO IR (NNCF, in the openvino extra): calibrated on 300 "
        "photos, checked on up to 1,000 others, each judged by the head of the fold that held it "
        "out; kept only if it loses at most --int8-max-drop of accuracy and gives the float IR's "
        "class on at least 99 in 100; served where the CPU has VNNI or AMX",
        json_schema_extra=_ui("publish", {"openvino": True}),
    )
    int8_max_drop: float = Field(
        0.003,
        ge=0,
        le=0.05,
        description="largest accuracy drop the INT8 IR may have (0.003: 0.3 points); NNCF puts "
        "the layers that cost the most back in float until it is met",
        json_schema_extra=_ui("publish", {"int8": True}),
    )
    examples: int = Field(
        2,
        ge=0,
        le=10,
        description="photos per class shown as examples on the public page: shrunk copies of "
        "photos the dataset's LICENSE.txt credits by name, shown with their credit (none "
        "without such a file; 0: none)",
        json_schema_extra=_ui("publish"),
    )
    activate: ActivatePolicy = Field(
        "always",
        description="make the new version active: always, never, or if_better (at least as "
        "accurate as the active version's recipe, both measured on this run's folds)",
        json_schema_extra=_ui("publish"),
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


def program_name(module: str) -> str:
    """How the command was called: its script (``flowers-train``), else ``python -m module``."""
    called = os.path.basename(sys.argv[0])
    return called if called.startswith("flowers-") else f"python -m {module}"


# What is done with the trained model (not part of its recipe).
PUBLISHING: Final = frozenset({"openvino", "int8", "int8_max_drop", "activate"})


Number = TypeVar("Number", int, float)


def positive(kind: typing.Callable[[str], Number]) -> typing.Callable[[str], Number]:
    """An argparse ``type``: a finite number of ``kind`` above 0, else a usage error that says
    so (exit status 2), never a traceback from deep in the command."""
    return _checked(kind, lambda value: 0 < value < math.inf, "give a number above 0")


def in_range(
    kind: typing.Callable[[str], Number], low: Number, high: float = math.inf
) -> typing.Callable[[str], Number]:
    """An argparse ``type``: a number of ``kind`` from ``low`` to ``high``, both included."""
    hint = f"give a number from {low} to {high}" if high < math.inf else f"give {low} or more"
    return _checked(kind, lambda value: low <= value <= high, hint)


def comma_list(item: typing.Callable[[str], Number]) -> typing.Callable[[str], list[Number]]:
    """An argparse ``type``: comma-separated values, each parsed and checked by ``item``."""

    def parse(text: str) -> list[Number]:
        return [item(part) for part in text.split(",")]

    parse.__name__ = f"list of {item.__name__}"
    return parse


def _checked(
    kind: typing.Callable[[str], Number], allowed: typing.Callable[[Number], bool], hint: str
) -> typing.Callable[[str], Number]:
    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: not {_article(kind)}") from None
        if not allowed(value):
            raise argparse.ArgumentTypeError(f"{text}: {hint}")
        return value

    parse.__name__ = getattr(kind, "__name__", "number")
    return parse


def _article(kind: typing.Callable[[str], object]) -> str:
    name = getattr(kind, "__name__", "number")
    return {"int": "a whole number", "float": "a number"}.get(name, name)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``(default: ...)`` where it tells something: not after None or False, nor after a help
    text that already says what the default is (``default:``, ``unset:``)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default in (None, False) or "default:" in text or "unset:" in text:
            return text
        return super()._get_help_string(action)


class RawHelpFormatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """:class:`HelpFormatter`, with the description and epilog laid out as written."""


def add_arguments(
    parser: argparse.ArgumentParser,
    options: type[TrainOptions],
    leave_out: frozenset[str] = frozenset(),
) -> None:
    """One flag per option (``--fine-tune-epochs``; ``--flag/--no-flag`` for booleans), the
    recipe's and the publishing policy's in two groups; ``leave_out`` keep their defaults."""
    groups = {
        "recipe": parser.add_argument_group("recipe"),
        "publishing": parser.add_argument_group("publishing"),
    }
    for name, field in options.model_fields.items():
        if name in leave_out:
            continue
        group = groups["publishing" if name in PUBLISHING else "recipe"]
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
    values = {name: getattr(args, name) for name in options.model_fields if hasattr(args, name)}
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


def markdown_table(options: type[TrainOptions] = TrainOptions) -> str:
    """The training page's table of options (docs/training.md): CLI flag, retrain body field,
    defaults, bounds."""
    retrain = request_model(options).model_fields
    lines = [
        "| CLI flag | retrain body field | default (CLI / API) | bounds | what |",
        "|---|---|---|---|---|",
    ]
    for name, field in options.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            flag = f"{flag}, --no-{name.replace('_', '-')}"
        cli, api = field.default, retrain[name].default
        default = f"`{_json(cli)}`" if cli == api else f"`{_json(cli)}` / `{_json(api)}`"
        lines.append(
            f"| `{flag}` | `{name}` | {default} | {_bounds(field)} | {field.description} |"
        )
    return "\n".join(lines)


def _json(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _bounds(field: FieldInfo) -> str:
    kind = field.annotation
    if typing.get_origin(kind) is Literal:
        return " \\| ".join(f"`{choice}`" for choice in typing.get_args(kind))
    if kind is bool:
        return "`true` \\| `false`"
    low = high = ""
    for rule in field.metadata:
        match rule:
            case Ge(ge=value):
                low = str(value)
            case Gt(gt=value):
                low = f">{value}"
            case Le(le=value):
                high = str(value)
            case Lt(lt=value):
                high = f"<{value}"
    return f"{low} .. {high}"


__all__ = [
    "RETRAIN_DEFAULTS",
    "ActivatePolicy",
    "OptionError",
    "TrainOptions",
    "add_arguments",
    "from_arguments",
    "markdown_table",
    "request_model",
    "to_argv",
]


if __name__ == "__main__":
    print(markdown_table())
