// Certificate discovery on UDP 1640 (the SKIP CDP port, DESIGN §3): ask a node for its own
// certificate by NSID/MKID; it answers with the certificate or "not found". Layout:
// docs/certificates.md §4. Codec only: the roles own the sockets. A request is padded to the size
// of the largest answer, so answering never sends more bytes than the asker sent (no amplification).
import { decodeCertificate, isCaSubject, type Certificate } from './certificate.js';
import { formatName, sameName, type SkipName } from './names.js';
import { NSID_IPV4, NSID_NONE } from '../wire/skip.js';
import { readIp, writeIp } from '../wire/addr.js';

export const DISCOVERY_PORT = 1640;
export const DISCOVERY_VERSION = 1;
export const DiscoveryType = { request: 1, certificate: 2, notFound: 3 } as const;
const HEADER_BYTES = 11;
/** Certificates we send or accept in a reply: far above the 164 bytes of ours, far below a datagram. */
export const MAX_DISCOVERY_CERT_BYTES = 1024;
/** Every request is this long (zero padding after the header): no answer is larger than the request it answers. */
export const DISCOVERY_REQUEST_BYTES = HEADER_BYTES + 2 + MAX_DISCOVERY_CERT_BYTES;

export type DiscoveryMessage =
  | { type: 'request'; id: number; name: SkipName }
  | { type: 'certificate'; id: number; name: SkipName; cert: Certificate }
  | { type: 'notFound'; id: number; name: SkipName };

export type DiscoveryDecode =
  | { ok: true; message: DiscoveryMessage }
  | {
      ok: false;
      reason:
        | 'truncated'
        | 'bad_version'
        | 'bad_type'
        | 'unknown_nsid'
        | 'bad_length'
        | 'bad_certificate'
        | 'name_mismatch';
      message: string;
    };

export function encodeDiscovery(msg: DiscoveryMessage): Uint8Array {
  if (!Number.isInteger(msg.id) || msg.id < 0 || msg.id > 0xffffffff)
    throw new RangeError(`discovery id must be a u32, got ${msg.id}`);
  const cert = msg.type === 'certificate' ? msg.cert.encoded : undefined;
  if (cert && cert.length > MAX_DISCOVERY_CERT_BYTES)
    throw new RangeError(`certificate of ${cert.length} bytes exceeds ${MAX_DISCOVERY_CERT_BYTES}`);
  const out = new Uint8Array(
    msg.type === 'request' ? DISCOVERY_REQUEST_BYTES : HEADER_BYTES + (cert ? 2 + cert.length : 0),
  );
  const view = new DataView(out.buffer);
  out[0] = DISCOVERY_VERSION;
  out[1] = DiscoveryType[msg.type];
  view.setUint32(2, msg.id);
  out[6] = msg.name.nsid;
  writeIp(out, 7, msg.name.address);
  if (cert) {
    view.setUint16(HEADER_BYTES, cert.length);
    out.set(cert, HEADER_BYTES + 2);
  }
  return out;
}

/** Parses one discovery datagram; never reads past `bytes`, never throws. */
export function decodeDiscovery(bytes: Uint8Array): DiscoveryDecode {
  if (bytes.length < HEADER_BYTES)
    return {
      ok: false,
      reason: 'truncated',
      message: `discovery message of ${bytes.length} bytes, the header is ${HEADER_BYTES}`,
    };
  if (bytes[0] !== DISCOVERY_VERSION)
    return {
      ok: false,
      reason: 'bad_version',
      message: `discovery version ${bytes[0]}, expected ${DISCOVERY_VERSION}`,
    };
  const typeCode = bytes[1];
  const type = (Object.keys(DiscoveryType) as (keyof typeof DiscoveryType)[]).find(
    (t) => DiscoveryType[t] === typeCode,
  );
  if (type === undefined)
    return {
      ok: false,
      reason: 'bad_type',
      message: `discovery type ${typeCode} is not 1 (request), 2 (certificate) or 3 (not found)`,
    };
  const nsid = bytes[6];
  if (nsid !== NSID_NONE && nsid !== NSID_IPV4)
    return { ok: false, reason: 'unknown_nsid', message: `discovery NSID ${nsid} is not 0 (SGW) or 1 (SMN)` };
  const id = readIp(bytes, 2);
  const name: SkipName = { nsid, address: readIp(bytes, 7) };
  if (type === 'request') {
    if (bytes.length !== DISCOVERY_REQUEST_BYTES || bytes.subarray(HEADER_BYTES).some((b) => b !== 0)) {
      const message =
        `discovery request must be ${DISCOVERY_REQUEST_BYTES} bytes, zero-padded after the header, ` +
        `got ${bytes.length}`;
      return { ok: false, reason: 'bad_length', message };
    }
    return { ok: true, message: { type, id, name } };
  }
  if (type === 'notFound') {
    if (bytes.length !== HEADER_BYTES)
      return {
        ok: false,
        reason: 'bad_length',
        message: `discovery ${type} must be ${HEADER_BYTES} bytes, got ${bytes.length}`,
      };
    return { ok: true, message: { type, id, name } };
  }
  if (bytes.length < HEADER_BYTES + 2)
    return { ok: false, reason: 'truncated', message: 'discovery certificate reply has no certificate length' };
  const certLength = (bytes[HEADER_BYTES] << 8) | bytes[HEADER_BYTES + 1];
  if (certLength > MAX_DISCOVERY_CERT_BYTES)
    return {
      ok: false,
      reason: 'bad_length',
      message: `certificate length ${certLength} exceeds ${MAX_DISCOVERY_CERT_BYTES}`,
    };
  if (bytes.length !== HEADER_BYTES + 2 + certLength) {
    return {
      ok: false,
      reason: bytes.length < HEADER_BYTES + 2 + certLength ? 'truncated' : 'bad_length',
      message: `certificate length field says ${certLength}, the message carries ${bytes.length - HEADER_BYTES - 2}`,
    };
  }
  const decoded = decodeCertificate(bytes.subarray(HEADER_BYTES + 2));
  if (!decoded.ok) return { ok: false, reason: 'bad_certificate', message: decoded.error };
  const subject = decoded.cert.subject;
  if (isCaSubject(subject) || !sameName(subject, name)) {
    return {
      ok: false,
      reason: 'name_mismatch',
      message: `reply for ${formatName(name)} carries a certificate for another subject`,
    };
  }
  return { ok: true, message: { type, id, name, cert: decoded.cert } };
}

/**
 * The answer to a request from a node that knows `known` (its own, or one it vouches for): the certificate if it is for
 * the name asked.
 */
export function answerDiscovery(
  request: Extract<DiscoveryMessage, { type: 'request' }>,
  known: Certificate | undefined,
): DiscoveryMessage {
  const { id, name } = request;
  return certifies(known, name) ? { type: 'certificate', id, name, cert: known } : { type: 'notFound', id, name };
}

/** Whether `cert` is the certificate of node `name`. */
export function certifies(cert: Certificate | undefined, name: SkipName): cert is Certificate {
  return cert !== undefined && !isCaSubject(cert.subject) && sameName(cert.subject, name);
}
