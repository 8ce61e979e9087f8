//! Child processes with bounded waits: commands run to completion under a timeout, and long-running
//! daemons that are stopped by a signal and always reaped (on `stop` or on drop, on every exit path).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How often bounded waits poll.
const POLL: Duration = Duration::from_millis(20);

/// A command line as text, arguments quoted when they contain shell metacharacters.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+[]$".contains(c));
    if plain { s.to_string() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// Runs `cmd` to completion, capturing stdout and stderr; kills it and fails after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{what}`"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = match wait_timeout(&mut child, timeout)? {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{what}` did not finish within {timeout:?}; killed");
        }
    };
    Ok(Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() })
}

/// Like [`run`], and fails (quoting stderr) unless the command exits with status 0.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let what = describe(cmd);
    let out = run(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(out)
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Waits for `child` to exit for at most `timeout`; `Ok(None)` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for child process")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(POLL);
    }
}

/// Polls `ready` until it returns true; fails with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` (a name such as `INT`) to process `pid` with kill(1).
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    let out = run(Command::new("kill").arg("-s").arg(signal).arg(pid.to_string()), Duration::from_secs(5))?;
    if !out.status.success() {
        bail!("kill -s {signal} {pid} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// A long-running process (server, capture, load generator) whose stdout and stderr go to log files.
/// Dropping it without [`Daemon::stop`] sends SIGTERM, then SIGKILL after two seconds, and reaps it.
#[derive(Debug)]
pub struct Daemon {
    name: String,
    child: Option<Child>,
    stop_signal: &'static str,
    stdout_log: PathBuf,
    stderr_log: PathBuf,
}

impl Daemon {
    /// Starts `cmd`; `name` labels messages and the log files `<log_dir>/<name>.{out,err}`.
    pub fn spawn(name: &str, cmd: &mut Command, stop_signal: &'static str, log_dir: &Path) -> Result<Self> {
        let stdout_log = log_dir.join(format!("{name}.out"));
        let stderr_log = log_dir.join(format!("{name}.err"));
        let out = File::create(&stdout_log).with_context(|| format!("creating {}", stdout_log.display()))?;
        let err = File::create(&stderr_log).with_context(|| format!("creating {}", stderr_log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name}: `{}`", describe(cmd)))?;
        Ok(Daemon { name: name.to_string(), child: Some(child), stop_signal, stdout_log, stderr_log })
    }

    /// What the process wrote to stderr so far.
    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// What the process wrote to stdout so far.
    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout_log).unwrap_or_default()
    }

    /// Fails (with its stderr) if the process has already exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Some(status) = child.try_wait()?
        {
            self.child = None;
            bail!("{} exited early ({status}): {}", self.name, self.stderr_text().trim());
        }
        Ok(())
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Sends the stop signal and waits up to `timeout` for the exit; SIGKILL after that (an error).
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("{} was already stopped", self.name);
        };
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        signal(child.id(), self.stop_signal)?;
        match wait_timeout(&mut child, timeout)? {
            Some(status) => Ok(status),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{} did not exit within {timeout:?} after SIG{}; killed", self.name, self.stop_signal)
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = signal(child.id(), "TERM");
                if !matches!(wait_timeout(&mut child, Duration::from_secs(2)), Ok(Some(_))) {
                    let _ = child.kill();
                }
            }
            let _ = child.wait();
        }
    }
}
