"""The workload generator: arrival processes, stopping rules, length
distributions, named random streams and the validation of ``workload.*``.

Statistical tests follow the project rule: the tolerance is the sampling
error. Each estimate comes with a standard error (SE), taken from the sample
itself (or from theory where the distribution is known exactly), and the test
asserts ``|estimate - truth| <= 4 SE`` *and* that SE is small next to the
quantity (at most 1% of it), so a passing test has the power to catch a wrong
rate, scale, bound or parameterisation. Seeds are fixed, so every outcome is
deterministic; the sample sizes keep the whole file to a few seconds.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

import simulator
from simulator.workload import Workload, generate
from tests.conftest import SHARED

Z = 4.0  # tolerance, in standard errors
POWER = 0.01  # the largest SE allowed, relative to the quantity estimated


@functools.lru_cache(maxsize=1)
def _base():
    """The packaged default scenario, composed by hydra once per session."""
    return simulator.compose([])


def workload(*overrides: str) -> Workload:
    """Generate the workload of the default scenario with ``key=value`` overrides.

    The overrides go through :func:`simulator.load_config` (so through
    validation) on a once-composed base; re-running hydra for each of the
    many configs here would dominate the file's runtime. The validation tests
    below use the full hydra path.
    """
    return generate(simulator.load_config(list(overrides), config=_base()))


def gaps(w: Workload) -> np.ndarray:
    return np.diff(w.arrival_s, prepend=0.0)


def phi(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def assert_close(estimate: float, truth: float, se: float, *, scale: float | None = None) -> None:
    """|estimate - truth| <= Z*SE, and SE <= POWER * |scale| (scale defaults to truth)."""
    scale = abs(truth if scale is None else scale)
    assert se <= POWER * scale, f"experiment too small: SE={se:.3g} vs {POWER:.0%} of {scale:.4g}"
    assert abs(estimate - truth) <= Z * se, f"estimate {estimate:.6g} vs truth {truth:.6g} (SE {se:.3g})"


def mean_and_se(x: np.ndarray) -> tuple[float, float]:
    x = np.asarray(x, dtype=float)
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))


def cv_and_se(x: np.ndarray, batches: int = 50) -> tuple[float, float]:
    """Coefficient of variation of ``x``, with its SE by batch means.

    The sample is cut into ``batches`` equal consecutive batches; the spread of
    the per-batch CVs, divided by sqrt(batches), estimates the SE of the CV of
    the whole sample (the gaps are i.i.d., so batches are independent).
    """
    x = np.asarray(x, dtype=float)
    b = x[: len(x) // batches * batches].reshape(batches, -1)
    per_batch = b.std(axis=1, ddof=1) / b.mean(axis=1)
    return float(x.std(ddof=1) / x.mean()), float(per_batch.std(ddof=1) / math.sqrt(batches))


def fraction_and_se(hits: np.ndarray, p_true: float) -> tuple[float, float]:
    """An observed proportion and its binomial SE under the true p."""
    n = len(hits)
    return float(np.mean(hits)), math.sqrt(p_true * (1 - p_true) / n)


# --------------------------------------------------------------------------- arrivals


RATE = 5.0  # deliberately not 1, so a rate/scale mix-up (gap = rate) shows


def test_poisson_mean_gap_and_cv():
    w = workload("workload.arrival=poisson", f"workload.rate={RATE}", "workload.num_requests=200000")
    g = gaps(w)
    m, se_m = mean_and_se(g)
    assert_close(m, 1 / RATE, se_m)
    cv, se = cv_and_se(g)
    assert_close(cv, 1.0, se)


def test_poisson_gaps_are_exponential():
    """CV 1 alone does not make a Poisson process: check a tail of the gap law.

    For exponential gaps P(gap > 1/rate) = 1/e exactly.
    """
    w = workload("workload.arrival=poisson", f"workload.rate={RATE}", "workload.num_requests=200000")
    p = math.exp(-1.0)
    frac, se = fraction_and_se(gaps(w) > 1 / RATE, p)
    assert_close(frac, p, se)


@pytest.mark.parametrize("cv,n", [(0.5, 100_000), (3.0, 400_000)])
def test_gamma_mean_gap_and_cv(cv, n):
    """Mean gap 1/rate and the requested CV (not sqrt(cv), not cv**2)."""
    w = workload("workload.arrival=gamma", f"workload.cv={cv}", f"workload.rate={RATE}", f"workload.num_requests={n}")
    g = gaps(w)
    m, se_m = mean_and_se(g)
    assert_close(m, 1 / RATE, se_m)
    est, se = cv_and_se(g)
    assert_close(est, cv, se)


def test_constant_gaps_are_exact():
    # rate 4 -> gap 0.25, exactly representable: every partial sum is exact.
    w = workload("workload.arrival=constant", "workload.rate=4", "workload.num_requests=10000")
    expected = np.arange(1, 10001) * 0.25
    assert np.array_equal(w.arrival_s, expected)
    assert np.all(gaps(w) == 0.25)


def test_constant_gaps_other_rate():
    # rate 3: 1/3 is not representable; gaps agree to floating-point rounding
    # of the running sum (a few ulps of the largest time), nothing more.
    n = 10000
    w = workload("workload.arrival=constant", "workload.rate=3", f"workload.num_requests={n}")
    ulp = np.spacing(w.arrival_s[-1])
    assert np.max(np.abs(w.arrival_s - np.arange(1, n + 1) / 3.0)) <= n * ulp
    assert np.max(np.abs(gaps(w) - 1 / 3.0)) <= 4 * ulp


@pytest.mark.parametrize("arrival", ["poisson", "gamma", "constant"])
def test_arrivals_sorted_and_positive(arrival):
    w = workload(f"workload.arrival={arrival}", "workload.cv=3", "workload.num_requests=20000")
    a = w.arrival_s
    assert a.dtype == np.float64
    assert a[0] > 0
    assert np.all(np.diff(a) >= 0)
    assert np.all(np.isfinite(a))


# --------------------------------------------------------------------------- stopping


@pytest.mark.parametrize("n", [1, 7, 4096, 4097, 10000])  # 4096 is the generator's chunk size
def test_num_requests_exact(n):
    w = workload(f"workload.num_requests={n}")
    assert len(w) == len(w.arrival_s) == len(w.prompt_tokens) == len(w.output_tokens) == n


def test_duration_poisson_count():
    rate, horizon = 100.0, 1000.0
    w = workload(
        "workload.arrival=poisson",
        f"workload.rate={rate}",
        "workload.num_requests=null",
        f"workload.duration_s={horizon}",
    )
    assert np.all(w.arrival_s < horizon)
    assert len(w.prompt_tokens) == len(w.output_tokens) == len(w)
    # N(T) ~ Poisson(rate*T): SE = sqrt(rate*T), 0.3% of the mean here.
    expected = rate * horizon
    assert_close(len(w), expected, math.sqrt(expected))
    # The process runs right up to the horizon: the gap left after the last
    # arrival is Exp(rate), so it exceeds 20/rate with probability e^-20.
    assert horizon - w.arrival_s[-1] < 20 / rate


def test_duration_is_exclusive_deterministic():
    """Constant arrivals at 0.25, 0.5, ...: those before T, never at T."""
    base = ["workload.arrival=constant", "workload.rate=4", "workload.num_requests=null"]
    w = workload(*base, "workload.duration_s=10")
    assert len(w) == 39 and w.arrival_s[-1] == 9.75
    w = workload(*base, "workload.duration_s=10.1")
    assert len(w) == 40 and w.arrival_s[-1] == 10.0


def test_both_limits_whichever_first():
    base = ["workload.arrival=constant", "workload.rate=4"]
    w = workload(*base, "workload.num_requests=10", "workload.duration_s=100")
    assert len(w) == 10 and w.arrival_s[-1] == 2.5
    w = workload(*base, "workload.num_requests=1000", "workload.duration_s=10")
    assert len(w) == 39 and np.all(w.arrival_s < 10)
    # Poisson, both ways round.
    w = workload("workload.rate=10", "workload.num_requests=500", "workload.duration_s=1e6")
    assert len(w) == 500
    w = workload("workload.rate=10", "workload.num_requests=100000", "workload.duration_s=100")
    assert 0 < len(w) < 100000 and np.all(w.arrival_s < 100)


# --------------------------------------------------------------------------- lengths


@pytest.mark.parametrize("which", ["prompt_tokens", "output_tokens"])
def test_fixed_lengths(which):
    w = workload(f"workload.{which}.dist=fixed", f"workload.{which}.value=37", "workload.num_requests=5000")
    x = getattr(w, which)
    assert x.dtype == np.int64
    assert np.all(x == 37)


@pytest.mark.parametrize("which", ["prompt_tokens", "output_tokens"])
def test_uniform_inclusive(which):
    low, high, n = 3, 7, 100_000
    w = workload(
        f"workload.{which}.dist=uniform",
        f"workload.{which}.low={low}",
        f"workload.{which}.high={high}",
        f"workload.num_requests={n}",
    )
    x = getattr(w, which)
    assert x.dtype == np.int64
    assert set(np.unique(x).tolist()) == set(range(low, high + 1))  # both ends, nothing outside
    k = high - low + 1
    for v in range(low, high + 1):  # each value has probability 1/k (an off-by-one gives 1/(k-1) or 0)
        frac, se = fraction_and_se(x == v, 1 / k)
        assert_close(frac, 1 / k, se)
    m, se = mean_and_se(x)
    assert_close(m, (low + high) / 2, se)


def test_uniform_single_point():
    w = workload("workload.prompt_tokens.dist=uniform", "workload.prompt_tokens.low=9", "workload.prompt_tokens.high=9")
    assert np.all(w.prompt_tokens == 9)


@pytest.mark.parametrize("which", ["prompt_tokens", "output_tokens"])
def test_lognormal_log_moments_unclipped(which):
    """log(x) ~ N(ln median, sigma): its mean is ln(median), not ln(mean).

    Bounds far out (the clip never fires) and a median of 1000 (rounding to an
    integer moves log(x) by < 0.5/x, which averages out) keep the law exact.
    A median/mean confusion would shift the log-mean by sigma^2/2 = 0.125,
    about 80 SE.
    """
    median, sigma, n = 1000.0, 0.5, 100_000
    w = workload(
        f"workload.{which}.dist=lognormal",
        f"workload.{which}.median={median}",
        f"workload.{which}.sigma={sigma}",
        f"workload.{which}.min=1",
        f"workload.{which}.max=60000",
        f"workload.num_requests={n}",
        "scheduler.policy=chunked_prefill",  # prompts beyond continuous batching's token budget are fine here
    )
    x = getattr(w, which)
    assert x.dtype == np.int64
    assert x.min() > 1 and x.max() < 60000  # really unclipped
    lx = np.log(x)
    assert_close(float(lx.mean()), math.log(median), sigma / math.sqrt(n))
    # SE of a normal sample's standard deviation: sigma / sqrt(2 (n - 1)).
    assert_close(float(lx.std(ddof=1)), sigma, sigma / math.sqrt(2 * (n - 1)))


def test_lognormal_clipping_piles_mass_at_bounds():
    """Clipped draws land on min and max, in the proportions the law predicts.

    x = rint(lognormal) clipped to [50, 200]: P(x == 50) = P(draw < 50.5) and
    P(x == 200) = P(draw >= 199.5).
    """
    median, sigma, lo, hi, n = 100.0, 1.0, 50, 200, 100_000
    w = workload(
        "workload.prompt_tokens.dist=lognormal",
        f"workload.prompt_tokens.median={median}",
        f"workload.prompt_tokens.sigma={sigma}",
        f"workload.prompt_tokens.min={lo}",
        f"workload.prompt_tokens.max={hi}",
        f"workload.num_requests={n}",
    )
    x = w.prompt_tokens
    assert x.min() == lo and x.max() == hi
    p_lo = phi(math.log((lo + 0.5) / median) / sigma)
    p_hi = 1.0 - phi(math.log((hi - 0.5) / median) / sigma)
    frac, se = fraction_and_se(x == lo, p_lo)
    assert_close(frac, p_lo, se)
    frac, se = fraction_and_se(x == hi, p_hi)
    assert_close(frac, p_hi, se)


def test_lognormal_sigma_zero_is_the_median():
    w = workload(
        "workload.output_tokens.dist=lognormal",
        "workload.output_tokens.median=129",
        "workload.output_tokens.sigma=0",
        "workload.output_tokens.min=1",
        "workload.output_tokens.max=2048",
        "workload.num_requests=1000",
    )
    assert np.all(w.output_tokens == 129)


EMPIRICAL_Q = [0, 0.2, 0.5, 0.9, 1]
EMPIRICAL_V = [10, 100, 120, 1000, 5000]


def _empirical(which: str, n: int, q=EMPIRICAL_Q, v=EMPIRICAL_V) -> np.ndarray:
    return getattr(
        workload(
            f"workload.{which}.dist=empirical",
            f"workload.{which}.quantiles=[{','.join(map(str, q))}]",
            f"workload.{which}.tokens=[{','.join(map(str, v))}]",
            f"workload.num_requests={n}",
        ),
        which,
    )


@pytest.mark.parametrize("which", ["prompt_tokens", "output_tokens"])
def test_empirical_draws_hit_the_table_quantiles(which):
    """P(x <= values[i]) = quantiles[i] at every interior knot, and the range is the table's.

    Draws are rint(inverse CDF) of a continuous uniform, so P(x <= v) for an
    integer knot v is P(u <= F(v + 0.5)), which is q + (q_next - q) * 0.5 /
    (v_next - v) just above the knot.
    """
    n = 200_000
    x = _empirical(which, n)
    assert x.dtype == np.int64 and x.min() == 10 and x.max() == 5000
    for i in range(1, len(EMPIRICAL_Q) - 1):
        q, v = EMPIRICAL_Q[i], EMPIRICAL_V[i]
        p = q + (EMPIRICAL_Q[i + 1] - q) * 0.5 / (EMPIRICAL_V[i + 1] - v)
        frac, se = fraction_and_se(x <= v, p)
        assert_close(frac, p, se)


def test_empirical_mean_matches_the_table():
    """The sample mean is the area under the piecewise-linear inverse CDF (lengths.mean)."""
    from types import SimpleNamespace

    from simulator.workload.lengths import mean

    n = 200_000
    x = _empirical("prompt_tokens", n)
    truth = mean(SimpleNamespace(dist="empirical", quantiles=EMPIRICAL_Q, tokens=EMPIRICAL_V))
    assert truth == pytest.approx(0.2 * 55 + 0.3 * 110 + 0.4 * 560 + 0.1 * 3000)
    m, se = mean_and_se(x)
    assert_close(m, truth, se)


def test_fit_empirical_returns_observed_quantiles():
    from simulator.workload.lengths import fit_empirical

    t = fit_empirical(np.arange(1, 101), (0, 0.5, 1))
    assert t == {"quantiles": [0.0, 0.5, 1.0], "tokens": [1, 50, 100]}
    with pytest.raises(ValueError, match="no lengths"):
        fit_empirical(np.array([], dtype=np.int64))


@pytest.mark.skipif(not (SHARED / "traces/azure_conv_2023").exists(), reason="needs ../shared")
def test_default_chat_workload_is_the_azure_conversation_fit():
    """scenarios/workload/chat.yaml holds exactly what `servesim-trace fit` prints for the
    Azure 2023 conversation trace, and draws from it match the trace's mean and tails."""
    from simulator.tracecli import fit_yaml
    from simulator.workload.traces import describe, read

    trace = read(str(SHARED / "traces/azure_conv_2023/AzureLLMInferenceTrace_conv.csv"), "auto")
    printed = fit_yaml(trace, describe(trace))
    cfg = _base().workload
    for key in ("prompt_tokens", "output_tokens"):
        spec = getattr(cfg, key)
        assert spec.dist == "empirical"
        assert f"  tokens: [{', '.join(map(str, spec.tokens))}]" in printed
        x = getattr(workload("workload.num_requests=100000"), key)
        observed = getattr(trace, key)
        m, se = mean_and_se(x)
        # the table's own mean differs from the trace's by its interpolation (< 1%)
        assert abs(m - observed.mean()) <= 0.01 * observed.mean() + Z * se
        for q in (0.5, 0.9, 0.99):
            assert np.quantile(x, q) == pytest.approx(np.quantile(observed, q), rel=0.02)


