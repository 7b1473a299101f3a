//! One text's result under a [`Keyring`]: over the whole text or the best span. The result
//! model every front-end prints (the CLI's `--json`, the Python package, a service), so they
//! cannot drift apart.
//!
//! ```
//! use greenmark::{Detector, Key, Keyring, SpanOptions, WatermarkConfig};
//! let ring = Keyring::new(vec![Detector::new(&Key::from_bytes([1; 32]), WatermarkConfig::new(1000)?)])?;
//! let tokens: Vec<u32> = (0..200).map(|i| (i * 7919 % 1000) as u32).collect();
//! let whole = ring.score(&tokens, &[], None)?;
//! let span = ring.score(&tokens, &[], Some(SpanOptions::with_min_tokens(40)))?;
//! assert!(!whole.is_significant(1e-6) && span.span().is_some());
//! # Ok::<(), greenmark::Error>(())
//! ```

use super::{AnyDetection, Detection, Keyring, KeyringDetection, SpanDetection, SpanOptions};
use crate::error::{Error, Result};
use crate::key::KeyId;

/// A text scored under every key of a keyring, whole or by span search.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Scored {
    /// Whole-text detections, one per key.
    Whole(KeyringDetection<Detection>),
    /// Span searches, one per key.
    Span(KeyringDetection<SpanDetection>),
    /// Whole-text detections under a keyring that holds other engines' configs: the greenmark
    /// keys first, then the configs in the order added ([`Keyring::with_gumbel`],
    /// [`Keyring::with_synthid`]).
    Mixed(KeyringDetection<AnyDetection>),
}

impl Keyring {
    /// Scores `tokens` after `prompt` under every key: the whole text, or with `span` the most
    /// strongly watermarked window ([`crate::Detector::find_span`]).
    pub fn score(
        &self,
        tokens: &[u32],
        prompt: &[u32],
        span: Option<SpanOptions>,
    ) -> Result<Scored> {
        Ok(match span {
            Some(_) if !self.engines.is_empty() => {
                return Err(Error::Unsupported(
                    "span search covers greenmark keys only, and this keyring holds other \
                     engines' configs (vLLM, SynthID): score the whole text"
                        .into(),
                ))
            }
            Some(options) => Scored::Span(self.find_span(tokens, prompt, options)?),
            None if !self.engines.is_empty() => Scored::Mixed(self.detect_mixed(tokens, prompt)?),
            None => Scored::Whole(self.detect(tokens, prompt)?),
        })
    }
}

impl Scored {
    /// The verdict on the corrected p-value (for the keys and, with span search, the windows).
    pub fn is_significant(&self, threshold: f64) -> bool {
        match self {
            Scored::Whole(k) => k.is_significant(threshold),
            Scored::Span(k) => k.is_significant(threshold),
            Scored::Mixed(k) => k.is_significant(threshold),
        }
    }

    /// Index of the strongest key.
    pub fn strongest_key(&self) -> usize {
        match self {
            Scored::Whole(k) => k.strongest_key,
            Scored::Span(k) => k.strongest_key,
            Scored::Mixed(k) => k.strongest_key,
        }
    }

    /// The counts behind the verdict: the strongest key's, inside its span for span search.
    /// With other engines' configs ([`Scored::Mixed`]): the strongest greenmark key's (a Gumbel
    /// or SynthID config has no green counts).
    pub fn counts(&self) -> &Detection {
        match self {
            Scored::Whole(k) => &k.keys[k.strongest_key],
            Scored::Span(k) => &k.keys[k.strongest_key].span,
            Scored::Mixed(k) => k
                .keys
                .iter()
                .filter_map(|d| match d {
                    AnyDetection::Kgw(d) => Some(d),
                    _ => None,
                })
                .min_by(|a, b| a.ln_p_value.total_cmp(&b.ln_p_value))
                .expect("a keyring holds at least one greenmark key"),
        }
    }

    /// The corrected p-value (underflows below ~1e-308: use [`Scored::log10_p_value`]).
    pub fn p_value(&self) -> f64 {
        match self {
            Scored::Whole(k) => k.p_value,
            Scored::Span(k) => k.p_value,
            Scored::Mixed(k) => k.p_value,
        }
    }

    /// Base-10 log of the corrected p-value.
    pub fn log10_p_value(&self) -> f64 {
        match self {
            Scored::Whole(k) => k.log10_p_value,
            Scored::Span(k) => k.log10_p_value,
            Scored::Mixed(k) => k.log10_p_value,
        }
    }

    /// The strongest key's best span, for span search.
    pub fn span(&self) -> Option<&SpanDetection> {
        match self {
            Scored::Span(k) => Some(&k.keys[k.strongest_key]),
            Scored::Whole(_) | Scored::Mixed(_) => None,
        }
    }

