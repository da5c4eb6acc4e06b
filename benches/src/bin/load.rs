//! The loopback load harness: our mio echo server, the raw-TCP ceiling and the peers, each in
//! its own single-threaded process pinned to one core, driven by a mio load generator pinned
//! to the other, interleaved A B C A B C so that drift and neighbours' noise hit all alike.
//!
//! ```text
//! cargo run --profile release-lto -p wsproto-benches --bin load            # full run, writes RESULTS.md
//! cargo run --release -p wsproto-benches --bin load -- --smoke             # CI: a second or two, exits non-zero on failure
//! load --reps 5 --measure-ms 2000 --only echo,broadcast --no-write         # options
//! ```
//!
//! The `load` section of `RESULTS.md` (and the chart) is rewritten only by a run of all its
//! groups; the `deflate` section by any run of the `deflate` group.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use wsproto_benches::client::{self, EchoSpec, Exchange, Measured, Phases, Target, Wire};
use wsproto_benches::codec::size_label;
use wsproto_benches::frames::Kind;
use wsproto_benches::procfs;
use wsproto_benches::report::{self, BarGroup};
use wsproto_benches::servers::ServerKind;

/// Core for the servers, core for the load generator.
const SERVER_CPU: &str = "0";
const CLIENT_CPU: &str = "1";

struct Options {
    smoke: bool,
    reps: usize,
    phases: Phases,
    only: Option<Vec<String>>,
    write: bool,
    pin: bool,
    /// Connections per memory measurement of compressed connections.
    memory_conns: usize,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            smoke: false,
            reps: 4,
            phases: Phases { warmup: Duration::from_millis(150), measure: Duration::from_millis(500) },
            only: None,
            write: true,
            pin: true,
            memory_conns: MEMORY_CONNS,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--smoke" => o.smoke = true,
                "--reps" => o.reps = value()?.parse().map_err(|e| format!("--reps: {e}"))?,
                "--warmup-ms" => o.phases.warmup = ms(value()?)?,
                "--measure-ms" => o.phases.measure = ms(value()?)?,
                "--only" => o.only = Some(value()?.split(',').map(str::to_owned).collect()),
                "--no-write" => o.write = false,
                "--no-pin" => o.pin = false,
                "--memory-conns" => o.memory_conns = value()?.parse().map_err(|e| format!("--memory-conns: {e}"))?,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        if o.smoke {
            o.reps = 1;
            o.phases = Phases { warmup: Duration::from_millis(100), measure: Duration::from_millis(200) };
            o.write = false;
        }
        Ok(o)
    }

    fn wants(&self, group: &str) -> bool {
        self.only.as_ref().is_none_or(|only| only.iter().any(|g| g == group))
    }
}

const USAGE: &str = "usage: load [--smoke] [--reps N] [--warmup-ms MS] [--measure-ms MS] \
[--only echo,pipelined,broadcast,idle,handshakes,deflate] [--no-write] [--no-pin] [--memory-conns N]";

/// The groups whose tables make up the `load` section.
const LOAD_GROUPS: [&str; 5] = ["echo", "pipelined", "broadcast", "handshakes", "idle"];

fn ms(value: &str) -> Result<Duration, String> {
    value.parse().map(Duration::from_millis).map_err(|e| format!("{value}: {e}"))
}

/// A server process, killed when dropped.
struct ServerProc {
    kind: ServerKind,
    child: Child,
    addr: SocketAddr,
}

