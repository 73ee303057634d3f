//! The bad-input matrix: each `tests/cmd/*.toml` runs the built `sealbox` binary in
//! `tests/cmd/fixtures.in/` (or its own `NAME.in/`) and pins its exit code, stdout and stderr
//! (`*.stderr`). Every error case must fail with a message naming the problem and the file or
//! field, and none may print the plaintext canary from the fixtures (checked by
//! `no_case_prints_the_canary` below). `*.trycmd` files run several commands in a sandboxed
//! copy of their `NAME.in/` and compare the files they leave with `NAME.out/`.
//!
//! The `kubeseal-*` cases run the same binary through a `kubeseal` symlink (kubeseal mode):
//! its help, version and errors, which exit 1 as kubeseal's do (2 for bad flags).
//!
//! Update snapshots after an intended message change with
//! `TRYCMD=overwrite cargo test -p sealbox --test cmd`.

#[test]
fn bad_input_matrix() {
    trycmd::TestCases::new()
        .register_bin(
            "sealbox",
            std::path::Path::new(env!("CARGO_BIN_EXE_sealbox")),
        )
        .register_bin("kubeseal", kubeseal_link())
        .default_bin_name("sealbox")
        .env("KUBECONFIG", "/nonexistent/sealbox-test/kubeconfig")
        .env("HOME", "/nonexistent/sealbox-test/home")
        .env("SEALBOX_LOG", "off")
        .case("tests/cmd/*.toml")
        .case("tests/cmd/*.trycmd");
}

/// A `kubeseal` symlink to the built binary (kubeseal mode is chosen by the program name), made
/// once in the test target's scratch directory.
fn kubeseal_link() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubeseal-link");
    std::fs::create_dir_all(&dir).expect("a scratch directory for the kubeseal link");
    let link = dir.join("kubeseal");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sealbox"), &link)
        .expect("a kubeseal symlink to the built binary");
    link
}

#[test]
fn no_case_prints_the_canary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cmd");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => cases += 1,
            Some("stderr" | "stdout") => {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    !text.contains("CANARY"),
                    "{} shows plaintext",
                    path.display()
                );
            }
            _ => {}
        }
    }
    assert!(
        cases >= 20,
        "the matrix has {cases} cases, want at least 20"
    );
}
