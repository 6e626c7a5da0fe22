"""make browser-check: the notebooks as a learner sees them after `make lab`, in a real browser.

nbval proves that the notebooks' code runs; this proves that they work in JupyterLab. It starts
JupyterLab with `make lab` itself (profile `smoke`, 127.0.0.1, a free port, a random token), drives
it with a headless Chromium (Debian's `chromium` package, never a downloaded build) through
playwright, and stops everything it started. Each check is an assertion with a screenshot in
browser-check/ (git-ignored):

- kernels: JupyterLab offers one Python kernel, `python3`;
- render: every committed notebook, opened untrusted as after a clone, opens on `python3` without a
  dialog and shows all its figures, no error output, no progress bar frozen at 0 %, no widget shown
  as text or frozen;
- run-all: notebook 01 runs top to bottom with Run All: every cell numbered in order, no error
  output, the kernel idle;
- kernel python: the notebooks' kernel runs the project's .venv/bin/python;
- progress: a training cell (added to 01 in the page, never saved) shows a live progress bar while
  it runs, which ends at 100 %;
- slider: after Run All, notebook 06's slider is a widget, and dragging it redraws its figure.

The check never writes a notebook: autosave is off in a private settings folder, and notebooks/
is compared before and after: a file written is restored and a file made is removed, both
reported (but for the .ipynb_checkpoints/ JupyterLab makes on opening, which is just removed).
Settings: CHROMIUM (default /usr/bin/chromium), BROWSER_CHECK_TIMEOUT (seconds a step may wait, 120).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "browser-check"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TIMEOUT = float(os.environ.get("BROWSER_CHECK_TIMEOUT", "120"))
# Without the background-networking flags Chromium keeps calling Google's services: on a closed
# network (CI) a flood of refused connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
RUN_ALL_NOTEBOOK, SLIDER_NOTEBOOK = "01_tokens", "06_convit"
# The cells the check adds to notebook 01 after Run All (in the page only: never saved).
EXECUTABLE_CELL = "import sys\nprint(sys.executable)"
TRAINING_CELL = 'from vit_tutorial import experiments\nmodel, history = experiments.fit_profile("vit")  # the smoke profile'

# A saved widget that cannot be shown: tqdm's bar as its text (always the 0 % it was created
# with), an ipywidgets repr, or JupyterLab's placeholders; and a Python traceback.
FROZEN_BAR = re.compile(r"(?<![\d.])0%\|")
WIDGET_TEXT = re.compile(r"\b\w+\(children=\(|\b(?:Float|Int)(?:Slider|Progress|RangeSlider|LogSlider|Text)\(value="
                         r"|Loading widget\.\.\.|Error displaying widget")
# an error output: IPython's traceback header, or (an error saved by another tool) a last line "SomeError: ..."
TRACEBACK = re.compile(r"Traceback \(most recent call last\)|^\w*(?:Error|Exception|Interrupt)\b[^\n]*\s*\Z", re.M)
STDERR = "application/vnd.jupyter.stderr"  # JupyterLab shows error outputs (tracebacks) with this type too


# ---- pure parts (tests/test_browser_check.py) ------------------------------------------------------

def output_problems(outputs: list[dict], saved: bool = True) -> list[str]:
    """What is wrong in a page's rendered outputs, one line each (an empty list: nothing).

    `outputs`: one dict per output as the page shows it: `cell` (its number, from 1), `mime`
    (JupyterLab's data-mime-type, '' for a widget), `text`, `widget` (a widget element in it) and
    `images` (for each <img>, whether it decoded to a picture); a rendered markdown cell with
    pictures is one more, with `markdown` true. `saved`: the outputs are the committed ones, where
    a widget is frozen (it works only once its cell runs again); after a run widgets are wanted.
    """
    problems = []
    for out in outputs:
        where, text = f"cell {out['cell']}", out.get("text", "")
        first = " ".join(text.split())[:70]
        if out.get("mime") == STDERR and TRACEBACK.search(text):
            last = [line for line in text.strip().splitlines() if line.strip()][-1][:100]
            problems.append(f"{where}: an error output: {last}")
        elif FROZEN_BAR.search(text):
            problems.append(f"{where}: a progress bar frozen at 0% ({first!r})")
        elif WIDGET_TEXT.search(text):
            problems.append(f"{where}: a widget shown as text ({first!r})")
        elif out.get("widget") and saved:
            problems.append(f"{where}: a saved widget, frozen until the cell is run again")
        broken = out.get("images", []).count(False)
        if broken:
            what = "picture(s) in the text" if out.get("markdown") else "figure(s)"
            problems.append(f"{where}: {broken} {what} that do not load")
    return problems


def figure_count(notebook: dict) -> int:
    """How many figures a notebook's committed outputs hold (each should appear as an <img>)."""
    return sum(any(mime.startswith("image/") for mime in out.get("data", {}))
               for cell in notebook["cells"] for out in cell.get("outputs", []))


def render_problems(notebook: dict, cells_shown: int, outputs: list[dict]) -> list[str]:
    """The render check of one opened notebook: all its cells in the page, every figure shown, no bad output."""
    problems = output_problems(outputs)
    if cells_shown != len(notebook["cells"]):
        problems.append(f"{cells_shown} cells in the page, {len(notebook['cells'])} in the file")
    want, shown = figure_count(notebook), sum(len(o.get("images", [])) for o in outputs if not o.get("markdown"))
    if shown != want:
        problems.append(f"{want} figures in the file, {shown} shown")
    return problems


def descendants(pid: int) -> list[int]:
    """The ids of all processes below `pid` (JupyterLab's kernels run in sessions of their own)."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _parents():
    """(pid, parent pid) of every process: from /proc on Linux, else from `ps`."""
    if not Path("/proc/self/stat").exists():
        table = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout.split()
        yield from zip(map(int, table[::2]), map(int, table[1::2]))
        return
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (name) state ppid ...": the name may hold spaces and parentheses
            yield int(stat.parent.name), int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # a process that ended meanwhile
            continue


# ---- JupyterLab ------------------------------------------------------------------------------------

class Lab:
    """JupyterLab started by `make lab` on a free port with a random token; `stop()` ends it all.

    Its environment differs from a learner's in three things only: the profile is `smoke`, and the
    JupyterLab settings and workspaces are fresh private folders, with autosave off.
    """

    def __init__(self, workdir: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        settings = workdir / "settings" / "@jupyterlab"
        for plugin, value in [("docmanager-extension/plugin", '{"autosave": false}'),
                              ("apputils-extension/notification", '{"fetchNews": "false"}')]:  # no news pop-up
            (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
            (settings / f"{plugin}.jupyterlab-settings").write_text(value)
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "VIT_TUTORIAL_HEADLESS", "MAKEFLAGS", "MAKELEVEL")}
        env.update(VIT_TUTORIAL_PROFILE="smoke", JUPYTERLAB_SETTINGS_DIR=str(workdir / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(workdir / "workspaces"))
        args = (f"--ServerApp.ip=127.0.0.1 --ServerApp.port={self.port} --ServerApp.port_retries=0 "
                f"--IdentityProvider.token={self.token}")
        self.log = (OUT / "jupyterlab.log").open("w")
        self.proc = subprocess.Popen(["make", "--no-print-directory", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def api(self, path: str, method: str = "GET"):
        """JupyterLab's REST API, answered as JSON (None for an empty answer)."""
        request = urllib.request.Request(f"{self.base}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def wait_ready(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"browser-check: make lab exited with {self.proc.returncode}; see {OUT / 'jupyterlab.log'}")
            try:
                self.api("status")
                return
            except OSError:
                time.sleep(0.3)
        raise SystemExit(f"browser-check: JupyterLab did not answer in {TIMEOUT:.0f} s; see {OUT / 'jupyterlab.log'}")

    def url(self, notebook: str) -> str:
        """A notebook's page in a workspace of its own (a fresh layout: nothing else open)."""
        return f"{self.base}/lab/workspaces/check-{notebook.replace('_', '-')}/tree/{notebook}.ipynb?token={self.token}"

    def kernel(self, notebook: str) -> dict | None:
        """The kernel of the notebook's session: name, execution_state, ..."""
        session = next((s for s in self.api("sessions") if s["path"] == f"{notebook}.ipynb"), None)
        return session["kernel"] if session else None

    def stop(self) -> None:
        """Shut JupyterLab and its kernels down, politely, then for sure."""
        started = descendants(self.proc.pid)
        try:
            self.api("shutdown", "POST")
        except OSError:
            pass
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        time.sleep(0.5)
        for pid in started:  # a kernel that outlived its server
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


# ---- the page --------------------------------------------------------------------------------------

# The outputs of every cell, as data for output_problems; each output element is tagged
# data-check="N" so that a problem can be scrolled to for its screenshot.
READ_OUTPUTS = """async () => {
  const decoded = imgs => Promise.all(Array.from(imgs).map(img => img.decode().then(() => img.naturalWidth > 0, () => false)));
  const cells = Array.from(document.querySelectorAll('.jp-Notebook .jp-Cell'));
  const outputs = [];
  for (const [k, cell] of cells.entries()) {
    const i = k + 1;  // cells counted from 1, as in JupyterLab's status bar
    for (const el of cell.querySelectorAll('.jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output')) {
      el.dataset.check = outputs.length;
      outputs.push({cell: i, mime: el.dataset.mimeType || '', text: el.textContent,
                    widget: el.querySelector('.jupyter-widgets') !== null, images: await decoded(el.querySelectorAll('img'))});
    }
    const pictures = cell.querySelectorAll('.jp-MarkdownOutput img');
    if (pictures.length) outputs.push({cell: i, mime: 'text/markdown', text: '', widget: false, images: await decoded(pictures), markdown: true});
  }
  return {cells: cells.length, outputs};
}"""
WATCH_BAR = """cell => {
  const seen = () => cell.querySelector('.widget-hprogress') && (window.barPrompt = cell.querySelector('.jp-InputPrompt').textContent.trim());
  const watch = new MutationObserver(() => seen() && watch.disconnect());
  watch.observe(cell, {childList: true, subtree: true});
}"""
PROMPTS = "() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')).map(e => e.textContent.trim())"


def into_view(page, locator) -> None:
    """Scroll `locator` to the middle of the window; cells above it may change height as they come
    into view (JupyterLab lays out off-screen cells lazily), so scroll until it stays there."""
    for _ in range(10):
        locator.evaluate("el => el.scrollIntoView({block: 'center'})")
        page.wait_for_timeout(300)
        box, height = locator.bounding_box(), page.viewport_size["height"]
        if box and 0 <= box["y"] and box["y"] + min(box["height"], height) <= height:
            return


def show_first(page, problems: list[str], shown: dict) -> None:
    """Scroll the output of the first problem that names a cell into view, for the screenshot."""
    for p in problems:
        m = re.search(r"cell (\d+):", p)
        if m:
            index = next(k for k, o in enumerate(shown["outputs"]) if o["cell"] == int(m.group(1)))
            return into_view(page, page.locator(f'[data-check="{index}"]'))


class Check:
    """The checks, one by one: each verdict is printed and kept, and a failure does not stop the rest."""

    def __init__(self, lab: Lab, browser):
        self.lab, self.browser, self.failures, self.passed = lab, browser, [], []

    def verdict(self, name: str, problems: list[str], page=None, detail: str = "") -> None:
        """Print `ok name: detail`, or one `FAIL name: problem` line per problem; a screenshot of `page`."""
        note = ""
        if page is not None:
            path = OUT / f"{re.sub(r'[^A-Za-z0-9_]+', '-', name)}.png"
            page.screenshot(path=path)
            note = f" [{path.relative_to(ROOT)}]"
        for p in problems:
            print(f"FAIL {name}: {p}{note}", flush=True)
        if not problems:
            print(f"ok   {name}{': ' + detail if detail else ''}{note}", flush=True)
        self.failures += [f"{name}: {p}" for p in problems]
        self.passed += [] if problems else [name]

    def guarded(self, name: str, step, *args):
        """Run one step; an exception in it (a timeout, a missing element) is its failure, in one line."""
        try:
            return step(*args)
        except Exception as error:  # noqa: BLE001 - any error is this check's failure; the others still run
            lines = str(error).strip().splitlines()
            self.verdict(name, [f"{type(error).__name__}: {lines[0] if lines else ''}"])

    def open(self, notebook: str):
        """A fresh page on `notebook`, as a learner opens it; waits for its cells and its kernel."""
        page = self.browser.new_page()
        page.set_default_timeout(TIMEOUT * 1000)
        page.goto(self.lab.url(notebook))
        cells = len(json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())["cells"])
        try:  # all its cells in the page (render() says so when they are not)
            page.wait_for_function("n => document.querySelectorAll('.jp-Notebook .jp-Cell').length >= n", arg=cells)
        except Exception:  # noqa: BLE001
            pass
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:  # the kernel is up, or a dialog asks which one to start
            kernel = self.lab.kernel(notebook)
            if page.locator(".jp-Dialog").count() or (kernel and kernel["execution_state"] == "idle"):
                break
            time.sleep(0.3)
        page.wait_for_timeout(500)
        return page

    def close(self, notebook: str, page) -> None:
        """Close the page without saving, and shut its kernel down (one kernel at a time on 2 cores)."""
        page.close(run_before_unload=False)
        for session in self.lab.api("sessions"):
            if session["path"] == f"{notebook}.ipynb":
                self.lab.api(f"sessions/{session['id']}", "DELETE")

    def add_cell(self, page, code: str, run: bool = True):
        """Add a code cell at the end of the notebook (in the page only), run it, and return it."""
        page.locator(".jp-Notebook .jp-Cell").last.locator(".jp-InputPrompt").click()
        for key in ("Escape", "b", "Enter"):  # command mode, a cell below, edit it
            page.keyboard.press(key)
        page.keyboard.insert_text(code)
        if run:
            page.keyboard.press("Control+Enter")  # run it and stay on it
        return page.locator(".jp-Notebook .jp-CodeCell").last

    # -- the checks -----------------------------------------------------------------------------------

    def kernels_offered(self) -> None:
        specs = self.lab.api("kernelspecs")
        python = sorted(n for n, s in specs["kernelspecs"].items() if s["spec"]["language"].lower() == "python")
        problems = [] if python == ["python3"] and specs["default"] == "python3" else [
            f"JupyterLab offers the Python kernels {', '.join(python)} (default {specs['default']}), the notebooks "
            "want python3 alone: `.venv/bin/jupyter kernelspec remove NAME` for each other one"]
        self.verdict("kernels", problems, detail="python3 is the only Python kernel offered")

    def render(self, notebook: str, page) -> None:
        saved = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text())
        problems = []
        if page.locator(".jp-Dialog").count():
            problems.append(f"a dialog on opening: {' '.join(page.locator('.jp-Dialog').inner_text().split())[:120]}")
        kernel, wanted = self.lab.kernel(notebook), saved["metadata"].get("kernelspec", {}).get("name")
        kernel = kernel["name"] if kernel else None
        if kernel != "python3" or wanted != "python3":
            problems.append(f"opens on kernel {kernel} (its metadata names {wanted}), not python3")
        shown = page.evaluate(READ_OUTPUTS)
        problems += render_problems(saved, shown["cells"], shown["outputs"])
        show_first(page, problems, shown)
        self.verdict(f"render {notebook}", problems, page, f"{figure_count(saved)} figures, kernel {kernel}, no bad output")

    def run_all(self, notebook: str, page) -> list[str]:
        """Run > Run All Cells; wait until every cell has run and the kernel is idle; what went wrong."""
        page.click(".lm-MenuBar-item:has-text('Run')")
        page.click(".lm-Menu-item[data-command='runmenu:run-all']")
        deadline, prompts, kernel = time.monotonic() + TIMEOUT, [], None
        while time.monotonic() < deadline:
            page.wait_for_timeout(500)
            prompts, kernel = page.evaluate(PROMPTS), self.lab.kernel(notebook)
            if "[*]:" not in prompts and kernel and kernel["execution_state"] == "idle":
                break
        else:
            state = kernel["execution_state"] if kernel else "gone"
            return [f"Run All had not finished after {TIMEOUT:.0f} s ({prompts.count('[*]:')} cells waiting, kernel {state})"]
        shown = page.evaluate(READ_OUTPUTS)
        problems = [f"after Run All, {p}" for p in output_problems(shown["outputs"], saved=False)]
        numbers = [p.strip("[]: ") or "-" for p in prompts]
        if numbers != [str(k) for k in range(1, len(numbers) + 1)]:
            problems.append(f"after Run All the code cells are numbered {' '.join(numbers)}, not 1 to {len(numbers)}")
        show_first(page, problems, shown)
        return problems

    def run_notebook(self, notebook: str, page) -> None:
        problems = self.run_all(notebook, page)
        self.verdict(f"run-all {notebook}", problems, page, "every cell ran in order, no error output, kernel idle")

    def kernel_python(self, notebook: str, page) -> None:
        cell = self.add_cell(page, EXECUTABLE_CELL)
        output = cell.locator(".jp-OutputArea-output").first
        output.wait_for()
        shown, wanted = output.inner_text().strip(), ROOT / ".venv" / "bin"
        ok = os.path.realpath(os.path.dirname(shown)) == os.path.realpath(wanted) and os.path.basename(shown).startswith("python")
        problems = [] if ok else [f"{notebook}'s kernel runs {shown}, not the project's {wanted}/python"]
        self.verdict("kernel python", problems, page, f"python3 runs {shown}")

    def progress(self, notebook: str, page) -> None:
        cell = self.add_cell(page, TRAINING_CELL, run=False)
        prompt, bar = cell.locator(".jp-InputPrompt"), cell.locator(".jupyter-widgets.widget-hprogress").first
        cell.evaluate(WATCH_BAR)  # notes the cell's prompt the moment a bar appears: `[*]:` while it runs
        page.keyboard.press("Control+Enter")
        try:  # a bar, or the cell done without one
            page.wait_for_function("p => window.barPrompt !== undefined || /^\\[\\d+\\]:$/.test(p.textContent.trim())",
                                   arg=prompt.element_handle())
        except Exception:  # noqa: BLE001
            return self.verdict("progress", [f"the training cell neither showed a progress bar nor ended in {TIMEOUT:.0f} s"], page)
        if page.evaluate("() => window.barPrompt") is None:
            text = " ".join(cell.locator(".jp-OutputArea").inner_text().split())[:80]
            return self.verdict("progress", [f"the training cell ran without showing a progress bar (it showed {text!r})"], page)
        running = page.evaluate("() => window.barPrompt") == "[*]:"
        into_view(page, bar)
        page.screenshot(path=OUT / "progress-running.png")
        if not running:
            return self.verdict("progress", ["the progress bar appeared only after the training cell had finished"], page)
        page.wait_for_function("el => el.textContent.trim() !== '[*]:'", arg=prompt.element_handle())
        into_view(page, bar)
        text = " ".join(cell.locator(".jp-OutputArea").inner_text().split())
        problems = [] if "100%" in text else [f"the progress bar did not reach 100% ({text[:80]!r})"]
        shown = page.evaluate(READ_OUTPUTS)
        problems += output_problems([o for o in shown["outputs"] if o["cell"] == shown["cells"]], saved=False)
        self.verdict("progress", problems, page, "a training cell shows a live bar while it runs, ending at 100% "
                                                 "[browser-check/progress-running.png]")

    def slider(self, notebook: str, page) -> None:
        problems = self.run_all(notebook, page)
        widget = page.locator(".jp-Cell-outputArea .widget-interact").first
        if not widget.count() or not widget.locator(".noUi-handle").count() or not widget.locator("img").count():
            return self.verdict("slider", problems + [f"{notebook}: after Run All, no slider widget with a figure"], page)
        into_view(page, widget)
        readout = widget.locator(".widget-readout")
        before_value, before_figure = readout.text_content(), widget.locator("img").first.get_attribute("src")
        page.screenshot(path=OUT / "slider-before.png")
        handle, track = widget.locator(".noUi-handle").bounding_box(), widget.locator(".noUi-base").bounding_box()
        y = handle["y"] + handle["height"] / 2
        page.mouse.move(handle["x"] + handle["width"] / 2, y)  # drag the handle to 60 % of the track
        page.mouse.down()
        page.mouse.move(track["x"] + track["width"] * 0.6, y, steps=5)
        page.mouse.up()
        redrawn = "([w, src]) => { const img = w.querySelector('img'); return img !== null && img.src !== src && img.complete && img.naturalWidth > 0; }"
        try:
            page.wait_for_function(redrawn, arg=[widget.element_handle(), before_figure], timeout=30_000)
        except Exception:  # noqa: BLE001 - judged below
            pass
        after_value, images = readout.text_content(), widget.locator("img")
        after_figure = images.first.get_attribute("src") if images.count() else None
        if after_value == before_value:
            problems.append(f"{notebook}: dragging the slider left it at {before_value}")
        elif not after_figure or after_figure == before_figure:
            problems.append(f"{notebook}: the slider moved from {before_value} to {after_value}, the figure was not redrawn")
        self.verdict("slider", problems, page, f"{notebook}'s slider is a widget; dragged from {before_value} to "
                                               f"{after_value}, it redrew its figure [browser-check/slider-before.png]")


