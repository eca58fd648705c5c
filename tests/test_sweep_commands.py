"""The sweep's launch options and the command that continues a sweep, without training."""

import json
import shlex

import pytest

from lossbench.errors import UserError
from lossbench.training.sweep import SWEEP_RECORD, continue_command, take_rerun


@pytest.mark.parametrize("given, rerun", [("+rerun=true", True), ("rerun=True", True), ("+rerun=false", False)])
def test_rerun_is_taken_out_of_the_command_line(given, rerun):
    assert take_rerun(["-m", "loss=ce,focal", given, "seed=0"]) == (rerun, ["-m", "loss=ce,focal", "seed=0"])
    assert take_rerun(["-m", "loss=ce,focal"]) == (False, ["-m", "loss=ce,focal"])


@pytest.mark.parametrize("args, message", [
    (["-m", "loss=ce,focal", "+rerun=maybe"], "rerun=maybe is invalid: use +rerun=true"),
    (["loss=ce", "+rerun=true"], "+rerun=true applies to a sweep (-m)"),
])
def test_a_bad_rerun_is_refused_in_one_line(args, message):
    with pytest.raises(UserError) as refused:
        take_rerun(args)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_the_continue_command_names_the_sweep_folder(tmp_path):
    sweep = tmp_path / "my sweep"
    sweep.mkdir()
    (sweep / SWEEP_RECORD).write_text(json.dumps({"task": ["loss=ce,focal", "seed=0"],
                                                  "command": ["-m", "loss=ce,focal", "seed=0", "hydra/launcher=joblib"]}))
    command = shlex.split(continue_command(sweep))
    # quoted for Hydra (the space) inside the shell's quoting
    assert command == ["lossbench", "train", "-m", "loss=ce,focal", "seed=0", "hydra/launcher=joblib",
                       f'hydra.sweep.dir="{sweep}"']
    # a sweep recorded only by Hydra's multirun.yaml: its task overrides
    (sweep / SWEEP_RECORD).unlink()
    (sweep / "multirun.yaml").write_text("hydra:\n  overrides:\n    task:\n    - loss=ce,focal\n    - seed=0\n")
    assert shlex.split(continue_command(sweep))[2:-1] == ["-m", "loss=ce,focal", "seed=0"]


def test_the_end_of_a_sweep_lists_its_jobs_with_the_headline_and_the_commands(tmp_path):
    from test_report import BEST, write_run

    from lossbench.training.hydra_app import _headline
    from lossbench.training.sweep_summary import sweep_end

    sweep = tmp_path / "sweep"
    for job, ((loss, seed), best) in enumerate(BEST.items()):
        write_run(sweep / f"{job}_loss={loss},seed={seed}", loss, seed, best)
    write_run(sweep / "6_loss=focal,seed=3", "focal", 3, 0.5)
    (sweep / "6_loss=focal,seed=3" / "summary.json").write_text(json.dumps({"status": "interrupted", "epochs_completed": 4}))
    command = ["-m", "loss=ce,focal", "seed=0,1,2,3"]
    (sweep / SWEEP_RECORD).write_text(json.dumps({"task": command[1:], "command": command}))
    headline = _headline(sweep, command)
    assert headline.startswith("On digits, focal is best by validation-selected balanced accuracy")
    results, problems = sweep_end(sweep, headline)
    finished = [f"{job}_loss={loss},seed={seed}" for job, (loss, seed) in enumerate(BEST)]
    assert results.splitlines() == [f"sweep {sweep}: 6 of 7 job(s) finished: {', '.join(finished)}", headline,
                                    f"report: lossbench report {sweep}"]
    assert problems.splitlines() == [
        f"lossbench train: 1 job(s) of {sweep} did not finish (continuing the sweep runs them, and skips the finished ones):",
        f"  {sweep}/6_loss=focal,seed=3: interrupted: interrupted after epoch 4",
        f"continue the sweep with: lossbench train -m loss=ce,focal seed=0,1,2,3 hydra.sweep.dir={sweep}",
    ]
