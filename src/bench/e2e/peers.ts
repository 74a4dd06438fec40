// The comparison paths, each configured by the benchmark itself between gwA and gwB: plain kernel
// forwarding (the ceiling), wireguard-go, OpenVPN 2.6 (p2p TLS, DCO off) and strongSwan's charon
// with kernel-libipsec (its userspace ESP). Every tunnel device gets TUNNEL_MTU so a 1400-byte UDP
// payload crosses unfragmented — except strongSwan's, whose MTU libipsec fixes at 1400.
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { CommandError, runCommand, type ManagedProcess } from '../../net/netns.js';
import { PLAN, TUNNEL_MTU, clearGatewayRoutes, devName, type Topology } from './topology.js';
import { tail, waitFor, type ActivePath, type PathContext, type PathDriver } from './paths.js';

const START_TIMEOUT_MS = 20_000;

/** Writes a secret or config file readable by root only. */
function writePrivate(file: string, text: string): void {
  fs.writeFileSync(file, text, { mode: 0o600 });
}

/** A command's version line; some tools (openvpn --version) exit non-zero after printing it. */
async function versionOutput(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await runCommand(cmd, args, { timeoutMs: 5000 });
    return stdout + stderr;
  } catch (err) {
    if (err instanceof CommandError && err.exitCode !== null && err.stdout) return err.stdout;
    throw err;
  }
}

function versionFrom(text: string, pattern: RegExp, tool: string): string {
  const m = pattern.exec(text);
  if (!m) throw new Error(`${tool}: cannot read its version from '${tail(text, 1)}'`);
  return m[1];
}

async function linkExists(topo: Topology, ns: string, dev: string): Promise<boolean> {
  return (await topo.session.links(ns)).some((l) => l.ifname === dev);
}

/** Each gateway's view: its namespace, its outside address, the peer's, and the subnet behind the peer. */
function sides(topo: Topology) {
  return [
    {
      tag: 'a',
      ns: topo.gwA,
      local: PLAN.gwA.outside,
      remote: PLAN.gwB.outside,
      localNet: PLAN.client.net,
      remoteNet: PLAN.server.net,
      tunLocal: PLAN.tunnelA,
      tunRemote: PLAN.tunnelB,
    },
    {
      tag: 'b',
      ns: topo.gwB,
      local: PLAN.gwB.outside,
      remote: PLAN.gwA.outside,
      localNet: PLAN.server.net,
      remoteNet: PLAN.client.net,
      tunLocal: PLAN.tunnelB,
      tunRemote: PLAN.tunnelA,
    },
  ] as const;
}

/** Stops the daemons, removes their devices if they outlived them, and the gateways' routes. */
function teardownOf(
  topo: Topology,
  daemons: ManagedProcess[],
  devices: { ns: string; dev: string }[],
): () => Promise<void> {
  return async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    for (const { ns, dev } of devices) await topo.session.deleteLinkIfPresent(ns, dev);
    await clearGatewayRoutes(topo);
  };
}

/** Runs `setup`; if it throws, stops whatever it had started before passing the error on. */
async function guarded(
  daemons: ManagedProcess[],
  teardown: () => Promise<void>,
  setup: () => Promise<void>,
): Promise<ActivePath> {
  try {
    await setup();
  } catch (err) {
    await teardown().catch(() => undefined);
    throw err;
  }
  return { processes: daemons, teardown };
}

export const veth: PathDriver = {
  name: 'veth',
  mode: 'plain IPv4 forwarding through gwA and gwB (kernel), no encryption',
  async version() {
    return `Linux ${(await runCommand('uname', ['-r'])).stdout.trim()}`;
  },
  async setup({ topo }: PathContext) {
    await topo.session.replaceRoute(topo.gwA, { prefix: PLAN.server.net, via: PLAN.gwB.outside });
    await topo.session.replaceRoute(topo.gwB, { prefix: PLAN.client.net, via: PLAN.gwA.outside });
    return { processes: [], teardown: () => clearGatewayRoutes(topo) };
  },
};

/** base64 X25519 keys as `wg` wants them, made with node:crypto (no `wg genkey` round trip). */
function wireguardKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const priv = privateKey.export({ format: 'jwk' }).d;
  const pub = publicKey.export({ format: 'jwk' }).x;
  if (!priv || !pub) throw new Error('x25519 key export failed');
  return {
    privateKey: Buffer.from(priv, 'base64url').toString('base64'),
    publicKey: Buffer.from(pub, 'base64url').toString('base64'),
  };
}

const WG_PORT = 51820;

