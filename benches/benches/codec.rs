//! Codec benches: decode of masked client frames by a server and encode of server frames,
//! through our `Connection` and through tungstenite and fastwebsockets in the same run, plus the
//! kernels (unmasking, UTF-8 validation) alone.
//!
//! `cargo bench -p wsproto-benches --bench codec` runs everything (about seven minutes) and, when
//! run without a filter, rewrites the `codec` section of `benches/RESULTS.md` from criterion's
//! estimates. `cargo bench -p wsproto-benches --bench codec -- decode/ours` runs a subset.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use wsproto::frame::apply_mask;
use wsproto::utf8::Utf8Validator;
use wsproto_benches::codec::{size_label, Case, Lib, Outgoing};
use wsproto_benches::frames;
use wsproto_benches::{procfs, report};

/// Kernel sizes: 16 B to 1 MiB.
const KERNEL_SIZES: [usize; 8] = [16, 64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 1 << 20];

/// A key whose bytes are all below 0x80, so masked ASCII stays ASCII: the unmask-and-validate
/// bench can unmask the same buffer over and over and always validate ASCII text.
const ASCII_SAFE_KEY: [u8; 4] = [0x37, 0x7a, 0x21, 0x3d];

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for case in Case::all() {
        let input = case.client_wire();
        let batch = case.batch();
        let payload = case.payload();
        group.throughput(Throughput::Elements(batch as u64));
        for lib in Lib::ALL {
            let mut decoder = lib.decoder();
            // Every library must decode exactly what was sent before it is timed.
            for (kind, got) in decoder.decode_collect(&input, batch) {
                assert!(kind == case.kind && got == payload, "{} decoded {} wrongly", lib.id(), case.id());
            }
            group.bench_function(BenchmarkId::new(lib.id(), case.id()), |b| b.iter(|| decoder.decode(&input, batch)));
        }
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for case in Case::all() {
        let message = Outgoing::new(case);
        group.throughput(Throughput::Elements(1));
        let expected = frames::fragment_ranges(case.size, case.fragments)
            .map(|r| frames::header_len(r.len(), false) + r.len())
            .sum::<usize>();
        for lib in Lib::ALL {
            let mut encoder = lib.encoder();
            assert_eq!(encoder.encode(&message), expected, "{} encoded {} to a wrong length", lib.id(), case.id());
            group.bench_function(BenchmarkId::new(lib.id(), case.id()), |b| b.iter(|| encoder.encode(&message)));
        }
    }
    group.finish();
}

/// A buffer of `len` bytes starting at a 64-byte boundary (`aligned`) or one byte past it.
struct Placed {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Placed {
    fn new(data: &[u8], aligned: bool) -> Placed {
        let mut storage = vec![0u8; data.len() + 128];
        let misalign = storage.as_ptr() as usize % 64;
        let start = (64 - misalign) % 64 + usize::from(!aligned);
        storage[start..start + data.len()].copy_from_slice(data);
        Placed { storage, start, len: data.len() }
    }

