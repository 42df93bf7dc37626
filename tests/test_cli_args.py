"""Argument types shared by the subcommands."""

import argparse

import pytest

from nnip_scaling._cli_args import positive_angstrom, positive_float


def test_positive_float_accepts_positive_finite_numbers():
    assert positive_float("2.5") == 2.5
    assert positive_angstrom("1e-3") == 1e-3


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf"])
def test_positive_float_rejects_non_positive_or_non_finite(text):
    with pytest.raises(argparse.ArgumentTypeError, match="must be a positive finite number"):
        positive_float(text)


def test_errors_name_the_unit_and_the_text():
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a number of Å, got 'abc'"):
        positive_angstrom("abc")
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a number, got 'x'"):
        positive_float("x")
