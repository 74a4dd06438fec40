// mipsec keygen | ca init | cert issue | cert show | cert verify: identities and certificates
// (docs/certificates.md). Exit codes: 0 done/valid, 1 failed/invalid, 2 bad usage.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { sodium } from '../keys/sodium.js';
import {
  certificateFromArmor,
  certificateSummary,
  isoTime,
  issueCertificate,
  NSID_CA_LABEL,
  subjectText,
  verifyCertificate,
} from '../keys/certificate.js';
import {
  generateCaKey,
  generateX25519,
  KeyFileError,
  loadCaKey,
  loadCertificate,
  loadX25519Public,
  readPublicFile,
  saveCaSeed,
  saveCertificate,
  saveX25519,
} from '../keys/keyfile.js';
import { parseName } from '../keys/names.js';

const CA_KEY_FILE = 'ca.key';
const CA_CERT_FILE = 'ca.crt';
const DAY_SECONDS = 86400;
const MAX_DAYS = 36500;
/** New certificates start this far in the past, so that peers with a slightly slow clock accept them. */
const BACKDATE_SECONDS = 300;

interface Command {
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  positionals?: number;
  run(values: Record<string, string | boolean | (string | boolean)[] | undefined>, positionals: string[]): number;
}

class UsageError extends Error {}

const HELP = { help: { type: 'boolean', short: 'h' } } as const;

