/** Leases on fills shared by replicas: `take` gives a release, or undefined when another replica holds the blob's lease. */
export interface FillLeases {
  take(digest: string): Promise<(() => Promise<void>) | undefined>;
}

/** How long a miss waits for the fill another replica leased, checking the store, before it fetches the blob itself. */
const FOLLOW_MS = 5_000;
const FOLLOW_STEP_MS = 100;

/**
 * Who fetches a blob that several replicas miss at once. 'fetch', with the lease's release (none
 * when the database did not answer: then every replica fetches, as without leases); or
 * 'arrived': another replica held the lease and its fill reached the store within FOLLOW_MS,
 * which `arrived()` checks. Most blobs (configs, small layers, anything that comes within 5 s)
 * arrive so; a blob that takes longer is fetched here too, so that no client waits on another
 * replica's download: at most one fetch per replica (docs/SCALE-OUT.md).
 */
export async function leaseOrFollow(leases: FillLeases, digest: string, arrived: () => Promise<boolean>): Promise<{ fetch: true; release?: () => Promise<void> } | { fetch: false }> {
  let lease: (() => Promise<void>) | undefined;
  try {
    lease = await leases.take(digest);
  } catch {
    return { fetch: true };
  }
  if (lease) return { fetch: true, release: lease };
  for (let waited = 0; waited < FOLLOW_MS; waited += FOLLOW_STEP_MS) {
    await new Promise((r) => setTimeout(r, FOLLOW_STEP_MS));
    if (await arrived()) return { fetch: false };
  }
  return { fetch: true };
}
