//! The Autobahn TestSuite driver for our client role: runs every case of a `wstest -m
//! fuzzingserver` with the blocking client, echoing each message back, then asks the server to
//! write its reports.
//!
//! `autobahn-client --url ws://127.0.0.1:9001 --agent wsproto` (the defaults come from
//! `AUTOBAHN_PORT` and `AUTOBAHN_AGENT`, as set by `shared/autobahn/test-client`). Exits
//! non-zero when the fuzzing server cannot be reached (for the case count, any case, or the
//! reports); whether a case passed is for the reports to say.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use wsproto::{CloseCode, Config, DeflateConfig};
use wsproto_adapters::blocking::{connect, ConnectOptions, Error, Incoming};

#[derive(Debug, Parser)]
#[command(about = "Autobahn fuzzing-server driver for the wsproto blocking client")]
struct Args {
    /// The fuzzing server's base URL [default: ws://127.0.0.1:$AUTOBAHN_PORT, port 9001].
    #[arg(long)]
    url: Option<String>,
    /// The agent name the reports are filed under [default: $AUTOBAHN_AGENT, or wsproto].
    #[arg(long)]
    agent: Option<String>,
    /// Print one line per case (-v); also log connections (-vv) or everything (-vvv).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

/// Limits large enough for Autobahn's biggest cases (16 MiB messages, 4 MiB in 64-byte
/// fragments), which the defaults would refuse with 1009.
fn autobahn_config() -> Config {
    Config {
        max_frame_size: 64 << 20,
        max_message_size: 64 << 20,
        max_fragments: 1_000_000,
        max_queued_bytes: 256 << 20,
        // Offer client_no_context_takeover too, so that the suite's servers that ask for it
        // (13.2, 13.5-13.7) can accept our offer.
        deflate: Some(DeflateConfig { client_no_context_takeover: true, ..DeflateConfig::default() }),
        ..Config::default()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.verbose > 1 {
        example_logging::init(args.verbose - 1);
    }
    let base = args.url.unwrap_or_else(|| {
        format!("ws://127.0.0.1:{}", std::env::var("AUTOBAHN_PORT").unwrap_or_else(|_| "9001".into()))
    });
    let base = base.trim_end_matches('/');
    let agent = args.agent.or_else(|| std::env::var("AUTOBAHN_AGENT").ok()).unwrap_or_else(|| "wsproto".into());
    let options = ConnectOptions { config: Arc::new(autobahn_config()), ..ConnectOptions::default() };

    let count = match case_count(&format!("{base}/getCaseCount"), &options) {
        Ok(count) => count,
        Err(error) => {
            eprintln!("autobahn-client: cannot get the case count from {base}: {error}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("autobahn-client: running {count} cases as agent {agent:?}");

    let mut failures = 0;
    for case in 1..=count {
        let started = Instant::now();
        match run_case(&format!("{base}/runCase?case={case}&agent={agent}"), &options) {
            Ok(closed) if args.verbose > 0 => {
                println!("case {case}/{count}: {closed} in {:.1?}", started.elapsed());
            }
            Ok(_) => {}
            Err(error) => {
                failures += 1;
                eprintln!("autobahn-client: case {case}/{count}: {error}");
            }
        }
    }

    if let Err(error) = update_reports(&format!("{base}/updateReports?agent={agent}"), &options) {
        eprintln!("autobahn-client: updating the reports failed: {error}");
        return ExitCode::FAILURE;
    }
    if failures > 0 {
        eprintln!("autobahn-client: {failures} of {count} cases could not connect");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// `/getCaseCount` answers one text message with the number of cases.
fn case_count(url: &str, options: &ConnectOptions) -> Result<u32, String> {
    let (mut ws, _) = connect(url, options.clone()).map_err(|e| e.to_string())?;
    let mut count = None;
    loop {
        match ws.read().map_err(|e| e.to_string())? {
            Incoming::Message(message) if count.is_none() => {
                let text = String::from_utf8_lossy(message.as_bytes()).into_owned();
                count = Some(text.trim().parse().map_err(|_| format!("case count {text:?} is not a number"))?);
            }
            Incoming::Closed(_) => return count.ok_or_else(|| "closed without a case count".into()),
            _ => {}
        }
    }
}

/// Echoes every message of one case until the connection ends; answers how it ended. Only a
/// failure to connect is an error: how a case's connection ends is for the report to judge.
fn run_case(url: &str, options: &ConnectOptions) -> Result<String, Error> {
    let (mut ws, _) = connect(url, options.clone())?;
    loop {
        match ws.read() {
            Ok(Incoming::Message(message)) => {
                // A refused echo (the connection is closing) shows in how the case ends.
                if let Err(error) = ws.send(message) {
                    tracing::debug!("echo not sent: {error}");
                }
            }
            Ok(Incoming::Closed(closed)) => {
                let clean = if closed.clean { "clean" } else { "not clean" };
                return Ok(format!("closed {} ({clean}, {:?})", closed.code, closed.cause));
            }
            Ok(_) => {}
            Err(error) => return Ok(format!("ended: {error}")),
        }
    }
}

/// `/updateReports` makes the server write its reports; we close normally and wait for the end.
fn update_reports(url: &str, options: &ConnectOptions) -> Result<(), Error> {
    let (mut ws, _) = connect(url, options.clone())?;
    // The server may have closed first; then our close is refused and its close completes.
    if let Err(error) = ws.close(CloseCode::NORMAL, "") {
        tracing::debug!("close not sent: {error}");
    }
    loop {
        if let Incoming::Closed(_) = ws.read()? {
            return Ok(());
        }
    }
}
