//! Shared checks of the fuzz targets.

/// Panics when the error (`Display` or `Debug`) contains a string value of `text` (a JSON
/// string, or the whole text) of 16 or more letters and digits, at least one a digit: errors
/// never quote a value, and a secret (hex digits) is that long. Shorter values, and names of
/// letters only (an unknown field name is shown when it looks like one), could match the
/// error's own words.
///
/// A key's public id (16 hex digits, derived from a 64-hex-digit value of `text`) may be shown:
/// a key file's `key_id` error names the id of its secret.
#[allow(dead_code)]
pub fn assert_no_secret(text: &str, err: &greenmark::Error) {
    let mut shown = format!("{err} {err:?}");
    for value in text.split('"') {
        if let Ok(key) = greenmark::Key::from_hex(value) {
            shown = shown.replace(&key.id().to_string(), "");
        }
    }
    let mut values: Vec<&str> = text.split('"').skip(1).step_by(2).collect();
    values.push(text.trim());
    for value in values {
        if value.len() >= 16
            && value.bytes().all(|b| b.is_ascii_alphanumeric())
            && value.bytes().any(|b| b.is_ascii_digit())
        {
            assert!(
                !shown.contains(value),
                "an error quotes a value of the input: {shown}"
            );
        }
    }
}
