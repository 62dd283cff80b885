export type Logger = {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
};

/** Plain lines on stderr, one per message, prefixed with the component. */
export function createLogger(component: string, quiet = false): Logger {
  const line = (level: string, msg: string) => `${new Date().toISOString()} ${level} ${component}: ${msg}`;
  return {
    info: (m) => void (quiet || console.error(line('info', m))),
    warn: (m) => console.error(line('warn', m)),
    error: (m) => console.error(line('error', m)),
  };
}
