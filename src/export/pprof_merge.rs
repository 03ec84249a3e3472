//! Several processes' pprof profiles as one (what `memshim serve` answers without `pid`): the
//! string tables re-interned, functions shared by name and file, each profile's mappings and
//! locations kept as its own (their addresses belong to that process), samples side by side.

use std::collections::HashMap;

use super::pprof::{Function, Line, Location, Mapping, Profile, Sample, ValueType};

/// The merged profile; the sample types and period of the first (every memshim profile has
/// the same types).
pub fn merge(mut profiles: Vec<Profile>) -> Profile {
    if profiles.len() == 1 {
        return profiles.pop().expect("one");
    }
    let mut m = Merger::default();
    m.s("");
    for (k, p) in profiles.iter().enumerate() {
        let remap = |m: &mut Merger, i: i64| -> i64 {
            let text = p.string_table.get(i as usize).map_or("", String::as_str);
            m.s(text)
        };
        if k == 0 {
            m.out.sample_type = p
                .sample_type
                .iter()
                .map(|v| ValueType {
                    r#type: remap(&mut m, v.r#type),
                    unit: remap(&mut m, v.unit),
                })
                .collect();
            m.out.period_type = p.period_type.as_ref().map(|v| ValueType {
                r#type: remap(&mut m, v.r#type),
                unit: remap(&mut m, v.unit),
            });
            m.out.period = p.period;
            m.out.default_sample_type = remap(&mut m, p.default_sample_type);
            m.out.time_nanos = p.time_nanos;
        }
        m.out.time_nanos = m.out.time_nanos.min(p.time_nanos);
        m.out.duration_nanos = m.out.duration_nanos.max(p.duration_nanos);
        for &c in &p.comment {
            let c = remap(&mut m, c);
            m.out.comment.push(c);
        }
        let mut functions = HashMap::new();
        for f in &p.function {
            let key = (
                remap(&mut m, f.name),
                remap(&mut m, f.system_name),
                remap(&mut m, f.filename),
            );
            let next = m.out.function.len() as u64 + 1;
            let id = *m.functions.entry(key).or_insert(next);
            if id == next {
                m.out.function.push(Function {
                    id,
                    name: key.0,
                    system_name: key.1,
                    filename: key.2,
                });
            }
            functions.insert(f.id, id);
        }
        let mut mappings = HashMap::new();
        for mp in &p.mapping {
            let id = m.out.mapping.len() as u64 + 1;
            let filename = remap(&mut m, mp.filename);
            let build_id = remap(&mut m, mp.build_id);
            m.out.mapping.push(Mapping {
                id,
                filename,
                build_id,
                ..mp.clone()
            });
            mappings.insert(mp.id, id);
        }
        let mut locations = HashMap::new();
        for l in &p.location {
            let id = m.out.location.len() as u64 + 1;
            m.out.location.push(Location {
                id,
                mapping_id: mappings.get(&l.mapping_id).copied().unwrap_or(0),
                address: l.address,
                line: l
                    .line
                    .iter()
                    .map(|ln| Line {
                        function_id: functions.get(&ln.function_id).copied().unwrap_or(0),
                        line: ln.line,
                    })
                    .collect(),
            });
            locations.insert(l.id, id);
        }
        for s in &p.sample {
            m.out.sample.push(Sample {
                location_id: s
                    .location_id
                    .iter()
                    .filter_map(|l| locations.get(l).copied())
                    .collect(),
                value: s.value.clone(),
            });
        }
    }
    m.out
}

#[derive(Default)]
struct Merger {
    out: Profile,
    strings: HashMap<String, i64>,
    functions: HashMap<(i64, i64, i64), u64>,
}

impl Merger {
    fn s(&mut self, text: &str) -> i64 {
        if let Some(&i) = self.strings.get(text) {
            return i;
        }
        let i = self.out.string_table.len() as i64;
        self.out.string_table.push(text.to_string());
        self.strings.insert(text.to_string(), i);
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, bytes: i64) -> Profile {
        let strings = ["", "inuse_space", "bytes", name, "f.c", "/lib.so"];
        Profile {
            sample_type: vec![ValueType { r#type: 1, unit: 2 }],
            sample: vec![Sample {
                location_id: vec![1],
                value: vec![bytes],
            }],
            mapping: vec![Mapping {
                id: 1,
                filename: 5,
                ..Default::default()
            }],
            location: vec![Location {
                id: 1,
                mapping_id: 1,
                address: 0x1000,
                line: vec![Line {
                    function_id: 1,
                    line: 3,
                }],
            }],
            function: vec![Function {
                id: 1,
                name: 3,
                system_name: 3,
                filename: 4,
            }],
            string_table: strings.iter().map(|s| s.to_string()).collect(),
            default_sample_type: 1,
            ..Default::default()
        }
    }

    #[test]
    fn two_processes_merge_with_their_functions_shared_by_name() {
        let p = merge(vec![one("leak", 10), one("leak", 5), one("other", 1)]);
        assert_eq!(p.sample.len(), 3);
        assert_eq!(p.function.len(), 2, "leak once, other once");
        assert_eq!(p.location.len(), 3);
        assert_eq!(p.mapping.len(), 3);
        let name = |s: &Sample| {
            let l = &p.location[s.location_id[0] as usize - 1];
            let f = &p.function[l.line[0].function_id as usize - 1];
            p.string_table[f.name as usize].clone()
        };
        assert_eq!(name(&p.sample[1]), "leak");
        assert_eq!(name(&p.sample[2]), "other");
        assert_eq!(
            p.string_table[p.default_sample_type as usize],
            "inuse_space"
        );
    }
}
