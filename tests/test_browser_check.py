"""The pure parts of scripts/browser_check.py (`make browser-check` drives a real browser; this
needs none): what counts as a bad output, the figure count, the process tree, and the one kernel."""
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from vit_tutorial import display

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("browser_check", ROOT / "scripts" / "browser_check.py")
bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bc)

STDOUT, STDERR = "application/vnd.jupyter.stdout", "application/vnd.jupyter.stderr"


def out(text="", mime=STDOUT, cell=3, widget=False, images=(), markdown=False):
    return dict(cell=cell, mime=mime, text=text, widget=widget, images=list(images), markdown=markdown)


def test_good_outputs_pass():
    outputs = [out("profile: smoke, device: cpu"), out(mime="image/png", images=[True, True]),
               out("UserWarning: something harmless\n  warnings.warn(", mime=STDERR),
               out("epoch 1/1: 100%|██████████| 8/8 [00:08<00:00,  1.00s/batch, acc=0.117]", mime=STDERR),
               out(mime="text/markdown", images=[True], markdown=True)]
    assert bc.output_problems(outputs) == []


def test_headless_progress_lines_pass():
    # what `make notebooks` commits for a training run (VIT_TUTORIAL_HEADLESS=1) must not read as a frozen bar
    buffer = io.StringIO()
    bar = display.TextProgress(total=1600, desc="epoch 1/50", file=buffer)
    for _ in range(1600):
        bar.update()
    bar.close()
    assert "  0%" not in buffer.getvalue() and buffer.getvalue().count("\n") == 10
    assert bc.output_problems([out(buffer.getvalue())]) == []


def test_frozen_bar_fails():
    problems = bc.output_problems([out("  0%|          | 0/1600 [00:00<?, ?batch/s]", mime="text/plain", cell=9)])
    assert problems == ["cell 9: a progress bar frozen at 0% ('0%| | 0/1600 [00:00<?, ?batch/s]')"]


def test_widget_as_text_fails():
    text = "interactive(children=(FloatSlider(value=1.0, description='α', max=5.0), Output()), _dom_classes=('widget-inter…"
    assert bc.output_problems([out(text, mime="text/plain", cell=13)])[0].startswith("cell 13: a widget shown as text")
    for text in ("HBox(children=(HTML(value=''), FloatProgress(value=0.0, max=8.0)))", "IntSlider(value=3)",
                 "Loading widget...", "Error displaying widget: model not found"):
        assert "a widget shown as text" in bc.output_problems([out(text, mime="text/plain")])[0], text


def test_error_output_fails_with_its_last_line():
    traceback = ("---------------------------------------------------------------------------\n"
                 "ValueError                                Traceback (most recent call last)\n"
                 "Cell In[3], line 1\n----> 1 raise ValueError('patch_size must divide 28')\n\n"
                 "ValueError: patch_size must divide 28\n")
    assert bc.output_problems([out(traceback, mime=STDERR, cell=5)]) == [
        "cell 5: an error output: ValueError: patch_size must divide 28"]


def test_error_output_without_traceback_header_fails():
    # an error output saved by a tool other than IPython: just the exception's line
    assert bc.output_problems([out("ZeroDivisionError: division by zero\n", mime=STDERR, cell=3)]) == [
        "cell 3: an error output: ZeroDivisionError: division by zero"]
    assert bc.output_problems([out("UserWarning: an Error is mentioned\n  warnings.warn(", mime=STDERR)]) == []


def test_saved_widget_fails_but_a_live_one_passes():
    live = [out("α 1.00", mime="", widget=True, images=[True])]
    assert bc.output_problems(live, saved=False) == []
    assert bc.output_problems(live) == ["cell 3: a saved widget, frozen until the cell is run again"]


def test_figures_that_do_not_load_fail():
    assert bc.output_problems([out(mime="image/png", images=[True, False])]) == ["cell 3: 1 figure(s) that do not load"]
    assert bc.output_problems([out(mime="text/markdown", images=[False], markdown=True)]) == [
        "cell 3: 1 picture(s) in the text that do not load"]


def test_render_counts_cells_and_figures():
    png = {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}
    nb = {"cells": [{"cell_type": "markdown", "source": "# x"},
                    {"cell_type": "code", "outputs": [png, {"output_type": "stream", "text": "hi"}]},
                    {"cell_type": "code", "outputs": [png]}]}
    assert bc.figure_count(nb) == 2
    shown = [out(mime="image/png", images=[True], cell=1), out(mime="image/png", images=[True], cell=2),
             out(mime="text/markdown", images=[True], markdown=True, cell=0)]
    assert bc.render_problems(nb, 3, shown) == []
    assert bc.render_problems(nb, 2, shown[:1]) == ["2 cells in the page, 3 in the file", "2 figures in the file, 1 shown"]


def test_descendants_finds_a_grandchild():
    code = "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); print(p.pid, flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        grandchild = int(child.stdout.readline())
        assert {child.pid, grandchild} <= set(bc.descendants(os.getpid()))
        assert bc.descendants(grandchild) == []
    finally:
        os.kill(grandchild, 9)
        child.kill()
        child.wait()


def test_one_kernel_everywhere():
    # make lab registers no kernel of its own; the notebooks, make notebooks and the check all say python3
    makefile = (ROOT / "Makefile").read_text()
    assert "ipykernel install" not in makefile
    assert "--ExecutePreprocessor.kernel_name=python3" in makefile
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert json.loads(path.read_text())["metadata"]["kernelspec"]["name"] == "python3", path.name


def test_ci_runs_the_browser_check_after_the_tests():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make browser-check" in ci and ci.index("make test") < ci.index("make browser-check")
    assert "playwright install" not in ci + (ROOT / "Makefile").read_text()


def test_restore_puts_notebooks_back(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "01.ipynb").write_text("committed")
    monkeypatch.setattr(bc, "ROOT", tmp_path)
    monkeypatch.setattr(bc, "NOTEBOOKS", folder)
    before = bc.snapshot()
    assert bc.restore(before) == []
    (folder / "01.ipynb").write_text("saved by JupyterLab")
    (folder / ".ipynb_checkpoints").mkdir()
    (folder / ".ipynb_checkpoints" / "01-checkpoint.ipynb").write_text("x")
    (folder / "Untitled.ipynb").write_text("{}")
    assert bc.restore(before) == ["notebooks/Untitled.ipynb was made during the check (removed)",
                                  "notebooks/01.ipynb was written during the check (restored)"]
    assert bc.snapshot() == before
