/** A port the process cannot listen on: the message names the setting and what to do. */
export class ListenError extends Error {
  readonly code = 'cannot_listen';
}

/** Says why `host:port` (set by `variable`) could not be listened on, and what to do about it. */
export function listenError(err: unknown, variable: string, host: string, port: number): ListenError {
  const code = (err as { code?: unknown })?.code;
  const name = (err as { name?: unknown })?.name;
  if (code === 'EADDRINUSE' || name === 'AddrInUse') return new ListenError(`${host}:${port} is already in use by another process: stop it, or set ${variable} to a free port`);
  if (code === 'EACCES' || name === 'PermissionDenied') return new ListenError(`not allowed to listen on ${host}:${port} (ports below 1024 need privileges): set ${variable} to another port`);
  if (code === 'EADDRNOTAVAIL' || name === 'AddrNotAvailable') return new ListenError(`${host} is not an address of this machine: correct HOST`);
  return new ListenError(`cannot listen on ${host}:${port} (${variable}): ${(err as Error)?.message ?? String(err)}`);
}
