// Issue 11 item 3: `mipsec smn` protects its own host's applications. Real daemons (sgw0, sgw1, sgw2, ha, smn of
// Figure 6) in namespaces this test makes: site 0 (sgw0, the HA, CH 10.0.0.10), site 1 (sgw1; the SMN starts there,
// away from home, care-of 10.1.0.100), site 2 (sgw2) and the Internet (the SGWs' outsides) are bridges in a switch
// namespace. On the SMN's machine itself, `ping` and `curl` reach the CH through the draft's layers; a TCP
// connection opened before a handover (the machine moves to site 2: its port to another bridge, eth0's address to
// 10.2.0.100 and a default route there, as a DHCP client would set them) still carries data afterwards; a capture
// of everything the SMN's interface sent and received shows SKIP only, never the applications' ICMP or TCP;
// SIGKILL leaves the policy rules (the applications fail closed), which the next start replaces; a socket bound to
// the care-of address fetches from a host on the visited network in clear; SIGTERM removes the application TUN, its
// rules and table.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_ROUTE_TABLE, APP_RULE_PREF } from '../../src/net/linux/attached.js';
import { APPLICATION_PORT } from '../../src/roles/smn/mobile-node.js';
import { canRunNetns } from '../io/topology.js';
import { figure6Fixture } from './fixture.js';
import {
  daemonStatus,
  ensureDist,
  ipIn,
  run,
  startInNs,
  TestNamespaces,
  waitFor,
  type StartedDaemon,
} from './netns.js';

const CH = '10.0.0.10';
const HOME = '10.0.0.100';
const COA1 = '10.1.0.100';
const COA2 = '10.2.0.100';
/** A host on the visited network of site 1, beside the SMN. */
const LAN1 = '10.1.0.50';
const MN_HA_KEY = '5a'.repeat(16);
const BLOB_BYTES = 2 * 1024 * 1024;

type Status = {
  counters: { fastPath: number; slowPath: { total: number; reasons: Record<string, number> } };
  bindings?: { registration?: string; place?: string; site?: string; careOf?: string };
  sas: { packets: number }[];
};

/** The echo server the long TCP connection talks to (one line in, the same line back, per line, until EOF). */
const ECHO_SERVER = `
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('${CH}', 9000)); s.listen(4)
print('listening', flush=True)
def serve(c):
    f = c.makefile('rwb')
    for line in f:
        f.write(line); f.flush()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

/** One TCP connection: a line before, then (after 'go' on stdin) lines after the handover, each echoed. */
const LONG_CLIENT = `
import socket, sys
c = socket.create_connection(('${CH}', 9000), timeout=20); f = c.makefile('rwb')
f.write(b'before\\n'); f.flush(); print('echo', f.readline().decode().strip(), c.getsockname()[0], flush=True)
sys.stdin.readline()
for i in range(3):
    f.write(b'after%d\\n' % i); f.flush(); print('echo', f.readline().decode().strip(), flush=True)
