//! Finds the index of mimalloc's `purge_delay` option in the header of the mimalloc that
//! `libmimalloc-sys` compiles: the option is an index into a C enum whose order differs between
//! mimalloc 2 and 3, and the Rust bindings do not name it.

use std::path::Path;

fn main() {
    // `libmimalloc-sys` (`links = "mimalloc"`) exports its include directory.
    let include = std::env::var("DEP_MIMALLOC_INCLUDE_DIR")
        .expect("libmimalloc-sys exports DEP_MIMALLOC_INCLUDE_DIR (since 0.1.44)");
    let header = Path::new(&include).join("mimalloc.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let text = std::fs::read_to_string(&header)
        .unwrap_or_else(|e| panic!("reading {}: {e}", header.display()));
    let index = enum_index(&text, "mi_option_e", "mi_option_purge_delay")
        .unwrap_or_else(|| panic!("{} has no mi_option_purge_delay", header.display()));
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("mimalloc_options.rs");
    std::fs::write(
        out,
        format!("/// `mi_option_purge_delay` in the mimalloc this build links.\npub(crate) const PURGE_DELAY: i32 = {index};\n"),
    )
    .unwrap();
}

/// The value of `name` in `typedef enum <tag> { ... }`, where the members before it take the
/// C default values (each one more than the last, unless it says `= n`).
fn enum_index(header: &str, tag: &str, name: &str) -> Option<i64> {
    let body = header.split(&format!("typedef enum {tag}")).nth(1)?;
    let body = &body[body.find('{')? + 1..body.find('}')?];
    let mut next = 0i64;
    for line in body.lines() {
        let code = line.split("//").next().unwrap_or("");
        for member in code.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let (ident, value) = match member.split_once('=') {
                Some((ident, value)) => (ident.trim(), value.trim().parse().ok()?),
                None => (member, next),
            };
            if ident == name {
                return Some(value);
            }
            next = value + 1;
        }
    }
    None
}
