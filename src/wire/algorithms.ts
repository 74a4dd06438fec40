// The IPsec algorithms mipsec speaks, by name, with their key sizes and their SKIP algorithm numbers
// (docs/engine.md §6): the vocabulary shared by the wire formats, the keying and the engine.

export type EspSuite = 'aes128gcm' | 'aes256gcm' | 'chacha20poly1305';
export type MacAlg = 'gmac-aes128' | 'hmac-sha256-128';
export type Coverage = 'full' | 'headers';

/** Key bytes per algorithm, salt included where the algorithm has one. */
export const KEY_BYTES: Record<EspSuite | MacAlg, number> = {
  aes128gcm: 20,
  aes256gcm: 36,
  chacha20poly1305: 36,
  'gmac-aes128': 20,
  'hmac-sha256-128': 32,
};

/** SKIP algorithm numbers from the private range 250-255 (docs/engine.md §6). */
export const SkipAlg = {
  kij: { 'aes256-kw': 250 },
  crypt: { aes128gcm: 250, aes256gcm: 251, chacha20poly1305: 252 } as Record<EspSuite, number>,
  mac: { 'gmac-aes128': 250, 'hmac-sha256-128': 251 } as Record<MacAlg, number>,
} as const;

/**
 * Most nested SKIP layers one packet may carry: what INBOUND peels and the policy accepts (the engine's kMaxLayers).
 */
export const MAX_LAYERS = 8;
