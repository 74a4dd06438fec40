// Mobile IP registrations from many mobile nodes over a real UDP socket, for the soak (steady re-registrations
// with a handover every minute) and the HA crash test (a storm of 1,000). Each registration is retransmitted
// until the HA accepts it, so a HA that dies and comes back is waited for. Run as a script inside the client's
// namespace: `node registrar.js '<RegistrarSpec JSON>'`; it reports on stdout, one line per event.
import dgram from 'node:dgram';
import { ipToU32, u32ToIp } from '../../wire/addr.js';
import {
  decodeReply,
  encodeRequest,
  MIP_PORT,
  ntpFromUnixMs,
  ReplyCode,
  RequestFlag,
  verifyMnHaAuth,
  type MnHaKey,
} from '../../wire/mobileip.js';

export interface RegistrarSpec {
  ha: string;
  nodes: { home: string; spi: number; keyHex: string }[];
  /** Care-of addresses are taken in order from here (one more for every registration that moves a node). */
  careOfBase: string;
  /** storm: `count` registrations back to back, round robin, each to a new care-of address; steady: for `seconds`. */
  mode: 'storm' | 'steady';
  count?: number;
  seconds?: number;
  /** steady: each node re-registers this often, and moves to a new care-of address every `handoverMs`. */
  intervalMs?: number;
  handoverMs?: number;
  lifetime?: number;
}

const RETRANSMIT_MS = 200;
const GIVE_UP_MS = 30_000;
const REPORT_MS = 10_000;

interface Node {
  home: number;
  auth: MnHaKey;
  lastId: bigint;
  careOf: number;
}

export class Registrar {
  private readonly socket = dgram.createSocket('udp4');
  private readonly waiting = new Map<number, (reply: Uint8Array) => void>();
  private nextCareOf: number;
  acks = 0;
  retransmits = 0;

  constructor(private readonly spec: RegistrarSpec) {
    this.nextCareOf = ipToU32(spec.careOfBase);
    this.socket.on('message', (bytes) => {
      const reply = decodeReply(bytes);
      if (reply.ok) this.waiting.get(reply.message.homeAddress)?.(new Uint8Array(bytes));
    });
  }

  async open(): Promise<Node[]> {
    await new Promise<void>((resolve) => this.socket.bind(0, resolve));
    return this.spec.nodes.map((n) => ({
      home: ipToU32(n.home),
      auth: { spi: n.spi, key: Buffer.from(n.keyHex, 'hex') },
      lastId: 0n,
      careOf: 0,
    }));
  }

  close(): void {
    this.socket.close();
  }

  newCareOf(node: Node): void {
    node.careOf = this.nextCareOf++ >>> 0;
  }

  /**
   * Registers `node` at its care-of address; resolves once the HA accepted it (a 133 makes it try a new
   * identification).
   */
  register(node: Node): Promise<void> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const send = (fresh: boolean) => {
        if (Date.now() - started > GIVE_UP_MS) {
          this.waiting.delete(node.home);
          reject(new Error(`no acceptance for ${u32ToIp(node.home)} in ${GIVE_UP_MS} ms`));
          return;
        }
        if (fresh) node.lastId = [ntpFromUnixMs(Date.now()), node.lastId + 1n].reduce((a, b) => (a > b ? a : b));
        else this.retransmits++;
        const request = {
          flags: RequestFlag.D,
          lifetime: this.spec.lifetime ?? 1800,
          homeAddress: node.home,
          homeAgent: ipToU32(this.spec.ha),
          careOf: node.careOf,
          identification: node.lastId,
        };
        this.socket.send(encodeRequest(request, node.auth), MIP_PORT, this.spec.ha);
        clearTimeout(timer);
        // A request the HA wrote but could not answer before it died is refused as a replay (133) when
        // sent again: the next attempt carries a new identification.
        timer = setTimeout(() => send(false), RETRANSMIT_MS);
      };
      this.waiting.set(node.home, (bytes) => {
        const reply = decodeReply(bytes);
        if (!reply.ok || !verifyMnHaAuth(bytes, reply.mnHaAuth, node.auth).ok) return;
        if (reply.message.code === ReplyCode.ACCEPTED && reply.message.identification === node.lastId) {
          clearTimeout(timer);
          this.waiting.delete(node.home);
          this.acks++;
          resolve();
        } else if (reply.message.code === ReplyCode.ID_MISMATCH) {
          send(true);
        }
      });
      send(true);
    });
  }
}

/** `count` registrations back to back; `ack <i>` after each, then the last care-of of every node. */
async function storm(r: Registrar, nodes: Node[], count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const node = nodes[i % nodes.length];
    r.newCareOf(node);
    await r.register(node);
    process.stdout.write(`ack ${i}\n`);
  }
  process.stdout.write(
    `acked ${JSON.stringify(Object.fromEntries(nodes.map((n) => [u32ToIp(n.home), u32ToIp(n.careOf)])))}\n`,
  );
}

/** Every node re-registers every intervalMs (staggered) and moves every handoverMs; `stats` lines every 10 s. */
async function steady(r: Registrar, nodes: Node[], spec: RegistrarSpec): Promise<void> {
  const end = Date.now() + (spec.seconds ?? 60) * 1000;
  const interval = spec.intervalMs ?? 5000;
  const report = setInterval(
    () => process.stdout.write(`stats acks=${r.acks} retransmits=${r.retransmits}\n`),
    REPORT_MS,
  );
  await Promise.all(
    nodes.map(async (node, i) => {
      await new Promise((res) => setTimeout(res, (interval * i) / nodes.length));
      let movedAt = 0;
      while (Date.now() < end) {
        if (Date.now() - movedAt >= (spec.handoverMs ?? 60_000)) {
          r.newCareOf(node);
          movedAt = Date.now();
        }
        await r.register(node);
        await new Promise((res) => setTimeout(res, interval));
      }
    }),
  );
  clearInterval(report);
  process.stdout.write(`stats acks=${r.acks} retransmits=${r.retransmits}\ndone\n`);
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as RegistrarSpec;
  const r = new Registrar(spec);
  const nodes = await r.open();
  try {
    if (spec.mode === 'storm') await storm(r, nodes, spec.count ?? 1000);
    else await steady(r, nodes, spec);
  } finally {
    r.close();
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((err: Error) => {
    process.stderr.write(`registrar: ${err.message}\n`);
    process.exit(1);
  });
}
