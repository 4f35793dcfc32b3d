"""Kubernetes resource quantities (``500m``, ``1Gi``, ``1e3``) parsed to exact decimal values.

The grammar and the rounding follow ``k8s.io/apimachinery/pkg/api/resource.Quantity`` (``ParseQuantity``)::

    <quantity>        ::= <signedNumber><suffix>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedInteger> | "E" <signedInteger>
    <signedNumber>    ::= [+-] ( <digits> | <digits>. | <digits>.<digits> | .<digits> )

As in ``ParseQuantity``, a non-zero value is rounded away from zero to a whole number of nano units
(``0.1n`` is stored as ``1n``), and a binary-SI value is capped at 2**63-1. Two quantities mean the same
amount exactly when their :func:`parse_quantity` values are equal, whatever their spelling: ``1000m`` ==
``1``, ``1000M`` == ``1G``, ``2048Mi`` == ``2Gi``, ``0.5`` == ``500m``.
"""

from __future__ import annotations

import re
from decimal import ROUND_UP, Context, Decimal, InvalidOperation

__all__ = ["QuantityError", "parse_quantity", "quantities_equal"]

_QUANTITY_RE = re.compile(
    r"""
    ^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))
     (?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$
    """,
    re.VERBOSE,
)

_BINARY_SI: dict[str, int] = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SI: dict[str, int] = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# Enough digits to hold any accepted value exactly at nano resolution (exponents are limited to +-1000).
_CONTEXT = Context(prec=4000)
_NANO = Decimal("1e-9")
_MAX_BINARY = Decimal(2**63 - 1)


class QuantityError(ValueError):
    """A value that is not a valid Kubernetes quantity."""


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """Return the exact value of a Kubernetes quantity in base units (cores, bytes, ...).

    Args:
        value: a quantity string such as ``"500m"``, ``"2Gi"``, ``"1e3"``; or a number as YAML/JSON
            decodes an unquoted quantity (``1``, ``0.5``). Booleans are rejected.

    Returns:
        The value as a :class:`~decimal.Decimal`, rounded away from zero to a multiple of 1e-9 and, for
        binary-SI suffixes, capped at 2**63-1 (both as the API server's ``ParseQuantity`` does).

    Raises:
        QuantityError: when ``value`` is not a quantity (empty, unknown suffix such as ``"1K"``, two
            signs, spaces, a boolean, NaN/infinity, ...). The message quotes the bad value.

    Source: k8s.io/apimachinery/pkg/api/resource/quantity.go (grammar, suffix tables, rounding).
    """
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is a boolean, not a quantity")
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise QuantityError(f"{value!r} is not a finite quantity")
        amount = value
        binary = False
    elif isinstance(value, int | float):
        text = repr(value)
        if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
            raise QuantityError(f"{text} is not a finite quantity")
        return parse_quantity(text)
    elif isinstance(value, str):
        match = _QUANTITY_RE.match(value)
        if match is None:
            raise QuantityError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 1Gi, 1e3)")
        try:
            amount = Decimal(match.group("number"))
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid numbers
            raise QuantityError(f"{value!r} has an invalid number") from exc
        suffix = match.group("suffix") or ""
        binary = suffix in _BINARY_SI
        if binary:
            amount = _CONTEXT.multiply(amount, Decimal(2 ** _BINARY_SI[suffix]))
        elif suffix in _DECIMAL_SI:
            amount = amount.scaleb(_DECIMAL_SI[suffix], _CONTEXT)
        elif suffix:
            exponent = int(suffix[1:])
            if abs(exponent) > 1000:
                raise QuantityError(f"{value!r} has an exponent out of range")
            amount = amount.scaleb(exponent, _CONTEXT)
    else:
        raise QuantityError(f"{value!r} ({type(value).__name__}) is not a quantity")

    negative = amount < 0
    magnitude = -amount if negative else amount
    if magnitude != 0:
        try:
            magnitude = magnitude.quantize(_NANO, rounding=ROUND_UP, context=_CONTEXT)
        except InvalidOperation as exc:
            raise QuantityError(f"{value!r} is too large to be a quantity") from exc
    if binary and magnitude > _MAX_BINARY:
        magnitude = _MAX_BINARY
    result = -magnitude if negative else magnitude
    return result.normalize(_CONTEXT) if result != 0 else Decimal(0)


def quantities_equal(a: str | int | float | Decimal, b: str | int | float | Decimal) -> bool:
    """True when two quantities denote the same amount (``"1000m"`` and ``1``; ``"2048Mi"`` and ``"2Gi"``).

    Raises:
        QuantityError: when either value is not a quantity (see :func:`parse_quantity`).
    """
    return parse_quantity(a) == parse_quantity(b)
