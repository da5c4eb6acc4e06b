//! The chat cluster bench: a room's fan-out across three nodes on one Redis, against one node
//! alone and against socket.io 4 with `@socket.io/redis-streams-adapter` on three Node.js
//! processes (installed from `benches/socketio/` with `npm ci`).
//!
//! ```text
//! cargo build --release --bin chat && cargo run --release -p wsproto-benches --bin cluster
//! cluster --clients 300 --measure-ms 4000 --no-socketio     # options; --smoke for CI
//! ```
//!
//! Each set-up gets its own `redis-server` (nothing on disk) and `--clients` clients spread
//! evenly over its nodes; every client joins, then 20-byte `say`s go round-robin over the
//! clients and every client receives every message. Two phases per set-up:
//! - **max**: a window of messages in flight (sent, not yet back at their sender; default one
//!   per client, enough to saturate every set-up here) kept full: deliveries per second
//!   (messages received, summed over all clients);
//! - **fixed**: a fixed offered rate (half of our three nodes' maximum, or `--rate`):
//!   deliveries per second and the end-to-end latency (send to each receipt) p50 and p99.
//!
//! The load generator is one process on a current-thread tokio runtime with our tokio
//! adapter's client for every set-up (the same client cost for all); each message's text
//! carries its sender and send time. Nothing is pinned: the nodes, Redis and the generator
//! share the machine's cores, as a small deployment would.

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{mpsc, Notify};
use wsproto::{Config, Message};
use wsproto_adapters::tokio::{connect, ClientStream, ConnectOptions, WebSocket};

struct Options {
    clients: usize,
    warmup: Duration,
    measure: Duration,
    window: usize,
    rate: Option<f64>,
    socketio: bool,
    smoke: bool,
}

const USAGE: &str = "usage: cluster [--smoke] [--clients N] [--warmup-ms MS] [--measure-ms MS] [--window N] \
[--rate MSGS_PER_S] [--no-socketio]";

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options {
            clients: 300,
            warmup: Duration::from_millis(1000),
            measure: Duration::from_millis(4000),
            window: 0,
            rate: None,
            socketio: true,
            smoke: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--smoke" => o.smoke = true,
                "--clients" => o.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?,
                "--warmup-ms" => o.warmup = Duration::from_millis(value()?.parse().map_err(|e| format!("{e}"))?),
                "--measure-ms" => o.measure = Duration::from_millis(value()?.parse().map_err(|e| format!("{e}"))?),
                "--window" => o.window = value()?.parse().map_err(|e| format!("--window: {e}"))?,
                "--rate" => o.rate = Some(value()?.parse().map_err(|e| format!("--rate: {e}"))?),
                "--no-socketio" => o.socketio = false,
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        if o.smoke {
            o.clients = 30;
            o.warmup = Duration::from_millis(200);
            o.measure = Duration::from_millis(500);
            o.socketio = false;
        }
        if o.window == 0 {
            o.window = o.clients;
        }
        if o.clients == 0 || o.clients > 999 {
            return Err("--clients must be 1-999 (the sender's index is three digits)".into());
        }
        Ok(o)
    }
}

/// Which server the clients speak to, and how.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flavor {
    /// Our chat (`chat.v1` JSON).
    Chat,
    /// socket.io 4 (Engine.IO 4 over WebSocket).
    SocketIo,
}

impl Flavor {
    fn url(self, addr: &str) -> String {
        match self {
            Flavor::Chat => format!("ws://{addr}/ws"),
            Flavor::SocketIo => format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
        }
    }

