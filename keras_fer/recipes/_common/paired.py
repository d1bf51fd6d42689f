"""Two settings compared on the same folds: the paired differences and their tests."""

import numpy as np


def paired_comparison(values, baseline):
    """``values`` (one setting's score per fold) against ``baseline`` (another's on the same
    folds, in the same order).

    Returns a dict: ``n``, both means, ``mean_difference`` (values - baseline),
    ``std_difference`` (ddof 1), ``better`` / ``worse`` / ``tied`` fold counts, the two-sided
    paired t-test (``t_statistic``, ``t_p_value``: ``scipy.stats.ttest_1samp`` of the
    differences) and the two-sided Wilcoxon signed-rank test (``wilcoxon_statistic``, the
    smaller rank sum; ``wilcoxon_p_value``: ``scipy.stats.wilcoxon`` with Wilcoxon's zero
    method, zero differences dropped; exact without ties, an exact sign-flip permutation with
    ties up to 13 folds, the normal approximation beyond). A test that is undefined (fewer than
    two folds, no difference at all, the t-test on differences that are all equal) gives None
    and says why in ``note``.

    Differences are rounded to 12 decimals first: accuracies are ``k / n`` fractions, and two
    equal differences must tie (float subtraction leaves them 1e-17 apart).
    """
    values = np.asarray(values, dtype=np.float64)
    baseline = np.asarray(baseline, dtype=np.float64)
    if values.ndim != 1 or values.shape != baseline.shape:
        raise ValueError(f"values and baseline must be 1-D and of one length (one score per "
                         f"fold), got shapes {values.shape} and {baseline.shape}")
    d = np.round(values - baseline, 12)
    n = len(d)
    out = dict(n=n, mean=float(values.mean()) if n else None,
               baseline_mean=float(baseline.mean()) if n else None,
               mean_difference=float(d.mean()) if n else None,
               std_difference=float(d.std(ddof=1)) if n > 1 else None,
               better=int(np.sum(d > 0)), worse=int(np.sum(d < 0)), tied=int(np.sum(d == 0)),
               t_statistic=None, t_p_value=None, wilcoxon_statistic=None,
               wilcoxon_p_value=None)
    notes = []
    if n < 2:
        notes.append("fewer than 2 folds: no test")
    elif not np.any(d):
        notes.append("the same score on every fold: no test")
    else:
        from scipy import stats

        if np.ptp(d) > 0:
            t = stats.ttest_1samp(d, 0.0)
            out.update(t_statistic=float(t.statistic), t_p_value=float(t.pvalue))
        else:
            notes.append("every difference is the same: the t-test is undefined")
        w = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
        out.update(wilcoxon_statistic=float(w.statistic), wilcoxon_p_value=float(w.pvalue))
    if notes:
        out["note"] = "; ".join(notes)
    return out
