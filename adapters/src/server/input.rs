//! Received bytes on their way into the connections: one read buffer shared by every
//! connection of the loop, from which whole frames are split off as messages without a copy
//! ([`Connection::receive_buf`]), and, for the few connections whose last read ended inside a
//! frame, a buffer of their own until that frame is complete. Those buffers come from a small
//! pool and go back to it as soon as they are empty, so an idle connection holds none, and a
//! busy loop allocates none once warm (as long as the application drops the messages it is
//! given before the next read; one it keeps holds the buffer it was split from).

use std::collections::HashMap;
use std::time::Instant;

use wsproto::bytes::BytesMut;
use wsproto::Connection;

use super::ConnId;

/// At most this many empty per-connection buffers are kept for reuse.
const MAX_SPARE: usize = 64;

#[derive(Default)]
pub(crate) struct Input {
    shared: BytesMut,
    /// Connections whose read ended inside a frame: the frame's start, waiting for the rest.
    unfinished: HashMap<ConnId, BytesMut>,
    spare: Vec<BytesMut>,
}

impl Input {
    /// Hands `conn` the bytes read from its transport.
    pub(crate) fn receive(&mut self, id: ConnId, conn: &mut Connection, now: Instant, data: &[u8]) {
        if let Some(buf) = self.unfinished.get_mut(&id) {
            buf.extend_from_slice(data);
            conn.receive_buf(now, buf);
            if buf.is_empty() {
                let buf = self.unfinished.remove(&id).unwrap_or_default();
                self.give_back(buf);
            }
            return;
        }
        self.shared.extend_from_slice(data);
        conn.receive_buf(now, &mut self.shared);
        if !self.shared.is_empty() {
            let mut own = self.spare.pop().unwrap_or_default();
            own.extend_from_slice(&self.shared);
            self.shared.clear();
            self.unfinished.insert(id, own);
        }
    }

    /// The connection is gone: so is what it had not finished.
    pub(crate) fn forget(&mut self, id: ConnId) {
        if let Some(buf) = self.unfinished.remove(&id) {
            self.give_back(buf);
        }
    }

    fn give_back(&mut self, mut buf: BytesMut) {
        if self.spare.len() < MAX_SPARE {
            buf.clear();
            self.spare.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use wsproto::{Accept, Config, Event, Message};

    fn open_server(now: Instant) -> Connection {
        let mut server = Connection::server(Arc::new(Config::default()), now);
        server.receive(
            now,
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        );
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        server.accept(Accept::new()).unwrap();
        server
    }

    fn frame(payload: &[u8]) -> Vec<u8> {
        let key = [1, 2, 3, 4];
        let mut out = vec![0x82, 0xFE, (payload.len() >> 8) as u8, payload.len() as u8];
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        out
    }

    #[test]
    fn a_frame_split_across_reads_waits_with_its_connection_only() {
        let now = Instant::now();
        let (a, b) = (ConnId { index: 0, generation: 0 }, ConnId { index: 1, generation: 0 });
        let (mut conn_a, mut conn_b) = (open_server(now), open_server(now));
        let wire = frame(&[9; 1000]);
        let mut input = Input::default();
        input.receive(a, &mut conn_a, now, &wire[..300]);
        input.receive(b, &mut conn_b, now, &wire);
        assert!(input.unfinished.contains_key(&a) && !input.unfinished.contains_key(&b));
        input.receive(a, &mut conn_a, now, &wire[300..]);
        assert!(input.unfinished.is_empty(), "the buffer went back once the frame was complete");
        assert_eq!(input.spare.len(), 1);
        for conn in [&mut conn_a, &mut conn_b] {
            assert_eq!(conn.poll_event(), Some(Event::Message(Message::binary(vec![9; 1000]))));
        }
        input.receive(a, &mut conn_a, now, &wire[..10]);
        input.forget(a);
        assert!(input.unfinished.is_empty());
    }
}
