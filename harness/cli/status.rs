use crate::lab::{self, Lab};
use anyhow::Result;

/// `pglab status`: every lab, its backend and box, and the state of its hosts.
pub fn status() -> Result<i32> {
    let labs = lab::list()?;
    if labs.is_empty() {
        println!("no labs");
    }
    for r in labs {
        let l = Lab::attach(Some(&r.id))?;
        let hosts: Vec<String> = l
            .status()
            .iter()
            .map(|(h, s)| format!("{h}={s:?}").to_lowercase())
            .collect();
        println!(
            "lab {}  backend={} box={} {} owner={}  {}",
            r.id,
            r.backend,
            r.box_name,
            if r.kept { "kept" } else { "running" },
            r.owner_pid,
            hosts.join(" ")
        );
    }
    Ok(0)
}