@pytest.mark.parametrize("which", ["prompt_tokens", "output_tokens"])
@pytest.mark.parametrize("mean", [2.5, 50.0])
def test_exponential_lengths(which, mean):
    """Geometric on {1, 2, ...} with the given mean."""
    n = 100_000
    w = workload(f"workload.{which}.dist=exponential", f"workload.{which}.mean={mean}", f"workload.num_requests={n}")
    x = getattr(w, which)
    assert x.dtype == np.int64
    assert x.min() == 1  # support starts at 1, never 0
    m, se = mean_and_se(x)
    assert_close(m, mean, se)
    # Shape, not just the mean: P(x <= k) = 1 - (1 - 1/mean)^k at k = floor(mean).
    k = math.floor(mean)
    p = 1.0 - (1.0 - 1.0 / mean) ** k
    frac, se = fraction_and_se(x <= k, p)
    assert_close(frac, p, se)


def test_exponential_mean_one_is_all_ones():
    w = workload("workload.output_tokens.dist=exponential", "workload.output_tokens.mean=1", "workload.num_requests=1000")
    assert np.all(w.output_tokens == 1)


# --------------------------------------------------------------------------- streams


def _arrays(w: Workload) -> tuple[bytes, bytes, bytes]:
    return w.arrival_s.tobytes(), w.prompt_tokens.tobytes(), w.output_tokens.tobytes()


