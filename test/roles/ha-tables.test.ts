// The home agent compiles its bindings into its engine's tables (src/roles/ha/tables.ts): one `tunnel` policy per
// registered home address on each interface table of its host (and, with any binding, one `detunnel` for reverse
// tunnels to its address), following registration, a change of care-of address, deregistration, expiry, a restart
// from its store and stop. What the tables give the engine alone is what the HA's JS path sends (TTL − 1, IP-in-IP
// from the HA to the care-of address; a reverse tunnel's datagram as it came out); nothing from the care-of address
// goes back into the tunnel, nothing is opened from anywhere else; registrations stay uncovered, so punted to JS.
process.env.MIPSEC_NATIVE = '1';
import { afterEach, describe, expect, it } from 'vitest';
import { Batch, createEngine, Op, Reason, Verdict, type Engine } from '../../src/engine/index.js';
import type { HostDataPath, MemoryHost } from '../../src/net/index.js';
import { compileHaPolicies } from '../../src/roles/ha/tables.js';
import type { BindingRecord, BindingStore } from '../../src/roles/ha/journal.js';
import { ipToU32 } from '../../src/wire/addr.js';
import { writeIpipHeader } from '../../src/wire/ipip.js';
import { IPV4_HEADER_BYTES, IpProto, buildIpv4, parseIpv4 } from '../../src/wire/ipv4.js';
import { encodeRequest, MIP_PORT, ntpFromUnixMs, RequestFlag } from '../../src/wire/mobileip.js';
import { buildUdpDatagram } from '../../src/wire/udp.js';
import {
  buildNetwork,
  CARE_OF,
  CH0_ADDRESS,
  HA_ADDRESS,
  HOME_ADDRESS,
  MN_AUTH,
  moveToSite1,
} from '../mobileip/topology.js';

const TABLE = 4;
const SECOND_CARE_OF = '10.1.0.101';
const opened: Engine[] = [];
afterEach(() => {
  for (const e of opened.splice(0)) e.close();
});

/** A data path on the HA's memory host: its one interface reads with TABLE (as a Linux host's loop would). */
function giveDataPath(host: MemoryHost): void {
  const dataPath: HostDataPath = { tableOf: () => TABLE, onEnginePunt: () => () => {}, inject: () => false };
  Object.defineProperty(host, 'dataPath', { value: dataPath });
}

/** What one binding compiles to: its tunnel, and the HA address's detunnel. */
function bindingPolicies(careOf: string) {
  return [
    { prefix: `${HOME_ADDRESS}/32`, table: TABLE, action: 'tunnel', sa: 0, tunnel: { src: HA_ADDRESS, dst: careOf } },
    { prefix: `${HA_ADDRESS}/32`, table: TABLE, proto: IpProto.IPIP, action: 'detunnel', sa: 0 },
  ];
}

/** OUTBOUND on the HA's interface table: what its I/O loop does with the datagram without JS. */
function byTable(engine: Engine, datagram: Uint8Array) {
  const batch = new Batch({ capacity: 1 });
  batch.push(Op.OUTBOUND, datagram, TABLE);
  engine.process(batch);
  const r = batch.result(0);
  return { verdict: r.verdict, reason: r.reason, nexthop: r.nexthop, packet: r.packet.slice() };
}

function fromCh(ttl = 40, src = CH0_ADDRESS): Uint8Array {
  return buildIpv4(
    { src: ipToU32(src), dst: ipToU32(HOME_ADDRESS), protocol: IpProto.UDP, ttl, identification: 0x4242 },
    new Uint8Array(32).fill(7),
  );
}

