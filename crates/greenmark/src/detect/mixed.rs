//! Keyrings that also hold other engines' configs (vLLM's Gumbel, transformers' SynthID Text):
//! an operator who serves some traffic with greenmark keys and some with an engine's native
//! watermark asks one question of a text ("did any of our watermarks make this?") and gets one
//! p-value, Bonferroni-corrected over every key and config tried.
//!
//! A Gumbel config is named by a label its operator gives, never by a value derived from its
//! key: a vLLM key is a `u64` that people choose (`42`), so any public function of it, its
//! hash included, can be inverted by trying the small numbers.
//!
//! ```
//! use greenmark::gumbel::{GumbelConfig, GumbelDetector, GumbelKey};
//! use greenmark::{Detector, Key, Keyring, WatermarkConfig};
//! let config = WatermarkConfig::new(1000)?;
//! let gumbel = GumbelDetector::new(GumbelKey::vllm(42), GumbelConfig::default())?;
//! let ring = Keyring::new(vec![Detector::new(&Key::from_bytes([1; 32]), config)])?
//!     .with_gumbel("vllm-prod", gumbel)?;
//! let tokens: Vec<u32> = (0..200).map(|i| (i * 7919 % 1000) as u32).collect();
//! let scored = ring.score(&tokens, &[], None)?;
//! assert_eq!(scored.n_keys(), 2);
//! assert!(!scored.is_significant(1e-6));
//! # Ok::<(), greenmark::Error>(())
//! ```

use super::{Detection, Keyring, KeyringDetection};
use crate::error::{Error, Result};
use crate::gumbel::{GumbelDetection, GumbelDetector};
use crate::key::KeyId;
use crate::synthid::{SynthIdDetection, SynthIdDetector};

/// Another engine's watermark held in a keyring beside greenmark keys.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Engine {
    /// vLLM's native Gumbel watermark ([`Keyring::with_gumbel`]).
    Gumbel(GumbelDetector),
    /// transformers' SynthID Text ([`Keyring::with_synthid`]).
    SynthId(SynthIdDetector),
}

impl Engine {
    fn detect(&self, name: &str, tokens: &[u32]) -> Result<AnyDetection> {
        let name = name.to_string();
        Ok(match self {
            Engine::Gumbel(g) => AnyDetection::Gumbel {
                name,
                detection: g.detect(tokens)?,
            },
            Engine::SynthId(s) => AnyDetection::SynthId {
                name,
                detection: s.detect(tokens)?,
            },
        })
    }
}

/// One key's result in a keyring that holds other engines' configs: a greenmark key's
/// detection, or a config's, with its label.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AnyDetection {
    /// A greenmark (KGW) key.
    Kgw(Detection),
    /// A vLLM Gumbel config, by its operator's label.
    Gumbel {
        /// The config's public label.
        name: String,
        /// Its detection.
        detection: GumbelDetection,
    },
    /// A SynthID Text config, by its operator's label.
    SynthId {
        /// The config's public label.
        name: String,
        /// Its detection.
        detection: SynthIdDetection,
    },
}

impl AnyDetection {
    /// The natural-log p-value this key enters the correction with: the exact binomial tail
    /// (KGW), the exact-or-conservative Gumbel tail (`ln_p_value_bound`), or SynthID's
    /// weighted-score tail (the score its detector decides with).
    pub fn ln_p_value(&self) -> f64 {
        match self {
            AnyDetection::Kgw(d) => d.ln_p_value,
            AnyDetection::Gumbel { detection, .. } => detection.ln_p_value_bound,
            AnyDetection::SynthId { detection, .. } => detection.weighted.ln_p_value,
        }
    }

    /// The key's public id: a greenmark key's id, or for another engine's config an id derived
    /// from its label (never from its key).
    pub fn key_id(&self) -> KeyId {
        match self {
            AnyDetection::Kgw(d) => d.key_id,
            AnyDetection::Gumbel { name, .. } | AnyDetection::SynthId { name, .. } => {
                label_id(name)
            }
        }
    }

