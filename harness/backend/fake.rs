//! A backend without hosts, for unit tests of pglab's own logic (the runner's waits, skips
//! and verdicts): every command a test expects is answered from a script of outputs, and
//! every call is recorded. Lab tests never use it: they run real hosts.

use super::api::{Backend, HostState, SshTarget};
use crate::sys::exec::CmdOutput;
use anyhow::{bail, Result};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Outputs for the commands on `host` whose script contains `contains`, one per call; the
/// last one repeats.
pub struct Answer {
    pub host: String,
    pub contains: String,
    pub outputs: VecDeque<CmdOutput>,
}

/// An output with this exit code and stdout.
pub fn said(code: i32, stdout: &str) -> CmdOutput {
    CmdOutput {
        code,
        stdout: stdout.into(),
        stderr: String::new(),
        duration: Duration::ZERO,
    }
}

/// Clones share their answers and calls: a test keeps one, the lab owns the other.
#[derive(Default, Clone)]
pub struct Fake {
    pub answers: Arc<Mutex<Vec<Answer>>>,
    /// (host, user, script) of every command run, in order.
    pub calls: Arc<Mutex<Vec<(String, String, String)>>>,
    /// What `changed_programs` says for every host.
    pub changed: Arc<Mutex<Vec<String>>>,
}

impl Fake {
    pub fn answer(self, host: &str, contains: &str, outputs: &[CmdOutput]) -> Fake {
        self.answers.lock().expect("lock").push(Answer {
            host: host.into(),
            contains: contains.into(),
            outputs: outputs.iter().cloned().collect(),
        });
        self
    }
}

impl Backend for Fake {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn up(&mut self) -> Result<()> {
        Ok(())
    }

    fn exec(&self, host: &str, user: &str, script: &str, _t: Duration) -> Result<CmdOutput> {
        self.calls
            .lock()
            .expect("lock")
            .push((host.into(), user.into(), script.into()));
        let mut answers = self.answers.lock().expect("lock");
        let Some(a) = answers
            .iter_mut()
            .find(|a| a.host == host && script.contains(&a.contains))
        else {
            return Ok(said(0, ""));
        };
        let out = if a.outputs.len() > 1 {
            a.outputs.pop_front()
        } else {
            a.outputs.front().cloned()
        };
        Ok(out.unwrap_or_else(|| said(0, "")))
    }

    fn changed_programs(&self, _host: &str) -> Vec<String> {
        self.changed.lock().expect("lock").clone()
    }

    fn stop_host(&self, _host: &str) -> Result<()> {
        Ok(())
    }

    fn start_host(&self, _host: &str) -> Result<()> {
        Ok(())
    }

    fn cut_link(&self, _a: &str, _b: &str) -> Result<()> {
        Ok(())
    }

    fn heal_link(&self, _a: &str, _b: &str) -> Result<()> {
        Ok(())
    }

    fn host_state(&self, _host: &str) -> HostState {
        HostState::Running
    }

    fn how_to_enter(&self, _host: &str) -> String {
        String::new()
    }

    fn down(&mut self) -> Result<()> {
        Ok(())
    }

    fn save(&self, _name: &str) -> Result<()> {
        Ok(())
    }

    fn restore(&self, _name: &str) -> Result<()> {
        Ok(())
    }

    fn connect_tcp(
        &self,
        addr: std::net::SocketAddr,
        _timeout: Duration,
    ) -> Result<std::net::TcpStream> {
        bail!("the fake backend has no network ({addr})")
    }

    fn ssh_target(&self, host: &str, _key: &std::path::Path) -> Result<SshTarget> {
        bail!("the fake backend has no ssh ({host})")
    }
}
