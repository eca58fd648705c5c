"""Which runs a report pools: only those that agree in everything but the
grouping key and the seed; each seed once; finished runs unless asked."""

import pytest
import yaml

from lossbench.cli import main
from lossbench.errors import UserError
from lossbench.report.aggregate import group_label, paired_differences
from lossbench.report.build import build_report
from lossbench.report.runs import load_runs
from lossbench.report.settings import check_group_by, pool, setting
from test_report import BEST, write_run


def _sweep(root, **dataset):
    for job, ((loss, seed), best) in enumerate(BEST.items()):
        write_run(root / str(job), loss, seed, best, **dataset)


def _set_config(run_dir, **values):
    """Change dotted config values of a written run."""
    path = run_dir / ".hydra" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    for dotted, value in values.items():
        node = config
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path.write_text(yaml.safe_dump(config))


def test_a_sweep_run_twice_counts_each_seed_once(tmp_path):
    _sweep(tmp_path / "a")
    _sweep(tmp_path / "b")
    runs = load_runs([str(tmp_path)])
    pooled = pool(runs, "loss", group_label)
    assert list(pooled.settings) == [""] and len(pooled.runs) == 6
    assert "6 runs with the setting, loss and seed of another counted once" in pooled.left_out[0]
    (focal,) = paired_differences(pooled.runs, "loss", "ce")
    # 3 distinct seeds: 3 pairs, not 6
    assert focal.n == 3 and focal.mean == pytest.approx(
        sum(BEST["focal", s] - BEST["ce", s] for s in range(3)) / 3, abs=1e-12)


def test_runs_of_different_settings_are_compared_apart(tmp_path):
    _sweep(tmp_path / "lt", imbalance_ratio=10)
    write_run(tmp_path / "balanced", "ce", 0, 0.95, imbalance_ratio=1)
    for job in ("0", "3"):  # one ce and one focal run trained for longer
        _set_config(tmp_path / "lt" / job, **{"trainer.epochs": 200})
    runs = load_runs([str(tmp_path)])
    pooled = pool(runs, "loss", group_label)
    sizes = {label: sorted(r.name for r in members) for label, members in pooled.settings.items()}
    assert sizes == {
        "dataset.imbalance_ratio=1, trainer.epochs=None": ["balanced"],
        "dataset.imbalance_ratio=10, trainer.epochs=200": ["lt/0", "lt/3"],
        "dataset.imbalance_ratio=10, trainer.epochs=None": ["lt/1", "lt/2", "lt/4", "lt/5"],
    }


def test_execution_settings_and_the_seed_do_not_split(tmp_path):
    _sweep(tmp_path)
    _set_config(tmp_path / "0", **{"trainer.device": "cuda", "paths.output_dir": "elsewhere", "trainer.progress": False})
    runs = load_runs([str(tmp_path)])
    assert len({setting(run, "loss") for run in runs}) == 1
    # grouped by loss, the loss's own knobs belong to the grouping; grouped by one knob, the others do not
    _set_config(tmp_path / "3", **{"loss.gamma": 2.0})
    runs = load_runs([str(tmp_path)])
    assert len({setting(run, "loss") for run in runs}) == 1
    assert len({setting(run, "loss.name") for run in runs}) == 2


def test_unfinished_runs_are_shown_but_not_pooled_unless_asked(tmp_path):
    _sweep(tmp_path)
    write_run(tmp_path / "6", "focal", 3, 0.99, status="interrupted", epochs=4)
    runs = load_runs([str(tmp_path)])
    pooled = pool(runs, "loss", group_label)
    assert len(pooled.runs) == 6 and "1 unfinished run shown but not pooled (6: interrupted)" in pooled.left_out[0]
    assert len(pool(runs, "loss", group_label, include_unfinished=True).runs) == 7


def test_group_by_must_be_a_key_of_every_run(tmp_path):
    _sweep(tmp_path)
    runs = load_runs([str(tmp_path)])
    with pytest.raises(UserError, match=r"--group-by loss.gama is not a config key of these runs: use a config "
                                        r"group \(dataset, loss\) or a dotted key"):
        check_group_by(runs, "loss.gama")
    for job in ("3", "4", "5"):
        _set_config(tmp_path / job, **{"loss.gamma": 2.0})
    runs = load_runs([str(tmp_path)])
    with pytest.raises(UserError, match=r"--group-by loss.gamma: 3 of 6 runs have no loss.gamma \(0, 1, 2\); "
                                        r"report them apart, or group by loss"):
        check_group_by(runs, "loss.gamma")
    check_group_by(runs, "loss")


@pytest.mark.parametrize("args, message", [
    (["--group-by", "loss.gama"], "--group-by loss.gama is not a config key of these runs"),
    (["--baseline", "cee"], "--baseline cee is not a value of loss in these runs: valid values are ce, focal"),
])
def test_bad_report_options_get_one_line_and_exit_2(tmp_path, capsys, args, message):
    _sweep(tmp_path / "sweep")
    assert main(["report", str(tmp_path / "sweep"), "--out", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "out" / "report.md").exists()


@pytest.mark.slow  # builds a whole report, figures included
def test_the_report_says_what_it_split_and_left_out(tmp_path):
    _sweep(tmp_path / "r10", imbalance_ratio=10)
    _sweep(tmp_path / "r10_again", imbalance_ratio=10)
    _sweep(tmp_path / "r50", imbalance_ratio=50)
    report = build_report([str(tmp_path)], str(tmp_path / "report"))
    assert report.settings == ["dataset.imbalance_ratio=10", "dataset.imbalance_ratio=50"]
    assert [(c.setting, c.group, c.n) for c in report.paired] == [
        ("dataset.imbalance_ratio=10", "focal", 3), ("dataset.imbalance_ratio=50", "focal", 3)]
    assert list(report.groups["setting"]) == ["dataset.imbalance_ratio=10"] * 2 + ["dataset.imbalance_ratio=50"] * 2
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "each setting is compared on its own: dataset.imbalance_ratio=10; dataset.imbalance_ratio=50" in markdown
    assert "counted once" in markdown
    assert report.headline.count("On digits (r=10) with dataset.imbalance_ratio=") == 1
    assert "with dataset.imbalance_ratio=50" in report.headline


def test_mean_curves_say_where_unequal_runs_were_cut(tmp_path):
    from lossbench.report import figures

    _sweep(tmp_path)
    write_run(tmp_path / "6", "focal", 3, 0.99, status="interrupted", epochs=4)
    runs = load_runs([str(tmp_path)])
    pooled = pool(runs, "loss", group_label, include_unfinished=True)
    accuracy = figures.mean_curves_figure(pooled.runs, "loss").axes[0]
    curves = {line.get_label(): line for line in accuracy.lines}
    assert list(curves["loss=focal"].get_xdata()) == [1, 2, 3, 4] and len(curves["loss=ce"].get_xdata()) == 12
    assert "ends at the last epoch all its runs reached (4 to 12)" in accuracy.get_title()
