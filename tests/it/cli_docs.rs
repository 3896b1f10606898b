//! Shell completions and the man page come from the command definition, so
//! they name every subcommand there is, and a shell can load them.

use estd_testkit::process::estd_bin;

fn run(args: &[&str]) -> String {
    let out = std::process::Command::new(estd_bin())
        .args(args)
        .output()
        .expect("run estd");
    assert!(
        out.status.success(),
        "estd {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn completions_load_in_bash_and_name_the_subcommands() {
    let script = run(&["completions", "bash"]);
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("estd.bash");
    std::fs::write(&path, &script).expect("write");
    // Loaded by a real bash: defined, and offering the subcommands.
    let probe = format!(
        "source {path}; COMP_WORDS=(estd st); COMP_CWORD=1; _estd estd st estd; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        path = path.display()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &probe])
        .output()
        .expect("bash");
    let offered = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        offered.lines().any(|l| l == "store"),
        "completing `estd st` offers store: {offered:?}"
    );
    for shell in ["zsh", "fish"] {
        let s = run(&["completions", shell]);
        assert!(s.contains("serve") && s.contains("verify"), "{shell}: {s}");
    }
}

#[test]
fn the_man_page_is_roff_and_names_every_subcommand() {
    let page = run(&["man"]);
    assert!(page.contains(".TH estd 1"), "{page}");
    for sub in [
        "serve",
        "init",
        "admin",
        "store",
        "ca",
        "completions",
        "man",
    ] {
        assert!(
            page.lines().any(|l| l.contains(sub)),
            "the man page names {sub}:\n{page}"
        );
    }
}
