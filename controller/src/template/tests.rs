//! The template engine's tests: Go semantics, the bounds, and what errors may say.

use super::*;

fn values(pairs: &[(&str, &str)]) -> TemplateValues {
    let data = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Zeroizing::new(v.as_bytes().to_vec())))
        .collect();
    TemplateValues::new(&data)
}

fn ok(template: &str, pairs: &[(&str, &str)]) -> String {
    let out = render("t", template, &values(pairs)).expect("renders");
    String::from_utf8(out.to_vec()).expect("utf-8")
}

fn err(template: &str, pairs: &[(&str, &str)]) -> String {
    render("t", template, &values(pairs)).expect_err("fails")
}

#[test]
fn dot_access_and_index_for_keys_with_dashes() {
    let vals = [("user", "admin"), ("pass-word", "s3cr3t")];
    assert_eq!(
        ok("{{ .user }}:{{ index . \"pass-word\" }}", &vals),
        "admin:s3cr3t"
    );
    assert_eq!(
        ok("postgres://{{ .user }}@db/{{ printf \"%s\" .user }}", &vals),
        "postgres://admin@db/admin"
    );
}

#[test]
fn templates_without_values_render_as_text() {
    assert_eq!(ok("plain text", &[]), "plain text");
    assert_eq!(ok("", &[]), "");
}

