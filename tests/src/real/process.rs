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
    /// Program and arguments, to start it again; `None` when started from a caller's
    /// `Command` (its environment is not kept).
    recipe: Option<(PathBuf, Vec<OsString>)>,
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
        command.args(&args);
        let mut process = Self::spawn_command(name, command, log)?;
        process.recipe = Some((program.to_path_buf(), args));
        Ok(process)
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
        let child = start(&mut command, out, &log)?;
        Ok(Self {
            name,
            child,
            recipe: None,
            log,
        })
    }

    /// Kills the process (SIGKILL: a crash; what it wrote stays with the kernel) and reaps it.
    pub(crate) fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the process again (after [`stop`](Self::stop)) with the program and arguments
    /// of [`spawn`](Self::spawn), its output appended to the same log.
    pub(crate) fn start_again(&mut self) -> Result<(), Error> {
        let Some((program, args)) = &self.recipe else {
            return Err(Error::Spawn {
                program: PathBuf::from(self.name),
                source: std::io::Error::other("started from a Command: cannot start it again"),
            });
        };
        let mut command = Command::new(program);
        command.args(args);
        let out = File::options()
            .append(true)
            .open(&self.log)
            .map_err(|source| Error::Write {
                path: self.log.clone(),
                source,
            })?;
        self.child = start(&mut command, out, &self.log)?;
        Ok(())
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

/// Starts `command`, stdin closed, stdout and stderr into `out` (the file at `log`).
fn start(command: &mut Command, out: File, log: &Path) -> Result<Child, Error> {
    let err = out.try_clone().map_err(|source| Error::Write {
        path: log.to_path_buf(),
        source,
    })?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|source| Error::Spawn {
            program: PathBuf::from(command.get_program()),
            source,
        })
}

impl Drop for Process {
    /// SIGKILL, not SIGTERM: the plane's data lives in a directory removed right after, so
    /// nothing is worth flushing, and a kill cannot be ignored or stall the test.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
