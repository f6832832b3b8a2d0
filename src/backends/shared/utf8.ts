// Decoding output that was cut at a byte limit (ssh_exec, kubectl exec and API
// answers): a cut inside a multi-byte UTF-8 character would decode as U+FFFD
// and leave the answer a few bytes over what the cap allows. Pure.

/** How many bytes at the end of `bytes` start a UTF-8 character that the cut left incomplete (0–3). */
function incompleteTail(bytes: Uint8Array): number {
  // A character is at most 4 bytes: look back over at most 3 continuation bytes for its lead byte.
  for (let back = 1; back <= Math.min(4, bytes.length); back++) {
    const byte = bytes[bytes.length - back] ?? 0;
    if ((byte & 0b1100_0000) === 0b1000_0000) continue; // a continuation byte
    const length = byte >= 0b1111_0000 ? 4 : byte >= 0b1110_0000 ? 3 : byte >= 0b1100_0000 ? 2 : 1;
    return length > back ? back : 0;
  }
  return 0;
}

/**
 * The text of `chunks`; when they were `cut` at a byte limit, without the
 * incomplete character the cut may have left at the end (never a U+FFFD that
 * the output did not contain).
 */
export function decodeCut(chunks: readonly Uint8Array[], cut: boolean): string {
  const bytes = Buffer.concat(chunks);
  const keep = cut ? bytes.length - incompleteTail(bytes) : bytes.length;
  return bytes.subarray(0, keep).toString('utf8');
}
