"""model=timm: timm's networks as lossbench backbones. Random weights or
weights from a file written here: no network, nothing downloaded."""

import importlib
import sys

import pytest
import torch
from PIL import Image

from helpers.training import compose_train, read_rows
from lossbench.cli import main
from lossbench.errors import UserError
from lossbench.models import build_model
from lossbench.training import folder_lock
from lossbench.training.checkpoint import check_resumable
from lossbench.training.run import build, run_training
from lossbench.training.run_dir import RunDir
from lossbench.training.validate import validate_config

# timm's smallest test networks: a CNN (98k parameters, 256 features) and a ViT (16x16 patches)
CNN, VIT = "test_efficientnet", "test_vit"


def _timm():
    import timm

    return timm


def refusal(capsys, monkeypatch, tmp_path, *overrides) -> str:
    """The one line `lossbench train` prints for a refused command (exit 2, no traceback)."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["train", "dataset=digits", "trainer.progress=false", *overrides])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert not folder_lock._held, "a refused command still holds its run folder"
    assert "Traceback" not in err and lines[-1].startswith("lossbench train: error: "), err
    assert [line for line in lines if "error" in line.lower()] == [lines[-1]], err
    return lines[-1].removeprefix("lossbench train: error: ")


@pytest.mark.parametrize("arch, channels, size", [(CNN, 1, 8), ("resnet18", 3, 32)])
def test_the_embedding_is_timms_features(arch, channels, size):
    model = build_model("timm", channels, 7, image_size=size, arch=arch).eval()
    assert model.embedding_dim == _timm().create_model(arch, num_classes=0).num_features
    x = torch.randn(2, channels, size, size)
    assert model.embed(x).shape == (2, model.embedding_dim)
    assert model(x).shape == (2, 7)


def test_a_pre_logits_layer_sets_the_embedding_width():
    # MobileNetV3's conv head widens its 288 features to 1024 before the classifier
    model = build_model("timm", 3, 5, image_size=32, arch="mobilenetv3_small_050").eval()
    assert model.embedding_dim == 1024 == model.embed(torch.randn(2, 3, 32, 32)).shape[1]


def test_a_vit_is_built_for_the_datasets_image_size(tmp_path):
    root = tmp_path / "images"
    for split, n in (("train", 4), ("test", 2)):
        for name, colour in (("red", (200, 10, 10)), ("blue", (10, 10, 200))):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                Image.new("RGB", (40, 40), colour).save(root / split / name / f"{i}.png")
    cfg = compose_train("dataset=image_folder", f"dataset.root={root}", "dataset.image_size=48",
                        "dataset.val_fraction=0", f"paths.data_dir={tmp_path / 'data'}", "trainer.batch_size=4",
                        "model=timm", f"model.arch={VIT}")
    validate_config(cfg)
    model = build(cfg).model.eval()
    assert tuple(model.backbone.patch_embed.img_size) == (48, 48)  # timm's default for it: 160
    assert model(torch.randn(2, 3, 48, 48)).shape == (2, 2)


def test_a_size_the_network_cannot_take_is_one_line():
    with pytest.raises(UserError, match=r"model.arch=test_vit cannot take the dataset's 8x8 images \(.*patch size"):
        build_model("timm", 1, 10, image_size=8, arch=VIT)


@pytest.mark.slow
def test_a_margin_loss_trains_on_timms_features(tmp_path):
    run_dir = tmp_path / "run"
    summary = run_training(compose_train("model=timm", f"model.arch={CNN}", "loss=cosface", "trainer.epochs=2"),
                           run_dir)
    rows = read_rows(run_dir)
    assert summary["status"] == "finished" and summary["model"] == f"timm/{CNN}"
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(rows[1]["test_acc"]) > 0.2  # chance: 0.1
    state = torch.load(run_dir / "last.pt", weights_only=False)
    assert "head.weight" not in state["model"]  # cosface's class weights take timm's 256 features
    assert tuple(state["loss"]["weight"].shape) == (10, 256)
    # a checkpoint continues only with the same network
    config = RunDir(run_dir).config()
    config["model"]["arch"] = "test_byobnet"
    with pytest.raises(UserError, match=r"model.arch=test_efficientnet \(now test_byobnet\)"):
        check_resumable(run_dir, config)


def _save(state: dict, path):
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, path)
    else:
        torch.save(state, path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_checkpoint_weights_are_loaded(tmp_path, suffix):
    # as timm saves an ImageNet network: 3 channels, a 1000-class classifier
    saved = _timm().create_model(CNN).state_dict()
    path = tmp_path / f"weights{suffix}"
    _save(saved, path)
    model = build_model("timm", 3, 10, image_size=32, arch=CNN, pretrained=True, checkpoint=str(path))
    loaded = model.backbone.state_dict()
    assert set(saved) - set(loaded) == {"classifier.weight", "classifier.bias"}  # lossbench's head instead
    assert all(torch.equal(loaded[k], saved[k]) for k in loaded)
    # one grey channel: timm sums the first convolution's weights over the colours
    grey = build_model("timm", 1, 10, image_size=8, arch=CNN, pretrained=True, checkpoint=str(path)).backbone
    assert torch.equal(grey.conv_stem.weight, saved["conv_stem.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(grey.bn1.weight, saved["bn1.weight"])


def test_a_checkpoint_that_does_not_fit_is_refused(tmp_path):
    path = tmp_path / "vit.pth"
    torch.save(_timm().create_model(VIT).state_dict(), path)
    with pytest.raises(UserError, match=f"model.checkpoint={path} holds none of {CNN}'s weights"):
        build_model("timm", 3, 10, image_size=32, arch=CNN, pretrained=True, checkpoint=str(path))
    torch.save(_timm().create_model("test_convnext2").state_dict(), path)  # test_convnext's names, wider
    with pytest.raises(UserError, match=f"model.checkpoint={path} does not fit test_convnext: Error.s. in loading "
                                        f"state_dict for ConvNeXt: size mismatch for stem.0.weight"):
        build_model("timm", 3, 10, image_size=32, arch="test_convnext", pretrained=True, checkpoint=str(path))
    path.write_bytes(b"not weights")
    with pytest.raises(UserError, match=f"model.checkpoint={path} cannot be read as a state dict"):
        build_model("timm", 3, 10, image_size=32, arch=CNN, pretrained=True, checkpoint=str(path))


@pytest.mark.parametrize("overrides, message", [
    (["model.arch=5"], "model.arch=5 is invalid: it must be the name of a timm model, e.g. resnet18"),
    (["model.pretrained=maybe"], "model.pretrained='maybe' is invalid: it must be true or false"),
    (["model.checkpoint=5", "model.pretrained=true"],
     "model.checkpoint=5 is invalid: it must be the path of a weights file, or null"),
    (["model.checkpoint=missing.pth", "model.pretrained=true"], "model.checkpoint=missing.pth does not exist"),
    (["model.checkpoint=missing.pth"], "model.checkpoint=missing.pth is read only with model.pretrained=true"),
    (["model.arch=coatnet_0_224", "model.pretrained=true"],
     "model.arch=coatnet_0_224: timm has no pretrained weights for it: use model.pretrained=false, or give "
     "weights with model.checkpoint=PATH"),
    (["model.arch=resnet18.nope"], "model.arch='resnet18.nope': timm has no weights tagged 'nope' for resnet18"),
])
def test_bad_model_values_are_refused_before_any_data(overrides, message):
    with pytest.raises(UserError) as info:
        validate_config(compose_train("model=timm", *overrides))
    assert message in str(info.value)


def test_unknown_arch_is_one_line_with_close_names(capsys, monkeypatch, tmp_path):
    line = refusal(capsys, monkeypatch, tmp_path, "model=timm", "model.arch=resnet181")
    assert line.startswith("model.arch='resnet181' is not a timm model (did you mean resnet18")
    assert "timm.list_models()" in line


@pytest.fixture
def empty_offline_hub(tmp_path, monkeypatch):
    """No network and an empty Hugging Face cache under HF_HOME; yields the cache folder."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(variable, raising=False)
    importlib.reload(constants)  # huggingface_hub reads the environment when it is imported
    yield tmp_path / "hf" / "hub"
    monkeypatch.undo()
    importlib.reload(constants)


def test_offline_without_cached_weights_is_one_line(capsys, monkeypatch, tmp_path, empty_offline_hub):
    line = refusal(capsys, monkeypatch, tmp_path, "model=timm", f"model.arch={CNN}", "model.pretrained=true",
                   "trainer.epochs=1")
    assert line.startswith(f"model.arch={CNN}: its pretrained weights (timm/{CNN}.")
    assert f"not in the Hugging Face cache {empty_offline_hub} " in line
    assert "model.checkpoint=PATH" in line


def test_without_timm_the_line_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm fails, as where it is not installed
    with pytest.raises(UserError, match=r'model=timm needs timm, which is not installed: '
                                        r'pip install "lossbench\[timm\]"'):
        validate_config(compose_train("model=timm"))
    with pytest.raises(UserError, match=r'pip install "lossbench\[timm\]"'):
        build_model("timm", 3, 10, image_size=32)