    fn say(self, text: &str) -> String {
        match self {
            Flavor::Chat => format!(r#"{{"type":"say","text":"{text}"}}"#),
            Flavor::SocketIo => format!(r#"42["say","{text}"]"#),
        }
    }
}

/// A message's text, 20 bytes: `~`, the sender's index (3 digits), the send time in µs since
/// the run's start (15 digits), `~`.
fn stamp(sender: usize, start: Instant) -> String {
    format!("~{sender:03}{:015}~", start.elapsed().as_micros())
}

/// The sender and send time (µs) of a received message, if it carries a stamp.
fn read_stamp(text: &str) -> Option<(usize, u64)> {
    let at = text.find('~')?;
    let body = text.get(at + 1..at + 19)?;
    Some((body.get(..3)?.parse().ok()?, body.get(3..)?.parse().ok()?))
}

/// What the clients saw, shared by their tasks (one thread).
struct Stats {
    start: Instant,
    measuring: Cell<bool>,
    deliveries: Cell<u64>,
    latency: RefCell<Histogram<u64>>,
    in_flight: Cell<usize>,
    returned: Notify,
}

/// One client: joins, then sends what the driver hands it and counts what arrives.
async fn client(
    flavor: Flavor,
    addr: String,
    index: usize,
    stats: Rc<Stats>,
    mut outgoing: mpsc::UnboundedReceiver<String>,
    joined: mpsc::UnboundedSender<Result<(), String>>,
) {
    let mut ws = match join(flavor, &addr, index).await {
        Ok(ws) => {
            let _ = joined.send(Ok(()));
            ws
        }
        Err(e) => {
            let _ = joined.send(Err(format!("client {index} on {addr}: {e}")));
            return;
        }
    };
    loop {
        tokio::select! {
            text = outgoing.recv() => match text {
                Some(text) => if ws.send(Message::text(text)).await.is_err() { return },
                None => { let _ = ws.close(wsproto::CloseCode::NORMAL, "").await; return }
            },
            message = ws.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    // Engine.IO's heartbeat: a ping ("2") wants a pong ("3").
                    if flavor == Flavor::SocketIo && text == "2" {
                        if ws.send(Message::Text("3".into())).await.is_err() { return }
                        continue;
                    }
                    let Some((sender, sent_us)) = read_stamp(&text) else { continue };
                    if sender == index {
                        stats.in_flight.set(stats.in_flight.get().saturating_sub(1));
                        stats.returned.notify_one();
                    }
                    if stats.measuring.get() {
                        stats.deliveries.set(stats.deliveries.get() + 1);
                        let now_us = stats.start.elapsed().as_micros() as u64;
                        let _ = stats.latency.borrow_mut().record(now_us.saturating_sub(sent_us).max(1));
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}

async fn join(flavor: Flavor, addr: &str, index: usize) -> Result<WebSocket<ClientStream>, String> {
    let options = ConnectOptions {
        config: Arc::new(Config { max_message_size: 1 << 20, ..Config::default() }),
        subprotocols: if flavor == Flavor::Chat { vec!["chat.v1".into()] } else { Vec::new() },
        origin: Some(format!("http://{addr}")),
        ..ConnectOptions::default()
    };
    let (mut ws, _) = connect(&flavor.url(addr), options).await.map_err(|e| e.to_string())?;
    match flavor {
        Flavor::Chat => {
            // A node that has not reached Redis yet (just started) answers `unavailable`.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let join = format!(r#"{{"type":"join","nick":"c{index:03}"}}"#);
                ws.send(Message::text(join)).await.map_err(|e| e.to_string())?;
                match expect_text(&mut ws, r#"{"type":"welcome""#).await {
                    Err(e) if e.contains("unavailable") && Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    outcome => break outcome?,
                }
            }
        }
        Flavor::SocketIo => {
            // Engine.IO's open packet, then the socket.io connect to the main namespace.
            expect_text(&mut ws, "0{").await?;
            ws.send(Message::Text("40".into())).await.map_err(|e| e.to_string())?;
            expect_text(&mut ws, "40").await?;
        }
    }
    Ok(ws)
}

/// Reads until a text message that starts with `prefix`; a chat `error` fails.
async fn expect_text(ws: &mut WebSocket<ClientStream>, prefix: &str) -> Result<(), String> {
    loop {
        match ws.recv().await {
            Some(Ok(Message::Text(text))) if text.starts_with(prefix) => return Ok(()),
            Some(Ok(Message::Text(text))) if text.contains(r#""type":"error""#) => return Err(text.into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed while joining".to_owned()),
        }
    }
}

/// How a phase offers its messages.
#[derive(Clone, Copy)]
enum Offer {
    /// Keep this many in flight.
    Window(usize),
    /// This many per second.
    Rate(f64),
}

struct PhaseResult {
    deliveries_per_s: f64,
    sent_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_cpu_s: f64,
    generator_cpu_s: f64,
}

/// Joins `clients` clients spread over `addrs`, then runs the phases; answers one result each.
async fn drive(
    flavor: Flavor,
    addrs: &[String],
    clients: usize,
    phases: &[Offer],
    options: &Options,
    servers: &[u32],
) -> Result<Vec<PhaseResult>, String> {
    let stats = Rc::new(Stats {
        start: Instant::now(),
        measuring: Cell::new(false),
        deliveries: Cell::new(0),
        latency: RefCell::new(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")),
        in_flight: Cell::new(0),
        returned: Notify::new(),
    });
    let (joined_tx, mut joined) = mpsc::unbounded_channel();
    let mut senders = Vec::new();
    for index in 0..clients {
        let (tx, rx) = mpsc::unbounded_channel();
        senders.push(tx);
        let addr = addrs[index % addrs.len()].clone();
        tokio::task::spawn_local(client(flavor, addr, index, stats.clone(), rx, joined_tx.clone()));
        // Joins one at a time per few: every join is announced to every member.
        if index % 10 == 9 {
            tokio::task::yield_now().await;
        }
    }
    for _ in 0..clients {
        match tokio::time::timeout(Duration::from_secs(30), joined.recv()).await {
            Ok(Some(Ok(()))) => {}
            Ok(Some(Err(e))) => return Err(e),
            _ => return Err("clients did not join within 30 s".into()),
        }
    }
    // Let the joins' announcements settle.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut results = Vec::new();
    let mut next = 0usize;
    for &offer in phases {
        let mut sent = 0u64;
        let phase_start = Instant::now();
        let measure_from = phase_start + options.warmup;
        let measure_until = measure_from + options.measure;
        let mut cpu_before = None;
        let mut sent_before = 0;
        let mut interval = match offer {
            Offer::Rate(rate) => Some(tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1.0)))),
            Offer::Window(_) => None,
        };
        loop {
            let now = Instant::now();
            if now >= measure_from && !stats.measuring.get() && cpu_before.is_none() {
                stats.deliveries.set(0);
                stats.latency.borrow_mut().reset();
                stats.measuring.set(true);
                cpu_before = Some((cpu_seconds(servers), wsproto_benches::procfs::self_cpu_seconds()));
                sent_before = sent;
            }
            if now >= measure_until {
                break;
            }
            match (&mut interval, offer) {
                (Some(interval), _) => {
                    interval.tick().await;
                }
                (None, Offer::Window(window)) => {
                    while stats.in_flight.get() >= window {
                        let _ = tokio::time::timeout(Duration::from_millis(50), stats.returned.notified()).await;
                        if Instant::now() >= measure_until {
                            break;
                        }
                    }
                }
                (None, Offer::Rate(_)) => unreachable!("a rate has an interval"),
            }
            let index = next % clients;
            next += 1;
            stats.in_flight.set(stats.in_flight.get() + 1);
            let _ = senders[index].send(flavor.say(&stamp(index, stats.start)));
            sent += 1;
        }
        stats.measuring.set(false);
        let elapsed = options.measure.as_secs_f64();
        {
            let latency = stats.latency.borrow();
            results.push(PhaseResult {
                deliveries_per_s: stats.deliveries.get() as f64 / elapsed,
                sent_per_s: (sent - sent_before) as f64 / elapsed,
                p50_ms: latency.value_at_quantile(0.5) as f64 / 1000.0,
                p99_ms: latency.value_at_quantile(0.99) as f64 / 1000.0,
                server_cpu_s: cpu_seconds(servers) - cpu_before.map_or(0.0, |c| c.0),
                generator_cpu_s: wsproto_benches::procfs::self_cpu_seconds() - cpu_before.map_or(0.0, |c| c.1),
            });
        }
        // Drain what is in flight before the next phase.
        let drain_until = Instant::now() + Duration::from_secs(5);
        while stats.in_flight.get() > 0 && Instant::now() < drain_until {
            let _ = tokio::time::timeout(Duration::from_millis(50), stats.returned.notified()).await;
        }
        stats.in_flight.set(0);
    }
    drop(senders);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(results)
}

fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|&pid| wsproto_benches::procfs::cpu_seconds(pid)).sum()
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_redis() -> Result<(Process, String), String> {
    let port = free_port();
    let dir = std::env::temp_dir();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("redis-server: {e} (apt-get install redis-server)"))?;
    let process = Process(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((process, format!("redis://127.0.0.1:{port}/0")))
}

/// Starts a process and waits for the line on its stderr that `address` finds an address in.
fn start_server(mut command: Command, address: impl Fn(&str) -> Option<String>) -> Result<(Process, String), String> {
    let mut child =
        command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().map_err(|e| format!("{command:?}: {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    let process = Process(child);
    let mut lines = BufReader::new(stderr).lines();
    let found = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(addr) = address(&line) {
                    break addr;
                }
            }
            _ => return Err(format!("{command:?} exited before listening")),
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok((process, found))
}

fn chat_node(bin: &Path, redis: Option<&str>) -> Result<(Process, String), String> {
    let mut command = Command::new(bin);
    command.args(["--addr", "127.0.0.1:0", "--max-rate", "1000000", "--max-clients", "2000"]);
    if let Some(url) = redis {
        command.args(["--redis", url]);
    }
    start_server(command, |line| {
        line.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()).map(str::to_owned)
    })
}

fn socketio_node(dir: &Path, redis: &str) -> Result<(Process, String), String> {
    let port = free_port();
    let mut command = Command::new("node");
    command.arg(dir.join("chat-server.mjs")).arg(port.to_string()).arg(redis);
    start_server(command, move |line| line.contains("listening").then(|| format!("127.0.0.1:{port}")))
}

/// Our chat binary, built beside this one (`cargo build --release --bin chat`).
fn chat_bin() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe.with_file_name("chat");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("{} is missing: cargo build --release --bin chat (the same profile as this bench)", bin.display()))
    }
}

