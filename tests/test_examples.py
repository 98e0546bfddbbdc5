"""Each example runs as a newcomer would, on a small synthetic data set."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
pytestmark = pytest.mark.slow  # each starts a Python process


def _run(script, *args):
    # below pytest-timeout's 120 s per test, so a hung example fails with its output
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                          text=True, timeout=100, check=False)


def test_reproduce_tutorial_runs(planted_dir):
    done = _run("reproduce_tutorial.py", "--data-dir", str(planted_dir), "--epochs", "2",
                "--seed", "1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("epoch 1:") and lines[1].startswith("epoch 2:")
    assert any(line.startswith("train loss ") and ", test hit rate " in line and
               ", test AUC " in line for line in lines)
    assert any(line.endswith("examples/sec on [cpu(0)]") for line in lines)


def test_tutorial_by_imports_runs(planted_dir):
    done = _run("tutorial_by_imports.py", "--data-dir", str(planted_dir), "--epochs", "2")
    assert done.returncode == 0, done.stderr
    assert "test hit rate" in done.stdout


def test_paper_protocol_runs_on_files_written_from_ml100k(planted_dir):
    done = _run("paper_protocol.py", "--data-dir", str(planted_dir), "--from-ml100k",
                "--num-epochs", "2", "--only", "popularity", "gmf", "neumf-pretrained")
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| popularity", "| gmf",
                                                         "| neumf-pretrained"]
    assert '"towers": {"mf"' in done.stdout  # the pretrained row reports its towers


def test_sweep_runs_one_row(planted_dir):
    done = _run("sweep_ml100k.py", "--data-dir", str(planted_dir), "--rows", "9",
                "--seeds", "0", "1")
    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if line.startswith("| loss=")]
    assert len(table) == 1 and "->" in table[0]
