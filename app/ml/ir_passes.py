"""Rewrites of a converted OpenVINO IR that give the same answers faster: :func:`rewrite`, at
export and in the engine when it compiles an IR.

The ResNet preprocessing (``keras.applications.resnet50.preprocess_input``, caffe mode) turns
RGB into BGR.  Converted from TensorFlow it becomes one single-channel ``StridedSlice`` per
channel, each ``Unsqueeze``-d and then ``Concat``-enated: OpenVINO's CPU plugin runs those slices
with its reference (non-JIT) kernel, in every precision.  The same selection as one ``Gather``
on the channel axis is folded away: a batch of 8 at 224 pixels on 2 cores went from 45.5 to
36.4 ms in bf16 (``python -m bench.passes``, docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# StridedSlice x[..., c] as TensorFlow's converter writes it: an ellipsis, then the last axis
# shrunk to the one index c (begin c, end c + 1, stride 1)
_ONE_CHANNEL = {
    "ellipsis_mask": [1, 0],
    "shrink_axis_mask": [0, 1],
    "new_axis_mask": [0, 0],
}


def rewrite(model: Any) -> int:
    """Every rewrite of this module, in place; how many replacements they made.  (Folding the
    stem's zero ``Pad``, another reference kernel, into its ``MaxPool`` was measured too: no
    gain beyond the noise, so it is not done.)"""
    return gather_channel_selections(model)


def gather_channel_selections(model: Any) -> int:
    """Replace each ``Concat`` of ``Unsqueeze``-d single-channel slices of one tensor, on the
    axis the ``Unsqueeze`` adds, by that tensor's channels moved to that axis (``Transpose``) and
    picked in the same order (``Gather``).  Returns how many were replaced; anything that does
    not match the pattern exactly is left as it is."""
    import openvino.opset13 as ops

    replaced = 0
    for node in model.get_ordered_ops():
        match = _channel_selection(node)
        if match is None:
            continue
        source, channels, axis = match
        rank = source.get_partial_shape().rank.get_length()
        order = list(range(rank - 1))
        order.insert(axis, rank - 1)  # the channel axis, moved to where the Concat stacks
        moved = ops.transpose(source, ops.constant(np.array(order, np.int64)))
        picked = ops.gather(
            moved, ops.constant(np.array(channels, np.int64)), ops.constant(np.int64(axis))
        )
        picked.set_friendly_name(node.get_friendly_name())
        node.output(0).replace(picked.output(0))
        replaced += 1
    if replaced:
        model.validate_nodes_and_infer_types()
    return replaced


def _channel_selection(node: Any) -> tuple[Any, list[int], int] | None:
    """(source output, channels in order, Concat axis) when ``node`` is the pattern, else None."""
    if node.get_type_name() != "Concat" or node.get_input_size() < 2:
        return None
    axis = int(node.get_attributes()["axis"])
    rank = node.get_output_partial_shape(0).rank
    if not rank.is_static:
        return None
    axis %= rank.get_length()
    sources, channels = [], []
    for entry in node.inputs():
        unsqueeze = entry.get_source_output().get_node()
        if unsqueeze.get_type_name() != "Unsqueeze" or _constant(unsqueeze, 1) != [axis]:
            return None
        sliced = unsqueeze.input(0).get_source_output().get_node()
        channel = _single_channel(sliced)
        if channel is None:
            return None
        sources.append(sliced.input(0).get_source_output())
        channels.append(channel)
    source = sources[0]
    if any(other != source for other in sources[1:]):
        return None
    if not source.get_partial_shape().rank.is_static:
        return None
    if source.get_partial_shape().rank.get_length() != rank.get_length():
        return None
    return source, channels, axis


def _single_channel(node: Any) -> int | None:
    """c when ``node`` is the StridedSlice x[..., c] (c >= 0), else None."""
    if node.get_type_name() != "StridedSlice":
        return None
    attributes = node.get_attributes()
    if any(_mask(attributes.get(key, [])) != value for key, value in _ONE_CHANNEL.items()):
        return None
    begin, end, stride = (_constant(node, index) for index in (1, 2, 3))
    if begin is None or end is None or stride is None or len(begin) != 2:
        return None
    channel = begin[1]
    if channel < 0 or end[1] != channel + 1 or stride[1] != 1:
        return None
    return channel


def _mask(bits: list[int]) -> list[int]:
    """A StridedSlice mask over the two axes (an empty or short mask: zeros)."""
    return [*(int(bit) for bit in bits), 0, 0][:2] if len(bits) <= 2 else [-1]


def _constant(node: Any, index: int) -> list[int] | None:
    """Input ``index`` of ``node`` as a list of ints, when it is a Constant."""
    if node.get_input_size() <= index:
        return None
    source = node.input(index).get_source_output().get_node()
    if source.get_type_name() != "Constant":
        return None
    return [int(value) for value in np.asarray(source.get_data()).reshape(-1)]