STOCHASTIC = ["workload.arrival=poisson", "workload.num_requests=5000"]  # chat: lognormal prompt and output


def test_same_seed_same_workload():
    a = workload(*STOCHASTIC, "seed=123")
    b = workload(*STOCHASTIC, "seed=123")
    assert _arrays(a) == _arrays(b)


def test_different_seed_different_workload():
    a = workload(*STOCHASTIC, "seed=123")
    b = workload(*STOCHASTIC, "seed=124")
    for x, y in zip(_arrays(a), _arrays(b)):
        assert x != y


def test_output_distribution_does_not_touch_other_streams():
    a = workload(*STOCHASTIC)
    b = workload(*STOCHASTIC, "workload.output_tokens.dist=exponential", "workload.output_tokens.mean=100")
    assert a.arrival_s.tobytes() == b.arrival_s.tobytes()
    assert a.prompt_tokens.tobytes() == b.prompt_tokens.tobytes()
    assert a.output_tokens.tobytes() != b.output_tokens.tobytes()


def test_prompt_distribution_does_not_touch_other_streams():
    a = workload(*STOCHASTIC)
    b = workload(*STOCHASTIC, "workload.prompt_tokens.dist=uniform", "workload.prompt_tokens.low=1", "workload.prompt_tokens.high=500")
    assert a.arrival_s.tobytes() == b.arrival_s.tobytes()
    assert a.output_tokens.tobytes() == b.output_tokens.tobytes()
    assert a.prompt_tokens.tobytes() != b.prompt_tokens.tobytes()


