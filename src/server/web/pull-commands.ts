import type { KindInfo, PullCommand } from './types.js';

export interface PullTarget {
  /** The registry as clients reach it: `host[:port]`. */
  host: string;
  repo: string;
  tag: string | null;
  digest: string;
  /** The registry answers plain HTTP: tools that insist on TLS need their flag. */
  plainHttp: boolean;
  /** Signatures found among the referrers. */
  signed: { cosign: boolean; notation: boolean };
}

/** A Host header as a registry address, or undefined when it holds anything a shell would read. */
export function safeHost(host: string | undefined): string | undefined {
  if (!host || host.length > 255) return undefined;
  return /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/.test(host) ? host : undefined;
}

const IMAGE_KINDS = new Set(['image', 'image-index']);

/**
 * The commands that pull this artifact, per tool, only where the tool works: wharf always; oras
 * for anything that is not a container image; helm for charts; docker, podman and skopeo for
 * images; docker model for Docker's AI models; cosign and notation to verify what is signed.
 * Names are validated before (repository name and tag grammar), so nothing here needs quoting.
 */
export function pullCommands(kind: KindInfo, t: PullTarget): PullCommand[] {
  const ref = t.tag ? `${t.host}/${t.repo}:${t.tag}` : `${t.host}/${t.repo}@${t.digest}`;
  const pinned = `${t.host}/${t.repo}@${t.digest}`;
  const dir = t.repo.split('/').pop()!;
  const out: PullCommand[] = [{ tool: 'wharf', command: `wharf pull ${t.plainHttp ? '--plain-http ' : ''}${ref} -o ${dir}` }];
  if (kind.kind === 'helm-chart') {
    const version = t.tag ? ` --version ${t.tag}` : '';
    out.push({ tool: 'helm', command: `helm pull oci://${t.tag ? `${t.host}/${t.repo}` : pinned}${version}${t.plainHttp ? ' --plain-http' : ''}` });
  }
  if (IMAGE_KINDS.has(kind.kind)) {
    out.push({ tool: 'docker', command: `docker pull ${ref}` });
    out.push({ tool: 'podman', command: `podman pull ${t.plainHttp ? '--tls-verify=false ' : ''}${ref}` });
    out.push({ tool: 'skopeo', command: `skopeo copy ${t.plainHttp ? '--src-tls-verify=false ' : ''}docker://${ref} oci:${dir}:${t.tag ?? 'latest'}` });
  } else {
    out.push({ tool: 'oras', command: `oras pull ${t.plainHttp ? '--plain-http ' : ''}${ref} -o ${dir}` });
  }
  if (kind.kind === 'ml-model' && kind.label.includes('Docker')) out.push({ tool: 'docker', command: `docker model pull ${ref}` });
  if (t.signed.cosign) out.push({ tool: 'cosign', command: `cosign verify --key cosign.pub ${t.plainHttp ? '--allow-http-registry ' : ''}${pinned}` });
  if (t.signed.notation) out.push({ tool: 'notation', command: `notation verify ${t.plainHttp ? '--insecure-registry ' : ''}${pinned}` });
  return out;
}
