"""Pure tests of duration parsing and retry backoff: no loop, no database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from durable.durations import parse_duration
from durable.retry import RetryPolicy


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10),
        ("5m", 300),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1y", 365 * 86400),
        ("2y", 2 * 365 * 86400),
        ("1.5s", 1.5),
        ("0s", 0),
        (3, 3),
        (0.25, 0.25),
        (timedelta(minutes=2), 120),
        ({"amount": 1, "unit": "hours"}, 3600),
        ({"amount": 2, "unit": "days"}, 172800),
        ({"amount": 1, "unit": "years"}, 365 * 86400),
    ],
)
def test_parse_duration_accepts_documented_forms(value: object, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        "-1s",
        "5 parsecs",
        None,
        "",
        "s",
        "1x",
        "1yr",
        "y",
        -1,
        float("nan"),
        float("inf"),
        True,
        {"amount": 1},
        {"amount": "1", "unit": "hours"},
        {"amount": 1, "unit": "fortnights"},
        [1, "s"],
        timedelta(seconds=-1),
    ],
)
def test_parse_duration_rejects_bad_values_naming_them(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(value)


def test_retry_backoff_is_exponential_and_capped() -> None:
    policy = RetryPolicy(
        max_attempts=6, initial_interval="1s", backoff_coefficient=2.0, maximum_interval="5s"
    )
    assert [policy.delay_after(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_retry_non_retryable_by_type_and_name() -> None:
    policy = RetryPolicy(non_retryable=[KeyError, "PermissionError"])
    assert not policy.is_retryable(KeyError("x"))
    assert not policy.is_retryable(PermissionError("x"))
    assert policy.is_retryable(ValueError("x"))


def test_retry_policy_validates() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="invalid duration"):
        RetryPolicy(initial_interval="soon")


def test_retry_policy_should_retry_must_be_callable() -> None:
    with pytest.raises(TypeError, match="should_retry"):
        RetryPolicy(should_retry="yes")  # type: ignore[arg-type]
    policy = RetryPolicy(should_retry=lambda error, attempt: True)
    assert policy.should_retry is not None
    assert "should_retry=" in repr(policy)


def test_may_retry_is_bounded_by_max_attempts_and_non_retryable() -> None:
    policy = RetryPolicy(max_attempts=3, non_retryable=[KeyError])
    assert policy.may_retry(2, ValueError("x"))
    assert not policy.may_retry(3, ValueError("x"))
    assert not policy.may_retry(1, KeyError("x"))
