import pytest
import torch

from lossbench.errors import UserError
from lossbench.models import MODELS, build_model

# He et al. 2016 report 0.27M, 0.46M and 0.85M for ResNet-20/32/56 (10 classes)
PARAMETERS = {"resnet20": 269_722, "resnet32": 464_154, "resnet56": 853_018, "resnet18": 11_173_962, "fastnet": 1_978_026}


@pytest.mark.parametrize("name, count", PARAMETERS.items())
def test_parameter_counts(name, count):
    assert sum(p.numel() for p in build_model(name, 3, 10).parameters()) == count


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("channels, size, classes", [(1, 8, 10), (3, 32, 100)])
def test_models_read_the_dataset_shape(name, channels, size, classes):
    model = build_model(name, channels, classes).eval()
    x = torch.randn(2, channels, size, size)
    assert model(x).shape == (2, classes)
    assert model.embed(x).shape == (2, model.embedding_dim)


def test_option_a_shortcuts_have_no_parameters():
    model = build_model("resnet20", 3, 10)
    shortcuts = [m.shortcut for m in model.modules() if hasattr(m, "shortcut")]
    assert sum(p.numel() for s in shortcuts for p in s.parameters()) == 0
    resnet18 = build_model("resnet18", 3, 10)
    assert sum(p.numel() for m in resnet18.modules() if hasattr(m, "shortcut") for p in m.shortcut.parameters()) > 0


def test_unknown_model_lists_the_names():
    with pytest.raises(UserError, match="model='vit' is unknown: valid models are resnet20, resnet32"):
        build_model("vit", 3, 10)
