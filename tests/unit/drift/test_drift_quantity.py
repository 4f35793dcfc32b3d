"""Kubernetes quantity parsing (reconciler.cluster.quantity)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconciler.cluster.quantity import QuantityError, parse_quantity, quantities_equal


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", Decimal(1)),
        ("1000m", Decimal(1)),
        ("500m", Decimal("0.5")),
        ("0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("5.", Decimal(5)),
        ("+2", Decimal(2)),
        ("-2k", Decimal(-2000)),
        ("1k", Decimal(1000)),
        ("1M", Decimal(10**6)),
        ("1G", Decimal(10**9)),
        ("1T", Decimal(10**12)),
        ("1P", Decimal(10**15)),
        ("1E", Decimal(10**18)),
        ("1Ki", Decimal(1024)),
        ("1Mi", Decimal(1024**2)),
        ("2Gi", Decimal(2 * 1024**3)),
        ("1Ti", Decimal(1024**4)),
        ("1Pi", Decimal(1024**5)),
        ("1Ei", Decimal(1024**6)),
        ("1.5Gi", Decimal(3 * 1024**3 // 2)),
        ("100n", Decimal("1e-7")),
        ("250u", Decimal("0.00025")),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("12e-3", Decimal("0.012")),
        ("1e+2", Decimal(100)),
        ("0", Decimal(0)),
        ("0m", Decimal(0)),
    ],
)
def test_parse_values(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    ("a", "b"),
    [("1000m", "1"), ("1000M", "1G"), ("2048Mi", "2Gi"), ("0.5", "500m"), ("10240Mi", "10Gi"), ("1e3", "1k")],
)
def test_equal_spellings(a: str, b: str) -> None:
    assert quantities_equal(a, b)


@pytest.mark.parametrize(
    ("a", "b"), [("1G", "1Gi"), ("1M", "1Mi"), ("1000M", "2G"), ("1m", "1"), ("1k", "1Ki")]
)
def test_different_amounts(a: str, b: str) -> None:
    assert not quantities_equal(a, b)


def test_numbers_from_yaml() -> None:
    # an unquoted YAML quantity arrives as int or float
    assert parse_quantity(1) == Decimal(1)
    assert quantities_equal(0.5, "500m")
    assert quantities_equal(2, "2000m")
    assert quantities_equal(1e3, "1k")


def test_rounds_up_to_nano_like_the_api_server() -> None:
    assert parse_quantity("0.1n") == Decimal("1e-9")
    assert parse_quantity("1.0000000001") == Decimal("1.000000001")
    assert parse_quantity("-0.1n") == Decimal("-1e-9")


def test_binary_si_is_capped_at_int64_max() -> None:
    assert parse_quantity("100Ei") == Decimal(2**63 - 1)
    assert parse_quantity("100E") == Decimal(10**20)  # decimal SI is not capped


@pytest.mark.parametrize(
    "bad",
    [
        "",
        " 1",
        "1 ",
        "1K",
        "1mi",
        "1.2.3",
        "--1",
        "+-1",
        "Mi",
        "1 Mi",
        "e3",
        "1e",
        "1e3.5",
        "1Gi1",
        "abc",
        "1e5000",
    ],
)
def test_rejects_invalid(bad: str) -> None:
    with pytest.raises(QuantityError) as err:
        parse_quantity(bad)
    assert repr(bad) in str(err.value)


@pytest.mark.parametrize("bad", [True, False, float("nan"), float("inf"), None, [1]])
def test_rejects_non_quantities(bad: object) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(bad)  # type: ignore[arg-type]