export const wireguardGo: PathDriver = {
  name: 'wireguard-go',
  mode: 'WireGuard (ChaCha20-Poly1305) in UDP, userspace TUN, configured with wg',
  async version() {
    return versionFrom(await versionOutput('wireguard-go', ['--version']), /wireguard-go v?(\S+)/, 'wireguard-go');
  },
  async setup({ topo, workdir }: PathContext) {
    const keys = { a: wireguardKeyPair(), b: wireguardKeyPair() };
    const daemons: ManagedProcess[] = [];
    const devices = sides(topo).map((s) => ({ ns: s.ns, dev: devName(topo.session, `wg${s.tag}`) }));
    const teardown = teardownOf(topo, daemons, devices);
    return guarded(daemons, teardown, async () => {
      for (const [i, side] of sides(topo).entries()) {
        const dev = devices[i].dev;
        const own = keys[side.tag];
        const peer = keys[side.tag === 'a' ? 'b' : 'a'];
        const keyFile = path.join(workdir, `wg-${side.tag}.key`);
        writePrivate(keyFile, `${own.privateKey}\n`);
        const daemon = topo.session.spawn(side.ns, `wireguard-go (gw${side.tag.toUpperCase()})`, 'wireguard-go', [
          '-f',
          dev,
        ]);
        daemons.push(daemon);
        await waitFor(`wireguard-go to create ${dev}`, () => linkExists(topo, side.ns, dev), START_TIMEOUT_MS, [
          daemon,
        ]);
        // The UAPI socket appears just after the device.
        await waitFor(
          `wireguard-go's control socket for ${dev}`,
          () => fs.existsSync(`/var/run/wireguard/${dev}.sock`),
          START_TIMEOUT_MS,
          [daemon],
        );
        await topo.session.exec(side.ns, 'wg', [
          'set',
          dev,
          'private-key',
          keyFile,
          'listen-port',
          String(WG_PORT),
          'peer',
          peer.publicKey,
          'endpoint',
          `${side.remote}:${WG_PORT}`,
          'allowed-ips',
          side.remoteNet,
        ]);
        await topo.session.ip(side.ns, ['link', 'set', dev, 'mtu', String(TUNNEL_MTU), 'up']);
        await topo.session.replaceRoute(side.ns, { prefix: side.remoteNet, dev });
      }
    });
  },
};

const OPENVPN_PORT = 1194;

export const openvpn: PathDriver = {
  name: 'openvpn',
  mode:
    'OpenVPN p2p over UDP, TLS with self-signed certs pinned by --peer-fingerprint, AES-128-GCM data channel, ' +
    'DCO off',
  async version() {
    return versionFrom(await versionOutput('openvpn', ['--version']), /OpenVPN (\S+)/, 'openvpn');
  },
  async setup({ topo, workdir }: PathContext) {
    const daemons: ManagedProcess[] = [];
    const devices = sides(topo).map((s) => ({ ns: s.ns, dev: devName(topo.session, `ov${s.tag}`) }));
    const teardown = teardownOf(topo, daemons, devices);
    return guarded(daemons, teardown, async () => {
      const fingerprint: Record<string, string> = {};
      for (const side of sides(topo)) {
        const key = path.join(workdir, `ovpn-${side.tag}.key`);
        const cert = path.join(workdir, `ovpn-${side.tag}.crt`);
        await runCommand('openssl', [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-keyout',
          key,
          '-out',
          cert,
          '-days',
          '1',
          '-subj',
          `/CN=mipsec-bench-gw${side.tag}`,
        ]);
        fs.chmodSync(key, 0o600);
        fingerprint[side.tag] = new X509Certificate(fs.readFileSync(cert)).fingerprint256;
      }
      for (const [i, side] of sides(topo).entries()) {
        const other = side.tag === 'a' ? 'b' : 'a';
        const daemon = topo.session.spawn(side.ns, `openvpn (gw${side.tag.toUpperCase()})`, 'openvpn', [
          '--dev',
          devices[i].dev,
          '--dev-type',
          'tun',
          '--tun-mtu',
          String(TUNNEL_MTU),
          '--proto',
          'udp',
          '--local',
          side.local,
          '--remote',
          side.remote,
          '--port',
          String(OPENVPN_PORT),
          '--ifconfig',
          side.tunLocal,
          side.tunRemote,
          side.tag === 'a' ? '--tls-server' : '--tls-client',
          '--cert',
          path.join(workdir, `ovpn-${side.tag}.crt`),
          '--key',
          path.join(workdir, `ovpn-${side.tag}.key`),
          '--peer-fingerprint',
          fingerprint[other],
          '--dh',
          'none',
          '--data-ciphers',
          'AES-128-GCM',
          '--disable-dco',
          '--verb',
          '3',
        ]);
        daemons.push(daemon);
      }
      for (const daemon of daemons) {
        await waitFor(
          `${daemon.label} to complete its TLS handshake`,
          () => daemon.recentOutput().includes('Initialization Sequence Completed'),
          START_TIMEOUT_MS,
          daemons,
        );
      }
      for (const [i, side] of sides(topo).entries()) {
        await topo.session.replaceRoute(side.ns, { prefix: side.remoteNet, dev: devices[i].dev });
      }
    });
  },
};

const CHARON_CANDIDATES = [
  '/usr/lib/ipsec/charon',
  '/usr/libexec/ipsec/charon',
  '/usr/lib/strongswan/charon',
  '/usr/libexec/strongswan/charon',
];
/** kernel-libipsec's TUN device and the routing table charon installs its routes in. */
const LIBIPSEC_DEV = 'ipsec0';
const CHARON_ROUTE_TABLE = 220;

