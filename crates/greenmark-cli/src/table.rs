//! Plain-text tables and the number formats shared by the table, JSON and HTML outputs.

use greenmark::Detection;

/// The default significance threshold of every verdict.
pub const DEFAULT_THRESHOLD: f64 = 1e-6;

/// A threshold such as `1e-6` written compactly.
pub fn format_threshold(threshold: f64) -> String {
    format!("{threshold:e}")
}

/// A p-value for humans: `0.42`, `3.1e-9`, or `10^-412.3` where `f64` underflows.
pub fn format_p(detection: &Detection) -> String {
    format_p_value(detection.p_value, detection.log10_p_value)
}

/// [`format_p`] of a p-value given as its value and its base-10 log.
pub fn format_p_value(p_value: f64, log10: f64) -> String {
    if log10 > -3.0 {
        format!("{p_value:.3}")
    } else if log10 > -300.0 {
        format!("{p_value:.1e}")
    } else {
        format!("10^{log10:.1}")
    }
}

/// Text cut to at most `max` characters, with an ellipsis when cut; newlines become spaces.
pub fn truncate(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Pad on the right.
    Left,
    /// Pad on the left (numbers).
    Right,
}

/// A plain-text table: a header row and rows, columns padded to their widest cell.
#[derive(Debug)]
pub struct Table {
    header: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and alignments.
    pub fn new(header: &[(&str, Align)]) -> Table {
        Table {
            header: header.iter().map(|&(h, a)| (h.to_string(), a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (one cell per column).
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// The table as lines of text, columns separated by two spaces.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|(h, _)| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let headers: Vec<String> = self.header.iter().map(|(h, _)| h.clone()).collect();
        for row in std::iter::once(&headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                let pad = widths[i] - cell.chars().count();
                if i > 0 {
                    line.push_str("  ");
                }
                match self.header[i].1 {
                    Align::Left => {
                        line.push_str(cell);
                        line.extend(std::iter::repeat_n(' ', pad));
                    }
                    Align::Right => {
                        line.extend(std::iter::repeat_n(' ', pad));
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let mut t = Table::new(&[("kind", Align::Left), ("z", Align::Right)]);
        t.row(vec!["watermarked".into(), "12.50".into()]);
        t.row(vec!["plain".into(), "-0.3".into()]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "kind             z");
        assert_eq!(lines[1], "watermarked  12.50");
        assert_eq!(lines[2], "plain         -0.3");
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("héllo\nworld", 20), "héllo world");
        assert_eq!(truncate("abcdef", 4), "abc…");
    }

    #[test]
    fn thresholds_print_compactly() {
        assert_eq!(format_threshold(1e-6), "1e-6");
        assert_eq!(format_threshold(0.001), "1e-3");
        assert_eq!(format_threshold(2.5e-8), "2.5e-8");
    }
}