@pytest.mark.parametrize("change", [["workload.rate=3"], ["workload.arrival=gamma", "workload.cv=2"]])
def test_arrival_process_does_not_touch_lengths(change):
    a = workload(*STOCHASTIC)
    b = workload(*STOCHASTIC, *change)
    assert a.prompt_tokens.tobytes() == b.prompt_tokens.tobytes()
    assert a.output_tokens.tobytes() == b.output_tokens.tobytes()
    assert a.arrival_s.tobytes() != b.arrival_s.tobytes()


def test_streams_are_uncorrelated():
    """Prompt and output with the same law must not share a stream.

    Under independence the sample correlation has SE 1/sqrt(n); a shared
    stream would give correlation 1.
    """
    n = 100_000
    same = [f"workload.{k}.{p}" for k in ("prompt_tokens", "output_tokens") for p in ("dist=uniform", "low=1", "high=1000")]
    w = workload(*same, f"workload.num_requests={n}", "workload.arrival=poisson")
    assert not np.array_equal(w.prompt_tokens, w.output_tokens)
    se = 1 / math.sqrt(n)
    for x, y in [(w.prompt_tokens, w.output_tokens), (gaps(w), w.prompt_tokens), (gaps(w), w.output_tokens)]:
        assert abs(np.corrcoef(x, y)[0, 1]) <= Z * se


# --------------------------------------------------------------------------- rate schedule

SCHEDULE = "workload.rate_schedule=[[0,100],[200,400],[260,100]]"


def test_schedule_counts_per_piece_are_poisson():
    """Each piece holds N ~ Poisson(rate x length) arrivals: SE = sqrt(mean), <= 1% of it here."""
    w = workload(SCHEDULE, "workload.arrival=poisson", "workload.num_requests=null", "workload.duration_s=460")
    edges = [0.0, 200.0, 260.0, 460.0]
    counts = np.histogram(w.arrival_s, bins=edges)[0]
    for count, expected in zip(counts, [100 * 200, 400 * 60, 100 * 200]):
        assert_close(float(count), expected, math.sqrt(expected))
    assert np.all(np.diff(w.arrival_s) >= 0) and w.arrival_s[-1] < 460


def test_schedule_gaps_within_a_piece_are_exponential():
    """Inside the 400 req/s piece the process is Poisson at 400: mean gap 1/400."""
    w = workload(SCHEDULE, "workload.num_requests=null", "workload.duration_s=460")
    inside = w.arrival_s[(w.arrival_s >= 200) & (w.arrival_s < 260)]
    m, se = mean_and_se(np.diff(inside))
    assert_close(m, 1 / 400, se)


def test_one_piece_schedule_is_the_constant_rate():
    """Time rescaling by a constant rate is a change of units: the same draws, rounding aside."""
    a = workload("workload.rate_schedule=[[0,5]]", "workload.num_requests=10000")
    b = workload("workload.rate=5", "workload.num_requests=10000")
    np.testing.assert_allclose(a.arrival_s, b.arrival_s, rtol=1e-12)
    assert a.prompt_tokens.tobytes() == b.prompt_tokens.tobytes()


