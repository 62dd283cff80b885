import type { Logger } from './logger.ts';

/** Starts trace export when configured (filled in with the OpenTelemetry SDK). */
export async function startTelemetry(_env: Record<string, string | undefined>, _roles: string[], _logger: Logger): Promise<{ shutdown(): Promise<void> }> {
  return { async shutdown() {} };
}