const commands: Record<string, Command> = {
  keygen: {
    usage: `usage: mipsec keygen --out FILE
  Writes a new X25519 identity key pair: FILE (private, mode 0600) and FILE.pub.
  example: mipsec keygen --out sgw1.key`,
    options: { out: { type: 'string' }, ...HELP },
    run: (v) => {
      const out = required(v, 'out', 'keygen', '--out sgw1.key');
      const pair = generateX25519();
      try {
        saveX25519(out, pair);
      } finally {
        sodium.memzero(pair.secretKey);
      }
      console.log(`wrote ${out} (X25519 private key, mode 0600) and ${out}.pub`);
      console.log(`public key: ${Buffer.from(pair.publicKey).toString('hex')}`);
      return 0;
    },
  },
  'ca init': {
    usage: `usage: mipsec ca init --out DIR [--name LABEL] [--days N]
  Creates an organization CA in DIR: ${CA_KEY_FILE} (Ed25519, mode 0600) and ${CA_CERT_FILE} (self-signed).
  --name  CA label, 1..64 bytes (default 'mipsec CA')
  --days  validity in days (default 3650)
  example: mipsec ca init --out ca --name "Example Corp CA" --days 3650`,
    options: { out: { type: 'string' }, name: { type: 'string' }, days: { type: 'string' }, ...HELP },
    run: (v) => {
      const dir = required(v, 'out', 'ca init', '--out ca');
      const label = (v.name as string | undefined) ?? 'mipsec CA';
      const days = parseDays(v.days as string | undefined, 3650, 'ca init');
      const labelBytes = new TextEncoder().encode(label).length;
      if (labelBytes < 1 || labelBytes > 64)
        throw new UsageError(
          `--name must be 1..64 bytes of text, got ${labelBytes} (example: --name "Example Corp CA")`,
        );
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const { seed, key } = generateCaKey();
      const now = Math.floor(Date.now() / 1000);
      try {
        const cert = issueCertificate(
          {
            subject: { nsid: NSID_CA_LABEL, label },
            publicKey: key.publicKey,
            serial: randomSerial(),
            notBefore: now - BACKDATE_SECONDS,
            notAfter: now + days * DAY_SECONDS,
          },
          key,
        );
        saveCaSeed(join(dir, CA_KEY_FILE), seed);
        saveCertificate(join(dir, CA_CERT_FILE), cert);
        console.log(`wrote ${join(dir, CA_KEY_FILE)} (Ed25519 CA key, mode 0600) and ${join(dir, CA_CERT_FILE)}`);
        console.log(`CA ${subjectText(cert.subject)} valid until ${isoTime(cert.notAfter)}`);
      } finally {
        sodium.memzero(seed);
        sodium.memzero(key.secretKey);
      }
      return 0;
    },
  },
  'cert issue': {
    usage: `usage: mipsec cert issue --ca DIR --name NAME --pub FILE.pub --out FILE [--days N] [--not-before ISO-TIME]
  Signs a certificate binding NAME to the X25519 public key in FILE.pub with the CA in DIR.
  --name        sgw:<IPv4 address> (NSID 0) or smn:<home address> (NSID 1)
  --days        validity in days (default 365), within the CA's own validity
  --not-before  start of validity (default: now minus 5 minutes)
  example: mipsec cert issue --ca ca --name sgw:198.18.0.1 --pub sgw1.key.pub --days 365 --out sgw1.crt`,
    options: {
      ca: { type: 'string' },
      name: { type: 'string' },
      pub: { type: 'string' },
      out: { type: 'string' },
      days: { type: 'string' },
      'not-before': { type: 'string' },
      ...HELP,
    },
    run: (v) => {
      const example = '--ca ca --name sgw:198.18.0.1 --pub sgw1.key.pub --out sgw1.crt';
      const caDir = required(v, 'ca', 'cert issue', example);
      const nameText = required(v, 'name', 'cert issue', example);
      const pubPath = required(v, 'pub', 'cert issue', example);
      const out = required(v, 'out', 'cert issue', example);
      const days = parseDays(v.days as string | undefined, 365, 'cert issue');
      const name = parseName(nameText);
      if (!name.ok) throw new UsageError(`--name: ${name.error}`);
      const notBefore =
        v['not-before'] === undefined
          ? Math.floor(Date.now() / 1000) - BACKDATE_SECONDS
          : parseTime('--not-before', v['not-before'] as string);
      const notAfter = notBefore + days * DAY_SECONDS;
      const caCert = loadCertificate(join(caDir, CA_CERT_FILE));
      if (caCert.subject.nsid !== NSID_CA_LABEL)
        throw new KeyFileError(`${join(caDir, CA_CERT_FILE)} is not a CA certificate`);
      if (notAfter > caCert.notAfter) {
        throw new UsageError(
          `--days ${days} ends ${isoTime(notAfter)}, after the CA expires (${isoTime(caCert.notAfter)}); use at ` +
            `most --days ${Math.floor((caCert.notAfter - notBefore) / DAY_SECONDS)}`,
        );
      }
      const publicKey = loadX25519Public(pubPath);
      const caKey = loadCaKey(join(caDir, CA_KEY_FILE));
      try {
        if (!sodium.memcmp(caKey.publicKey, caCert.publicKey))
          throw new KeyFileError(`${join(caDir, CA_KEY_FILE)} does not match ${join(caDir, CA_CERT_FILE)}`);
        const cert = issueCertificate(
          { subject: name.name, publicKey, serial: randomSerial(), notBefore, notAfter },
          caKey,
        );
        saveCertificate(out, cert);
        console.log(
          `wrote ${out}: ${subjectText(cert.subject)} valid ${isoTime(cert.notBefore)} to ` +
            `${isoTime(cert.notAfter)}, serial ${certificateSummary(cert).serial}`,
        );
      } finally {
        sodium.memzero(caKey.secretKey);
      }
      return 0;
    },
  },
  'cert show': {
    usage: `usage: mipsec cert show FILE [--json]
  Prints the fields of a certificate.
  example: mipsec cert show sgw1.crt --json`,
    options: { json: { type: 'boolean' }, ...HELP },
    positionals: 1,
    run: (v, [file]) => {
      const summary = certificateSummary(loadCertificate(file));
      if (v.json) console.log(JSON.stringify(summary, null, 2));
      else for (const [field, value] of Object.entries(summary)) console.log(`${field.padEnd(10)} ${value}`);
      return 0;
    },
  },
  'cert verify': {
    usage: `usage: mipsec cert verify FILE --ca CA_CERT [--at ISO-TIME]
  Checks that FILE is signed by the CA of CA_CERT and valid at --at (default now).
  Exit 0: valid; exit 1: invalid, with the reason.
  example: mipsec cert verify sgw1.crt --ca ca/ca.crt --at 2027-01-01T00:00:00Z`,
    options: { ca: { type: 'string' }, at: { type: 'string' }, ...HELP },
    positionals: 1,
    run: (v, [file]) => {
      const caPath = required(v, 'ca', 'cert verify', 'sgw1.crt --ca ca/ca.crt');
      const at = v.at === undefined ? Math.floor(Date.now() / 1000) : parseTime('--at', v.at as string);
      const caCert = loadCertificate(caPath);
      const decoded = certificateFromArmor(readPublicFile(file));
      if (!decoded.ok) {
        console.error(`${file}: invalid: ${decoded.error}`);
        return 1;
      }
      const cert = decoded.cert;
      const check = verifyCertificate(cert, caCert, at);
      if (!check.ok) {
        console.error(`${file}: invalid (${check.reason}): ${check.message}`);
        return 1;
      }
      console.log(
        `${file}: valid: ${subjectText(cert.subject)} issued by ${subjectText(caCert.subject)}, valid until ` +
          `${isoTime(cert.notAfter)}`,
      );
      return 0;
    },
  },
};

