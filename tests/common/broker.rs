//! A private development broker for one test, on a free port of its own, so that a test
//! may pause it (SIGSTOP: unresponsive, data kept) without disturbing the others. Started
//! and stopped through `scripts/broker` (which `BROKER_SCRIPT` may redirect).

use std::process::Command;

pub struct PrivateBroker {
    port: u16,
    /// Its bootstrap address.
    pub address: String,
}

fn script() -> Command {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/broker"))
}

impl PrivateBroker {
    pub fn start() -> Self {
        // A port free now; the script refuses one that is taken meanwhile.
        let port = super::free_port();
        let out = script()
            .args(["start", &port.to_string()])
            .output()
            .expect("run scripts/broker");
        assert!(
            out.status.success(),
            "scripts/broker start {port}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Self { port, address }
    }

    fn pid(&self) -> Option<String> {
        let out = script()
            .args(["pidfile", &self.port.to_string()])
            .output()
            .ok()?;
        let pidfile = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Some(std::fs::read_to_string(&pidfile).ok()?.trim().to_string())
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the broker's pid file");
        let sent = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill {signal} {pid}");
    }

    /// SIGSTOP: the broker keeps its sockets and data but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT: it answers again.
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        // A paused broker would not stop on SIGTERM.
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-CONT", &pid]).status();
        }
        let _ = script().args(["stop", &self.port.to_string()]).status();
    }
}
