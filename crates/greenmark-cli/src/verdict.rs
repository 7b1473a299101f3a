//! The verdict in words, for people: `no watermark at the 1e-6 threshold (p = 6.1e-6)`, and
//! when too few tokens were scored to decide, roughly how many a watermarked text needs.
//!
//! Only human text is worded here; the JSON fields (`watermarked`, `p_value`, ...) are the
//! core's and do not change.

use greenmark::stats;

use crate::table::{format_p_value, format_threshold};

/// Largest token count [`tokens_needed`] searches: beyond it, the watermark is too weak to
/// name a count.
const MAX_NEEDED: u64 = 1 << 32;

/// How many scored tokens a KGW text needs before the exact test can call it watermarked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokensNeeded {
    /// The hard floor: the fewest scored tokens for which even an all-green text reaches the
    /// threshold (`gamma^n < threshold`). No text with fewer can be called watermarked.
    pub all_green: u64,
    /// The fewest scored tokens at which a text whose green fraction is the watermark's
    /// *ideal* one, `gamma e^delta / (1 + gamma (e^delta - 1))`, reaches the threshold by the
    /// exact binomial test. That fraction is what the bias gives when the model spreads its
    /// probability evenly over many tokens (Kirchenbauer et al. 2023, the high-entropy
    /// limit); real answers have less entropy and a lower fraction (the demo's: 0.59 to 0.65
    /// at the ideal 0.71 for gamma 0.25, delta 2), so real texts need this many *or more*.
    /// `None` when even [`MAX_NEEDED`] tokens would not do (delta near 0).
    pub watermarked: Option<u64>,
}

/// The expected green fraction of watermarked text in the high-entropy limit (see
/// [`TokensNeeded::watermarked`]).
pub fn ideal_green_fraction(gamma: f64, delta: f64) -> f64 {
    let boosted = gamma * delta.exp();
    boosted / (boosted + (1.0 - gamma))
}