describe.each(['native', 'ts'] as const)('the HA compiles its bindings into its tables (%s engine)', (impl) => {
  function world(store?: BindingStore, startMs = 0) {
    const engine = createEngine(impl);
    opened.push(engine);
    const w = buildNetwork({ maxLifetime: 600, engine, store }, startMs, giveDataPath);
    moveToSite1(w.mn);
    w.mn.addLocalAddress(HOME_ADDRESS);
    const register = (fields: { lifetime?: number; careOf?: string } = {}) => {
      const request = encodeRequest(
        {
          flags: RequestFlag.D,
          lifetime: fields.lifetime ?? 300,
          homeAddress: ipToU32(HOME_ADDRESS),
          homeAgent: ipToU32(HA_ADDRESS),
          careOf: ipToU32(fields.careOf ?? CARE_OF),
          identification: ntpFromUnixMs(w.net.clock.now()),
        },
        MN_AUTH,
      );
      w.mn.send(
        buildUdpDatagram(
          { src: ipToU32(CARE_OF), dst: ipToU32(HA_ADDRESS), srcPort: 5000, dstPort: MIP_PORT },
          request,
        ),
      );
      w.net.runFor(1000);
    };
    return { ...w, engine, register };
  }

  it('register → one tunnel policy; the engine then sends exactly what the JS path sends, to the care-of address', () => {
    const { ha, engine, register, net, haHost } = world();
    expect(ha.compiledPolicies()).toEqual([]);
    expect(byTable(engine, fromCh()).reason, 'no binding: punted to JS').toBe(Reason.no_policy);
    register();
    expect(ha.compiledPolicies()).toEqual(bindingPolicies(CARE_OF));
    const r = byTable(engine, fromCh());
    expect([r.verdict, r.nexthop]).toEqual([Verdict.FORWARD, ipToU32(CARE_OF)]);
    // The JS path on the same datagram (an input hook on a host without a data path sees it the same way).
    const sent: Uint8Array[] = [];
    const stop = haHost.addHook('output', (p) => (sent.push(p.slice()), 'pass'));
    haHost.inject(fromCh());
    net.runFor(10);
    stop();
    const tunnelled = sent.find((p) => p[9] === IpProto.IPIP);
    expect(tunnelled && Buffer.from(tunnelled).toString('hex')).toBe(Buffer.from(r.packet).toString('hex'));
    // And it is IP-in-IP from the HA to the care-of address around the datagram with TTL − 1.
    const expected = fromCh(39);
    const ipip = new Uint8Array(IPV4_HEADER_BYTES + expected.length);
    ipip.set(expected, IPV4_HEADER_BYTES);
    const inner = parseIpv4(expected, 0);
    if (!inner.ok) throw new Error('bad test datagram');
    writeIpipHeader(ipip, 0, inner.header, ipToU32(HA_ADDRESS), ipToU32(CARE_OF));
    expect(Buffer.from(r.packet).toString('hex')).toBe(Buffer.from(ipip).toString('hex'));
  });

  it('follows a move to another care-of address, deregistration and expiry', () => {
    const { ha, engine, register, net } = world();
    register();
    register({ careOf: SECOND_CARE_OF });
    expect(ha.compiledPolicies()).toEqual(bindingPolicies(SECOND_CARE_OF));
    expect(byTable(engine, fromCh()).nexthop).toBe(ipToU32(SECOND_CARE_OF));
    register({ lifetime: 0 });
    expect(ha.bindings()).toEqual([]);
    expect(ha.compiledPolicies()).toEqual([]);
    expect(byTable(engine, fromCh()).reason).toBe(Reason.no_policy);
    register({ lifetime: 5 });
    expect(ha.compiledPolicies()).toEqual(bindingPolicies(CARE_OF));
    net.runFor(5000);
    expect(ha.bindings()).toEqual([]);
    expect(ha.compiledPolicies(), 'expired').toEqual([]);
    expect(byTable(engine, fromCh()).reason).toBe(Reason.no_policy);
  });

  it("never tunnels back what comes from the care-of address; TTL <= 1 and the HA's registrations go to JS", () => {
    const { engine, register } = world();
    register();
    expect(byTable(engine, fromCh(40, CARE_OF))).toMatchObject({ verdict: Verdict.DROP, reason: Reason.loop });
    expect(byTable(engine, fromCh(1))).toMatchObject({ verdict: Verdict.PUNT, reason: Reason.ttl_exceeded });
    const registration = buildUdpDatagram(
      { src: ipToU32(CARE_OF), dst: ipToU32(HA_ADDRESS), srcPort: 5000, dstPort: MIP_PORT },
      new Uint8Array(28),
    );
    expect(byTable(engine, registration).reason, 'a registration: the JS path decides').toBe(Reason.no_policy);
  });

  it('opens the reverse tunnel from the care-of address exactly as the JS path did; from elsewhere, nothing', () => {
    const { engine, register, net, haHost } = world();
    const fromMn = buildIpv4(
      { src: ipToU32(HOME_ADDRESS), dst: ipToU32(CH0_ADDRESS), protocol: IpProto.UDP, ttl: 30, identification: 9 },
      new Uint8Array(40).fill(5),
    );
    const reverse = (outerSrc: string) =>
      buildIpv4(
        { src: ipToU32(outerSrc), dst: ipToU32(HA_ADDRESS), protocol: IpProto.IPIP, ttl: 64, identification: 1 },
        fromMn,
      );
    expect(byTable(engine, reverse(CARE_OF)).reason, 'no binding yet: the JS path decides').toBe(Reason.no_policy);
    register();
    const r = byTable(engine, reverse(CARE_OF));
    expect([r.verdict, r.nexthop]).toEqual([Verdict.FORWARD, ipToU32(CH0_ADDRESS)]);
    // The JS path on the same packet sends the same bytes.
    const sent: Uint8Array[] = [];
    const stop = haHost.addHook('output', (p) => (sent.push(p.slice()), 'pass'));
    haHost.inject(reverse(CARE_OF));
    net.runFor(10);
    stop();
    expect(sent.map((p) => Buffer.from(p).toString('hex'))).toContain(Buffer.from(r.packet).toString('hex'));
    expect(Buffer.from(r.packet).toString('hex')).toBe(Buffer.from(fromMn).toString('hex'));
    // A spoofed outer source (the home address's datagram from anywhere but its care-of address) is dropped.
    expect(byTable(engine, reverse(SECOND_CARE_OF))).toMatchObject({
      verdict: Verdict.DROP,
      reason: Reason.untrusted_tunnel,
    });
    register({ lifetime: 0 });
    expect(byTable(engine, reverse(CARE_OF)).reason, 'deregistered: nothing compiled').toBe(Reason.no_policy);
  });

  it('a restart restores the policies with the bindings; close() removes them from the (shared) engine', () => {
    const records = new Map<string, BindingRecord>();
    const store: BindingStore = {
      load: () => [...records.values()],
      write: (r) => void records.set(r.homeAddress, r),
      close: () => {},
    };
    const first = world(store);
    first.register();
    first.ha.close();
    expect(byTable(first.engine, fromCh()).reason, 'closed: nothing tunnelled by the tables').toBe(Reason.no_policy);
    const again = world(store, first.net.clock.now());
    expect(again.ha.restored.bindings).toBe(1);
    expect(again.ha.compiledPolicies()).toEqual(bindingPolicies(CARE_OF));
    expect(byTable(again.engine, fromCh()).nexthop).toBe(ipToU32(CARE_OF));
  });

  it('without a data path nothing is compiled (a memory host: every packet takes the JS hooks)', () => {
    const engine = createEngine(impl);
    opened.push(engine);
    const w = buildNetwork({ engine });
    expect(w.ha.compiledPolicies()).toEqual([]);
  });
});

