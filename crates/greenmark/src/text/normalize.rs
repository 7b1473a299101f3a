//! Unicode normalization applied before tokenizing, so that edits invisible to a reader do not
//! change the token ids (and erase the watermark).

use unicode_normalization::UnicodeNormalization;

/// One normalization and how many characters it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Applied {
    /// What was done, e.g. `"removed zero-width and invisible characters"`.
    pub what: &'static str,
    /// Characters changed (for NFC: characters composed away).
    pub count: usize,
}

/// A normalized text and the normalizations that changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The text after normalization.
    pub text: String,
    /// Each normalization that changed something, in the order applied.
    pub applied: Vec<Applied>,
}

/// Removed: zero-width space/joiners, word joiner, BOM, soft hyphen, bidi controls.
pub const REMOVED: &str = "removed zero-width and invisible characters";
/// Folded: no-break and typographic spaces become an ASCII space.
pub const FOLDED: &str = "folded no-break and typographic spaces to ' '";
/// Unicode canonical composition.
pub const NFC: &str = "Unicode NFC";

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200D}'
            | '\u{2060}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
    )
}

fn is_odd_space(c: char) -> bool {
    matches!(
        c,
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

/// Whether [`normalize`] removes or replaces `c` by itself (NFC aside, which acts on
/// sequences).
pub(crate) fn is_changed(c: char) -> bool {
    is_invisible(c) || is_odd_space(c)
}

/// Removes invisible characters, folds odd spaces to `' '`, then applies NFC (in that order:
/// a removed character between a letter and its combining accent no longer blocks
/// composition). Newlines and tabs are kept.
///
/// ```
/// use greenmark::text::normalize;
/// let n = normalize("caf\u{0065}\u{0301}\u{00A0}ok\u{200B}");
/// assert_eq!(n.text, "café ok");
/// assert_eq!(n.applied.len(), 3);
/// ```
pub fn normalize(text: &str) -> Normalized {
    let (mut removed, mut folded) = (0, 0);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if is_invisible(c) {
            removed += 1;
        } else if is_odd_space(c) {
            folded += 1;
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    let mut applied = Vec::new();
    if removed > 0 {
        applied.push(Applied {
            what: REMOVED,
            count: removed,
        });
    }
    if folded > 0 {
        applied.push(Applied {
            what: FOLDED,
            count: folded,
        });
    }
    if !unicode_normalization::is_nfc_quick(out.chars())
        .eq(&unicode_normalization::IsNormalized::Yes)
    {
        let composed: String = out.nfc().collect();
        if composed != out {
            let before = out.chars().count();
            let after = composed.chars().count();
            applied.push(Applied {
                what: NFC,
                count: before.saturating_sub(after).max(1),
            });
            out = composed;
        }
    }
    Normalized { text: out, applied }
}

/// Adds `more` into `total`, one entry per kind.
pub(crate) fn merge(total: &mut Vec<Applied>, more: &[Applied]) {
    for a in more {
        match total.iter_mut().find(|t| t.what == a.what) {
            Some(t) => t.count += a.count,
            None => total.push(*a),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_untouched() {
        let n = normalize("Plain ASCII text,\twith a tab\nand a newline.");
        assert_eq!(n.text, "Plain ASCII text,\twith a tab\nand a newline.");
        assert!(n.applied.is_empty());
    }

    #[test]
    fn each_normalization_is_counted() {
        let n = normalize("a\u{200B}b\u{200D}c\u{FEFF}\u{00A0}d\u{3000}e\u{0301}");
        assert_eq!(n.text, "abc d é");
        assert_eq!(
            n.applied,
            vec![
                Applied {
                    what: REMOVED,
                    count: 3
                },
                Applied {
                    what: FOLDED,
                    count: 2
                },
                Applied {
                    what: NFC,
                    count: 1
                },
            ]
        );
    }

    #[test]
    fn an_invisible_character_does_not_block_composition() {
        assert_eq!(normalize("e\u{200B}\u{0301}").text, "é");
    }
}