    /// How many keys were tried.
    pub fn n_keys(&self) -> usize {
        match self {
            Scored::Whole(k) => k.keys.len(),
            Scored::Span(k) => k.keys.len(),
            Scored::Mixed(k) => k.keys.len(),
        }
    }

    /// Each key's id and own base-10 log p-value (uncorrected for the keys; for span search,
    /// corrected for its windows).
    pub fn per_key(&self) -> Vec<(KeyId, f64)> {
        match self {
            Scored::Whole(k) => k.keys.iter().map(|d| (d.key_id, d.log10_p_value)).collect(),
            Scored::Span(k) => k
                .keys
                .iter()
                .map(|d| (d.span.key_id, d.log10_p_value))
                .collect(),
            Scored::Mixed(k) => k
                .keys
                .iter()
                .map(|d| (d.key_id(), crate::stats::ln_to_log10(d.ln_p_value())))
                .collect(),
        }
    }

    /// The result as a JSON object, the fields every front-end prints. One key, whole text:
    /// the detection's fields. Span search: the span result (`start`, `end`,
    /// `windows_tried`, the corrected p-value, the window's own counts under `span` with
    /// `uncorrected_*` p-values). Several keys: every key's result with `uncorrected_*`
    /// p-values, `strongest_key`, `correction` and the corrected p-value. Always: `n_tokens`,
    /// `key_id` (of the key that fired), `scheme`, `threshold` and `watermarked`.
    #[cfg(feature = "serde")]
    pub fn to_json(&self, n_tokens: usize, threshold: f64) -> serde_json::Value {
        let value = match self {
            Scored::Whole(k) if k.keys.len() == 1 => serde_json::to_value(&k.keys[0]),
            Scored::Span(k) if k.keys.len() == 1 => serde_json::to_value(&k.keys[0]),
            Scored::Whole(k) => serde_json::to_value(k),
            Scored::Span(k) => serde_json::to_value(k),
            Scored::Mixed(k) => serde_json::to_value(k),
        };
        let mut value = value.expect("detections serialize to JSON");
        let object = value
            .as_object_mut()
            .expect("a detection serializes as an object");
        let (key_id, scheme) = match self {
            Scored::Mixed(k) => {
                let strongest = &k.keys[k.strongest_key];
                (strongest.label(), strongest.scheme())
            }
            _ => (self.counts().key_id.to_string(), self.counts().scheme),
        };
        object.insert("n_tokens".into(), n_tokens.into());
        object.insert("key_id".into(), key_id.into());
        object.insert("scheme".into(), scheme.into());
        object.insert("threshold".into(), threshold.into());
        object.insert("watermarked".into(), self.is_significant(threshold).into());
        value
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;
    use crate::{Detector, Key, WatermarkConfig};

    #[test]
    fn json_labels_only_the_corrected_p_value_as_a_p_value() {
        let config = WatermarkConfig::new(1000).unwrap();
        let one = Keyring::new(vec![Detector::new(
            &Key::from_bytes([1; 32]),
            config.clone(),
        )])
        .unwrap();
        let two = Keyring::new(vec![
            Detector::new(&Key::from_bytes([1; 32]), config.clone()),
            Detector::new(&Key::from_bytes([2; 32]), config),
        ])
        .unwrap();
        let tokens: Vec<u32> = (0..300).map(|i| (i * 7919 % 1000) as u32).collect();
        let span = Some(SpanOptions::with_min_tokens(40));

        let whole = one.score(&tokens, &[5], None).unwrap();
        let json = whole.to_json(300, 1e-6);
        let own = serde_json::to_value(whole.counts()).unwrap();
        for (field, value) in own.as_object().unwrap() {
            assert_eq!(&json[field], value, "{field}");
        }
        assert_eq!(json["watermarked"], false);

        let json = one.score(&tokens, &[], span).unwrap().to_json(300, 1e-6);
        assert!(json["windows_tried"].as_u64().unwrap() > 1);
        assert!(json["span"]["uncorrected_log10_p_value"].is_number());
        assert!(json["span"].get("log10_p_value").is_none());

        for options in [None, span] {
            let scored = two.score(&tokens, &[], options).unwrap();
            let json = scored.to_json(300, 1e-6);
            assert_eq!(json["correction"], "bonferroni");
            assert_eq!(json["keys"].as_array().unwrap().len(), 2);
            assert!(json["keys"][0].get("p_value").is_none(), "{json}");
            assert!(json["keys"][0]["uncorrected_p_value"].is_number(), "{json}");
            assert_eq!(json["log10_p_value"], scored.log10_p_value());
            assert_eq!(scored.per_key().len(), 2);
        }
    }
}
