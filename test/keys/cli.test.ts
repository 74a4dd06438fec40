// mipsec keygen | ca init | cert issue | show | verify, end to end in a temporary directory.
import { chmodSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';

let out: string[];
let err: string[];
beforeEach(() => {
  out = [];
  err = [];
  vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out.push(a.join(' '));
  });
  vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => {
    err.push(a.join(' '));
  });
});
afterEach(() => vi.restoreAllMocks());

async function mipsec(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  out = [];
  err = [];
  const code = await main(args);
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

describe('mipsec key commands', () => {
  it('keygen → ca init → cert issue → cert verify, then tampering and expiry fail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-cli-'));
    const p = (f: string) => join(dir, f);

    const keygen = await mipsec('keygen', '--out', p('sgw1.key'));
    expect(keygen).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(
        /^wrote .*sgw1\.key \(X25519 private key, mode 0600\) and .*sgw1\.key\.pub\npublic key: [0-9a-f]{64}$/,
      ),
    });
    expect(statSync(p('sgw1.key')).mode & 0o777).toBe(0o600);
    const secretText = readFileSync(p('sgw1.key'), 'utf8');

    const ca = await mipsec('ca', 'init', '--out', p('ca'), '--name', 'Example Corp CA', '--days', '3650');
    expect(ca).toMatchObject({ code: 0, stdout: expect.stringContaining('CA ca:Example Corp CA valid until') });
    expect(statSync(p('ca/ca.key')).mode & 0o777).toBe(0o600);
    expect(statSync(p('ca')).mode & 0o777).toBe(0o700);

    const issue = await mipsec(
      'cert',
      'issue',
      '--ca',
      p('ca'),
      '--name',
      'sgw:198.18.0.1',
      '--pub',
      p('sgw1.key.pub'),
      '--days',
      '365',
      '--out',
      p('sgw1.crt'),
    );
    expect(issue).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^wrote .*sgw1\.crt: sgw:198\.18\.0\.1 valid .* serial [0-9a-f]{16}$/),
    });

    const verify = await mipsec('cert', 'verify', p('sgw1.crt'), '--ca', p('ca/ca.crt'));
    expect(verify).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('valid: sgw:198.18.0.1 issued by ca:Example Corp CA'),
    });

    const show = await mipsec('cert', 'show', p('sgw1.crt'), '--json');
    expect(show.code).toBe(0);
    expect(JSON.parse(show.stdout)).toMatchObject({
      subject: 'sgw:198.18.0.1',
      nsid: 0,
      keyType: 'x25519',
      bytes: 164,
    });
    expect((await mipsec('cert', 'show', p('sgw1.crt'))).stdout).toMatch(/^subject {4}sgw:198\.18\.0\.1$/m);

    const expired = await mipsec(
      'cert',
      'verify',
      p('sgw1.crt'),
      '--ca',
      p('ca/ca.crt'),
      '--at',
      '2030-01-01T00:00:00Z',
    );
    expect(expired).toMatchObject({ code: 1, stderr: expect.stringContaining('invalid (expired): expired at') });

    // Tamper with the subject address inside the armored certificate: the signature no longer verifies.
    const text = readFileSync(p('sgw1.crt'), 'utf8');
    const body = Buffer.from(text.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    body[11] ^= 1;
    writeFileSync(
      p('tampered.crt'),
      `-----BEGIN MIPSEC CERTIFICATE-----\n${body.toString('base64')}\n-----END MIPSEC CERTIFICATE-----\n`,
    );
    const tampered = await mipsec('cert', 'verify', p('tampered.crt'), '--ca', p('ca/ca.crt'));
    expect(tampered).toMatchObject({ code: 1, stderr: expect.stringContaining('invalid (bad_signature)') });
    writeFileSync(p('broken.crt'), text.slice(0, 60));
    expect(await mipsec('cert', 'verify', p('broken.crt'), '--ca', p('ca/ca.crt'))).toMatchObject({
      code: 1,
      stderr: `${p('broken.crt')}: invalid: has no '-----END MIPSEC CERTIFICATE-----' line`,
    });
    expect(await mipsec('cert', 'verify', p('missing.crt'), '--ca', p('ca/ca.crt'))).toMatchObject({
      code: 1,
      stderr: `mipsec cert verify: ${p('missing.crt')} does not exist`,
    });

    // A certificate from another CA.
    await mipsec('ca', 'init', '--out', p('other'));
    const foreign = await mipsec('cert', 'verify', p('sgw1.crt'), '--ca', p('other/ca.crt'));
    expect(foreign).toMatchObject({ code: 1, stderr: expect.stringContaining('invalid (foreign_ca)') });

    // A CA key readable by others is refused with the fix; nothing secret is printed.
    chmodSync(p('ca/ca.key'), 0o644);
    const refused = await mipsec(
      'cert',
      'issue',
      '--ca',
      p('ca'),
      '--name',
      'smn:10.0.0.100',
      '--pub',
      p('sgw1.key.pub'),
      '--out',
      p('smn.crt'),
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      `private key file ${p('ca/ca.key')} is accessible by group or others (mode 0644); fix it with: chmod 600 ${p('ca/ca.key')}`,
    );
    expect(refused.stderr + refused.stdout).not.toContain(secretText.split('\n')[1]);
    chmodSync(p('ca/ca.key'), 0o600);
    expect(
      (
        await mipsec(
          'cert',
          'issue',
          '--ca',
          p('ca'),
          '--name',
          'smn:10.0.0.100',
          '--pub',
          p('sgw1.key.pub'),
          '--out',
          p('smn.crt'),
        )
      ).code,
    ).toBe(0);

    // keygen never overwrites.
    expect(await mipsec('keygen', '--out', p('sgw1.key'))).toMatchObject({
      code: 1,
      stderr: expect.stringContaining('already exists; remove it or choose another --out'),
    });
    expect(readFileSync(p('sgw1.key'), 'utf8')).toBe(secretText);
  });

  it('--help everywhere; bad arguments name the flag and show an example', async () => {
    for (const args of [
      ['keygen', '--help'],
      ['ca', 'init', '--help'],
      ['ca', '--help'],
      ['cert', '--help'],
      ['cert', 'issue', '-h'],
      ['cert', 'show', '--help'],
      ['cert', 'verify', '--help'],
    ]) {
      const r = await mipsec(...args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/usage: mipsec /);
      expect(r.stdout).toMatch(/example: mipsec /);
    }
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-cli-'));
    const cases: [string[], RegExp][] = [
      [['keygen'], /--out is required \(example: mipsec keygen --out sgw1\.key\)/],
      [['keygen', '--out', 'x', '--bogus'], /unknown option '--bogus'/],
      [['ca'], /usage: mipsec ca init/],
      [['ca', 'make'], /unknown subcommand 'make' \(expected init; example: mipsec ca init --help\)/],
      [
        ['ca', 'init', '--out', join(dir, 'c'), '--days', 'ten'],
        /--days must be a whole number of days in 1\.\.36500, got 'ten'/,
      ],
      [
        ['cert', 'issue', '--ca', dir, '--pub', 'x.pub', '--out', 'x.crt'],
        /--name is required \(example: mipsec cert issue --ca ca --name sgw:198\.18\.0\.1/,
      ],
      [
        ['cert', 'issue', '--ca', dir, '--name', 'gw:1.2.3.4', '--pub', 'x.pub', '--out', 'x.crt'],
        /--name: name 'gw:1\.2\.3\.4' must start with 'sgw:' or 'smn:' \(e\.g\. sgw:198\.18\.0\.1 or smn:10\.0\.0\.100\)/,
      ],
      [
        [
          'cert',
          'issue',
          '--ca',
          dir,
          '--name',
          'sgw:1.2.3.4',
          '--pub',
          'x.pub',
          '--out',
          'x.crt',
          '--not-before',
          'yesterday',
        ],
        /--not-before must be an ISO time such as 2027-01-01T00:00:00Z, got 'yesterday'/,
      ],
      [['cert', 'verify', 'x.crt'], /--ca is required \(example: mipsec cert verify sgw1\.crt --ca ca\/ca\.crt\)/],
      [['cert', 'show'], /expected 1 FILE argument, got 0/],
    ];
    for (const [args, message] of cases) {
      const r = await mipsec(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });

  it('cert issue refuses a validity beyond the CA and a private key given as --pub', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mipsec-cli-'));
    const p = (f: string) => join(dir, f);
    await mipsec('keygen', '--out', p('n.key'));
    await mipsec('ca', 'init', '--out', p('ca'), '--days', '10');
    const long = await mipsec(
      'cert',
      'issue',
      '--ca',
      p('ca'),
      '--name',
      'smn:10.0.0.100',
      '--pub',
      p('n.key.pub'),
      '--days',
      '30',
      '--out',
      p('n.crt'),
    );
    expect(long).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/--days 30 ends .* after the CA expires .*; use at most --days 10/),
    });
    const wrong = await mipsec(
      'cert',
      'issue',
      '--ca',
      p('ca'),
      '--name',
      'smn:10.0.0.100',
      '--pub',
      p('n.key'),
      '--days',
      '5',
      '--out',
      p('n.crt'),
    );
    expect(wrong).toMatchObject({
      code: 1,
      stderr: expect.stringContaining("holds a 'MIPSEC X25519 PRIVATE KEY', expected a 'MIPSEC X25519 PUBLIC KEY'"),
    });
  });
});
