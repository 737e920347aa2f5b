//! Installing Debian packages the way a careful admin would: simulate first (`apt-get -s`),
//! and when apt refuses because a package already on the machine came from an origin that is
//! not in apt's lists (bookworm-backports, a vendor's repository), work out a consistent set,
//! say what changes and why, and only then change it. Where no consistent set is found, stop
//! with apt's own words and the exact command to run.
//!
//! Measured on this project's machine image (Debian 12 with qemu-utils 1:10.0.2 from
//! bookworm-backports and nodejs 20 from NodeSource, neither source in its apt lists):
//! `apt-get install vagrant-libvirt qemu-system-x86 qemu-utils ...` fails with
//! "qemu-utils : Breaks: qemu-system-common (< 1:8.0+dfsg-5~)"; with
//! `qemu-utils=1:7.2+dfsg-7+deb12u18+b2 --allow-downgrades` it installs 127 packages and
//! removes none. The planner finds that second command from the first one's output.
//!
//! The planning is pure (text in, decisions out) so it is unit-tested from recorded apt output;
//! only `install` touches the machine. apt's output goes to a log file; the terminal gets one
//! line per install.

use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One line of apt's "The following packages have unmet dependencies" block:
/// ` qemu-utils : Breaks: qemu-system-common (< 1:8.0+dfsg-5~) but 1:7.2 is to be installed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmet {
    /// The package whose relation cannot be met.
    pub package: String,
    /// `Depends`, `Breaks`, `Conflicts`, `PreDepends`...
    pub relation: String,
    /// The package named by the relation.
    pub target: String,
    /// The line as apt wrote it (for messages).
    pub line: String,
}

/// What `apt-cache policy PKG` says of one package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub installed: Option<String>,
    /// Versions in the order apt lists them (newest first), each with where it comes from.
    pub versions: Vec<VersionRow>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    pub version: String,
    /// Origins other than `/var/lib/dpkg/status`, e.g. "http://deb.debian.org/debian bookworm/main".
    pub origins: Vec<String>,
}

impl Policy {
    /// The installed version is in none of apt's lists: it came from elsewhere.
    pub fn installed_from_elsewhere(&self) -> bool {
        let Some(inst) = &self.installed else {
            return false;
        };
        !self
            .versions
            .iter()
            .any(|v| &v.version == inst && !v.origins.is_empty())
    }

    /// The newest version apt's lists offer, with its first origin.
    pub fn newest_in_lists(&self) -> Option<&VersionRow> {
        self.versions.iter().find(|v| !v.origins.is_empty())
    }
}

/// What to hand to `apt-get install`, and what it changes beyond plain installs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Package names, or `name=version` where the planner chose a version.
    pub specs: Vec<String>,
    pub no_recommends: bool,
    pub allow_downgrades: bool,
    /// One sentence per change the user did not ask for: what and why.
    pub changes: Vec<String>,
}

impl Plan {
    pub fn new(packages: &[&str], no_recommends: bool) -> Plan {
        Plan {
            specs: packages.iter().map(|p| p.to_string()).collect(),
            no_recommends,
            ..Plan::default()
        }
    }

    /// The arguments after `apt-get`.
    pub fn args(&self, simulate: bool) -> Vec<String> {
        let mut a = vec!["install".to_string(), "-y".to_string(), "-q".to_string()];
        if simulate {
            a.push("-s".into());
        }
        if self.no_recommends {
            a.push("--no-install-recommends".into());
        }
        if self.allow_downgrades {
            a.push("--allow-downgrades".into());
        }
        a.extend(self.specs.iter().cloned());
        a
    }

    /// The command a person would type.
    pub fn command(&self) -> String {
        let args: Vec<String> = self.args(false).into_iter().filter(|a| a != "-q").collect();
        format!("apt-get {}", args.join(" "))
    }

    fn names(&self) -> Vec<&str> {
        self.specs
            .iter()
            .map(|s| s.split('=').next().unwrap_or(s))
            .collect()
    }
}

