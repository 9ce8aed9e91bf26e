"""ONNX face-recognition graphs as differentiable torch modules (through onnx2torch).

Quantised model files store their weights as ``DequantizeLinear`` of int8 blocks (opset 21 ``block_size``),
which onnx2torch cannot convert: every node whose inputs are all constants is evaluated here once, in
numpy, leaving a plain fp32 graph. Graph inputs that carry an initializer are constants too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from .files import ModelFileError, first_line
from .fx_speedup import speed_up

FOLDABLE = ("DequantizeLinear", "Reshape", "Constant", "Cast", "Identity")
TARGET_OPSET = 17


def _dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int,
                block_size: int) -> np.ndarray:
    x = x.astype(np.float32)
    zero_point = np.zeros_like(scale) if zero_point is None else zero_point.astype(np.float32)
    if scale.ndim == 0 or scale.size == 1:
        return (x - zero_point.reshape(())) * scale.reshape(())
    axis = axis % x.ndim
    if block_size:
        scale = np.repeat(scale, block_size, axis=axis).take(range(x.shape[axis]), axis=axis)
        zero_point = np.repeat(zero_point, block_size, axis=axis).take(range(x.shape[axis]), axis=axis)
    else:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return (x - zero_point) * scale


def _evaluate(node, inputs: list[np.ndarray | None]) -> np.ndarray:
    from onnx import helper, numpy_helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "Constant":
        return numpy_helper.to_array(attrs["value"])
    if node.op_type == "Identity":
        return inputs[0]
    if node.op_type == "Cast":
        return inputs[0].astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))
    if node.op_type == "Reshape":
        shape = [d if d != 0 or attrs.get("allowzero") else inputs[0].shape[i] for i, d in enumerate(inputs[1])]
        return inputs[0].reshape(shape)
    zero_point = inputs[2] if len(inputs) > 2 else None
    return _dequantize(inputs[0], inputs[1], zero_point, attrs.get("axis", 1), attrs.get("block_size", 0))


def fold_constants(model):
    """Evaluate constant-only nodes into fp32 initializers; drop inputs that are constants or unused."""
    from onnx import helper, numpy_helper

    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type in FOLDABLE and all(not name or name in constants for name in node.input):
            constants[node.output[0]] = _evaluate(node, [constants.get(name) for name in node.input])
        else:
            kept.append(node)
    used = {name for node in kept for name in node.input} | {out.name for out in graph.output}
    graph.ClearField("node")
    graph.node.extend(kept)
    graph.ClearField("initializer")
    graph.initializer.extend(numpy_helper.from_array(np.asarray(value), name)
                             for name, value in constants.items() if name in used)
    real_inputs = [inp for inp in graph.input if inp.name not in constants and inp.name in used]
    graph.ClearField("input")
    graph.input.extend(real_inputs)
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("", TARGET_OPSET)])
    return model


def read_onnx(path: Path, load_external_data: bool = True):
    """The parsed ONNX model; a file that is not one (random bytes, text, empty) is one ModelFileError line."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=load_external_data)
    except Exception as error:  # noqa: BLE001 - protobuf and onnx raise many kinds for a bad file
        raise ModelFileError(f"{path} is not an ONNX model ({type(error).__name__}): give the model's .onnx "
                             "file") from None
    if not model.graph.node:
        raise ModelFileError(f"{path} is not an ONNX model (it holds no graph): give the model's .onnx file")
    return model


def onnx_to_torch(path: Path) -> nn.Module:
    """Load an ONNX file as an eval-mode torch module with plain fp32 weights and BatchNorm folded."""
    from onnx2torch import convert

    model = fold_constants(read_onnx(path))
    for inp in model.graph.input:  # a fixed batch of 1 in the file must not pin the module's batch size
        dims = inp.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "N"
    try:
        return speed_up(convert(model).eval())
    except Exception as error:  # noqa: BLE001 - onnx2torch raises many kinds for graphs it cannot take
        raise ModelFileError(f"{path} is an ONNX graph that cannot be converted to torch "
                             f"({first_line(error)})") from None
