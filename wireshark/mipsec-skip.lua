-- mipsec-skip.lua: Wireshark dissector for the SKIP header (IP protocol 57) as mipsec emits it.
--
-- Layout (draft-ietf-ipsec-skip-06; mipsec docs/engine.md §6, wire-formats.md §4):
--   0    Ver (high nibble, 1) | Reserved (low nibble)
--   1    Source NSID          2  Dest NSID          3  Next Header (51 AH, 50 ESP)
--   4    Counter n (u32, hours since 1995-01-01 00:00 UTC)
--   8    Kij Alg   9 Crypt Alg   10 MAC Alg   11 Comp Alg
--   12   Kp encrypted in Kijn (length from the Kij Alg; 40 bytes for 250 = AES-256 key wrap)
--   ...  Source MKID (iff Source NSID != 0), Dest MKID (iff Dest NSID != 0); length from the NSID
-- The header has no length field: unknown NSIDs or algorithms make it unparseable, which is
-- reported as expert info and the rest shown as data.
-- What follows is handed to Wireshark's own dissectors through the "ip.proto" table (AH, ESP),
-- so IPv4 / SKIP / AH / IPv4 / SKIP / AH / ESP decodes all the way down.
--
-- Load: tshark -X lua_script:wireshark/mipsec-skip.lua ...   or copy it into the personal
-- plugins directory (Help > About Wireshark > Folders > Personal Lua Plugins).

local skip = Proto("skip", "SKIP (Simple Key management for Internet Protocols)")

local SKIP_FIXED_BYTES = 12
-- Unix time of 1995-01-01T00:00:00Z, the origin of the counter n.
local SKIP_EPOCH = 788918400

local nsid_names = {
  [0] = "None (IP address identifies the key)",
  [1] = "IPv4 address",
  [2] = "POSIX/XOPEN user id",
  [3] = "IPv6 address",
  [4] = "MD5 of DNS name",
  [5] = "MD5 of ISO DN",
  [6] = "MD5 of ASCII string",
  [7] = "802.x MAC address",
  [8] = "MD5 of DH public value",
  [9] = "MD5 of RFC 822 mailbox",
  [10] = "MD5 of bank account number",
  [11] = "MD5 of NIS name",
}
-- MKID length per NSID (skip-06 §4.3); an NSID outside this table cannot be parsed.
local mkid_bytes = { [0] = 0, [1] = 4, [2] = 4, [3] = 16, [4] = 16, [5] = 16, [6] = 16, [7] = 6,
                     [8] = 16, [9] = 16, [10] = 16, [11] = 16 }

local kij_names = {
  [1] = "DES-CBC",
  [2] = "3DES-EDE-CBC",
  [3] = "IDEA-CBC",
  [250] = "AES-256 Key Wrap (mipsec)",
}
local crypt_names = {
  [0] = "None",
  [1] = "DES-CBC",
  [2] = "3DES-EDE-CBC",
  [250] = "AES-128-GCM (mipsec)",
  [251] = "AES-256-GCM (mipsec)",
  [252] = "ChaCha20-Poly1305 (mipsec)",
}
local mac_names = {
  [0] = "None",
  [1] = "Keyed MD5",
  [2] = "DES-CBC MAC",
  [3] = "Keyed SHA",
  [250] = "AES-128-GMAC (mipsec)",
  [251] = "HMAC-SHA-256-128 (mipsec)",
}
local comp_names = { [0] = "None" }
local next_names = { [4] = "IPv4", [50] = "ESP", [51] = "AH" }

-- Key sizes of the classic algorithms: with Kij Alg 1-3 the wrapped Kp is Kp (as long as the
-- longer of the Crypt and MAC keys) rounded up to the 8-byte block (wire-formats §4.4).
local classic_crypt_key = { [0] = 0, [1] = 8, [2] = 24 }
local classic_mac_key = { [0] = 0, [1] = 16, [2] = 8, [3] = 20 }
local classic_kij_block = { [1] = 8, [2] = 8, [3] = 8 }
-- Our Kij algorithms wrap a fixed-size Kp.
local fixed_wrapped_kp = { [250] = 40 }

