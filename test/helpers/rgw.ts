/**
 * Ceph RGW, the real S3 object store of the S3 tests, through scripts/rgw.sh: one cluster per test
 * process, shared and cleaned up as test/helpers/cluster.ts says. A cluster costs ~5 s and ~1 GiB
 * of memory. Buckets are the tests' to keep apart: use a unique name (`makeBucket`).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { clusterStarter, skipOrFail, type ClusterHandle } from './cluster.js';

export const RGW_SCRIPT = fileURLToPath(new URL('../../scripts/rgw.sh', import.meta.url));

const BINARIES = ['radosgw', 'ceph-mon', 'ceph-osd', 'radosgw-admin', 'ceph', 'monmaptool'];

/** `halt()` takes the store down (connections refused); `resume()` brings it back in ~2 s. */
export interface Rgw extends ClusterHandle {
  /** `http://127.0.0.1:<port>`: path-style addressing only (no DNS names for buckets). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

/**
 * Why the S3 tests cannot run here, or undefined when they can: Debian's radosgw, ceph-mon and
 * ceph-osd, and root. Prints the reason and skips on a laptop; throws under CI=true.
 */
export function missingRgw(): string | undefined {
  const absent = BINARIES.filter((b) => spawnSync('sh', ['-c', `command -v ${b}`]).status !== 0);
  let reason: string | undefined;
  if (absent.length > 0) {
    reason = `Ceph RGW is not installed (${absent.join(', ')} missing: apt-get install radosgw ceph-mon ceph-osd)`;
  } else if (process.getuid?.() !== 0) {
    reason = 'Ceph RGW needs root (scripts/rgw.sh runs the monitor and the OSD as root)';
  }
  return skipOrFail(reason);
}

const start = clusterStarter({
  script: RGW_SCRIPT,
  ownerVar: 'RGW_OWNER_PID',
  tmpPrefix: 'wharf-rgw-',
  parse(env, out) {
    const { RGW_ENDPOINT, RGW_ACCESS_KEY, RGW_SECRET_KEY, RGW_REGION } = env;
    if (!RGW_ENDPOINT || !RGW_ACCESS_KEY || !RGW_SECRET_KEY || !RGW_REGION) throw new Error(`scripts/rgw.sh printed no endpoint and keys:\n${out}`);
    return { endpoint: RGW_ENDPOINT, accessKeyId: RGW_ACCESS_KEY, secretAccessKey: RGW_SECRET_KEY, region: RGW_REGION };
  },
});

/** Starts this process's cluster, or reuses it. Each call's `stop()` releases one reference. */
export function startRgw(): Promise<Rgw> {
  return start();
}

/** A bucket of its own for a test, on the cluster; its name says which test made it. */
export async function makeBucket(rgw: Rgw, hint: string): Promise<string> {
  const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const name = `${hint.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 40)}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const s3 = new S3Client({ endpoint: rgw.endpoint, region: rgw.region, forcePathStyle: true, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey } });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    s3.destroy();
  }
  return name;
}

/** The `storage.s3` options of a bucket on the cluster. */
export function s3Options(rgw: Rgw, bucket: string, prefix?: string): { endpoint: string; region: string; bucket: string; forcePathStyle: boolean; credentials: { accessKeyId: string; secretAccessKey: string }; prefix?: string } {
  return { endpoint: rgw.endpoint, region: rgw.region, bucket, forcePathStyle: true, credentials: { accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey }, ...(prefix ? { prefix } : {}) };
}
