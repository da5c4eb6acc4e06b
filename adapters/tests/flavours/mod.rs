//! Runs a tokio test's body on both runtime flavours (current_thread and multi_thread), each
//! bounded by the test file's `LIMIT`: a hang fails instead of stalling the suite.

/// `both_flavours!(module_name, body_fn)`: a `module_name::current_thread` and a
/// `module_name::multi_thread` test, each running `body_fn()` within `LIMIT`.
macro_rules! both_flavours {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "current_thread")]
            async fn current_thread() {
                tokio::time::timeout(super::LIMIT, super::$body()).await.expect("test timed out");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn multi_thread() {
                tokio::time::timeout(super::LIMIT, super::$body()).await.expect("test timed out");
            }
        }
    };
}
