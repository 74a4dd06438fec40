// Key files: modes, atomic no-clobber writes, permission refusal, identity loading.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  generateCaKey,
  generateX25519,
  loadCaKey,
  loadCertificate,
  loadIdentity,
  loadX25519Public,
  loadX25519Secret,
  saveCaSeed,
  saveCertificate,
  saveX25519,
} from '../../src/keys/keyfile.js';
import { hex, makeCa, makeIdentity } from './helpers.js';

const tempDir = () => mkdtempSync(join(tmpdir(), 'mipsec-keys-'));

describe('key files', () => {
  it('keygen writes FILE 0600 and FILE.pub, and loads them back', () => {
    const dir = tempDir();
    const path = join(dir, 'node.key');
    const pair = generateX25519();
    saveX25519(path, pair);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(`${path}.pub`).mode & 0o777).toBe(0o644);
    expect(readFileSync(path, 'utf8')).toMatch(
      /^-----BEGIN MIPSEC X25519 PRIVATE KEY-----\n[A-Za-z0-9+/=]{44}\n-----END MIPSEC X25519 PRIVATE KEY-----\n$/,
    );
    expect(readdirSync(dir).sort()).toEqual(['node.key', 'node.key.pub']); // no temporary files left
    const loaded = loadX25519Secret(path);
    expect(hex(loaded.secretKey)).toBe(hex(pair.secretKey));
    expect(hex(loaded.publicKey)).toBe(hex(pair.publicKey));
    expect(hex(loadX25519Public(`${path}.pub`))).toBe(hex(pair.publicKey));
  });

  it('never overwrites an existing file', () => {
    const dir = tempDir();
    const path = join(dir, 'node.key');
    saveX25519(path, generateX25519());
    const before = readFileSync(path, 'utf8');
    expect(() => saveX25519(path, generateX25519())).toThrow(
      `${path} already exists; remove it or choose another --out`,
    );
    expect(readFileSync(path, 'utf8')).toBe(before);
    expect(readdirSync(dir).sort()).toEqual(['node.key', 'node.key.pub']);
  });

  it('refuses a private key readable by group or others, naming the file and the fix', () => {
    const dir = tempDir();
    const path = join(dir, 'node.key');
    const pair = generateX25519();
    saveX25519(path, pair);
    for (const mode of [0o644, 0o640, 0o604, 0o660]) {
      chmodSync(path, mode);
      const error = (() => {
        try {
          loadX25519Secret(path);
          return '';
        } catch (e) {
          return (e as Error).message;
        }
      })();
      expect(error).toBe(
        `private key file ${path} is accessible by group or others (mode 0${mode.toString(8)}); fix it with: chmod 600 ${path}`,
      );
      expect(error).not.toContain(hex(pair.secretKey).slice(0, 16));
    }
    chmodSync(path, 0o400);
    expect(hex(loadX25519Secret(path).publicKey)).toBe(hex(pair.publicKey));
  });

  it('clear errors for missing, wrong-kind and damaged key files', () => {
    const dir = tempDir();
    const missing = join(dir, 'nope.key');
    expect(() => loadX25519Secret(missing)).toThrow(`${missing} does not exist`);
    const pub = join(dir, 'a.key');
    saveX25519(pub, generateX25519());
    expect(() => loadX25519Secret(`${pub}.pub`)).toThrow(/accessible by group or others/);
    chmodSync(`${pub}.pub`, 0o600);
    expect(() => loadX25519Secret(`${pub}.pub`)).toThrow(
      /holds a 'MIPSEC X25519 PUBLIC KEY', expected a 'MIPSEC X25519 PRIVATE KEY'/,
    );
    const short = join(dir, 'short.key');
    writeFileSync(
      short,
      '-----BEGIN MIPSEC X25519 PRIVATE KEY-----\nAAECAw==\n-----END MIPSEC X25519 PRIVATE KEY-----\n',
      { mode: 0o600 },
    );
    expect(() => loadX25519Secret(short)).toThrow(`${short} holds 4 key bytes, a MIPSEC X25519 PRIVATE KEY has 32`);
    expect(() => loadX25519Secret(dir)).toThrow(/is not a regular file/);
  });

  it('CA seed files and certificates', () => {
    const dir = tempDir();
    const { seed, key } = generateCaKey();
    saveCaSeed(join(dir, 'ca.key'), seed);
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    expect(hex(loadCaKey(join(dir, 'ca.key')).publicKey)).toBe(hex(key.publicKey));
    const ca = makeCa();
    saveCertificate(join(dir, 'ca.crt'), ca.cert);
    expect(loadCertificate(join(dir, 'ca.crt'))).toEqual(ca.cert);
    writeFileSync(join(dir, 'bad.crt'), 'garbage');
    expect(() => loadCertificate(join(dir, 'bad.crt'))).toThrow(
      `${join(dir, 'bad.crt')}: does not start with a '-----BEGIN MIPSEC CERTIFICATE-----' line`,
    );
  });

  it('loadIdentity pairs a key with its certificate and refuses a mismatch', () => {
    const dir = tempDir();
    const ca = makeCa();
    const id = makeIdentity(ca, 'sgw:198.18.0.1');
    saveX25519(join(dir, 'sgw.key'), id);
    saveCertificate(join(dir, 'sgw.crt'), id.cert);
    const loaded = loadIdentity(join(dir, 'sgw.key'), join(dir, 'sgw.crt'));
    expect(loaded.name).toEqual({ nsid: 0, address: 0xc6120001 });
    expect(hex(loaded.secretKey)).toBe(hex(id.secretKey));
    const other = makeIdentity(ca, 'sgw:198.18.0.1');
    saveCertificate(join(dir, 'other.crt'), other.cert);
    expect(() => loadIdentity(join(dir, 'sgw.key'), join(dir, 'other.crt'))).toThrow(
      /other\.crt certifies another key than .*sgw\.key/,
    );
    saveCertificate(join(dir, 'ca.crt'), ca.cert);
    expect(() => loadIdentity(join(dir, 'sgw.key'), join(dir, 'ca.crt'))).toThrow(/is a CA certificate/);
  });
});