def test_schedule_constant_arrivals_skip_a_zero_rate_stretch():
    """4 req/s for 10 s, nothing for 10 s, then 2 req/s: 0.25 .. 10.0, then 20.5, 21.0, ...

    The 40th arrival falls exactly where the expected count reaches 40, the
    start of the idle stretch; the next comes half a second after it ends.
    """
    w = workload(
        "workload.arrival=constant", "workload.rate_schedule=[[0,4],[10,0],[20,2]]", "workload.num_requests=44"
    )
    expected = np.concatenate([np.arange(1, 41) * 0.25, 20 + np.arange(1, 5) * 0.5])
    assert np.array_equal(w.arrival_s, expected)
    base = ["workload.arrival=constant", "workload.rate_schedule=[[0,4],[10,0],[20,2]]", "workload.num_requests=null"]
    assert len(workload(*base, "workload.duration_s=20.5")) == 40  # the horizon is exclusive
    assert len(workload(*base, "workload.duration_s=20.6")) == 41


def test_trailing_zero_rate_stops_arrivals():
    """A last rate of 0 ends the process: N ~ Poisson(1000 x 100), all before 100 s, however many are asked for."""
    w = workload("workload.rate_schedule=[[0,1000],[100,0]]", "workload.num_requests=1000000")
    assert np.all(w.arrival_s < 100) and np.all(np.isfinite(w.arrival_s))
    assert_close(float(len(w)), 1e5, math.sqrt(1e5))
    assert len(w.prompt_tokens) == len(w.output_tokens) == len(w)


@pytest.mark.parametrize("n", [1, 4096, 4097, 10000])  # around the generator's chunk size
def test_schedule_num_requests_exact(n):
    w = workload(SCHEDULE, f"workload.num_requests={n}")
    assert len(w) == len(w.prompt_tokens) == n
    assert np.all(np.diff(w.arrival_s) >= 0)


def test_schedule_both_limits_whichever_first():
    w = workload(SCHEDULE, "workload.num_requests=500", "workload.duration_s=1000")
    assert len(w) == 500
    w = workload(SCHEDULE, "workload.num_requests=1000000", "workload.duration_s=250")
    assert 0 < len(w) < 1000000 and np.all(w.arrival_s < 250) and w.arrival_s[-1] > 249


def test_schedule_gamma_keeps_its_cv():
    """Gamma gaps stay gamma in operational time: the CV of the gaps within one piece is cv."""
    w = workload(
        "workload.arrival=gamma", "workload.cv=2", "workload.rate_schedule=[[0,1],[10,1000]]", "workload.num_requests=100000"
    )
    g = np.diff(w.arrival_s[w.arrival_s > 10])
    cv, se = cv_and_se(g)
    assert_close(cv, 2.0, se)


def test_schedule_cumulative_and_inverse():
    from simulator.workload import RateSchedule

    s = RateSchedule.from_config([[0, 10], [300, 40], [360, 0], [400, 10]])
    assert s.cumulative([0, 300, 330, 360, 380, 400, 410]).tolist() == [0, 3000, 4200, 5400, 5400, 5400, 5500]
    assert s.inverse([3000, 4200, 5400, 5500]).tolist() == [300, 330, 360, 410]
    assert np.isinf(RateSchedule.from_config([[0, 10], [5, 0]]).inverse([51.0])).all()


def test_schedule_leaves_lengths_alone():
    a = workload(*STOCHASTIC)
    b = workload(*STOCHASTIC, SCHEDULE)
    assert a.prompt_tokens.tobytes() == b.prompt_tokens.tobytes()
    assert a.output_tokens.tobytes() == b.output_tokens.tobytes()


# --------------------------------------------------------------------------- tiers and tenants

TIERS = "tiers={free: {share: 7}, pro: {share: 3, priority: 1}, internal: {share: 0}}"


def test_tier_shares_are_binomial():
    """Shares are normalised (7:3 is 70%/30%); a zero share gets nothing."""
    n = 100_000
    w = workload(TIERS, f"workload.num_requests={n}")
    assert w.tier is not None and len(w.tier) == n and w.tenant is None
    for name, p in [("free", 0.7), ("pro", 0.3)]:
        frac, se = fraction_and_se(w.tier == name, p)
        assert_close(frac, p, se)
    assert not np.any(w.tier == "internal")


@pytest.mark.parametrize("skew", [0.0, 1.2])
def test_tenants_follow_zipf(skew):
    """Tenant k of N gets traffic k^-skew / sum_j j^-skew, within each tier, names {tier}-{k-1}."""
    n, count = 100_000, 4
    w = workload(TIERS, f"workload.num_requests={n}", f"workload.tenants={count}", f"workload.tenant_skew={skew}")
    weights = np.arange(1, count + 1, dtype=float) ** -skew
    p = weights / weights.sum()
    tier = w.tier.astype(str)
    tenant = w.tenant.astype(str)
    assert np.all(np.char.startswith(tenant, np.char.add(tier, "-")))
    k = np.char.rpartition(tenant, "-")[:, 2].astype(int)
    assert set(np.unique(k).tolist()) == set(range(count))
    for j in range(count):
        frac, se = fraction_and_se(k == j, p[j])
        assert_close(frac, p[j], se)
    if skew > 0:  # Zipf: the first tenant is the busiest, in every tier
        for name in ("free", "pro"):
            counts = np.bincount(k[tier == name], minlength=count)
            assert np.all(np.diff(counts) < 0)


def test_tenants_without_tiers():
    w = workload("workload.tenants=3", "workload.num_requests=3000")
    assert w.tier is None
    assert set(w.tenant.tolist()) == {"tenant-0", "tenant-1", "tenant-2"}


