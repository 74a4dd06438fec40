// check-config: the Figure 6 examples pass; each bad config gets its exact message.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { checkFiles, loadNode } from '../../src/config/load.js';
import { DEFAULT_POLICY } from '../../src/config/node.js';

const EXAMPLES = 'examples/figure6';
const FILES = ['network.yaml', 'sgw0.yaml', 'sgw1.yaml', 'sgw2.yaml', 'ha.yaml', 'smn.yaml'];

type Doc = Record<string, any>;
const example = (file: string): Doc => parse(readFileSync(join(EXAMPLES, file), 'utf8'));

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mipsec-config-'));
  for (const f of FILES) writeFileSync(join(dir, f), readFileSync(join(EXAMPLES, f)));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the Figure 6 examples', () => {
  it('all pass', async () => {
    const reports = await checkFiles(FILES.map((f) => join(EXAMPLES, f)));
    expect(reports.map((r) => [r.file, r.errors])).toEqual(FILES.map((f) => [join(EXAMPLES, f), []]));
    expect(reports[0].summary).toBe('network-map figure6: 3 sites, 3 SGWs (Border: sgw0, sgw1, sgw2), 1 HA, 4 hosts');
  });

  it('warn about identity files not made yet, with the command that makes each', async () => {
    const fresh = mkdtempSync(join(tmpdir(), 'mipsec-fresh-'));
    try {
      for (const f of FILES) writeFileSync(join(fresh, f), readFileSync(join(EXAMPLES, f)));
      const at = relative('.', fresh);
      const reports = await checkFiles(FILES.map((f) => join(at, f)));
      expect(reports[4].warnings).toEqual([]); // the HA has no identity
      expect(reports[1].warnings).toEqual([
        `${at}/sgw0.yaml: warning: identity.key: keys/sgw0.key does not exist yet; create it with: mkdir -p ${at}/keys && mipsec keygen --out ${at}/keys/sgw0.key`,
        `${at}/sgw0.yaml: warning: identity.cert: keys/sgw0.crt does not exist yet; create it with: mkdir -p ${at}/keys && mipsec cert issue --ca ${at}/ca --name sgw:198.18.0.1 --pub ${at}/keys/sgw0.key.pub --out ${at}/keys/sgw0.crt`,
        `${at}/sgw0.yaml: warning: identity.ca: ca/ca.crt does not exist yet; create it with: mipsec ca init --out ${at}/ca`,
      ]);
      expect(reports[5].warnings[1]).toBe(
        `${at}/smn.yaml: warning: identity.cert: keys/smn.crt does not exist yet; create it with: mkdir -p ${at}/keys && mipsec cert issue --ca ${at}/ca --name smn:10.0.0.100 --pub ${at}/keys/smn.key.pub --out ${at}/keys/smn.crt`,
      );
    } finally {
      rmSync(fresh, { recursive: true, force: true });
    }
  });

  it('load as typed node configs with policy defaults filled in', async () => {
    const loaded = await loadNode(join(EXAMPLES, 'ha.yaml'));
    expect(loaded.ok).toBe(true);
    if (!loaded.ok) return;
    expect(loaded.node.policy).toEqual(DEFAULT_POLICY);
    expect(loaded.node.ha?.serves).toEqual(['10.0.0.100']);
    expect(loaded.map.homeAgent('ha')?.sgw.name).toBe('sgw0');
  });

  it('warn nothing once the identity files exist', async () => {
    mkdirSync(join(dir, 'keys'), { recursive: true });
    mkdirSync(join(dir, 'ca'), { recursive: true });
    for (const f of ['keys/sgw1.key', 'keys/sgw1.crt', 'ca/ca.crt']) writeFileSync(join(dir, f), 'x');
    const [report] = await checkFiles([join(dir, 'sgw1.yaml')]);
    expect(report).toMatchObject({ errors: [], warnings: [], summary: 'node sgw1, role sgw' });
  });
});

interface BadCase {
  what: string;
  file: string;
  /** A change to the example file, or the file's whole text. */
  change: ((doc: Doc) => void) | string;
  message: string;
}

const sgwAt = (doc: Doc, name: string) => doc.sgws.find((s: Doc) => s.name === name);
/** A valid manual SA for sgw1 (its key files need not exist for these checks). */
const manualSa = (): Doc => ({
  name: 'to-sgw2',
  peer: '198.18.2.1',
  local: '10.1.0.0/16',
  remote: '10.2.0.0/16',
  suite: 'aes128gcm',
  spiOut: 4097,
  spiIn: 8194,
  keyOut: 'keys/out.key',
  keyIn: 'keys/in.key',
});
const withManualSa = (doc: Doc, change: (sa: Doc) => void) => {
  const sa = manualSa();
  change(sa);
  doc.manualSas = [sa];
};

