// The socket.io side of benches' `cluster` bench: a chat room's fan-out on socket.io 4, shared
// between processes by @socket.io/redis-streams-adapter (a Redis Stream, like our cluster).
//
// usage: node chat-server.mjs PORT REDIS_URL
// Every `say` is emitted to every socket of every process as `message` { from, text }. Prints
// `socket.io: listening on PORT` on stderr once it accepts connections.

import { createClient } from 'redis';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-streams-adapter';

const [port, url] = process.argv.slice(2);
if (!port || !url) {
  console.error('usage: node chat-server.mjs PORT REDIS_URL');
  process.exit(2);
}
const redis = createClient({ url });
redis.on('error', (err) => console.error(`socket.io: redis: ${err.message}`));
await redis.connect();

// WebSocket only, no compression: what our load generator and our chat speak too.
const io = new Server({ adapter: createAdapter(redis), transports: ['websocket'], perMessageDeflate: false, serveClient: false });
io.on('connection', (socket) => {
  socket.on('say', (text) => {
    if (typeof text === 'string') io.emit('message', { from: socket.id, text });
  });
});
io.listen(Number(port));
console.error(`socket.io: listening on ${port}`);