/// [`TokensNeeded`] for a scheme whose green fraction under the null is `gamma`, with logit
/// bias `delta`, at p-value `threshold`. Both counts come from the exact binomial tail (the
/// test `detect` runs); the second is found by bisection, so it is exact for the rounded
/// green count `ceil(f n)` but "about" in print (the tail is not quite monotone in `n`).
pub fn tokens_needed(gamma: f64, delta: f64, threshold: f64) -> TokensNeeded {
    let ln_t = threshold.ln();
    // gamma^n < t  <=>  n > ln t / ln gamma; step past rounding with the exact tail.
    let mut all_green = (ln_t / gamma.ln()).floor().max(1.0) as u64;
    while stats::binomial_tail_ln(all_green, all_green, gamma) >= ln_t {
        all_green += 1;
    }
    let fraction = ideal_green_fraction(gamma, delta);
    let reaches = |n: u64| {
        let green = ((fraction * n as f64).ceil() as u64).min(n);
        stats::binomial_tail_ln(green, n, gamma) < ln_t
    };
    // No bias (or a NaN) never makes text greener than the null: no count would do.
    let watermarked = if fraction > gamma {
        // Double until the ideal text reaches the threshold, then bisect.
        let (mut lo, mut hi) = (all_green.saturating_sub(1), all_green);
        while !reaches(hi) && hi < MAX_NEEDED {
            lo = hi;
            hi *= 2;
        }
        if reaches(hi) {
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if reaches(mid) {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
            Some(hi)
        } else {
            None
        }
    } else {
        None
    };
    TokensNeeded {
        all_green,
        watermarked,
    }
}

/// The facts a worded verdict needs.
#[derive(Debug, Clone, Copy)]
pub struct Facts {
    /// Whether the (corrected) p-value is below the threshold.
    pub significant: bool,
    /// The (corrected) p-value and its log10, as printed.
    pub p_value: f64,
    /// `log10` of `p_value` (exact where `p_value` underflows).
    pub log10_p: f64,
    /// The threshold.
    pub threshold: f64,
    /// Tokens scored.
    pub n_scored: u64,
    /// The green fraction under the null (the config's effective gamma).
    pub gamma: f64,
    /// The config's logit bias.
    pub delta: f64,
    /// How many tests the p-value is corrected for (keys): the "needed" counts are for the
    /// threshold divided by it (Bonferroni). `None` (span search) gives no "needed" advice:
    /// its correction depends on the windows tried.
    pub tests: Option<u64>,
}

impl Facts {
    /// The facts of one detection under one key, whose config has logit bias `delta`.
    pub fn of(d: &greenmark::Detection, threshold: f64, delta: f64) -> Facts {
        Facts {
            significant: d.is_significant(threshold),
            p_value: d.p_value,
            log10_p: d.log10_p_value,
            threshold,
            n_scored: d.n_scored,
            gamma: d.gamma,
            delta,
            tests: Some(1),
        }
    }

    /// `WATERMARKED at the 1e-6 threshold (p = 3.1e-22)`, or `no watermark at the 1e-6
    /// threshold (p = 0.26)`, followed by [`Facts::too_few`] when it applies.
    pub fn sentence(&self) -> String {
        let mut out = format!(
            "{} at the {} threshold (p = {})",
            word(self.significant),
            format_threshold(self.threshold),
            format_p_value(self.p_value, self.log10_p)
        );
        if let Some(note) = self.too_few() {
            out.push_str("; ");
            out.push_str(&note);
        }
        out
    }

    /// `too few tokens to tell: 8 scored, ...` when the text was not called watermarked and
    /// had fewer scored tokens than an ideal watermarked text needs ([`TokensNeeded`]).
    pub fn too_few(&self) -> Option<String> {
        let (needed, _) = self.short_of_tokens()?;
        Some(match needed.watermarked {
            Some(n) => format!(
                "too few tokens to tell: {} scored, and a watermarked text (delta {}) needs \
                 about {n} or more ({} if every token were green)",
                self.n_scored, self.delta, needed.all_green
            ),
            None => format!(
                "too few tokens to tell: {} scored, and even an all-green text needs {}",
                self.n_scored, needed.all_green
            ),
        })
    }

    /// The short form for a table row: `WATERMARKED`, `no watermark`, or `no watermark (too
    /// few tokens: 8 of about 27)`.
    pub fn short(&self) -> String {
        match self.short_of_tokens() {
            Some((_, enough)) => format!(
                "no watermark (too few tokens: {} of about {enough})",
                self.n_scored
            ),
            None => word(self.significant).to_string(),
        }
    }

    /// The counts needed and the one that applies, when the text was not called watermarked
    /// and had fewer scored tokens than that.
    fn short_of_tokens(&self) -> Option<(TokensNeeded, u64)> {
        if self.significant {
            return None;
        }
        let tests = self.tests?.max(1);
        let needed = tokens_needed(self.gamma, self.delta, self.threshold / tests as f64);
        let enough = needed.watermarked.unwrap_or(needed.all_green);
        (self.n_scored < enough).then_some((needed, enough))
    }
}

/// The verdict's word: `WATERMARKED` or `no watermark`.
pub fn word(significant: bool) -> &'static str {
    if significant {
        "WATERMARKED"
    } else {
        "no watermark"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_all_green_floor_is_the_exact_one() {
        // 0.25^9 = 3.8e-6 >= 1e-6 > 0.25^10 = 9.5e-7.
        assert_eq!(tokens_needed(0.25, 2.0, 1e-6).all_green, 10);
        // 0.5^19 = 1.9e-6, 0.5^20 = 9.5e-7.
        assert_eq!(tokens_needed(0.5, 2.0, 1e-6).all_green, 20);
        for (gamma, t) in [(0.25, 1e-6), (0.1, 1e-3), (0.9, 1e-9), (0.5, 0.01)] {
            let n = tokens_needed(gamma, 2.0, t).all_green;
            let ln_t = f64::ln(t);
            assert!(stats::binomial_tail_ln(n, n, gamma) < ln_t, "{gamma} {t}");
            assert!(
                stats::binomial_tail_ln(n - 1, n - 1, gamma) >= ln_t,
                "{gamma} {t}"
            );
        }
    }

    #[test]
    fn the_watermarked_count_is_where_the_ideal_text_crosses() {
        let (gamma, delta, t) = (0.25, 2.0, 1e-6);
        let f = ideal_green_fraction(gamma, delta);
        assert!((f - 0.7112).abs() < 1e-3, "{f}");
        let n = tokens_needed(gamma, delta, t).watermarked.unwrap();
        let tail = |n: u64| stats::binomial_tail_ln((f * n as f64).ceil() as u64, n, gamma);
        assert!(tail(n) < t.ln());
        assert!(tail(n - 1) >= t.ln(), "n = {n}");
        assert!((20..60).contains(&n), "n = {n}");
        // A weaker bias needs more tokens; no bias can never be told apart.
        let weak = tokens_needed(gamma, 0.5, t).watermarked.unwrap();
        assert!(weak > 5 * n, "{weak} vs {n}");
        assert_eq!(tokens_needed(gamma, 0.0, t).watermarked, None);
    }

    fn facts(significant: bool, p: f64, n_scored: u64) -> Facts {
        Facts {
            significant,
            p_value: p,
            log10_p: p.log10(),
            threshold: 1e-6,
            n_scored,
            gamma: 0.25,
            delta: 2.0,
            tests: Some(1),
        }
    }

    #[test]
    fn sentences_name_the_threshold_and_the_p_value() {
        assert_eq!(
            facts(false, 6.1e-6, 400).sentence(),
            "no watermark at the 1e-6 threshold (p = 6.1e-6)"
        );
        assert_eq!(
            facts(true, 3.1e-22, 200).sentence(),
            "WATERMARKED at the 1e-6 threshold (p = 3.1e-22)"
        );
        let short = facts(false, 0.03, 8).sentence();
        assert!(
            short.starts_with("no watermark at the 1e-6 threshold (p = 0.030); "),
            "{short}"
        );
        assert!(
            short.contains("8 scored") && short.contains("10 if every token"),
            "{short}"
        );
        assert!(facts(false, 0.03, 8)
            .short()
            .starts_with("no watermark (too few tokens: 8 of about "));
        assert_eq!(facts(false, 0.4, 400).short(), "no watermark");
        // Span search: no advice (its correction depends on the windows tried).
        let span = Facts {
            tests: None,
            ..facts(false, 0.03, 8)
        };
        assert_eq!(span.too_few(), None);
        // Several keys: the counts are for the corrected threshold, so they grow.
        let one = tokens_needed(0.25, 2.0, 1e-6).watermarked.unwrap();
        let three = tokens_needed(0.25, 2.0, 1e-6 / 3.0).watermarked.unwrap();
        assert!(three > one);
    }
}
