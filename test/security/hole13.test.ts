// Issue 10 hole 13 (parts): ICMP 40 has a global budget against spoofed sources; the status socket
// is never reachable with a loose mode and refuses symlinks; the §3.5 NAT filters by remote end and
// draws its ports at random.
import { mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, existsSync, readdirSync } from 'node:fs';
import { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { serveStatus, type StatusServer } from '../../src/daemon/socket.js';
import { VirtualClock } from '../../src/net/clock.js';
import type { Host } from '../../src/net/types.js';
import { Tally } from '../../src/roles/common/counters.js';
import { sendFailure } from '../../src/roles/common/failure.js';
import { RateLimiter } from '../../src/roles/common/ratelimit.js';
import { UdpSourceNat } from '../../src/roles/sgw/nat.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { buildIpv4, IpProto } from '../../src/wire/ipv4.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../src/wire/udp.js';

describe('hole 13: ICMP 40 global budget', () => {
  it('hole 13: bad packets from spoofed sources (a new one each) draw at most the global burst of failures, the rest counted', () => {
    const clock = new VirtualClock(0);
    const limiter = new RateLimiter(clock);
    const tally = new Tally();
    const sent: Uint8Array[] = [];
    const host = { send: (p: Uint8Array) => (sent.push(p), { ok: true }) } as unknown as Host;
    const original = buildIpv4(
      { src: ipToU32('198.18.100.1'), dst: ipToU32('198.18.1.1'), protocol: IpProto.UDP },
      new Uint8Array(8),
    );
    for (let i = 0; i < 100; i++) sendFailure(host, limiter, tally, '198.18.1.1', `198.18.100.${i}`, 0, original);
    expect(sent).toHaveLength(16);
    expect(tally.snapshot()).toEqual({ icmp40_sent_code0: 16, icmp40_global_rate_limited: 84 });
    clock.run(1000);
    for (let i = 100; i < 200; i++)
      sendFailure(host, limiter, tally, '198.18.1.1', `198.18.101.${i - 100}`, 0, original);
    // One second refills 20 tokens, capped at the burst of 16.
    expect(sent).toHaveLength(32);
  });
});

describe('hole 13: the status socket', () => {
  let dir: string;
  let server: StatusServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it('hole 13: the socket is never reachable by others, even at the moment it is bound with a permissive umask', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mipsec-h13-'));
    const run = join(dir, 'run');
    mkdirSync(run, { mode: 0o755 });
    const atBind: { file: number; dir: number }[] = [];
    const listen = Server.prototype.listen;
    vi.spyOn(Server.prototype, 'listen').mockImplementation(function (this: Server, ...args: unknown[]) {
      const result = (listen as (...a: unknown[]) => Server).apply(this, args);
      // A unix socket is bound synchronously inside listen(): its mode now is what another user could race for.
      if (typeof args[0] === 'string')
        atBind.push({ file: statSync(args[0]).mode & 0o777, dir: statSync(dirname(args[0])).mode & 0o777 });
      return result;
    });
    const oldMask = process.umask(0);
    try {
      server = await serveStatus(join(run, 'node.sock'), () => ({ ok: true }));
    } finally {
      process.umask(oldMask);
    }
    expect(atBind).toHaveLength(1);
    expect((atBind[0].file & 0o077) === 0 || (atBind[0].dir & 0o077) === 0).toBe(true);
    expect(statSync(join(run, 'node.sock')).mode & 0o777).toBe(0o600);
    expect(readdirSync(run)).toEqual(['node.sock']);
  });

  it('hole 13: a symlinked socket path or socket directory is refused, and nothing is created where it points', async () => {
    dir = mkdtempSync(join(tmpdir(), 'mipsec-h13-'));
    const elsewhere = join(dir, 'elsewhere');
    mkdirSync(elsewhere);
    const linkedDir = join(dir, 'linked');
    symlinkSync(elsewhere, linkedDir);
    await expect(serveStatus(join(linkedDir, 'node.sock'), () => ({}))).rejects.toThrow(/symlink/);
    symlinkSync(join(elsewhere, 'target.sock'), join(dir, 'node.sock'));
    await expect(serveStatus(join(dir, 'node.sock'), () => ({}))).rejects.toThrow(/symlink/);
    expect(existsSync(join(elsewhere, 'node.sock')) || existsSync(join(elsewhere, 'target.sock'))).toBe(false);
  });
});

describe('hole 13: the §3.5 NAT', () => {
  const global = ipToU32('198.18.1.1');
  /** A datagram from an inside host to the outside CH. */
  const outbound = (src: string, srcPort: number, dstPort = 7) =>
    buildUdpDatagram({ src: ipToU32(src), dst: ipToU32('198.18.9.10'), srcPort, dstPort }, new Uint8Array(4));

  it('hole 13: an answer is let in only from the remote address and port the mapping was made for', () => {
    const nat = new UdpSourceNat(new VirtualClock(0), global);
    const sent = parseUdpDatagram(nat.outbound(outbound('10.1.0.100', 4000, 53))!);
    const port = sent.ok ? sent.udp.srcPort : -1;
    const from = (src: string, srcPort: number) =>
      nat.inbound(buildUdpDatagram({ src: ipToU32(src), dst: global, srcPort, dstPort: port }, new Uint8Array(4)));
    expect(from('198.18.9.66', 53)).toBeUndefined();
    expect(from('198.18.9.10', 54)).toBeUndefined();
    const back = parseUdpDatagram(from('198.18.9.10', 53)!);
    expect(back.ok && [back.udp.dst, back.udp.dstPort]).toEqual([ipToU32('10.1.0.100'), 4000]);
  });

  it('hole 13: global ports are drawn at random, never collide, and run out only when all are live', () => {
    const nat = new UdpSourceNat(new VirtualClock(0), global);
    const ports: number[] = [];
    for (let i = 0; i < 10000; i++) {
      const sent = parseUdpDatagram(nat.outbound(outbound('10.1.0.100', 1024 + i))!);
      ports.push(sent.ok ? sent.udp.srcPort : -1);
    }
    expect(new Set(ports).size).toBe(10000);
    expect(ports.every((p) => p >= 20000 && p <= 29999)).toBe(true);
    // Not a sequence: among the first 50, few follow their predecessor.
    const successors = ports.slice(1, 50).filter((p, i) => p === ports[i] + 1).length;
    expect(successors).toBeLessThan(10);
    expect(nat.outbound(outbound('10.1.0.101', 9))).toBeUndefined();
  });
});
