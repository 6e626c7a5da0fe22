"""The one rule by which the tutorial draws a verdict from its experiments.

Two ways of training (arms) are run with the same seeds and scored on the same test set. For each
seed the difference a - b is one paired measurement; the verdict rests on their mean and on a 95 %
interval from Student's t distribution with n - 1 degrees of freedom. At least 3 seeds are needed:
with fewer there is no estimate of the noise, and no verdict is drawn.

- the interval lies above 0: "a is higher than b" (a beats b when higher is better);
- it lies below 0: "b is higher";
- it contains 0: "too close to call" (not "no difference": a larger study might find one).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

MIN_SEEDS = 3
# Two-sided 95 % quantiles of Student's t for 1 to 30 degrees of freedom (any statistics table).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t_quantile(dof: int) -> float:
    """The 97.5 % quantile of Student's t with `dof` degrees of freedom (beyond 30: a series in 1/dof)."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {dof}.")
    if dof <= len(_T975):
        return _T975[dof - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * dof) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * dof**2)


@dataclass
class Verdict:
    """A paired comparison of `names[0]` (a) against `names[1]` (b) and its verdict in words."""

    names: tuple[str, str]
    differences: list[float]  # a - b per seed, in `unit`
    mean: float  # mean difference
    half_width: float  # of the 95 % interval (nan below MIN_SEEDS)
    unit: str
    words: str

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    @property
    def decided(self) -> bool:
        """Whether the interval excludes 0 (a verdict either way)."""
        return len(self.differences) >= MIN_SEEDS and (self.low > 0 or self.high < 0)

    def __str__(self) -> str:
        a, b = self.names
        n = len(self.differences)
        if n < MIN_SEEDS:
            return f"{a} - {b}: {self.mean:+.2f} {self.unit} over {n} seed(s): {self.words}"
        return (f"{a} - {b}: {self.mean:+.2f} ± {self.half_width:.2f} {self.unit} "
                f"(95% interval {self.low:+.2f} to {self.high:+.2f}, {n} paired seeds): {self.words}")


def verdict(a: Mapping[int, float], b: Mapping[int, float], names: tuple[str, str] = ("a", "b"),
            scale: float = 100.0, unit: str = "points") -> Verdict:
    """The verdict on `a` against `b`, each {seed: value} (e.g. test accuracies), paired by seed.

    `scale` turns the values into `unit` (accuracy 0.97 -> 97 points). Seeds that only one side
    has are refused: an unpaired comparison would mix the seed's luck into the effect.
    """
    if set(a) != set(b):
        raise ValueError(f"a paired verdict needs the same seeds on both sides; got {sorted(a)} and {sorted(b)}.")
    diffs = [(float(a[s]) - float(b[s])) * scale for s in sorted(a)]
    n = len(diffs)
    if n == 0:
        raise ValueError("no seeds to compare.")
    mean = sum(diffs) / n
    if n < MIN_SEEDS:
        return Verdict(names, diffs, mean, math.nan, unit, f"no verdict (at least {MIN_SEEDS} seeds are needed)")
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    words = (f"{names[0]} is higher" if mean - half > 0 else f"{names[1]} is higher" if mean + half < 0
             else "too close to call")
    return Verdict(names, diffs, mean, half, unit, words)
