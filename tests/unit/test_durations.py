import pytest

from llmrelay.gateway.durations import seconds, window_start


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("1d", 86400), ("30d", 2_592_000), ("2w", 1_209_600), ("1mo", 2_592_000)],
)
def test_durations(text: str, expected: int) -> None:
    assert seconds(text) == expected


@pytest.mark.parametrize("text", ["", "30", "h", "1.5h", "-1d", "0s", "1 y", "1dd", 30])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        seconds(text)  # type: ignore[arg-type]


def test_budget_windows_run_back_to_back_from_creation() -> None:
    assert window_start(1000, None, 5000) == 0
    assert window_start(1000, 60, 1000) == 1000
    assert window_start(1000, 60, 1059.9) == 1000
    assert window_start(1000, 60, 1060) == 1060
    assert window_start(1000, 60, 1000 + 60 * 7 + 5) == 1000 + 60 * 7
