//! The bad-input matrix: each `tests/cmd/*.toml` runs the built `sealbox` binary in
//! `tests/cmd/fixtures.in/` (or its own `NAME.in/`) and pins its exit code, stdout and stderr
//! (`*.stderr`). Every error case must fail with a message naming the problem and the file or
//! field, and none may print the plaintext canary from the fixtures (checked by
//! `no_case_prints_the_canary` below). `*.trycmd` files run several commands in a sandboxed
//! copy of their `NAME.in/` and compare the files they leave with `NAME.out/`.
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
        .default_bin_name("sealbox")
        .env("KUBECONFIG", "/nonexistent/sealbox-test/kubeconfig")
        .env("HOME", "/nonexistent/sealbox-test/home")
        .env("SEALBOX_LOG", "off")
        .case("tests/cmd/*.toml")
        .case("tests/cmd/*.trycmd");
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
