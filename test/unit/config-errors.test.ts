// A configuration with several wrong variables is told all at once, each by name, before anything starts.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../runtime/config.ts';

describe('loadConfig', () => {
  it('names every variable that is wrong, with what it takes', () => {
    const load = () => loadConfig({ GEMELLO_MAX_ACTORS: '2', GEMELLO_TAIL_MAX_EVENTS: '5' });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow('GEMELLO_MAX_ACTORS: Too small: expected number to be >=10; GEMELLO_TAIL_MAX_EVENTS: Too small: expected number to be >=100');
    expect(loadConfig({ GEMELLO_MAX_ACTORS: '10', GEMELLO_TAIL_MAX_EVENTS: '100' })).toMatchObject({ maxActors: 10 });
  });
});
