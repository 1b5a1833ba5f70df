from hypercare.detection.forecast import forecast_breach


def test_rising_trend_projects_the_crossing() -> None:
    points = [(float(t), 100.0 + 10.0 * t) for t in range(0, 60, 5)]  # +10 ms per second
    f = forecast_breach(points, limit=1000.0)
    assert f is not None
    assert abs(f.breach_at - 90.0) < 1e-6
    assert abs(f.slope_per_minute - 600.0) < 1e-6
    assert f.r_squared > 0.99


def test_no_forecast_for_flat_falling_noisy_far_or_already_crossed() -> None:
    flat = [(float(t), 100.0) for t in range(10)]
    falling = [(float(t), 100.0 - t) for t in range(10)]
    noisy = [(float(t), 100.0 + (50 if t % 2 else -50) + 0.1 * t) for t in range(10)]
    slow = [(float(t), 100.0 + 0.001 * t) for t in range(10)]
    crossed = [(float(t), 900.0 + 50 * t) for t in range(10)]
    for points in (flat, falling, noisy, slow, crossed, flat[:3]):
        assert forecast_breach(points, limit=1000.0) is None
