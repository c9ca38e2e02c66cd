import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerAttach(cli: CAC): void {
  registryFlags(
    cli
      .command('attach <ref> [...files]', 'Attach files to an artifact as a referrer (a signature, an SBOM...)')
      .option('--artifact-type <type>', 'Artifact type of the referrer (required)')
      .option('-a, --annotation <k=v>', 'Manifest annotation (repeatable)')
      .option('--annotation-file <file>', 'Annotations as JSON')
      .option('--export-manifest <file>', 'Also write the pushed manifest to this file')
      .option('--image-spec <v>', 'v1.1 (default) or v1.0')
      .option('--distribution-spec <mode>', 'v1.1-referrers-api, or v1.1-referrers-tag to maintain the sha256-<hex> tag (default: detect)')
      .option('--oci-layout', 'The target is an OCI image layout')
      .option('--no-digest-memo', 'Hash every file before uploading it, not trusting the digests remembered from earlier pushes (also WHARF_DIGEST_MEMO=off)')
      .example('wharf attach localhost:5000/app:v1 --artifact-type application/vnd.example.sbom sbom.json'),
  ).action(async (ref: string, files: string[], opts: Record<string, unknown>) => {
    const { runAttach } = await import('../run/attach.js');
    await runAttach(String(ref), files.map(String), opts);
  });
}
