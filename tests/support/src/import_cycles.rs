//! Import cycles among a crate's modules, found from its source.
//!
//! **The rule.** Module A *refers to* module B when any code of A (its file, its inline modules,
//! its tests) names a path into B: a `use` line, braces included (`use crate::{b::X, c}`), or an
//! inline path anywhere, inside macro calls too (`crate::b::f()`, `super::b::X`, `self::..`,
//! `$crate::..`). Doc links are not references. Modules are compared at a depth: at depth 1,
//! `crate::python::layout` is the `python` module (a folder counts as one module); at depth 2
//! it is `python::layout`. References between a module and its own ancestor or descendant never
//! count: a parent declaring, re-exporting or calling its children, and children using what
//! their parent defines (`super::Row`), is how a folder is built, not an import between layers.
//! A cycle is a set of modules, none an ancestor of another, that refer to each other in a loop.
//!
//! Paths that start with a plain name (`report::build` after `use crate::report`) are not
//! followed: the `use` that brought the name in is the reference.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::visit::Visit;

/// One reference of a module to another: where it is and the path as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub from: String,
    pub to: String,
    pub file: PathBuf,
    pub line: usize,
    pub path: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} ({}:{}: {})",
            self.from,
            self.to,
            self.file.display(),
            self.line,
            self.path
        )
    }
}

/// Modules that refer to each other in a loop: every member of one strongly connected group,
/// and one loop through some of them, each step with a reference that makes it.
#[derive(Debug, Clone)]
pub struct Cycle {
    pub modules: Vec<String>,
    pub steps: Vec<Reference>,
}

impl fmt::Display for Cycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "import cycle among {}:", self.modules.join(", "))?;
        for s in &self.steps {
            writeln!(f, "  {s}")?;
        }
        Ok(())
    }
}

/// The import cycles of the crate whose source root is `src` (its `lib.rs`, else `main.rs`),
/// with modules compared at `depth` (1: top-level modules). Empty when its arrows all point one
/// way. Fails, naming the file, on a module it cannot find or parse.
pub fn import_cycles(src: &Path, depth: usize) -> Result<Vec<Cycle>, String> {
    let refs = references(src)?;
    Ok(cycles(&refs, depth))
}

/// Every reference of every module of the crate at `src` to another module (full module paths,
/// `::`-joined; the crate root is the empty path).
pub fn references(src: &Path) -> Result<Vec<Reference>, String> {
    let root = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{}: no lib.rs or main.rs", src.display()))?;
    let mut modules = Vec::new();
    collect(&root, src, Vec::new(), &mut modules)?;
    let known: BTreeSet<Vec<String>> = modules.iter().map(|m| m.path.clone()).collect();
    let mut out = Vec::new();
    for m in &modules {
        for (line, raw) in &m.paths {
            let Some(target) = resolve(&m.path, raw, &known) else {
                continue;
            };
            out.push(Reference {
                from: m.path.join("::"),
                to: target.join("::"),
                file: m.file.clone(),
                line: *line,
                path: raw.join("::"),
            });
        }
    }
    Ok(out)
}

/// The cycles among `refs` with modules truncated to `depth` segments.
pub fn cycles(refs: &[Reference], depth: usize) -> Vec<Cycle> {
    let cut = |m: &str| -> String {
        m.split("::")
            .filter(|s| !s.is_empty())
            .take(depth)
            .collect::<Vec<_>>()
            .join("::")
    };
    // One reference kept per edge (the first met) to show where the edge comes from.
    let mut edges: BTreeMap<(String, String), Reference> = BTreeMap::new();
    for r in refs {
        let (a, b) = (cut(&r.from), cut(&r.to));
        if is_ancestor_or_self(&a, &b) || is_ancestor_or_self(&b, &a) {
            continue;
        }
        edges.entry((a, b)).or_insert_with(|| r.clone());
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in edges.keys() {
        graph.entry(a.clone()).or_default().insert(b.clone());
        graph.entry(b.clone()).or_default();
    }
    strongly_connected(&graph)
        .into_iter()
        .filter(|group| group.len() > 1)
        .map(|group| {
            let loop_ = shortest_loop(&graph, &group);
            let steps = loop_
                .windows(2)
                .map(|w| edges[&(w[0].clone(), w[1].clone())].clone())
                .collect();
            Cycle {
                modules: group.into_iter().collect(),
                steps,
            }
        })
        .collect()
}

fn is_ancestor_or_self(a: &str, b: &str) -> bool {
    a.is_empty() || a == b || b.starts_with(&format!("{a}::"))
}

/// A module of the crate: its path, the file its code is in, and every `crate::`/`super::`/
/// `self::` path its own code names (with the line), its inline modules' apart.
struct Module {
    path: Vec<String>,
    file: PathBuf,
    paths: Vec<(usize, Vec<String>)>,
}

/// Parses the module in `file` (path `path`, its children's files under `dir`), then every
/// module it declares, into `out`.
fn collect(
    file: &Path,
    dir: &Path,
    path: Vec<String>,
    out: &mut Vec<Module>,
) -> Result<(), String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let ast = syn::parse_file(&text).map_err(|e| {
        let at = e.span().start();
        format!("{}:{}:{}: {e}", file.display(), at.line, at.column + 1)
    })?;
    items(&ast.items, file, dir, path, out)
}

