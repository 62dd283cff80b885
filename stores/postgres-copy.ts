import type { Writable } from 'node:stream';
import postgres from 'postgres';

/**
 * `COPY … FROM STDIN` on a transaction's connection of the `postgres` package (3.4.9), with
 * what the package's copy stream leaves out made up for here:
 * - the stream's destroy writes a CopyFail to the socket, which is null once the connection
 *   has closed: the TypeError came out of the package's close handler and killed the process.
 *   It is replaced by one that only ends the stream (nothing is sent: after a loss there is no
 *   one to send it to; after the copy, when the stream destroys itself, the server would
 *   ignore it);
 * - a copy the server refuses after the last row was sent (a constraint, a bad value) was
 *   never reported: the package lets go of the stream when it sends CopyDone, so the error
 *   went nowhere and the copy waited for good. A statement sent right behind CopyDone tells:
 *   it runs once the copy has finished, and fails if the copy did (the transaction is
 *   aborted);
 * - a connection lost after CopyDone did not reach the stream either: `lost` (the
 *   transaction's own end, which rejects when its connection closes) does.
 * Errors that are not the server's come out as `asLoss` makes them (a connection loss).
 */
export async function copyIn(t: postgres.Sql, statement: string, data: string | Uint8Array, lost: Promise<unknown>, asLoss: (cause: unknown) => Error): Promise<void> {
  const stream = (await t.unsafe(statement).writable()) as unknown as Writable;
  await new Promise<void>((resolve, reject) => {
    const fail = (err: unknown) => reject(err instanceof postgres.PostgresError ? err : asLoss(err));
    stream._destroy = (err, callback) => callback(err);
    stream.once('error', fail);
    const sendDone = stream._final!.bind(stream);
    stream._final = (callback) => {
      // Throws when the socket is gone (the stream reports it as its error).
      sendDone(callback);
      t.unsafe('SELECT 1').then(() => resolve(), fail);
    };
    lost.then(() => fail(new Error('the transaction ended during a COPY')), fail);
    try {
      // In the turn the stream came in: the socket that answered is still there.
      stream.end(data);
    } catch (err) {
      fail(err);
    }
  });
}
