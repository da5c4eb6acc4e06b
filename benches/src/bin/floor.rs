//! The memory floor, checked: counts that do not depend on time, each against its bound, and a
//! non-zero exit when one is broken (CI runs it in the load smoke).
//!
//! - Allocations per message once warm, by a counting global allocator: decode, echo (receive,
//!   `send(message)`, write) and encode through our connection, and per delivery of a
//!   broadcast; for unfragmented messages up to 16 KiB the bound is 0.
//! - Heap bytes per idle connection of our mio echo server, in this process: only the server
//!   thread's allocations are counted, so the clients (on this thread) do not blur them.
//!   Measured once the loop's buffer sweep has run: idle after the handshake, after one 1 KiB
//!   echo (a connection that was busy goes back to the floor), and after compressed echoes
//!   without context takeover (no zlib state stays with the connection between messages).
//!
//! ```text
//! cargo run --release -p wsproto-benches --bin floor [-- --conns N]
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsproto::{Accept, Config, Connection, Event, PreparedFrame};
use wsproto_benches::client::{self, Exchange, Target};
use wsproto_benches::codec::{Case, Lib, OursCodec, Outgoing};
use wsproto_benches::frames::{self, Kind};
use wsproto_benches::servers::ServerKind;

/// Counts every allocation (a growing `realloc` is one), and the live heap bytes of the
/// threads that asked to be measured.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static MEASURED_LIVE: AtomicIsize = AtomicIsize::new(0);

thread_local! {
    /// This thread's allocations count towards `MEASURED_LIVE`.
    static MEASURED: Cell<bool> = const { Cell::new(false) };
}