function charonPath(): string {
  const found = CHARON_CANDIDATES.find((p) => fs.existsSync(p));
  if (!found)
    throw new Error(
      `charon not found in ${CHARON_CANDIDATES.join(', ')}: apt-get install ` +
        `strongswan-charon libcharon-extra-plugins strongswan-swanctl`,
    );
  return found;
}

/** strongswan.conf for one gateway: only the plugins needed, kernel-libipsec for ESP, log to stderr. */
function strongswanConf(viciSocket: string): string {
  return (
    `charon {
  load_modular = no
  load = random nonce aes sha1 sha2 hmac gcm openssl pem pkcs1 x509 pubkey kdf kernel-libipsec ` +
    `kernel-netlink socket-default vici
  install_virtual_ip = no
  routing_table = ${CHARON_ROUTE_TABLE}
  plugins {
    vici {
      socket = unix://${viciSocket}
    }
  }
  filelog {
    stderr {
      default = 1
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
}
`
  );
}

function swanctlConf(side: ReturnType<typeof sides>[number], psk: string): string {
  return `connections {
  bench {
    version = 2
    local_addrs = ${side.local}
    remote_addrs = ${side.remote}
    encap = yes
    proposals = aes128gcm16-prfsha256-x25519
    local {
      auth = psk
      id = ${side.local}
    }
    remote {
      auth = psk
      id = ${side.remote}
    }
    children {
      net {
        local_ts = ${side.localNet}
        remote_ts = ${side.remoteNet}
        esp_proposals = aes128gcm16
        mode = tunnel
      }
    }
  }
}
secrets {
  ike-bench {
    id-a = ${PLAN.gwA.outside}
    id-b = ${PLAN.gwB.outside}
    secret = 0x${psk}
  }
}
`;
}

export const strongswan: PathDriver = {
  name: 'strongswan',
  mode:
    `strongSwan charon + kernel-libipsec (userspace ESP), IKEv2 PSK, ESP AES-128-GCM in UDP 4500, tunnel mode; ` +
    `${LIBIPSEC_DEV} MTU stays 1400 (libipsec's fixed read buffer), ` +
    `so a ${1400 + 28}-byte UDP datagram goes as 2 fragments`,
  async version() {
    return versionFrom(await versionOutput(charonPath(), ['--version']), /strongSwan (\S+)/, 'charon');
  },
  async setup({ topo, workdir }: PathContext) {
    const charon = charonPath();
    const psk = randomBytes(32).toString('hex');
    const daemons: ManagedProcess[] = [];
    const devices = sides(topo).map((s) => ({ ns: s.ns, dev: LIBIPSEC_DEV }));
    const baseTeardown = teardownOf(topo, daemons, devices);
    const teardown = async (): Promise<void> => {
      await baseTeardown();
      // charon removes these itself on SIGTERM; this only matters if it was killed.
      for (const side of sides(topo)) {
        await topo.session.ip(side.ns, ['route', 'flush', 'table', String(CHARON_ROUTE_TABLE)]).catch(() => undefined);
      }
    };
    return guarded(daemons, teardown, async () => {
      const vici: Record<string, string> = {};
      for (const side of sides(topo)) {
        const conf = path.join(workdir, `strongswan-${side.tag}.conf`);
        const swanctl = path.join(workdir, `swanctl-${side.tag}.conf`);
        vici[side.tag] = path.join(workdir, `charon-${side.tag}.vici`);
        writePrivate(conf, strongswanConf(vici[side.tag]));
        writePrivate(swanctl, swanctlConf(side, psk));
        // charon insists on one /run/charon.pid per host: give each its own /run in the
        // private mount namespace `ip netns exec` already runs it in.
        const daemon = topo.session.spawn(
          side.ns,
          `charon (gw${side.tag.toUpperCase()})`,
          'sh',
          ['-c', `mount -t tmpfs tmpfs /run && exec ${charon}`],
          {
            env: { ...process.env, STRONGSWAN_CONF: conf },
          },
        );
        daemons.push(daemon);
        await waitFor(`charon's vici socket ${vici[side.tag]}`, () => fs.existsSync(vici[side.tag]), START_TIMEOUT_MS, [
          daemon,
        ]);
        await topo.session.exec(side.ns, 'swanctl', [
          '--load-all',
          '--file',
          swanctl,
          '--uri',
          `unix://${vici[side.tag]}`,
        ]);
      }
      await topo.session.exec(
        topo.gwA,
        'swanctl',
        ['--initiate', '--child', 'net', '--timeout', '15', '--uri', `unix://${vici.a}`],
        { timeoutMs: 20_000 },
      );
      for (const side of sides(topo)) {
        // ipsec0 keeps libipsec's MTU of 1400: it reads the TUN with a buffer of that size, so a larger
        // MTU loses every longer packet.
        await waitFor(
          `kernel-libipsec's ${LIBIPSEC_DEV} in ${side.ns}`,
          () => linkExists(topo, side.ns, LIBIPSEC_DEV),
          START_TIMEOUT_MS,
          daemons,
        );
      }
    });
  },
};
