//! Python code objects made at run time (`exec` in a loop) under the real shim: the table of
//! names already sent is emptied as it fills, and every Python frame of every sample still has
//! its name in the capture, however many names go through the shim.

use memshim_test_support::prelude::shim;

use std::collections::HashSet;

use memshim_format::Record;
use shim::*;

/// Runs many_codes.py with `args` at `rate` under the shim; asserts every code object in every stack
/// has its name in the capture, and returns how many made_* functions were sampled.
fn every_code_named(name: &str, rate: &str, args: &[&str]) -> usize {
    let dir = scratch(name);
    let mut prog = Program::new(python_resolved())
        .arg(fixtures().join("../py/many_codes.py").to_str().unwrap());
    for a in args {
        prog = prog.arg(*a);
    }
    let plain = prog.run_plain(&dir);
    assert!(plain.success(), "{}", plain.stderr);
    let (o, caps) = prog.run_shim(&dir, "shim", Some(rate));
    assert_same(&plain, &o, name);
    let caps = captures(&caps);
    let cap = only(&caps);
    let mut named = std::collections::HashMap::new();
    let mut used = HashSet::new();
    for r in &cap.records {
        match r {
            Record::PyCode(c) => {
                named.insert(c.id, c.name.clone());
            }
            Record::Stack { python, .. } => used.extend(python.iter().map(|f| f.code)),
            _ => {}
        }
    }
    let made = used
        .iter()
        .filter(|id| named.get(*id).is_some_and(|n| n.starts_with("made_")))
        .count();
    let unnamed: Vec<_> = used.iter().filter(|id| !named.contains_key(*id)).collect();
    assert!(
        unnamed.is_empty(),
        "{} of {} code objects in stacks have no name",
        unnamed.len(),
        used.len()
    );
    made
}

#[test]
fn code_made_at_run_time_keeps_every_name() {
    let made = every_code_named("many-codes", "4K", &["60000"]);
    // More new code objects sampled than half the table holds: it was emptied at least once.
    assert!(made > 1 << 15, "only {made} made_* functions sampled");
}

/// Names of some 4 KiB each, 18,000+ of them sent: 70 MB through the 32 MiB arena, which the
/// writer starts over whenever it has read every event (before, the names past 32 MiB were lost).
#[test]
fn names_past_the_arena_size_keep_coming() {
    let made = every_code_named("long-names", "4K", &["30000", "2000"]);
    assert!(made > 15_000, "only {made} made_* functions sampled");
}

/// The same in `all` mode, where the ring is seldom empty: the arena's halves turn over anyway.
#[test]
fn names_past_the_arena_size_keep_coming_in_all_mode() {
    let made = every_code_named("long-names-all", "all", &["30000", "2000"]);
    assert!(made > 29_000, "only {made} made_* functions recorded");
}
