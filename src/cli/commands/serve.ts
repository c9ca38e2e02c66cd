import type { CAC } from 'cac';

export function registerServe(cli: CAC): void {
  cli
    .command('serve', 'Run the registry (OCI Distribution Spec 1.1)')
    .option('--data <dir>', 'Directory that holds all state (env WHARF_DATA)')
    .option('--listen <addr>', 'Address to listen on, host:port (env WHARF_LISTEN)')
    .option('--config <file>', 'Config file, YAML or JSON (env WHARF_CONFIG)')
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
    .example('wharf serve --config wharf.yaml --offline --preload images.tar')
    .action(async (opts: Record<string, unknown>) => {
      const { runServe } = await import('../run/serve.js');
      await runServe(opts);
    });
}
