//! `sealbox kubeseal --install-link DIR`: a `kubeseal` symlink to this binary, so `cargo
//! install` users get the kubeseal mode on their PATH in one step (a copy of the binary named
//! `kubeseal` works the same). An existing `kubeseal` that is not already such a link is never
//! replaced: it may be Bitnami's, which the user may still want.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::kubeseal::{KUBESEAL, usage};

/// Creates `dir/kubeseal` pointing at the running binary and says so on stderr.
pub fn run(dir: &Path, stderr: &mut impl Write) -> Result<()> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|source| Error::Kubeseal {
            message: format!("cannot find the path of this binary: {source}"),
            category: "install",
        })?;
    let link = dir.join(executable_name());
    match plan(&link, &exe)? {
        Plan::AlreadyThere => {
            let _ = writeln!(
                stderr,
                "{} already points at {}",
                link.display(),
                exe.display()
            );
            Ok(())
        }
        Plan::Create => {
            if !dir.is_dir() {
                return Err(usage(&format!(
                    "{} is not a directory; pass a directory on your PATH, e.g. ~/.cargo/bin",
                    dir.display()
                )));
            }
            make_link(&exe, &link).map_err(|source| Error::WriteFile {
                path: link.clone(),
                source,
            })?;
            let _ = writeln!(
                stderr,
                "created {} -> {}; `kubeseal` now runs sealbox's kubeseal mode where {} is on PATH",
                link.display(),
                exe.display(),
                dir.display()
            );
            Ok(())
        }
    }
}

/// What to do about `link`.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Create,
    AlreadyThere,
}

fn plan(link: &Path, exe: &Path) -> Result<Plan> {
    match link.symlink_metadata() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Plan::Create),
        Err(source) => Err(Error::WriteFile {
            path: link.to_owned(),
            source,
        }),
        Ok(_) if link.canonicalize().ok().as_deref() == Some(exe) => Ok(Plan::AlreadyThere),
        Ok(_) => Err(usage(&format!(
            "{} exists and is not a link to this binary (Bitnami's kubeseal?); remove it first, or pick another directory",
            link.display()
        ))),
    }
}

fn executable_name() -> PathBuf {
    PathBuf::from(format!("{KUBESEAL}{}", std::env::consts::EXE_SUFFIX))
}

#[cfg(unix)]
fn make_link(exe: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(exe, link)
}

#[cfg(not(unix))]
fn make_link(exe: &Path, link: &Path) -> io::Result<()> {
    // No unprivileged symlinks elsewhere: a copy named kubeseal works the same.
    std::fs::copy(exe, link).map(|_| ())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn creates_once_and_never_replaces_another_kubeseal() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("sealbox");
        std::fs::write(&exe, b"binary").unwrap();
        let exe = exe.canonicalize().unwrap();
        let link = dir.path().join("kubeseal");
        assert_eq!(plan(&link, &exe).unwrap(), Plan::Create);
        make_link(&exe, &link).unwrap();
        assert_eq!(plan(&link, &exe).unwrap(), Plan::AlreadyThere);

        let other = dir.path().join("bin");
        std::fs::create_dir(&other).unwrap();
        let bitnami = other.join("kubeseal");
        std::fs::write(&bitnami, b"go binary").unwrap();
        let err = plan(&bitnami, &exe).unwrap_err();
        assert!(err.to_string().contains("remove it first"), "{err}");
    }
}