local f = {
  version = ProtoField.uint8("skip.version", "Version", base.DEC, nil, 0xF0),
  reserved = ProtoField.uint8("skip.reserved", "Reserved", base.HEX, nil, 0x0F),
  src_nsid = ProtoField.uint8("skip.src_nsid", "Source NSID", base.DEC, nsid_names),
  dst_nsid = ProtoField.uint8("skip.dst_nsid", "Destination NSID", base.DEC, nsid_names),
  next_header = ProtoField.uint8("skip.next_header", "Next Header", base.DEC, next_names),
  n = ProtoField.uint32("skip.n", "Counter n (hours since 1995-01-01)", base.DEC),
  n_time = ProtoField.absolute_time("skip.n_time", "Counter n as UTC hour", base.UTC),
  kij_alg = ProtoField.uint8("skip.kij_alg", "Kij Algorithm", base.DEC, kij_names),
  crypt_alg = ProtoField.uint8("skip.crypt_alg", "Crypt Algorithm", base.DEC, crypt_names),
  mac_alg = ProtoField.uint8("skip.mac_alg", "MAC Algorithm", base.DEC, mac_names),
  comp_alg = ProtoField.uint8("skip.comp_alg", "Comp Algorithm", base.DEC, comp_names),
  wrapped_kp = ProtoField.bytes("skip.wrapped_kp", "Kp encrypted in Kijn"),
  src_mkid = ProtoField.bytes("skip.src_mkid", "Source MKID"),
  dst_mkid = ProtoField.bytes("skip.dst_mkid", "Destination MKID"),
  src_mkid_ipv4 = ProtoField.ipv4("skip.src_mkid_ipv4", "Source MKID (IPv4)"),
  dst_mkid_ipv4 = ProtoField.ipv4("skip.dst_mkid_ipv4", "Destination MKID (IPv4)"),
  src_mkid_ipv6 = ProtoField.ipv6("skip.src_mkid_ipv6", "Source MKID (IPv6)"),
  dst_mkid_ipv6 = ProtoField.ipv6("skip.dst_mkid_ipv6", "Destination MKID (IPv6)"),
}
skip.fields = { f.version, f.reserved, f.src_nsid, f.dst_nsid, f.next_header, f.n, f.n_time,
                f.kij_alg, f.crypt_alg, f.mac_alg, f.comp_alg, f.wrapped_kp,
                f.src_mkid, f.dst_mkid, f.src_mkid_ipv4, f.dst_mkid_ipv4, f.src_mkid_ipv6, f.dst_mkid_ipv6 }

local ef = {
  truncated = ProtoExpert.new("skip.truncated", "SKIP header truncated",
                              expert.group.MALFORMED, expert.severity.ERROR),
  bad_version = ProtoExpert.new("skip.bad_version", "SKIP version is not 1",
                                expert.group.MALFORMED, expert.severity.ERROR),
  reserved = ProtoExpert.new("skip.reserved_nonzero", "SKIP reserved nibble is not 0",
                             expert.group.PROTOCOL, expert.severity.WARN),
  unknown_nsid = ProtoExpert.new("skip.unknown_nsid", "Unknown NSID: MKID length unknown",
                                 expert.group.MALFORMED, expert.severity.ERROR),
  unknown_alg = ProtoExpert.new("skip.unknown_alg", "Unknown algorithm: wrapped Kp length unknown",
                                expert.group.MALFORMED, expert.severity.ERROR),
  compression = ProtoExpert.new("skip.compression", "SKIP compression is not supported",
                                expert.group.UNDECODED, expert.severity.WARN),
}
skip.experts = { ef.truncated, ef.bad_version, ef.reserved, ef.unknown_nsid, ef.unknown_alg, ef.compression }

local ip_proto_table = DissectorTable.get("ip.proto")
local data_dissector = Dissector.get("data")

-- Length of the encrypted Kp field, or nil when the algorithms do not define it.
local function wrapped_kp_length(kij, crypt, mac)
  if fixed_wrapped_kp[kij] then return fixed_wrapped_kp[kij] end
  local block = classic_kij_block[kij]
  local ck, mk = classic_crypt_key[crypt], classic_mac_key[mac]
  if not block or not ck or not mk then return nil end
  local kp = math.max(ck, mk)
  return math.ceil(kp / block) * block
end

local function add_mkid(tree, tvb, at, nsid, bytes_field, ipv4_field, ipv6_field)
  local len = mkid_bytes[nsid]
  if len == 0 then return at, nil end
  local range = tvb(at, len)
  local text
  if nsid == 1 then
    tree:add(ipv4_field, range)
    text = tostring(range:ipv4())
  elseif nsid == 3 then
    tree:add(ipv6_field, range)
    text = tostring(range:ipv6())
  else
    tree:add(bytes_field, range)
    text = range:bytes():tohex(true)
  end
  return at + len, text
end

local function identity(nsid, mkid)
  if mkid then return "NSID" .. nsid .. " " .. mkid end
  return "NSID" .. nsid
end

