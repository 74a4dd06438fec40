// Anti-replay window (RFC 4303 §3.4.3 / App. A, 32-bit sequence numbers): check first, commit only after the ICV
// verified.

export class ReplayWindow {
  /** Highest authenticated sequence number (0: none yet). */
  top = 0;
  /** Bit (seq mod size) set ⇔ seq, inside the window, was accepted. */
  private readonly bits: Uint32Array;

  /** Every seq <= floor counts as seen: a restarted node does not reopen what it accepted before. */
  constructor(
    readonly size: number,
    floor = 0,
  ) {
    this.bits = new Uint32Array(size / 32);
    this.top = floor;
    if (floor > 0) this.bits.fill(0xffffffff);
  }

  /** True when `seq` may be new: not 0, not left of the window, not seen. */
  check(seq: number): boolean {
    if (seq === 0) return false;
    if (seq > this.top) return true;
    if (this.top - seq >= this.size) return false;
    return !this.isSet(seq);
  }

  /** Records `seq` as accepted; moves the window when it is the new highest. */
  commit(seq: number): void {
    if (seq > this.top) {
      const advance = seq - this.top;
      if (advance >= this.size) this.bits.fill(0);
      else for (let s = this.top + 1; s < seq; s++) this.clear(s);
      this.top = seq;
    }
    const slot = seq % this.size;
    this.bits[slot >>> 5] |= 1 << (slot & 31);
  }

  private isSet(seq: number): boolean {
    const slot = seq % this.size;
    return (this.bits[slot >>> 5] & (1 << (slot & 31))) !== 0;
  }

  private clear(seq: number): void {
    const slot = seq % this.size;
    this.bits[slot >>> 5] &= ~(1 << (slot & 31));
  }
}
