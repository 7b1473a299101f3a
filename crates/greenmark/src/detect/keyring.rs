//! Detection under several keys at once: key rotation, one key per model or customer.
//!
//! Each key's test is run on the same tokens, and the smallest p-value is corrected for the
//! number of keys tried (Bonferroni: `min(1, K p_min)`, valid whatever the dependence between
//! the keys' tests). Only the corrected value is a p-value for the question "was this text
//! watermarked with any of these keys?"; each key's own value is reported as *uncorrected*.
//!
//! Keys whose detectors score identically (the same secret, vocabulary, gamma threshold,
//! scheme and dedup: configs that differ only in `delta`, which does not affect scoring) are
//! one test, counted once.
//!
//! # Example
//! ```
//! use greenmark::{Detector, Key, Keyring, WatermarkConfig};
//! let config = WatermarkConfig::new(1000)?;
//! let keyring = Keyring::new(vec![
//!     Detector::new(&Key::from_bytes([1; 32]), config.clone()),
//!     Detector::new(&Key::from_bytes([2; 32]), config),
//! ])?;
//! let tokens: Vec<u32> = (0..300).map(|i| (i * 7919 % 1000) as u32).collect();
//! let d = keyring.detect(&tokens, &[])?;
//! assert_eq!(d.keys.len(), 2);
//! assert!(d.ln_p_value >= d.keys[d.strongest_key].ln_p_value); // corrected: never smaller
//! assert!(!d.is_significant(1e-6));
//! # Ok::<(), greenmark::Error>(())
//! ```

use super::{Detection, Detector, SpanDetection, SpanOptions};
use crate::error::{Error, Result};
use crate::stats;

/// Several detectors run together, with one p-value corrected for their number.
#[derive(Debug, Clone)]
pub struct Keyring {
    pub(super) detectors: Vec<Detector>,
    /// Other engines' watermarks with their labels (see [`Keyring::with_gumbel`] and
    /// [`Keyring::with_synthid`]).
    pub(super) engines: Vec<(String, super::mixed::Engine)>,
}

/// The result of running every key of a [`Keyring`]: each key's own (uncorrected) result, and
/// the corrected p-value of the strongest.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct KeyringDetection<T> {
    /// One result per key, in the keyring's order. Their p-values are *uncorrected*.
    pub keys: Vec<T>,
    /// Index of the key with the smallest p-value (the first on ties): the key that fired when
    /// the corrected p-value is below the threshold.
    pub strongest_key: usize,
    /// The Bonferroni-corrected p-value `min(1, K p_min)` (underflows below ~1e-308: use the
    /// log fields).
    pub p_value: f64,
    /// Natural log of the corrected p-value.
    pub ln_p_value: f64,
    /// Base-10 log of the corrected p-value.
    pub log10_p_value: f64,
}

impl KeyringDetection<Detection> {
    /// The keyring result of these detections (one per key), corrected for their number: for
    /// callers that ran the keys' detections themselves (a stream, say).
    pub fn from_detections(keys: Vec<Detection>) -> KeyringDetection<Detection> {
        KeyringDetection::correct(keys, |d| d.ln_p_value)
    }
}

impl<T> KeyringDetection<T> {
    /// Combines per-key results, `ln_p` giving each one's own natural-log p-value.
    pub(crate) fn correct(keys: Vec<T>, ln_p: impl Fn(&T) -> f64) -> KeyringDetection<T> {
        let mut strongest_key = 0;
        for (i, k) in keys.iter().enumerate() {
            if ln_p(k) < ln_p(&keys[strongest_key]) {
                strongest_key = i;
            }
        }
        let ln_p_value = match keys.get(strongest_key) {
            Some(k) => stats::bonferroni_ln(ln_p(k), keys.len()),
            None => 0.0,
        };
        KeyringDetection {
            keys,
            strongest_key,
            p_value: ln_p_value.exp(),
            ln_p_value,
            log10_p_value: stats::ln_to_log10(ln_p_value),
        }
    }

    /// Whether any key's watermark is detected at `threshold`, after the correction: corrected
    /// `p < threshold`, compared in log space.
    pub fn is_significant(&self, threshold: f64) -> bool {
        self.ln_p_value < threshold.ln()
    }
}

