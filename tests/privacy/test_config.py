import math

import pytest

from cadp_med.errors import PrivacyError
from cadp_med.privacy import MechanismConfig, MechanismKind, PostProcess


def test_accepts_enum_or_string():
    a = MechanismConfig(MechanismKind.GAUSSIAN, 1.0, 1e-5, 2.0)
    b = MechanismConfig(" Gaussian ", 1.0, 1e-5, 2.0, postprocess="posterior-mean")
    assert a.kind is b.kind is MechanismKind.GAUSSIAN
    assert b.postprocess is PostProcess.POSTERIOR_MEAN
    assert a.clip_norm == "L2" and a.sensitivity == 4.0


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"kind": "exponential"}, "['laplace', 'gaussian']"),
        ({"epsilon": 0.0}, "epsilon must be"),
        ({"epsilon": -1.0}, "epsilon must be"),
        ({"epsilon": math.nan}, "epsilon must be"),
        ({"delta": 1e-5}, "delta must be None"),
        ({"clip": 0.0}, "clip must be"),
        ({"clip": math.inf}, "clip must be"),
        ({"release": (4, 4)}, "0 <= start < stop"),
        ({"release": (-1, 3)}, "0 <= start < stop"),
        ({"postprocess": "median"}, "'posterior-sample'"),
        ({"condition_rr_epsilon": 0.0}, "condition_rr_epsilon"),
    ],
)
def test_laplace_validation(kwargs, fragment):
    args = {"kind": "laplace", "epsilon": 1.0, "delta": None, "clip": 1.0} | kwargs
    with pytest.raises(PrivacyError, match=None) as info:
        MechanismConfig(**args)
    assert fragment in str(info.value)


@pytest.mark.parametrize("delta", [None, 0.0, 1.0, 2.0])
def test_gaussian_needs_delta_in_open_unit_interval(delta):
    with pytest.raises(PrivacyError, match=r"delta in the open range \(0, 1\)"):
        MechanismConfig("gaussian", 1.0, delta, 1.0)


def test_infinite_epsilon_is_not_dp():
    config = MechanismConfig("laplace", math.inf, None, 1.0)
    assert not config.is_dp
    assert MechanismConfig("laplace", 1.0, None, 1.0).is_dp


def test_release_range_must_fit_latent():
    config = MechanismConfig("laplace", 1.0, None, 1.0, release=(2, 10))
    assert config.released_range(10) == (2, 10)
    assert MechanismConfig("laplace", 1.0, None, 1.0).released_range(7) == (0, 7)
    with pytest.raises(PrivacyError, match="exceeds the latent dimension"):
        config.released_range(9)