fn measured() -> bool {
    MEASURED.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are kept,
// in atomics and a const-initialised thread local (which never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        if measured() {
            MEASURED_LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        if measured() {
            MEASURED_LIVE.fetch_add(layout.size() as isize, Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if measured() {
            MEASURED_LIVE.fetch_sub(layout.size() as isize, Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        if measured() {
            MEASURED_LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations per unit while `run` handles `units` of them.
fn allocations_per(units: usize, run: impl FnOnce()) -> f64 {
    let before = ALLOCS.load(Relaxed);
    run();
    (ALLOCS.load(Relaxed) - before) as f64 / units as f64
}

/// The unfragmented cases up to 16 KiB: where warm decode, echo and encode allocate nothing.
fn small_cases() -> Vec<Case> {
    Case::all().into_iter().filter(|c| c.fragments == 1 && c.size <= 16 << 10).collect()
}

struct Check {
    what: String,
    value: f64,
    bound: f64,
    unit: &'static str,
}

fn allocation_checks(checks: &mut Vec<Check>) {
    const ROUNDS: usize = 64;
    for case in small_cases() {
        let input = case.client_wire();
        let batch = case.batch();
        let mut decoder = Lib::Ours.decoder();
        for _ in 0..4 {
            decoder.decode(&input, batch);
        }
        let decode = allocations_per(ROUNDS * batch, || {
            for _ in 0..ROUNDS {
                decoder.decode(&input, batch);
            }
        });
        let mut codec = OursCodec::new();
        for _ in 0..4 {
            codec.echo(&input, batch);
        }
        let echo = allocations_per(ROUNDS * batch, || {
            for _ in 0..ROUNDS {
                codec.echo(&input, batch);
            }
        });
        let message = Outgoing::new(case);
        let mut encoder = Lib::Ours.encoder();
        for _ in 0..16 {
            encoder.encode(&message);
        }
        let encode = allocations_per(ROUNDS, || {
            for _ in 0..ROUNDS {
                encoder.encode(&message);
            }
        });
        for (path, value) in [("decode", decode), ("echo", echo), ("encode", encode)] {
            checks.push(Check {
                what: format!("allocations per message, warm {path}, {}", case.label()),
                value,
                bound: 0.0,
                unit: "",
            });
        }
    }
    checks.push(broadcast_check());
}

/// One prepared frame queued on 1000 open server connections and written out, repeatedly:
/// what each delivery allocates, beyond the one encoding of the message.
fn broadcast_check() -> Check {
    const RECIPIENTS: usize = 1000;
    const ROUNDS: usize = 32;
    let now = Instant::now();
    let config = Arc::new(Config::default());
    let mut conns: Vec<Connection> = (0..RECIPIENTS)
        .map(|_| {
            let mut conn = Connection::server(config.clone(), now);
            conn.receive(now, &frames::upgrade_request("bench"));
            assert!(matches!(conn.poll_event(), Some(Event::Request(_))));
            conn.accept(Accept::new()).expect("accept");
            let n = conn.queued_bytes();
            conn.advance_outgoing(now, n);
            conn
        })
        .collect();
    let frame = PreparedFrame::text("a broadcast of twenty");
    let round = |conns: &mut Vec<Connection>| {
        for conn in conns.iter_mut() {
            conn.send_prepared(&frame).expect("send_prepared");
        }
        for conn in conns.iter_mut() {
            let mut slices = [std::io::IoSlice::new(&[]); 8];
            let n = conn.outgoing(&mut slices);
            let written: usize = slices[..n].iter().map(|s| s.len()).sum();
            conn.advance_outgoing(now, written);
        }
    };
    for _ in 0..4 {
        round(&mut conns);
    }
    let value = allocations_per(ROUNDS * RECIPIENTS, || {
        for _ in 0..ROUNDS {
            round(&mut conns);
        }
    });
    Check { what: format!("allocations per delivery, warm broadcast to {RECIPIENTS}"), value, bound: 0.0, unit: "" }
}

/// Heap bytes per connection of an in-process mio echo server of `kind`: `conns` connections
/// opened (offering permessage-deflate if `deflate`), each doing `exchange` if given,
/// measured after `settle`.
fn server_heap_per_conn(
    kind: ServerKind,
    conns: usize,
    deflate: bool,
    exchange: Option<Exchange>,
    settle: Duration,
) -> Result<f64, String> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        MEASURED.with(|m| m.set(true));
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("address");
        let _ = kind.serve(addr, |bound| {
            let _ = ready_tx.send(bound);
        });
    });
    let addr = ready_rx.recv_timeout(Duration::from_secs(10)).map_err(|e| format!("server start: {e}"))?;
    let target = Target { addr, raw: false, pid: None };
    // Warm up the loop's shared buffers and tables, then settle.
    let warm = exchange.map(|e| Exchange { messages: 1, ..e });
    drop(client::idle_after(&target, 8, deflate, warm).map_err(|e| e.to_string())?);
    std::thread::sleep(settle);
    let before = MEASURED_LIVE.load(Relaxed);
    let open = client::idle_after(&target, conns, deflate, exchange).map_err(|e| e.to_string())?;
    std::thread::sleep(settle);
    let after = MEASURED_LIVE.load(Relaxed);
    drop(open);
    Ok((after - before) as f64 / conns as f64)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let conns = match args.as_slice() {
        [] => 2000,
        [flag, n] if flag == "--conns" => match n.parse() {
            Ok(n) => n,
            Err(e) => {
                eprintln!("--conns: {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: floor [--conns N]");
            return ExitCode::from(2);
        }
    };
    let mut checks = Vec::new();
    allocation_checks(&mut checks);
    // The sweep frees a busy connection's buffers within two seconds of its queue emptying.
    let after_sweep = Duration::from_millis(2500);
    let one_kib = |messages| Some(Exchange { kind: Kind::Text, size: 1 << 10, messages });
    let idle = [
        (
            format!("heap per idle connection, {conns} connections, mio server"),
            ServerKind::OursEcho,
            false,
            None,
            IDLE_BOUND,
        ),
        (
            format!("heap per connection, {conns} connections, after one 1 KiB echo and the buffer sweep"),
            ServerKind::OursEcho,
            false,
            one_kib(1),
            IDLE_BOUND,
        ),
        (
            format!("heap per connection, {conns} connections, after 8 compressed 1 KiB echoes, no context takeover"),
            ServerKind::OursEchoLean,
            true,
            one_kib(8),
            NO_TAKEOVER_BOUND,
        ),
    ];
    for (what, kind, deflate, exchange, bound) in idle {
        match server_heap_per_conn(kind, conns, deflate, exchange, after_sweep) {
            Ok(value) => checks.push(Check { what, value, bound, unit: " B" }),
            Err(e) => {
                eprintln!("{what}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let mut broken = 0;
    for check in &checks {
        let ok = check.value <= check.bound;
        broken += usize::from(!ok);
        println!(
            "{} {}: {:.2}{} (bound {}{})",
            if ok { "ok    " } else { "BROKEN" },
            check.what,
            check.value,
            check.unit,
            check.bound,
            check.unit
        );
    }
    if broken > 0 {
        eprintln!("floor: {broken} bound(s) broken");
        return ExitCode::FAILURE;
    }
    println!("floor: all {} bounds hold", checks.len());
    ExitCode::SUCCESS
}

/// Heap bytes per idle connection of the mio server (issue 13's target: at most 1 KiB).
const IDLE_BOUND: f64 = 1024.0;

/// Heap bytes per connection between compressed messages without context takeover: no zlib
/// state stays with the connection (issue 13's target: at most 4 KiB).
const NO_TAKEOVER_BOUND: f64 = 4096.0;