#[test]
fn sprig_helpers() {
    let vals = [("a", "  Hello "), ("b", ""), ("c", "aGk=")];
    assert_eq!(ok("{{ .a | trim | upper }}", &vals), "HELLO");
    assert_eq!(ok("{{ .a | trim | lower }}", &vals), "hello");
    assert_eq!(ok("{{ .b | default \"fallback\" }}", &vals), "fallback");
    assert_eq!(ok("{{ .a | trim | default \"fallback\" }}", &vals), "Hello");
    assert_eq!(ok("{{ .c | b64dec }}", &vals), "hi");
    assert_eq!(ok("{{ \"hi\" | b64enc }}", &vals), "aGk=");
    assert_eq!(ok("{{ .a | trim | quote }}", &vals), "\"Hello\"");
    assert_eq!(ok("{{ .a | trim | squote }}", &vals), "'Hello'");
    assert_eq!(ok("{{ replace \"l\" \"L\" .a }}", &vals), "  HeLLo ");
    assert_eq!(ok("{{ .a | trim | trimPrefix \"He\" }}", &vals), "llo");
    assert_eq!(ok("{{ .a | trim | trimSuffix \"lo\" }}", &vals), "Hel");
    assert_eq!(ok("{{ \"x\\ny\" | indent 2 }}", &vals), "  x\n  y");
    assert_eq!(ok("{{ \"x\" | nindent 2 }}", &vals), "\n  x");
    assert_eq!(ok("{{ if contains \"ell\" .a }}yes{{ end }}", &vals), "yes");
    assert_eq!(
        ok("{{ if hasPrefix \"  H\" .a }}yes{{ end }}", &vals),
        "yes"
    );
    assert_eq!(ok("{{ if empty .b }}empty{{ end }}", &vals), "empty");
    assert_eq!(ok("{{ coalesce .b \"z\" }}", &vals), "z");
    assert_eq!(ok("{{ repeat 3 \"ab\" }}", &vals), "ababab");
    assert_eq!(
        ok("{{ sha256sum \"abc\" }}", &vals),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn no_environment_access() {
    for template in [
        "{{ env \"HOME\" }}",
        "{{ expandenv \"$HOME\" }}",
        "{{ getHostByName \"x\" }}",
    ] {
        let e = err(template, &[]);
        assert!(e.contains("not defined"), "{e}");
    }
}

#[test]
fn errors_never_show_values() {
    let vals = [("password", "hunter2-super-secret")];
    for template in [
        "{{ .missing }}",
        "{{ index . \"missing\" }}",
        "{{ .password.inner }}",
        "{{ .password | b64dec }}",
        "{{ printf \"%d\" .password }}",
        "{{ range .password }}{{ end }}",
        "{{ len 1 2 }}",
    ] {
        if let Err(e) = render("t", template, &values(&vals)) {
            assert!(!e.contains("hunter2"), "{template}: {e}");
        }
    }
    let e = err("{{ .missing }}", &vals);
    assert!(e.contains("\"missing\""), "{e}");
}

#[test]
fn parse_errors_name_the_problem() {
    let e = err("{{ .foo", &[]);
    assert!(e.starts_with("invalid template"), "{e}");
}

#[test]
fn output_is_bounded() {
    assert_eq!(
        reason("{{ repeat 1048576 \"ab\" }}", &[]),
        Reason("string too long")
    );
}

/// Why a render failed at run time (never shown; tests only).
fn reason(template: &str, pairs: &[(&str, &str)]) -> Reason {
    match render_with(template, &values(pairs), &Budget::default()) {
        Err(Failure::RunTime(reason)) => reason,
        other => panic!("{template}: expected a run-time failure, got {other:?}"),
    }
}

/// The message of a failure found before running.
fn invalid(template: &str, pairs: &[(&str, &str)]) -> String {
    match render_with(template, &values(pairs), &Budget::default()) {
        Err(Failure::Invalid(message)) => message,
        other => panic!("{template}: expected an invalid template, got {other:?}"),
    }
}

/// Renders on a thread with a 2 MiB stack, what every spawned thread (and so every unseal
/// thread) gets, so that a deep recursion shows up here as it would in the controller: on the
/// old engine these tests aborted the whole test process.
fn on_unseal_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("the render does not panic")
}

fn failure_on_unseal_stack(template: &str, pairs: &[(&str, &str)]) -> Failure {
    let template = template.to_owned();
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    on_unseal_stack(move || {
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let started = std::time::Instant::now();
        let result = render_with(&template, &values(&pairs), &Budget::default());
        eprintln!("refused in {:?}", started.elapsed());
        result.map(|out| out.len()).expect_err("refused")
    })
}

// Finding 1 of issue 12: each of these crashed, exhausted or froze the controller on gtmpl.

#[test]
fn attack_recursive_define_is_refused() {
    // gtmpl: "thread has overflowed its stack", SIGABRT.
    let failure = failure_on_unseal_stack(
        "{{ define \"a\" }}x{{ template \"a\" . }}{{ end }}{{ template \"a\" . }}",
        &[],
    );
    assert_eq!(
        failure,
        Failure::RunTime(Reason("template calls nested too deeply"))
    );
}

#[test]
fn attack_nested_parentheses_are_refused() {
    // gtmpl: stack overflow in the parser, SIGABRT.
    let template = format!("{{{{ {}1{} }}}}", "(".repeat(1000), ")".repeat(1000));
    let Failure::Invalid(message) = failure_on_unseal_stack(&template, &[]) else {
        panic!("not refused as invalid");
    };
    assert!(message.contains("nested more than 32 levels"), "{message}");
    assert!(message.contains("line 1, column 36"), "{message}");
}

#[test]
fn attack_nested_repeat_and_indent_are_refused() {
    // gtmpl: "memory allocation of 1000000 bytes failed", SIGABRT (under a 4 GB ulimit).
    for template in [
        "{{ indent 1000000 (repeat 1000000 \"\\n\") }}",
        "{{ repeat 1000 (repeat 1000 (repeat 1000 \"ab\")) }}",
        "{{ nindent 100000 (repeat 100000 \"\\n\") | indent 100000 }}",
        "{{ repeat 1048576 \"ab\" }}",
    ] {
        assert_eq!(
            failure_on_unseal_stack(template, &[]),
            Failure::RunTime(Reason("string too long")),
            "{template}"
        );
    }
    // Below the string bound, repeated work runs into the work budget.
    let template = "{{ range 100000 }}{{ $x := repeat 1000000 \"a\" }}{{ end }}";
    assert_eq!(
        failure_on_unseal_stack(template, &[]),
        Failure::RunTime(Reason("work budget exhausted"))
    );
}

#[test]
fn attack_huge_printf_width_is_refused() {
    // gtmpl: panicked in print_verb.rs (a 500 through /v1/verify).
    let Failure::Invalid(message) =
        failure_on_unseal_stack("{{ printf \"%99999999s\" \"x\" }}", &[])
    else {
        panic!("not refused as invalid");
    };
    assert!(
        message.contains("width or precision too large"),
        "{message}"
    );
    // A width computed at run time is bounded too.
    assert_eq!(
        failure_on_unseal_stack("{{ printf \"%*s\" 99999999 \"x\" }}", &[]),
        Failure::RunTime(Reason("printf: * width out of range"))
    );
}

#[test]
fn attack_nested_ranges_are_refused() {
    let keys: Vec<(String, String)> = (0..10).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let pairs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // 10^7 iterations over the values, 10^9 over integers: stopped at the step budget.
    for template in [
        format!("{}{}", "{{ range $ }}".repeat(7), "{{ end }}".repeat(7)),
        format!("{}{}", "{{ range 1000 }}".repeat(3), "{{ end }}".repeat(3)),
    ] {
        assert_eq!(
            failure_on_unseal_stack(&template, &pairs),
            Failure::RunTime(Reason("step budget exhausted")),
            "{template}"
        );
    }
}

#[test]
fn output_beyond_the_bound_is_refused() {
    let template = "{{ range 2000 }}{{ repeat 1000 \"x\" }}{{ end }}";
    assert_eq!(reason(template, &[]), Reason("output too long"));
}

/// The deepest templates the parser accepts, called through `template` to the call bound:
/// every construct that recurses, nested to the bound in every template.
fn deepest_template(extra_level: bool) -> String {
    // The main template calls t0, which calls t1, … up to the bound.
    let last = budget::MAX_TEMPLATE_CALLS - 1;
    // `define` takes one level; parentheses take the last ones in the last template.
    let levels = budget::MAX_NESTING - 1;
    let parens = 10;
    let opener = ["{{ if 1 }}", "{{ with $ }}", "{{ range 1 }}"];
    let mut template = String::new();
    for call in 0..=last {
        let constructs = if call < last { levels } else { levels - parens };
        let constructs = constructs + usize::from(extra_level && call == last);
        let open: String = (0..constructs).map(|l| opener[l % 3]).collect();
        let close = "{{ end }}".repeat(constructs);
        let inner = if call < last {
            format!("{{{{ template \"t{}\" $ }}}}", call + 1)
        } else {
            format!(
                "{{{{ {}print $.k{} }}}}",
                "(".repeat(parens),
                ")".repeat(parens)
            )
        };
        template.push_str(&format!(
            "{{{{ define \"t{call}\" }}}}{open}{inner}{close}{{{{ end }}}}"
        ));
    }
    template.push_str("{{ template \"t0\" . }}");
    template
}

/// Rendered on a quarter of the unseal threads' 2 MiB stack, in a debug build (whose frames
/// are larger than release's): the recursion bounds leave a margin of four. (Measured: it
/// needs between 128 and 256 KiB in a debug build.)
#[test]
fn deepest_template_fits_a_2_mib_stack() {
    let template = deepest_template(false);
    let out = std::thread::Builder::new()
        .stack_size(512 << 10)
        .spawn(move || render("t", &template, &values(&[("k", "v")])).map(|out| out.to_vec()))
        .expect("spawn")
        .join()
        .expect("no panic");
    assert_eq!(out.as_deref(), Ok(&b"v"[..]));
    let message = invalid(&deepest_template(true), &[("k", "v")]);
    assert!(message.contains("nested more than 32 levels"), "{message}");
}

/// Finding 5 of issue 12: whatever makes a render fail at run time, the message is the same,
/// so the status cannot tell one value from another. On gtmpl the two messages differed
/// ("b64dec: invalid base64" against "repeat: argument 1 is not a small count").
#[test]
fn run_time_failures_do_not_depend_on_values() {
    let template =
        "{{ if hasPrefix \"h\" .v }}{{ .v | b64dec }}{{ else }}{{ repeat 99999999 .v }}{{ end }}";
    let with_h = err(template, &[("v", "hello")]);
    let without = err(template, &[("v", "xyz-not-base64")]);
    assert_eq!(with_h, without);
    assert_eq!(with_h, RUN_TIME_FAILURE);
    // Both reasons really differ underneath.
    assert_ne!(
        reason(template, &[("v", "hello")]),
        reason(template, &[("v", "xyz-not-base64")])
    );
    // A key looked up by a value: on gtmpl the error named the missing key, that is the value.
    for template in [
        "{{ index . (printf \"%.3s\" .v) }}",
        "{{ index . (slice .v 0 3) }}",
    ] {
        assert_eq!(
            err(template, &[("v", "hunter2")]),
            RUN_TIME_FAILURE,
            "{template}"
        );
    }
}

#[test]
fn static_errors_are_detailed() {
    let vals = [("user", "admin")];
    for (template, expected) in [
        (
            "{{ .nope }}",
            "line 1, column 4: no key \"nope\" in the decrypted data",
        ),
        ("{{ $.nope }}", "no key \"nope\" in the decrypted data"),
        (
            "{{ index . \"nope\" }}",
            "no key \"nope\" in the decrypted data",
        ),
        ("{{ if 1 }}{{ .nope }}{{ end }}", "no key \"nope\""),
        ("{{ range . }}{{ $.nope }}{{ end }}", "no key \"nope\""),
        (
            "{{ .user.name }}",
            "key \"user\" is a string: it has no field \"name\"",
        ),
        ("{{ nope 1 }}", "function \"nope\" not defined"),
        ("{{ upper }}", "\"upper\" takes 1 arguments, given 0"),
        (
            "{{ .user | replace \"a\" }}",
            "\"replace\" takes 3 arguments, given 2",
        ),
        (
            "{{ printf \"%s %s\" .user }}",
            "printf format takes 2 arguments, given 1",
        ),
        ("{{ printf \"%z\" .user }}", "unsupported printf verb"),
        ("{{ template \"x\" }}", "no template \"x\" is defined"),
        (
            "{{ .user .user }}",
            "only a function can be given arguments",
        ),
        ("{{ nil }}", "nil is not a command"),
        ("{{ $x }}", "undefined variable \"$x\""),
        ("{{ break }}", "{{break}} outside {{range}}"),
        ("{{ if 1 }}", "{{if}} has no {{end}}"),
        ("a\n{{ .user", "line 2, column 1: unclosed action"),
        ("{{ \"abc }}", "unterminated quoted string"),
        (
            "{{ define \"a\" }}{{ end }}{{ define \"a\" }}{{ end }}",
            "defined twice",
        ),
    ] {
        let message = invalid(template, &vals);
        assert!(message.contains(expected), "{template}: {message}");
    }
    // Keys are checked against `.` only where it is the value map.
    assert_eq!(ok("{{ with .user }}{{ . }}{{ end }}", &vals), "admin");
    assert_eq!(
        err("{{ with $x := .user }}{{ .nope }}{{ end }}", &vals),
        RUN_TIME_FAILURE
    );
}

#[test]
fn variables_in_scope_are_bounded() {
    let declare = |n: usize| {
        (0..n)
            .map(|i| format!("{{{{ $v{i} := 1 }}}}"))
            .collect::<String>()
    };
    // `$` is one of them.
    assert_eq!(ok(&declare(budget::MAX_VARIABLES - 1), &[]), "");
    let message = invalid(&declare(budget::MAX_VARIABLES), &[]);
    assert!(
        message.contains("more than 100 variables in scope"),
        "{message}"
    );
    // Scopes end: a range body's variables are gone after its end.
    let in_range = format!("{{{{ range 2 }}}}{}{{{{ end }}}}", declare(90));
    assert_eq!(ok(&format!("{in_range}{in_range}"), &[]), "");
}

#[test]
fn errors_are_bounded_and_escaped() {
    let long = "x".repeat(10_000);
    let message = err(&format!("{{{{ index . \"{long}\\n\" }}}}"), &[]);
    assert!(message.len() < 200, "{message}");
    assert!(!message.contains('\n'), "{message}");
    let too_big = "a".repeat(budget::MAX_TEMPLATE_BYTES + 1);
    assert!(invalid(&too_big, &[]).contains("more than the"));
}

#[test]
fn trim_markers_and_comments() {
    assert_eq!(ok("a  {{- 1 -}}  b", &[]), "a1b");
    assert_eq!(ok("a \n {{- /* note */ -}} \n b", &[]), "ab");
    assert_eq!(ok("a {{/* note */}} b", &[]), "a  b");
    assert_eq!(ok("{{ -3 }}", &[]), "-3");
    assert_eq!(ok("a{{- \"x\" }}\n", &[]), "ax\n");
}

#[test]
fn literals() {
    assert_eq!(ok("{{ \"a\\tb\\x41\\u00e9\" }}", &[]), "a\tbAé");
    assert_eq!(ok("{{ `raw\\n` }}", &[]), "raw\\n");
    assert_eq!(ok("{{ 'a' }} {{ '\\n' }}", &[]), "97 10");
    assert_eq!(
        ok("{{ 0x1F }} {{ 0o17 }} {{ 1_000 }} {{ 017 }}", &[]),
        "31 15 1000 15"
    );
    assert_eq!(
        ok("{{ 1.5 }} {{ 1e6 }} {{ 0.0001 }} {{ 2.0 }}", &[]),
        "1.5 1e+06 0.0001 2"
    );
    assert_eq!(ok("{{ true }} {{ false }}", &[]), "true false");
}

#[test]
fn variables_and_scopes() {
    let vals = [("a", "x"), ("b", "y")];
    assert_eq!(
        ok("{{ $v := .a }}{{ $v }}{{ $v = .b }}{{ $v }}", &vals),
        "xy"
    );
    assert_eq!(
        ok(
            "{{ $v := 1 }}{{ if true }}{{ $v = 2 }}{{ $w := 3 }}{{ end }}{{ $v }}",
            &vals
        ),
        "2"
    );
    assert!(invalid("{{ if true }}{{ $w := 3 }}{{ end }}{{ $w }}", &vals).contains("undefined"));
    assert_eq!(
        ok("{{ with $x := .a }}{{ $x }}{{ . }}{{ end }}", &vals),
        "xx"
    );
    assert_eq!(ok("{{ (.a) }}{{ ($.b) }}", &vals), "xy");
}

#[test]
fn control_structures() {
    let vals = [("a", "x"), ("b", ""), ("c", "z")];
    assert_eq!(
        ok("{{ if .b }}1{{ else if .a }}2{{ else }}3{{ end }}", &vals),
        "2"
    );
    assert_eq!(
        ok("{{ with .b }}1{{ else with .c }}{{ . }}{{ end }}", &vals),
        "z"
    );
    assert_eq!(ok("{{ with .b }}1{{ else }}2{{ end }}", &vals), "2");
    assert_eq!(
        ok("{{ range $k, $v := . }}{{ $k }}={{ $v }};{{ end }}", &vals),
        "a=x;b=;c=z;"
    );
    assert_eq!(ok("{{ range . }}[{{ . }}]{{ end }}", &vals), "[x][][z]");
    assert_eq!(ok("{{ range $v := . }}{{ $v }}{{ end }}", &vals), "xz");
    assert_eq!(
        ok(
            "{{ range $k, $v := . }}{{ if not $v }}{{ continue }}{{ end }}{{ if eq $k \"c\" }}{{ break }}{{ end }}{{ $k }}{{ end }}",
            &vals
        ),
        "a"
    );
    assert_eq!(ok("{{ range 0 }}x{{ else }}none{{ end }}", &vals), "none");
    assert_eq!(ok("{{ range $i := 3 }}{{ $i }}{{ end }}", &vals), "012");
    assert_eq!(
        ok(
            "{{ range . }}{{ range 2 }}{{ break }}{{ end }}.{{ end }}",
            &vals
        ),
        "..."
    );
    assert_eq!(err("{{ range .a }}{{ end }}", &vals), RUN_TIME_FAILURE);
}

#[test]
fn define_template_block() {
    let vals = [("user", "admin")];
    assert_eq!(
        ok(
            "{{ define \"u\" }}<{{ . }}>{{ end }}{{ template \"u\" .user }}{{ template \"u\" }}",
            &vals
        ),
        "<admin><<no value>>"
    );
    assert_eq!(
        ok("{{ block \"b\" .user }}[{{ . }}|{{ $ }}]{{ end }}", &vals),
        "[admin|admin]"
    );
    // `$` in a called template is that template's dot.
    assert_eq!(
        ok(
            "{{ define \"d\" }}{{ $.user }}{{ end }}{{ template \"d\" . }}",
            &vals
        ),
        "admin"
    );
}

#[test]
fn go_builtins() {
    let vals = [("a", "x"), ("b", ""), ("n", "héllo")];
    assert_eq!(
        ok(
            "{{ and 1 .b 2 }}|{{ and 1 2 }}|{{ or .b 0 }}|{{ or .b .a }}",
            &vals
        ),
        "|2|0|x"
    );
    // Short-circuit: the missing key after the decisive operand is never reached.
    assert_eq!(
        ok(
            "{{ with $m := $ }}{{ or .a (index $m \"zz\") }}{{ end }}",
            &vals
        ),
        "x"
    );
    assert_eq!(
        ok("{{ not .b }} {{ len .n }} {{ len . }}", &vals),
        "true 6 3"
    );
    assert_eq!(
        ok(
            "{{ index .n 0 }} {{ slice .n 0 1 }} {{ slice .n 3 }}",
            &vals
        ),
        "104 h llo"
    );
    assert_eq!(ok("{{ print 1 2 \"a\" \"b\" 3 }}", &vals), "1 2ab3");
    assert_eq!(ok("{{ println .a 1 }}", &vals), "x 1\n");
    assert_eq!(
        ok(
            "{{ eq .a \"y\" \"x\" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ ge \"b\" \"a\" }}",
            &vals
        ),
        "true true true true"
    );
    assert_eq!(err("{{ eq 1 \"1\" }}", &vals), RUN_TIME_FAILURE);
    assert_eq!(
        ok("{{ html \"<a href='x'>&\\\"\" }}", &vals),
        "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"
    );
    assert_eq!(
        ok("{{ js \"it's <b>\\n\" }}", &vals),
        "it\\'s \\u003Cb\\u003E\\u000A"
    );
    assert_eq!(
        ok("{{ urlquery \"a b&c=d/é\" }}", &vals),
        "a+b%26c%3Dd%2F%C3%A9"
    );
    assert_eq!(ok("{{ . }}", &vals), "map[a:x b: n:héllo]");
}

#[test]
fn printf_verbs() {
    let vals = [("s", "héllo")];
    for (template, expected) in [
        (
            "{{ printf \"%s|%5s|%-5s|%.2s\" \"ab\" \"ab\" \"ab\" .s }}",
            "ab|   ab|ab   |hé",
        ),
        (
            "{{ printf \"%q\" \"a\\\"b\\n\\x00\" }}",
            "\"a\\\"b\\n\\x00\"",
        ),
        (
            "{{ printf \"%d|%5d|%-5d|%05d|%+d|%x|%X|%#x|%o|%b\" 42 42 42 -42 42 255 255 255 8 5 }}",
            "42|   42|42   |-0042|+42|ff|FF|0xff|10|101",
        ),
        ("{{ printf \"%v %v %v\" 1 \"a\" true }}", "1 a true"),
        ("{{ printf \"%x\" \"hi\" }}", "6869"),
        ("{{ printf \"%c%c\" 104 105 }}", "hi"),
        (
            "{{ printf \"%.2f|%8.3f|%e|%g\" 3.14159 2.5 1234.5 0.5 }}",
            "3.14|   2.500|1.234500e+03|0.5",
        ),
        ("{{ printf \"100%%\" }}", "100%"),
        ("{{ printf \"%*d\" 4 7 }}", "   7"),
        ("{{ .s | printf \"<%s>\" }}", "<héllo>"),
        ("{{ printf \"%t\" true }}", "true"),
    ] {
        assert_eq!(ok(template, &vals), expected, "{template}");
    }
    assert_eq!(err("{{ printf \"%d\" .s }}", &vals), RUN_TIME_FAILURE);
}

#[test]
fn sprig_quoting_and_argument_order() {
    let vals = [("a", "x\"y"), ("b", "")];
    assert_eq!(ok("{{ quote .a 1 }}", &vals), "\"x\\\"y\" \"1\"");
    assert_eq!(ok("{{ squote .a }}", &vals), "'x\"y'");
    assert_eq!(ok("{{ .a | trimAll \"xy\" }}", &vals), "\"");
    assert_eq!(
        ok(
            "{{ default \"d\" }}|{{ default \"d\" .b }}|{{ .a | default \"d\" }}",
            &vals
        ),
        "d|d|x\"y"
    );
    assert_eq!(ok("{{ \"a\\nb\" | nindent 2 }}", &vals), "\n  a\n  b");
    assert_eq!(ok("{{ replace \"\" \"-\" \"ab\" }}", &vals), "-a-b-");
    assert_eq!(ok("{{ \"ß\" | upper }}", &vals), "SS");
    assert_eq!(ok("{{ if hasSuffix \"y\" .a }}yes{{ end }}", &vals), "yes");
    assert_eq!(ok("{{ coalesce .b \"\" }}", &vals), "<no value>");
}

#[test]
fn values_are_bytes() {
    let data = [("bin".to_owned(), Zeroizing::new(vec![0xff, 0x00, b'a']))]
        .into_iter()
        .collect();
    let out = render("t", "{{ .bin }}", &TemplateValues::new(&data)).expect("renders");
    assert_eq!(&out[..], &[0xff, 0x00, b'a']);
    let out = render("t", "{{ .bin | b64enc }}", &TemplateValues::new(&data)).expect("renders");
    assert_eq!(&out[..], b"/wBh");
}

#[test]
fn debug_shows_no_values() {
    let vals = values(&[("password", "hunter2")]);
    let shown = format!("{vals:?}");
    assert!(
        shown.contains("password") && !shown.contains("hunter2"),
        "{shown}"
    );
    let shown = format!("{:?}", value::Value::borrowed(b"hunter2"));
    assert!(!shown.contains("hunter2"), "{shown}");
}