const GROUPS: Record<string, string[]> = { ca: ['init'], cert: ['issue', 'show', 'verify'] };

function required(values: Record<string, unknown>, flag: string, command: string, example: string): string {
  const value = values[flag];
  if (typeof value !== 'string' || value === '')
    throw new UsageError(`--${flag} is required (example: mipsec ${command} ${example})`);
  return value;
}

function parseDays(text: string | undefined, fallback: number, command: string): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > MAX_DAYS) {
    throw new UsageError(
      `--days must be a whole number of days in 1..${MAX_DAYS}, got '${text}' (example: mipsec ${command} ... ` +
        `--days 365)`,
    );
  }
  return Number(text);
}

function parseTime(flag: string, text: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$/.test(text)
    ? Date.parse(text)
    : NaN;
  if (Number.isNaN(ms) || ms < 0)
    throw new UsageError(`${flag} must be an ISO time such as 2027-01-01T00:00:00Z, got '${text}'`);
  return Math.floor(ms / 1000);
}

function randomSerial(): bigint {
  return BigInt(`0x${Buffer.from(sodium.randombytes_buf(8)).toString('hex')}`);
}

/** Entry point for `mipsec keygen`, `mipsec ca …` and `mipsec cert …` (src/cli/main.ts). */
export async function run(name: string, args: string[]): Promise<number> {
  let key = name;
  let rest = args;
  const subcommands = GROUPS[name];
  if (subcommands) {
    const [sub, ...more] = args;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      const text = subcommands.map((s) => commands[`${name} ${s}`].usage).join('\n\n');
      (sub ? console.log : console.error)(text);
      return sub ? 0 : 2;
    }
    if (!subcommands.includes(sub)) {
      console.error(
        `mipsec ${name}: unknown subcommand '${sub}' (expected ${subcommands.join(', ')}; ` +
          `example: mipsec ${name} ${subcommands[0]} --help)`,
      );
      return 2;
    }
    key = `${name} ${sub}`;
    rest = more;
  }
  const command = commands[key];
  if (!command) {
    console.error(`mipsec: '${name}' is not a key command`);
    return 2;
  }
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: command.options, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UsageError(
        (err as Error).message.replace(/^Unknown option/, 'unknown option').replace(/\. To specify.*$/, ''),
      );
    }
    if (parsed.values.help) {
      console.log(command.usage);
      return 0;
    }
    const wanted = command.positionals ?? 0;
    if (parsed.positionals.length !== wanted) {
      throw new UsageError(
        wanted === 0
          ? `unexpected argument '${parsed.positionals[0]}'`
          : `expected ${wanted} FILE argument, got ${parsed.positionals.length}`,
      );
    }
    return command.run(parsed.values, parsed.positionals);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`mipsec ${key}: ${err.message}\n\n${command.usage}`);
      return 2;
    }
    if (err instanceof KeyFileError || err instanceof RangeError) {
      console.error(`mipsec ${key}: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