impl ServerProc {
    fn spawn(kind: ServerKind, pin: bool) -> io::Result<ServerProc> {
        // For comparing builds: `LOAD_SERVER_BIN=/path/to/an/older/load load probe ...`.
        let exe = std::env::var_os("LOAD_SERVER_BIN").map_or_else(std::env::current_exe, |p| Ok(p.into()))?;
        let mut command = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", SERVER_CPU]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let mut child = command
            .args(["serve", kind.id(), "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line)?;
        let addr = line.trim().strip_prefix("listening ").and_then(|a| a.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            return Err(io::Error::other(format!("{}: did not start ({line:?})", kind.id())));
        };
        Ok(ServerProc { kind, child, addr })
    }

    fn target(&self) -> Target {
        Target { addr: self.addr, raw: self.kind.is_raw(), pid: Some(self.child.id()) }
    }

    fn rss(&self) -> Option<u64> {
        procfs::rss_bytes(self.child.id())
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[String]) -> ExitCode {
    let Some(kind) = args.first().and_then(|id| ServerKind::from_id(id)) else {
        eprintln!("usage: load serve <{}> [ADDR]", ServerKind::ALL.map(ServerKind::id).join("|"));
        return ExitCode::FAILURE;
    };
    let addr = args.get(1).map_or("127.0.0.1:0", String::as_str).parse().expect("a socket address");
    let result = kind.serve(addr, |addr| {
        println!("listening {addr}");
        let _ = io::stdout().flush();
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e}", kind.id());
            ExitCode::FAILURE
        }
    }
}

/// `load probe SERVER CONNS SIZE text|binary DEPTH SECONDS [deflate]`: one echo workload
/// against one server, for diagnosis (e.g. under `perf record -p`). SERVER is a server kind
/// (spawned and pinned here) or `ws://ADDR` / `raw://ADDR` for a server already running;
/// `deflate` offers permessage-deflate and sends compressed messages.
fn probe(args: &[String]) -> ExitCode {
    let usage = "usage: load probe SERVER CONNS SIZE text|binary DEPTH SECONDS [deflate]";
    let (args, deflate) = match args {
        [rest @ .., last] if last == "deflate" => (rest, true),
        _ => (args, false),
    };
    let [server, conns, size, kind, depth, secs] = args else {
        eprintln!("{usage}");
        return ExitCode::FAILURE;
    };
    let parse = |v: &str| v.parse::<usize>().map_err(|e| format!("{v}: {e}"));
    let spec = (|| -> Result<(EchoSpec, f64), String> {
        let kind = match kind.as_str() {
            "text" => Kind::Text,
            "binary" => Kind::Binary,
            other => return Err(format!("{other}: text or binary")),
        };
        let spec = EchoSpec { conns: parse(conns)?, kind, size: parse(size)?, depth: parse(depth)?, deflate };
        Ok((spec, secs.parse::<f64>().map_err(|e| e.to_string())?))
    })();
    let Ok((spec, secs)) = spec.map_err(|e| eprintln!("{e}\n{usage}")) else { return ExitCode::FAILURE };
    let pin = taskset_works() && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    if pin {
        let pid = std::process::id().to_string();
        let _ = Command::new("taskset").args(["-a", "-p", "-c", CLIENT_CPU, &pid]).stdout(Stdio::null()).status();
    }
    let mut _server = None;
    let target = if let Some(addr) = server.strip_prefix("ws://").or(server.strip_prefix("raw://")) {
        Target { addr: addr.parse().expect("an address"), raw: server.starts_with("raw"), pid: None }
    } else {
        let Some(kind) = ServerKind::from_id(server) else {
            eprintln!("unknown server {server}");
            return ExitCode::FAILURE;
        };
        let proc = ServerProc::spawn(kind, pin).expect("server starts");
        let target = proc.target();
        _server = Some(proc);
        target
    };
    let phases = Phases { warmup: Duration::from_millis(300), measure: Duration::from_secs_f64(secs) };
    match client::echo(&target, spec, phases) {
        Ok(m) => {
            let us = |q| m.hist.value_at_quantile(q) as f64 / 1e3;
            let wire = m.wire.map_or(String::new(), |w| {
                format!(
                    "  wire {:.0} B out, {:.0} B back ({:.0}% compressed)",
                    w.sent,
                    w.received,
                    100.0 * w.compressed
                )
            });
            println!(
                "{} msg/s  p50 {:.0} µs  p99 {:.0} µs  server {}  client {:.0}%{wire}  errors {:?}",
                report::rate(m.rate()),
                us(0.5),
                us(0.99),
                m.server_cpu.map_or("?".to_owned(), |c| format!(
                    "{:.2} µs/msg ({:.0}%)",
                    c * 1e6 / m.count.max(1) as f64,
                    100.0 * c / m.secs
                )),
                100.0 * m.client_cpu / m.secs,
                m.errors
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// The series in tables and charts, ours first, the ceiling second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Series {
    Ours,
    Raw,
    /// Our tokio adapter (current-thread runtime, a task per connection).
    OursTokio,
    Fast,
    TokioTung,
    Tung,
    /// Our echo server (the same process as `Ours`), the client offering permessage-deflate.
    OursDeflate,
    /// The same against a server set for memory (no context takeover, 9-bit window).
    OursDeflateLean,
}

const SERIES: [Series; 8] = [
    Series::Ours,
    Series::Raw,
    Series::OursTokio,
    Series::Fast,
    Series::TokioTung,
    Series::Tung,
    Series::OursDeflate,
    Series::OursDeflateLean,
];

impl Series {
    fn name(self, broadcast: bool) -> &'static str {
        match (self, broadcast) {
            (Series::Ours, _) => "ours (mio adapter)",
            (Series::Raw, false) => "raw TCP (ceiling)",
            (Series::Raw, true) => "raw TCP fan-out (ceiling)",
            (Series::OursTokio, _) => "ours (tokio adapter)",
            (Series::Fast, _) => "fastwebsockets",
            (Series::TokioTung, _) => "tokio-tungstenite",
            (Series::Tung, _) => "tungstenite (thread/conn)",
            (Series::OursDeflate, _) => "ours+deflate",
            (Series::OursDeflateLean, _) => "ours+deflate, lean server",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Series::Ours => "ours",
            Series::Raw => "raw",
            Series::OursTokio => "ours-tokio",
            Series::Fast => "fws",
            Series::TokioTung => "tokio-tung",
            Series::Tung => "tung",
            Series::OursDeflate => "ours+deflate",
            Series::OursDeflateLean => "ours+deflate-lean",
        }
    }

    /// The client offers permessage-deflate and compresses its messages.
    fn deflate(self) -> bool {
        matches!(self, Series::OursDeflate | Series::OursDeflateLean)
    }

    fn echo_server(self) -> ServerKind {
        match self {
            Series::Ours | Series::OursDeflate => ServerKind::OursEcho,
            Series::OursDeflateLean => ServerKind::OursEchoLean,
            Series::Raw => ServerKind::RawEcho,
            Series::OursTokio => ServerKind::OursTokioEcho,
            Series::Fast => ServerKind::FastwebsocketsEcho,
            Series::TokioTung => ServerKind::TokioTungsteniteEcho,
            Series::Tung => ServerKind::TungsteniteEcho,
        }
    }

    fn broadcast_server(self) -> Option<ServerKind> {
        match self {
            Series::Ours => Some(ServerKind::OursBroadcast),
            Series::Raw => Some(ServerKind::RawBroadcast),
            Series::Fast => Some(ServerKind::FastwebsocketsBroadcast),
            Series::TokioTung => Some(ServerKind::TokioTungsteniteBroadcast),
            Series::Tung | Series::OursTokio | Series::OursDeflate | Series::OursDeflateLean => None,
        }
    }
}

/// One workload's results: per series, one measurement per repetition.
struct Cell {
    label: String,
    runs: HashMap<Series, Vec<Result<Measured, String>>>,
}

impl Cell {
    fn ok(&self, s: Series) -> Vec<&Measured> {
        self.runs.get(&s).map(|v| v.iter().filter_map(|r| r.as_ref().ok()).collect()).unwrap_or_default()
    }

    fn rate(&self, s: Series) -> Option<f64> {
        report::median(&self.ok(s).iter().map(|m| m.rate()).collect::<Vec<_>>())
    }

    /// The median over repetitions of ours/theirs within each repetition.
    fn ratio(&self, ours: Series, theirs: Series) -> Option<f64> {
        let (a, b) = (self.runs.get(&ours)?, self.runs.get(&theirs)?);
        let per_rep: Vec<f64> = a
            .iter()
            .zip(b)
            .filter_map(|(a, b)| match (a, b) {
                (Ok(a), Ok(b)) if b.rate() > 0.0 => Some(a.rate() / b.rate()),
                _ => None,
            })
            .collect();
        report::median(&per_rep)
    }

    /// Wire bytes per message: medians over repetitions.
    fn wire(&self, s: Series) -> Option<Wire> {
        let wires: Vec<Wire> = self.ok(s).iter().filter_map(|m| m.wire).collect();
        let median = |f: fn(&Wire) -> f64| report::median(&wires.iter().map(f).collect::<Vec<_>>());
        Some(Wire {
            sent: median(|w| w.sent)?,
            received: median(|w| w.received)?,
            compressed: median(|w| w.compressed)?,
        })
    }

    fn ratio_text(&self, ours: Series, theirs: Series) -> String {
        let (a, b) = (self.runs.get(&ours), self.runs.get(&theirs));
        let per_rep: Vec<f64> = match (a, b) {
            (Some(a), Some(b)) => a
                .iter()
                .zip(b)
                .filter_map(|(a, b)| match (a, b) {
                    (Ok(a), Ok(b)) if b.rate() > 0.0 => Some(a.rate() / b.rate()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        match report::median(&per_rep) {
            Some(m) if per_rep.len() > 1 => {
                let lo = per_rep.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = per_rep.iter().copied().fold(0.0, f64::max);
                format!("**{m:.2}×** ({lo:.2}–{hi:.2})")
            }
            Some(m) => format!("**{m:.2}×**"),
            None => "–".to_owned(),
        }
    }

    fn hist(&self, s: Series) -> Option<Histogram<u64>> {
        let runs = self.ok(s);
        let mut merged = client::histogram();
        for m in &runs {
            merged.add(&m.hist).ok()?;
        }
        (!merged.is_empty()).then_some(merged)
    }

    fn latency(&self, s: Series) -> String {
        match self.hist(s) {
            Some(h) => {
                let us = |q| h.value_at_quantile(q) as f64 / 1e3;
                format!("{:.0} / {:.0} / {:.0}", us(0.5), us(0.99), us(0.999))
            }
            None => "–".to_owned(),
        }
    }

    /// Server CPU seconds per counted unit over all repetitions.
    fn cpu_per_unit(&self, s: Series) -> Option<f64> {
        let runs = self.ok(s);
        let cpu: f64 = runs.iter().filter_map(|m| m.server_cpu).sum();
        let count: u64 = runs.iter().map(|m| m.count).sum();
        (count > 0 && cpu > 0.0).then(|| cpu / count as f64)
    }

    /// Server CPU µs per counted unit, and the server's CPU utilisation.
    fn cpu(&self, s: Series) -> String {
        let runs = self.ok(s);
        let cpu: f64 = runs.iter().filter_map(|m| m.server_cpu).sum();
        let count: u64 = runs.iter().map(|m| m.count).sum();
        let secs: f64 = runs.iter().map(|m| m.secs).sum();
        if count == 0 || secs == 0.0 {
            return "–".to_owned();
        }
        format!("{:.2} µs ({:.0}%)", cpu * 1e6 / count as f64, 100.0 * cpu / secs)
    }

    fn client_util(&self, s: Series) -> String {
        let runs = self.ok(s);
        let cpu: f64 = runs.iter().map(|m| m.client_cpu).sum();
        let secs: f64 = runs.iter().map(|m| m.secs).sum();
        if secs == 0.0 {
            "–".to_owned()
        } else {
            format!("{:.0}%", 100.0 * cpu / secs)
        }
    }

    fn rate_text(&self, s: Series) -> String {
        let runs = self.runs.get(&s);
        match (self.rate(s), runs) {
            (Some(r), _) => report::rate(r),
            (None, Some(runs)) if !runs.is_empty() => "error".to_owned(),
            _ => "–".to_owned(),
        }
    }

    fn errors(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in SERIES {
            for run in self.runs.get(&s).into_iter().flatten() {
                match run {
                    Err(e) => out.push(format!("{} / {}: {e}", self.label, s.short())),
                    Ok(m) if !m.errors.is_empty() => {
                        out.push(format!("{} / {}: {}", self.label, s.short(), m.errors.join("; ")))
                    }
                    Ok(m) if m.count == 0 => out.push(format!("{} / {}: no throughput", self.label, s.short())),
                    Ok(_) => {}
                }
            }
        }
        out
    }
}

/// Runs `run` for each repetition and each series in turn (A B C A B C).
///
/// A sample that counted nothing without any error means the whole machine stalled for the
/// window (seen on shared machines); outside the smoke test it is taken again, once.
/// How many times a stalled sample is taken again.
const STALL_RETAKES: usize = 3;

fn interleave(
    label: String,
    series: &[Series],
    o: &Options,
    mut run: impl FnMut(Series) -> io::Result<Measured>,
) -> Cell {
    let mut cell = Cell { label, runs: HashMap::new() };
    for _ in 0..o.reps {
        for &s in series {
            let mut result = run(s);
            // A sample that counted nothing without any error: the whole machine stalled
            // through the window (seen on this shared machine, in the smoke's short windows
            // most of all). Taken again a few times; a server that really delivers nothing
            // still fails every retake.
            for _ in 0..STALL_RETAKES {
                if !matches!(&result, Ok(m) if m.count == 0 && m.errors.is_empty()) {
                    break;
                }
                eprintln!("  (a stalled sample of {}, taken again)", s.short());
                result = run(s);
            }
            let result = result.map_err(|e| e.to_string());
            cell.runs.entry(s).or_default().push(result);
        }
    }
    let summary: Vec<String> = series.iter().map(|&s| format!("{} {}", s.short(), cell.rate_text(s))).collect();
    eprintln!("  {:<28} {}", cell.label, summary.join("  "));
    cell
}

struct Idle {
    conns: usize,
    per_conn: HashMap<Series, Result<f64, String>>,
}

fn idle_memory(series: Series, conns: usize, pin: bool) -> Result<f64, String> {
    memory_per_conn(series.echo_server(), conns, false, None, pin)
}

/// Server RSS growth per connection, in a fresh server process: `conns` connections opened
/// (offering permessage-deflate if `deflate`), each doing `exchange` if given, then idle.
fn memory_per_conn(
    kind: ServerKind,
    conns: usize,
    deflate: bool,
    exchange: Option<Exchange>,
    pin: bool,
) -> Result<f64, String> {
    let server = ServerProc::spawn(kind, pin).map_err(|e| e.to_string())?;
    let target = server.target();
    // Warm the server up (first connections, and first messages, allocate its shared
    // buffers), then settle.
    let warm = exchange.map(|e| Exchange { messages: 1, ..e });
    drop(client::idle_after(&target, 8, deflate, warm).map_err(|e| e.to_string())?);
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss().ok_or("no RSS")?;
    let open = client::idle_after(&target, conns, deflate, exchange).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(500));
    let after = server.rss().ok_or("no RSS")?;
    drop(open);
    Ok((after as f64 - before as f64) / conns as f64)
}

/// Connections per memory measurement of compressed connections, unless `--memory-conns`.
const MEMORY_CONNS: usize = 1_000;

/// One memory measurement of compressed connections.
struct MemoryRow {
    /// For the derived figures.
    key: &'static str,
    label: &'static str,
    server: ServerKind,
    deflate: bool,
    exchange: Option<Exchange>,
    /// The zlib states the server holds per connection by then.
    holds: &'static str,
}

fn memory_rows() -> Vec<MemoryRow> {
    let text = |size, messages| Some(Exchange { kind: Kind::Text, size, messages });
    let row = |key, label, server, deflate, exchange, holds| MemoryRow { key, label, server, deflate, exchange, holds };
    let (ours, lean) = (ServerKind::OursEcho, ServerKind::OursEchoLean);
    vec![
        row("plain-idle", "not offered; idle", ours, false, None, "none"),
        row("plain-active", "not offered; one 1 KiB text echo, then idle", ours, false, text(1 << 10, 1), "none"),
        row("idle", "agreed; no message yet", ours, true, None, "none yet (allocated on first use)"),
        row(
            "inflate",
            "agreed; one compressed 20 B text in, echoed uncompressed (under 32 B), then idle",
            ours,
            true,
            text(20, 1),
            "inflater",
        ),
        row(
            "active",
            "agreed; one 1 KiB text each way, compressed, then idle",
            ours,
            true,
            text(1 << 10, 1),
            "inflater + compressor (15-bit window)",
        ),
        row(
            "busy",
            "agreed; 64 × 1 KiB text each way (64 KiB: windows filled), then idle",
            ours,
            true,
            text(1 << 10, 64),
            "inflater + compressor (15-bit window)",
        ),
        row(
            "lean-active",
            "agreed; one 1 KiB text each way, compressed, then idle",
            lean,
            true,
            text(1 << 10, 1),
            "none between messages (borrowed from the pool per message)",
        ),
        row(
            "lean-busy",
            "agreed; 64 × 1 KiB text each way (64 KiB), then idle",
            lean,
            true,
            text(1 << 10, 64),
            "none between messages (borrowed from the pool per message)",
        ),
    ]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        return serve(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("probe") {
        return probe(&args[1..]);
    }
    let options = match Options::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let pin = options.pin && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2) && taskset_works();
    if pin {
        let pid = std::process::id().to_string();
        let _ = Command::new("taskset").args(["-a", "-p", "-c", CLIENT_CPU, &pid]).stdout(Stdio::null()).status();
    } else if options.pin {
        eprintln!("note: not pinning (needs taskset and two cores)");
    }
    match run(&options, pin) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn taskset_works() -> bool {
    Command::new("taskset").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// Runs the workloads; answers whether everything worked.
fn run(o: &Options, pin: bool) -> io::Result<bool> {
    let started = Instant::now();
    let echo_series: &[Series] = if o.smoke {
        &[Series::Ours, Series::Raw, Series::OursTokio]
    } else {
        &[Series::Ours, Series::Raw, Series::OursTokio, Series::Fast, Series::TokioTung]
    };
    let mut servers: HashMap<ServerKind, ServerProc> = HashMap::new();
    let mut start = |kind: ServerKind| -> io::Result<Target> {
        if let Some(s) = servers.get(&kind) {
            return Ok(s.target());
        }
        let s = ServerProc::spawn(kind, pin)?;
        let t = s.target();
        servers.insert(kind, s);
        Ok(t)
    };
    let phases = o.phases;

    // Echo, one message in flight.
    let mut echo = Vec::new();
    if o.wants("echo") {
        eprintln!("echo, one message in flight per connection:");
        let cells: Vec<(usize, usize, Kind)> = if o.smoke {
            vec![(4, 20, Kind::Text), (4, 1 << 10, Kind::Binary)]
        } else {
            let mut v = Vec::new();
            for conns in [10, 100, 500] {
                for size in [20, 1 << 10, 16 << 10] {
                    for kind in [Kind::Text, Kind::Binary] {
                        v.push((conns, size, kind));
                    }
                }
            }
            v
        };
        for (conns, size, kind) in cells {
            let mut series = echo_series.to_vec();
            if conns <= 10 && !o.smoke {
                series.push(Series::Tung);
            }
            let spec = EchoSpec { conns, kind, size, depth: 1, deflate: false };
            let label = format!("{conns} × {} {}", size_label(size), kind.name());
            echo.push(interleave(label, &series, o, |s| client::echo(&start(s.echo_server())?, spec, phases)));
        }
    }

    // Pipelined echo.
    let mut pipelined = Vec::new();
    if o.wants("pipelined") {
        eprintln!("echo, pipelined:");
        let cells: Vec<(usize, usize, Kind, usize)> = if o.smoke {
            vec![(4, 1 << 10, Kind::Binary, 4)]
        } else {
            vec![(100, 20, Kind::Text, 16), (100, 20, Kind::Binary, 16), (100, 1 << 10, Kind::Binary, 16)]
        };
        for (conns, size, kind, depth) in cells {
            let spec = EchoSpec { conns, kind, size, depth, deflate: false };
            let label = format!("{conns} × {} {} ×{depth}", size_label(size), kind.name());
            pipelined.push(interleave(label, echo_series, o, |s| client::echo(&start(s.echo_server())?, spec, phases)));
        }
    }

    // Broadcast.
    let mut broadcast = Vec::new();
    if o.wants("broadcast") {
        eprintln!("broadcast, 20 B per round to every client:");
        let cells: Vec<(usize, usize)> =
            if o.smoke { vec![(4, 2)] } else { vec![(100, 1), (100, 16), (1000, 1), (1000, 64)] };
        for (clients, window) in cells {
            let label = format!("{clients} clients, {window} in flight");
            let series: Vec<Series> = echo_series.iter().copied().filter(|s| s.broadcast_server().is_some()).collect();
            broadcast.push(interleave(label, &series, o, |s| {
                let kind = s.broadcast_server().expect("filtered");
                client::broadcast(&start(kind)?, clients, window, phases)
            }));
        }
    }

    // Handshakes.
    let mut handshakes = Vec::new();
    if o.wants("handshakes") {
        eprintln!("handshakes:");
        let parallel = if o.smoke { 4 } else { 16 };
        let mut series = echo_series.to_vec();
        if !o.smoke {
            series.push(Series::Tung);
        }
        let label = format!("{parallel} at a time");
        handshakes
            .push(interleave(label, &series, o, |s| client::handshakes(&start(s.echo_server())?, parallel, phases)));
    }

    // permessage-deflate echo: our echo server, the client offering compression or not, in
    // the same repetitions, with the raw ceiling.
    let mut deflate = Vec::new();
    let mut deflate_errors = Vec::new();
    if o.wants("deflate") {
        eprintln!("permessage-deflate echo, one message in flight per connection:");
        let cells: Vec<(usize, usize, Kind)> = if o.smoke {
            vec![(4, 1 << 10, Kind::Text)]
        } else {
            vec![(100, 1 << 10, Kind::Text), (100, 16 << 10, Kind::Text), (100, 16 << 10, Kind::Binary)]
        };
        let series = [Series::Ours, Series::OursDeflate, Series::OursDeflateLean, Series::Raw];
        for (conns, size, kind) in cells {
            let spec = EchoSpec { conns, kind, size, depth: 1, deflate: false };
            let label = format!("{conns} × {} {}", size_label(size), kind.name());
            deflate.push(interleave(label, &series, o, |s| {
                client::echo(&start(s.echo_server())?, EchoSpec { deflate: s.deflate(), ..spec }, phases)
            }));
        }
        if o.smoke {
            // The memory workload's exchange, small: a few compressed messages each way.
            let exchange = Exchange { kind: Kind::Text, size: 1 << 10, messages: 3 };
            for kind in [ServerKind::OursEcho, ServerKind::OursEchoLean] {
                if let Err(e) = client::idle_after(&start(kind)?, 4, true, Some(exchange)) {
                    deflate_errors.push(format!("deflate exchange / {}: {e}", kind.id()));
                }
            }
        }
    }
    drop(servers);

    // Idle memory: a fresh server process per measurement.
    let mut idle = Vec::new();
    if o.wants("idle") && !o.smoke {
        eprintln!("idle memory:");
        for conns in [1_000, 10_000] {
            let mut per_conn = HashMap::new();
            let mut series = echo_series.to_vec();
            if conns <= 1_000 {
                series.push(Series::Tung);
            }
            for s in series {
                let result = idle_memory(s, conns, pin);
                eprintln!("  {conns:>6} × {:<12} {:?}", s.short(), result);
                per_conn.insert(s, result);
            }
            idle.push(Idle { conns, per_conn });
        }
    }

    // The memory of a compressed connection: a fresh server process per measurement.
    let mut memory = Vec::new();
    if o.wants("deflate") && !o.smoke {
        eprintln!("memory of compressed connections ({} each):", o.memory_conns);
        for row in memory_rows() {
            let result = memory_per_conn(row.server, o.memory_conns, row.deflate, row.exchange, pin);
            eprintln!("  {:<60} {:?}", row.label, result);
            memory.push((row, result));
        }
    }

    let mut errors: Vec<String> = echo
        .iter()
        .chain(&pipelined)
        .chain(&broadcast)
        .chain(&handshakes)
        .chain(&deflate)
        .flat_map(Cell::errors)
        .chain(deflate_errors)
        .collect();
    for (row, result) in &memory {
        if let Err(e) = result {
            errors.push(format!("memory / {}: {e}", row.label));
        }
    }
    for i in &idle {
        for (s, r) in &i.per_conn {
            if let Err(e) = r {
                errors.push(format!("idle {} / {}: {e}", i.conns, s.short()));
            }
        }
    }
    let elapsed = started.elapsed();
    eprintln!("done in {:.0} s", elapsed.as_secs_f64());
    if !errors.is_empty() {
        eprintln!("errors:");
        for e in &errors {
            eprintln!("  {e}");
        }
    }
    if o.write {
        let results = Results {
            echo,
            pipelined,
            broadcast,
            handshakes,
            idle,
            deflate,
            memory,
            errors: errors.clone(),
            elapsed,
            pin,
            o,
        };
        let path = report::results_path();
        // A partial run must not replace the `load` tables it did not measure.
        if LOAD_GROUPS.iter().all(|g| o.wants(g)) {
            report::replace_section(&path, "load", &results.markdown())?;
            std::fs::write(path.with_file_name("load-chart.svg"), results.chart())?;
            eprintln!("wrote the load section of {} and load-chart.svg", path.display());
        } else if LOAD_GROUPS.iter().any(|g| o.wants(g)) {
            eprintln!("partial run: the load section of {} is left as it was (a full run rewrites it)", path.display());
        }
        if o.wants("deflate") {
            report::replace_section(&path, "deflate", &results.deflate_markdown())?;
            eprintln!("wrote the deflate section of {}", path.display());
        }
    }
    Ok(errors.is_empty())
}

struct Results<'a> {
    echo: Vec<Cell>,
    pipelined: Vec<Cell>,
    broadcast: Vec<Cell>,
    handshakes: Vec<Cell>,
    idle: Vec<Idle>,
    deflate: Vec<Cell>,
    memory: Vec<(MemoryRow, Result<f64, String>)>,
    errors: Vec<String>,
    elapsed: Duration,
    pin: bool,
    o: &'a Options,
}

fn check(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "**missed**"
    }
}

impl Results<'_> {
    /// The lines every generated section starts with: machine, date, command, settings.
    fn header(&self, command: &str) -> String {
        let o = self.o;
        let ran_as = std::env::args().collect::<Vec<_>>().join(" ");
        format!(
            "_Generated by the `load` binary; do not edit by hand._\n\n\
             - Machine: {}\n- Date: {}\n- Command: `{command}` (ran as `{ran_as}`)\n\
             - Settings: {} repetitions interleaved per workload, warm-up {} ms then {} ms measured per sample; \
             servers pinned to CPU {SERVER_CPU}, load generator to CPU {CLIENT_CPU}: {}; whole run {:.0} s\n\
             - Every ratio is the median over repetitions of ours ÷ theirs measured back to back in the same \
             repetition (range in brackets); absolute rates are medians and only for orientation.\n\n",
            procfs::machine(),
            report::now_utc(),
            o.reps,
            o.phases.warmup.as_millis(),
            o.phases.measure.as_millis(),
            if self.pin { "yes" } else { "no" },
            self.elapsed.as_secs_f64(),
        )
    }

    fn markdown(&self) -> String {
        let mut md = self.header("cargo run --profile release-lto -p wsproto-benches --bin load");

        md.push_str("#### Targets\n\n");
        let mut targets = Vec::new();
        for cell in self.echo.iter().filter(|c| c.label.starts_with("100 × 20 B")) {
            for (theirs, goal) in [(Series::Raw, 0.95), (Series::Fast, 1.0), (Series::TokioTung, 1.3)] {
                let r = cell.ratio(Series::Ours, theirs);
                targets.push(vec![
                    format!("echo {}: ours ÷ {}", cell.label, theirs.name(false)),
                    format!("≥ {goal:.2}×"),
                    cell.ratio_text(Series::Ours, theirs),
                    check(r.is_some_and(|r| r >= goal)).to_owned(),
                ]);
            }
        }
        // The tokio adapter against the tokio peers, all on a current-thread runtime.
        for cell in
            self.echo.iter().filter(|c| c.label.starts_with("100 × 20 B") || c.label.starts_with("500 × 16 KiB"))
        {
            let goals: &[(Series, f64)] = if cell.label.starts_with("100 × 20 B") {
                &[(Series::TokioTung, 1.3), (Series::Fast, 1.0)]
            } else {
                &[(Series::Fast, 1.0)]
            };
            for &(theirs, goal) in goals {
                let r = cell.ratio(Series::OursTokio, theirs);
                targets.push(vec![
                    format!("echo {}: ours (tokio) ÷ {}", cell.label, theirs.name(false)),
                    format!("≥ {goal:.2}×"),
                    cell.ratio_text(Series::OursTokio, theirs),
                    check(r.is_some_and(|r| r >= goal)).to_owned(),
                ]);
            }
        }
        for cell in self.echo.iter().filter(|c| c.label.starts_with("100 × 20 B")) {
            let ours = cell.cpu_per_unit(Series::Ours);
            let theirs: Vec<String> = [Series::Raw, Series::Fast, Series::TokioTung]
                .into_iter()
                .map(|s| format!("{} {}", s.short(), report::ratio(cell.cpu_per_unit(s), ours)))
                .collect();
            targets.push(vec![
                format!("(context) echo {}: server CPU per message, theirs ÷ ours", cell.label),
                "–".to_owned(),
                theirs.join(", "),
                String::new(),
            ]);
        }
        for cell in &self.pipelined {
            let r = cell.ratio(Series::Ours, Series::Raw);
            targets.push(vec![
                format!("pipelined {}: ours ÷ raw TCP", cell.label),
                "≥ 0.75×".to_owned(),
                cell.ratio_text(Series::Ours, Series::Raw),
                check(r.is_some_and(|r| r >= 0.75)).to_owned(),
            ]);
        }
        for cell in self.broadcast.iter().filter(|c| c.label.starts_with("1000 ")) {
            let r = cell.rate(Series::Ours);
            targets.push(vec![
                format!("broadcast {}: deliveries/s", cell.label),
                "≥ 5 M/s".to_owned(),
                format!("{}/s (raw fan-out {}/s)", cell.rate_text(Series::Ours), cell.rate_text(Series::Raw)),
                check(r.is_some_and(|r| r >= 5e6)).to_owned(),
            ]);
        }
        for idle in &self.idle {
            if let Some(Ok(bytes)) = idle.per_conn.get(&Series::Ours) {
                targets.push(vec![
                    format!("idle memory, {} connections", idle.conns),
                    "≤ 1024 B/conn".to_owned(),
                    format!("{bytes:.0} B/conn"),
                    check(*bytes <= 1024.0).to_owned(),
                ]);
            }
            if let Some(Ok(bytes)) = idle.per_conn.get(&Series::OursTokio) {
                targets.push(vec![
                    format!("idle memory, {} connections, tokio adapter (task included)", idle.conns),
                    "≤ 4096 B/conn".to_owned(),
                    format!("{bytes:.0} B/conn"),
                    check(*bytes <= 4096.0).to_owned(),
                ]);
            }
        }
        md.push_str(&report::table(&["target", "goal", "measured", ""], &targets));

        for (title, cells, broadcast) in [
            ("Echo, one message in flight per connection (messages/s)", &self.echo, false),
            ("Pipelined echo, 16 messages in flight per connection (messages/s)", &self.pipelined, false),
            (
                "Broadcast, one client sends 20 B per round, every client receives it (deliveries/s)",
                &self.broadcast,
                true,
            ),
            ("Handshakes (connect, upgrade, 101, reset; handshakes/s)", &self.handshakes, false),
        ] {
            if cells.is_empty() {
                continue;
            }
            let present: Vec<Series> =
                SERIES.into_iter().filter(|s| cells.iter().any(|c| c.runs.contains_key(s))).collect();
            md.push_str(&format!("\n#### {title}\n\n"));
            let mut header: Vec<String> = vec!["workload".into()];
            header.extend(present.iter().map(|s| s.name(broadcast).to_owned()));
            header.extend(present.iter().skip(1).map(|s| format!("ours ÷ {}", s.short())));
            let rows: Vec<Vec<String>> = cells
                .iter()
                .map(|c| {
                    let mut row = vec![c.label.clone()];
                    row.extend(present.iter().map(|&s| c.rate_text(s)));
                    row.extend(present.iter().skip(1).map(|&s| {
                        if c.runs.contains_key(&s) {
                            c.ratio_text(Series::Ours, s)
                        } else {
                            "–".to_owned()
                        }
                    }));
                    row
                })
                .collect();
            md.push_str(&report::table(&header.iter().map(String::as_str).collect::<Vec<_>>(), &rows));
            md.push_str("\nLatency p50 / p99 / p99.9 (µs)");
            md.push_str(if broadcast { ", send to delivery:\n\n" } else { ":\n\n" });
            let mut header: Vec<String> = vec!["workload".into()];
            header.extend(present.iter().map(|s| s.short().to_owned()));
            let rows: Vec<Vec<String>> = cells
                .iter()
                .map(|c| {
                    let mut row = vec![c.label.clone()];
                    row.extend(present.iter().map(|&s| c.latency(s)));
                    row
                })
                .collect();
            md.push_str(&report::table(&header.iter().map(String::as_str).collect::<Vec<_>>(), &rows));
            md.push_str(
                "\nServer CPU per unit (µs) and server CPU utilisation; last column the load generator's \
                 utilisation while driving ours:\n\n",
            );
            header.push("load generator".into());
            let rows: Vec<Vec<String>> = cells
                .iter()
                .map(|c| {
                    let mut row = vec![c.label.clone()];
                    row.extend(present.iter().map(|&s| c.cpu(s)));
                    row.push(c.client_util(Series::Ours));
                    row
                })
                .collect();
            md.push_str(&report::table(&header.iter().map(String::as_str).collect::<Vec<_>>(), &rows));
        }

        if !self.idle.is_empty() {
            md.push_str("\n#### Idle memory (server RSS growth per open connection, bytes)\n\n");
            let present: Vec<Series> =
                SERIES.into_iter().filter(|s| self.idle.iter().any(|i| i.per_conn.contains_key(s))).collect();
            let mut header = vec!["connections".to_owned()];
            header.extend(present.iter().map(|s| s.name(false).to_owned()));
            let rows: Vec<Vec<String>> = self
                .idle
                .iter()
                .map(|i| {
                    let mut row = vec![i.conns.to_string()];
                    row.extend(present.iter().map(|s| match i.per_conn.get(s) {
                        Some(Ok(b)) => format!("{b:.0}"),
                        Some(Err(_)) => "error".to_owned(),
                        None => "–".to_owned(),
                    }));
                    row
                })
                .collect();
            md.push_str(&report::table(&header.iter().map(String::as_str).collect::<Vec<_>>(), &rows));
        }

        md.push_str("\n![Throughput relative to the raw-TCP ceiling](load-chart.svg)\n");
        self.push_errors(&mut md);
        md
    }

    fn push_errors(&self, md: &mut String) {
        if !self.errors.is_empty() {
            md.push_str("\n#### Errors in this run\n\n");
            for e in &self.errors {
                md.push_str(&format!("- {e}\n"));
            }
        }
    }

    /// The `deflate` section: compressed echo against the same server uncompressed and the
    /// ceiling, and what a compressed connection holds in memory.
    fn deflate_markdown(&self) -> String {
        let mut md = self.header("cargo run --profile release-lto -p wsproto-benches --bin load -- --only deflate");
        md.push_str(
            "Our echo server with the echo example's config, which accepts permessage-deflate with the defaults \
             (context takeover both ways, 15-bit windows, level 6, messages under 32 B sent uncompressed), driven \
             in the same repetitions by clients that do not offer the extension (ours), clients that offer it \
             without parameters as browsers do (ours+deflate), the same clients against a server set for memory \
             (no context takeover either way, `server_max_window_bits=9`: lean server, whose connections \
             borrow a zlib state from the config's pool per message), and the raw-TCP ceiling. \
             The clients' requests are compressed once, standalone (a stored block for the timestamp, then the \
             rest deflated without context), so they are the size of a first message; the replies are what \
             the server's compressor gives with its context.\n",
        );
        let series = [Series::Ours, Series::OursDeflate, Series::OursDeflateLean, Series::Raw];
        if !self.deflate.is_empty() {
            md.push_str("\n#### permessage-deflate echo, one message in flight per connection (messages/s)\n\n");
            let mut header: Vec<&str> = vec!["workload"];
            header.extend(series.iter().map(|s| s.name(false)));
            header.extend(["ours+deflate ÷ ours", "ours+deflate ÷ raw", "lean ÷ ours+deflate"]);
            let rows: Vec<Vec<String>> = self
                .deflate
                .iter()
                .map(|c| {
                    let mut row = vec![c.label.clone()];
                    row.extend(series.iter().map(|&s| c.rate_text(s)));
                    row.push(c.ratio_text(Series::OursDeflate, Series::Ours));
                    row.push(c.ratio_text(Series::OursDeflate, Series::Raw));
                    row.push(c.ratio_text(Series::OursDeflateLean, Series::OursDeflate));
                    row
                })
                .collect();
            md.push_str(&report::table(&header, &rows));

            md.push_str(
                "\nBytes on the wire per message, request → reply (frame header, masking key and payload; \
                 medians of the timed windows), and the share of replies that came compressed:\n\n",
            );
            let wire_series = [Series::Ours, Series::OursDeflate, Series::OursDeflateLean];
            let mut header: Vec<&str> = vec!["workload"];
            header.extend(wire_series.iter().map(|s| s.name(false)));
            header.push("reply ÷ uncompressed reply");
            let rows: Vec<Vec<String>> = self
                .deflate
                .iter()
                .map(|c| {
                    let mut row = vec![c.label.clone()];
                    row.extend(wire_series.iter().map(|&s| match c.wire(s) {
                        Some(w) => {
                            format!("{:.0} → {:.0} B ({:.0}% compressed)", w.sent, w.received, 100.0 * w.compressed)
                        }
                        None => "–".to_owned(),
                    }));
                    let (plain, deflated) = (c.wire(Series::Ours), c.wire(Series::OursDeflate));
                    row.push(report::ratio(deflated.map(|w| w.received), plain.map(|w| w.received)));
                    row
                })
                .collect();
            md.push_str(&report::table(&header, &rows));

            md.push_str(
                "\nServer CPU per message (µs) and server CPU utilisation; last column the load generator's \
                 utilisation while driving ours+deflate (it inflates every reply):\n\n",
            );
            let mut header: Vec<&str> = vec!["workload"];
            header.extend(series.iter().map(|s| s.short()));
            header.push("load generator");
            let rows: Vec<Vec<String>> = self
                .deflate
                .iter()
                .map(|c| {
                    let mut row = vec![c.label.clone()];
                    row.extend(series.iter().map(|&s| c.cpu(s)));
                    row.push(c.client_util(Series::OursDeflate));
                    row
                })
                .collect();
            md.push_str(&report::table(&header, &rows));

            md.push_str("\nLatency p50 / p99 / p99.9 (µs):\n\n");
            let mut header: Vec<&str> = vec!["workload"];
            header.extend(series.iter().map(|s| s.short()));
            let rows: Vec<Vec<String>> = self
                .deflate
                .iter()
                .map(|c| {
                    let mut row = vec![c.label.clone()];
                    row.extend(series.iter().map(|&s| c.latency(s)));
                    row
                })
                .collect();
            md.push_str(&report::table(&header, &rows));
        }

        if !self.memory.is_empty() {
            md.push_str(&format!(
                "\n#### Memory of a compressed connection ({} connections, server RSS growth per \
                 connection, bytes)\n\n\
                 A fresh server process per row, as in the idle memory table; text messages, each echoed \
                 before the next; \"lean server\" as above. RSS counts the pages touched, not what was \
                 allocated.\n\n",
                self.o.memory_conns
            ));
            let rows: Vec<Vec<String>> = self
                .memory
                .iter()
                .map(|(row, result)| {
                    let server = if row.server == ServerKind::OursEcho { "ours" } else { "ours, lean server" };
                    let measured = match result {
                        Ok(b) => format!("{b:.0}"),
                        Err(_) => "error".to_owned(),
                    };
                    vec![server.to_owned(), row.label.to_owned(), row.holds.to_owned(), measured]
                })
                .collect();
            md.push_str(&report::table(
                &["server", "permessage-deflate; what each connection did", "zlib states it holds", "bytes/conn"],
                &rows,
            ));
            let get = |key: &str| {
                self.memory.iter().find(|(row, _)| row.key == key).and_then(|(_, r)| r.as_ref().ok().copied())
            };
            let diff = |a: &str, b: &str| match (get(a), get(b)) {
                (Some(a), Some(b)) => format!("{:.0} B", a - b),
                _ => "–".to_owned(),
            };
            md.push_str(&format!(
                "\nDerived (differences of the rows above): the server's inflater ≈ {} per connection after a \
                 first small message; its compressor ≈ {} more after a first 1 KiB message; both with their \
                 windows filled ≈ {} over an idle connection that agreed on the extension \
                 (lean server: ≈ {}).\n",
                diff("inflate", "idle"),
                diff("active", "inflate"),
                diff("busy", "idle"),
                diff("lean-busy", "idle"),
            ));
        }
        self.push_errors(&mut md);
        md
    }

    fn chart(&self) -> String {
        let series = [Series::Ours, Series::OursTokio, Series::Fast, Series::TokioTung, Series::Tung];
        let names: Vec<&str> = series.iter().map(|s| s.name(false)).collect();
        let groups: Vec<BarGroup> = self
            .echo
            .iter()
            .chain(&self.pipelined)
            .map(|c| BarGroup {
                label: c.label.clone(),
                bars: series
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &s)| {
                        c.runs.contains_key(&s).then(|| c.ratio(s, Series::Raw).map(|r| (i, r))).flatten()
                    })
                    .collect(),
            })
            .collect();
        report::svg_bars("Echo throughput ÷ raw-TCP ceiling (same run, interleaved)", &names, &groups)
    }
}
