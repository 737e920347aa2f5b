//! `cohort.html`: the cohort as a page to look at, one self-contained file (no script, no
//! network, no font or style from elsewhere): the matrix as a heat map (each cell's
//! explanation on hover), the score histogram, what the cohort got wrong, and a link to each
//! report card. Every text from a submission goes through `safe_text` (escaped markup,
//! control characters shown).

use super::cohort::{mistakes, Row};
use super::copies::Alike;
use super::outcome::Status;
use crate::sys::safe_text::{terminal, xml_text};

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;font-size:14px}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}\
td.passed{background:#2e7d32;color:#fff}td.failed{background:#c62828;color:#fff}\
td.skipped{background:#bdbdbd;color:#222}td.cell{text-align:center;min-width:5.5em}\
.bar{fill:#1565c0}.axis{font-size:12px}small{color:#555}";

/// Text from anywhere (a folder name, a server's words) as HTML text or attribute value.
fn h(s: &str) -> String {
    xml_text(&terminal(s))
}

/// A folder name as a relative link (every byte but `[A-Za-z0-9._-]` percent-encoded).
fn href(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn word(s: Status) -> &'static str {
    match s {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    }
}

/// The heat map: a row per submission, a cell per group (its why on hover).
fn matrix(groups: &[String], rows: &[Row]) -> String {
    let mut s = String::from("<table id=\"matrix\"><tr><th>submission</th><th>score</th>");
    for g in groups {
        s.push_str(&format!("<th>{}</th>", h(g)));
    }
    s.push_str("</tr>\n");
    for r in rows {
        s.push_str(&format!(
            "<tr><td><a href=\"{}/report.md\">{}</a></td><td>{}/{}</td>",
            href(&r.name),
            h(&r.name),
            r.score,
            r.max_score
        ));
        for c in &r.cells {
            let why = if c.why.is_empty() {
                word(c.status)
            } else {
                &c.why
            };
            s.push_str(&format!(
                "<td class=\"cell {w}\" title=\"{}\">{w}</td>",
                h(why),
                w = word(c.status)
            ));
        }
        s.push_str("</tr>\n");
    }
    s + "</table>\n"
}

/// The scores as ten bins of the maximum, drawn in SVG.
fn histogram(rows: &[Row]) -> String {
    let mut bins = [0usize; 10];
    for r in rows.iter().filter(|r| r.max_score > 0.0) {
        let i = ((r.score / r.max_score) * 10.0).floor() as usize;
        bins[i.min(9)] += 1;
    }
    let top = bins.iter().copied().max().unwrap_or(0).max(1);
    let (w, hgt) = (44, 160);
    let mut s = format!(
        "<svg id=\"histogram\" width=\"{}\" height=\"{}\" role=\"img\" aria-label=\"scores\">",
        w * 10 + 20,
        hgt + 50
    );
    for (i, n) in bins.iter().enumerate() {
        let bh = n * hgt / top;
        let x = 10 + i * w;
        s.push_str(&format!(
            "<rect class=\"bar\" x=\"{x}\" y=\"{}\" width=\"{}\" height=\"{bh}\"><title>{}-{}%: {n}</title></rect>",
            hgt - bh + 20,
            w - 6,
            i * 10,
            i * 10 + 10
        ));
        s.push_str(&format!(
            "<text class=\"axis\" x=\"{x}\" y=\"{}\">{}%</text><text class=\"axis\" x=\"{x}\" y=\"{}\">{n}</text>",
            hgt + 36,
            i * 10,
            hgt - bh + 16
        ));
    }
    s + "</svg>\n"
}

/// The whole page.
pub fn cohort_html(
    groups: &[String],
    legend: &[(String, String)],
    rows: &[Row],
    alike: &[Alike],
) -> String {
    let passed = rows.iter().filter(|r| r.passed()).count();
    let mut s = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>pglab cohort</title><style>{STYLE}</style></head><body>\n<h1>pglab cohort</h1>\n<p id=\"summary\">{} submissions, {passed} passed every group.</p>\n",
        rows.len()
    );
    s.push_str(&matrix(groups, rows));
    s.push_str("<h2>Scores</h2>\n");
    s.push_str(&histogram(rows));
    let wrong = mistakes(rows);
    if !wrong.is_empty() {
        s.push_str("<h2>What the cohort got wrong</h2>\n<table id=\"mistakes\"><tr><th>mistake</th><th>submissions</th><th>who</th></tr>\n");
        for m in &wrong {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                h(&m.mistake),
                m.count,
                h(&m.submissions.join(", "))
            ));
        }
        s.push_str("</table>\n");
    }
    if !alike.is_empty() {
        s.push_str("<h2>Submissions alike</h2>\n<table id=\"alike\"><tr><th>submissions</th><th>alike</th><th>files in common</th></tr>\n");
        for a in alike {
            s.push_str(&format!(
                "<tr><td>{}</td><td>{:.0}%</td><td>{}</td></tr>\n",
                h(&a.submissions.join(", ")),
                a.similarity * 100.0,
                h(&a.files.join(", "))
            ));
        }
        s.push_str("</table>\n");
    }
    s.push_str("<h2>Check groups</h2>\n<ul>\n");
    for (g, d) in legend {
        s.push_str(&format!("<li><b>{}</b>: {}</li>\n", h(g), h(d)));
    }
    s + "</ul>\n<p><small>Hover a cell for its explanation; a name opens its report card.</small></p>\n</body></html>\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::cohort::Cell;

    /// A hostile name and message stay text: no tag, no script, no link elsewhere, and the
    /// page names no resource outside itself.
    #[test]
    fn the_page_is_self_contained_and_student_text_stays_text() {
        let evil = "<script>alert(1)</script>\"><img src=http://x onerror=y>\u{1b}[2J";
        let cells = vec![
            Cell {
                group: "provisioned".into(),
                status: Status::Passed,
                why: String::new(),
            },
            Cell {
                group: "replicate".into(),
                status: Status::Failed,
                why: evil.into(),
            },
        ];
        let rows = [
            Row {
                score: 10.0,
                max_score: 30.0,
                ..Row::with_cells(evil, "h", cells)
            },
            Row {
                score: 30.0,
                max_score: 30.0,
                ..Row::with_cells("ann", "h", vec![])
            },
        ];
        let groups = ["provisioned".to_string(), "replicate".to_string()];
        let page = cohort_html(&groups, &[], &rows, &[]);
        for tag in ["<script", "<img", "<link", "url(", "\u{1b}"] {
            assert!(!page.contains(tag), "{tag} in {page}");
        }
        // Its only links are the report cards beside it.
        let hrefs: Vec<&str> = page.split("href=\"").skip(1).collect();
        assert_eq!(hrefs.len(), 2);
        assert!(hrefs
            .iter()
            .all(|h| h.split('"').next().unwrap().ends_with("/report.md")));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("href=\"%3Cscript%3Ealert%281%29%3C%2Fscript%3E"));
        assert!(page.contains("<td class=\"cell failed\" title=\"&lt;script&gt;"));
        assert!(page.contains("2 submissions, 1 passed every group."));
        // The histogram: one score in 30-40%, one in 90-100%.
        assert!(
            page.contains("<title>30-40%: 1</title>") && page.contains("<title>90-100%: 1</title>")
        );
    }
}
