// The draft's [Packet Format] notation (§4.4, §4.5) as describe() strings, so scenarios can write
// their expectations the way the draft does: NextAH(A/B) around IP Hdr2 / SKIP Hdr2 / EndAH+ESP …

/** A SKIP identity: an SGW (NSID 0) or an SMN (NSID 1, MKID = home address). */
export type Ident = { sgw: true } | { smn: string };

export const SGW: Ident = { sgw: true };
export const smnId = (home: string): Ident => ({ smn: home });

function ident(i: Ident): string {
  return 'smn' in i ? `NSID1 MKID ${i.smn}` : 'NSID0';
}

export const ip = (src: string, dst: string) => `IPv4(${src}>${dst})`;
export const skip = (src: Ident, dst: Ident) => `SKIP(${ident(src)} > ${ident(dst)})`;

/** IP Hdr / SKIP Hdr / NextAH, then whatever it protects. */
export const nextAh = (src: string, dst: string, from: Ident, to: Ident, inner: string) =>
  `${ip(src, dst)} / ${skip(from, to)} / AH[next] / ${inner}`;

/** IP Hdr / SKIP Hdr / EndAH+ESP / the inner datagram. */
export const endAhEsp = (src: string, dst: string, from: Ident, to: Ident, inner: string) =>
  `${ip(src, dst)} / ${skip(from, to)} / AH[end] / ESP(spi 1) / ${inner}`;

/** IP-in-IP (RFC 2003) from the HA to the care-of address around a datagram. */
export const ipip = (ha: string, careOf: string, inner: string) => `${ip(ha, careOf)} / ${inner}`;

/** A port written '*' is random by design (the §3.5 NAT's): stackDiff matches any digits there. */
export const udp = (src: string, dst: string, srcPort: number | '*', dstPort: number | '*') =>
  `${ip(src, dst)} / UDP(${srcPort}>${dstPort})`;

export const icmp40 = (src: string, dst: string, code: number) => `${ip(src, dst)} / ICMP40(code ${code})`;