function skip.dissector(tvb, pinfo, tree)
  local available = tvb:len()
  pinfo.cols.protocol = "SKIP"
  local subtree = tree:add(skip, tvb(0, math.min(available, SKIP_FIXED_BYTES)))

  if available < SKIP_FIXED_BYTES then
    subtree:add_proto_expert_info(ef.truncated, string.format("SKIP header truncated: %d of %d fixed bytes", available, SKIP_FIXED_BYTES))
    pinfo.cols.info:append(" [SKIP truncated]")
    return available
  end

  local version = tvb(0, 1):bitfield(0, 4)
  local reserved = tvb(0, 1):bitfield(4, 4)
  local src_nsid = tvb(1, 1):uint()
  local dst_nsid = tvb(2, 1):uint()
  local next_header = tvb(3, 1):uint()
  local n = tvb(4, 4):uint()
  local kij, crypt, mac, comp = tvb(8, 1):uint(), tvb(9, 1):uint(), tvb(10, 1):uint(), tvb(11, 1):uint()

  local vitem = subtree:add(f.version, tvb(0, 1))
  if version ~= 1 then vitem:add_proto_expert_info(ef.bad_version, "SKIP version " .. version .. ", expected 1") end
  local ritem = subtree:add(f.reserved, tvb(0, 1))
  if reserved ~= 0 then ritem:add_proto_expert_info(ef.reserved) end
  local sitem = subtree:add(f.src_nsid, tvb(1, 1))
  local ditem = subtree:add(f.dst_nsid, tvb(2, 1))
  subtree:add(f.next_header, tvb(3, 1))
  subtree:add(f.n, tvb(4, 4))
  subtree:add(f.n_time, tvb(4, 4), NSTime.new(SKIP_EPOCH + n * 3600, 0)):set_generated()
  local kitem = subtree:add(f.kij_alg, tvb(8, 1))
  subtree:add(f.crypt_alg, tvb(9, 1))
  subtree:add(f.mac_alg, tvb(10, 1))
  local citem = subtree:add(f.comp_alg, tvb(11, 1))
  if comp ~= 0 then citem:add_proto_expert_info(ef.compression) end

  if version ~= 1 then
    pinfo.cols.info:append(" [SKIP bad version]")
    return SKIP_FIXED_BYTES
  end
  local bad_nsid = false
  if mkid_bytes[src_nsid] == nil then sitem:add_proto_expert_info(ef.unknown_nsid); bad_nsid = true end
  if mkid_bytes[dst_nsid] == nil then ditem:add_proto_expert_info(ef.unknown_nsid); bad_nsid = true end
  local kp_len = wrapped_kp_length(kij, crypt, mac)
  if kp_len == nil then kitem:add_proto_expert_info(ef.unknown_alg) end
  if bad_nsid or kp_len == nil then
    pinfo.cols.info:append(" [SKIP unparseable]")
    return SKIP_FIXED_BYTES
  end

  local total = SKIP_FIXED_BYTES + kp_len + mkid_bytes[src_nsid] + mkid_bytes[dst_nsid]
  if available < total then
    subtree:set_len(available)
    subtree:add_proto_expert_info(ef.truncated, string.format("SKIP header truncated: %d of %d bytes", available, total))
    pinfo.cols.info:append(" [SKIP truncated]")
    return available
  end
  subtree:set_len(total)

  subtree:add(f.wrapped_kp, tvb(SKIP_FIXED_BYTES, kp_len))
  local at = SKIP_FIXED_BYTES + kp_len
  local src_text, dst_text
  at, src_text = add_mkid(subtree, tvb, at, src_nsid, f.src_mkid, f.src_mkid_ipv4, f.src_mkid_ipv6)
  at, dst_text = add_mkid(subtree, tvb, at, dst_nsid, f.dst_mkid, f.dst_mkid_ipv4, f.dst_mkid_ipv6)

  local summary = string.format("%s > %s, n=%d", identity(src_nsid, src_text), identity(dst_nsid, dst_text), n)
  subtree:append_text(", " .. summary)
  pinfo.cols.info:append(" SKIP(" .. summary .. ")")

  if total < available then
    local rest = tvb(total):tvb()
    -- A malformed AH/ESP behind us is that dissector's finding (it marks the packet itself);
    -- pcall keeps its exception from surfacing as an error of this script.
    local ok, consumed = pcall(ip_proto_table.try, ip_proto_table, next_header, rest, pinfo, tree)
    if ok and consumed == 0 then
      data_dissector:call(rest, pinfo, tree)
    end
  end
  return available
end

ip_proto_table:add(57, skip)

-- The UDP transport (docs/engine.md §9.1): each datagram on the agreed port carries one whole IPv4
-- packet (outer IPv4 / SKIP / AH / ESP as above), so its payload goes to the IPv4 dissector.
-- The port is a preference: -o mipsec_udp.port:N (default 4741, the benchmark's).
local transport = Proto("mipsec_udp", "mipsec UDP transport")
transport.prefs.port = Pref.uint("UDP port", 4741, "The port mipsec's gateways carry sealed packets on (IoLoop udpPort)")
local ip_dissector = Dissector.get("ip")
local udp_port_table = DissectorTable.get("udp.port")
local registered_port = 4741

function transport.dissector(tvb, pinfo, tree)
  tree:add(transport, tvb(0, 0))
  return ip_dissector:call(tvb, pinfo, tree)
end

function transport.prefs_changed()
  if transport.prefs.port == registered_port then return end
  udp_port_table:remove(registered_port, transport)
  registered_port = transport.prefs.port
  udp_port_table:add(registered_port, transport)
end

udp_port_table:add(registered_port, transport)
