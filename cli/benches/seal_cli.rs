//! Wall time of the built `sealbox` binary sealing a 5-key Secret (written below).
fn main() {}
