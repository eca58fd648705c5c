"""Where the Hydra configs live, installed or in a source checkout."""

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def config_dir() -> Path:
    # A wheel ships the configs inside the package; an editable install or a
    # source checkout reads them from the repository's top-level configs/.
    packaged = _PACKAGE / "configs"
    if (packaged / "train.yaml").is_file():
        return packaged
    return _PACKAGE.parent / "configs"
