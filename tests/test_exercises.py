"""Every exercise's solution, as printed (folded) in its notebook, passes its check; the stubs do not."""
import json
import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from vit_tutorial import exercises  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTION = re.compile(r"<details><summary><b>Solution</b>.*?```python\n(.*?)```", re.S)
CHECK = re.compile(r'exercises\.check\("(\d\d\.\d)", (\w+)\)')


def _exercises():
    """(notebook, exercise id, the name of the answer, the setup cell, the solution's code) for every exercise."""
    found = []
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        setup = next("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        for i, cell in enumerate(cells):
            for ident, name in CHECK.findall("".join(cell["source"])) if cell["cell_type"] == "code" else []:
                following = "".join(cells[i + 1]["source"]) if i + 1 < len(cells) else ""
                solution = SOLUTION.search(following)
                found.append((path.stem, ident, name, setup, solution.group(1) if solution else None))
    return found


EXERCISES = _exercises()


def test_every_notebook_has_two_exercises_and_every_check_exists():
    per_notebook = {path.stem: 0 for path in NOTEBOOKS}
    for notebook, ident, *_ in EXERCISES:
        per_notebook[notebook] += 1
        assert ident in exercises.CHECKS, f"{notebook}: no check registered for exercise {ident}"
        assert ident.startswith(notebook[:2]), f"exercise {ident} is in notebook {notebook}"
    assert sorted(i for _, i, *_ in EXERCISES) == sorted(set(i for _, i, *_ in EXERCISES)), "an exercise appears twice"
    thin = {n: k for n, k in per_notebook.items() if k < 2}
    assert not thin, f"notebooks with fewer than two exercises: {thin}"


@pytest.mark.parametrize("notebook, ident, name, setup, solution", EXERCISES, ids=[e[1] for e in EXERCISES])
def test_the_folded_solution_passes_and_the_stub_does_not(notebook, ident, name, setup, solution, capsys):
    assert solution, f"{notebook}: exercise {ident} has no folded solution right after its cell"
    namespace: dict = {}
    exec(compile(setup, f"{notebook} setup", "exec"), namespace)
    exec(compile(solution, f"{notebook} solution {ident}", "exec"), namespace)
    exercises.check(ident, namespace[name], strict=True)  # raises if the solution fails its check
    stub = dict(namespace)
    exec(compile(f"def {name}(*args, **kwargs):\n    ...\n", "stub", "exec"), stub)
    with pytest.raises(exercises.NotAnswered):
        exercises.check(ident, stub[name], strict=True)
    capsys.readouterr()
    exercises.check(ident, stub[name])  # the unfilled stub says so, without an error
    assert "not answered yet" in capsys.readouterr().out


def test_a_wrong_answer_says_what_is_wrong(capsys):
    exercises.check("04.2", lambda image_size, patch_size: (1, 1))
    out = capsys.readouterr().out
    assert "not yet right" in out and "expected (65, 4225)" in out
    exercises.check("04.2", lambda image_size, patch_size: 1 / 0)
    assert "ZeroDivisionError in your code" in capsys.readouterr().out
    exercises.check("04.2", lambda image_size, patch_size: (65, 4225) if patch_size == 7 else (0, 0))
    assert "not yet right" in capsys.readouterr().out  # right once is not right
    with pytest.raises(ValueError, match="no exercise '99.9'"):
        exercises.check("99.9", print)
