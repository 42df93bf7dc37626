"""The laws as pure functions (paper eq. 4 and 5) and their stable log forms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnip_scaling.scaling import power_law, sum_power_law
from nnip_scaling.scaling.laws import log_power_law, log_sum_power_law


def test_power_law_values():
    x = np.array([1.0, 10.0, 100.0])
    np.testing.assert_allclose(power_law(x, 2.0, 0.5), [2.0, 2.0 / np.sqrt(10), 0.2], rtol=1e-15)
    np.testing.assert_allclose(power_law(x, 2.0, 0.5, L_inf=0.1), [2.1, 0.1 + 2.0 / np.sqrt(10), 0.3],
                               rtol=1e-15)


def test_sum_power_law_values_and_broadcast():
    N = np.array([1e6, 4e6])[:, None]
    D = np.array([1e8, 1e9, 1e10])[None, :]
    got = sum_power_law(N, D, 0.05, 100.0, 2000.0, 0.3, 0.4)
    want = 0.05 + 100.0 * N**-0.3 + 2000.0 * D**-0.4
    assert got.shape == (2, 3)
    np.testing.assert_allclose(got, want, rtol=1e-14)


@settings(max_examples=30, deadline=None)
@given(
    logx=st.floats(-5, 45), F=st.floats(1e-3, 1e3), gamma=st.floats(0.0, 2.0),
    L_inf=st.sampled_from([0.0, 1e-4, 0.3]),
)
def test_log_forms_match(logx, F, gamma, L_inf):
    x = np.exp(logx)
    np.testing.assert_allclose(log_power_law(x, F, gamma, L_inf),
                               np.log(power_law(x, F, gamma, L_inf)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_sum_power_law(x, 2 * x, L_inf, F, 3 * F, gamma, gamma / 2),
                               np.log(sum_power_law(x, 2 * x, L_inf, F, 3 * F, gamma, gamma / 2)),
                               rtol=1e-12, atol=1e-12)


def test_log_form_is_stable_where_the_linear_form_underflows():
    # x^-gamma underflows to 0 for x = 1e300, gamma = 2: the log form stays exact.
    got = log_power_law(1e300, 5.0, 2.0)
    assert got == pytest.approx(np.log(5.0) - 2.0 * np.log(1e300), rel=1e-14)
    assert power_law(1e300, 5.0, 2.0) == 0.0
