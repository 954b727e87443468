"""The plateau rule shared by the engine's early stop and the claims ledger."""
import pytest

from experiments.plateau import plateau


def test_plateau_needs_enough_evaluations_and_no_recent_gain():
    assert not plateau([0.5, 0.4], patience=1).reached  # two evaluations cannot show one
    assert plateau([0.5, 0.6, 0.55], patience=1).reached
    assert not plateau([0.5, 0.6, 0.61], patience=1).reached
    assert plateau([0.5, 0.6, 0.61], patience=1, tolerance=0.02).reached
    assert plateau([0.5, 0.6, 0.6], patience=1).gain == pytest.approx(0.0)
    # patience 2: the last two together must not beat the earlier best
    assert not plateau([0.5, 0.6, 0.55, 0.62], patience=2).reached
    assert plateau([0.5, 0.6, 0.55, 0.6], patience=2, min_evaluations=4).reached


def test_lower_is_better_flips_the_sign():
    assert plateau([2.0, 1.5, 1.6], patience=1, better="lower").reached
    assert not plateau([2.0, 1.5, 1.4], patience=1, better="lower").reached


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="higher"):
        plateau([1, 2, 3], patience=1, better="up")
    with pytest.raises(ValueError, match="min_evaluations > patience"):
        plateau([1, 2, 3], patience=3, min_evaluations=3)