fn socketio_dir() -> Result<PathBuf, String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("socketio");
    if !dir.join("node_modules/socket.io").exists() {
        eprintln!("cluster: npm ci in {}", dir.display());
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("npm: {e} (Node.js 20 and npm are needed for the socket.io rival)"))?;
        if !status.success() {
            return Err("npm ci failed".into());
        }
    }
    Ok(dir)
}

struct SetUp {
    name: &'static str,
    flavor: Flavor,
    results: Vec<PhaseResult>,
}

fn run_setup(
    name: &'static str,
    flavor: Flavor,
    nodes: usize,
    redis_needed: bool,
    phases: &[Offer],
    options: &Options,
) -> Result<SetUp, String> {
    let (_redis, url) = if redis_needed { start_redis().map(|(p, u)| (Some(p), Some(u)))? } else { (None, None) };
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..nodes {
        let (process, addr) = match flavor {
            Flavor::Chat => chat_node(&chat_bin()?, url.as_deref())?,
            Flavor::SocketIo => socketio_node(&socketio_dir()?, url.as_deref().expect("socket.io needs Redis"))?,
        };
        servers.push(process);
        addrs.push(addr);
    }
    // The nodes' CPU time and Redis's: what serving the room costs.
    let pids: Vec<u32> = servers.iter().chain(&_redis).map(|p| p.0.id()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    let results = local.block_on(&runtime, drive(flavor, &addrs, options.clients, phases, options, &pids))?;
    Ok(SetUp { name, flavor, results })
}

fn print(setup: &SetUp, labels: &[String]) {
    for (result, label) in setup.results.iter().zip(labels) {
        println!(
            "{:<28} {:<22} {:>10.0} deliveries/s  {:>7.0} msgs/s  p50 {:>7.2} ms  p99 {:>7.2} ms  CPU s: nodes+redis {:>5.2}, generator {:>5.2}",
            setup.name,
            label,
            result.deliveries_per_s,
            result.sent_per_s,
            result.p50_ms,
            result.p99_ms,
            result.server_cpu_s,
            result.generator_cpu_s
        );
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), String> {
    println!(
        "# {} clients, {:?} warm-up, {:?} measured per phase, window {}",
        options.clients, options.warmup, options.measure, options.window
    );
    let max = [Offer::Window(options.window)];
    let ours = run_setup("ours, 3 nodes + Redis", Flavor::Chat, 3, true, &max, options)?;
    print(&ours, &[format!("max (window {})", options.window)]);
    let our_max = ours.results[0].sent_per_s;
    if options.smoke {
        let fixed = [Offer::Rate((our_max / 2.0).max(10.0))];
        let again = run_setup("ours, 3 nodes + Redis", Flavor::Chat, 3, true, &fixed, options)?;
        print(&again, &["fixed".into()]);
        let delivered = ours.results[0].deliveries_per_s.min(again.results[0].deliveries_per_s);
        return if delivered > 0.0 { Ok(()) } else { Err("nothing was delivered".into()) };
    }
    let rate = options.rate.unwrap_or((our_max / 2.0).max(10.0));
    let phases = [Offer::Window(options.window), Offer::Rate(rate)];
    let labels = [format!("max (window {})", options.window), format!("fixed {rate:.0} msgs/s")];
    let mut setups = vec![run_setup("ours, 3 nodes + Redis", Flavor::Chat, 3, true, &phases, options)?];
    setups.push(run_setup("ours, 1 node alone", Flavor::Chat, 1, false, &phases, options)?);
    if options.socketio {
        setups.push(run_setup("socket.io, 3 nodes + Redis", Flavor::SocketIo, 3, true, &phases, options)?);
    }
    println!();
    for setup in &setups {
        print(setup, &labels);
    }
    if let (Some(ours), Some(theirs)) = (setups.first(), setups.iter().find(|s| s.flavor == Flavor::SocketIo)) {
        println!(
            "\nours / socket.io at max: {:.2}x deliveries per second",
            ours.results[0].deliveries_per_s / theirs.results[0].deliveries_per_s.max(1.0)
        );
    }
    Ok(())
}
