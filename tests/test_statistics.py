"""rlsys_agents.statistics: bootstrap intervals (rliable's stratified method via scipy), IQM,
probability of improvement."""
import numpy as np
import pytest
from scipy.stats import bootstrap as scipy_bootstrap, mannwhitneyu, trim_mean

from rlsys_agents import statistics as S


def test_one_run_interval_is_scipys_percentile_bootstrap_over_episodes():
    x = np.random.default_rng(1).normal(10.0, 2.0, 25)
    ours = S.mean_interval(x, reps=20_000, seed=3)
    ref = scipy_bootstrap((x,), np.mean, n_resamples=20_000, method="percentile", rng=np.random.default_rng(9))
    assert ours.point == pytest.approx(x.mean())
    # different random draws: equal up to Monte Carlo error (sd of a 2.5 % quantile ~ 0.02 here)
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.08)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.08)


def test_intervals_are_deterministic_per_seed_and_cover_the_true_mean():
    rng = np.random.default_rng(0)
    m = rng.normal(0.0, 1.0, (3, 10))
    assert S.iqm_interval(m, seed=5) == S.iqm_interval(m, seed=5)
    covered = 0
    for _ in range(200):
        est = S.mean_interval(rng.normal(5.0, 1.0, (1, 30)), reps=1000, seed=int(rng.integers(1 << 30)))
        covered += est.low <= 5.0 <= est.high
    assert 0.88 <= covered / 200 <= 0.99         # nominal 95 % (percentile intervals run a little narrow)


def test_iqm_is_the_25_percent_trimmed_mean_and_ignores_an_outlier():
    m = np.array([[1.0, 2, 3, 4], [5, 6, 7, 1000]])
    assert S.iqm_interval(m).point == pytest.approx(trim_mean(m.ravel(), 0.25)) == pytest.approx(4.5)
    assert S.mean_interval(m).point == pytest.approx(m.mean())


def test_seeds_are_resampled_within_episodes():
    # two training seeds that differ everywhere: resampling episodes alone would give no spread
    m = np.array([[1.0] * 12, [3.0] * 12])
    est = S.mean_interval(m)
    assert est.point == 2.0 and est.low < 1.9 and est.high > 2.1
    # one run on one episode: no interval
    single = S.mean_interval([[4.0]])
    assert single.point == 4.0 and not single.has_interval


def test_probability_of_improvement_is_rliables_mann_whitney_average():
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 4, (3, 6)).astype(float), rng.integers(0, 4, (2, 6)).astype(float)
    expected = np.mean([mannwhitneyu(x[:, j], y[:, j]).statistic / (3 * 2) for j in range(6)])
    est = S.probability_of_improvement(x, y)
    assert est.point == pytest.approx(expected) and est.low <= est.point <= est.high
    # lower is better: the other way round
    assert S.probability_of_improvement(x, y, higher_is_better=False).point == pytest.approx(1 - expected)
    better = S.probability_of_improvement(y[:1] + 10, y[:1])
    assert better.as_list() == [1.0, 1.0, 1.0]
    assert S.probability_of_improvement(y[:1], y[:1]).point == 0.5


def test_compare_picks_the_best_baseline_and_reports_gaps():
    rng = np.random.default_rng(4)
    eps = 15
    base = {"cost": list(rng.uniform(90, 110, eps))}
    results = {"policy": [{"cost": list(np.array(base["cost"]) - rng.uniform(1, 3, eps))} for _ in range(3)],
               "good": [{"cost": list(np.array(base["cost"]) + 1)}],
               "bad": [{"cost": list(np.array(base["cost"]) + 20)}], "ref": [base]}
    cmp = S.compare(results, ["cost"], ["policy"], ["good", "bad", "ref"], objective="cost", higher_is_better=False,
                    reference="ref", gap_metrics=["cost"], reps=2000)
    assert cmp.best_baseline == "ref"
    imp = cmp.improvement["policy"]
    assert imp["over"] == "ref" and imp["probability"].point == 1.0
    assert cmp.rows["policy"]["cost"]["runs"] == 3 and cmp.rows["policy"]["cost"]["tasks"] == eps
    gap = cmp.rows["bad"]["gap_cost"]["mean"]
    assert 0.15 < gap.low <= gap.point <= gap.high < 0.25
    text = S.format_comparison(cmp, title="t")
    assert "| cost | policy | 3 x 15 |" in text and "| policy | ref | 1.000 | [1.000, 1.000] |" in text
    assert "cost gap" in text and "lower is better" in text
    js = cmp.to_json()
    assert js["best_baseline"] == "ref" and len(js["estimates"]["policy"]["cost"]["mean"]) == 3


def test_bad_scores_are_refused():
    with pytest.raises(ValueError, match="same tasks"):
        S.mean_interval([[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError, match="finite"):
        S.mean_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="different numbers of tasks"):
        S.probability_of_improvement([[1.0, 2.0]], [[1.0, 2.0, 3.0]])


def test_plot_writes_a_png(tmp_path):
    results = {"a": [{"m": [1.0, 2.0, 3.0]}], "b": [{"m": [2.0, 3.0, 4.0]}, {"m": [2.5, 3.5, 4.5]}]}
    cmp = S.compare(results, ["m"], ["b"], ["a"], objective="m", reference="a", gap_metrics=["m"], reps=500)
    S.plot_comparison(cmp, tmp_path / "c.png", "title")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