    /// How the key is named in a record: the key id's hex, or the config's label.
    pub fn label(&self) -> String {
        match self {
            AnyDetection::Kgw(d) => d.key_id.to_string(),
            AnyDetection::Gumbel { name, .. } | AnyDetection::SynthId { name, .. } => name.clone(),
        }
    }

    /// The scheme's versioned id.
    pub fn scheme(&self) -> &'static str {
        match self {
            AnyDetection::Kgw(d) => d.scheme,
            AnyDetection::Gumbel { detection, .. } => detection.scheme,
            AnyDetection::SynthId { .. } => crate::synthid::SCHEME_ID,
        }
    }
}

/// The id of a config label. Gumbel configs keep the domain they were first given, so ids
/// already printed stay the same.
fn label_id(name: &str) -> KeyId {
    KeyId::of(b"gumbel-config-label\0", &[name.as_bytes()])
}

#[cfg(feature = "serde")]
impl serde::Serialize for AnyDetection {
    /// A greenmark key: its detection. Another engine's config: its detection with `key_id`
    /// set to the label, without the per-config verdict (`is_watermarked`, `threshold`: the
    /// keyring's corrected p-value decides), and its p-value labelled `uncorrected_*`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let (name, mut value, renamed) = match self {
            AnyDetection::Kgw(d) => return d.serialize(s),
            AnyDetection::Gumbel { name, detection } => (
                name,
                serde_json::to_value(detection).map_err(serde::ser::Error::custom)?,
                "ln_p_value_bound",
            ),
            AnyDetection::SynthId { name, detection } => (
                name,
                serde_json::to_value(detection).map_err(serde::ser::Error::custom)?,
                "weighted",
            ),
        };
        if let Some(object) = value.as_object_mut() {
            object.remove("is_watermarked");
            object.remove("threshold");
            if let Some(field) = object.remove(renamed) {
                object.insert(format!("uncorrected_{renamed}"), field);
            }
            object.insert("key_id".into(), name.clone().into());
            object.insert("scheme".into(), self.scheme().into());
        }
        value.serialize(s)
    }
}

impl Keyring {
    /// The keyring with a vLLM Gumbel config added, named by `name` (a public label: letters,
    /// digits, `.`, `_` and `-`, at most 64, unique among the keyring's configs). Scoring then
    /// covers every greenmark key and every config, with one Bonferroni correction; span
    /// search is for greenmark keys only.
    pub fn with_gumbel(self, name: &str, detector: GumbelDetector) -> Result<Keyring> {
        self.with_engine(name, Engine::Gumbel(detector))
    }

    /// The keyring with a SynthID Text config added, named by `name` (as for
    /// [`Keyring::with_gumbel`]). It enters the correction with its weighted score's p-value.
    pub fn with_synthid(self, name: &str, detector: SynthIdDetector) -> Result<Keyring> {
        self.with_engine(name, Engine::SynthId(detector))
    }

    fn with_engine(mut self, name: &str, engine: Engine) -> Result<Keyring> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(Error::option(
                "name",
                "a config's label must be 1 to 64 letters, digits, '.', '_' or '-'",
            ));
        }
        if self.engines.iter().any(|(n, _)| n == name) {
            return Err(Error::option(
                "name",
                format!("two configs are labelled {name:?}: give each its own"),
            ));
        }
        self.engines.push((name.to_string(), engine));
        Ok(self)
    }

    /// The other engines' configs, with their labels, in the order added.
    pub fn engines(&self) -> &[(String, Engine)] {
        &self.engines
    }

    /// Every greenmark key on `tokens` after `prompt`, and every other engine's config on
    /// `tokens` alone (vLLM's and transformers' detectors read the context from the scored
    /// ids), corrected together.
    pub(crate) fn detect_mixed(
        &self,
        tokens: &[u32],
        prompt: &[u32],
    ) -> Result<KeyringDetection<AnyDetection>> {
        let mut keys = Vec::with_capacity(self.detectors.len() + self.engines.len());
        for d in &self.detectors {
            keys.push(AnyDetection::Kgw(d.detect(tokens, prompt)?));
        }
        for (name, engine) in &self.engines {
            keys.push(engine.detect(name, tokens)?);
        }
        Ok(KeyringDetection::correct(keys, AnyDetection::ln_p_value))
    }
}