describe('compileHaPolicies', () => {
  it('one /32 per binding and interface table, sorted; never for the HA address itself', () => {
    const policies = compileHaPolicies({
      interfaceTables: [2, 1, 2],
      address: ipToU32(HA_ADDRESS),
      bindings: new Map([
        [ipToU32('10.0.0.101'), ipToU32('10.1.0.5')],
        [ipToU32(HOME_ADDRESS), ipToU32(CARE_OF)],
        [ipToU32(HA_ADDRESS), ipToU32(CARE_OF)],
      ]),
    });
    expect(policies.map((p) => `${p.table} ${p.prefix} ${p.action} ${p.tunnel?.dst ?? `proto ${p.proto}`}`)).toEqual([
      `1 ${HOME_ADDRESS}/32 tunnel ${CARE_OF}`,
      '1 10.0.0.101/32 tunnel 10.1.0.5',
      `1 ${HA_ADDRESS}/32 detunnel proto 4`,
      `2 ${HOME_ADDRESS}/32 tunnel ${CARE_OF}`,
      '2 10.0.0.101/32 tunnel 10.1.0.5',
      `2 ${HA_ADDRESS}/32 detunnel proto 4`,
    ]);
  });

  it('nothing without a binding (IP-in-IP to the HA then reaches the JS path, which refuses it)', () => {
    const only = new Map([[ipToU32(HA_ADDRESS), ipToU32(CARE_OF)]]);
    expect(compileHaPolicies({ interfaceTables: [1], address: ipToU32(HA_ADDRESS), bindings: only })).toEqual([]);
    expect(compileHaPolicies({ interfaceTables: [1], address: ipToU32(HA_ADDRESS), bindings: new Map() })).toEqual([]);
  });
});
