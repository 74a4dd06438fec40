// The home agent's binding journal (src/roles/ha/journal.ts): what an accepting reply acknowledged is
// on disk before the reply leaves, a restart restores bindings with lifetimes counted from the
// original registration and the RFC 5944 §5.7 replay state, a torn last line is cut off, and a
// store that cannot write makes the HA answer 130 instead of acknowledging a binding it would forget.
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BindingJournal, type BindingRecord, type BindingStore } from '../../src/roles/ha/journal.js';
import { ipToU32 } from '../../src/wire/addr.js';
import {
  decodeReply,
  encodeRequest,
  MIP_PORT,
  ntpFromUnixMs,
  ReplyCode,
  RequestFlag,
  type RegistrationReply,
} from '../../src/wire/mobileip.js';
import { buildUdpDatagram, parseUdpDatagram } from '../../src/wire/udp.js';
import { buildNetwork, CARE_OF, HA_ADDRESS, HOME_ADDRESS, MN_AUTH, moveToSite1 } from './topology.js';

const journalFile = () => join(mkdtempSync(join(tmpdir(), 'mipsec-ha-')), 'state', 'bindings.journal');

/** A Figure-6-like network whose HA keeps its bindings in `store`, the MN away in site 1, and a raw request sender. */
function awayWith(store: BindingStore, startMs = 0) {
  const world = buildNetwork({ store, maxLifetime: 600 }, startMs);
  moveToSite1(world.mn);
  world.mn.addLocalAddress(HOME_ADDRESS);
  const replies: RegistrationReply[] = [];
  world.mn.onDeliver((packet) => {
    const udp = parseUdpDatagram(packet);
    if (!udp.ok || udp.udp.srcPort !== MIP_PORT) return;
    const reply = decodeReply(udp.udp.payload);
    if (reply.ok) replies.push(reply.message);
  });
  const register = (lifetime: number, identification = ntpFromUnixMs(world.net.clock.now())) => {
    const request = {
      flags: RequestFlag.D,
      lifetime,
      homeAddress: ipToU32(HOME_ADDRESS),
      homeAgent: ipToU32(HA_ADDRESS),
      careOf: ipToU32(CARE_OF),
      identification,
    };
    world.mn.send(
      buildUdpDatagram(
        { src: ipToU32(CARE_OF), dst: ipToU32(HA_ADDRESS), srcPort: 5000, dstPort: MIP_PORT },
        encodeRequest(request, MN_AUTH),
      ),
    );
    world.net.runFor(100);
    return identification;
  };
  return { ...world, replies, register };
}

describe('home agent binding journal', () => {
  it('a restart restores the binding with its lifetime counted from the original registration, and its replay state', () => {
    const file = journalFile();
    const first = awayWith(new BindingJournal(file));
    const id = first.register(300);
    expect(first.replies.map((r) => r.code)).toEqual([ReplyCode.ACCEPTED]);
    const { expiresAt } = first.ha.bindings()[0];
    first.ha.close();

    // The new process starts 100 s later: 200 s of the 300 s lifetime are left.
    const second = awayWith(new BindingJournal(file), first.net.clock.now() + 100_000);
    expect(second.ha.restored).toEqual({ bindings: 1, expired: 0 });
    expect(second.ha.bindings()).toEqual([{ homeAddress: HOME_ADDRESS, careOf: CARE_OF, lifetime: 300, expiresAt }]);
    // The old request replayed is refused (133): the identification state came back too.
    second.register(300, id);
    expect(second.replies.map((r) => r.code)).toEqual([ReplyCode.ID_MISMATCH]);
    // And the binding still expires when it would have.
    second.net.runFor(expiresAt - second.net.clock.now() + 1);
    expect(second.ha.bindings()).toEqual([]);
  });

  it('a binding whose lifetime ran out while the HA was down is not restored; a deregistration is remembered', () => {
    const file = journalFile();
    const first = awayWith(new BindingJournal(file));
    first.register(60);
    first.ha.close();
    const late = awayWith(new BindingJournal(file), first.net.clock.now() + 61_000);
    expect(late.ha.restored).toEqual({ bindings: 0, expired: 1 });
    expect(late.ha.bindings()).toEqual([]);
    late.register(300);
    late.register(0);
    expect(late.replies.map((r) => r.code)).toEqual([ReplyCode.ACCEPTED, ReplyCode.ACCEPTED]);
    late.ha.close();
    const again = awayWith(new BindingJournal(file), late.net.clock.now() + 1000);
    expect(again.ha.bindings()).toEqual([]);
  });

  it('a torn last line (a crash mid-write) is cut off; every line before it stays', () => {
    const file = journalFile();
    const journal = new BindingJournal(file);
    journal.load();
    const record = (careOf: string, id: number): BindingRecord => ({
      homeAddress: HOME_ADDRESS,
      binding: { careOf, lifetime: 300, registeredAt: 1000 },
      lastAcceptedId: String(id),
    });
    journal.write(record('10.1.0.100', 1));
    journal.write(record('10.2.0.100', 2));
    journal.close();
    const whole = readFileSync(file, 'utf8');
    appendFileSync(file, whole.split('\n')[0].slice(0, 40));
    const reread = new BindingJournal(file);
    expect(reread.load()).toEqual([record('10.2.0.100', 2)]);
    expect(reread.lastLoad.discardedLines).toBe(1);
    expect(readFileSync(file, 'utf8')).toBe(whole);
    // A line altered in place does not check either: it and what follows it are not trusted.
    writeFileSync(file, whole.replace('10.2.0.100', '10.9.0.100'));
    const altered = new BindingJournal(file);
    expect(altered.load()).toEqual([record('10.1.0.100', 1)]);
    reread.close();
    altered.close();
  });

  it('compaction keeps one line per mobile node and the same state', () => {
    const file = journalFile();
    const journal = new BindingJournal(file);
    journal.load();
    let last: BindingRecord | undefined;
    for (let i = 1; i <= 2500; i++) {
      last = {
        homeAddress: HOME_ADDRESS,
        binding: { careOf: `10.1.${i >> 8}.${i & 255}`, lifetime: 300, registeredAt: i },
        lastAcceptedId: String(i),
      };
      journal.write(last);
    }
    journal.close();
    expect(readFileSync(file, 'utf8').trim().split('\n').length).toBeLessThan(1024);
    const reread = new BindingJournal(file);
    expect(reread.load()).toEqual([last]);
    reread.close();
  });

  it('a store that cannot write: the HA answers 130 and binds nothing (it would forget the binding on a restart)', () => {
    const failing: BindingStore = {
      load: () => [],
      write: () => {
        throw new Error('ENOSPC');
      },
      close: () => {},
    };
    const w = awayWith(failing);
    w.register(300);
    expect(w.replies.map((r) => r.code)).toEqual([ReplyCode.INSUFFICIENT_RESOURCES]);
    expect(w.ha.bindings()).toEqual([]);
    expect(w.ha.counters().drops.store_failed).toBe(1);
  });
});
