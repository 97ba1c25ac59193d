"""Simulation tolerances stated in Monte Carlo standard errors, shared by the tests."""

from __future__ import annotations


def within(
    estimate: float, target: float, se: float, n_se: float = 4.0, slack: float = 0.0
) -> None:
    """``|estimate - target| <= n_se * se + slack`` with a readable failure message."""
    tol = n_se * se + slack
    assert abs(estimate - target) <= tol, (
        f"{estimate:.4g} vs {target:.4g}: |diff| {abs(estimate - target):.4g} > {tol:.4g} "
        f"({n_se} SE of {se:.3g} + {slack})"
    )
