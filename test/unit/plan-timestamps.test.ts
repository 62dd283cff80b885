import { describe, expect, it } from 'vitest';
import { isoOrNull } from '../../projections/iso-ms.ts';

describe('timestamps in the read model', () => {
  it('stores every occurredAt as toISOString writes it, or null', () => {
    const samples = [
      '2026-12-01T16:05:07.123Z', '2024-02-29T23:59:59.999Z', '2026-02-28T00:00:00.000Z', '0001-01-01T00:00:00.000Z',
      // Rolled over by the parse, as stored before: the next day, the next month.
      '2026-12-01T24:00:00.000Z', '2026-02-31T00:00:00.000Z', '2026-02-29T12:00:00.000Z', '2026-04-31T01:02:03.004Z',
      '2026-12-01T16:05:07Z', '2026-12-01T17:05:07.123+01:00', 'Tue, 01 Dec 2026 16:05:07 GMT', '2026-12-01',
      'not a date', '', '2026-12-01T23:59:60.000Z', '2026-13-01T00:00:00.000Z',
    ];
    for (const s of samples) {
      const t = Date.parse(s);
      expect(isoOrNull(s), s).toBe(Number.isNaN(t) ? null : new Date(t).toISOString());
    }
  });
});