/// The unmet-dependency lines of a failed `apt-get -s install`.
pub fn parse_unmet(sim: &str) -> Vec<Unmet> {
    let re = regex::Regex::new(
        r"^\s*(\S+)\s*:\s*(PreDepends|Depends|Breaks|Conflicts|Recommends):\s*(\S+)",
    )
    .expect("valid regex");
    let cont = regex::Regex::new(r"^\s+(PreDepends|Depends|Breaks|Conflicts):\s*(\S+)")
        .expect("valid regex");
    let mut out = Vec::new();
    let mut last_package = None;
    for line in sim.lines() {
        if let Some(c) = re.captures(line) {
            last_package = Some(c[1].to_string());
            out.push(Unmet {
                package: c[1].to_string(),
                relation: c[2].to_string(),
                target: c[3].to_string(),
                line: line.trim().to_string(),
            });
            continue;
        }
        // Continuation lines (" Depends: x but y is to be installed") belong to the package above.
        if let (Some(c), Some(p)) = (cont.captures(line), &last_package) {
            out.push(Unmet {
                package: p.clone(),
                relation: c[1].to_string(),
                target: c[2].to_string(),
                line: format!("{p} : {}", line.trim()),
            });
        }
    }
    out
}

/// `apt-cache policy A B ...` → one `Policy` per package.
pub fn parse_policy(text: &str) -> BTreeMap<String, Policy> {
    let mut all = BTreeMap::new();
    let mut current: Option<(String, Policy)> = None;
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            if let Some((name, p)) = current.take() {
                all.insert(name, p);
            }
            current = Some((line.trim_end_matches(':').to_string(), Policy::default()));
            continue;
        }
        let Some((_, p)) = current.as_mut() else {
            continue;
        };
        policy_line(p, line);
    }
    if let Some((name, p)) = current {
        all.insert(name, p);
    }
    all
}

fn policy_line(p: &mut Policy, line: &str) {
    let t = line.trim();
    if let Some(v) = t.strip_prefix("Installed:") {
        let v = v.trim();
        p.installed = (v != "(none)").then(|| v.to_string());
    } else if t.starts_with("Candidate:") || t.starts_with("Version table:") {
    } else if line.starts_with("     ") && !line.starts_with("        ") {
        // "     1:7.2+dfsg-7 500" or " *** 1:10.0.2 100"
        let version = t.trim_start_matches("***").split_whitespace().next();
        if let Some(v) = version {
            p.versions.push(VersionRow {
                version: v.to_string(),
                origins: Vec::new(),
            });
        }
    } else if line.starts_with(" *** ") {
        if let Some(v) = t.trim_start_matches("***").split_whitespace().next() {
            p.versions.push(VersionRow {
                version: v.to_string(),
                origins: Vec::new(),
            });
        }
    } else if let Some(row) = p.versions.last_mut() {
        // "        500 http://deb.debian.org/debian bookworm/main amd64 Packages"
        let origin: Vec<&str> = t.split_whitespace().skip(1).collect();
        if !origin.is_empty() && origin[0] != "/var/lib/dpkg/status" {
            row.origins
                .push(origin.iter().take(2).copied().collect::<Vec<_>>().join(" "));
        }
    }
}

