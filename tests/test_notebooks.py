"""Checks on the committed notebooks themselves (nbval runs them; this reads what is committed)."""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_tokens", "02_self_attention", "03_multi_head", "04_vit", "05_deit", "06_convit", "07_cait", "08_mixer"]
ABSOLUTE = re.compile(r"(/work/|/home/\w|/Users/\w|/root/|/tmp/|[A-Z]:\\\\)")
HARD_DEVICE = re.compile(r"""(\.cuda\(\)|["']cuda(:\d)?["']|device\s*=\s*["']cpu["'])""")


def _code(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def test_notebooks_present_in_order():
    names = [p.stem for p in NOTEBOOKS]
    assert names == sorted(names) and names, names
    assert all(n in EXPECTED for n in names), names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_clean(path):
    assert path.stat().st_size < 3 * 1024 * 1024, "notebook over 3 MB: shrink its figures"
    nb = json.loads(path.read_text())
    assert nb["metadata"].get("kernelspec", {}).get("name"), "no kernelspec"
    cells = _code(nb)
    counts = [c.get("execution_count") for c in cells]
    assert counts == list(range(1, len(cells) + 1)), "not executed top to bottom from a fresh kernel"
    for cell in cells:
        for out in cell.get("outputs", []):
            assert out.get("output_type") != "error", "".join(cell["source"])[:80]
            text = json.dumps(out.get("text", "")) + json.dumps(out.get("data", {}).get("text/plain", ""))
            assert not ABSOLUTE.search(text), f"absolute path in an output: {ABSOLUTE.search(text).group(0)}"
    setup = "".join(cells[0]["source"])
    assert "profiles.get()" in setup, "the first code cell must be the setup cell with profiles.get()"
    for cell in cells:
        src = "".join(cell["source"])
        assert not HARD_DEVICE.search(src), f"hard-coded device in: {src[:80]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_placeholder_left_in_the_prose(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            src = "".join(cell["source"])
            assert not re.search(r"\bFILL\b|\bTODO\b|\bXXX\b", src), src[:120]


def test_readme_pictures_come_from_a_figure_of_each_notebook():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_images", ROOT / "scripts" / "readme_images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert sorted(module.PICKS) == [p.stem for p in NOTEBOOKS]
    readme = (ROOT / "README.md").read_text()
    for name, needle in module.PICKS.items():
        cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
        chosen = [c for c in cells if c["cell_type"] == "code" and needle in "".join(c["source"])]
        assert len(chosen) == 1, f"{name}: {len(chosen)} cells contain {needle!r}"
        assert f"docs/images/{name}.png" in readme and (ROOT / "docs" / "images" / f"{name}.png").exists()
