// ipToU32 and isIpv4 parse a dotted quad in one pass (src/wire/addr.ts): they take exactly what the regular expression
// they replaced took — four parts 0..255 in decimal without leading zeros — and nothing else.
import { describe, expect, it } from 'vitest';
import { ipToU32, isIpv4 } from '../../src/wire/addr.js';

const DOTTED = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const reference = (text: string) =>
  DOTTED.test(text) ? text.split('.').reduce((v, part) => v * 256 + Number(part), 0) : undefined;

function* candidates(): Generator<string> {
  const parts = [
    '0',
    '1',
    '9',
    '10',
    '01',
    '00',
    '99',
    '100',
    '199',
    '200',
    '249',
    '250',
    '255',
    '256',
    '300',
    '999',
    '0000',
    '1000',
    '',
    ' 1',
    '1 ',
    '+1',
    '-1',
    'a',
    '1e2',
    '0x1',
    '２',
  ];
  for (const a of parts) for (const b of ['0', '255', '01', '', 'x']) yield `${a}.${b}.3.4`;
  for (const d of parts) yield `10.0.0.${d}`;
  yield* ['1.2.3', '1.2.3.4.', '.1.2.3.4', '1..2.3', '1.2.3.4.5', '255.255.255.255', '0.0.0.0', '', '....'];
  // Strings of the characters that matter, every length a quad can have and one past it.
  let seed = 1;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let i = 0; i < 20_000; i++) {
    const length = Math.floor(random() * 17);
    let text = '';
    while (text.length < length) text += '0123456789..2 '[Math.floor(random() * 14)];
    yield text;
    const part = () => (random() < 0.1 ? '0' : '') + String(Math.floor(random() * 300));
    yield `${part()}.${part()}.${part()}.${part()}`;
  }
}

describe('ipToU32 / isIpv4', () => {
  it('accept exactly the dotted quads the regular expression accepts, with the same value', () => {
    for (const text of candidates()) {
      const want = reference(text);
      expect(isIpv4(text), text).toBe(want !== undefined);
      if (want === undefined) expect(() => ipToU32(text), text).toThrow(`not an IPv4 address: '${text}'`);
      else expect(ipToU32(text), text).toBe(want);
    }
  });

  it('gives the unsigned value of the top address', () => {
    expect(ipToU32('255.255.255.255')).toBe(0xffffffff);
    expect(ipToU32('10.0.0.1')).toBe(0x0a000001);
  });
});
