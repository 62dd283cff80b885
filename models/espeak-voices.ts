/**
 * OpenAI voice ids mapped to espeak-ng voices (language + variant), chosen only to
 * keep a male/female feel: espeak-ng sounds robotic whatever the choice.
 */
const VOICES: Record<string, string> = {
  alloy: 'en-us',
  ash: 'en-us+m3',
  ballad: 'en-gb+m2',
  cedar: 'en-us+m4',
  coral: 'en-us+f2',
  echo: 'en-us+m1',
  fable: 'en-gb+m3',
  marin: 'en-us+f4',
  nova: 'en-us+f3',
  onyx: 'en-us+m7',
  sage: 'en-gb+f2',
  shimmer: 'en-us+f1',
  verse: 'en-us+m2',
};

/** Used for an unknown voice id. */
export const DEFAULT_ESPEAK_VOICE = 'en-us';

/** The espeak-ng voice for a twin's voice id; an id that already looks like an espeak voice ("de", "en-gb+f3") is kept. */
export function espeakVoice(voiceId: string): string {
  const id = voiceId.trim().toLowerCase();
  const mapped = VOICES[id];
  if (mapped) return mapped;
  return /^[a-z]{2,3}(-[a-z0-9]{1,8})*(\+[a-z0-9]{1,12})?$/.test(id) ? id : DEFAULT_ESPEAK_VOICE;
}
