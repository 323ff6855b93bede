//! Replays every input kept in `fuzz/regressions/<target>/` (each crash the fuzzer found,
//! minimised) through its target: none may panic again.

use std::path::Path;

#[test]
fn every_kept_input_runs_through_its_target_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    for (name, target) in gatehouse_fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name}: {} panics again", path.display());
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} kept inputs");
}

#[test]
fn every_target_takes_empty_and_odd_input() {
    for (name, target) in gatehouse_fuzz::TARGETS {
        for data in [&b""[..], b"\0", b"\xff\xfe", b"{", b"---\n", b"data: x\n\n"] {
            let outcome = std::panic::catch_unwind(|| target(data));
            assert!(outcome.is_ok(), "{name} panics on {data:?}");
        }
    }
}

#[test]
fn every_binary_is_a_target_of_the_table() {
    // scripts/fuzz runs the binaries of Cargo.toml; the replay above uses the table.
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let bins: Vec<&str> = manifest
        .split("[[bin]]")
        .skip(1)
        .filter_map(|b| b.lines().find_map(|l| l.strip_prefix("name = ")))
        .map(|n| n.trim_matches('"'))
        .collect();
    let table: Vec<&str> = gatehouse_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
    assert_eq!(bins, table);
}
