import type { CAC } from 'cac';

export function registerServe(cli: CAC): void {
  cli
    .command('serve', 'Run the registry (OCI Distribution Spec 1.1)')
    .option('--data <dir>', 'Directory that holds all state (env WHARF_DATA)')
    .option('--listen <addr>', 'Address to listen on, host:port (env WHARF_LISTEN)')
    .option('--config <file>', 'Config file, YAML or JSON (env WHARF_CONFIG)')
    .option('--storage <driver>', 'fs (the data directory, default), memory, or s3 (env WHARF_STORAGE)')
    .option('--s3-bucket <name>', 'S3 bucket of --storage s3 (env WHARF_S3_BUCKET; keys: WHARF_S3_ACCESS_KEY_ID, WHARF_S3_SECRET_ACCESS_KEY, or the AWS SDK chain)')
    .option('--s3-endpoint <url>', 'An S3-compatible store, e.g. http://127.0.0.1:7480 (env WHARF_S3_ENDPOINT)')
    .option('--s3-region <region>', 'S3 region, default us-east-1 (env WHARF_S3_REGION)')
    .option('--s3-prefix <prefix>', 'Key prefix in the bucket (env WHARF_S3_PREFIX)')
    .option('--delete <on|off>', 'Allow DELETE of manifests, tags and blobs')
    .option('--tls-cert <file>', 'Serve HTTPS with this PEM certificate (chain); reloaded on SIGHUP')
    .option('--tls-key <file>', 'The PEM private key of --tls-cert')
    .option('--tls-client-ca <file>', 'Accept client certificates signed by this CA (mTLS); the subject CN is the user')
    .option('--log-level <level>', 'trace, debug, info, warn, error or silent')
    .option('--offline', 'Air-gapped: never contact the pull-through upstreams; serve what the cache holds')
    .option('--preload <source>', 'Load images into the pull-through cache at start (image list, docker save tarball, OCI layout); repeatable')
    .example('wharf serve                                  # http://127.0.0.1:5000, state in ./wharf-data')
    .example('wharf serve --listen 0.0.0.0:5000 --data /srv/wharf --delete off')
    .example('WHARF_CONFIG=/etc/wharf.yaml wharf serve')
    .example('wharf serve --storage s3 --s3-bucket registry --s3-endpoint http://127.0.0.1:7480')
    .example('wharf serve --config wharf.yaml --offline --preload images.tar')
    .action(async (opts: Record<string, unknown>) => {
      // Before the server's modules load: loading them grows V8's young generation (io/young-gc.ts).
      const { capYoungGeneration, reassertYoungCap } = await import('../../server/io/young-gc.js');
      capYoungGeneration();
      const { onDigestThreadStart } = await import('../../content/digest.js');
      onDigestThreadStart(reassertYoungCap);
      const { runServe } = await import('../run/serve.js');
      await runServe(opts);
    });
}