#[cfg(all(test, feature = "serde"))]
mod tests {
    use super::*;
    use crate::detect::Scored;
    use crate::gumbel::{argmax, GumbelConfig, GumbelKey, GumbelWatermarker};
    use crate::{Detector, Key, SpanOptions, WatermarkConfig};

    const SECRET: u64 = 0x9e37_79b9_7f4a_7c15;

    /// Ids a toy model writes under vLLM's Gumbel watermark with key `SECRET`.
    fn gumbel_text(n: u32) -> Vec<u32> {
        let wm = GumbelWatermarker::new(GumbelKey::vllm(SECRET), GumbelConfig::default()).unwrap();
        let mut request = wm.request(&[]);
        for step in 0..n {
            let logits: Vec<f32> = (0..1000u32)
                .map(|t| ((t * 37 + step * 17) % 131) as f32 / 16.0)
                .collect();
            request.next(&logits, 0.5, argmax).unwrap();
        }
        request.generated().to_vec()
    }

    fn ring() -> Keyring {
        let config = WatermarkConfig::new(1000).unwrap();
        let gumbel = GumbelDetector::new(GumbelKey::vllm(SECRET), GumbelConfig::default()).unwrap();
        Keyring::new(vec![
            Detector::new(&Key::from_bytes([1; 32]), config.clone()),
            Detector::new(&Key::from_bytes([2; 32]), config),
        ])
        .unwrap()
        .with_gumbel("vllm-prod", gumbel)
        .unwrap()
    }

    #[test]
    fn a_gumbel_text_fires_its_config_with_one_correction_over_all_keys() {
        let ring = ring();
        let tokens = gumbel_text(120);
        let scored = ring.score(&tokens, &[], None).unwrap();
        let Scored::Mixed(k) = &scored else {
            panic!("a keyring with a Gumbel config scores Mixed")
        };
        assert_eq!(k.keys.len(), 3);
        assert_eq!(k.strongest_key, 2, "the Gumbel config fired");
        let own = k.keys[2].ln_p_value();
        assert!(
            (k.ln_p_value - (own + 3f64.ln())).abs() < 1e-9,
            "Bonferroni over 3"
        );
        assert!(scored.is_significant(1e-6));
        let json = scored.to_json(tokens.len(), 1e-6);
        assert_eq!(json["key_id"], "vllm-prod");
        assert_eq!(json["watermarked"], true);
        assert_eq!(json["correction"], "bonferroni");
        let entry = &json["keys"][2];
        assert_eq!(entry["key_id"], "vllm-prod");
        assert!(entry.get("is_watermarked").is_none() && entry.get("p_value").is_none());
        assert!(entry["uncorrected_ln_p_value_bound"].is_number(), "{entry}");
        let text = json.to_string();
        assert!(!text.contains(&SECRET.to_string()) && !text.contains("9e3779b97f4a7c15"));
        // The greenmark keys' own results are there, uncorrected, and not significant.
        assert!(
            json["keys"][0]["uncorrected_log10_p_value"]
                .as_f64()
                .unwrap()
                > -6.0
        );
    }

