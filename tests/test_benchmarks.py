"""The benchmark scripts, run as a user runs them (small sizes, CPU)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.threads import TEST_THREADS
from lossbench.data.placement import loader_workers

pytestmark = pytest.mark.slow  # processes or training: left out by pytest -m "not slow"

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": TEST_THREADS}
    result = subprocess.run([sys.executable, str(SCRIPTS / f"{name}.py"), *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def fastnet_training_flops() -> int:
    """Forward and backward FLOPs of one 32x32 image through fastnet, counted by hand:
    a 3x3 convolution is 2 * 9 * C_in * C_out FLOPs per output pixel; backward costs
    twice the forward (input and weight gradients), except that the first convolution
    needs no input gradient."""
    convs = [(3, 32, 32), (32, 64, 32), (64, 64, 16), (64, 256, 16), (256, 256, 8), (256, 256, 8), (256, 256, 4)]
    forward = [2 * 9 * c_in * c_out * size * size for c_in, c_out, size in convs]
    head = 2 * 256 * 10
    return sum(forward) * 3 - forward[0] + head * 3


def test_flop_count_matches_a_hand_count():
    bench = load_script("bench_throughput")
    assert bench.training_flops_per_image("fastnet") == pytest.approx(fastnet_training_flops(), rel=1e-9)


def test_the_floor_is_measured_on_the_models_own_convolutions():
    bench = load_script("bench_throughput")
    # fastnet's seven 3x3 convolutions (stride 1, padding 1, no bias) at their input sizes
    convs = [(3, 32, 32), (32, 64, 32), (64, 64, 16), (64, 256, 16), (256, 256, 8), (256, 256, 8), (256, 256, 4)]
    expected = {}
    for c_in, c_out, size in convs:
        key = (c_in, c_out, (3, 3), (1, 1), (1, 1), 1, False, size)
        expected[key] = expected.get(key, 0) + 1
    assert bench.convolution_shapes("fastnet") == expected


def test_throughput_table_on_cpu(tmp_path):
    out = tmp_path / "results.json"
    result = run_script("bench_throughput", "--device", "cpu", "--models", "fastnet", "--batch", "32", "--train-images", "70",
                        "--epochs", "2", "--json", str(out), cwd=tmp_path)
    results = json.loads(out.read_text())
    assert results["train_images"] == 70 and results["test_images"] == 100 and results["precision"] == "fp32"
    conventional, lossbench = results["rows"]
    assert (conventional["loop"], lossbench["loop"]) == ("conventional", "lossbench")
    matmul_floor = results["matmul_tflops"] * 1e12 / fastnet_training_flops()
    for row in results["rows"]:
        assert row["model"] == "fastnet" and row["batch"] == 32
        assert row["images_per_s"] == pytest.approx(70 / row["train_s"])
        # one epoch here: its training and its evaluation
        assert row["epoch_s"] == pytest.approx(row["train_s"] + row["eval_s"]) and row["eval_s"] > 0
        assert row["startup_s"] > 0
        # the floor is the matmul's, or higher where a convolution of the model runs faster
        assert row["floor_images_per_s"] >= matmul_floor * (1 - 1e-6)
        assert row["floor_by"] == "matmul" or row["floor_by"].startswith("convolution ")
        assert row["of_floor"] == pytest.approx(row["images_per_s"] / row["floor_images_per_s"])
        assert row["of_floor"] <= 1.0
    assert conventional["vs_conventional"] == 1.0
    assert lossbench["vs_conventional"] == pytest.approx(conventional["epoch_s"] / lossbench["epoch_s"])
    table = result.stdout
    assert "| fastnet | 32 | lossbench |" in table and "| fastnet | 32 | conventional |" in table
    assert f"{lossbench['vs_conventional']:.2f}x" in table and f"| {lossbench['of_floor']:.1%} |" in table


def test_recipe_table_on_cpu(tmp_path):
    """The reference recipe end to end, each configuration its own process, against the former CPU defaults."""
    from lossbench.data.long_tail import long_tail_counts

    out = tmp_path / "results.json"
    result = run_script("bench_throughput", "--device", "cpu", "--models", "--recipe-epochs", "1",
                        "--recipe-per-class", "100", "--json", str(out), cwd=tmp_path)
    recipe = json.loads(out.read_text())["recipe"]
    rows = {r["configuration"]: r for r in recipe["rows"]}
    workers = min(4, len(os.sched_getaffinity(0)))
    conventional = f"conventional loop ({workers} workers, evaluation batch 100)"
    assert list(rows) == ["lossbench defaults", "lossbench, former CPU defaults", conventional]
    assert recipe["baseline"] == "lossbench, former CPU defaults"
    for row in rows.values():
        # the same long tail (imbalance 100 from 100 images per class) and the whole test set in each
        assert row["train_images"] == sum(long_tail_counts(100, 10, 100)) and row["test_images"] == 200
        assert len(row["train_s"]) == len(row["eval_s"]) == 1
        assert row["startup_s"] == pytest.approx(row["wall_s"] - row["train_s"][0] - row["eval_s"][0])
        assert row["vs_baseline"] == pytest.approx(rows["lossbench, former CPU defaults"]["wall_s"] / row["wall_s"])
    assert "| lossbench, former CPU defaults |" in result.stdout and "| 1.00x |" in result.stdout


def assert_ratio_of_rounded(shown: float, numerator: float, denominator: float, figures_to: float, ratio_to: float):
    """A ratio a table printed (rounded to ``ratio_to``) of two figures it printed
    (each rounded to ``figures_to``): within what those roundings allow, and no more."""
    half = figures_to / 2
    low = max(numerator - half, 0.0) / (denominator + half)
    high = (numerator + half) / max(denominator - half, 1e-12)
    assert low - ratio_to / 2 - 1e-9 <= shown <= high + ratio_to / 2 + 1e-9, (shown, numerator, denominator)


def test_startup_table(tmp_path):
    """Every command answers with the exit code it must (the script checks it), timed against the baselines."""
    result = run_script("bench_startup", "--repeats", "1", cwd=tmp_path)
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ") and not line.startswith("| what")]
    rows = {cells[0]: cells for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}
    assert list(rows) == ["Python starting", "importing Hydra and OmegaConf", "Hydra composing lossbench's config",
                          "Hydra's own --help of lossbench's config", "importing torch (for scale)", "lossbench --version", "lossbench train --help",
                          "an unknown loss", "an unknown key", "a value out of range", "a bad loss knob",
                          "a bad value in one job of a sweep"]
    composing = float(rows["Hydra composing lossbench's config"][2])
    assert rows["Hydra composing lossbench's config"][3] == "1.00x"
    for what, command, seconds, ratio in rows.values():
        assert_ratio_of_rounded(float(ratio.rstrip("x")), float(seconds), composing, figures_to=0.01, ratio_to=0.01)
    assert rows["an unknown loss"][1] == "`lossbench train loss=focl`"


def table_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| concurrent") and not line.startswith("| loss")]


def test_concurrent_runs_table_on_cpu(tmp_path):
    result = run_script("bench_concurrent", "--device", "cpu", "--runs", "1", "2", "--batch", "32", "--train-images", "70",
                        "--epochs", "2", cwd=tmp_path)
    rows = table_rows(result.stdout)
    assert [r[0] for r in rows] == ["1", "2"]
    cores = len(os.sched_getaffinity(0))
    assert [int(r[1]) for r in rows] == [cores, max(1, cores // 2)]
    single = float(rows[0][2])
    for runs, threads, aggregate, mean, speedup, wall in rows:
        assert float(mean) == pytest.approx(float(aggregate) / int(runs), abs=1)
        assert_ratio_of_rounded(float(speedup.rstrip("x")), float(aggregate), single, figures_to=1, ratio_to=0.01)
        assert float(wall) > 0


def test_loss_step_table_on_cpu(tmp_path):
    result = run_script("bench_losses", "--model", "resnet32", "--device", "cpu", "--batch", "32", "--train-images", "70",
                        "--epochs", "2", "--rounds", "1", "--losses", "focal", "supcon", cwd=tmp_path)
    rows = {r[0]: r for r in table_rows(result.stdout)}
    assert list(rows) == ["ce", "focal", "supcon"]
    assert rows["ce"][1:] == [rows["ce"][1], "1.000x", "1", "1.000x"]
    ce_ms = float(rows["ce"][1])
    for name, views in (("focal", 1), ("supcon", 2)):
        ms, ratio, shown_views, per_image = rows[name][1:]
        assert float(ratio.rstrip("x")) == pytest.approx(float(ms) / ce_ms, abs=2e-3)
        assert int(shown_views) == views
        assert float(per_image.rstrip("x")) == pytest.approx(float(ms) / views / ce_ms, abs=2e-3)


@pytest.mark.parametrize("script, args, message", [
    ("bench_throughput", ["--epochs", "1"], "--epochs 1 is too few"),
    ("bench_throughput", ["--recipe-epochs", "-1"], "--recipe-epochs -1 is invalid"),
    ("bench_throughput", ["--models", "--recipe-epochs", "0"], "--models is empty and --recipe-epochs 0"),
    ("bench_throughput", ["--device", "cpu", "--train-images", "5"], "--train-images 5 is fewer than the batch (512)"),
    ("bench_throughput", ["--device", "bogus"], "--device 'bogus' is invalid: use auto, cpu, cuda or cuda:N"),
    ("bench_throughput", ["--device", "cpu", "--compile", "fast"], "--compile 'fast' is invalid: valid values are"),
    ("bench_startup", ["--repeats", "0"], "--repeats 0 is invalid: give at least 1"),
    ("bench_startup", ["--compare-with", "/nonexistent"], "--compare-with /nonexistent holds no lossbench/cli.py"),
    ("bench_concurrent", ["--runs", "0", "2"], "--runs 0 2 is invalid: every count must be at least 1"),
    ("bench_concurrent", ["--batch", "0"], "--batch 0 is invalid: give at least 1"),
    ("bench_losses", ["--model", "resnet32", "--rounds", "0"], "--rounds 0 is invalid"),
    ("bench_losses", ["--model", "nope"], "invalid choice: 'nope'"),
])
def test_bad_arguments_fail_in_one_line(monkeypatch, capsys, script, args, message):
    # in this process (the checks are argparse's and the scripts' own, before any work): an
    # exception other than argparse's exit would fail the test as a traceback would
    monkeypatch.setattr(sys, "argv", [f"{script}.py", *args])
    with pytest.raises(SystemExit) as exit_:
        load_script(script).main()
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "Traceback" not in stderr
    assert message in stderr.splitlines()[-1]


def test_own_data_tables_on_cpu(tmp_path):
    result = run_script("bench_own_data", "--images", "60", "--size", "8", "--train-size", "8", "--epochs", "2", "--batch", "16", "--keep",
                        str(tmp_path / "images"), cwd=tmp_path)
    assert len(list((tmp_path / "images").rglob("*.jpg"))) == 60
    out = result.stdout
    decode = [r for r in table_rows(out) if r[0].isdigit()]
    assert [r[0] for r in decode][0] == "1" and decode[0][2] == "1.00 (baseline)"
    one, many = (float(r[1].replace(",", "")) for r in decode)
    assert_ratio_of_rounded(float(decode[1][2]), many, one, figures_to=1, ratio_to=0.01)
    starts = {r[0]: r for r in table_rows(out) if r[0].startswith(("empty", "written"))}
    assert starts["empty (decodes)"][2] == "1.00 (baseline)"
    cached, empty = float(starts["written by the first run"][1]), float(starts["empty (decodes)"][1])
    assert_ratio_of_rounded(float(starts["written by the first run"][2]), cached, empty, figures_to=0.1, ratio_to=0.01)
    epochs = [r for r in table_rows(out) if r[0] in ("on the device", "streamed")]
    workers = str(loader_workers("auto"))
    assert [r[:2] for r in epochs] == [["on the device", "-"], ["streamed", "0"], ["streamed", workers]]
    # each run took the path its row names
    assert "held on cpu" in out and "as dataset.on_device=false asks" in out
