import { describe, expect, it } from 'vitest';
import { readConfirmation } from '../../flows/confirmation.ts';
import { parseDate } from '../../flows/parse-date.ts';
import { parseNumber } from '../../flows/parse-number.ts';
import { parseEmail, parseName, parsePhone, parsePattern } from '../../flows/parse-text.ts';

describe('the deterministic parsers', () => {
  it.each([
    ['3 marzo 1990', 'it', { day: 3, month: 3, year: 1990 }],
    ['03/03/1990', 'it', { day: 3, month: 3, year: 1990 }],
    ['1990-03-03', 'it', { day: 3, month: 3, year: 1990 }],
    ['sono nato il tre marzo millenovecentonovanta', 'it', { day: 3, month: 3, year: 1990 }],
    ['il primo maggio del 1985', 'it', { day: 1, month: 5, year: 1985 }],
    ['March 3, 1990', 'en', { day: 3, month: 3, year: 1990 }],
    ['the 3rd of March 1990', 'en', { day: 3, month: 3, year: 1990 }],
    ['3 marzo', 'it', { day: 3, month: 3 }],
    ['marzo 1990', 'it', { month: 3, year: 1990 }],
    ['boh', 'it', null],
  ] as const)('reads the date in %j', (text, lang, parts) => {
    expect(parseDate(text, lang)).toEqual(parts);
  });

  it.each([
    ['42', 'it', 42], ['quarantadue', 'it', 42], ['ventitré', 'it', 23], ['millenovecentonovanta', 'it', 1990], ['1.234,5', 'it', 1234.5],
    ['forty-two', 'en', 42], ['one thousand nine hundred and ninety', 'en', 1990], ['1,234.5', 'en', 1234.5], ['none', 'en', null],
    // One separator not before three digits is a decimal point in either language; before three, thousands.
    ['12.50', 'it', 12.5], ['2.5', 'it', 2.5], ['1,5', 'en', 1.5], ['12,50 euro', 'en', 12.5], ['1.234', 'it', 1234], ['1,234', 'en', 1234],
  ] as const)('reads the number in %j', (text, lang, n) => {
    expect(parseNumber(text, lang)).toBe(n);
  });

  it('reads emails, phone numbers and patterns', () => {
    expect(parseEmail('la mia email è Giulia.Rossi@Example.it.')).toBe('giulia.rossi@example.it');
    expect(parseEmail('giulia at example dot it')).toBeNull();
    expect(parsePhone('chiamami al +39 347 123 4567')).toBe('+393471234567');
    expect(parsePhone('347-1234567')).toBe('3471234567');
    expect(parsePhone('il 3')).toBeNull();
    expect(parsePattern('il codice è AB-1234', '([A-Z]{2}-\\d{4})')).toBe('AB-1234');
  });

  it.each([
    ['mi chiamo Giulia Rossi', 'Giulia Rossi'], ['sono giulia rossi, grazie', 'Giulia Rossi'], ['my name is Giulia Rossi', 'Giulia Rossi'],
    ['Giulia Rossi', 'Giulia Rossi'], ['ciao, mi chiamo Anna Maria De Luca.', 'Anna Maria De Luca'], ["I'm john o'brien", "John O'Brien"], ['12345', null],
    ['Io mi chiamo Luca Verdi', 'Luca Verdi'], ['Maria Chiara De Luca Bianchi', 'Maria Chiara De Luca Bianchi'],
  ])('reads the name in %j', (text, name) => {
    expect(parseName(text)).toBe(name);
  });

  it.each([
    'non lo so', 'no', 'sì', 'Boh', 'sono io', 'perché me lo chiedi?', 'chi sei?', "I don't know", 'ciao', 'ok grazie', 'nessuno', 'why?',
  ])('reads no name in %j (the model or the node\'s noMatch takes it)', (text) => {
    expect(parseName(text)).toBeNull();
  });

  it.each([
    ['no, è Giulia Bianchi', 'Giulia Bianchi'], ['Sì, sono Giulia Rossi', 'Giulia Rossi'], ['Certo, Giulia Rossi', 'Giulia Rossi'], ['yes, John Smith', 'John Smith'],
    // A yes-word that is a first name, a name said as a question, a question after the name.
    ['Giusto Bianchi', 'Giusto Bianchi'], ['Marco?', 'Marco'], ['Mi chiamo Giulia, e tu?', 'Giulia'],
  ])('reads the name in %j, around a yes, a no or a question', (text, name) => {
    expect(parseName(text)).toBe(name);
  });

  it.each([
    ['sì', { kind: 'yes' }], ['Si, esatto', { kind: 'yes' }], ['yes', { kind: 'yes' }], ['no', { kind: 'no', rest: '' }],
    ['no, è Giulia Bianchi', { kind: 'no', rest: 'Giulia Bianchi' }], ['nope, it is giulia@example.com', { kind: 'no', rest: 'giulia@example.com' }],
    ['Giulia Bianchi', { kind: 'unclear', rest: 'Giulia Bianchi' }],
    // Words around the yes or no that a name parser would otherwise take for a name.
    ['assolutamente sì', { kind: 'yes' }], ['absolutely', { kind: 'yes' }], ['well, yes', { kind: 'yes' }],
    ['non proprio', { kind: 'no', rest: '' }], ['negativo', { kind: 'no', rest: '' }], ['veramente no', { kind: 'no', rest: '' }], ['nono', { kind: 'no', rest: '' }],
    ['veramente no, è Giulia', { kind: 'no', rest: 'Giulia' }], ['assolutamente sì, ma è Giulia', { kind: 'unclear', rest: 'è Giulia' }],
  ])('reads the confirmation %j', (text, reading) => {
    expect(readConfirmation(text)).toEqual(reading);
  });
});