    fn get(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

fn validate(data: &[u8]) -> bool {
    let mut v = Utf8Validator::new();
    v.feed(data).is_ok() && v.is_complete()
}

fn kernels(c: &mut Criterion) {
    for (name, make) in [
        ("unmask", frames::payload as fn(frames::Kind, usize) -> Vec<u8>),
        ("utf8_ascii", frames::payload),
        ("utf8_mixed", |_, len| frames::mixed_utf8(len)),
        ("unmask_validate_ascii", frames::payload),
    ] {
        let mut group = c.benchmark_group(name);
        for size in KERNEL_SIZES {
            let kind = if name == "unmask" { frames::Kind::Binary } else { frames::Kind::Text };
            let data = make(kind, size);
            group.throughput(Throughput::Bytes(data.len() as u64));
            for aligned in [true, false] {
                let mut buf = Placed::new(&data, aligned);
                let id = BenchmarkId::new(if aligned { "aligned" } else { "unaligned" }, size);
                match name {
                    "unmask" => {
                        group.bench_function(id, |b| b.iter(|| apply_mask(black_box(buf.get()), frames::MASK_KEY, 0)))
                    }
                    "unmask_validate_ascii" => group.bench_function(id, |b| {
                        b.iter(|| {
                            let payload = black_box(buf.get());
                            apply_mask(payload, ASCII_SAFE_KEY, 0);
                            assert!(validate(payload));
                        })
                    }),
                    _ => group.bench_function(id, |b| b.iter(|| assert!(validate(black_box(buf.get()))))),
                };
            }
        }
        group.finish();
    }
}

/// Where criterion keeps its estimates: the default it would pick itself ($CRITERION_HOME,
/// else $CARGO_TARGET_DIR/criterion), else the workspace's `target/criterion`.
fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Path::new(&target).join("criterion");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/criterion")
}

/// Criterion's estimate of the time per iteration, in ns (the slope of its linear fit, else
/// the mean).
fn estimate(dir: &Path, group: &str, function: &str, value: &str) -> Option<f64> {
    let path = dir.join(group).join(function).join(value).join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    let pick = |key: &str| json.get(key)?.get("point_estimate")?.as_f64();
    pick("slope").or_else(|| pick("mean"))
}

fn gbps(bytes: usize, ns: f64) -> String {
    format!("{:.2}", bytes as f64 / ns)
}

fn speedup(ours: Option<f64>, theirs: Option<f64>) -> String {
    // Times, so theirs ÷ ours is how many times faster we are.
    report::ratio(theirs, ours)
}

fn summary(dir: &Path) -> String {
    let mut md = format!(
        "_Generated by `cargo bench -p wsproto-benches --bench codec`; do not edit by hand._\n\n\
         - Machine: {}\n- Date: {}\n- Target: default (x86-64 baseline, no `-C target-cpu`); profile `bench` (fat LTO)\n\
         - ns/msg: criterion's estimate per iteration ÷ messages per iteration; GB/s: payload bytes (not wire \
         bytes) per ns. Speed-ups are peer time ÷ our time in the same run (> 1 = we are faster).\n",
        procfs::machine(),
        report::now_utc()
    );
    let mut targets: Vec<Vec<String>> = Vec::new();
    for group in ["decode", "encode"] {
        let title = if group == "decode" {
            "Decode: masked client frames through a server connection, whole messages, text validated"
        } else {
            "Encode: server frames (unmasked), handed to a discarding transport"
        };
        md.push_str(&format!("\n#### {title}\n\n"));
        let mut rows = Vec::new();
        for case in Case::all() {
            let per = if group == "decode" { case.batch() as f64 } else { 1.0 };
            let ns = |lib: Lib| estimate(dir, group, lib.id(), &case.id()).map(|t| t / per);
            let (ours, tung, fast) = (ns(Lib::Ours), ns(Lib::Tungstenite), ns(Lib::Fastwebsockets));
            let f = |t: Option<f64>| t.map_or("–".to_owned(), |t| format!("{t:.0}"));
            rows.push(vec![
                case.label(),
                f(ours),
                ours.filter(|_| case.size > 0).map_or("–".to_owned(), |t| gbps(case.size, t)),
                f(tung),
                f(fast),
                speedup(ours, tung),
                speedup(ours, fast),
            ]);
            if group == "decode" && case.fragments == 1 && matches!(case.size, 20 | 125) {
                for (peer, goal, t) in [("tungstenite", 4.0, tung), ("fastwebsockets", 1.0, fast)] {
                    let met = matches!((ours, t), (Some(o), Some(t)) if t / o >= goal);
                    targets.push(vec![
                        format!("small-frame decode, {}: ours vs {peer}", case.label()),
                        format!("≥ {goal:.0}×"),
                        speedup(ours, t),
                        (if met { "met" } else { "**missed**" }).to_owned(),
                    ]);
                }
            }
        }
        md.push_str(&report::table(
            &[
                "message",
                "ours ns/msg",
                "ours GB/s",
                "tungstenite ns/msg",
                "fastwebsockets ns/msg",
                "vs tungstenite",
                "vs fastwebsockets",
            ],
            &rows,
        ));
    }
    md.push_str("\n#### Kernels alone (GB/s; aligned = 64-byte aligned, unaligned = one byte past)\n\n");
    let mut rows = Vec::new();
    for size in KERNEL_SIZES {
        let mut row = vec![size_label(size)];
        for group in ["unmask", "utf8_ascii", "utf8_mixed", "unmask_validate_ascii"] {
            for function in ["aligned", "unaligned"] {
                let bytes = if group == "utf8_mixed" { frames::mixed_utf8(size).len() } else { size };
                row.push(estimate(dir, group, function, &size.to_string()).map_or("–".to_owned(), |t| gbps(bytes, t)));
            }
        }
        rows.push(row);
    }
    md.push_str(&report::table(
        &[
            "size",
            "unmask",
            "unmask (unaligned)",
            "UTF-8 ASCII",
            "UTF-8 ASCII (unaligned)",
            "UTF-8 mixed",
            "UTF-8 mixed (unaligned)",
            "unmask + validate ASCII",
            "unmask + validate ASCII (unaligned)",
        ],
        &rows,
    ));
    let kernel = |group: &str, function: &str| estimate(dir, group, function, &(64usize << 10).to_string());
    for (what, group, goal) in [
        ("unmask, 64 KiB in cache", "unmask", 40.0),
        ("ASCII unmask + validate, 64 KiB", "unmask_validate_ascii", 20.0),
    ] {
        for function in ["aligned", "unaligned"] {
            let rate = kernel(group, function).map(|t| (64 << 10) as f64 / t);
            targets.insert(
                0,
                vec![
                    format!("{what} ({function})"),
                    format!("≥ {goal:.0} GB/s"),
                    rate.map_or("–".to_owned(), |r| format!("{r:.1} GB/s")),
                    (if rate.is_some_and(|r| r >= goal) { "met" } else { "**missed**" }).to_owned(),
                ],
            );
        }
    }
    let mut out = String::from("#### Targets\n\n");
    out.push_str(&report::table(&["target", "goal", "measured", ""], &targets));
    md.insert_str(md.find("\n####").unwrap_or(md.len()), &format!("\n{out}"));
    md
}

fn main() {
    let dir = criterion_dir();
    // `output_directory` is criterion's own (hidden) setter; pinning the path here means the
    // summary reads exactly what this run wrote.
    let mut criterion = Criterion::default()
        .output_directory(&dir)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(700))
        .sample_size(20)
        .configure_from_args();
    decode(&mut criterion);
    encode(&mut criterion);
    kernels(&mut criterion);
    criterion.final_summary();
    // A full run (`cargo bench` passes `--bench`; a filter is a positional argument) rewrites
    // the section; a filtered or test-mode run only prints it.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| !a.starts_with('-'));
    let md = summary(&dir);
    if full {
        match report::replace_section(&report::results_path(), "codec", &md) {
            Ok(()) => eprintln!("wrote the codec section of {}", report::results_path().display()),
            Err(e) => eprintln!("could not write RESULTS.md: {e}"),
        }
    } else if args.iter().any(|a| a == "--bench") {
        println!("{md}");
    }
}
