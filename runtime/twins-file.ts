import { readFileSync } from 'node:fs';
import { createTwinCatalog } from '../actors/twins.ts';
import type { TwinCatalog } from '../actors/twins.ts';
import { ConfigError } from './config.ts';

/** The default twins plus those of GEMELLO_TWINS_FILE; a file that cannot be used is a ConfigError naming it and what is wrong. */
export function loadTwinCatalog(file: string | null): TwinCatalog {
  if (!file) return createTwinCatalog();
  const where = `GEMELLO_TWINS_FILE=${file}`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${where} cannot be read: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${where} is not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(json)) throw new ConfigError(`${where} must hold a JSON array of twins, each {"id","name","systemPrompt"?,"model"?,"voiceId"?,"fields"?,"flow"?}`);
  try {
    return createTwinCatalog(json);
  } catch (err) {
    throw new ConfigError(`${where}: ${(err as Error).message}`);
  }
}
