"""`repro weights get`: VGG16 and Inception through torch hub's hash-checked download into a temporary
TORCH_HOME, the FCN-8s caffemodel through the resumable download, trusted on first use; every file served
by a 127.0.0.1 server the test starts. Also the on-demand fetches of the commands that need the files."""

import hashlib
import io

import pytest
import torch
from torchvision.models.vgg import make_layers

from http_fixtures import ArchiveServer, closed_port_url
from repro import ReproError, weights
from repro.vgg import TRUNK, VGGRelu4_2
from repro.cli import main
from repro.eval import fid
from repro.eval.fcn import load_segmenter
from tests.test_caffemodel import fcn_layers, small_net, write_caffemodel  # noqa: F401 (fixture)


def saved(state: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def spec_for(body: bytes, kind: str = "vgg16", env: str = "REPRO_VGG16_URL") -> weights.HubFile:
    """A published file whose name carries the served body's own sha256 prefix, as torchvision's do."""
    prefix = hashlib.sha256(body).hexdigest()[:8]
    return weights.HubFile(kind, f"https://publisher.invalid/models/{kind}-{prefix}.pth", env, "the test")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


@pytest.fixture
def server():
    with ArchiveServer() as s:
        yield s


def test_the_publishers_urls_are_torchvisions_and_pytorch_fids_own():
    from pytorch_fid.inception import FID_WEIGHTS_URL
    from torchvision.models import VGG16_Weights

    assert weights.VGG16.url == VGG16_Weights.IMAGENET1K_V1.url
    assert weights.INCEPTION.url == FID_WEIGHTS_URL
    assert (weights.VGG16.hash_prefix, weights.INCEPTION.hash_prefix) == ("397923af", "6726825d")
    assert weights.INCEPTION.file_name == fid.WEIGHTS_FILE


def test_hub_file_is_fetched_verified_then_read_from_the_cache(torch_home, server):
    body = saved({"features.0.weight": torch.arange(6.0)})
    spec = spec_for(body)
    server.files[f"/mirror/{spec.file_name}"] = body
    path = weights.fetch_hub(spec, url=server.url(f"/mirror/{spec.file_name}"), progress=False)
    assert path == torch_home / spec.file_name and path.read_bytes() == body
    assert sorted(p.name for p in torch_home.iterdir()) == [spec.file_name]  # no temporary left behind
    assert weights.fetch_hub(spec, url=server.url("/elsewhere.pth"), progress=False) == path  # the cache answers
    assert len(server.requests) == 1


def test_environment_variable_names_the_mirror(torch_home, server, monkeypatch):
    body = saved({"w": torch.ones(3)})
    spec = spec_for(body, "inception", "REPRO_INCEPTION_URL")
    server.files["/m/x.pth"] = body
    monkeypatch.setenv("REPRO_INCEPTION_URL", server.url("/m/x.pth"))
    assert weights.fetch_hub(spec, progress=False).read_bytes() == body
    assert server.requests == [("/m/x.pth", None)]


@pytest.mark.parametrize("kind", ["vgg16", "inception"])
def test_a_file_with_the_wrong_hash_is_refused_and_nothing_is_cached(torch_home, server, monkeypatch, kind, capsys):
    server.files["/fake.pth"] = saved({"not": torch.zeros(2)})  # a loadable file, but not the published one
    spec = weights.VGG16 if kind == "vgg16" else weights.INCEPTION
    monkeypatch.setenv(spec.env, server.url("/fake.pth"))
    assert main(["weights", "get", kind, "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "refused" in err and spec.hash_prefix in err and spec.url in err
    assert not torch_home.exists() or list(torch_home.iterdir()) == []


def test_a_cut_connection_resumes_and_the_file_is_verified(torch_home, server, monkeypatch):
    monkeypatch.setattr("repro.data.download.time.sleep", lambda s: None)
    monkeypatch.setattr("repro.data.download.CHUNK", 1024)  # the bytes of an unfinished chunk are lost with the connection
    body = saved({"features.0.weight": torch.arange(6000.0)})
    spec = spec_for(body)
    server.files["/vgg.pth"] = body
    server.cuts["/vgg.pth"] = 2  # was: "the host serves another file" for a download cut short
    assert weights.fetch_hub(spec, url=server.url("/vgg.pth"), progress=False).read_bytes() == body
    assert [r is not None for _, r in server.requests] == [False, True, True]  # resumed, not restarted
    assert sorted(p.name for p in torch_home.iterdir()) == [spec.file_name]


def test_a_host_that_stops_sending_says_the_download_is_incomplete(torch_home, server, monkeypatch, capsys):
    from repro.data import download

    monkeypatch.setattr(download.time, "sleep", lambda s: None)
    monkeypatch.setattr(download, "TIMEOUT", (5.0, 0.2))
    server.files["/vgg.pth"] = saved({"features.0.weight": torch.arange(6000.0)})
    server.stalls["/vgg.pth"] = 100
    monkeypatch.setenv("REPRO_VGG16_URL", server.url("/vgg.pth"))
    assert main(["weights", "get", "vgg16", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "is incomplete" in err and "the host stopped sending" in err and "another file" not in err
    assert 'Downloading: "' not in err and "%|" not in err  # --quiet: no torch hub line, no bar


def test_offline_says_where_the_file_goes(torch_home, monkeypatch):
    monkeypatch.setattr("repro.data.download.time.sleep", lambda s: None)
    monkeypatch.setenv("REPRO_VGG16_URL", closed_port_url("/vgg16.pth"))
    with pytest.raises(ReproError) as err:
        weights.vgg16(progress=False)
    message = str(err.value)
    assert str(torch_home / "vgg16-397923af.pth") in message and weights.VGG16.url in message
    assert "repro weights get vgg16" in message and "REPRO_VGG16_URL" in message


def test_a_missing_file_on_the_host_is_named(torch_home, server, monkeypatch):
    monkeypatch.setenv("REPRO_INCEPTION_URL", server.url("/gone.pth"))  # the server answers 404
    with pytest.raises(ReproError, match=f"(?s)could not download.*Not Found.*{weights.INCEPTION.file_name}"):
        weights.inception(progress=False)
    assert not torch_home.exists() or list(torch_home.iterdir()) == []


def test_feature_loss_vgg_is_fetched_on_demand(torch_home, server, monkeypatch):
    torch.manual_seed(3)
    state = {f"features.{k}": v for k, v in make_layers(TRUNK).state_dict().items()}
    body = saved(state)
    spec = spec_for(body)
    monkeypatch.setattr(weights, "VGG16", spec)
    server.files["/vgg.pth"] = body
    monkeypatch.setenv("REPRO_VGG16_URL", server.url("/vgg.pth"))
    vgg = VGGRelu4_2("imagenet")
    assert torch.equal(vgg.trunk[19].weight, state["features.19.weight"])
    assert (torch_home / spec.file_name).is_file() and len(server.requests) == 1


def test_feature_loss_without_the_file_and_offline_is_a_clear_error(torch_home, monkeypatch):
    monkeypatch.setattr("repro.data.download.time.sleep", lambda s: None)
    monkeypatch.setenv("REPRO_VGG16_URL", closed_port_url("/vgg16.pth"))
    with pytest.raises(ReproError, match='(?s)vgg16-397923af.pth.*does not exist.*could not download.*"random"'):
        VGGRelu4_2("imagenet")


def test_fid_fetches_inception_on_demand(torch_home, server, monkeypatch):
    body = saved({"w": torch.zeros(1)})
    spec = spec_for(body, "inception", "REPRO_INCEPTION_URL")
    monkeypatch.setattr(weights, "INCEPTION", spec)
    server.files["/inception.pth"] = body
    monkeypatch.setenv("REPRO_INCEPTION_URL", server.url("/inception.pth"))
    assert fid.weights_path() == torch_home / spec.file_name


def test_fcn8s_caffemodel_is_recorded_on_first_use_then_verified(tmp_path, server, small_net, capsys):
    body = write_caffemodel(tmp_path / "src.caffemodel", fcn_layers(small_net)).read_bytes()
    server.files["/fcn-8s-cityscapes.caffemodel"] = body
    out = tmp_path / "segmenters" / "fcn.pt"
    url = server.url("/fcn-8s-cityscapes.caffemodel")
    assert main(["weights", "get", "fcn8s-caffe", "--url", url, "--out", str(out)]) == 0
    caffemodel = out.with_name("fcn-8s-cityscapes.caffemodel")
    digest = hashlib.sha256(body).hexdigest()
    assert "CANNOT BE VERIFIED" in capsys.readouterr().err
    assert weights.hash_file(caffemodel).read_text() == f"{digest}  fcn-8s-cityscapes.caffemodel\n"
    model, _ = load_segmenter(out)
    torch.testing.assert_close(model.state_dict()["conv1_1.weight"], small_net.state_dict()["conv1_1.weight"])

    # a second get reuses the verified file; a later download of another file is refused and set aside
    assert main(["weights", "get", "fcn8s-caffe", "--url", url, "--out", str(out)]) == 0
    assert len(server.requests) == 1
    caffemodel.unlink()
    server.files["/fcn-8s-cityscapes.caffemodel"] = body[:-4] + b"\0\0\0\0"
    assert main(["weights", "get", "fcn8s-caffe", "--url", url, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "refused" in err and digest in err
    assert not caffemodel.exists() and caffemodel.with_name("fcn-8s-cityscapes.caffemodel.sha256-mismatch").is_file()


@pytest.mark.parametrize("garbage", [b"<!DOCTYPE html><html><body>Moved</body></html>", b"\x08\x96\x01" * 50],
                         ids=["html", "garbage"])
def test_a_caffemodel_that_does_not_parse_is_never_trusted(tmp_path, server, small_net, capsys, garbage):
    server.files["/fcn.caffemodel"] = garbage
    out = tmp_path / "fcn.pt"
    caffemodel = tmp_path / "fcn-8s-cityscapes.caffemodel"
    url = server.url("/fcn.caffemodel")
    assert main(["weights", "get", "fcn8s-caffe", "--url", url, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "is not a usable file" in err and "its hash was not recorded" in err and "CANNOT BE VERIFIED" not in err
    assert not caffemodel.exists() and not weights.hash_file(caffemodel).exists()
    assert caffemodel.with_name(caffemodel.name + ".unusable").is_file()

    body = write_caffemodel(tmp_path / "src.caffemodel", fcn_layers(small_net)).read_bytes()
    server.files["/fcn.caffemodel"] = body  # the right file is then accepted, not refused as a mismatch
    assert main(["weights", "get", "fcn8s-caffe", "--url", url, "--out", str(out)]) == 0
    assert weights.recorded_sha256(caffemodel) == hashlib.sha256(body).hexdigest()


def test_a_hash_recorded_for_an_unparsable_caffemodel_is_dropped(tmp_path, server, small_net, capsys):
    """An earlier version recorded the hash of whatever arrived (an HTML page) and reused the file."""
    caffemodel = tmp_path / "fcn-8s-cityscapes.caffemodel"
    caffemodel.write_bytes(b"<html>error</html>")
    weights.hash_file(caffemodel).write_text(f"{hashlib.sha256(b'<html>error</html>').hexdigest()}  {caffemodel.name}\n")
    body = write_caffemodel(tmp_path / "src.caffemodel", fcn_layers(small_net)).read_bytes()
    server.files["/fcn.caffemodel"] = body
    url, out = server.url("/fcn.caffemodel"), tmp_path / "fcn.pt"
    assert main(["weights", "get", "fcn8s-caffe", "--url", url, "--out", str(out)]) == 1
    assert "was removed" in capsys.readouterr().err and not weights.hash_file(caffemodel).exists()
    assert main(["weights", "get", "fcn8s-caffe", "--url", url, "--out", str(out)]) == 0  # the right file is taken
    assert weights.recorded_sha256(caffemodel) == hashlib.sha256(body).hexdigest()


def test_fcn8s_caffemodel_offline_names_the_ways_out(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REPRO_FCN8S_URL", closed_port_url("/fcn.caffemodel"))
    monkeypatch.setattr("repro.data.download.time.sleep", lambda s: None)
    assert main(["weights", "get", "fcn8s-caffe", "--out", str(tmp_path / "fcn.pt")]) == 1
    err = capsys.readouterr().err
    assert "import-caffe" in err and "repro segmenter train" in err
    assert not (tmp_path / "fcn-8s-cityscapes.caffemodel").exists()


def test_segmenter_training_fetches_vgg16_only_for_the_full_width_net(torch_home, server, monkeypatch, capsys):
    from repro.eval import segmenter
    from repro.eval.fcn import fcn8s

    monkeypatch.setenv("REPRO_VGG16_URL", server.url("/vgg16-397923af.pth"))  # nothing served: 404
    assert segmenter.init_trunk(fcn8s(width=1 / 16)) == "scratch"  # the real file cannot fit: not fetched
    assert server.requests == []
    assert "FROM SCRATCH" not in capsys.readouterr().err  # nothing the user could do: no banner
    with torch.device("meta"):
        full = fcn8s(width=1)
    assert segmenter.init_trunk(full) == "scratch"
    assert server.requests == [("/vgg16-397923af.pth", None)]
    err = capsys.readouterr().err
    assert "could not download vgg16-397923af.pth" in err and "FROM SCRATCH" in err
