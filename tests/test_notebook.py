"""The example notebook runs headless from top to bottom (on planted data) and
each cell shows what the tutorial says it shows."""

import ast
import base64
import json
import re
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "neumf_tutorial.ipynb"


def test_notebook_is_committed_without_outputs():
    # the file's JSON as is (nbformat takes seconds to import: it runs with the notebook)
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    assert all(not cell.get("outputs") for cell in notebook["cells"]
               if cell["cell_type"] == "code")


def _outputs(notebook, source):
    """The outputs of the one code cell whose source contains ``source``."""
    cells = [cell for cell in notebook.cells
             if cell.cell_type == "code" and source in cell.source]
    assert len(cells) == 1, f"{len(cells)} code cells contain {source!r}"
    return cells[0].outputs


def _stdout(outputs):
    return "".join(out.text for out in outputs
                   if out.output_type == "stream" and out.name == "stdout")


def _result(outputs):
    """The cell's value as text (its ``text/plain`` execute result)."""
    results = [out for out in outputs if out.output_type == "execute_result"]
    assert len(results) == 1, outputs
    return results[0].data["text/plain"]


@pytest.mark.slow
@pytest.mark.timeout(300)  # above the kernel's start-up and nbclient's per-cell timeouts
def test_notebook_runs(planted_dir, monkeypatch, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("NEUMF_DATA_DIR", str(planted_dir))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=60, startup_timeout=60,
                                     kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any failing cell

    # data: the planted set's sizes (80 users x 9 distinct items, one test item each)
    assert _stdout(_outputs(notebook, "load_dataset(")) == (
        "80 users, 60 items, 640 training and 80 test interactions\n")

    # model: the block's layers at the tutorial's sizes
    block = _result(_outputs(notebook, "neumf.NeuMF("))
    assert block.startswith("NeuMF(")
    for layer in ("(P): Embedding(80 -> 10", "(Q): Embedding(60 -> 10",
                  "(0): Dense(20 -> 10, Activation(relu))",
                  "(prediction_layer): Dense(20 -> 1, linear)"):
        assert layer in block, block

    # training: the live curves as a PNG, and the tutorial's closing lines
    training = _outputs(notebook, "live_plot=True")
    images = [out.data["image/png"] for out in training if "image/png" in out.get("data", {})]
    assert images and all(base64.b64decode(png).startswith(b"\x89PNG") for png in images)
    lines = _stdout(training).splitlines()
    assert re.fullmatch(r"train loss [\d.]+, test hit rate [\d.]+, test AUC [\d.]+", lines[-2])
    assert re.fullmatch(r"[\d.]+ examples/sec on \[cpu\(0\)\]", lines[-1])

    # evaluation: every metric, each a rate in [0, 1]
    metrics = ast.literal_eval(_result(_outputs(notebook, "result.metrics.items()")))
    assert set(metrics) == {"hr@5", "ndcg@5", "auc", "mrr"}  # 60 items: cut-offs of 5
    assert all(0 <= value <= 1 for value in metrics.values()), metrics

    # recommendations: five items for each of the two users, ranked 1 to 5
    table = _result(_outputs(notebook, 'recommend(result, ["1", "2"], k=5)')).splitlines()
    assert table[0].split() == ["user", "rank", "item", "score"]
    rows = [line.split() for line in table[1:]]
    assert [(row[1], row[2]) for row in rows] == [(user, str(rank)) for user in ("1", "2")
                                                  for rank in range(1, 6)]

    # save and reload: the reloaded model recommends the same items
    assert _result(_outputs(notebook, "load_model(run_dir)")) == "True"
