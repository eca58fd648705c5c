"""One config path: Hydra composes the command line once, the loss's knob table
makes the loss=NAME config, and every refusal is one line naming what is valid.
In process (no lossbench start-up): these are the fast tier's CLI checks."""

import pytest

from helpers.training import compose_train
from lossbench.losses.registry import LOSSES
from lossbench.training.hydra_app import train_main


def refusal(capsys, monkeypatch, tmp_path, *overrides) -> str:
    """The one line ``lossbench train`` prints for a refused command, after checking it wrote nothing."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        train_main(list(overrides))
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lossbench train: error: "), lines
    assert list(tmp_path.iterdir()) == [], "a refused command wrote files"
    return lines[0].removeprefix("lossbench train: error: ")


@pytest.mark.parametrize("overrides, message", [
    # Hydra's own advice for a key it does not know is +KEY: that would add a setting nothing reads
    (["+trainer.epoch=10"], "trainer.epoch is not a setting: the keys of trainer are epochs, batch_size, "),
    (["++trainer.epoch=10"], "trainer.epoch is not a setting: the keys of trainer are epochs, batch_size, "),
    (["trainer.epoch=10"], "trainer.epoch is not a setting: the keys of trainer are epochs, batch_size, "),
    (["+epoch=10"], "epoch is not a setting: the top-level keys are model, loss, optim, sched, trainer, paths, dataset, seed"),
    (["loss=focal", "loss.gama=1"], "loss.gama is not a knob of focal: its knobs are gamma, alpha, weight, ignore_index, reduction"),
    (["loss=focal", "+loss.gama=1"], "loss.gama is not a knob of focal: its knobs are gamma, alpha, weight, ignore_index, reduction"),
    (["loss=balanced_ce", "loss.weight=[1,2]"], "loss.weight is not a knob of balanced_ce: its knobs are scheme, beta, ignore_index, reduction"),
    (["trainer.epochs=???"], "trainer.epochs has no value: give one, e.g. trainer.epochs=VALUE"),
    (["optim.lr=${oc.env:LOSSBENCH_UNSET_VARIABLE}"], "optim.lr cannot be resolved: "),
    (["trainer.epochs=1=2"], "cannot read the override 'trainer.epochs=1=2'"),
    (["-m", "loss=ce,focall"], "loss='focall' is unknown: valid losses are ce, nll, balanced_ce"),
    (["-m", "seed=0,1", "+trainer.epoch=3"], "trainer.epoch is not a setting"),
])
def test_refusals_name_the_valid_keys_and_write_nothing(capsys, monkeypatch, tmp_path, overrides, message):
    assert message in refusal(capsys, monkeypatch, tmp_path, "dataset=digits", *overrides)


def test_an_unresolvable_value_names_the_variable(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("LOSSBENCH_UNSET_VARIABLE", raising=False)
    line = refusal(capsys, monkeypatch, tmp_path, "dataset=digits", "optim.lr=${oc.env:LOSSBENCH_UNSET_VARIABLE}")
    assert "LOSSBENCH_UNSET_VARIABLE" in line


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_the_loss_config_is_the_knob_table(name):
    """Each loss's config node holds exactly its knobs at their defaults, and a
    loss built from the table alone has those values."""
    table = LOSSES[name].knob_table()
    node = compose_train(f"loss={name}").loss
    assert dict(node) == {"name": name, **{key: knob.default for key, knob in table.items()}}


def test_a_subclass_overrides_the_table_not_the_signature():
    assert compose_train("loss=cosface").loss.s == 64.0 and compose_train("loss=am_softmax").loss.s == 30.0
    assert compose_train("loss=sphereface").loss.m == 4 and compose_train("loss=l_softmax").loss.m == 2
    assert "tau" in LOSSES["vs"].knob_table() and "tau" not in LOSSES["cdt"].knob_table()


def test_a_knob_given_on_the_command_line_reaches_the_loss():
    from lossbench.losses.registry import build_loss
    from lossbench.training.validate import loss_knobs

    cfg = compose_train("loss=focal", "loss.gamma=3", "loss.alpha=[1,2,3,4,5,6,7,8,9,10]")
    loss = build_loss(str(cfg.loss.name), num_classes=10, **loss_knobs(cfg))
    assert loss.gamma == 3.0 and loss.alpha.tolist() == [float(i) for i in range(1, 11)]