/// Why apt refused, as a plan that makes it accept, or why no such plan is known.
/// `policy` must cover every package named in `unmet`.
pub fn resolve(
    plan: &Plan,
    unmet: &[Unmet],
    policy: &BTreeMap<String, Policy>,
) -> std::result::Result<Plan, String> {
    if unmet.is_empty() {
        return Err("apt refused without naming an unmet dependency".into());
    }
    let mut next = plan.clone();
    for u in unmet {
        let Some(p) = policy.get(&u.package) else {
            return Err(format!("apt says: {}", u.line));
        };
        if !p.installed_from_elsewhere() {
            return Err(format!("apt says: {}", u.line));
        }
        let installed = p.installed.clone().unwrap_or_default();
        if next.names().contains(&u.target.as_str()) && u.relation == "Conflicts" {
            return Err(conflict_with_request(u, p, &installed));
        }
        let Some(row) = p.newest_in_lists() else {
            return Err(format!(
                "{} {installed} came from an origin that is not in apt's lists and no version of it is in them; apt says: {}",
                u.package, u.line
            ));
        };
        if next
            .specs
            .iter()
            .any(|s| s.starts_with(&format!("{}=", u.package)))
        {
            continue;
        }
        next.specs.retain(|s| s != &u.package);
        next.specs.push(format!("{}={}", u.package, row.version));
        next.allow_downgrades = true;
        next.changes.push(format!(
            "{pkg} {installed} is installed from an origin that is not in apt's lists, and apt says \"{line}\": \
             pglab installs {pkg} {v} from {origin} instead (a downgrade), the version that matches the packages it needs",
            pkg = u.package,
            line = u.line,
            v = row.version,
            origin = row.origins.first().map(String::as_str).unwrap_or("apt's lists"),
        ));
    }
    if &next == plan {
        return Err(format!(
            "apt still refuses: {}",
            unmet
                .iter()
                .map(|u| u.line.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        ));
    }
    Ok(next)
}

fn conflict_with_request(u: &Unmet, p: &Policy, installed: &str) -> String {
    let replace = p
        .newest_in_lists()
        .map(|r| {
            format!(
                "apt-get install --allow-downgrades {}={} {}",
                u.package, r.version, u.target
            )
        })
        .unwrap_or_else(|| format!("apt-get remove {}", u.package));
    format!(
        "{pkg} {installed} (from an origin that is not in apt's lists) conflicts with {t}, which pglab needs: \
         pglab does not replace another vendor's {pkg} by itself. Either get {t}'s tool from the same vendor as {pkg}, \
         or replace {pkg} with Debian's: {replace}",
        pkg = u.package,
        t = u.target,
    )
}

/// Packages a simulation would remove (`Remv NAME ...`): a plan that removes something the
/// user did not ask to remove is refused.
pub fn removals(sim: &str) -> Vec<String> {
    sim.lines()
        .filter_map(|l| l.strip_prefix("Remv "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// How many packages a simulation installs or upgrades (`Inst` lines).
pub fn install_count(sim: &str) -> usize {
    sim.lines().filter(|l| l.starts_with("Inst ")).count()
}

/// Where an install's output goes: `<state>/logs/apt-<time>-<pid>.log`.
fn log_path() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::sys::paths::state_root()
        .join("logs")
        .join(format!("apt-{secs}-{}.log", std::process::id()))
}

/// Runs apt-get with `args`, its output appended to `log`; returns (success, output).
fn apt_get(args: &[String], log: &Path) -> Result<(bool, String)> {
    use std::io::Write;
    let mut argv = vec![
        "apt-get".to_string(),
        "-o".into(),
        "DPkg::Lock::Timeout=600".into(),
    ];
    argv.extend(args.iter().cloned());
    let setup = super::exec::Setup {
        env: vec![
            ("DEBIAN_FRONTEND".into(), "noninteractive".into()),
            ("LC_ALL".into(), "C".into()),
        ],
        ..Default::default()
    };
    // No practical deadline: killing apt-get in the middle of dpkg would leave this machine's
    // packages half configured. (DPkg::Lock::Timeout bounds the wait for the lock.)
    let out = super::exec::run_with(&argv, None, Duration::from_secs(24 * 3600), &setup)?;
    let text = out.combined();
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    writeln!(f, "$ apt-get {}\n{text}", args.join(" "))?;
    Ok((out.ok(), text))
}

fn policy_of(names: &[String], log: &Path) -> Result<BTreeMap<String, Policy>> {
    use std::io::Write;
    let mut argv = vec!["apt-cache".to_string(), "policy".into()];
    argv.extend(names.iter().cloned());
    let setup = super::exec::Setup {
        env: vec![("LC_ALL".into(), "C".into())],
        ..Default::default()
    };
    let text = super::exec::run_with(&argv, None, Duration::from_secs(120), &setup)?.stdout;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    writeln!(f, "$ apt-cache policy {}\n{text}", names.join(" "))?;
    Ok(parse_policy(&text))
}

/// Simulates `plan` and, while apt refuses, asks `resolve` for a better one (at most three
/// rounds). Returns the accepted plan and its simulation.
fn accepted_plan(mut plan: Plan, log: &Path) -> Result<(Plan, String)> {
    let mut updated = false;
    for _round in 0..4 {
        let (ok, sim) = apt_get(&plan.args(true), log)?;
        if ok {
            let removed = removals(&sim);
            if !removed.is_empty() {
                bail!(refusal(
                    &plan,
                    &format!("it would remove {}", removed.join(" ")),
                    log
                ));
            }
            return Ok((plan, sim));
        }
        if !updated
            && (sim.contains("Unable to locate package")
                || sim.contains("has no installation candidate"))
        {
            // Package lists older than the archive (a fresh machine image): refresh once.
            updated = true;
            apt_get(&["update".to_string(), "-q".to_string()], log)?;
            continue;
        }
        let unmet = parse_unmet(&sim);
        let names: Vec<String> = unmet.iter().map(|u| u.package.clone()).collect();
        let policy = policy_of(&names, log)?;
        plan = resolve(&plan, &unmet, &policy)
            .map_err(|why| anyhow::anyhow!(refusal(&plan, &why, log)))?;
    }
    bail!(refusal(&plan, "apt kept refusing after three changes", log))
}

fn refusal(plan: &Plan, why: &str, log: &Path) -> String {
    format!(
        "apt refuses to install {} ({why})\n  command: {}\n  apt's output: {}\n  try: run the command above yourself and read apt's reasons; \
         a package installed from a source that is not in /etc/apt/sources.list* is the usual cause",
        plan.names().join(" "),
        plan.command(),
        log.display()
    )
}

/// Serialises installs of this process (labs started side by side would race for dpkg's lock).
static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Installs `packages` for `purpose` (e.g. "the Vagrant backend"): one progress line, apt's
/// output in a log file shown (its tail) only when it fails.
pub fn install(purpose: &str, packages: &[&str], no_recommends: bool) -> Result<()> {
    // Shared by every run: never cancelled with the run that happens to install.
    super::cancel::with(None, || install_now(purpose, packages, no_recommends))
}

fn install_now(purpose: &str, packages: &[&str], no_recommends: bool) -> Result<()> {
    let _one = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    // Another thread may have installed them while this one waited for the lock.
    let packages: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if packages.is_empty() {
        return Ok(());
    }
    let packages = &packages[..];
    let log = log_path();
    let (plan, sim) = accepted_plan(Plan::new(packages, no_recommends), &log)?;
    for change in &plan.changes {
        say(&format!("pglab: {change}"));
    }
    let started = Instant::now();
    let what = format!(
        "installing for {purpose}: {} ({} packages with their dependencies; log {})",
        plan.specs.join(" "),
        install_count(&sim),
        log.display()
    );
    say(&format!("pglab: {what}"));
    let bar = crate::sys::progress::spinner(&what);
    let (ok, output) = apt_get(&plan.args(false), &log)?;
    bar.finish_and_clear();
    if !ok {
        return Err(crate::sys::exec::failure(
            &format!("installing packages for {purpose} failed"),
            &format!("apt log {}", log.display()),
            &plan.command(),
            &output,
            "read the log; run `apt-get update` if a download failed, then try again",
        ));
    }
    say(&format!(
        "pglab: installed {} in {:.0} s",
        plan.names().join(" "),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Whether dpkg has `package` installed.
fn installed(package: &str) -> bool {
    crate::sys::exec::run(
        &["dpkg-query", "-W", "-f=${Status}", package].map(String::from),
        None,
        std::time::Duration::from_secs(20),
    )
    .is_ok_and(|o| o.ok() && o.stdout.contains("ok installed"))
}

/// An install line straight to stderr: a test harness that captures `eprintln!` still shows
/// it, so a CI log says what pglab installed wherever the install happened.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    // Recorded on this project's machine image (see the module comment), 2026-11-24.
    const SIM_QEMU: &str = "\
Reading package lists...
Building dependency tree...
Reading state information...
qemu-utils is already the newest version (1:10.0.2+ds-2+deb13u1~bpo12+1).
Some packages could not be installed. This may mean that you have
requested an impossible situation or if you are using the unstable
distribution that some required packages have not yet been created
or been moved out of Incoming.
The following information may help to resolve the situation:

The following packages have unmet dependencies:
 qemu-utils : Breaks: qemu-system-common (< 1:8.0+dfsg-5~) but 1:7.2+dfsg-7+deb12u18+b2 is to be installed
E: Unable to correct problems, you have held broken packages.
";
    const POLICY_QEMU: &str = "\
qemu-utils:
  Installed: 1:10.0.2+ds-2+deb13u1~bpo12+1
  Candidate: 1:10.0.2+ds-2+deb13u1~bpo12+1
  Version table:
 *** 1:10.0.2+ds-2+deb13u1~bpo12+1 100
        100 /var/lib/dpkg/status
     1:7.2+dfsg-7+deb12u18+b2 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
     1:7.2+dfsg-7+deb12u15 500
        500 http://deb.debian.org/debian-security bookworm-security/main amd64 Packages
qemu-system-x86:
  Installed: (none)
  Candidate: 1:7.2+dfsg-7+deb12u18+b2
  Version table:
     1:7.2+dfsg-7+deb12u18+b2 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
";
    const SIM_NPM: &str = "\
The following packages have unmet dependencies:
 libnode108 : Conflicts: nodejs-legacy
 node-jest-worker : Depends: node-types-node
 nodejs : Conflicts: npm
E: Unable to correct problems, you have held broken packages.
";
    const POLICY_NODE: &str = "\
nodejs:
  Installed: 20.20.2-1nodesource1+repack1
  Candidate: 20.20.2-1nodesource1+repack1
  Version table:
 *** 20.20.2-1nodesource1+repack1 100
        100 /var/lib/dpkg/status
     18.20.4+dfsg-1~deb12u1 500
        500 http://deb.debian.org/debian bookworm/main amd64 Packages
";

    fn vagrant_request() -> Plan {
        Plan::new(
            &[
                "vagrant",
                "vagrant-libvirt",
                "libvirt-daemon-system",
                "qemu-system-x86",
                "qemu-utils",
                "dnsmasq-base",
            ],
            true,
        )
    }

    #[test]
    fn unmet_lines_are_parsed() {
        let u = parse_unmet(SIM_QEMU);
        assert_eq!(u.len(), 1);
        assert_eq!(
            (
                u[0].package.as_str(),
                u[0].relation.as_str(),
                u[0].target.as_str()
            ),
            ("qemu-utils", "Breaks", "qemu-system-common")
        );
        let n = parse_unmet(SIM_NPM);
        assert_eq!(n.len(), 3);
        assert_eq!(n[2].package, "nodejs");
        assert_eq!(n[2].target, "npm");
    }

    #[test]
    fn policy_tells_a_foreign_install_from_one_in_the_lists() {
        let p = parse_policy(POLICY_QEMU);
        let utils = &p["qemu-utils"];
        assert_eq!(
            utils.installed.as_deref(),
            Some("1:10.0.2+ds-2+deb13u1~bpo12+1")
        );
        assert!(utils.installed_from_elsewhere());
        assert_eq!(
            utils.newest_in_lists().unwrap().version,
            "1:7.2+dfsg-7+deb12u18+b2"
        );
        assert_eq!(
            utils.newest_in_lists().unwrap().origins[0],
            "http://deb.debian.org/debian bookworm/main"
        );
        assert!(!p["qemu-system-x86"].installed_from_elsewhere());
    }

    #[test]
    fn a_backports_qemu_utils_is_matched_to_the_qemu_it_can_install() {
        let plan = resolve(
            &vagrant_request(),
            &parse_unmet(SIM_QEMU),
            &parse_policy(POLICY_QEMU),
        )
        .unwrap();
        assert!(
            plan.specs
                .contains(&"qemu-utils=1:7.2+dfsg-7+deb12u18+b2".to_string()),
            "{plan:?}"
        );
        assert!(!plan.specs.contains(&"qemu-utils".to_string()));
        assert!(plan.allow_downgrades && plan.no_recommends);
        assert_eq!(
            plan.command(),
            "apt-get install -y --no-install-recommends --allow-downgrades vagrant vagrant-libvirt \
             libvirt-daemon-system qemu-system-x86 dnsmasq-base qemu-utils=1:7.2+dfsg-7+deb12u18+b2"
        );
        assert_eq!(plan.changes.len(), 1);
        assert!(
            plan.changes[0].contains("a downgrade"),
            "{}",
            plan.changes[0]
        );
        // Applying the same facts again changes nothing more: apt must then accept or refuse.
        assert!(resolve(&plan, &parse_unmet(SIM_QEMU), &parse_policy(POLICY_QEMU)).is_err());
    }

    #[test]
    fn a_vendors_nodejs_is_not_replaced_silently() {
        let mut policy = parse_policy(POLICY_NODE);
        // libnode108 and node-jest-worker are not installed: apt's own lists hold them.
        policy.insert("libnode108".into(), Policy::default());
        let unmet: Vec<Unmet> = parse_unmet(SIM_NPM)
            .into_iter()
            .filter(|u| u.package == "nodejs")
            .collect();
        let why = resolve(&Plan::new(&["npm"], false), &unmet, &policy).unwrap_err();
        assert!(why.contains("nodejs 20.20.2-1nodesource1+repack1"), "{why}");
        assert!(
            why.contains("apt-get install --allow-downgrades nodejs=18.20.4+dfsg-1~deb12u1 npm"),
            "{why}"
        );
        let all = parse_unmet(SIM_NPM);
        assert!(resolve(&Plan::new(&["npm"], false), &all, &policy).is_err());
    }

    #[test]
    fn removals_and_counts_come_from_the_simulation() {
        let sim = "Inst qemu-utils [1:10.0.2] (1:7.2 Debian:12.14 [amd64])\nInst vagrant (2.3.4)\nRemv foo [1.0]\nConf vagrant\n";
        assert_eq!(removals(sim), vec!["foo"]);
        assert_eq!(install_count(sim), 2);
    }
}
