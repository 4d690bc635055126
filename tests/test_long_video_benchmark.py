"""benchmarks/long_video.py's bookkeeping, without measuring anything: the linear predictions in frames, the
memory and time guards (which configurations run, which read "does not fit"), the table and the plot."""

import argparse

import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("long_video")


def options(**overrides) -> argparse.Namespace:
    values = {
        "widths": "tiny",
        "frames": [32, 64, 128],
        "max_memory_gib": 10.0,
        "max_step_seconds": float("inf"),
        "rounds": 1,
        "steps": 1,
        "plot": "",
    }
    return argparse.Namespace(**{**values, **overrides})


def test_predictions_are_linear_in_frames(bench):
    two = {
        32: {"peak_gib": 4.0, "step_gib": 2.0, "seconds": 10.0},
        64: {"peak_gib": 6.0, "step_gib": 4.0, "seconds": 30.0},
    }
    # Through (32, 4) and (64, 6): 2 GiB + 1/16 GiB per frame; time through (32, 10) and (64, 30).
    assert bench.predict(two, "peak_gib", 128) == pytest.approx(10.0)
    assert bench.predict(two, "seconds", 128) == pytest.approx(70.0)
    assert bench.frames_within(two, 24.0) == 352  # 2 + 352 / 16 = 24
    # One count: the step's growth (2 GiB at 32 frames) scales with frames on top of the rest (2 GiB); time
    # scales from zero.
    one = {32: two[32]}
    assert bench.predict(one, "peak_gib", 64) == pytest.approx(6.0)
    assert bench.predict(one, "seconds", 96) == pytest.approx(30.0)
    assert bench.frames_within(one, 10.0) == 128  # 2 + 128 / 16 = 10
    assert bench.predict({}, "peak_gib", 32) is None and bench.frames_within({}, 10.0) is None


def test_configurations_predicted_over_the_limits_are_not_run(bench, monkeypatch):
    calls = []

    def fake_worker(worker_args, limit_gib):
        frames, mask = int(worker_args[1]), float(worker_args[2])
        calls.append((frames, mask, worker_args[3]))
        per_frame = 0.1 if mask == 0 else 0.025  # GiB per frame: 1 + 3.2 at 32 frames, 1 + 6.4 at 64 (mask 0)
        return {
            "seconds": frames / 8,
            "peak_gib": 1 + per_frame * frames,
            "step_gib": per_frame * frames,
            "trainable_m": 1,
        }

    monkeypatch.setattr(bench, "run_worker", fake_worker)
    monkeypatch.setattr(bench, "available_gib", lambda: 100.0)
    results = bench.measure_all(options())
    # Mask 0 at 128 frames is predicted at 1 + 12.8 GiB > 10: never started; mask 0.75 (1 + 3.2 GiB) runs.
    assert (128, 0.0, "full") not in calls and (128, 0.75, "full") in calls and len(calls) == 10
    assert results[(128, 0.0, "full")]["skipped"] == "does not fit (> 10 GiB)"
    assert results[(128, 0.0, "frozen")]["peak_gib"] == pytest.approx(13.8)
    assert results[(64, 0.0, "full")]["peak_gib"] == pytest.approx(7.4)

    calls.clear()
    results = bench.measure_all(options(max_step_seconds=10.0))  # 64 frames take 8 s, 128 frames 16 s
    assert {frames for frames, _, _ in calls} == {32, 64}
    assert results[(128, 0.75, "frozen")]["skipped"] == "not run (> 10 s)"
    assert results[(128, 0.75, "frozen")]["seconds"] == pytest.approx(16.0)


def test_a_run_stopped_by_the_watchdog_does_not_fit(bench, monkeypatch):
    monkeypatch.setattr(bench, "run_worker", lambda worker_args, limit_gib: {"stopped_gib": limit_gib + 0.1})
    monkeypatch.setattr(bench, "available_gib", lambda: 100.0)
    results = bench.measure_all(options(frames=[32]))
    assert {row["skipped"] for row in results.values()} == {"does not fit (passed 10 GiB)"}
    monkeypatch.setattr(bench, "available_gib", lambda: 5.0)  # the machine, not the option, was the limit
    results = bench.measure_all(options(frames=[32]))
    assert all("all the machine had free" in row["skipped"] for row in results.values())


def test_the_table_has_ratios_to_the_baseline_and_the_longest_clips(bench, capsys, tmp_path):
    row = {"trainable_m": 1.0, "step_gib": 1.0}
    results = {
        (32, 0.0, "full"): {**row, "seconds": 10.0, "peak_gib": 4.0},
        (64, 0.0, "full"): {**row, "seconds": 25.0, "peak_gib": 6.0},
        (128, 0.0, "full"): {"skipped": "does not fit (> 10 GiB)", "seconds": 55.0, "peak_gib": 10.0},
        (32, 0.75, "frozen"): {**row, "seconds": 2.0, "peak_gib": 2.0},
    }
    bench.report(results, options(max_memory_gib=10.0))
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[-2:] == ["1.00x", "1.00x"]  # 32 frames / mask 0 / full, the baseline
    assert lines[3].split()[-2:] == ["0.20x", "0.50x"]  # 32 frames / mask 0.75 / frozen
    assert lines[4].split()[-2:] == ["2.50x", "1.50x"]
    assert lines[5].split()[3:7] == ["~55", "~10.0", "~5.5x", "~2.5x"] and "does not fit" in lines[5]
    assert any("mask 0.00, full    64 frames measured; ~128 frames" in line for line in lines)
    # matplotlib comes with the test extra (bench): a missing one fails here rather than skipping the plot
    bench.plot(results, options(plot=str(tmp_path / "plot.png")))
    assert (tmp_path / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("override", "option"),
    [
        ({"frames": [32, 0]}, "--frames"),
        ({"frames": [32, 32]}, "--frames"),
        ({"max_memory_gib": 0.0}, "--max_memory_gib"),
        ({"max_step_seconds": -1.0}, "--max_step_seconds"),
        ({"rounds": 0}, "--rounds"),
        ({"steps": 0}, "--steps"),
    ],
)
def test_bad_options_are_refused_before_any_measurement(bench, override, option):
    with pytest.raises(ValueError, match=option):
        bench.check_args(options(**override))
