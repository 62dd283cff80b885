import { EffectError, type SpeechModel } from '../actors/ports.ts';

/** Why there is no speech, as recorded in AudioFailed. */
export const NO_SPEECH_REASON = 'no speech backend: set OPENAI_API_KEY or install espeak-ng (apt-get install espeak-ng)';

/** A SpeechModel for a machine with no speech backend: every call fails with `speech_unavailable`. */
export function createUnavailableSpeechModel(): SpeechModel {
  return {
    name: 'unavailable',
    async synthesize() {
      throw new EffectError('speech_unavailable', NO_SPEECH_REASON, false);
    },
  };
}