#[cfg(feature = "serde")]
impl<T: serde::Serialize> serde::Serialize for KeyringDetection<T> {
    /// `{"keys": [...], "strongest_key", "correction": "bonferroni", "p_value", ...}`, each
    /// key's p-value fields renamed `uncorrected_*`: only the corrected value reads as a
    /// p-value.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let keys = self
            .keys
            .iter()
            .map(super::uncorrected_value)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(serde::ser::Error::custom)?;
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("keys", &keys)?;
        map.serialize_entry("strongest_key", &self.strongest_key)?;
        map.serialize_entry("correction", "bonferroni")?;
        map.serialize_entry("p_value", &self.p_value)?;
        map.serialize_entry("ln_p_value", &self.ln_p_value)?;
        map.serialize_entry("log10_p_value", &self.log10_p_value)?;
        map.end()
    }
}

impl Keyring {
    /// A keyring of `detectors`, at least one. Detectors that score identically (see the module
    /// docs) are kept once: the first of them.
    pub fn new(detectors: Vec<Detector>) -> Result<Keyring> {
        if detectors.is_empty() {
            return Err(Error::InvalidKeys(
                "a keyring needs at least one key".to_string(),
            ));
        }
        let mut kept: Vec<Detector> = Vec::with_capacity(detectors.len());
        for d in detectors {
            if !kept.iter().any(|k| k.scores_like(&d)) {
                kept.push(d);
            }
        }
        Ok(Keyring {
            detectors: kept,
            engines: Vec::new(),
        })
    }