const CASES: BadCase[] = [
  // network map
  {
    what: 'short address',
    file: 'network.yaml',
    change: (d) => {
      sgwAt(d, 'sgw1').outside = '198.18.1';
    },
    message: 'sgws[1].outside: expected an IPv4 address such as 198.18.0.1, got "198.18.1"',
  },
  {
    what: 'prefix with host bits',
    file: 'network.yaml',
    change: (d) => {
      d.sites[1].prefixes = ['10.1.0.1/16'];
    },
    message:
      'sites[1].prefixes[0]: expected an IPv4 prefix such as 10.0.0.0/16, got "10.1.0.1/16" (prefix \'10.1.0.1/16\' has host bits set (did you mean 10.1.0.0/16?))',
  },
  {
    what: 'prefix without length',
    file: 'network.yaml',
    change: (d) => {
      d.sites[0].prefixes = ['10.0.0.0'];
    },
    message: 'sites[0].prefixes[0]: expected an IPv4 prefix such as 10.0.0.0/16, got "10.0.0.0" (no /length)',
  },
  {
    what: 'overlapping sites',
    file: 'network.yaml',
    change: (d) => {
      d.sites[2].prefixes = ['10.0.128.0/17'];
    },
    message:
      'sites[2].prefixes[0]: 10.0.128.0/17 overlaps 10.0.0.0/16 of site "home"; SGW-protected networks must not overlap (draft §2.2)',
  },
  {
    what: 'overlap within a site',
    file: 'network.yaml',
    change: (d) => {
      d.sites[1].prefixes.push('10.1.2.0/24');
    },
    message: 'sites[1].prefixes[1]: 10.1.2.0/24 overlaps 10.1.0.0/16 of the same site; list each part once',
  },
  {
    what: 'site without an SGW',
    file: 'network.yaml',
    change: (d) => {
      d.sites.push({ name: 'site3', prefixes: ['10.3.0.0/16'] });
    },
    message: 'sites[3].name: site "site3" has no SGW; add an SGW with site: site3, or remove the site',
  },
  {
    what: 'misspelt field',
    file: 'network.yaml',
    change: (d) => {
      d.sites[0].vpnRoutible = d.sites[0].vpnRoutable;
      delete d.sites[0].vpnRoutable;
    },
    message:
      'sites[0].vpnRoutible: unknown field (did you mean vpnRoutable?); the fields of a site are name, prefixes, vpnRoutable',
  },
  {
    what: 'unknown site',
    file: 'network.yaml',
    change: (d) => {
      sgwAt(d, 'sgw0').site = 'hom';
    },
    message: 'sgws[0].site: no site named "hom" (sites: home, site1, site2)',
  },
  {
    what: 'unknown parent',
    file: 'network.yaml',
    change: (d) => {
      sgwAt(d, 'sgw2').behind = 'sgw7';
    },
    message: 'sgws[2].behind: no SGW named "sgw7" (SGWs: sgw0, sgw1, sgw2)',
  },
  {
    what: 'two SGWs on one network',
    file: 'network.yaml',
    change: (d) => {
      d.sgws.push({ name: 'sgw3', site: 'site1', inside: '10.1.0.3', outside: '198.18.3.1' });
    },
    message:
      'sgws[3].prefixes[0]: 10.1.0.0/16 overlaps 10.1.0.0/16 protected by sgw1; give each SGW its own addresses, or nest one behind the other (behind:) with a longer prefix (draft §2.2)',
  },
  {
    what: 'inside address off the network',
    file: 'network.yaml',
    change: (d) => {
      sgwAt(d, 'sgw1').inside = '10.2.0.9';
    },
    message:
      "sgws[1].inside: 10.2.0.9 is not in sgw1's protected network (10.1.0.0/16); use an address of that network",
  },
  {
    what: 'HA serving a foreign address',
    file: 'network.yaml',
    change: (d) => {
      d.homeAgents[0].serves = ['10.1.0.100'];
    },
    message: "homeAgents[0].serves[0]: 10.1.0.100/32 is not on ha's home network (protected by sgw0: 10.0.0.0/16)",
  },
  {
    what: 'duplicate name',
    file: 'network.yaml',
    change: (d) => {
      d.hosts[0].name = 'sgw1';
    },
    message:
      'hosts[0].name: duplicate name "sgw1" (already used by sgws[1]); names must be unique across sites, SGWs, HAs and hosts',
  },
  {
    what: 'Border-SGW behind another',
    file: 'network.yaml',
    change: (d) => {
      Object.assign(sgwAt(d, 'sgw0'), { behind: 'sgw1', outside: '10.1.0.2' });
    },
    message:
      'sgws[0].border: a Border-SGW faces the Internet, but sgw0 sits behind sgw1; remove border: true or behind',
  },
  {
    what: 'no SGWs',
    file: 'network.yaml',
    change: (d) => {
      d.sgws = [];
    },
    message: 'sgws: expected a list of SGWs (at least 1), got an empty list',
  },
  {
    what: 'missing kind',
    file: 'network.yaml',
    change: (d) => {
      delete d.kind;
    },
    message: 'kind: missing; expected node or network-map (every mipsec YAML file starts with it, e.g. kind: node)',
  },
  {
    what: 'YAML syntax',
    file: 'network.yaml',
    change: 'kind: network-map\nname: [figure6\n',
    message:
      'line 3, column 1: not valid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]',
  },
  {
    what: 'not a mapping',
    file: 'network.yaml',
    change: '- kind: network-map\n',
    message:
      '(top level): expected a mapping starting with kind: node or network-map (every mipsec YAML file starts with it, e.g. kind: node), got a list of 1',
  },
  // node configs
  {
    what: 'short interface address',
    file: 'sgw1.yaml',
    change: (d) => {
      d.interfaces[0].address = '198.18.1';
    },
    message: 'interfaces[0].address: expected an IPv4 address such as 198.18.1.1, got "198.18.1"',
  },
  {
    what: 'missing key file path',
    file: 'sgw1.yaml',
    change: (d) => {
      delete d.identity.key;
    },
    message: 'identity.key: missing; expected a file path such as keys/sgw1.key',
  },
  {
    what: 'unknown role',
    file: 'sgw1.yaml',
    change: (d) => {
      d.role = 'router';
    },
    message: 'role: expected one of sgw | smn | ha, got "router"',
  },
  {
    what: 'unknown ESP suite',
    file: 'sgw1.yaml',
    change: (d) => {
      d.policy.esp = 'aes128';
    },
    message: 'policy.esp: expected one of aes128gcm | aes256gcm | chacha20poly1305, got "aes128"',
  },
  {
    what: 'unknown coverage',
    file: 'sgw1.yaml',
    change: (d) => {
      d.policy.coverage = 'payload';
    },
    message: 'policy.coverage: expected one of full | headers, got "payload"',
  },
  {
    what: 'zero Kp rotation',
    file: 'sgw1.yaml',
    change: (d) => {
      d.policy.kpRotationPackets = 0;
    },
    message: 'policy.kpRotationPackets: expected a whole number from 1 to 4294967295 such as 1048576, got 0',
  },
  {
    what: 'string where a flag goes',
    file: 'sgw1.yaml',
    change: (d) => {
      d.policy.endEndAh = 'yes';
    },
    message: 'policy.endEndAh: expected true or false, got "yes"',
  },
  {
    what: 'prefix length 33',
    file: 'sgw1.yaml',
    change: (d) => {
      d.interfaces[1].prefixLength = 33;
    },
    message: 'interfaces[1].prefixLength: expected a whole number from 0 to 32 such as 16, got 33',
  },
  {
    what: 'gateway off the interface network',
    file: 'ha.yaml',
    change: (d) => {
      d.interfaces[0].gateway = '10.1.0.1';
    },
    message:
      "interfaces[0].gateway: 10.1.0.1 is not on this interface's network 10.0.0.0/16; use a router address of that network",
  },
  {
    what: 'SGW without its interface names',
    file: 'sgw1.yaml',
    change: (d) => {
      delete d.sgw;
    },
    message: 'sgw: missing; an SGW needs it, e.g. sgw: { inside: inside, outside: outside } (interface names)',
  },
  {
    what: 'SGW naming an unknown interface',
    file: 'sgw1.yaml',
    change: (d) => {
      d.sgw.inside = 'lan';
    },
    message: 'sgw.inside: no interface named "lan" (interfaces: inside, outside)',
  },
  {
    what: 'SMN without its section',
    file: 'smn.yaml',
    change: (d) => {
      delete d.smn;
    },
    message: 'smn: missing; an SMN needs it, e.g. smn: { homeAddress: 10.0.0.100, homeAgent: ha, borderSgws: [sgw0] }',
  },
  {
    what: 'HA with an identity',
    file: 'ha.yaml',
    change: (d) => {
      d.identity = { key: 'k', cert: 'c', ca: 'a' };
    },
    message: 'identity: not used by an HA (it does no IPsec, draft §2.1); remove it (role is ha)',
  },
  {
    what: 'SGW not in the map',
    file: 'sgw1.yaml',
    change: (d) => {
      d.name = 'sgw9';
    },
    message: 'name: no SGW named "sgw9" in network.yaml (SGWs: sgw0, sgw1, sgw2)',
  },
  {
    what: 'SGW address differing from the map',
    file: 'sgw1.yaml',
    change: (d) => {
      d.interfaces[1].address = '198.18.1.2';
    },
    message:
      "interfaces[1].address: 198.18.1.2 differs from sgw1's outside address 198.18.1.1 in network.yaml; make them equal",
  },
  {
    what: 'home address no HA serves',
    file: 'smn.yaml',
    change: (d) => {
      d.smn.homeAddress = '10.0.0.101';
    },
    message: "smn.homeAddress: 10.0.0.101 is not served by any HA of network.yaml; add it to an HA's serves",
  },
  {
    what: 'unknown home agent',
    file: 'smn.yaml',
    change: (d) => {
      d.smn.homeAgent = 'ha2';
    },
    message: 'smn.homeAgent: no HA named "ha2" in network.yaml (HAs: ha)',
  },
  {
    what: 'Border-SGW that is not one',
    file: 'smn.yaml',
    change: (d) => {
      d.smn.borderSgws = ['ch0'];
    },
    message: 'smn.borderSgws[0]: no SGW named "ch0" in network.yaml (Border-SGWs: sgw0, sgw1, sgw2)',
  },
  {
    what: 'HA serving what the map does not give it',
    file: 'ha.yaml',
    change: (d) => {
      d.ha.serves = ['10.0.0.0/24'];
    },
    message: 'ha.serves[0]: 10.0.0.0/24 is not among the home addresses network.yaml gives ha (10.0.0.100/32)',
  },
  {
    what: 'HA without its address',
    file: 'ha.yaml',
    change: (d) => {
      d.interfaces[0].address = '10.0.0.3';
    },
    message: "interfaces: no interface has ha's address 10.0.0.2 from network.yaml; add one",
  },
  {
    what: 'network map that does not exist',
    file: 'smn.yaml',
    change: (d) => {
      d.network = 'nowhere.yaml';
    },
    message: "network: nowhere.yaml not found (looked in DIR); give the network map's path relative to this file",
  },
  {
    what: 'node file with a map kind',
    file: 'smn.yaml',
    change: (d) => {
      d.kind = 'network';
    },
    message:
      'kind: expected node or network-map (every mipsec YAML file starts with it, e.g. kind: node), got "network"',
  },
  // manual SPI-mode SAs
  {
    what: 'SPI in the reserved range',
    file: 'sgw1.yaml',
    change: (d) =>
      withManualSa(d, (sa) => {
        sa.spiOut = 255;
      }),
    message: 'manualSas[0].spiOut: expected a whole number from 256 to 4294967295 such as 4097, got 255',
  },
  {
    what: 'one SPI for both directions',
    file: 'sgw1.yaml',
    change: (d) =>
      withManualSa(d, (sa) => {
        sa.spiIn = 4097;
      }),
    message:
      'manualSas[0].spiIn: expected an SPI other than spiOut, got 4097 for both; use distinct SPIs per direction, e.g. spiOut: 4097, spiIn: 4098',
  },
  {
    what: 'inbound SPI used twice',
    file: 'sgw1.yaml',
    change: (d) => {
      d.manualSas = [manualSa(), { ...manualSa(), name: 'to-sgw0', spiOut: 4099 }];
    },
    message:
      'manualSas[1].spiIn: expected an inbound SPI no other manual SA uses, got 8194 (also manualSas[0].spiIn); inbound ESP is matched by its SPI alone',
  },
  {
    what: 'manual SA name used twice',
    file: 'sgw1.yaml',
    change: (d) => {
      d.manualSas = [manualSa(), { ...manualSa(), spiOut: 4099, spiIn: 4100 }];
    },
    message:
      'manualSas[1].name: duplicate name "to-sgw2" (already used by manualSas[0]); give each manual SA its own name',
  },
  {
    what: 'unknown manual ESP suite',
    file: 'sgw1.yaml',
    change: (d) =>
      withManualSa(d, (sa) => {
        sa.suite = 'aes-gcm';
      }),
    message: 'manualSas[0].suite: expected one of aes128gcm | aes256gcm | chacha20poly1305, got "aes-gcm"',
  },
  {
    what: 'manual SA without its peer',
    file: 'sgw1.yaml',
    change: (d) =>
      withManualSa(d, (sa) => {
        delete sa.peer;
      }),
    message: 'manualSas[0].peer: missing; expected an IPv4 address such as 198.18.20.1',
  },
  {
    what: 'manual SA remote without a length',
    file: 'sgw1.yaml',
    change: (d) =>
      withManualSa(d, (sa) => {
        sa.remote = '10.2.0.0';
      }),
    message: 'manualSas[0].remote: expected an IPv4 prefix such as 10.20.0.0/24, got "10.2.0.0" (no /length)',
  },
  {
    what: 'key inline in the YAML',
    file: 'sgw1.yaml',
    change: (d) =>
      withManualSa(d, (sa) => {
        sa.key = '00112233445566778899aabbccddeeff01020304';
      }),
    message:
      'manualSas[0].key: unknown field (did you mean keyIn?); the fields of a manual SA are name, peer, local, remote, suite, spiOut, spiIn, keyOut, keyIn',
  },
  {
    what: 'one key file for both directions',
    file: 'sgw1.yaml',
    change: (d) =>
      withManualSa(d, (sa) => {
        sa.keyIn = sa.keyOut;
      }),
    message:
      'manualSas[0].keyIn: expected another key file than keyOut, got "keys/out.key" for both; each direction has its own key, e.g. keyIn: keys/to-sgw2-in.key',
  },
  {
    what: 'manual SAs on an SMN',
    file: 'smn.yaml',
    change: (d) => {
      d.manualSas = [manualSa()];
    },
    message: 'manualSas: not used by an SMN; remove it (role is smn)',
  },
];

