"""Read a Caffe .caffemodel without Caffe and turn it into FCN-8s weights.

A .caffemodel is one protobuf NetParameter. Only a handful of fields matter here, so this module
reads the protobuf wire format directly (varints, length-delimited fields, fixed 32/64-bit values)
instead of compiling caffe.proto:

    NetParameter:      name = 1, layer = 100 (LayerParameter), legacy layers = 2 (V1LayerParameter)
    LayerParameter:    name = 1, type = 2 (string), blobs = 7
    V1LayerParameter:  name = 4, type = 5 (enum), blobs = 6
    BlobProto:         num, channels, height, width = 1..4 (legacy 4-D shape), data = 5 (float,
                       packed or not), double_data = 8, shape = 7 (BlobShape: dim = 1, int64)

Blobs map to parameters by layer name and every shape is checked, as Caffe's own
CopyTrainedLayersFrom does; layers the net does not have (data, loss) are skipped like Caffe skips them.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from repro import ReproError
from repro.eval.fcn import CONV_LAYERS, DECONV_LAYERS, FCN8s, fcn8s

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5

# The pix2pix Cityscapes net names its fully connected layers fc6_cs / fc7_cs (deploy.prototxt).
CAFFE_ALIASES = {"fc6_cs": "fc6", "fc7_cs": "fc7"}
# V1LayerParameter.LayerType values of the layers FCN-8s has (the rest are reported by number).
V1_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}


@dataclass
class CaffeLayer:
    name: str
    type: str
    blobs: list[np.ndarray] = field(default_factory=list)


# ------------------------------------------------------------------------------ wire format


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def iter_fields(buf: memoryview):
    """Yields (field number, wire type, value): an int for varints, a memoryview of the bytes
    for fixed32 / fixed64 / length-delimited fields (no copy: blob data stays in the file buffer)."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == FIXED64:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == FIXED32:
            value, pos = buf[pos:pos + 4], pos + 4
        elif wire == LENGTH:
            size, pos = read_varint(buf, pos)
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire} (field {number})")
        if pos > len(buf):
            raise ValueError(f"field {number} runs past the end of its message")
        yield number, wire, value


def packed_varints(buf: memoryview) -> list[int]:
    values, pos = [], 0
    while pos < len(buf):
        value, pos = read_varint(buf, pos)
        values.append(value)
    return values


# ------------------------------------------------------------------------------ messages


def parse_blob(buf: memoryview) -> np.ndarray:
    legacy, shape, chunks = {}, None, []
    for number, wire, value in iter_fields(buf):
        if number in (1, 2, 3, 4) and wire == VARINT:
            legacy[number] = value
        elif number == 5:  # float data: one packed run, or one fixed32 per value
            chunks.append(np.frombuffer(value, dtype="<f4"))
        elif number == 8:  # double data, same two encodings
            chunks.append(np.frombuffer(value, dtype="<f8").astype(np.float32))
        elif number == 7:
            shape = []
            for dim_number, dim_wire, dim in iter_fields(value):
                if dim_number == 1:
                    shape.extend(packed_varints(dim) if dim_wire == LENGTH else [dim])
    data = chunks[0] if len(chunks) == 1 else np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if shape is None:
        shape = [legacy.get(i, 0) for i in (1, 2, 3, 4)] if legacy else [data.size]
    if int(np.prod(shape)) != data.size:
        raise ValueError(f"blob of shape {shape} holds {data.size} values")
    return data.reshape(shape)


def parse_layer(buf: memoryview, v1: bool) -> CaffeLayer:
    name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
    layer = CaffeLayer(name="", type="")
    for number, wire, value in iter_fields(buf):
        if number == name_field and wire == LENGTH:
            layer.name = bytes(value).decode()
        elif number == type_field:
            layer.type = V1_TYPES.get(value, f"V1 type {value}") if v1 else bytes(value).decode()
        elif number == blobs_field and wire == LENGTH:
            layer.blobs.append(parse_blob(value))
    return layer


