"""The .caffemodel reader and `repro segmenter import-caffe` / `get`, on caffemodel files written here.

The writer below encodes protobuf by hand, independently of the reader: NetParameter with
layer = 100 (LayerParameter name 1, type 2, blobs 7) or legacy layers = 2 (V1LayerParameter
name 4, type 5, blobs 6); BlobProto shape 7 (BlobShape dim 1, packed) or legacy num/channels/
height/width 1..4; data 5 packed or one fixed32 per value.
"""

import functools
import http.server
import struct
import threading

import numpy as np
import pytest
import torch

from repro import ReproError, weights
from repro.cli import build_parser
from repro.eval import segmenter
from repro.eval.caffemodel import import_caffemodel, read_caffemodel
from repro.eval.fcn import CONV_LAYERS, DECONV_LAYERS, fcn8s, load_segmenter

WIDTH = 1 / 16


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def tag(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def delimited(number: int, payload: bytes) -> bytes:
    return tag(number, 2) + varint(len(payload)) + payload


def blob_bytes(array: np.ndarray, legacy: bool, packed: bool) -> bytes:
    out = b""
    if legacy:
        dims = (1,) * (4 - array.ndim) + array.shape
        out += b"".join(tag(i + 1, 0) + varint(d) for i, d in enumerate(dims))
    else:
        out += delimited(7, delimited(1, b"".join(varint(d) for d in array.shape)))
    values = array.astype("<f4").ravel()
    if packed:
        out += delimited(5, values.tobytes())
    else:
        out += b"".join(tag(5, 5) + struct.pack("<f", v) for v in values)
    return out


def layer_bytes(name: str, kind: str, blobs: list, v1: bool, packed: bool) -> bytes:
    blobs = [blob_bytes(b, legacy=v1, packed=packed) for b in blobs]
    if v1:
        enum = {"Convolution": 4, "Deconvolution": 39, "Data": 5, "SoftmaxWithLoss": 21}[kind]
        return delimited(4, name.encode()) + tag(5, 0) + varint(enum) + b"".join(delimited(6, b) for b in blobs)
    return delimited(1, name.encode()) + delimited(2, kind.encode()) + b"".join(delimited(7, b) for b in blobs)


def fcn_layers(model, fc_names=("fc6_cs", "fc7_cs")) -> list:
    """(caffe name, type, blobs) of a net, plus a data layer and a loss layer like a training snapshot."""
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    rename = {"fc6": fc_names[0], "fc7": fc_names[1]}
    layers = [("data", "Data", [])]
    for name in CONV_LAYERS:
        layers.append((rename.get(name, name), "Convolution", [state[f"{name}.weight"], state[f"{name}.bias"]]))
    for name in DECONV_LAYERS:
        layers.append((name, "Deconvolution", [state[f"{name}.weight"]]))
    layers.append(("loss", "SoftmaxWithLoss", []))
    return layers


def write_caffemodel(path, layers, v1=False, packed=True):
    net = delimited(1, b"fcn8s-test")
    for name, kind, blobs in layers:
        net += delimited(2 if v1 else 100, layer_bytes(name, kind, blobs, v1, packed))
    path.write_bytes(net)
    return path


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    return fcn8s(width=WIDTH).eval()


@pytest.mark.parametrize("v1,packed", [(False, True), (True, False), (True, True)])
def test_reader_returns_every_blob_in_both_layouts(tmp_path, small_net, v1, packed):
    layers = fcn_layers(small_net)
    path = write_caffemodel(tmp_path / "net.caffemodel", layers, v1=v1, packed=packed)
    read = read_caffemodel(path)
    assert [l.name for l in read] == [name for name, _, _ in layers]
    assert read[1].type == "Convolution" and read[-2].type == "Deconvolution"
    for (name, _, blobs), layer in zip(layers, read):
        assert len(layer.blobs) == len(blobs)
        for want, got in zip(blobs, layer.blobs):
            shape = ((1,) * (4 - want.ndim) + want.shape) if v1 else want.shape
            assert got.shape == shape
            np.testing.assert_array_equal(got.ravel(), want.ravel())


@pytest.mark.parametrize("v1,fc_names", [(False, ("fc6_cs", "fc7_cs")), (True, ("fc6", "fc7"))])
def test_import_gives_the_same_network(tmp_path, small_net, v1, fc_names):
    path = write_caffemodel(tmp_path / "net.caffemodel", fcn_layers(small_net, fc_names), v1=v1)
    model, note = import_caffemodel(path)
    assert model.width == WIDTH and model.n_classes == 20
    assert note["caffe_layers_skipped"] == []
    for key, value in small_net.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    x = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        torch.testing.assert_close(model(x), small_net(x))


def test_layers_the_net_lacks_are_skipped_and_reported(tmp_path, small_net):
    layers = fcn_layers(small_net) + [("fc8", "Convolution", [np.zeros((1000, 4, 1, 1), np.float32)])]
    _, note = import_caffemodel(write_caffemodel(tmp_path / "net.caffemodel", layers))
    assert note["caffe_layers_skipped"] == ["fc8"]


def test_shape_mismatch_is_refused_naming_layer_and_shapes(tmp_path, small_net):
    layers = fcn_layers(small_net)
    index = [name for name, _, _ in layers].index("score_pool4")
    name, kind, (weight, bias) = layers[index]
    layers[index] = (name, kind, [np.zeros((20, weight.shape[1] + 1, 1, 1), np.float32), bias])
    path = write_caffemodel(tmp_path / "bad.caffemodel", layers)
    with pytest.raises(ReproError) as err:
        import_caffemodel(path)
    message = str(err.value)
    assert "score_pool4" in message and f"[20, {weight.shape[1] + 1}, 1, 1]" in message
    assert f"[20, {weight.shape[1]}, 1, 1]" in message


def test_missing_layer_and_garbage_are_refused(tmp_path, small_net):
    layers = [l for l in fcn_layers(small_net) if l[0] != "upscore8"]
    with pytest.raises(ReproError, match="upscore8"):
        import_caffemodel(write_caffemodel(tmp_path / "partial.caffemodel", layers))
    html = tmp_path / "page.caffemodel"
    html.write_bytes(b"<html><body>Not Found</body></html>")
    with pytest.raises(ReproError, match="page.caffemodel"):
        import_caffemodel(html)
    complete = write_caffemodel(tmp_path / "net.caffemodel", fcn_layers(small_net)).read_bytes()
    (tmp_path / "cut.caffemodel").write_bytes(complete[: len(complete) // 2])
    with pytest.raises(ReproError, match="cut.caffemodel"):
        import_caffemodel(tmp_path / "cut.caffemodel")


def cli(argv):
    args = build_parser(argv).parse_args(argv)
    return args.func(args)


def test_import_caffe_command_writes_pt_and_sha256(tmp_path, small_net):
    caffemodel = write_caffemodel(tmp_path / "fcn-8s-cityscapes.caffemodel", fcn_layers(small_net))
    out = tmp_path / "seg" / "fcn.pt"
    cli(["segmenter", "import-caffe", str(caffemodel), str(out)])
    model, info = load_segmenter(out)
    assert info["source"] == "caffemodel" and info["caffemodel"] == "fcn-8s-cityscapes.caffemodel"
    assert (tmp_path / "seg" / "fcn.pt.sha256").read_text().split() == [info["sha256"], "fcn.pt"]
    torch.testing.assert_close(model.state_dict()["upscore8.weight"], small_net.state_dict()["upscore8.weight"])
    out.write_bytes(out.read_bytes()[:-10])
    with pytest.raises(ReproError, match="does not match its hash"):
        load_segmenter(out)


@pytest.fixture
def http_folder(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_get_downloads_then_imports(tmp_path, small_net, http_folder):
    served, base = http_folder
    write_caffemodel(served / "fcn-8s-cityscapes.caffemodel", fcn_layers(small_net))
    out = tmp_path / "segmenters" / "fcn.pt"
    cli(["segmenter", "get", "--out", str(out), "--url", f"{base}/fcn-8s-cityscapes.caffemodel"])
    assert (tmp_path / "segmenters" / "fcn-8s-cityscapes.caffemodel").read_bytes() == \
        (served / "fcn-8s-cityscapes.caffemodel").read_bytes()
    model, info = load_segmenter(out)
    torch.testing.assert_close(model.state_dict()["conv1_1.weight"], small_net.state_dict()["conv1_1.weight"])


def test_get_offline_says_where_the_file_was_published(tmp_path, http_folder):
    _, base = http_folder
    with pytest.raises(ReproError) as err:  # a 404 from the local server stands in for the dead link
        segmenter.get(tmp_path / "fcn.pt", url=f"{base}/gone.caffemodel")
    message = str(err.value)
    assert weights.FCN8S_URL in message and "people.eecs" in message
    assert f"repro segmenter import-caffe PATH/fcn-8s-cityscapes.caffemodel {tmp_path / 'fcn.pt'}" in message
    assert not (tmp_path / "fcn-8s-cityscapes.caffemodel").exists()
    with pytest.raises(ReproError, match="import-caffe"):  # nothing listening at all
        segmenter.get(tmp_path / "fcn.pt", url="http://127.0.0.1:9/fcn-8s-cityscapes.caffemodel", retries=0)
