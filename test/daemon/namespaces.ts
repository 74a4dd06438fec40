// Network namespaces a daemon test makes for itself (root): created, wired with veths, removed again.
import { execFileSync } from 'node:child_process';

export interface TestNamespaces {
  /** `ip -n NAME ARGS`. */
  ipIn(name: string, ...args: string[]): string;
  /** A namespace with lo up, removed by removeAll(). */
  add(name: string): void;
  /** A veth between two namespaces, each end renamed, addressed and up. */
  veth(a: string, ifA: string, cidrA: string, b: string, ifB: string, cidrB: string): void;
  /**
   * Figure 6's two sites on real namespaces: sgw0 and sgw1 joined by 'outside' (198.18/16, the Internet),
   * host h0 (10.0.0.10) and h1 (10.1.0.10) behind their 'inside'; each SGW's kernel routes the other site.
   */
  twoSites(ns: { sgw0: string; sgw1: string; h0: string; h1: string }): void;
  removeAll(): void;
}

/** `tag` keeps the temporary veth names unique among tests running at the same time. */
export function testNamespaces(tag: string): TestNamespaces {
  const made: string[] = [];
  const ipIn = (name: string, ...args: string[]) => execFileSync('ip', ['-n', name, ...args], { encoding: 'utf8' });
  return {
    ipIn,
    add(name) {
      execFileSync('ip', ['netns', 'add', name]);
      made.push(name);
      ipIn(name, 'link', 'set', 'lo', 'up');
    },
    veth(a, ifA, cidrA, b, ifB, cidrB) {
      execFileSync('ip', ['link', 'add', `v${tag}`, 'netns', a, 'type', 'veth', 'peer', 'name', `w${tag}`, 'netns', b]);
      ipIn(a, 'link', 'set', `v${tag}`, 'name', ifA);
      ipIn(b, 'link', 'set', `w${tag}`, 'name', ifB);
      ipIn(a, 'addr', 'add', cidrA, 'dev', ifA);
      ipIn(b, 'addr', 'add', cidrB, 'dev', ifB);
      ipIn(a, 'link', 'set', ifA, 'up');
      ipIn(b, 'link', 'set', ifB, 'up');
    },
    twoSites(ns) {
      for (const name of Object.values(ns)) this.add(name);
      this.veth(ns.sgw0, 'outside', '198.18.0.1/16', ns.sgw1, 'outside', '198.18.1.1/16');
      this.veth(ns.sgw0, 'inside', '10.0.0.1/16', ns.h0, 'eth0', '10.0.0.10/16');
      this.veth(ns.sgw1, 'inside', '10.1.0.1/16', ns.h1, 'eth0', '10.1.0.10/16');
      ipIn(ns.h0, 'route', 'add', 'default', 'via', '10.0.0.1');
      ipIn(ns.h1, 'route', 'add', 'default', 'via', '10.1.0.1');
      // As on a real gateway: the kernel knows where the other site is; the daemon reads it.
      ipIn(ns.sgw0, 'route', 'add', '10.1.0.0/16', 'via', '198.18.1.1');
      ipIn(ns.sgw1, 'route', 'add', '10.0.0.0/16', 'via', '198.18.0.1');
    },
    removeAll() {
      for (const name of made.splice(0).reverse()) execFileSync('ip', ['netns', 'del', name]);
    },
  };
}
