// A registration storm against a real home agent, run inside a test namespace by ha-crash.test.ts:
// `count` registrations round-robin over the mobile nodes, each with a new care-of address, each
// retransmitted until the HA accepts it (the HA is being killed and restarted meanwhile). One line
// per acknowledgement on stdout (`ack <index>`), then the last acknowledged binding of every node as
// JSON (`acked {...}`). Usage: node ha-storm-client.mjs <dist dir> <HA address> <count> <nodes JSON>
import dgram from 'node:dgram';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [dist, haAddress, countText, nodesJson] = process.argv.slice(2);
const mip = await import(pathToFileURL(path.join(dist, 'wire/mobileip.js')).href);
const { ipToU32, u32ToIp } = await import(pathToFileURL(path.join(dist, 'wire/addr.js')).href);
const nodes = JSON.parse(nodesJson).map((n) => ({ home: n.home, auth: { spi: n.spi, key: Buffer.from(n.key, 'hex') }, lastId: 0n }));
const RETRANSMIT_MS = 200;
const GIVE_UP_MS = 30_000;

const socket = dgram.createSocket('udp4');
await new Promise((resolve) => socket.bind(0, resolve));
let waiting;
socket.on('message', (bytes) => waiting?.(new Uint8Array(bytes)));

function register(node, careOf) {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    let timer;
    const send = (fresh) => {
      if (Date.now() - started > GIVE_UP_MS) return reject(new Error(`no acceptance for ${node.home} in ${GIVE_UP_MS} ms`));
      if (fresh) node.lastId = [mip.ntpFromUnixMs(Date.now()), node.lastId + 1n].reduce((a, b) => (a > b ? a : b));
      const request = { flags: mip.RequestFlag.D, lifetime: 1800, homeAddress: ipToU32(node.home), homeAgent: ipToU32(haAddress), careOf: ipToU32(careOf), identification: node.lastId };
      socket.send(mip.encodeRequest(request, node.auth), mip.MIP_PORT, haAddress);
      clearTimeout(timer);
      // A request the HA wrote but could not answer before it died is refused as a replay (133) when
      // retransmitted: the next attempt carries a new identification.
      timer = setTimeout(() => send(false), RETRANSMIT_MS);
    };
    waiting = (bytes) => {
      const reply = mip.decodeReply(bytes);
      if (!reply.ok || reply.message.homeAddress !== ipToU32(node.home) || !mip.verifyMnHaAuth(bytes, reply.mnHaAuth, node.auth).ok) return;
      if (reply.message.code === mip.ReplyCode.ACCEPTED && reply.message.identification === node.lastId) {
        clearTimeout(timer);
        resolve();
      } else if (reply.message.code === mip.ReplyCode.ID_MISMATCH) {
        send(true);
      }
    };
    send(true);
  });
}

const acked = {};
for (let i = 0; i < Number(countText); i++) {
  const node = nodes[i % nodes.length];
  const careOf = u32ToIp(ipToU32('10.1.0.0') + 1 + i);
  await register(node, careOf);
  acked[node.home] = careOf;
  process.stdout.write(`ack ${i}\n`);
}
process.stdout.write(`acked ${JSON.stringify(acked)}\n`);
socket.close();
