// An SGW's manually keyed SPI-mode SAs (config `manualSas`) at work on a Host, on an engine of their
// own (their SA ids, policies and routes do not mix with the SKIP tables): datagrams from inside to a
// remote prefix are sealed (OUTBOUND), ESP to the outside address is opened (INBOUND); everything
// else passes on to the hooks after this one (the SKIP SGW) or is forwarded as usual.
import type { ManualKeyPaths, ManualSaEntry } from '../../config/manual-sa.js';
import { manualSaTables } from '../../config/manual-sa.js';
import { Op, Verdict, reasonName, type Engine } from '../../engine/types.js';
import type { Clock, Host } from '../../net/types.js';
import { TickPipeline } from '../common/pipeline.js';
import type { KeyLog } from '../common/keylog.js';
import { ipToU32, parsePrefix, prefixContains } from '../../wire/addr.js';
import { IpProto, parseIpv4 } from '../../wire/ipv4.js';

export interface ManualSaSetup {
  host: Host;
  clock: Clock;
  /** A fresh engine; the gateway closes it. */
  engine: Engine;
  entries: readonly ManualSaEntry[];
  keys: readonly ManualKeyPaths[];
  inside: { name: string; address: string };
  outside: { name: string; address: string };
  keyLog?: KeyLog;
}

export class ManualSpiGateway {
  private readonly pipeline: TickPipeline<'out' | 'in'>;
  private readonly removeHook: () => void;
  private readonly engine: Engine;
  readonly drops = new Map<string, number>();

  constructor(s: ManualSaSetup) {
    this.engine = s.engine;
    const tables = manualSaTables(s.entries, s.keys, s.outside.address);
    try {
      s.engine.setLocalAddresses([s.inside.address, s.outside.address]);
      for (const sa of tables.sas) {
        s.keyLog?.record(sa);
        s.engine.installSa(sa);
      }
      s.engine.setPolicies(tables.policies);
      s.engine.setRoutes(tables.routes);
    } catch (err) {
      s.engine.close();
      throw err;
    } finally {
      for (const sa of tables.sas) sa.esp!.key.fill(0);
    }
    const remotes = s.entries.map((e) => parsePrefix(e.remote));
    const outsideU32 = ipToU32(s.outside.address);
    this.pipeline = new TickPipeline(s.clock, s.engine, (outcomes) => {
      for (const o of outcomes) {
        if (o.verdict === Verdict.FORWARD || o.verdict === Verdict.DELIVER) s.host.send(o.packet, { bypassHooks: true });
        else this.drops.set(reasonName[o.reason], (this.drops.get(reasonName[o.reason]) ?? 0) + 1);
      }
      return [];
    });
    this.removeHook = s.host.addHook('input', (packet, ctx) => {
      const check = parseIpv4(packet, 0);
      if (!check.ok) return 'pass';
      const { dst, protocol } = check.header;
      if (ctx.iface === s.inside.name && remotes.some((p) => prefixContains(p, dst))) this.pipeline.push({ op: Op.OUTBOUND, packet: packet.slice(), tag: 'out' });
      else if (ctx.iface === s.outside.name && protocol === IpProto.ESP && dst === outsideU32) this.pipeline.push({ op: Op.INBOUND, packet: packet.slice(), tag: 'in' });
      else return 'pass';
      return 'consumed';
    });
  }

  /** Drops by engine reason, as role counters. */
  counters(): Record<string, number> {
    return Object.fromEntries([...this.drops].map(([reason, n]) => [`manual_drop_${reason}`, n]));
  }

  /** Removes the hook, then frees the SAs (the engine zeroes their keys). */
  close(): void {
    this.removeHook();
    this.engine.close();
  }
}
