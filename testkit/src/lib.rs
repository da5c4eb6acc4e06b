//! Test support shared by the workspace's integration tests: watchdogs that turn a hung test
//! (a broken timer, a deadlock) into a failure instead of a test run that never ends.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::sync::mpsc;
use std::sync::Once;
use std::thread;
use std::time::Duration;

/// Starts, once per test binary, a thread that ends the process with a failure status after
/// `limit`: the last line of defence for tests whose threads cannot be bounded one by one (a
/// server loop on its own thread). `label` names the binary in the message.
pub fn process_watchdog(label: &'static str, limit: Duration) {
    static START: Once = Once::new();
    START.call_once(|| {
        thread::spawn(move || {
            thread::sleep(limit);
            eprintln!("{label}: watchdog fired after {limit:?}");
            std::process::exit(101);
        });
    });
}

/// Runs `body` in a thread and answers its result, panicking if it takes longer than `limit`
/// or panics itself.
pub fn within<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(body());
    });
    Pending { result, limit, what: "the test body" }.join()
}

/// Runs `body` in a thread without waiting; [`Pending::join`] waits for its result under
/// `limit`. `what` names the thread in failure messages (e.g. "the server").
pub fn spawn_within<T: Send + 'static>(
    what: &'static str,
    limit: Duration,
    body: impl FnOnce() -> T + Send + 'static,
) -> Pending<T> {
    let (done, result) = mpsc::channel();
    thread::spawn(move || {
        let _ = done.send(body());
    });
    Pending { result, limit, what }
}

/// A thread's result, waited for under a time limit.
#[derive(Debug)]
pub struct Pending<T> {
    result: mpsc::Receiver<T>,
    limit: Duration,
    what: &'static str,
}

impl<T> Pending<T> {
    /// Waits for the result; panics if the thread takes longer than its limit or panicked.
    pub fn join(self) -> T {
        match self.result.recv_timeout(self.limit) {
            Ok(value) => value,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("{} did not finish within {:?}", self.what, self.limit),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{} panicked (see above)", self.what),
        }
    }
}

pub mod proxy;
#[cfg(feature = "tls")]
pub mod tls;
