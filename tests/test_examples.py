"""The main job: the digits example reaches >= 96% test accuracy within 30 epochs."""

from fastnn.examples import digits


def test_digits_example_reaches_target(capsys):
    accuracy = digits.main(["--epochs", "30", "--verbose", "0"])
    out = capsys.readouterr().out
    assert accuracy >= 0.96
    assert "test accuracy" in out and "time per epoch" in out
