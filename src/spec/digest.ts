import { createHash, type Hash } from 'node:crypto';
import { OciError } from './errors.js';

/** Algorithms the registry accepts, with the length of their hex encoding. */
export const DIGEST_ALGORITHMS = { sha256: 64, sha512: 128 } as const;
export type DigestAlgorithm = keyof typeof DIGEST_ALGORITHMS;

/** A validated `algorithm:hex` string. */
export type Digest = `${DigestAlgorithm}:${string}`;

// image-spec descriptor.md: algorithm-component and encoded grammar; we then restrict to
// registered algorithms with lower-case hex of the right length so that a digest is always safe
// to use as a path component.
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
}

export function parseDigest(value: string): ParsedDigest {
  if (!DIGEST_GRAMMAR.test(value)) throw new OciError('DIGEST_INVALID', `invalid digest "${truncate(value)}"`);
  const idx = value.indexOf(':');
  const algorithm = value.slice(0, idx);
  const hex = value.slice(idx + 1);
  if (!Object.hasOwn(DIGEST_ALGORITHMS, algorithm)) {
    throw new OciError('DIGEST_INVALID', `unsupported digest algorithm "${truncate(algorithm)}"`);
  }
  const len = DIGEST_ALGORITHMS[algorithm as DigestAlgorithm];
  if (hex.length !== len || !/^[a-f0-9]+$/.test(hex)) {
    throw new OciError('DIGEST_INVALID', `invalid ${algorithm} digest "${truncate(value)}"`);
  }
  return { algorithm: algorithm as DigestAlgorithm, hex };
}

export function isDigest(value: string): value is Digest {
  try {
    parseDigest(value);
    return true;
  } catch {
    return false;
  }
}

export function asDigest(value: string): Digest {
  parseDigest(value);
  return value as Digest;
}

export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

export function createDigester(algorithm: DigestAlgorithm = 'sha256'): Hash {
  return createHash(algorithm);
}

export function truncate(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
