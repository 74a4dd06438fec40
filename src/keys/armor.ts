// Text armor for key and certificate files:
//   -----BEGIN MIPSEC <LABEL>-----
//   base64, 64 characters a line
//   -----END MIPSEC <LABEL>-----
// Works on bytes, never on JS strings, so that a secret key's text can be zeroed after use.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) VALUE[ALPHABET.charCodeAt(i)] = i;
const PAD = 0x3d; // '='
const LINE_CHARS = 64;
const DASHES = '-----';

export const ArmorLabel = {
  certificate: 'MIPSEC CERTIFICATE',
  x25519Private: 'MIPSEC X25519 PRIVATE KEY',
  x25519Public: 'MIPSEC X25519 PUBLIC KEY',
  ed25519Private: 'MIPSEC ED25519 PRIVATE KEY',
} as const;
export type ArmorLabelText = (typeof ArmorLabel)[keyof typeof ArmorLabel];

const ascii = (text: string): Uint8Array => new TextEncoder().encode(text);

/** The armored text of `body` as ASCII bytes (ends with a newline). */
export function armor(label: ArmorLabelText, body: Uint8Array): Uint8Array {
  const head = ascii(`${DASHES}BEGIN ${label}${DASHES}\n`);
  const tail = ascii(`${DASHES}END ${label}${DASHES}\n`);
  const chars = 4 * Math.ceil(body.length / 3);
  const out = new Uint8Array(head.length + chars + Math.ceil(chars / LINE_CHARS) + tail.length);
  out.set(head, 0);
  let at = head.length;
  let lineChars = 0;
  const put = (c: number): void => {
    out[at++] = c;
    if (++lineChars === LINE_CHARS) {
      out[at++] = 0x0a;
      lineChars = 0;
    }
  };
  for (let i = 0; i < body.length; i += 3) {
    const rest = body.length - i;
    const word = (body[i] << 16) | ((rest > 1 ? body[i + 1] : 0) << 8) | (rest > 2 ? body[i + 2] : 0);
    put(ALPHABET.charCodeAt(word >>> 18));
    put(ALPHABET.charCodeAt((word >>> 12) & 63));
    put(rest > 1 ? ALPHABET.charCodeAt((word >>> 6) & 63) : PAD);
    put(rest > 2 ? ALPHABET.charCodeAt(word & 63) : PAD);
  }
  if (lineChars !== 0) out[at++] = 0x0a;
  out.set(tail, at);
  return out;
}

export type Dearmored = { ok: true; body: Uint8Array } | { ok: false; error: string };

const isSpace = (c: number): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

function startsWith(text: Uint8Array, at: number, prefix: Uint8Array): boolean {
  if (text.length - at < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (text[at + i] !== prefix[i]) return false;
  return true;
}

/** Finds `-----BEGIN <label>-----` at `at` and returns the label text, or undefined. */
function beginLabel(text: Uint8Array, at: number): string | undefined {
  const begin = ascii(`${DASHES}BEGIN `);
  if (!startsWith(text, at, begin)) return undefined;
  const start = at + begin.length;
  for (let i = start; i < text.length && i < start + 64; i++) {
    if (text[i] === 0x2d)
      return startsWith(text, i, ascii(DASHES)) ? new TextDecoder().decode(text.subarray(start, i)) : undefined;
    if (text[i] < 0x20 || text[i] > 0x7e) return undefined;
  }
  return undefined;
}

/** Decodes the one armored block in `text`, which must carry `label`. Whitespace around lines is allowed. */
export function dearmor(label: ArmorLabelText, text: Uint8Array): Dearmored {
  let at = 0;
  while (at < text.length && isSpace(text[at])) at++;
  const found = beginLabel(text, at);
  if (found === undefined) return { ok: false, error: `does not start with a '${DASHES}BEGIN ${label}${DASHES}' line` };
  if (found !== label) return { ok: false, error: `holds a '${found}', expected a '${label}'` };
  at += `${DASHES}BEGIN ${label}${DASHES}`.length;
  const end = ascii(`${DASHES}END ${label}${DASHES}`);
  let stop = -1;
  for (let i = at; i < text.length; i++) {
    if (text[i] === 0x2d) {
      stop = i;
      break;
    }
  }
  if (stop < 0 || !startsWith(text, stop, end))
    return { ok: false, error: `has no '${DASHES}END ${label}${DASHES}' line` };
  for (let i = stop + end.length; i < text.length; i++) {
    if (!isSpace(text[i])) return { ok: false, error: `has data after the '${DASHES}END ${label}${DASHES}' line` };
  }
  return decodeBase64(text, at, stop);
}

function decodeBase64(text: Uint8Array, start: number, end: number): Dearmored {
  let chars = 0;
  let pads = 0;
  for (let i = start; i < end; i++) {
    const c = text[i];
    if (isSpace(c)) continue;
    if (c === PAD) {
      pads++;
      continue;
    }
    if (VALUE[c] < 0 || pads > 0) return { ok: false, error: 'has a character that is not base64 inside the armor' };
    chars++;
  }
  if ((chars + pads) % 4 !== 0 || pads > 2) {
    return { ok: false, error: 'has base64 of a length that is not a multiple of 4 (truncated file?)' };
  }
  const body = new Uint8Array((chars * 3) >> 2);
  let word = 0;
  let bits = 0;
  let out = 0;
  for (let i = start; i < end; i++) {
    const v = VALUE[text[i]];
    if (v < 0) continue;
    word = ((word << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      body[out++] = (word >>> bits) & 0xff;
    }
  }
  return { ok: true, body };
}