    #[test]
    fn a_greenmark_text_fires_its_key_and_span_search_is_refused() {
        let ring = ring();
        let config = WatermarkConfig::new(1000).unwrap();
        let wm = crate::Watermarker::new(&Key::from_bytes([2; 32]), config);
        let mut tokens = vec![1u32];
        for step in 0..150u32 {
            let mut logits: Vec<f32> = (0..1000u32)
                .map(|v| ((v ^ step).wrapping_mul(2654435761) >> 22) as f32 / 256.0)
                .collect();
            wm.bias(&mut logits, &tokens).unwrap();
            tokens.push(argmax(&logits));
        }
        let scored = ring.score(&tokens[1..], &tokens[..1], None).unwrap();
        assert_eq!(scored.strongest_key(), 1);
        assert!(scored.is_significant(1e-6));
        assert_eq!(scored.counts().key_id, Key::from_bytes([2; 32]).id());
        let err = ring
            .score(&tokens, &[], Some(SpanOptions::default()))
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported(_)), "{err}");
    }

    #[test]
    fn a_synthid_text_fires_its_config_and_is_reported_by_label() {
        use crate::synthid::{SynthIdConfig, SynthIdDetector, SynthIdWatermarker};
        let config = SynthIdConfig::new(4, vec![654, 400, 836, 123, 340]).unwrap();
        let wm = SynthIdWatermarker::new(config.clone()).unwrap();
        let mut request = wm.request();
        for step in 0..160u32 {
            let mut row: Vec<f32> = (0..1000u32)
                .map(|t| ((t ^ step).wrapping_mul(2654435761) >> 28) as f32 / 4.0)
                .collect();
            request.watermark(&mut row).unwrap();
            request.push(argmax(&row));
        }
        let tokens = request.generated().to_vec();
        let ring = ring()
            .with_synthid("hf-synthid", SynthIdDetector::new(config).unwrap())
            .unwrap();
        let scored = ring.score(&tokens, &[], None).unwrap();
        let Scored::Mixed(k) = &scored else {
            panic!("a keyring with a SynthID config scores Mixed")
        };
        assert_eq!(k.keys.len(), 4);
        assert_eq!(k.strongest_key, 3, "the SynthID config fired");
        let own = k.keys[3].ln_p_value();
        assert!(
            (k.ln_p_value - (own + 4f64.ln())).abs() < 1e-9,
            "Bonferroni over 4"
        );
        assert!(scored.is_significant(1e-6));
        let json = scored.to_json(tokens.len(), 1e-6);
        assert_eq!(json["key_id"], "hf-synthid");
        let entry = &json["keys"][3];
        assert_eq!(entry["scheme"], "synthid-text-transformers-v1");
        assert!(entry.get("weighted").is_none() && entry.get("is_watermarked").is_none());
        assert!(
            entry["uncorrected_weighted"]["ln_p_value"].is_number(),
            "{entry}"
        );
        let text = json.to_string();
        assert!(!text.contains("654, 400") && !text.contains("[654,400"));
        // Selecting it alone keeps it (with a greenmark key, as a selection must).
        let id = Key::from_bytes([1; 32]).id().to_string();
        let one = ring.select(&[id.as_str(), "hf-synthid"]).unwrap();
        assert_eq!(one.engines().len(), 1);
        assert!(ring.select(&["hf-synthid"]).is_err());
    }

    #[test]
    fn labels_are_checked() {
        let gumbel = || GumbelDetector::new(GumbelKey::vllm(1), GumbelConfig::default()).unwrap();
        let base = Keyring::new(vec![Detector::new(
            &Key::from_bytes([1; 32]),
            WatermarkConfig::new(1000).unwrap(),
        )])
        .unwrap();
        for bad in ["", "has space", "ümlaut", &"x".repeat(65)] {
            assert!(base.clone().with_gumbel(bad, gumbel()).is_err(), "{bad:?}");
        }
        let with_a = base.with_gumbel("a", gumbel()).unwrap();
        let twice = with_a.clone().with_gumbel("a", gumbel());
        assert!(twice.unwrap_err().to_string().contains("labelled"));
        // Labels are one namespace across engines.
        let synthid = crate::synthid::SynthIdDetector::new(
            crate::synthid::SynthIdConfig::new(3, vec![1, 2, 3]).unwrap(),
        )
        .unwrap();
        let clash = with_a.with_synthid("a", synthid);
        assert!(clash.unwrap_err().to_string().contains("labelled"));
    }
}