    /// The keyring restricted to the keys `names` names: a greenmark key by its id (hex, as
    /// answers print it), a vLLM Gumbel config by its label. A caller who knows which key
    /// watermarked a text (a chat answer names it) tests that key alone, and the correction
    /// shrinks with the number of keys. A name that matches nothing is
    /// [`Error::InvalidKeys`], which never lists the keyring's own names. The selection must
    /// hold a greenmark key (a keyring always has one).
    ///
    /// ```
    /// use greenmark::{Detector, Key, Keyring, WatermarkConfig};
    /// let config = WatermarkConfig::new(1000)?;
    /// let keys = [Key::from_bytes([1; 32]), Key::from_bytes([2; 32])];
    /// let ring = Keyring::new(keys.iter().map(|k| Detector::new(k, config.clone())).collect())?;
    /// let id = keys[1].id().to_string();
    /// let one = ring.select(&[id.as_str()])?;
    /// assert_eq!(one.detectors().len(), 1);
    /// assert!(ring.select(&["0123456789abcdef"]).is_err());
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn select(&self, names: &[&str]) -> Result<Keyring> {
        if names.is_empty() {
            return Err(Error::InvalidKeys(
                "name at least one key to test, or leave the selection out".into(),
            ));
        }
        let mut detectors = Vec::new();
        let mut engines = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if let Some(d) = self
                .detectors
                .iter()
                .find(|d| d.key_id().to_string() == *name)
            {
                if !detectors
                    .iter()
                    .any(|k: &Detector| k.key_id() == d.key_id())
                {
                    detectors.push(d.clone());
                }
            } else if let Some(e) = self.engines.iter().find(|(label, _)| label == name) {
                if !engines.iter().any(|(label, _): &(String, _)| label == name) {
                    engines.push(e.clone());
                }
            } else {
                return Err(Error::InvalidKeys(format!(
                    "key {} of the selection is not one of the keys this detector holds",
                    i + 1
                )));
            }
        }
        if detectors.is_empty() {
            return Err(Error::InvalidKeys(
                "the selection names only other engines' configs (vLLM, SynthID): name a greenmark key too".into(),
            ));
        }
        Ok(Keyring { detectors, engines })
    }

    /// The detectors, one per distinct key and config, in the order given.
    pub fn detectors(&self) -> &[Detector] {
        &self.detectors
    }

    /// Scores `tokens` (after `prompt`, as [`Detector::detect`]) under every key.
    pub fn detect(&self, tokens: &[u32], prompt: &[u32]) -> Result<KeyringDetection<Detection>> {
        let keys = self
            .detectors
            .iter()
            .map(|d| d.detect(tokens, prompt))
            .collect::<Result<Vec<_>>>()?;
        Ok(KeyringDetection::correct(keys, |d| d.ln_p_value))
    }

    /// Searches `tokens` for a watermarked span under every key ([`Detector::find_span`]); each
    /// key's span p-value is already corrected for its windows, and the keyring's for the keys.
    pub fn find_span(
        &self,
        tokens: &[u32],
        prompt: &[u32],
        options: SpanOptions,
    ) -> Result<KeyringDetection<SpanDetection>> {
        let keys = self
            .detectors
            .iter()
            .map(|d| d.find_span(tokens, prompt, options))
            .collect::<Result<Vec<_>>>()?;
        Ok(KeyringDetection::correct(keys, |d| d.ln_p_value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Key, WatermarkConfig, Watermarker};

    fn watermarked(key: &Key, config: &WatermarkConfig, n: usize) -> Vec<u32> {
        let w = Watermarker::new(key, config.clone());
        let mut tokens = vec![1u32];
        for step in 0..n as u32 {
            let mut logits: Vec<f32> = (0..config.vocab_size())
                .map(|v| ((v ^ step).wrapping_mul(2654435761) >> 22) as f32 / 256.0)
                .collect();
            w.bias(&mut logits, &tokens).unwrap();
            let next = (0..logits.len())
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
                .unwrap();
            tokens.push(next as u32);
        }
        tokens
    }

    #[test]
    fn the_key_that_fired_is_named_and_the_p_value_corrected() {
        let config = WatermarkConfig::new(1000).unwrap();
        let keys: Vec<Key> = (1..=3).map(|i| Key::from_bytes([i; 32])).collect();
        let tokens = watermarked(&keys[1], &config, 120);
        let ring = Keyring::new(
            keys.iter()
                .map(|k| Detector::new(k, config.clone()))
                .collect(),
        )
        .unwrap();
        let d = ring.detect(&tokens[1..], &tokens[..1]).unwrap();
        assert_eq!(d.strongest_key, 1);
        let own = &d.keys[1];
        assert_eq!(own.key_id, keys[1].id());
        assert!((d.ln_p_value - (own.ln_p_value + 3f64.ln())).abs() < 1e-12);
        assert!(d.is_significant(1e-6));
        // Each key's own result equals its detector's.
        for (k, r) in keys.iter().zip(&d.keys) {
            let alone = Detector::new(k, config.clone())
                .detect(&tokens[1..], &tokens[..1])
                .unwrap();
            assert_eq!(&alone, r);
        }
        let span = ring
            .find_span(&tokens[1..], &tokens[..1], SpanOptions::default())
            .unwrap();
        assert_eq!(span.strongest_key, 1);
        assert!(span.ln_p_value >= span.keys[1].ln_p_value);
    }

    #[test]
    fn configs_that_differ_only_in_delta_are_one_test() {
        let key = Key::from_bytes([4; 32]);
        let a = WatermarkConfig::new(1000).unwrap();
        let b = a.to_builder().delta(3.5).build().unwrap();
        let c = a.to_builder().gamma(0.5).build().unwrap();
        let ring = Keyring::new(vec![
            Detector::new(&key, a.clone()),
            Detector::new(&key, b),
            Detector::new(&key, c),
            Detector::new(&Key::from_bytes([5; 32]), a),
        ])
        .unwrap();
        assert_eq!(ring.detectors().len(), 3);
        assert!(Keyring::new(Vec::new()).is_err());
    }

    /// Under the null the corrected p-value is (super)uniform: over many plain texts and 5
    /// keys, the rate below 0.05 stays under the nominal rate's upper confidence bound, while
    /// the uncorrected minimum would fire about 5 times as often.
    #[test]
    fn the_correction_holds_its_level_on_plain_text() {
        use rand::{Rng, SeedableRng};
        let config = WatermarkConfig::new(5000).unwrap();
        let ring = Keyring::new(
            (10..15)
                .map(|i| Detector::new(&Key::from_bytes([i; 32]), config.clone()))
                .collect(),
        )
        .unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let trials = 2000u64;
        let (mut corrected, mut uncorrected) = (0u64, 0u64);
        for _ in 0..trials {
            let tokens: Vec<u32> = (0..100).map(|_| rng.gen_range(0..5000)).collect();
            let d = ring.detect(&tokens, &[]).unwrap();
            corrected += u64::from(d.is_significant(0.05));
            uncorrected += u64::from(d.keys[d.strongest_key].is_significant(0.05));
        }
        // The upper 1e-6 bound of Binomial(2000, 0.05) is below 150 (mean 100, sd 9.7).
        let bound = stats::binomial_critical_value(trials, 0.05, 1e-6f64.ln()).unwrap();
        assert!(corrected < bound, "{corrected} of {trials} >= {bound}");
        assert!(
            uncorrected > bound,
            "{uncorrected} of {trials}: the test has no power"
        );
    }
}
