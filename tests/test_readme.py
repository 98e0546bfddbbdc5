"""Every snippet of README.md runs as written, on a machine with the data where
the README says it goes ($NEUMF_DATA_DIR; here a small planted data set)."""

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
pytestmark = pytest.mark.slow


def _blocks(language: str):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


@pytest.fixture
def workdir(planted_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("NEUMF_DATA_DIR", str(planted_dir))
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.mark.timeout(900)
def test_every_snippet_runs_in_order(workdir):
    """The shell snippets, then the Python ones, in one folder (the Python
    serving snippet loads the export the shell made)."""
    commands = [line[2:] for block in _blocks("console") for line in block.splitlines()
                if line.startswith("$ ")]
    assert any(command.startswith("neumf serve") for command in commands)
    for command in commands:
        if command.startswith("neumf serve"):  # runs until Ctrl-C: start, answer, stop
            process = subprocess.Popen("exec " + command.replace("8080", "0"), shell=True,
                                       cwd=workdir, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            assert "serving" in process.stdout.readline()
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=60)
            assert process.returncode == 0
            continue
        done = subprocess.run(command, shell=True, cwd=workdir, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    script = "\n\n".join(_blocks("python"))
    done = subprocess.run([sys.executable, "-c", script], cwd=workdir, capture_output=True,
                          text=True, timeout=500)
    assert done.returncode == 0, done.stderr[done.stderr.rfind("Traceback"):][-3000:]


def test_every_snippet_is_tested():
    languages = set(re.findall(r"```(\w*)\n.*?```", README.read_text(), flags=re.S))
    # bash: the install and test commands CI runs; text: printed output
    assert languages <= {"python", "console", "bash", "text"}