def read_caffemodel(path: Path) -> list[CaffeLayer]:
    """Every layer of the file in order, current (field 100) and legacy V1 (field 2) layouts alike."""
    path = Path(path)
    if not path.is_file():
        raise ReproError(f"{path} does not exist: give the path of the downloaded .caffemodel.")
    buf = memoryview(path.read_bytes())
    layers = []
    try:
        for number, wire, value in iter_fields(buf):
            if wire == LENGTH and number in (100, 2):
                layers.append(parse_layer(value, v1=(number == 2)))
    except ValueError as err:
        raise ReproError(f"{path} is not a complete .caffemodel ({err}): download it again.") from err
    if not layers:
        raise ReproError(f"{path} holds no Caffe layers: is it a .caffemodel (not a .prototxt or an HTML error page)?")
    return layers


# ------------------------------------------------------------------------------ import


def fits(blob_shape: tuple, param_shape: tuple) -> bool:
    """Caffe's own rule: equal shapes, or a legacy 4-D blob equal to the parameter padded with leading 1s."""
    if tuple(blob_shape) == tuple(param_shape):
        return True
    return len(blob_shape) == 4 and len(param_shape) <= 4 and tuple(blob_shape) == (1,) * (4 - len(param_shape)) + tuple(param_shape)


def net_geometry(layers: list[CaffeLayer], path: Path) -> tuple[int, float]:
    """(n_classes, width) from the conv1_1 and score_fr blobs, so scaled test nets import too."""
    by_name = {CAFFE_ALIASES.get(l.name, l.name): l for l in layers if l.blobs}
    for needed in ("conv1_1", "score_fr"):
        if needed not in by_name:
            raise ReproError(f"{path} has no `{needed}` layer with weights: it is not an FCN-8s caffemodel.")
    width = by_name["conv1_1"].blobs[0].shape[0] / 64
    n_classes = int(by_name["score_fr"].blobs[0].shape[0])
    return n_classes, width


def state_dict_from_caffe(layers: list[CaffeLayer], model: FCN8s, path: Path) -> tuple[dict, list[str]]:
    """Blobs -> model.state_dict() by layer name; returns it and the names of skipped layers."""
    params = model.state_dict()
    expected = {name: [f"{name}.weight"] + ([f"{name}.bias"] if f"{name}.bias" in params else [])
                for name in CONV_LAYERS + DECONV_LAYERS}
    state, skipped = {}, []
    for layer in layers:
        name = CAFFE_ALIASES.get(layer.name, layer.name)
        if not layer.blobs:
            continue
        if name not in expected:
            skipped.append(layer.name)
            continue
        if expected[name][0] in state:
            raise ReproError(f"{path}: layer {layer.name} appears twice; the file is not a single trained net.")
        keys = expected[name]
        if len(layer.blobs) != len(keys):
            raise ReproError(f"{path}: layer {layer.name} has {len(layer.blobs)} blobs, FCN-8s expects {len(keys)} ({', '.join(keys)}).")
        for blob, key in zip(layer.blobs, keys):
            if not fits(blob.shape, params[key].shape):
                raise ReproError(
                    f"{path}: layer {layer.name} blob {key.split('.')[-1]} has shape {list(blob.shape)} but FCN-8s "
                    f"(width {model.width:g}, {model.n_classes} classes) needs {list(params[key].shape)}. "
                    f"The file is not the pix2pix fcn-8s-cityscapes net."
                )
            state[key] = torch.from_numpy(blob.reshape(params[key].shape).copy())
    missing = [name for name, keys in expected.items() if keys[0] not in state]
    if missing:
        raise ReproError(f"{path} lacks weights for layer(s) {', '.join(missing)}: it is not a complete FCN-8s caffemodel.")
    return state, skipped


def import_caffemodel(path: Path) -> tuple[FCN8s, dict]:
    """The FCN-8s held by a .caffemodel, and a note of what was read (layout, skipped layers)."""
    path = Path(path)
    layers = read_caffemodel(path)
    n_classes, width = net_geometry(layers, path)
    model = fcn8s(n_classes=n_classes, width=width)
    state, skipped = state_dict_from_caffe(layers, model, path)
    model.load_state_dict(state)
    return model.eval(), {"caffe_layers": len(layers), "caffe_layers_skipped": skipped}
