//! The task of an idle tokio connection is its memory floor: the echo loop's future must stay
//! about the size of the connection it owns. (Splitting the loop into an `async fn` awaiting
//! another that held the connection made it 4 KB, two and a half times the connection, and the
//! load harness's idle memory per tokio connection grew by as much.)

use std::sync::Arc;

use wsproto_adapters::tokio::WebSocket;

#[test]
fn the_echo_task_is_about_the_size_of_its_connection() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let connection = std::mem::size_of::<WebSocket<tokio::net::TcpStream>>();
        let plain = std::mem::size_of_val(&echo_server::tokio_echo(stream, Arc::new(echo_server::echo_config())));
        eprintln!("WebSocket<TcpStream> {connection} B, tokio_echo's future {plain} B");
        assert!(plain <= connection + 1024, "tokio_echo's future is {plain} B for a {connection} B connection");
    });
}