fn items(
    list: &[syn::Item],
    file: &Path,
    dir: &Path,
    path: Vec<String>,
    out: &mut Vec<Module>,
) -> Result<(), String> {
    let mut finder = PathFinder::default();
    let mut children = Vec::new();
    for item in list {
        match item {
            syn::Item::Mod(m) => children.push(m),
            other => finder.visit_item(other),
        }
    }
    out.push(Module {
        path: path.clone(),
        file: file.to_path_buf(),
        paths: finder.paths,
    });
    for m in children {
        let name = m.ident.to_string();
        let mut child = path.clone();
        child.push(name.clone());
        let child_dir = dir.join(&name);
        match &m.content {
            Some((_, inner)) => items(inner, file, &child_dir, child, out)?,
            None => {
                let explicit =
                    path_attr(m).map(|p| file.parent().unwrap_or(Path::new(".")).join(p));
                let candidates = match &explicit {
                    Some(p) => vec![p.clone()],
                    None => vec![dir.join(format!("{name}.rs")), child_dir.join("mod.rs")],
                };
                let found = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
                    format!(
                        "{}: `mod {name};` has no file (looked for {})",
                        file.display(),
                        candidates
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
                // A `name.rs` keeps its children in `name/`; `mod.rs` and `#[path]` files in
                // their own folder (the reference's rule for the latter outside inline modules).
                let next_dir = if found.ends_with("mod.rs") || explicit.is_some() {
                    found.parent().unwrap().to_path_buf()
                } else {
                    child_dir
                };
                collect(found, &next_dir, child, out)?;
            }
        }
    }
    Ok(())
}

fn path_attr(m: &syn::ItemMod) -> Option<String> {
    m.attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        },
        _ => None,
    })
}

/// The module a path written in module `from` lands in: `crate::`, `super::` and `self::`
/// followed to the longest prefix that is a module of the crate. None for any other path.
fn resolve(from: &[String], raw: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let mut at: Vec<String> = match raw.first()?.as_str() {
        "crate" | "$crate" => Vec::new(),
        "self" | "super" => from.to_vec(),
        _ => return None,
    };
    let mut rest = &raw[1..];
    if raw[0] == "super" {
        at.pop()?;
    }
    while rest.first().is_some_and(|s| s == "super") {
        at.pop()?;
        rest = &rest[1..];
    }
    for seg in rest {
        let mut next = at.clone();
        next.push(seg.clone());
        if !known.contains(&next) {
            break;
        }
        at = next;
    }
    Some(at)
}

/// Collects the `crate::`/`super::`/`self::` paths of the items it visits, each flattened
/// (`use crate::{a, b::c}` is `crate::a` and `crate::b::c`), with its line.
#[derive(Default)]
struct PathFinder {
    paths: Vec<(usize, Vec<String>)>,
}

impl PathFinder {
    fn push(&mut self, line: usize, segs: Vec<String>) {
        if matches!(
            segs.first().map(String::as_str),
            Some("crate" | "$crate" | "self" | "super")
        ) {
            self.paths.push((line, segs));
        }
    }

    fn use_tree(&mut self, prefix: &[String], t: &syn::UseTree) {
        let with = |s: String| {
            let mut v = prefix.to_vec();
            v.push(s);
            v
        };
        match t {
            syn::UseTree::Path(p) => self.use_tree(&with(p.ident.to_string()), &p.tree),
            syn::UseTree::Name(n) => {
                self.push(n.ident.span().start().line, with(n.ident.to_string()))
            }
            syn::UseTree::Rename(r) => {
                self.push(r.ident.span().start().line, with(r.ident.to_string()))
            }
            syn::UseTree::Glob(g) => self.push(g.star_token.spans[0].start().line, prefix.to_vec()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    /// Paths in a macro's tokens: runs of `ident :: ident ...`, `$crate` included.
    fn tokens(&mut self, ts: TokenStream) {
        let tokens: Vec<TokenTree> = ts.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(id) => {
                    let dollar = i > 0
                        && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '$');
                    let mut segs = vec![if dollar && id == "crate" {
                        "$crate".to_string()
                    } else {
                        id.to_string()
                    }];
                    let line = id.span().start().line;
                    let mut j = i + 1;
                    while is_path_sep(&tokens, j) {
                        match tokens.get(j + 2) {
                            Some(TokenTree::Ident(next)) => {
                                segs.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    self.push(line, segs);
                    i = j.max(i + 1);
                }
                _ => i += 1,
            }
        }
    }
}

fn is_path_sep(tokens: &[TokenTree], j: usize) -> bool {
    matches!(
        (tokens.get(j), tokens.get(j + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
            if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
    )
}

impl<'ast> Visit<'ast> for PathFinder {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let lead = u.leading_colon.is_some();
        if !lead {
            self.use_tree(&[], &u.tree);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            let segs = p.segments.iter().map(|s| s.ident.to_string()).collect();
            let line = p.segments[0].ident.span().start().line;
            self.push(line, segs);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(m.tokens.clone());
    }

    /// `pub(in crate::x)` says who may see an item, not what it uses.
    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {}

    /// Inline modules are modules of their own, collected apart.
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}
}

/// Tarjan's strongly connected components of `graph`, each sorted.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.graph[v] {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            s.out.push(group);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The shortest loop from the group's first module back to it, within the group (breadth
/// first): the modules met, the first also last.
fn shortest_loop(
    graph: &BTreeMap<String, BTreeSet<String>>,
    group: &BTreeSet<String>,
) -> Vec<String> {
    let start = group.iter().next().expect("a group has a member").clone();
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start.clone()]);
    while let Some(v) = queue.pop_front() {
        for w in graph[&v].iter().filter(|w| group.contains(*w)) {
            if *w == start {
                let mut chain = vec![v.clone()];
                let mut at = &v;
                while let Some(p) = came_from.get(at) {
                    chain.push(p.clone());
                    at = p;
                }
                chain.reverse();
                chain.push(start);
                return chain;
            }
            if !came_from.contains_key(w) {
                came_from.insert(w.clone(), v.clone());
                queue.push_back(w.clone());
            }
        }
    }
    unreachable!("a strongly connected group of two or more has a loop through each member")
}
