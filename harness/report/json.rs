//! The JSON report (`run --json`): one object per lab.

use super::outcome::RunReport;

pub fn render(reports: &[RunReport]) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(reports)?)
}