def test_no_labels_by_default():
    w = workload(*STOCHASTIC)
    assert w.tier is None and w.tenant is None and w.think_s is None


def test_labels_are_seeded():
    args = (TIERS, "workload.tenants=5", "workload.tenant_skew=1", "workload.num_requests=5000")
    a, b = workload(*args, "seed=9"), workload(*args, "seed=9")
    assert _arrays(a) == _arrays(b)
    assert a.tier.tolist() == b.tier.tolist() and a.tenant.tolist() == b.tenant.tolist()
    c = workload(*args, "seed=10")
    assert a.tier.tolist() != c.tier.tolist() and a.tenant.tolist() != c.tenant.tolist()


def test_labels_leave_arrivals_and_lengths_alone():
    """Labels come from their own streams, and the new keys at their defaults change nothing."""
    plain = workload(*STOCHASTIC)
    labelled = workload(*STOCHASTIC, TIERS, "workload.tenants=4", "workload.tenant_skew=1")
    assert _arrays(plain) == _arrays(labelled)
    idle = workload(*STOCHASTIC, "workload.users=3", "workload.think_s=9", "workload.retry.max_attempts=4")
    assert _arrays(plain) == _arrays(idle)


def test_default_streams_unchanged():
    """Without a schedule, arrivals and lengths are exactly the draws of their named streams, as before."""
    from simulator.workload.lengths import LENGTHS
    from simulator.workload.rng import stream

    w = workload("workload.arrival=poisson", "workload.rate=7", "workload.num_requests=1000", "seed=4")
    assert w.arrival_s.tobytes() == np.cumsum(stream(4, "arrivals").exponential(1 / 7, size=1000)).tobytes()
    spec = _base().workload.prompt_tokens
    assert w.prompt_tokens.tobytes() == LENGTHS.get(spec.dist).sample(spec, stream(4, "prompt_tokens"), 1000).tobytes()


# --------------------------------------------------------------------------- closed loop


def test_closed_loop_workload_shape():
    """No arrival times (the engine makes them); think times Exp(mean think_s) from their own stream."""
    n, think = 100_000, 4.0
    args = ("workload.arrival=closed_loop", f"workload.num_requests={n}", f"workload.think_s={think}", "workload.users=8")
    w = workload(*args)
    assert len(w) == n and w.arrival_s.dtype == np.float64 and np.isnan(w.arrival_s).all()
    assert w.think_s.dtype == np.float64 and len(w.think_s) == n and (w.think_s >= 0).all()
    m, se = mean_and_se(w.think_s)
    assert_close(m, think, se)
    frac, se = fraction_and_se(w.think_s > think, math.exp(-1.0))  # exponential, not just the right mean
    assert_close(frac, math.exp(-1.0), se)
    # lengths and labels are drawn as for open arrivals
    open_ = workload("workload.arrival=poisson", f"workload.num_requests={n}")
    assert w.prompt_tokens.tobytes() == open_.prompt_tokens.tobytes()
    labelled = workload(*args, TIERS, "workload.tenants=2")
    assert labelled.tier.tolist() == workload(TIERS, f"workload.num_requests={n}").tier.tolist()
    assert labelled.think_s.tobytes() == w.think_s.tobytes()


def test_closed_loop_zero_think_time():
    w = workload("workload.arrival=closed_loop", "workload.think_s=0", "workload.num_requests=10")
    assert np.all(w.think_s == 0)


