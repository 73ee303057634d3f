//! `spec.template.data` templates rendered over a small value map through the controller's
//! public API (`template::render`). Any template must render or come back as `Err` — never
//! a panic, an abort (stack overflow) or unbounded memory.
//!
//! Input: up to the first NUL byte, the value of the key `fuzz` (so helpers see fuzzer-chosen
//! data); after it, the template text. Without a NUL, all of it is the template. Non-UTF-8
//! template text is skipped: a SealedSecret's template is a JSON/YAML string.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sealbox_controller::template::{TemplateValues, render};
use zeroize::Zeroizing;

fuzz_target!(|data: &[u8]| {
    let (value, text) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&b""[..], data),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let mut map = BTreeMap::new();
    map.insert("username".to_owned(), Zeroizing::new(b"admin".to_vec()));
    map.insert("password".to_owned(), Zeroizing::new(b"s3cr3t!".to_vec()));
    map.insert("empty".to_owned(), Zeroizing::new(Vec::new()));
    map.insert("with-dash".to_owned(), Zeroizing::new(b"dashed".to_vec()));
    map.insert("fuzz".to_owned(), Zeroizing::new(value.to_vec()));
    let values = TemplateValues::new(&map);
    let _ = render("fuzz", text, &values);
});
