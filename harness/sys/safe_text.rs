//! Text from a submission — its folder's name, its hosts' output, messages that quote them —
//! is the student's word, and a student may write it to act on whoever reads the report. Each
//! format gets such text in a form that cannot act as that format's syntax:
//! - CSV: a cell a spreadsheet would evaluate (starting with `=`, `+`, `-`, `@`, tab or CR)
//!   gets a leading `'` (OWASP's CSV-injection rule); commas, quotes, CR and LF are quoted;
//! - Markdown (tables, report cards): `|`, `\`, HTML and link brackets are escaped, line breaks
//!   become spaces, so a cell stays one cell and renders as text;
//! - XML (JUnit): characters XML 1.0 forbids (controls, U+FFFE, U+FFFF) become U+FFFD, so one
//!   submission cannot make the whole cohort's `junit.xml` unparseable;
//! - terminal and text files: control characters (escape sequences, CR, bidi overrides) are
//!   shown escaped, never interpreted by the teacher's terminal.

/// One CSV cell.
pub fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// One Markdown table cell (or a line of a report card).
pub fn markdown_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in terminal(s).chars() {
        match c {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\t' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Whether XML 1.0 allows the character in a document.
fn xml_allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Text for an XML attribute or element: forbidden characters replaced, markup escaped.
pub fn xml_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if !xml_allowed(c) || c.is_control() && !matches!(c, '\t' | '\n' | '\r') => {
                out.push('\u{FFFD}')
            }
            c => out.push(c),
        }
    }
    out
}

/// Characters that reorder what a reader sees (bidi overrides and isolates).
fn bidi(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// Text for the terminal and text files: line feeds and tabs stay, every other control
/// character (ESC, CR, BEL, C1, DEL) and bidi override is shown as `\u{..}`.
pub fn terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if (c.is_control() && !matches!(c, '\n' | '\t')) || bidi(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a hostile submission puts in its folder name, its error messages and its hosts'
    /// output.
    const HOSTILE: &str = "=HYPERLINK(\"http://x\";\"y\") | <img src=x onerror=alert(1)> [a](javascript:1)\r\n\u{1b}]0;pwned\u{7}\u{1b}[2J\u{FFFF}\u{FFFE}\u{202E}end";

    #[test]
    fn csv_cells_are_not_formulas_and_stay_one_record() {
        for lead in ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"] {
            let c = csv_cell(lead);
            assert!(c.trim_start_matches('"').starts_with('\''), "{c:?}");
        }
        let c = csv_cell(HOSTILE);
        assert!(c.starts_with("\"'="), "{c}");
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("bare\rcr"), "\"bare\rcr\"");
    }

    #[test]
    fn markdown_cells_stay_one_cell_of_text() {
        let m = markdown_cell(HOSTILE);
        assert!(!m.contains(['\n', '\r', '\u{1b}', '<', '>']), "{m}");
        assert_eq!(m.matches('|').count(), m.matches("\\|").count(), "{m}");
        assert!(m.contains("\\[a\\]"), "{m}");
    }

    #[test]
    fn xml_text_parses_whatever_the_input() {
        let x = xml_text(HOSTILE);
        assert!(
            !x.contains(['\u{FFFF}', '\u{FFFE}', '\u{1b}', '\u{7}', '<']),
            "{x}"
        );
        assert!(x.chars().all(xml_allowed));
    }

    #[test]
    fn the_terminal_sees_escapes_not_sequences() {
        let t = terminal(HOSTILE);
        assert!(!t.contains(['\u{1b}', '\u{7}', '\r', '\u{202E}']), "{t}");
        assert!(t.contains("\\u{1b}]0;pwned"), "{t}");
        assert_eq!(terminal("line\n\ttab"), "line\n\ttab");
    }
}
