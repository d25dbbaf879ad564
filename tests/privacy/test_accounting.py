import math
from collections import Counter

import numpy as np
import pytest

from cadp_med.errors import PrivacyError
from cadp_med.privacy import MechanismConfig, per_slice, randomized_response, split_budget
from cadp_med.privacy import study_total as total
from cadp_med.privacy._calibration import analytic_gaussian_sigma
from cadp_med.privacy.accounting import rr_keep_probability

LAP = MechanismConfig("laplace", 0.5, None, 1.0)
GAUSS = MechanismConfig("gaussian", 1.0, 1e-5, 1.0)


def test_per_slice_includes_randomized_response():
    assert per_slice(LAP) == (0.5, 0.0)
    assert per_slice(GAUSS) == (1.0, 1e-5)
    with_rr = MechanismConfig("laplace", 0.5, None, 1.0, condition_rr_epsilon=0.25)
    assert per_slice(with_rr) == (0.75, 0.0)


def test_basic_composition_hand_values():
    assert total(LAP, 10) == (5.0, 0.0)
    eps, delta = total(GAUSS, 40, "basic")
    assert eps == 40.0 and delta == pytest.approx(4e-4)
    assert total(GAUSS, 10**6)[1] == 1.0  # vacuous delta is capped, not hidden


def test_zcdp_hand_values():
    # Laplace eps=0.5 -> rho = 0.125 per slice; 100 slices -> rho = 12.5.
    eps, delta = total(LAP, 100, "zcdp", target_delta=1e-6)
    assert eps == pytest.approx(12.5 + 2 * math.sqrt(12.5 * math.log(1e6)), rel=1e-12)
    assert delta == 1e-6
    # Gaussian: rho = Delta^2 / (2 sigma^2) with Delta = 2C = 2.
    sigma = analytic_gaussian_sigma(1.0, 1e-5, 2.0)
    rho = 50 * 4.0 / (2 * sigma**2)
    eps, _ = total(GAUSS, 50, "zcdp")
    assert eps == pytest.approx(rho + 2 * math.sqrt(rho * math.log(1e5)), rel=1e-12)
    assert eps < 50.0  # beats basic composition for many slices


def test_rdp_matches_continuous_optimum_for_gaussian():
    # min_alpha alpha*R + L/(alpha-1) = R + 2 sqrt(R L): the grid minimum sits just above.
    zcdp, _ = total(GAUSS, 50, "zcdp")
    rdp, _ = total(GAUSS, 50, "rdp")
    assert zcdp - 1e-9 <= rdp <= zcdp * 1.005


def test_rdp_pure_dp_never_worse_than_basic_plus_log_term():
    rdp, _ = total(LAP, 3, "rdp", target_delta=1e-5)
    # alpha -> large: eps_rdp -> 3*0.5 = 1.5 plus ln(1e5)/(alpha-1) -> small.
    assert 1.5 < rdp < 1.5 + math.log(1e5) / (4096 - 1) + 1e-9


def test_zcdp_needs_target_delta_for_pure_mechanism():
    with pytest.raises(PrivacyError, match="needs target_delta"):
        total(LAP, 3, "zcdp")
    with pytest.raises(PrivacyError, match=r"\['basic', 'zcdp', 'rdp'\]"):
        total(LAP, 3, "advanced")
    with pytest.raises(PrivacyError, match="n_slices"):
        total(LAP, 0)


def test_infinite_epsilon_composes_to_infinity():
    config = MechanismConfig("gaussian", math.inf, 1e-5, 1.0)
    for method in ("basic", "zcdp", "rdp"):
        assert math.isinf(total(config, 4, method)[0])


def test_split_budget_meets_study_total():
    per = split_budget(8.0, 16, 1e-4, base=GAUSS)
    assert per.epsilon == 0.5 and per.delta == pytest.approx(1e-4 / 16)
    eps, delta = total(per, 16)
    assert eps == pytest.approx(8.0) and delta == pytest.approx(1e-4)
    base = MechanismConfig("laplace", 3.0, None, 1.0, condition_rr_epsilon=1.0)
    per = split_budget(4.0, 4, base=base)
    assert per.epsilon == pytest.approx(0.75) and per.condition_rr_epsilon == pytest.approx(0.25)
    assert total(per, 4)[0] == pytest.approx(4.0)
    with pytest.raises(PrivacyError, match="finite total epsilon"):
        split_budget(math.inf, 4, base=LAP)


def test_randomized_response_keep_rate_and_uniform_flips():
    vocab = ["CT", "MR", "PT", "US"]
    eps = 1.0
    n = 40_000
    out = randomized_response(["MR"] * n, vocab, eps, np.random.default_rng(0))
    keep = rr_keep_probability(eps, 4)
    assert keep == pytest.approx(math.e / (math.e + 3))
    counts = Counter(out)
    assert abs(counts["MR"] / n - keep) < 4 * math.sqrt(keep * (1 - keep) / n)
    flips = [counts[v] for v in ("CT", "PT", "US")]
    expected = n * (1 - keep) / 3
    assert all(abs(c - expected) < 5 * math.sqrt(expected) for c in flips)
    # The likelihood ratio of any output between two inputs is exactly e^eps.
    assert keep / ((1 - keep) / 3) == pytest.approx(math.exp(eps))


def test_randomized_response_errors_do_not_quote_values():
    with pytest.raises(PrivacyError) as info:
        randomized_response(["SECRET-VALUE"], ["A", "B"], 1.0, np.random.default_rng(0))
    assert "SECRET" not in str(info.value) and "position 0" in str(info.value)
    with pytest.raises(PrivacyError, match="at least 2"):
        randomized_response(["A"], ["A", "A"], 1.0, np.random.default_rng(0))