def test_closed_loop_passes_check_workload():
    from simulator.config.validate import check_workload

    cfg = simulator.load_config(["workload.arrival=closed_loop", "workload.num_requests=50"], config=_base())
    check_workload(cfg, generate(cfg))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "overrides,match",
    [
        # a dist without its parameters: the message names the missing key
        (["workload.prompt_tokens.dist=uniform", "workload.prompt_tokens.low=null", "workload.prompt_tokens.high=5"],
         r"workload\.prompt_tokens\.low.*missing: low"),
        (["workload.output_tokens.dist=exponential", "workload.output_tokens.mean=null"],
         r"workload\.output_tokens\.mean.*missing: mean"),
        (["workload.output_tokens.dist=lognormal", "workload.output_tokens.median=9", "workload.output_tokens.sigma=null",
          "workload.output_tokens.min=1", "workload.output_tokens.max=99"],
         r"workload\.output_tokens\.sigma.*missing: sigma"),
        (["workload.prompt_tokens.dist=fixed", "workload.prompt_tokens.value=null"],
         r"workload\.prompt_tokens\.value.*missing: value"),
        # uniform with low > high
        (["workload.prompt_tokens.dist=uniform", "workload.prompt_tokens.low=10", "workload.prompt_tokens.high=5"],
         r"workload\.prompt_tokens\.low.*low=10, high=5"),
        (["workload.prompt_tokens.dist=uniform", "workload.prompt_tokens.low=0", "workload.prompt_tokens.high=5"],
         r"workload\.prompt_tokens\.low"),
        (["workload.output_tokens.dist=lognormal", "workload.output_tokens.median=50", "workload.output_tokens.sigma=1",
          "workload.output_tokens.min=100", "workload.output_tokens.max=10"], r"workload\.output_tokens\.min"),
        (["workload.output_tokens.dist=exponential", "workload.output_tokens.mean=0.5"], r"workload\.output_tokens\.mean"),
        (["workload.prompt_tokens.dist=fixed", "workload.prompt_tokens.value=0"], r"workload\.prompt_tokens\.value"),
        # empirical tables: matching lists, quantiles 0 .. 1 rising, values never falling
        (["workload.output_tokens.tokens=[1,2]"], r"workload\.output_tokens\.quantiles and .*27 quantiles and 2 tokens"),
        (["workload.output_tokens.quantiles=[0.1,1]", "workload.output_tokens.tokens=[1,2]"],
         r"workload\.output_tokens\.quantiles must rise strictly from 0 to 1.*servesim-trace fit"),
        (["workload.output_tokens.quantiles=[0,0.5,0.5,1]", "workload.output_tokens.tokens=[1,2,3,4]"],
         r"quantiles must rise strictly"),
        (["workload.output_tokens.quantiles=[0,0.5,1]", "workload.output_tokens.tokens=[5,3,9]"],
         r"workload\.output_tokens\.tokens must be token counts >= 1 that never decrease"),
        (["workload.output_tokens.quantiles=[0,1]", "workload.output_tokens.tokens=[0,3]"], r"tokens must be token counts >= 1"),
        # rates and counts
        (["workload.rate=-1"], r"workload\.rate.*-1"),
        (["workload.rate=0"], r"workload\.rate"),
        (["workload.rate=inf"], r"workload\.rate"),
        (["workload.arrival=gamma", "workload.cv=0"], r"workload\.cv"),
        (["workload.arrival=gamma", "workload.cv=-2"], r"workload\.cv.*-2"),
        (["workload.num_requests=0"], r"workload\.num_requests"),
        (["workload.num_requests=null", "workload.duration_s=0"], r"workload\.duration_s"),
        (["workload.num_requests=null", "workload.duration_s=null"], r"workload\.num_requests.*workload\.duration_s"),
        # schedules, closed loop, labels, retries (one test each in test_errors.py)
        (["workload.rate_schedule=[[5,1]]"], r"workload\.rate_schedule\[0\].*start_s=5"),
        (["workload.arrival=closed_loop", "workload.num_requests=null", "workload.duration_s=60"],
         r"workload\.arrival=closed_loop needs workload\.num_requests"),
        (["workload.tenants=-2"], r"workload\.tenants.*-2"),
    ],
)
def test_invalid_workload_rejected(overrides, match):
    with pytest.raises(simulator.ConfigError, match=match):
        simulator.load_config(overrides)


def test_unknown_arrival_lists_allowed():
    with pytest.raises(simulator.ConfigError, match=r"workload\.arrival='bursty'") as e:
        simulator.load_config(["workload.arrival=bursty"])
    for name in ("poisson", "gamma", "constant", "closed_loop", "trace"):
        assert name in str(e.value)


@pytest.mark.parametrize("which", ["prompt_tokens", "output_tokens"])
def test_unknown_dist_lists_allowed(which):
    with pytest.raises(simulator.ConfigError, match=rf"workload\.{which}\.dist='zipf'") as e:
        simulator.load_config([f"workload.{which}.dist=zipf"])
    for name in ("fixed", "uniform", "lognormal", "exponential", "empirical"):
        assert name in str(e.value)


def test_cv_is_only_checked_for_gamma():
    # cv is not read by the other processes, so a nonsense cv there is harmless.
    w = workload("workload.arrival=poisson", "workload.cv=0", "workload.num_requests=10")
    assert len(w) == 10


def test_empty_workload_rejected_by_run():
    overrides = [
        "workload.duration_s=0.001",
        "workload.num_requests=null",
        "workload.rate=0.1",
        "output.charts=false",
        "output.console=false",
    ]
    assert len(workload(*overrides)) == 0  # the config is valid; the sample is empty
    with pytest.raises(simulator.ConfigError, match=r"empty.*workload\.duration_s=0\.001.*workload\.rate=0\.1"):
        simulator.run(overrides)


def test_empty_scheduled_workload_names_the_schedule():
    from simulator.config.validate import check_workload

    cfg = simulator.load_config(
        ["workload.rate_schedule=[[0,0],[10,1]]", "workload.num_requests=null", "workload.duration_s=5"], config=_base()
    )
    with pytest.raises(simulator.ConfigError, match=r"empty.*workload\.rate_schedule=\[\[0,0\],\[10,1\]\]"):
        check_workload(cfg, generate(cfg))


@pytest.mark.parametrize("overrides,says", [
    (["workload.rate_schedule=[[0,10],[300,40],[360,10]]"], r"ended the arrivals at .* before the rate schedule's last change at 360 s"),
    (["workload.duration_s=600"], r"ended the arrivals at .* before workload\.duration_s=600; set workload\.num_requests=null"),
])  # fmt: skip
def test_a_request_count_that_ends_a_schedule_or_duration_early_is_said(overrides, says):
    """2,000 requests at 10 req/s end near 200 s: a spike at 300 s, or a 600 s run, never happens."""
    from simulator.config.validate import check_workload

    cfg = simulator.load_config([*overrides, "workload.num_requests=2000"], config=_base())
    with pytest.warns(UserWarning, match=says):
        check_workload(cfg, generate(cfg))


@pytest.mark.parametrize("overrides", [
    ["workload.duration_s=60", "workload.num_requests=2000"],  # the duration ends it first
    ["workload.rate_schedule=[[0,10],[30,40]]", "workload.num_requests=null", "workload.duration_s=90"],
    ["workload.num_requests=2000"],  # no duration or schedule to fall short of
])  # fmt: skip
def test_no_warning_when_the_request_count_is_not_what_ends_the_scenario(overrides, recwarn):
    from simulator.config.validate import check_workload

    cfg = simulator.load_config(overrides, config=_base())
    check_workload(cfg, generate(cfg))
    assert not [w for w in recwarn if "ended the arrivals" in str(w.message)]


