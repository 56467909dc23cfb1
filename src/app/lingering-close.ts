import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** How long a connection stays open, reading and discarding, once its last response is written. */
export const LINGER_MS = 2_000;

/**
 * Lingering close, as Apache and nginx do it. When Node ends a connection after its last response
 * (`Connection: close`, a 413 before the body was read, a body on a GET that no route reads), it
 * closes the socket as soon as the answer is written. Whatever the client is still sending then
 * meets a closed socket, and the kernel answers with a reset that can make the client discard the
 * answer it has not read yet: a large /docs-json or a 413 lost as "socket hang up". Here the socket
 * half-closes instead (our FIN after the answer), keeps reading and discarding what still arrives,
 * and is destroyed when the client closes its side or after `LINGER_MS`, whichever comes first.
 */
export function lingerOnClose(server: Server, lingerMs = LINGER_MS): void {
  server.on('connection', (socket: Socket) => {
    let lingering = false;
    socket.destroySoon = function lingeringClose(this: Socket): void {
      if (lingering) return;
      lingering = true;
      if (this.writable) this.end();
      // Destroyed only once the answer is flushed: destroy() drops writes still queued.
      const destroyWhenFlushed = (): void => {
        if (this.writableFinished) this.destroy();
        else this.once('finish', () => this.destroy());
      };
      if (this.readableEnded) {
        destroyWhenFlushed();
        return;
      }
      const timer = setTimeout(() => this.destroy(), lingerMs);
      timer.unref();
      this.once('end', destroyWhenFlushed);
      this.once('close', () => clearTimeout(timer));
      this.resume();
    };
  });
}
