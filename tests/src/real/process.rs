//! One child process of the control plane: started with its output in a log file, watched for an
//! early exit, and killed (exactly this process, by its handle) when dropped.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::Error;

/// How much of a log an error quotes: the last lines of a Go component's log say why it
/// stopped (a flag, a port in use); more would bury the test's own output.
const LOG_TAIL_BYTES: u64 = 4096;

/// A running component. Dropping it kills the process and reaps it.
pub(crate) struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `program` with `args`, stdout and stderr into `log`.
    pub(crate) fn spawn(
        name: &'static str,
        program: &Path,
        args: Vec<OsString>,
        log: PathBuf,
    ) -> Result<Self, Error> {
        let mut command = Command::new(program);
        command.args(args);
        Self::spawn_command(name, command, log)
    }

    /// Starts `command` (its program, arguments and environment as the caller set them), stdin
    /// closed, stdout and stderr into `log`.
    pub(crate) fn spawn_command(
        name: &'static str,
        mut command: Command,
        log: PathBuf,
    ) -> Result<Self, Error> {
        let out = File::create(&log).map_err(|source| Error::Write {
            path: log.clone(),
            source,
        })?;
        let err = out.try_clone().map_err(|source| Error::Write {
            path: log.clone(),
            source,
        })?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| Error::Spawn {
                program: PathBuf::from(command.get_program()),
                source,
            })?;
        Ok(Self { name, child, log })
    }

    /// An error naming the process and quoting its log if it has exited.
    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                process: self.name,
                status: status.to_string(),
                log_tail: self.log_tail(),
            }),
            Err(source) => Err(Error::Wait {
                process: self.name,
                source,
            }),
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn log(&self) -> &Path {
        &self.log
    }

    /// The end of the log, for an error message.
    pub(crate) fn log_tail(&self) -> String {
        let read = || -> std::io::Result<String> {
            let mut file = File::open(&self.log)?;
            let len = file.metadata()?.len();
            file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
            let mut bytes = Vec::new();
            file.take(LOG_TAIL_BYTES).read_to_end(&mut bytes)?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        read().unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log.display()))
    }
}

impl Drop for Process {
    /// SIGKILL, not SIGTERM: the plane's data lives in a directory removed right after, so
    /// nothing is worth flushing, and a kill cannot be ignored or stall the test.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
