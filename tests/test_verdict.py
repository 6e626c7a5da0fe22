"""The one verdict rule: paired seeds, a t interval, words; and its refusals."""
import math
import random

import pytest

from vit_tutorial.verdict import MIN_SEEDS, t_quantile, verdict


def test_a_clear_gain_is_called_for_the_right_side():
    a, b = {0: 0.90, 1: 0.91, 2: 0.92}, {0: 0.80, 1: 0.82, 2: 0.81}
    v = verdict(a, b, names=("CNN", "ViT"))
    assert v.differences == pytest.approx([10.0, 9.0, 11.0])
    assert v.mean == pytest.approx(10.0) and v.decided and v.words == "CNN is higher"
    # sd of (10, 9, 11) is 1; t(2) = 4.303; half width = 4.303 / sqrt(3)
    assert v.half_width == pytest.approx(4.303 / math.sqrt(3), rel=1e-6)
    assert "+10.00 ± 2.48 points" in str(v) and "3 paired seeds" in str(v)
    assert verdict(b, a, names=("ViT", "CNN")).words == "CNN is higher"


def test_noise_bigger_than_the_effect_is_too_close_to_call():
    v = verdict({0: 0.5, 1: 0.7, 2: 0.6}, {0: 0.6, 1: 0.5, 2: 0.55})
    assert not v.decided and v.words == "too close to call" and v.low < 0 < v.high


def test_pairing_removes_the_seed_luck_that_both_arms_share():
    # Each seed moves both arms together by a lot; the paired difference is steady, so the gain is clear.
    luck = {s: random.Random(s).uniform(-0.2, 0.2) for s in range(5)}
    a = {s: 0.7 + luck[s] + 0.01 for s in luck}
    b = {s: 0.7 + luck[s] for s in luck}
    assert verdict(a, b).decided and verdict(a, b).mean == pytest.approx(1.0)


def test_fewer_than_three_seeds_give_no_verdict():
    v = verdict({0: 0.9, 1: 0.92}, {0: 0.5, 1: 0.52})
    assert MIN_SEEDS == 3 and not v.decided and "no verdict" in v.words and math.isnan(v.half_width)
    assert "2 seed(s)" in str(v)


def test_unpaired_seeds_are_refused():
    with pytest.raises(ValueError, match="same seeds"):
        verdict({0: 0.9, 1: 0.9, 2: 0.9}, {0: 0.8, 1: 0.8, 3: 0.8})
    with pytest.raises(ValueError, match="no seeds"):
        verdict({}, {})


def test_t_quantiles():
    assert t_quantile(1) == 12.706 and t_quantile(2) == 4.303 and t_quantile(30) == 2.042
    assert t_quantile(60) == pytest.approx(2.000, abs=2e-3) and t_quantile(1000) == pytest.approx(1.962, abs=1e-3)
    assert t_quantile(31) < t_quantile(30)
    with pytest.raises(ValueError, match="at least 1"):
        t_quantile(0)


def test_scale_and_unit_are_the_callers():
    v = verdict({0: 3.0, 1: 3.2, 2: 3.1}, {0: 1.0, 1: 1.1, 2: 1.2}, scale=1.0, unit="px")
    assert v.mean == pytest.approx(2.0) and str(v).startswith("a - b: +2.00 ±") and " px " in str(v)
