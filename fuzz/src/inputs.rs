//! Inputs: the examples as a seed corpus, mutated with edits that matter to parsers
//! (structure characters, anchors and aliases, merge keys, huge numbers, invalid UTF-8),
//! plus generated adversarial shapes (deep nesting, alias fan-out) and raw random bytes.

use crate::Target;
use rand::Rng;
use rand::rngs::SmallRng;

/// Tokens spliced into inputs: the characters and constructs parsers branch on.
const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"{",
    b"}",
    b"- ",
    b": ",
    b"\n",
    b"  ",
    b"\"",
    b"'",
    b"#",
    b",",
    b"&a ",
    b"*a",
    b"<<: *a",
    b"!!binary ",
    b"!!str ",
    b"%YAML 1.2\n",
    b"---\n",
    b"...\n",
    b"? ",
    b"|\n",
    b">\n",
    b"\\u0000",
    b"99999999999999999999999",
    b"-9223372036854775808",
    b"1e400",
    b"NaN",
    b"\xff\xfe",
    b"\xc3",
    b"2026-11-23T10:00:00Z",
    b"9999-12-31T23:59:60Z",
    b"-1s",
    b"18446744073709551615d",
    b"\0",
];

/// The seed corpus and the ways of drawing from it.
#[derive(Debug)]
pub struct Corpus {
    bundles: Vec<Vec<u8>>,
    json_bundles: Vec<Vec<u8>>,
    tests: Vec<Vec<u8>>,
}

impl Corpus {
    /// Reads the example bundles and test files (`examples/*.yaml`).
    pub fn load() -> std::io::Result<Corpus> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let mut corpus = Corpus {
            bundles: Vec::new(),
            json_bundles: Vec::new(),
            tests: Vec::new(),
        };
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            // The policy files only: `examples/clients/` holds programs, not policies.
            if path.extension().is_none_or(|e| e != "yaml") {
                continue;
            }
            let bytes = std::fs::read(&path)?;
            if path.to_string_lossy().ends_with(".tests.yaml") {
                corpus.tests.push(bytes);
            } else {
                // The same bundle in JSON seeds the JSON parser.
                if let Ok(b) = portcullis_policy::parse_bundle(&bytes, portcullis_policy::Format::Yaml) {
                    corpus
                        .json_bundles
                        .push(serde_json::to_vec(&b).map_err(std::io::Error::other)?);
                }
                corpus.bundles.push(bytes);
            }
        }
        Ok(corpus)
    }

    /// One input: its target, its bytes, and how it was made.
    pub fn draw(&self, rng: &mut SmallRng) -> (Target, Vec<u8>, &'static str) {
        let target = *pick(rng, &Target::ALL).unwrap_or(&Target::BundleYaml);
        let (bytes, kind) = match target {
            Target::BundleYaml | Target::BundleJson => match rng.random_range(0..10) {
                0 => (random_bytes(rng, 4096), "random bytes"),
                1 => (deep(rng), "deep nesting"),
                2 => (alias_fan_out(rng), "alias fan-out"),
                _ => {
                    let seeds = if matches!(target, Target::BundleJson) {
                        &self.json_bundles
                    } else {
                        &self.bundles
                    };
                    let seed = pick(rng, seeds).map_or(&[][..], Vec::as_slice);
                    (mutate(rng, seed), "mutated example")
                }
            },
            Target::TestsYaml => {
                let seed = pick(rng, &self.tests).map_or(&[][..], Vec::as_slice);
                (mutate(rng, seed), "mutated tests")
            }
            Target::Time | Target::Duration => {
                let seed = pick(rng, TOKENS).copied().unwrap_or(b"");
                (mutate(rng, seed), "mutated token")
            }
            Target::WireRequest => (random_bytes(rng, 512), "random bytes"),
        };
        (target, bytes, kind)
    }
}

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> Option<&'a T> {
    if items.is_empty() {
        None
    } else {
        items.get(rng.random_range(0..items.len()))
    }
}

fn random_bytes(rng: &mut SmallRng, max: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max);
    (0..len).map(|_| rng.random()).collect()
}

/// `seed` with one to eight edits: flips, token insertions, deletions and duplications.
fn mutate(rng: &mut SmallRng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..rng.random_range(1..=8) {
        let at = rng.random_range(0..=out.len());
        match rng.random_range(0..4) {
            0 => {
                if let Some(b) = out.get_mut(at) {
                    *b ^= 1 << rng.random_range(0..8);
                }
            }
            1 => {
                let token = pick(rng, TOKENS).copied().unwrap_or(b"");
                out.splice(at..at, token.iter().copied());
            }
            2 => {
                let end = (at + rng.random_range(0..64)).min(out.len());
                out.drain(at..end);
            }
            _ => {
                let end = (at + rng.random_range(0..256)).min(out.len());
                let copy: Vec<u8> = out.get(at..end).map(<[u8]>::to_vec).unwrap_or_default();
                let to = rng.random_range(0..=out.len());
                out.splice(to..to, copy);
            }
        }
    }
    out
}

/// Collections nested up to 200,000 deep, in flow or block style.
fn deep(rng: &mut SmallRng) -> Vec<u8> {
    let depth = 1usize << rng.random_range(1..18);
    let mut out = b"roles: ".to_vec();
    if rng.random_bool(0.5) {
        out.extend(std::iter::repeat_n(b'[', depth));
        out.extend(std::iter::repeat_n(b']', depth));
    } else {
        out.push(b'\n');
        for i in 0..depth.min(5_000) {
            out.extend(std::iter::repeat_n(b' ', i));
            out.extend_from_slice(b"- \n");
        }
    }
    out
}

/// Anchors whose aliases multiply: `levels` levels of `fan` aliases each, sometimes
/// through merge keys.
fn alias_fan_out(rng: &mut SmallRng) -> Vec<u8> {
    let (levels, fan) = (rng.random_range(1..16), rng.random_range(1..12));
    let merge = rng.random_bool(0.5);
    let mut doc = String::from("a0: &a0 {k: v}\n");
    for l in 1..=levels {
        let prev = l - 1;
        let items: Vec<String> = (0..fan)
            .map(|i| {
                if merge {
                    format!("m{i}: {{<<: *a{prev}}}")
                } else {
                    format!("m{i}: *a{prev}")
                }
            })
            .collect();
        doc.push_str(&format!("a{l}: &a{l} {{{}}}\n", items.join(", ")));
    }
    doc.into_bytes()
}
