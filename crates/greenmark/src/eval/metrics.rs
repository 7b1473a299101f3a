//! The metrics: true-positive rate at a p-value threshold, ROC AUC by the exact Mann–Whitney
//! count, the ROC curve, medians, perplexity.
//!
//! Scores are `-log10 p` (larger means more watermarked), so texts whose p-values underflow
//! `f64` still rank correctly.

/// The fraction of `log10_p` values strictly below `log10(threshold)`: the detection rate at
/// that p-value threshold, with the verdict rule of [`crate::Detection::is_significant`]. On
/// watermarked texts it is the TPR; on plain texts the empirical FPR. 0 for no texts.
///
/// ```
/// use greenmark::eval::metrics::rate_below;
/// assert_eq!(rate_below(&[-7.0, -3.5, -1.0, -3.0], 1e-3), 0.5);
/// ```
pub fn rate_below(log10_p: &[f64], threshold: f64) -> f64 {
    if log10_p.is_empty() {
        return 0.0;
    }
    let cut = threshold.log10();
    log10_p.iter().filter(|&&l| l < cut).count() as f64 / log10_p.len() as f64
}

/// ROC AUC of `positive` against `negative` scores (larger = more likely positive): the
/// Mann–Whitney probability `P(pos > neg) + P(pos = neg) / 2` over all pairs, counted exactly
/// (ties count one half), in `O((P + N) log N)`. `None` when either side is empty or a score
/// is NaN.
///
/// ```
/// use greenmark::eval::metrics::roc_auc;
/// assert_eq!(roc_auc(&[3.0, 2.0], &[1.0, 2.0]), Some(0.875));
/// ```
pub fn roc_auc(positive: &[f64], negative: &[f64]) -> Option<f64> {
    if positive.is_empty() || negative.is_empty() {
        return None;
    }
    if positive.iter().chain(negative).any(|x| x.is_nan()) {
        return None;
    }
    let mut neg = negative.to_vec();
    neg.sort_by(f64::total_cmp);
    // Twice the pair count, so ties add 1 and wins add 2: exact in u128.
    let mut twice: u128 = 0;
    for &p in positive {
        let below = neg.partition_point(|&n| n < p);
        let up_to = neg.partition_point(|&n| n <= p);
        twice += 2 * below as u128 + (up_to - below) as u128;
    }
    let pairs = positive.len() as u128 * negative.len() as u128;
    Some(twice as f64 / (2 * pairs) as f64)
}

/// The ROC curve: `(fpr, tpr)` of the rule "positive when score >= t" for every distinct score
/// `t`, from `(0, 0)` to `(1, 1)`, ties moving both rates at once (a diagonal step). Its
/// trapezoidal area is [`roc_auc`]. Empty when either side is empty.
pub fn roc_curve(positive: &[f64], negative: &[f64]) -> Vec<(f64, f64)> {
    if positive.is_empty() || negative.is_empty() {
        return Vec::new();
    }
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|&s| (s, true))
        .chain(negative.iter().map(|&s| (s, false)))
        .filter(|(s, _)| !s.is_nan())
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (np, nn) = (positive.len() as f64, negative.len() as f64);
    let mut out = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < all.len() {
        let s = all[i].0;
        while i < all.len() && all[i].0 == s {
            if all[i].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        out.push((fp as f64 / nn, tp as f64 / np));
    }
    out
}

/// At most `max` points of a curve, evenly spaced in index, first and last kept.
pub fn thin(curve: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    if curve.len() <= max || max < 2 {
        return curve.to_vec();
    }
    let step = (curve.len() - 1) as f64 / (max - 1) as f64;
    (0..max)
        .map(|i| curve[((i as f64 * step).round() as usize).min(curve.len() - 1)])
        .collect()
}

/// The median of values that may be infinite (a text never detected needs infinitely many
/// tokens): the middle value, or the mean of the two middle ones; `None` for no values. NaN is
/// not allowed (`None`).
///
/// ```
/// use greenmark::eval::metrics::median;
/// assert_eq!(median(&[5.0, f64::INFINITY, 1.0]), Some(5.0));
/// assert_eq!(median(&[1.0, 2.0, 3.0, 10.0]), Some(2.5));
/// ```
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    // Equal middle values (two infinities among them) are the median as they are.
    Some(if !n.is_multiple_of(2) || v[n / 2 - 1] == v[n / 2] {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Perplexity of a text from the natural-log probabilities of its tokens: `exp(-mean)`. `None`
/// for no tokens.
///
/// ```
/// use greenmark::eval::metrics::perplexity;
/// let ln_half = 0.5f64.ln();
/// assert!((perplexity(&[ln_half, ln_half]).unwrap() - 2.0).abs() < 1e-12);
/// ```
pub fn perplexity(ln_probs: &[f64]) -> Option<f64> {
    if ln_probs.is_empty() {
        return None;
    }
    let mean = ln_probs.iter().sum::<f64>() / ln_probs.len() as f64;
    Some((-mean).exp())
}

/// The first prefix length at which a running detection becomes significant: `prefix_ln_p[i]`
/// is the natural-log p-value of the first `i + 1` tokens; the answer is the smallest `i + 1`
/// with `prefix_ln_p[i] < ln(threshold)`, or `None` when no prefix is significant. With the
/// median over texts (undetected texts counting as infinite) this is MarkMyWords' "watermark
/// size" (Piet et al. 2023): the tokens a watermark needs to be detected.
pub fn first_significant(prefix_ln_p: &[f64], threshold: f64) -> Option<usize> {
    let cut = threshold.ln();
    prefix_ln_p.iter().position(|&l| l < cut).map(|i| i + 1)
}
