// A userspace stand-in for `tc qdisc … netem delay D J loss L` (this kernel has no sch_netem): a Python
// script, run inside a namespace, that carries Ethernet frames between two interfaces (AF_PACKET), each
// direction on its own, dropping a share of them and delaying each by D ± J ms drawn uniformly, sending
// in delay order — so frames closer together than the jitter come out reordered, as with netem. It carries
// frames only between SIGUSR1 and SIGUSR2 (the caller takes the ports off their bridge in between). On
// SIGTERM it prints its counts per direction as one JSON line, with `overrun`: frames the kernel dropped
// because the script did not read them in time (an artefact of the stand-in, not loss it meant).
export const IMPAIR_PY =
  String.raw`
import heapq, json, random, select, signal, socket, struct, sys, time
a, b = sys.argv[1], sys.argv[2]
loss, delay, jitter = float(sys.argv[3]), float(sys.argv[4]) / 1000, float(sys.argv[5]) / 1000
def opened(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((name, 0))
    s.setblocking(False)
    return s
def kernel_drops(s):
    # struct tpacket_stats { unsigned tp_packets, tp_drops; } (SOL_PACKET 263, PACKET_STATISTICS 6); reading resets it
    packets, dropped = struct.unpack('II', s.getsockopt(263, 6, 8))
    return dropped
sa, sb = opened(a), opened(b)
out = {sa: sb, sb: sa}
names = {sa: a + '>' + b, sb: b + '>' + a}
stats = {n: {'in': 0, 'lost': 0, 'out': 0, 'reordered': 0, 'errors': 0, 'overrun': 0} for n in names.values()}
top = {n: -1 for n in names.values()}
queue = []
n = 0
def done(*_):
    for s in (sa, sb):
        stats[names[s]]['overrun'] += kernel_drops(s)
    print(json.dumps(stats), flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
signal.signal(signal.SIGINT, done)
# Carries frames only between SIGUSR1 and SIGUSR2: the caller takes the ports off their bridge in between, so
# no frame is carried twice and none waits for Python to start.
active = [False]
def carry(on):
    active[0] = on
    if not on:
        queue.clear()
signal.signal(signal.SIGUSR1, lambda *_: carry(True))
signal.signal(signal.SIGUSR2, lambda *_: carry(False))
print('ready', flush=True)
while True:
    wait = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.1
    readable, _, _ = select.select([sa, sb], [], [], wait)
    for s in readable:
        for _ in range(64):
            try:
                frame, addr = s.recvfrom(65536)
            except BlockingIOError:
                break
            if addr[2] == socket.PACKET_OUTGOING or not active[0]:
                continue
            d = names[s]
            stats[d]['in'] += 1
            if random.random() < loss:
                stats[d]['lost'] += 1
                continue
            n += 1
            heapq.heappush(queue, (time.monotonic() + max(0.0, delay + random.uniform(-jitter, jitter)), ` +
  String.raw`n, d, out[s], frame))
    now = time.monotonic()
    while active[0] and queue and queue[0][0] <= now:
        _, k, d, s, frame = heapq.heappop(queue)
        try:
            s.send(frame)
            stats[d]['out'] += 1
            if k < top[d]:
                stats[d]['reordered'] += 1
            top[d] = max(top[d], k)
        except OSError:
            stats[d]['errors'] += 1
`;
