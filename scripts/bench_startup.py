"""How long a command takes to answer when it trains nothing: a refusal of a
bad value, `lossbench train --help`, `lossbench --version`; against what the
interpreter and Hydra need by themselves (starting Python, importing Hydra,
composing lossbench's config), measured in the same run. Each command runs as
its own process, as a user starts it; the figure is the median wall time of
--repeats runs.

    python scripts/bench_startup.py
    python scripts/bench_startup.py --compare-with /path/to/an/older/checkout   # adds its column
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

# (what it is, the Python code run with -c), the baselines; the table shows the code, or its line in HELP_APP
BASELINES = [
    ("Python starting", "pass"),
    ("importing Hydra and OmegaConf", "import hydra, omegaconf"),
    ("Hydra composing lossbench's config", "from lossbench.training.compose import compose_train; compose_train([])"),
    ("Hydra's own --help of lossbench's config", "import sys, hydra, lossbench.training.compose; "
     "from lossbench.config_dir import config_dir; sys.argv = ['train', '--help']; "
     "hydra.main(config_path=str(config_dir()), config_name='train', version_base='1.3')(lambda cfg: None)()"),
    ("importing torch (for scale)", "import torch"),
]
# (what it is, lossbench's arguments, the exit code it must end with)
COMMANDS = [
    ("lossbench --version", ["--version"], 0),
    ("lossbench train --help", ["train", "--help"], 0),
    ("an unknown loss", ["train", "loss=focl"], 2),
    ("an unknown key", ["train", "trainer.epoch=3"], 2),
    ("a value out of range", ["train", "trainer.epochs=-1"], 2),
    ("a bad loss knob", ["train", "loss=focal", "loss.gamma=-1"], 2),
    ("a bad value in one job of a sweep", ["train", "-m", "seed=0,1", "optim.lr=0.1,-1"], 2),
]


def timed_run(argv: list[str], source: Path, cwd: Path, expected: int | None) -> float:
    """Seconds ``argv`` takes with lossbench imported from ``source``; ``expected``: the exit code it must
    end with (None: any, for another version, which may answer otherwise)."""
    env = {**os.environ, "PYTHONPATH": str(source)}
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if expected is not None and done.returncode != expected:
        raise SystemExit(f"{' '.join(argv[2:])} ended with {done.returncode}, not {expected}: {done.stderr.strip()[-500:]}")
    return elapsed


def median_of(argv: list[str], source: Path, cwd: Path, expected: int | None, repeats: int) -> float:
    timed_run(argv, source, cwd, expected)  # the first run warms the file cache
    return statistics.median(timed_run(argv, source, cwd, expected) for _ in range(repeats))


def bench(sources: list[Path], repeats: int) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as cwd:
        for name, code in BASELINES:
            shown = "a bare hydra.main app on configs/train.yaml, --help" if "--help" in code else f"python -c '{code}'"
            rows.append({"what": name, "command": shown, "kind": "baseline",
                         "seconds": [median_of([sys.executable, "-c", code], sources[0], Path(cwd), 0, repeats)]})
        for name, args, expected in COMMANDS:
            argv = [sys.executable, "-m", "lossbench.cli", *args]
            rows.append({"what": name, "command": " ".join(["lossbench", *args]), "kind": "command",
                         "seconds": [median_of(argv, source, Path(cwd), expected if i == 0 else None, repeats)
                                     for i, source in enumerate(sources)]})
    composing = next(r for r in rows if r["what"] == "Hydra composing lossbench's config")["seconds"][0]
    for row in rows:
        row["vs_composing"] = [s / composing for s in row["seconds"]]
    return {"date": date.today().isoformat(), "python": sys.version.split()[0], "repeats": repeats,
            "sources": [str(s) for s in sources], "rows": rows}


def format_table(results: dict) -> str:
    sources = results["sources"]
    names = ["this checkout"] + [f"{Path(s).name}" for s in sources[1:]]
    header = "| what | command | " + " | ".join(f"{n} (s)" for n in names) + " | vs composing |"
    lines = [f"Python {results['python']}, {results['date']}; median of {results['repeats']} runs, each its own process",
             "", header, "|---|---|" + "---|" * len(names) + "---|"]
    for r in results["rows"]:
        # a baseline is measured once: it does not depend on lossbench's version
        shown = [f"{s:.2f}" for s in r["seconds"]] + [""] * (len(names) - len(r["seconds"]))
        lines.append(f"| {r['what']} | `{r['command']}` | " + " | ".join(shown) + f" | {r['vs_composing'][0]:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="runs per command after a first, uncounted one")
    parser.add_argument("--compare-with", type=Path, metavar="DIR",
                        help="another checkout of lossbench (its folder holding lossbench/): its commands are timed too")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats} is invalid: give at least 1")
    this = Path(__file__).resolve().parent.parent
    sources = [this]
    if args.compare_with is not None:
        if not (args.compare_with / "lossbench" / "cli.py").is_file():
            parser.error(f"--compare-with {args.compare_with} holds no lossbench/cli.py: give a checkout's root folder")
        sources.append(args.compare_with.resolve())
    print(format_table(bench(sources, args.repeats)))


if __name__ == "__main__":
    main()