describe('bad configs: exact messages', () => {
  it('has at least 20 cases', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(20);
  });

  it.each(CASES.map((c, i) => [c.what, i] as const))('%s', async (_what, i) => {
    const c = CASES[i];
    const file = join(dir, `bad-${i}-${c.file}`);
    let text: string;
    if (typeof c.change === 'string') {
      text = c.change;
    } else {
      const doc = example(c.file);
      c.change(doc);
      text = stringify(doc);
    }
    writeFileSync(file, text);
    const [report] = await checkFiles([file]);
    expect(report.errors).toEqual([`${file}: ${c.message.replace('DIR', relative('.', dir))}`]);
  });

  it('names each unknown field on its own line, with its own suggestion', async () => {
    const doc = example('sgw1.yaml');
    doc.interfaces[0].adress = doc.interfaces[0].address;
    delete doc.interfaces[0].address;
    doc.interfaces[0].mtu = 1500;
    const file = join(dir, 'two-unknown.yaml');
    writeFileSync(file, stringify(doc));
    const [report] = await checkFiles([file]);
    const fields = 'the fields of an interface are name, address, prefixLength, gateway';
    expect(report.errors).toEqual([
      `${file}: interfaces[0].address: missing; expected an IPv4 address such as 198.18.1.1`,
      `${file}: interfaces[0].adress: unknown field (did you mean address?); ${fields}`,
      `${file}: interfaces[0].mtu: unknown field; ${fields}`,
    ]);
  });

  it('reports a bad network map from the node that names it', async () => {
    const doc = example('network.yaml');
    sgwAt(doc, 'sgw1').outside = '198.18.1';
    writeFileSync(join(dir, 'broken-network.yaml'), stringify(doc));
    const node = example('smn.yaml');
    node.network = 'broken-network.yaml';
    const file = join(dir, 'smn-on-broken.yaml');
    writeFileSync(file, stringify(node));
    const [report] = await checkFiles([file]);
    expect(report.errors).toEqual([
      `${file}: network: broken-network.yaml is not a valid network map (1 error, first: sgws[1].outside: expected an IPv4 address such as 198.18.0.1, got "198.18.1"); run mipsec check-config on it`,
    ]);
  });

  it('names a file that does not exist', async () => {
    const file = join(dir, 'missing.yaml');
    expect((await checkFiles([file]))[0].errors).toEqual([`${file}: file not found; check the path`]);
  });

  it('refuses an alias bomb', async () => {
    const file = join(dir, 'bomb.yaml');
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 12; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    writeFileSync(file, lines.join('\n') + '\nkind: node\n');
    const [report] = await checkFiles([file]);
    expect(report.errors).toEqual([
      `${file}: not valid YAML: Excessive alias count indicates a resource exhaustion attack`,
    ]);
  });
});