`;

describe.skipIf(!canRunNetns)("mipsec smn protects its host's own applications (root, test namespaces only)", () => {
  const nss = new TestNamespaces('mipsec-apps');
  const fx = figure6Fixture();
  const ns: Record<string, string> = {};
  const children: ChildProcess[] = [];
  const daemons: StartedDaemon[] = [];
  let links = 0;

  /** A veth from `name`'s `ifName` (addressed) to a port of bridge `bridge` in the switch namespace. */
  function toBridge(name: string, ifName: string, cidr: string, bridge: string): void {
    const [a, b] = [`a${nss.tag}${links}`, `b${nss.tag}${links++}`];
    execFileSync('ip', ['link', 'add', a, 'netns', ns[name], 'type', 'veth', 'peer', 'name', b, 'netns', ns.sw]);
    ipIn(ns[name], 'link', 'set', a, 'name', ifName);
    ipIn(ns[name], 'addr', 'add', cidr, 'dev', ifName);
    ipIn(ns[name], 'link', 'set', ifName, 'up');
    ipIn(ns.sw, 'link', 'set', b, 'master', bridge);
    ipIn(ns.sw, 'link', 'set', b, 'up');
    if (name === 'smn') ns.smnPort = b;
  }

  function start(name: string, args: string[]): StartedDaemon {
    const d = startInNs(ns[name], [...args, '--status-socket', fx.file(`${name}.sock`)]);
    daemons.push(d);
    return d;
  }
  /** What every daemon last said, for a failure message. */
  const tails = () => daemons.map((d) => d.out().slice(-1500)).join('\n---\n');
  const startSmn = () =>
    start('smn', [
      'smn',
      '--config',
      fx.file('smn.yaml'),
      '--mn-ha-key',
      fx.file('mn-ha.keys'),
      '--state-dir',
      fx.file('state'),
    ]);

  const inNs = (name: string, cmd: string, args: string[], timeout = 30_000) =>
    run('ip', ['netns', 'exec', ns[name], cmd, ...args], { encoding: 'utf8', timeout });
  const rules = (pref: number) => ipIn(ns.smn, 'rule', 'show', 'pref', String(pref)).trim();
  /** curl on the SMN's machine: the bytes it fetched and the HTTP status ("0 000" and its stderr when it failed). */
  const fetchFromSmn = (url: string, maxSeconds: number, ...more: string[]) =>
    inNs('smn', 'curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{size_download} %{http_code}',
      '--max-time',
      String(maxSeconds),
      ...more,
      url,
    ]).catch((err: { stdout: string; stderr: string }) => err);

  beforeAll(async () => {
    await ensureDist();
    for (const name of ['sw', 'sgw0', 'sgw1', 'sgw2', 'ha', 'ch', 'smn', 'lan1']) ns[name] = nss.add(name);
    for (const br of ['inet', 'br0', 'br1', 'br2']) {
      ipIn(ns.sw, 'link', 'add', br, 'type', 'bridge');
      ipIn(ns.sw, 'link', 'set', br, 'up');
    }
    for (const i of [0, 1, 2]) toBridge(`sgw${i}`, 'outside', `198.18.${i}.1/16`, 'inet');
    toBridge('sgw0', 'inside', '10.0.0.1/16', 'br0');
    toBridge('ha', 'home', '10.0.0.2/16', 'br0');
    toBridge('ch', 'eth0', `${CH}/16`, 'br0');
    toBridge('sgw1', 'inside', '10.1.0.1/16', 'br1');
    toBridge('sgw2', 'inside', '10.2.0.1/16', 'br2');
    toBridge('smn', 'eth0', `${COA1}/16`, 'br1');
    toBridge('lan1', 'eth0', `${LAN1}/16`, 'br1');
    ipIn(ns.ch, 'route', 'add', 'default', 'via', '10.0.0.1');
    ipIn(ns.smn, 'route', 'add', 'default', 'via', '10.1.0.1');
    // As on real gateways: each knows where the other sites are; the daemons read it.
    for (const i of [0, 1, 2])
      for (const j of [0, 1, 2])
        if (i !== j) ipIn(ns[`sgw${i}`], 'route', 'add', `10.${j}.0.0/16`, 'via', `198.18.${j}.1`);
    // The SMN's machine starts away from home: its interface has the care-of address.
    const smnFile = fx.file('smn.yaml');
    writeFileSync(
      smnFile,
      readFileSync(smnFile, 'utf8')
        .replace('address: 10.0.0.100     # the home address while at home', `address: ${COA1}`)
        .replace('gateway: 10.0.0.1', 'gateway: 10.1.0.1'),
    );
    expect(readFileSync(smnFile, 'utf8')).toContain(`address: ${COA1}`);
    writeFileSync(fx.file('mn-ha.keys'), `${HOME} 4096 ${MN_HA_KEY}\n`, { mode: 0o600 });
    writeFileSync(fx.file('blob'), Buffer.alloc(BLOB_BYTES, 7));
  }, 180_000);

  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    for (const d of daemons) d.child.kill('SIGKILL');
    nss.close();
  });

  it('ping, curl and a TCP connection across a handover from the mobile host reach the CH inside SKIP; stop and crash leave nothing', async () => {
    const before = { rules: ipIn(ns.smn, 'rule', 'show'), links: ipIn(ns.smn, '-br', 'link', 'show') };
    start('sgw0', ['sgw', '--config', fx.file('sgw0.yaml'), '--state-dir', fx.file('state')]);
    start('sgw1', ['sgw', '--config', fx.file('sgw1.yaml'), '--state-dir', fx.file('state')]);
    start('sgw2', ['sgw', '--config', fx.file('sgw2.yaml'), '--state-dir', fx.file('state')]);
    start('ha', [
      'ha',
      '--config',
      fx.file('ha.yaml'),
      '--mn-ha-key',
      fx.file('mn-ha.keys'),
      '--state-dir',
      fx.file('state'),
    ]);
    for (const d of daemons)
      await waitFor(
        () => `a daemon to start (output: ${d.out()})`,
        () => d.out().includes('"event":"started"'),
      );
    let smn = startSmn();
    await waitFor(
      () => `the SMN to register (output: ${smn.out()})`,
      () => smn.out().includes('"event":"registration_registered"'),
      20_000,
    );

    // While it runs: the application TUN with the home address, its table and rules.
    expect(ipIn(ns.smn, '-br', 'addr', 'show', 'dev', APPLICATION_PORT)).toContain(`${HOME}/32`);
    expect(ipIn(ns.smn, 'route', 'show', 'table', String(APP_ROUTE_TABLE))).toContain(
      `default dev ${APPLICATION_PORT} scope link src ${HOME}`,
    );
    expect(rules(APP_RULE_PREF)).toMatch(/ipproto (ipproto-)?255 lookup main/);
    expect(rules(APP_RULE_PREF + 2)).toContain(`from ${COA1} lookup main`);
    expect(rules(APP_RULE_PREF + 3)).toContain(`from all iif lo lookup ${APP_ROUTE_TABLE}`);
    // The kernel picks the home address as the applications' source toward the CH, through the TUN.
    expect(ipIn(ns.smn, 'route', 'get', CH)).toMatch(
      new RegExp(`dev ${APPLICATION_PORT} .*src ${HOME.replace(/\./g, '\\.')}`),
    );

    const server = spawn(
      'ip',
      ['netns', 'exec', ns.ch, 'python3', '-u', '-m', 'http.server', '8080', '--bind', CH, '--directory', fx.dir],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const echo = spawn('ip', ['netns', 'exec', ns.ch, 'python3', '-u', '-c', ECHO_SERVER], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(server, echo);
    let echoOut = '';
    echo.stdout!.on('data', (c: Buffer) => (echoOut += c.toString()));
    let serverOut = '';
    server.stdout!.on('data', (c: Buffer) => (serverOut += c.toString()));
    await waitFor('the servers', () => echoOut.includes('listening') && serverOut.includes('Serving HTTP'));

    // Everything the SMN's interface sends or receives, on both visited links (its port, moved from br1 to br2).
    const capture = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns.sw,
        'tshark',
        '-i',
        ns.smnPort,
        '-l',
        '-n',
        '-f',
        'ip',
        '-T',
        'fields',
        '-e',
        'ip.src',
        '-e',
        'ip.dst',
        '-e',
        'ip.proto',
        '-e',
        'icmp.type',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    children.push(capture);
    let captured = '';
    let captureLog = '';
    capture.stdout!.on('data', (c: Buffer) => (captured += c.toString()));
    capture.stderr!.on('data', (c: Buffer) => (captureLog += c.toString()));
    await waitFor('tshark to capture', () => captureLog.includes('Capturing on'));
    await new Promise((r) => setTimeout(r, 300));

    const ping = await inNs('smn', 'ping', ['-c', '5', '-i', '0.2', '-W', '2', CH]).catch(
      (err: { stdout: string }) => ({ stdout: err.stdout }),
    );
    // The first echo may be spent on keying and certificate discovery.
    expect(ping.stdout).toMatch(/5 packets transmitted, [4-5] received/);
    const curl = await fetchFromSmn(`http://${CH}:8080/blob`, 30);
    expect(curl.stdout).toBe(`${BLOB_BYTES} 200`);

    const client = spawn('ip', ['netns', 'exec', ns.smn, 'python3', '-u', '-c', LONG_CLIENT], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.push(client);
    let clientOut = '';
    client.stdout!.on('data', (c: Buffer) => (clientOut += c.toString()));
    client.stderr!.on('data', (c: Buffer) => (clientOut += c.toString()));
    await waitFor(`the first echo (client: ${clientOut})`, () => clientOut.includes('echo before'));
    expect(clientOut).toContain(`echo before ${HOME}`);

    // Handover: the machine moves to site 2 (its port to bridge br2) and gets an address there (as a DHCP client
    // would set it); the daemon follows.
    ipIn(ns.sw, 'link', 'set', ns.smnPort, 'nomaster');
    ipIn(ns.sw, 'link', 'set', ns.smnPort, 'master', 'br2');
    ipIn(ns.smn, 'addr', 'flush', 'dev', 'eth0');
    ipIn(ns.smn, 'addr', 'add', `${COA2}/16`, 'dev', 'eth0');
    ipIn(ns.smn, 'route', 'replace', 'default', 'via', '10.2.0.1', 'dev', 'eth0');
    await waitFor(
      () => `the SMN to register ${COA2} (output: ${smn.out()})`,
      () =>
        smn.out().includes(`"event":"registration_registered","careOf":"${COA2}"`) ||
        new RegExp(`registration_registered[^\\n]*${COA2.replace(/\./g, '\\.')}`).test(smn.out()),
      20_000,
    );
    expect(rules(APP_RULE_PREF + 2)).toContain(`from ${COA2} lookup main`);
    expect(rules(APP_RULE_PREF + 2)).not.toContain(COA1);
    client.stdin!.write('go\n');
    const clientExit = await new Promise<number | null>((resolve) => client.once('exit', resolve));
    expect(clientOut).toContain('echo after0');
    expect(clientOut).toContain('echo after2');
    expect(clientExit).toBe(0);
    const ping2 = await inNs('smn', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', CH]).catch(
      (err: { stdout: string }) => ({ stdout: err.stdout }),
    );
    expect(ping2.stdout).toMatch(/3 packets transmitted, [2-3] received/);

    await new Promise((r) => setTimeout(r, 500));
    capture.kill('SIGTERM');
    await new Promise((r) => capture.once('exit', r));
    const packets = captured
      .trim()
      .split('\n')
      .map((line) => line.split('\t'));
    const skip = packets.filter(([, , proto]) => proto === '57');
    // The 2 MiB transfer alone is some 1,800 segments toward the SMN, and ACKs back, all inside SKIP: as many ACKs
    // as the SMN's receive coalescing makes (GRO acknowledges super-packets: 185 to 900 seen), so dozens at least.
    expect(skip.filter(([src]) => src === COA1).length).toBeGreaterThan(50);
    expect(skip.filter(([, dst]) => dst === COA1).length).toBeGreaterThan(1000);
    expect(skip.filter(([src]) => src === COA2).length).toBeGreaterThanOrEqual(4);
    // Never the applications' echoes or TCP in the clear, never the home address as an outer address on the visited link.
    expect(
      packets.filter(([, , proto, type]) => (proto === '1' && (type === '0' || type === '8')) || proto === '6'),
    ).toEqual([]);
    expect(packets.filter(([src, dst]) => src === HOME || dst === HOME)).toEqual([]);

    // The engine carried the applications' traffic both ways: their datagrams sealed from the TUN, the CH's replies
    // (End-End SA, the HA's tunnel peeled in the interface loop) written for the kernel. JavaScript saw the first
    // packet of each key, registrations and discovery: under 1 % of the packets.
    const s = await daemonStatus<Status>(fx.file('smn.sock'));
    expect(s.bindings).toMatchObject({ registration: 'registered', place: 'visiting', site: 'site2', careOf: COA2 });
    // The blob alone is BLOB_BYTES / MSS (~1,160 inside the tunnel) segments toward the SMN; its ACKs come on top.
    expect(s.counters.fastPath, JSON.stringify(s.counters)).toBeGreaterThan(BLOB_BYTES / 1200);
    expect(s.counters.slowPath.total * 100, JSON.stringify(s.counters)).toBeLessThan(s.counters.fastPath);
    expect(s.counters.slowPath.reasons.selector ?? 0, JSON.stringify(s.counters)).toBe(0);

    // A crash leaves the rules (the TUN goes with the process); the next start replaces them, one of each.
    smn.child.kill('SIGKILL');
    await smn.exited;
    expect(rules(APP_RULE_PREF + 3)).toContain(`lookup ${APP_ROUTE_TABLE}`);
    // …and fail closed: with the TUN gone, the applications' traffic is unreachable, never sent by the main table.
    expect(ipIn(ns.smn, 'route', 'show', 'table', String(APP_ROUTE_TABLE)).trim()).toBe(
      'unreachable default metric 4000000000',
    );
    expect(() => execFileSync('ip', ['-n', ns.smn, 'route', 'get', CH], { stdio: 'pipe' })).toThrow(/No route to host/);
    // The restarted daemon attaches with its config's address again (back in site 1).
    ipIn(ns.sw, 'link', 'set', ns.smnPort, 'nomaster');
    ipIn(ns.sw, 'link', 'set', ns.smnPort, 'master', 'br1');
    ipIn(ns.smn, 'addr', 'flush', 'dev', 'eth0');
    ipIn(ns.smn, 'addr', 'add', `${COA1}/16`, 'dev', 'eth0');
    ipIn(ns.smn, 'route', 'replace', 'default', 'via', '10.1.0.1', 'dev', 'eth0');
    // It restores its replay floors: sgw0 may still seal with the Kp it used for COA1 before the crash, under the
    // floor; the SMN refuses that key (ICMP 40 code 0) and sgw0 takes a fresh one, or the replies never arrive.
    smn = startSmn();
    await waitFor(
      () => `the SMN to register again (output: ${smn.out()}; the other daemons: ${tails()})`,
      () => smn.out().includes('"event":"registration_registered"'),
      20_000,
    );
    for (let pref = APP_RULE_PREF; pref <= APP_RULE_PREF + 3; pref += 1) {
      if (pref === APP_RULE_PREF + 1) continue; // transport raw: no UDP transport rule
      expect(rules(pref).split('\n')).toHaveLength(1);
    }
    const ping3 = await inNs('smn', 'ping', ['-c', '3', '-i', '0.2', '-W', '2', CH]).catch(
      (err: { stdout: string }) => ({ stdout: err.stdout }),
    );
    expect(ping3.stdout).toMatch(/3 packets transmitted, [2-3] received/);

    // A socket bound to the care-of address talks to the visited network directly, in clear: its TCP replies reach it
    // by the interface's table (the role's input path handed the kernel nothing but ping).
    const local = spawn(
      'ip',
      ['netns', 'exec', ns.lan1, 'python3', '-u', '-m', 'http.server', '8080', '--bind', LAN1, '--directory', fx.dir],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.push(local);
    let localOut = '';
    local.stdout!.on('data', (c: Buffer) => (localOut += c.toString()));
    await waitFor("the visited network's server", () => localOut.includes('Serving HTTP'));
    const direct = await fetchFromSmn(`http://${LAN1}:8080/blob`, 15, '--interface', COA1);
    expect(direct.stdout, direct.stderr).toBe(`${BLOB_BYTES} 200`);

    smn.child.kill('SIGTERM');
    expect(await smn.exited).toBe(0);
    expect({ rules: ipIn(ns.smn, 'rule', 'show'), links: ipIn(ns.smn, '-br', 'link', 'show') }).toEqual(before);
    expect(ipIn(ns.smn, 'route', 'show', 'table', String(APP_ROUTE_TABLE)).trim()).toBe('');
  }, 180_000);
});