def test_a_cv_without_gamma_arrivals_is_said_to_be_unused():
    with pytest.warns(UserWarning, match=r"workload\.cv=3 shapes workload\.arrival=gamma only"):
        simulator.load_config(["workload.arrival=poisson", "workload.cv=3"], config=_base())
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simulator.load_config(["workload.arrival=gamma", "workload.cv=3"], config=_base())


def test_negative_seed_rejected():
    with pytest.raises(simulator.ConfigError, match=r"\bseed\b"):
        generate(simulator.load_config(["seed=-1", "workload.num_requests=10"]))


# --------------------------------------------------------------------------- runs too big to fit; progress lines


def test_run_that_cannot_fit_is_refused_before_the_workload_is_drawn(monkeypatch):
    """With 1 GB available, a million requests (about 4.5 GB) is refused in one sentence, before generate."""
    import simulator.workload as wl_module

    monkeypatch.setattr(wl_module, "available_memory", lambda: 1e9)

    def never(cfg):  # the refusal must come first: drawing a huge workload is what kills the machine
        raise AssertionError("the workload was generated")

    monkeypatch.setattr(wl_module, "generate", never)
    with pytest.raises(simulator.ConfigError) as info:
        simulator.run(["workload.num_requests=1000000", "output.charts=false", "output.console=false"])
    message = str(info.value)
    assert "\n" not in message and message.endswith(".") and message.count(". ") == 0
    assert message.startswith("workload.num_requests=1000000 would need about 4.7 GB of memory")
    assert "more than 80% of the 1.0 GB available" in message
    assert "workload.duration_s" in message and "workload.num_requests=" in message.split("available;")[1]


def test_memory_estimate_follows_duration_and_replications(monkeypatch, tmp_path):
    import simulator.workload as wl_module

    monkeypatch.setattr(wl_module, "available_memory", lambda: 4e9)
    with pytest.raises(simulator.ConfigError, match=r"about 12,000,000 requests \(workload\.duration_s=1000000\.0 at workload\.rate=12"):
        simulator.load_config(["workload.num_requests=null", "workload.duration_s=1e6", "workload.rate=12"], config=_base())
    # the smaller of the two stops counts: 100 s at 12/s is 1,200 requests
    simulator.load_config(["workload.num_requests=1000000000", "workload.duration_s=100"], config=_base())
    simulator.load_config(["workload.num_requests=500000"], config=_base())  # about 2.4 GB: fits under 3.2
    with pytest.raises(simulator.ConfigError, match=r"over replications=3"):  # each replication keeps its results
        simulator.load_config(["workload.num_requests=500000", "replications=3"], config=_base())
    # a trace's length is not known before it is read: no check (its rows bound the run)
    trace = tmp_path / "small.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,10,5\n")
    replay = ["workload.arrival=trace", f"workload.trace.path={trace}", "workload.num_requests=1000000000"]
    assert wl_module.expected_requests(simulator.load_config(replay, config=_base())) is None
    monkeypatch.setattr(wl_module, "available_memory", lambda: None)  # not Linux: no check
    simulator.load_config(["workload.num_requests=1000000000"], config=_base())


def test_cli_refuses_a_billion_requests_in_one_line(tmp_path):
    from simulator.workload import available_memory
    from tests.conftest import servesim_cli

    if available_memory() is None:
        pytest.skip("no /proc/meminfo: the memory check is off, and this run would really start")
    proc = servesim_cli("workload.num_requests=1000000000000", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert lines[0].startswith("servesim: error: workload.num_requests=1000000000000 would need about ")
    assert "GB of memory" in lines[0] and "workload.duration_s" in lines[0]
    assert not (tmp_path / "outputs").exists()  # refused before hydra made a run directory


@pytest.fixture
def lines_on(monkeypatch):
    monkeypatch.delenv("SERVESIM_NO_PROGRESS", raising=False)


def test_long_run_off_a_terminal_prints_progress_lines(lines_on, monkeypatch, capsys):
    """Off a terminal (pytest captures stderr) output.progress=auto prints plain lines every
    LINE_EVERY_S of wall time; shortened here, and the results are those of a silent run."""
    from simulator import progress

    base = ["workload.num_requests=300", "output.charts=false", "output.console=false"]
    quiet = simulator.run([*base, "output.progress=off"])
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.002)
    loud = simulator.run([*base, "output.progress=auto"])
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("servesim: progress: ") for line in lines)
    assert " s simulated" in lines[0] and "/300 requests ended" in lines[0] and "elapsed" in lines[0]
    pd = pytest.importorskip("pandas")
    pd.testing.assert_frame_equal(loud.requests, quiet.requests, check_exact=True)
    pd.testing.assert_frame_equal(loud.steps, quiet.steps, check_exact=True)
    assert loud.summary == quiet.summary


def test_short_run_prints_no_progress_line(lines_on, capsys):
    from simulator import progress

    assert progress.LINE_EVERY_S >= 10  # a line only for runs that take a while
    simulator.run(["workload.num_requests=100", "output.charts=false", "output.console=false"])
    assert capsys.readouterr().err == ""


def test_progress_lines_off_when_asked(monkeypatch, capsys):
    from simulator import progress

    monkeypatch.setattr(progress, "LINE_EVERY_S", 0.002)
    monkeypatch.setenv("SERVESIM_NO_PROGRESS", "1")
    simulator.run(["workload.num_requests=300", "output.charts=false", "output.console=false"])
    assert capsys.readouterr().err == ""
    assert not progress.lines_enabled("off", environ={}) and not progress.lines_enabled("on", environ={})
    assert progress.lines_enabled("auto", environ={"CI": "true"})  # CI logs are where long runs go unwatched
