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


def test_scores_flat_at_the_constant_predictors_level_are_no_plateau():
    # BitFit on CoLA: MCC 0 (a constant prediction) for three epochs has not begun to learn
    flat = plateau([0.0, 0.0, 0.0], patience=2, floor=0.0)
    assert not flat.reached and flat.at_floor and flat.gain == 0.0
    assert plateau([0.0, 0.12, 0.1, 0.11], patience=2, floor=0.0).reached  # learnt, then flat
    # LoRA on CoLA at lr 2e-3: a first noisy 0.03, then a collapse to the constant answer
    assert plateau([0.033, 0.0, 0.0], patience=2, floor=0.0).at_floor
    # RTE's majority share 52.7%: hovering at or under it is not a plateau either
    assert not plateau([0.527, 0.52, 0.5], patience=2, floor=0.527).reached
    # a loss floor: a lower-is-better series must get under it
    assert not plateau([0.69, 0.70, 0.70], patience=1, better="lower", floor=0.69).reached
    assert plateau([0.60, 0.62, 0.61], patience=1, better="lower", floor=0.69).reached
