import { OciError, WharfError } from './errors.js';
import { type Digest, isDigest, truncate } from './digest.js';

/** distribution-spec "Pulling manifests": the <name> and <reference> grammars. */
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
export const NAME_PATTERN = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
export const TAG_PATTERN = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Distribution's limit; the spec lets registries choose one, clients expect 255. */
export const MAX_NAME_LENGTH = 255;

export function isValidName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

export function assertName(name: string): string {
  if (!isValidName(name)) {
    const why = name.length > MAX_NAME_LENGTH ? `longer than ${MAX_NAME_LENGTH} characters` : 'must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*';
    throw new OciError('NAME_INVALID', `invalid repository name "${truncate(name)}": ${why}`);
  }
  return name;
}

export function isValidTag(tag: string): boolean {
  return TAG_PATTERN.test(tag);
}

export function assertTag(tag: string): string {
  if (!isValidTag(tag)) throw new OciError('TAG_INVALID', `invalid tag "${truncate(tag)}"`);
  return tag;
}

/** A manifest reference: a tag or a digest. */
export type ManifestRef = { tag: string; digest?: undefined } | { digest: Digest; tag?: undefined };

export function parseManifestRef(ref: string): ManifestRef {
  if (ref.includes(':')) {
    if (!isDigest(ref)) throw new OciError('DIGEST_INVALID', `invalid digest "${truncate(ref)}"`);
    return { digest: ref };
  }
  if (!isValidTag(ref)) throw new OciError('TAG_INVALID', `invalid tag "${truncate(ref)}"`);
  return { tag: ref };
}

/** A parsed `host[:port]/repository[:tag][@digest]`. */
export interface Reference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: Digest;
}

/**
 * Parses a registry reference. Unlike Docker we never invent `docker.io/library/`: Wharf is
 * explicit about the host, so the first component must look like a host (has a dot or a colon,
 * or is localhost).
 */
export function parseReference(input: string): Reference {
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw new WharfError('INVALID_ARGUMENT', `invalid digest in reference "${truncate(input)}"`);
    digest = d;
    rest = rest.slice(0, at);
  }
  const slash = rest.indexOf('/');
  if (slash < 0) throw new WharfError('INVALID_ARGUMENT', `reference "${truncate(input)}" needs a registry host, e.g. localhost:5000/${rest}`);
  const registry = rest.slice(0, slash);
  if (!/^[a-zA-Z0-9.-]+(?::[0-9]+)?$|^\[[0-9a-fA-F:]+\](?::[0-9]+)?$/.test(registry)) {
    throw new WharfError('INVALID_ARGUMENT', `invalid registry host "${truncate(registry)}" in reference "${truncate(input)}"`);
  }
  let repository = rest.slice(slash + 1);
  let tag: string | undefined;
  const colon = repository.lastIndexOf(':');
  if (colon >= 0) {
    tag = repository.slice(colon + 1);
    repository = repository.slice(0, colon);
    if (!isValidTag(tag)) throw new WharfError('INVALID_ARGUMENT', `invalid tag "${truncate(tag)}" in reference "${truncate(input)}"`);
  }
  if (!isValidName(repository)) {
    throw new WharfError('INVALID_ARGUMENT', `invalid repository "${truncate(repository)}" in reference "${truncate(input)}": use lower case letters, digits and separators`);
  }
  const ref: Reference = { registry, repository };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

export function formatReference(ref: Reference): string {
  let s = `${ref.registry}/${ref.repository}`;
  if (ref.tag) s += `:${ref.tag}`;
  if (ref.digest) s += `@${ref.digest}`;
  return s;
}