def snapshot() -> dict[Path, bytes | None]:
    """Everything under notebooks/, hidden things included: each file's content (None for a folder)."""
    return {p: None if p.is_dir() else p.read_bytes() for p in sorted(NOTEBOOKS.rglob("*"))}


def restore(before: dict[Path, bytes | None]) -> list[str]:
    """Put notebooks/ back as `before` had it; what had changed (the check must never save a notebook).

    JupyterLab makes .ipynb_checkpoints/ when it opens a notebook (git ignores it): removed, not a problem.
    """
    problems = []
    for path in sorted(NOTEBOOKS.rglob("*"), reverse=True):  # a folder's files before the folder
        if path not in before:
            path.rmdir() if path.is_dir() else path.unlink()
            if ".ipynb_checkpoints" not in path.parts:
                problems.append(f"{path.relative_to(ROOT)} was made during the check (removed)")
    for path, content in before.items():
        if content is not None and (not path.exists() or path.read_bytes() != content):
            path.write_bytes(content)
            problems.append(f"{path.relative_to(ROOT)} was written during the check (restored)")
    return problems


def main() -> int:
    from playwright.sync_api import sync_playwright

    if not os.access(CHROMIUM, os.X_OK):
        raise SystemExit(f"browser-check: no Chromium at {CHROMIUM}: `apt-get install chromium` (Debian, Ubuntu), "
                         "or CHROMIUM=/path/to/chromium")
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*.png"):
        old.unlink()
    start = time.monotonic()
    before = snapshot()
    notebooks = sorted(p.stem for p in before if p.suffix == ".ipynb" and p.parent == NOTEBOOKS)
    with tempfile.TemporaryDirectory(prefix="browser-check-") as tmp:
        lab = Lab(Path(tmp))
        try:
            lab.wait_ready()
            print(f"browser-check: JupyterLab from `make lab` on 127.0.0.1:{lab.port}, profile smoke, "
                  f"{len(notebooks)} notebooks; Chromium {CHROMIUM}", flush=True)
            with sync_playwright() as pw:
                try:
                    browser = pw.chromium.launch_persistent_context(  # a fresh profile in tmp
                        f"{tmp}/chromium", executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
                        viewport={"width": 1280, "height": 900})
                except Exception as error:  # noqa: BLE001 - one line, not playwright's page of log
                    raise SystemExit(f"browser-check: {CHROMIUM} did not start: {str(error).strip().splitlines()[0]}")
                check = Check(lab, browser)
                check.guarded("kernels", check.kernels_offered)
                for name in sorted({RUN_ALL_NOTEBOOK, SLIDER_NOTEBOOK} - set(notebooks)):
                    check.verdict(f"run {name}", [f"no notebook {name}.ipynb to run"])
                for notebook in notebooks:
                    page = check.guarded(f"open {notebook}", check.open, notebook)
                    if page is None:
                        continue
                    check.guarded(f"render {notebook}", check.render, notebook, page)
                    if notebook == RUN_ALL_NOTEBOOK:
                        check.guarded(f"run-all {notebook}", check.run_notebook, notebook, page)
                        check.guarded("kernel python", check.kernel_python, notebook, page)
                        check.guarded("progress", check.progress, notebook, page)
                    elif notebook == SLIDER_NOTEBOOK:
                        check.guarded("slider", check.slider, notebook, page)
                    check.guarded(f"close {notebook}", check.close, notebook, page)
                browser.close()
        finally:
            lab.stop()
    check.verdict("unchanged", restore(before), detail="notebooks/ as the check found it")
    print(f"browser-check: {len(check.passed)} passed, {len(check.failures)} problem(s) in "
          f"{time.monotonic() - start:.0f} s; screenshots in {OUT.relative_to(ROOT)}/", flush=True)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main())
