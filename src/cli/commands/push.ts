import type { CAC } from 'cac';
import { registryFlags } from '../shared/flags.js';

export function registerPush(cli: CAC): void {
  registryFlags(
    cli
      .command('push <ref> [...files]', 'Push files and directories as an artifact (host/repo:tag1,tag2)')
      .option('--artifact-type <type>', 'Artifact type (default application/vnd.unknown.artifact.v1)')
      .option('--config <file>', 'Config file, optionally file:mediaType')
      .option('-a, --annotation <k=v>', 'Manifest annotation (repeatable)')
      .option('--annotation-file <file>', 'Annotations as JSON: {"$manifest":{..},"$config":{..},"<file>":{..}}')
      .option('--export-manifest <file>', 'Also write the pushed manifest to this file')
      .option('--image-spec <v>', 'v1.1 (artifactType, empty config) or v1.0')
      .option('--oci-layout', 'The target is an OCI image layout: dir[:tag] or file.tar[:tag]')
      .option('--chunk-size <size>', 'Upload in chunks of this size (e.g. 16M) for proxies that cap bodies')
      .option('--no-digest-memo', 'Hash every file before uploading it, not trusting the digests remembered from earlier pushes (also WHARF_DIGEST_MEMO=off)')
      .option('--allow-empty', 'Push an artifact without files (annotations and config only)')
      .option('--estargz', 'Pack the one directory given as an eStargz image layer (files readable one by one: ls, cat, get)')
      .option('--estargz-chunk-size <size>', 'With --estargz: uncompressed bytes per chunk (default 4MiB)')
      .option('--platform <os/arch>', 'With --estargz: platform in the image config (default linux/<this machine>)')
      .example('wharf push localhost:5000/docs:v1 README.md site/:application/vnd.example.site')
      .example('wharf push --oci-layout ./layout:v1 data.bin')
      .example('wharf push --estargz localhost:5000/data:v1 ./dataset'),
  ).action(async (ref: string, files: string[], opts: Record<string, unknown>) => {
    const { runPush } = await import('../run/push.js');
    await runPush(String(ref), files.map(String), opts);
  });
}
