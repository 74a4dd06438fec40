#!/usr/bin/env python3
"""Checks a mipsec capture against its key log with tools that share no code with mipsec.

    python3 wireshark/check-key-chain.py DIR        (DIR from `mipsec lab --pcap OUT --key-chain`: OUT/<case>)

tshark with wireshark/mipsec-skip.lua reads every SKIP header in DIR/*.pcap (n, algorithms, wrapped Kp). For each
header the checker, from DIR/skip-sa.jsonl (written with --key-chain, test runs only):
  1. derives Kijn = last 32 bytes of BLAKE2b-512(Kij | n as u32 big-endian | 0x00) for every logged Kij (Python's
     hashlib) and unwraps the wire's wrapped Kp with it (AES-256 Key Wrap, RFC 3394, `openssl enc -id-aes256-wrap`,
     whose integrity check refuses a wrong Kijn);
  2. derives from the Kp it got E_kp = last L bytes of BLAKE2b-512(Kp | Crypt Alg | 0x00) and A_kp = last L bytes of
     BLAKE2b-512(Kp | MAC Alg | 0x01), L from the wire's algorithm (docs/skip-keying.md §1-2);
  3. requires that exactly one logged Kij unwraps it, and that every logged SA with this wrapped Kp (both ends log
     one) has the wire's n and algorithms, that Kp and exactly those traffic keys.
It prints what it checked and exits 0, or lists every header that failed and exits 1 (also when nothing was checked).
"""
import glob
import hashlib
import json
import os
import subprocess
import sys

DISSECTOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mipsec-skip.lua')
KIJ_ALG_AES256_KW = 250
KEY_WRAP_IV = 'A6A6A6A6A6A6A6A6'
# Key bytes (salt included) per Crypt Alg and MAC Alg (docs/skip-keying.md §1).
CRYPT_KEY_BYTES = {250: 20, 251: 36, 252: 36}
MAC_KEY_BYTES = {250: 20, 251: 32}
FIELDS = ['skip.n', 'skip.kij_alg', 'skip.crypt_alg', 'skip.mac_alg', 'skip.wrapped_kp']


def low_hash(length, *parts):
    return hashlib.blake2b(b''.join(parts), digest_size=64).digest()[-length:]


def unwrap(kijn, wrapped):
    """Kp, or None when the key wrap's integrity check fails."""
    run = subprocess.run(['openssl', 'enc', '-d', '-id-aes256-wrap', '-K', kijn.hex(), '-iv', KEY_WRAP_IV],
                         input=wrapped, capture_output=True)
    return run.stdout if run.returncode == 0 and len(run.stdout) == 32 else None


def skip_headers(pcap):
    """Every SKIP header in the capture as (frame number, n, kij alg, crypt alg, mac alg, wrapped Kp)."""
    out = subprocess.run(['tshark', '-X', 'lua_script:' + DISSECTOR, '-r', pcap, '-T', 'fields',
                          '-E', 'occurrence=a', '-E', 'aggregator=|', '-e', 'frame.number',
                          *[arg for f in FIELDS for arg in ('-e', f)]],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        frame, *columns = line.split('\t')
        values = [c.split('|') if c else [] for c in columns]
        if len({len(v) for v in values}) != 1:
            raise SystemExit(f'{pcap} frame {frame}: tshark gave uneven SKIP fields {values}')
        for n, kij_alg, crypt, mac, wrapped in zip(*values):
            yield int(frame), int(n), int(kij_alg), int(crypt), int(mac), bytes.fromhex(wrapped.replace(':', ''))


def load_log(path):
    records = [json.loads(line) for line in open(path) if line.strip()]
    missing = [r['sa'] for r in records if 'kij' not in r or 'kp' not in r]
    if missing:
        raise SystemExit(f'{path}: SAs {missing} have no kij/kp: run `mipsec lab --pcap DIR --key-chain`')
    return records


def check_header(n, kij_alg, crypt, mac, wrapped, kijs, records):
    """None when the header unwraps to the keys of every logged SA with this wrapped Kp, else why not."""
    if kij_alg != KIJ_ALG_AES256_KW:
        return f'Kij Alg {kij_alg} is not AES-256 Key Wrap ({KIJ_ALG_AES256_KW})'
    counter = n.to_bytes(4, 'big')
    kps = {kp for kp in (unwrap(low_hash(32, kij, counter, b'\x00'), wrapped) for kij in kijs) if kp is not None}
    if len(kps) != 1:
        return 'unwraps with no logged Kij' if not kps else f'unwraps to {len(kps)} different Kps under different Kijs'
    kp = kps.pop()
    want = {
        'n': n, 'cryptAlg': crypt, 'macAlg': mac, 'kp': kp.hex(),
        'E_kp': low_hash(CRYPT_KEY_BYTES[crypt], kp, bytes([crypt]), b'\x00').hex() if crypt else None,
        'A_kp': low_hash(MAC_KEY_BYTES[mac], kp, bytes([mac]), b'\x01').hex() if mac else None,
    }
    # Both ends log an SA: every record of this wrapped Kp must hold what the wire's header unwraps to.
    logged = [r for r in records if r['wrappedKp'] == wrapped.hex()]
    if not logged:
        return f'unwraps to Kp {kp.hex()[:8]}…, but no logged SA has this wrapped Kp'
    for r in logged:
        got = {'n': r['n'], 'cryptAlg': r['cryptAlg'], 'macAlg': r['macAlg'], 'kp': r['kp'],
               'E_kp': r.get('esp', {}).get('key'), 'A_kp': r.get('ah', {}).get('key')}
        wrong = [name for name in want if got[name] != want[name]]
        if wrong:
            return (f'unwraps to Kp {kp.hex()[:8]}…, but logged SA {r["sa"]} ({r["direction"]}) '
                    f'differs in {", ".join(wrong)}')
    return None


def main(directory):
    records = load_log(os.path.join(directory, 'skip-sa.jsonl'))
    kijs = sorted({bytes.fromhex(r['kij']) for r in records})
    verdicts = {}
    checked = packets = 0
    failures = []
    pcaps = sorted(glob.glob(os.path.join(directory, '*.pcap')))
    for pcap in pcaps:
        frames = set()
        for frame, n, kij_alg, crypt, mac, wrapped in skip_headers(pcap):
            key = (n, kij_alg, crypt, mac, wrapped)
            if key not in verdicts:
                verdicts[key] = check_header(*key, kijs, records)
            if verdicts[key]:
                failures.append(f'{os.path.basename(pcap)} frame {frame}: wrapped Kp {wrapped.hex()[:16]}… (n {n}, '
                                f'Crypt Alg {crypt}, MAC Alg {mac}) {verdicts[key]}')
            checked += 1
            frames.add(frame)
        packets += len(frames)
    print(f'{directory}: {checked} SKIP headers in {packets} packets of {len(pcaps)} pcaps, {len(verdicts)} distinct '
          f'wrapped Kps, {len(records)} logged SAs, {len(kijs)} Kijs')
    if checked == 0:
        print('FAIL: no SKIP header to check')
        return 1
    for f in failures[:50]:
        print('FAIL: ' + f)
    if failures:
        print(f'FAIL: {len(failures)} of {checked} SKIP headers do not unwrap to a logged key')
        return 1
    print(f'OK: every wrapped Kp unwraps (Kijn from the logged Kij and the wire\'s n) to a logged Kp whose E_kp/A_kp '
          f'are the logged traffic keys')
    return 0


if __name__ == '__main__':
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1]))
