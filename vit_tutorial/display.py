"""Live things in a notebook, progress bars and sliders, that also read right when saved.

In JupyterLab a training run shows a live progress bar and a slider redraws its figure. A
notebook executed without a browser (`make notebooks` sets VIT_TUTORIAL_HEADLESS=1) is read
later, untrusted or on GitHub, where widgets cannot run: a saved widget shows as a frozen `0%`
bar or as `interactive(children=...)` text. Executed headless, the same calls print plain text
lines and draw a static figure instead.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable

ENV_HEADLESS = "VIT_TUTORIAL_HEADLESS"


def headless() -> bool:
    """Whether outputs are being made for later reading rather than for a live browser."""
    return os.environ.get(ENV_HEADLESS, "") not in ("", "0")


class TextProgress:
    """A progress bar as text lines: one line per tenth of the work, or after `seconds` without one.

    Has the methods `train.fit` uses of a tqdm bar (update, set_description, set_postfix, close).
    """

    def __init__(self, total: int, initial: int = 0, desc: str = "", seconds: float = 20.0, file=None):
        self.total, self.n, self.desc, self.postfix = max(int(total), 1), int(initial), desc, ""
        self.seconds, self.file = seconds, file or sys.stdout
        self.start = self.last_time = time.perf_counter()
        self.last_n, self.closed = self.n, False

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def set_postfix(self, refresh: bool = True, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if self.n - self.last_n >= self.total / 10 or now - self.last_time >= self.seconds:
            self._line(now)

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        print(f"{self.desc}: {self.n / self.total:4.0%} ({self.n}/{self.total}, {elapsed:.0f} s)"
              + (f", {self.postfix}" if self.postfix else ""), file=self.file, flush=True)
        self.last_n, self.last_time = self.n, now

    def close(self) -> None:
        if not self.closed and self.n != self.last_n:
            self._line(time.perf_counter())
        self.closed = True


class _Silent:
    """No progress at all (`progress=False`)."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def progress(total: int, initial: int = 0, desc: str = "", enabled: bool = True):
    """A progress bar over `total` steps: a live tqdm bar in a browser, text lines when headless."""
    if not enabled:
        return _Silent()
    if headless():
        return TextProgress(total, initial, desc)
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="batch", dynamic_ncols=True)


def slider(draw: Callable[[float], Any], name: str, value: float, low: float, high: float, step: float) -> None:
    """A slider that redraws `draw(value)` in a live notebook; headless (or without ipywidgets) the
    figure for `value` is drawn once, with a line that says what the slider would do."""
    import matplotlib.pyplot as plt

    try:
        import ipywidgets as widgets
    except ImportError:
        widgets = None
    if headless() or widgets is None:
        draw(value)
        plt.show()
        print(f"(run this cell in JupyterLab to get a slider that redraws the figure for any {name} "
              f"from {low} to {high}{'' if widgets else '; it needs pip install ipywidgets'})")
        return

    def redraw(**kw: float) -> None:
        draw(kw[name])
        plt.show()

    control = widgets.FloatSlider(value=value, min=low, max=high, step=step, description=name)
    from IPython.display import display as show

    show(widgets.interactive(redraw, **{name: control}))

