//! Python code objects made at run time (`exec` in a loop) under the real shim: the table of
//! names already sent is emptied as it fills, and every Python frame of every sample still has
//! its name in the capture.

mod shim_support;

use std::collections::HashSet;

use memshim_format::Record;
use shim_support::*;

#[test]
fn code_made_at_run_time_keeps_every_name() {
    let dir = scratch("many-codes");
    let prog = Program::new(python())
        .arg(fixtures().join("../py/many_codes.py").to_str().unwrap())
        .arg("60000");
    let plain = prog.run_plain(&dir);
    assert!(plain.success(), "{}", plain.stderr);
    let (o, caps) = prog.run_shim(&dir, "shim", Some("4K"));
    assert_same(&plain, &o, "many_codes.py");
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
    // More new code objects sampled than half the table holds: it was emptied at least once.
    assert!(made > 1 << 15, "only {made} made_* functions sampled");
    let unnamed: Vec<_> = used.iter().filter(|id| !named.contains_key(*id)).collect();
    assert!(
        unnamed.is_empty(),
        "{} of {} code objects in stacks have no name",
        unnamed.len(),
        used.len()
    );
}
