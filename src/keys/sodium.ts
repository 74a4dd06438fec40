// libsodium, initialised once: every module of src/keys imports it from here.
import sodium from 'libsodium-wrappers';

await sodium.ready;

export { sodium };
